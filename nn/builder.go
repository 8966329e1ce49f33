package nn

import (
	"errors"
	"fmt"
	"slices"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Model describes a network once; Forward adds it to a graph for one input shape.
type Model interface {
	// Forward returns the logits for input x (N×3×H×W). Errors go to b (see Builder.Fail).
	Forward(b *Builder, x *G.Node) *G.Node
}

// GraphKeyer is implemented by models whose graph depends on more than the input shape
// (DynOPool's learned sizes, read from params): graphs are cached under this key as well.
type GraphKeyer interface {
	GraphKey(params *Params, h, w int) string
}

// CornerAligner is implemented by models whose bilinear resizes use align_corners=True (as
// official HRNet-OCR checkpoints were trained): every Resize of their graphs, the training
// loss's up-sampling of the logits included, then maps corner pixels onto corner pixels.
type CornerAligner interface {
	AlignsCorners() bool
}

// Builder adds layers to a graph. The first error sticks: later calls return nil and do
// nothing, so model code reads as a straight sequence of layers; Build reports the error.
type Builder struct {
	g      *G.ExprGraph
	params *Params
	train  bool
	err    error
	bound  map[*Param]*G.Node
	order  []*Param // bound parameters in first-use order
	losses []*G.Node
	// alignCorners: every Resize maps corners onto corners (the model's CornerAligner).
	alignCorners bool
	// perImage: convolutions choose their algorithm as for one image (Net.PerImage).
	perImage bool
	// Inference graphs fold batch norms into the convolutions before them, and residual sums
	// into those: convs holds the inputs of every convolution, folded those of every fused
	// conv + BN without ReLU.
	convs, folded map[*G.Node]fusedConv
	names         map[*G.Node]string // the layer that made each node (for traces)
}

// foldInference enables the folding (tests turn it off to build the unfused reference).
var foldInference = true

type fusedConv struct {
	spec ConvSpec
	in   []*G.Node
}

// NewBuilder starts a graph drawing parameters from params; Net and Build use it, and tests or
// tools that assemble graphs of their own (then run them with Compile).
func NewBuilder(params *Params, train bool) *Builder {
	return &Builder{g: G.NewGraph(), params: params, train: train, bound: map[*Param]*G.Node{}, names: map[*G.Node]string{},
		convs: map[*G.Node]fusedConv{}, folded: map[*G.Node]fusedConv{}}
}

// Graph returns the gorgonia graph being built.
func (b *Builder) Graph() *G.ExprGraph { return b.g }

// Params returns the parameter store the graph draws from.
func (b *Builder) Params() *Params { return b.params }

// Const adds an input node holding a fixed float32 tensor (no gradient is wanted for it).
func (b *Builder) Const(name string, shape []int, data []float32) *G.Node {
	if b.err != nil {
		return nil
	}
	v := tensor.New(tensor.WithShape(shape...), tensor.WithBacking(append([]float32(nil), data...)))
	return G.NewTensor(b.g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName(name), G.WithValue(v))
}

// Train reports whether the graph is for training (batch statistics, gradients).
func (b *Builder) Train() bool { return b.train }

// Err returns the first error.
func (b *Builder) Err() error { return b.err }

// Fail records err (the first one wins) and returns nil for convenience.
func (b *Builder) Fail(err error) *G.Node {
	if b.err == nil && err != nil {
		b.err = err
	}
	return nil
}

func (b *Builder) failed(in ...*G.Node) bool {
	if b.err != nil {
		return true
	}
	for _, n := range in {
		if n == nil {
			b.Fail(errors.New("nn: nil input node"))
			return true
		}
	}
	return false
}

// HW returns the spatial size of an N×C×H×W node (0, 0 after an error).
func (b *Builder) HW(x *G.Node) (int, int) {
	if x == nil || x.Dims() != 4 {
		return 0, 0
	}
	s := x.Shape()
	return s[2], s[3]
}

// Param returns the node of the named parameter, created with init on first use.
func (b *Builder) Param(name string, shape []int, group string, init Init) *G.Node {
	return b.param(name, shape, group, false, init)
}

func (b *Builder) param(name string, shape []int, group string, buffer bool, init Init) *G.Node {
	if b.err != nil {
		return nil
	}
	p, err := b.params.ensure(name, shape, group, buffer, init)
	if err != nil {
		return b.Fail(err)
	}
	if n, ok := b.bound[p]; ok {
		return n
	}
	n := G.NewTensor(b.g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName(name), G.WithValue(p.Value))
	b.bound[p] = n
	b.order = append(b.order, p)
	return n
}

// Apply adds kernel k; errors name the layer.
func (b *Builder) Apply(layer string, k Kernel, in ...*G.Node) *G.Node {
	if b.failed(in...) {
		return nil
	}
	n, err := Apply(k, in...)
	if err != nil {
		shapes := make([]tensor.Shape, len(in))
		for i, x := range in {
			shapes[i] = x.Shape()
		}
		return b.Fail(fmt.Errorf("layer %s (%s) on inputs %v: %w", layer, k.Describe(), shapes, err))
	}
	if _, ok := b.names[n]; !ok { // gorgonia merges equal nodes: the first name stays
		b.names[n] = layer
	}
	return n
}

// Conv adds a convolution with out channels; its weight is name.weight (Kaiming-normal) and
// its bias, when s.Bias, name.bias (zero).
func (b *Builder) Conv(name string, x *G.Node, out int, s ConvSpec) *G.Node {
	return b.ConvInit(name, x, out, s, KaimingNormal)
}

// ConvInit is Conv with the weight initialised by init.
func (b *Builder) ConvInit(name string, x *G.Node, out int, s ConvSpec, init Init) *G.Node {
	if b.failed(x) {
		return nil
	}
	if x.Dims() != 4 {
		return b.Fail(fmt.Errorf("layer %s: conv input must be N×C×H×W, got %v", name, x.Shape()))
	}
	if s.Dilation == 0 {
		s.Dilation = 1
	}
	if s.Stride == 0 {
		s.Stride = 1
	}
	w := b.Param(name+".weight", []int{out, x.Shape()[1], s.Kernel, s.Kernel}, "", init)
	in := []*G.Node{x, w}
	if s.Bias {
		in = append(in, b.Param(name+".bias", []int{out}, "", Constant(0)))
	}
	y := b.Apply(name, conv2d{s, !b.train, b.perImage}, in...)
	if y != nil && !b.train && foldInference {
		b.convs[y] = fusedConv{s, in}
	}
	return y
}

// BatchNorm adds batch normalisation (then ReLU when relu is set) with PyTorch's defaults;
// its tensors are name.weight, name.bias, name.running_mean and name.running_var.
func (b *Builder) BatchNorm(name string, x *G.Node, relu bool) *G.Node {
	if b.failed(x) {
		return nil
	}
	if x.Dims() != 4 {
		return b.Fail(fmt.Errorf("layer %s: batch norm input must be N×C×H×W, got %v", name, x.Shape()))
	}
	c := []int{x.Shape()[1]}
	gamma := b.Param(name+".weight", c, "", Constant(1))
	beta := b.Param(name+".bias", c, "", Constant(0))
	mean := b.param(name+".running_mean", c, "", true, Constant(0))
	variance := b.param(name+".running_var", c, "", true, Constant(1))
	if b.err != nil {
		return nil
	}
	if conv, ok := b.convs[x]; ok {
		// Inference: one kernel for both; the unfused convolution is left out of the
		// program unless something else reads it.
		in := append(slices.Clone(conv.in), gamma, beta, mean, variance)
		y := b.Apply(name, convBN{ConvSpec: conv.spec, relu: relu, eps: BNEps, perImage: b.perImage}, in...)
		if y != nil && !relu {
			b.folded[y] = fusedConv{conv.spec, in}
		}
		return y
	}
	st := &bnState{layer: name, train: b.train, relu: relu, eps: BNEps, momentum: BNMomentum,
		runMean: b.params.Get(name + ".running_mean").Data(), runVar: b.params.Get(name + ".running_var").Data()}
	return b.Apply(name, batchNorm{st}, x, gamma, beta)
}

// Sum adds the inputs elementwise, then ReLU when relu is set.
func (b *Builder) Sum(name string, relu bool, xs ...*G.Node) *G.Node {
	if len(xs) == 0 {
		return b.Fail(fmt.Errorf("layer %s: sum of nothing", name))
	}
	for i, x := range xs {
		conv, ok := b.folded[x]
		if !ok || len(xs) == 1 || b.failed(xs...) {
			continue
		}
		// Inference: the sum (and ReLU) becomes the epilogue of a conv + BN term.
		rest := append(slices.Clone(xs[:i]), xs[i+1:]...)
		add := rest[0]
		if len(rest) > 1 {
			add = b.Sum(name+".rest", false, rest...)
		}
		k := convBN{ConvSpec: conv.spec, relu: relu, add: true, eps: BNEps, perImage: b.perImage}
		return b.Apply(name, k, append(slices.Clone(conv.in), add)...)
	}
	return b.Apply(name, sum{len(xs), relu}, xs...)
}

// ReLU adds max(x, 0).
func (b *Builder) ReLU(name string, x *G.Node) *G.Node { return b.Apply(name, sum{1, true}, x) }

// Concat stacks the inputs' channels.
func (b *Builder) Concat(name string, xs ...*G.Node) *G.Node {
	if len(xs) == 0 {
		return b.Fail(fmt.Errorf("layer %s: concat of nothing", name))
	}
	return b.Apply(name, concat{len(xs)}, xs...)
}

// GlobalAvgPool averages every plane: N×C×H×W → N×C×1×1.
func (b *Builder) GlobalAvgPool(name string, x *G.Node) *G.Node {
	return b.Apply(name, globalAvgPool{}, x)
}

// Resize resizes bilinearly to h×w (align_corners=False, or True for a CornerAligner model);
// a no-op when x already has that size.
func (b *Builder) Resize(name string, x *G.Node, h, w int) *G.Node {
	if b.failed(x) {
		return nil
	}
	if s := x.Shape(); len(s) == 4 && s[2] == h && s[3] == w {
		return x
	}
	return b.Apply(name, resize{h, w, b.alignCorners}, x)
}

// Losses returns the extra loss terms added so far.
func (b *Builder) Losses() []*G.Node { return b.losses }

// ParamNode returns the node of a parameter already used in this graph, or nil.
func (b *Builder) ParamNode(name string) *G.Node {
	if p := b.params.Get(name); p != nil {
		return b.bound[p]
	}
	return nil
}

// AddLoss adds a scalar term to the training loss (e.g. DynOPool's GMACs loss).
func (b *Builder) AddLoss(term *G.Node) {
	if b.failed(term) {
		return
	}
	if !term.IsScalar() {
		b.Fail(fmt.Errorf("loss term %v is not a scalar", term.Shape()))
		return
	}
	b.losses = append(b.losses, term)
}
