package hrnet

import (
	"fmt"

	G "gorgonia.org/gorgonia"

	"github.com/segkit/segkit/nn"
)

// Model is HRNetV2 with the concat head: logits at 1/4 of the input resolution. Parameter
// names follow the official state_dict (conv1, bn1, layer1.0.conv1, transition1.1.0.0,
// stage2.0.fuse_layers.1.0.0.0, last_layer.3, ...), so official weights load by name.
type Model struct {
	Config
	Classes int
}

// New returns the named config with classes output classes.
func New(config string, classes int) (*Model, error) {
	c, err := Lookup(config)
	if err != nil {
		return nil, err
	}
	if classes < 1 {
		return nil, fmt.Errorf("HRNet needs at least one class, got %d", classes)
	}
	return &Model{Config: c, Classes: classes}, nil
}

// official initialisation: conv weights N(0, 0.001); BN weight 1, bias 0 (the Builder's).
var weightInit = nn.Normal(0.001)

func conv(b *nn.Builder, name string, x *G.Node, out, kernel, stride int) *G.Node {
	return b.ConvInit(name, x, out, nn.ConvSpec{Kernel: kernel, Stride: stride, Pad: kernel / 2}, weightInit)
}

// convBN is conv → BN (→ ReLU); the BN is named bnName.
func convBN(b *nn.Builder, convName, bnName string, x *G.Node, out, kernel, stride int, relu bool) *G.Node {
	return b.BatchNorm(bnName, conv(b, convName, x, out, kernel, stride), relu)
}

func (m *Model) Forward(b *nn.Builder, x *G.Node) *G.Node {
	x = convBN(b, "conv1", "bn1", x, 64, 3, 2, true)
	x = convBN(b, "conv2", "bn2", x, 64, 3, 2, true)
	in := 64
	for i := 0; i < m.Stage1Blocks; i++ {
		x = bottleneck(b, fmt.Sprintf("layer1.%d", i), x, in, m.Planes)
		in = 4 * m.Planes
	}
	xs := []*G.Node{x}
	prev := []int{in}
	for k, st := range m.Stages {
		xs = transition(b, fmt.Sprintf("transition%d", k+1), xs, prev, st.Channels)
		for mod := 0; mod < st.Modules; mod++ {
			xs = module(b, fmt.Sprintf("stage%d.%d", k+2, mod), xs, st)
		}
		prev = st.Channels
	}
	h, w := b.HW(xs[0])
	cat := []*G.Node{xs[0]}
	for j := 1; j < len(xs); j++ {
		cat = append(cat, b.Resize(fmt.Sprintf("head.upsample%d", j), xs[j], h, w))
	}
	y := b.Concat("head.concat", cat...)
	c := 0
	for _, ch := range prev {
		c += ch
	}
	y = b.BatchNorm("last_layer.1", b.ConvInit("last_layer.0", y, c, nn.ConvSpec{Kernel: 1, Bias: true}, weightInit), true)
	return b.ConvInit("last_layer.3", y, m.Classes, nn.ConvSpec{Kernel: 1, Bias: true}, weightInit)
}

// bottleneck: 1×1, 3×3, 1×1 (4× expansion), projection shortcut when the width changes.
func bottleneck(b *nn.Builder, name string, x *G.Node, in, planes int) *G.Node {
	y := convBN(b, name+".conv1", name+".bn1", x, planes, 1, 1, true)
	y = convBN(b, name+".conv2", name+".bn2", y, planes, 3, 1, true)
	y = convBN(b, name+".conv3", name+".bn3", y, 4*planes, 1, 1, false)
	short := x
	if in != 4*planes {
		short = convBN(b, name+".downsample.0", name+".downsample.1", x, 4*planes, 1, 1, false)
	}
	return b.Sum(name+".add", true, y, short)
}

// basicBlock: 3×3 BN ReLU 3×3 BN, residual add, ReLU.
func basicBlock(b *nn.Builder, name string, x *G.Node, c int) *G.Node {
	y := convBN(b, name+".conv1", name+".bn1", x, c, 3, 1, true)
	y = convBN(b, name+".conv2", name+".bn2", y, c, 3, 1, false)
	return b.Sum(name+".add", true, y, x)
}

// transition adapts the branches of one stage to the next: a 3×3 conv where a branch's width
// changes, and a new lowest-resolution branch by a stride-2 3×3 conv of the previous lowest.
func transition(b *nn.Builder, name string, xs []*G.Node, prev, cur []int) []*G.Node {
	out := make([]*G.Node, len(cur))
	for i, c := range cur {
		switch {
		case i < len(prev) && c == prev[i]:
			out[i] = xs[i]
		case i < len(prev):
			out[i] = convBN(b, fmt.Sprintf("%s.%d.0", name, i), fmt.Sprintf("%s.%d.1", name, i), xs[i], c, 3, 1, true)
		default:
			out[i] = convBN(b, fmt.Sprintf("%s.%d.0.0", name, i), fmt.Sprintf("%s.%d.0.1", name, i), xs[len(xs)-1], c, 3, 2, true)
		}
	}
	return out
}

// module runs every branch's blocks, then fuses: output i = ReLU(Σ_j f_ij(x_j)) with f_ii the
// identity, f_ij (j > i) a 1×1 conv + BN then bilinear up-sampling to branch i's size, and f_ij
// (j < i) a chain of i−j stride-2 3×3 convs + BN (ReLU between them).
func module(b *nn.Builder, name string, xs []*G.Node, st Stage) []*G.Node {
	ys := make([]*G.Node, len(xs))
	for i, x := range xs {
		for k := 0; k < st.Blocks; k++ {
			x = basicBlock(b, fmt.Sprintf("%s.branches.%d.%d", name, i, k), x, st.Channels[i])
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
				y = convBN(b, path+".0", path+".1", y, st.Channels[i], 1, 1, false)
				h, w := b.HW(ys[i])
				y = b.Resize(path+".upsample", y, h, w)
			default:
				for k := 0; k < i-j; k++ {
					last := k == i-j-1
					c := st.Channels[j]
					if last {
						c = st.Channels[i]
					}
					y = convBN(b, fmt.Sprintf("%s.%d.0", path, k), fmt.Sprintf("%s.%d.1", path, k), y, c, 3, 2, !last)
				}
			}
			terms = append(terms, y)
		}
		out[i] = b.Sum(fmt.Sprintf("%s.fuse.%d", name, i), true, terms...)
	}
	return out
}
