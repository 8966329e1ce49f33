package hrnet

import (
	"fmt"

	G "gorgonia.org/gorgonia"

	"github.com/segkit/segkit/dynopool"
	"github.com/segkit/segkit/nn"
)

// Resize is how the model changes resolution between its levels.
type Resize string

const (
	// Fixed is the published model: stride-2 convolutions down, bilinear resizing up.
	Fixed Resize = "fixed"
	// DynOPool learns every level's size: down and up as Model.Down and Model.Up say
	// (docs/dynopool.md).
	DynOPool Resize = "dynopool"
)

// Down is how DynOPool mode goes down a level.
type Down string

const (
	// PoolThenConv: the sampling op to the target level's size, then the level's 3×3
	// convolution at stride 1 (the paper's placement; "" means it too).
	PoolThenConv Down = "pool"
	// ResizeThenStride: a bilinear resize to twice the target size, then the level's
	// convolution at stride 2 as in the fixed model, so that at alpha 2 on even sizes the
	// model is the fixed one; only the sizes are learned.
	ResizeThenStride Down = "strided"
)

// Levels of resolution: the input, the stem's first conv ("half"), and branches 0–3.
const (
	levelIn = iota
	levelHalf
	level0
	numLevels = level0 + 4
)

// LevelNames name the levels as the reference does.
var LevelNames = [numLevels]string{"in", "half", "0", "1", "2", "3"}

// Model is HRNetV2 with the concat head: logits at 1/4 of the input resolution. Parameter
// names follow the official state_dict (conv1, bn1, layer1.0.conv1, transition1.1.0.0,
// stage2.0.fuse_layers.1.0.0.0, last_layer.3, ...), so official weights load by name; in
// DynOPool mode the alphas are pools.{stem,transition1,transition2,transition3}.alpha.
type Model struct {
	Config
	Classes int
	Resize  Resize
	Down    Down            // DynOPool: how a level is entered from the one above
	Query   dynopool.Query  // DynOPool, PoolThenConv: how the sampling op reads a cell going down
	Up      dynopool.Query  // DynOPool: how the sampling op reads a cell going up (Centre: bilinear)
	Budget  dynopool.Budget // DynOPool: the GMACs loss (Lambda 0: off; Scale 0: 1/the fixed model's GMACs)

	// Conventions of imported models (fixed mode), which change outputs wherever a side is not
	// a multiple of 32. AlignCorners: every bilinear resize maps corners onto corners (official
	// HRNet-OCR configs). TwoStepFuse: the fuse layers up-sample ×2^(j−i) first, then to branch
	// i's size (mmsegmentation); the official model and ours resize once.
	AlignCorners bool
	TwoStepFuse  bool

	levelWeights [numLevels]int64 // conv weights per output level, counted by Forward
}

// New returns the named config with classes output classes and the given resizing.
func New(config string, classes int, resize Resize) (*Model, error) {
	c, err := Lookup(config)
	if err != nil {
		return nil, err
	}
	if classes < 1 {
		return nil, fmt.Errorf("HRNet needs at least one class, got %d", classes)
	}
	if resize != Fixed && resize != DynOPool {
		return nil, fmt.Errorf("unknown resize mode %q (have %s, %s)", resize, Fixed, DynOPool)
	}
	return &Model{Config: c, Classes: classes, Resize: resize}, nil
}

// ParseDown reads a Down by its name ("" is PoolThenConv).
func ParseDown(name string) (Down, error) {
	switch d := Down(name); d {
	case "", PoolThenConv:
		return PoolThenConv, nil
	case ResizeThenStride:
		return d, nil
	}
	return "", fmt.Errorf("unknown DynOPool down-sampling %q (have %s, %s)", name, PoolThenConv, ResizeThenStride)
}

// strided reports whether the convolutions that enter a level have stride 2.
func (m *Model) strided() bool { return m.Resize == Fixed || m.Down == ResizeThenStride }

// Pools are the DynOPool modules of DynOPool mode: the stem's (applied before both stem
// convolutions) and one per transition that opens a branch; all start at alpha 2, the stride
// they replace, and do not up-sample (alpha ≥ 1).
func (m *Model) Pools() []dynopool.Pool {
	if m.Resize != DynOPool {
		return nil
	}
	names := []string{"stem", "transition1", "transition2", "transition3"}
	pools := make([]dynopool.Pool, len(names))
	for i, n := range names {
		pools[i] = dynopool.Pool{Name: "pools." + n, Init: 2, MinOut: 1, CapAtInput: true}
	}
	return pools
}

// AlignsCorners makes every bilinear resize of the model's graphs use align_corners=True
// (nn.CornerAligner).
func (m *Model) AlignsCorners() bool { return m.AlignCorners }

// poolOf is the pool that makes level l (above the input): the stem's serves both stem levels,
// transition k's makes branch k.
func poolOf(pools []dynopool.Pool, l int) dynopool.Pool { return pools[max(0, l-level0)] }

// LevelSizes returns the size of every level for an h×w input: the fixed model's (each stride-2
// 3×3 convolution maps n to ⌈n/2⌉) or those the current alphas give.
func (m *Model) LevelSizes(params *nn.Params, h, w int) [numLevels][2]int {
	var s [numLevels][2]int
	s[levelIn] = [2]int{h, w}
	pools := m.Pools()
	for l := levelHalf; l < numLevels; l++ {
		prev := s[l-1]
		if pools == nil {
			s[l] = [2]int{(prev[0] + 1) / 2, (prev[1] + 1) / 2}
			continue
		}
		s[l][0], s[l][1] = poolOf(pools, l).OutSize(params, prev[0], prev[1])
	}
	return s
}

// GraphKey makes a net rebuild its graph when a learned size changes.
func (m *Model) GraphKey(params *nn.Params, h, w int) string {
	if m.Resize != DynOPool {
		return ""
	}
	return fmt.Sprint(m.LevelSizes(params, h, w))
}

// PoolSizes returns, for each of Pools, the size it resizes from and the size it makes for an
// h×w input: the stem's from the input to the half level (its second application follows
// from that), transition k's from branch k − 1 to branch k.
func (m *Model) PoolSizes(params *nn.Params, h, w int) (in, out [][2]int) {
	s := m.LevelSizes(params, h, w)
	for i := range m.Pools() {
		if i == 0 {
			in, out = append(in, s[levelIn]), append(out, s[levelHalf])
			continue
		}
		in, out = append(in, s[level0+i-1]), append(out, s[level0+i])
	}
	return in, out
}

// ClampAlphas keeps every alpha in range for an h×w input; call it after each optimizer step.
func (m *Model) ClampAlphas(params *nn.Params, h, w int) {
	in, _ := m.PoolSizes(params, h, w)
	for i, p := range m.Pools() {
		p.Clamp(params, in[i][0], in[i][1])
	}
}

// MACs returns the conv multiply-accumulates per image of an h×w input at the current sizes
// (the convention of the published GMACs). It needs a built graph (Forward counts the weights).
func (m *Model) MACs(params *nn.Params, h, w int) int64 {
	s := m.LevelSizes(params, h, w)
	var macs int64
	for l, wts := range m.levelWeights {
		macs += wts * int64(s[l][0]*s[l][1])
	}
	return macs
}

// official initialisation: conv weights N(0, 0.001); BN weight 1, bias 0 (the Builder's).
var weightInit = nn.Normal(0.001)

// pass is one Forward: the builder, the levels' straight-through sizes (DynOPool mode) and the
// conv weights counted per level.
type pass struct {
	b       *nn.Builder
	m       *Model
	sizes   [numLevels]dynopool.Size
	doubled [numLevels]dynopool.Size // ResizeThenStride: twice each level's size
	weights [numLevels]int64
}

// conv adds a convolution whose output is at level; down marks the convolutions that have
// stride 2 in the fixed model (stride 1 after the sampling op in PoolThenConv mode).
func (p *pass) conv(name string, x *G.Node, out, kernel int, down bool, level int) *G.Node {
	stride := 1
	if down && p.m.strided() {
		stride = 2
	}
	if x != nil {
		p.weights[level] += int64(out * x.Shape()[1] * kernel * kernel)
	}
	return p.b.ConvInit(name, x, out, nn.ConvSpec{Kernel: kernel, Stride: stride, Pad: kernel / 2}, weightInit)
}

// convBN is conv → BN (→ ReLU); the BN is named bnName.
func (p *pass) convBN(convName, bnName string, x *G.Node, out, kernel int, down bool, level int, relu bool) *G.Node {
	return p.b.BatchNorm(bnName, p.conv(convName, x, out, kernel, down, level), relu)
}

// down moves x from level from towards level to ahead of a conv marked down: nothing in fixed
// mode (the conv strides), the sampling op to the level's size (PoolThenConv) or a bilinear
// resize to twice that (ResizeThenStride) in DynOPool mode.
func (p *pass) down(name string, x *G.Node, from, to int) *G.Node {
	switch {
	case p.m.Resize == Fixed:
		return x
	case p.m.Down == ResizeThenStride:
		return dynopool.Resample(p.b, name, x, p.sizes[from], p.doubled[to], dynopool.Centre)
	}
	return dynopool.Resample(p.b, name, x, p.sizes[from], p.sizes[to], p.m.Query)
}

// up moves x from level from to level to, whose tensor is ref: bilinear to ref's size in fixed
// mode (twoStep: ×2^(from−to) first, as mmsegmentation's fuse layers), the sampling op to the
// level's current size in DynOPool mode.
func (p *pass) up(name string, x *G.Node, from, to int, ref *G.Node, twoStep bool) *G.Node {
	if p.m.Resize == Fixed {
		h, w := p.b.HW(ref)
		if twoStep {
			xh, xw := p.b.HW(x)
			x = p.b.Resize(name+".x2k", x, xh<<(from-to), xw<<(from-to))
		}
		return p.b.Resize(name, x, h, w)
	}
	return dynopool.Resample(p.b, name, x, p.sizes[from], p.sizes[to], p.m.Up)
}

func (m *Model) Forward(b *nn.Builder, x *G.Node) *G.Node {
	p := &pass{b: b, m: m}
	h, w := b.HW(x)
	if m.Resize == DynOPool {
		pools := m.Pools()
		p.sizes[levelIn] = dynopool.InputSize(b, h, w)
		for l := levelHalf; l < numLevels; l++ {
			p.sizes[l] = poolOf(pools, l).Out(b, p.sizes[l-1])
			if m.Down == ResizeThenStride {
				p.doubled[l] = p.sizes[l].Double(b, "sizes.double."+LevelNames[l])
			}
		}
	}
	x = p.convBN("conv1", "bn1", p.down("stem.pool1", x, levelIn, levelHalf), 64, 3, true, levelHalf, true)
	x = p.convBN("conv2", "bn2", p.down("stem.pool2", x, levelHalf, level0), 64, 3, true, level0, true)
	in := 64
	for i := 0; i < m.Stage1Blocks; i++ {
		x = p.bottleneck(fmt.Sprintf("layer1.%d", i), x, in, m.Planes)
		in = 4 * m.Planes
	}
	xs := []*G.Node{x}
	prev := []int{in}
	for k, st := range m.Stages {
		xs = p.transition(fmt.Sprintf("transition%d", k+1), xs, prev, st.Channels)
		for mod := 0; mod < st.Modules; mod++ {
			xs = p.module(fmt.Sprintf("stage%d.%d", k+2, mod), xs, st)
		}
		prev = st.Channels
	}
	cat := []*G.Node{xs[0]}
	for j := 1; j < len(xs); j++ {
		cat = append(cat, p.up(fmt.Sprintf("head.upsample%d", j), xs[j], level0+j, level0, xs[0], false))
	}
	y := b.Concat("head.concat", cat...)
	c := 0
	for _, ch := range prev {
		c += ch
	}
	y = b.BatchNorm("last_layer.1", p.convBias("last_layer.0", y, c), true)
	y = p.convBias("last_layer.3", y, m.Classes)
	m.levelWeights = p.weights
	if m.Resize == DynOPool && b.Train() {
		terms, budget := p.gmacsTerms(h, w), m.Budget
		if budget.Scale == 0 { // as a fraction of the fixed model's GMACs: one lambda fits every model
			var base float64
			for _, t := range terms {
				base += t.GMACs0
			}
			budget.Scale = 1 / base
		}
		dynopool.Loss(b, terms, budget)
	}
	return y
}

// convBias is a head 1×1 convolution with bias, at level 0.
func (p *pass) convBias(name string, x *G.Node, out int) *G.Node {
	if x != nil {
		p.weights[level0] += int64(out * x.Shape()[1])
	}
	return p.b.ConvInit(name, x, out, nn.ConvSpec{Kernel: 1, Bias: true}, weightInit)
}

// gmacsTerms are the complexity loss's terms for an h×w training crop: per level, its current
// size and the fixed model's size and conv MACs there.
func (p *pass) gmacsTerms(h, w int) []dynopool.Term {
	ref := (&Model{Resize: Fixed}).LevelSizes(nil, h, w)
	var terms []dynopool.Term
	for l := levelHalf; l < numLevels; l++ {
		h0, w0 := ref[l][0], ref[l][1]
		terms = append(terms, dynopool.Term{Size: p.sizes[l], H0: h0, W0: w0, GMACs0: float64(p.weights[l]*int64(h0*w0)) / 1e9})
	}
	return terms
}

// bottleneck: 1×1, 3×3, 1×1 (4× expansion), projection shortcut when the width changes.
func (p *pass) bottleneck(name string, x *G.Node, in, planes int) *G.Node {
	y := p.convBN(name+".conv1", name+".bn1", x, planes, 1, false, level0, true)
	y = p.convBN(name+".conv2", name+".bn2", y, planes, 3, false, level0, true)
	y = p.convBN(name+".conv3", name+".bn3", y, 4*planes, 1, false, level0, false)
	short := x
	if in != 4*planes {
		short = p.convBN(name+".downsample.0", name+".downsample.1", x, 4*planes, 1, false, level0, false)
	}
	return p.b.Sum(name+".add", true, y, short)
}

// basicBlock: 3×3 BN ReLU 3×3 BN, residual add, ReLU.
func (p *pass) basicBlock(name string, x *G.Node, c, level int) *G.Node {
	y := p.convBN(name+".conv1", name+".bn1", x, c, 3, false, level, true)
	y = p.convBN(name+".conv2", name+".bn2", y, c, 3, false, level, false)
	return p.b.Sum(name+".add", true, y, x)
}

// transition adapts the branches of one stage to the next: a 3×3 conv where a branch's width
// changes, and a new lowest-resolution branch by a stride-2 3×3 conv of the previous lowest.
func (p *pass) transition(name string, xs []*G.Node, prev, cur []int) []*G.Node {
	out := make([]*G.Node, len(cur))
	for i, c := range cur {
		switch {
		case i < len(prev) && c == prev[i]:
			out[i] = xs[i]
		case i < len(prev):
			out[i] = p.convBN(fmt.Sprintf("%s.%d.0", name, i), fmt.Sprintf("%s.%d.1", name, i), xs[i], c, 3, false, level0+i, true)
		default:
			x := p.down(fmt.Sprintf("%s.%d.pool", name, i), xs[len(xs)-1], level0+i-1, level0+i)
			out[i] = p.convBN(fmt.Sprintf("%s.%d.0.0", name, i), fmt.Sprintf("%s.%d.0.1", name, i), x, c, 3, true, level0+i, true)
		}
	}
	return out
}

// module runs every branch's blocks, then fuses: output i = ReLU(Σ_j f_ij(x_j)) with f_ii the
// identity, f_ij (j > i) a 1×1 conv + BN then up to branch i's size, and f_ij (j < i) a chain of
// i−j down steps, each a 3×3 conv + BN (ReLU between them) that halves the size.
func (p *pass) module(name string, xs []*G.Node, st Stage) []*G.Node {
	ys := make([]*G.Node, len(xs))
	for i, x := range xs {
		for k := 0; k < st.Blocks; k++ {
			x = p.basicBlock(fmt.Sprintf("%s.branches.%d.%d", name, i, k), x, st.Channels[i], level0+i)
		}
		ys[i] = x
	}
	out := make([]*G.Node, len(ys))
	for i := range ys {
		terms := make([]*G.Node, 0, len(ys))
		for j, y := range ys {
			path := fmt.Sprintf("%s.fuse_layers.%d.%d", name, i, j)
			switch {
			case j == i:
			case j > i:
				y = p.convBN(path+".0", path+".1", y, st.Channels[i], 1, false, level0+j, false)
				y = p.up(path+".up", y, level0+j, level0+i, ys[i], p.m.TwoStepFuse)
			default:
				for k := 0; k < i-j; k++ {
					last := k == i-j-1
					c := st.Channels[j]
					if last {
						c = st.Channels[i]
					}
					step := fmt.Sprintf("%s.%d", path, k)
					y = p.down(step+".pool", y, level0+j+k, level0+j+k+1)
					y = p.convBN(step+".0", step+".1", y, c, 3, true, level0+j+k+1, !last)
				}
			}
			terms = append(terms, y)
		}
		out[i] = p.b.Sum(fmt.Sprintf("%s.fuse.%d", name, i), true, terms...)
	}
	return out
}
