package dynopool

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"

	"github.com/segkit/segkit/nn"
)

// Group is the optimizer parameter group of the alphas: their own learning rate, no decay.
const Group = "alpha"

// Size is a straight-through size in a graph: its integer value and the node carrying it.
type Size struct {
	H, W int
	node *G.Node
}

// InputSize is the size of a graph input: a constant, it passes no gradient.
func InputSize(b *nn.Builder, h, w int) Size {
	n := b.Const(fmt.Sprintf("size %d×%d", h, w), []int{2}, []float32{float32(h), float32(w)})
	return Size{H: h, W: w, node: n}
}

// Pool is one DynOPool module: a learned alpha = (alpha_h, alpha_w), the inverse scale factor
// per axis, stored as the parameter Name+".alpha" in Group.
type Pool struct {
	Name       string
	Init       float32 // initial alpha: the stride of the op replaced
	MinOut     int     // smallest output size per axis (at least 1)
	CapAtInput bool    // output no larger than the input (alpha ≥ 1): no up-sampling
}

func (p Pool) param() string { return p.Name + ".alpha" }

// Alpha returns the current alpha (the initial one before the parameter exists).
func (p Pool) Alpha(params *nn.Params) [2]float32 {
	if a := params.Get(p.param()); a != nil {
		d := a.Data()
		return [2]float32{d[0], d[1]}
	}
	return [2]float32{p.Init, p.Init}
}

// OutSize returns the integer output size for an input of h×w: round(h/alpha_h) (half to
// even) clamped to [MinOut, h when CapAtInput], and likewise for w.
func (p Pool) OutSize(params *nn.Params, h, w int) (int, int) {
	a := p.Alpha(params)
	return p.axis(h, a[0]), p.axis(w, a[1])
}

func (p Pool) axis(n int, alpha float32) int {
	// float32 division, as the reference computes size_in / alpha.
	s := int(math.RoundToEven(float64(float32(n) / alpha)))
	s = max(s, p.MinOut, 1)
	if p.CapAtInput {
		s = min(s, n)
	}
	return s
}

// Out adds the straight-through output size for input size in.
func (p Pool) Out(b *nn.Builder, in Size) Size {
	alpha := b.Param(p.param(), []int{2}, Group, nn.Constant(p.Init))
	h, w := p.axis(in.H, p.Alpha(b.Params())[0]), p.axis(in.W, p.Alpha(b.Params())[1])
	n := b.Apply(p.Name, stSize{p, [2]int{h, w}}, in.node, alpha)
	return Size{H: h, W: w, node: n}
}

// Clamp keeps alpha where the output size for an h×w input stays in range: alpha ≤ n/MinOut and,
// with CapAtInput, alpha ≥ 1. Call it after every optimizer step.
func (p Pool) Clamp(params *nn.Params, h, w int) {
	a := params.Get(p.param())
	if a == nil {
		return
	}
	d := a.Data()
	for i, n := range []int{h, w} {
		if p.CapAtInput {
			d[i] = max(d[i], 1)
		}
		d[i] = min(d[i], float32(n)/float32(max(p.MinOut, 1)))
	}
}

// Query is how the sampling op reads each output cell.
type Query uint8

const (
	// Max is the paper's: the max of four bilinear queries at the centres of the cell's 2×2 sub-cells.
	Max Query = iota
	// Mean is the mean of those four queries.
	Mean
	// Centre is one bilinear query at the cell's centre: a bilinear resize (half-pixel, as
	// PyTorch's align_corners=False) to the learned size, the identity at equal sizes.
	Centre
)

var queryNames = [...]string{"max", "mean", "centre"}

func (q Query) String() string {
	if int(q) < len(queryNames) {
		return queryNames[q]
	}
	return fmt.Sprintf("Query(%d)", q)
}

// ParseQuery reads a Query by its name ("max", "mean", "centre").
func ParseQuery(name string) (Query, error) {
	for i, n := range queryNames {
		if n == name {
			return Query(i), nil
		}
	}
	return 0, fmt.Errorf("unknown DynOPool query %q (have max, mean, centre)", name)
}

// Double is the size twice as large on both axes: the input size of a stride-2 convolution
// whose output is to be s.
func (s Size) Double(b *nn.Builder, name string) Size {
	return Size{H: 2 * s.H, W: 2 * s.W, node: b.Apply(name, sizeScale{2}, s.node)}
}

// Resample resizes x, whose size is from, to size to with the DynOPool sampling op, each cell
// read as q says. Gradients reach the alphas behind both sizes.
func Resample(b *nn.Builder, name string, x *G.Node, from, to Size, q Query) *G.Node {
	if b.Err() != nil {
		return nil
	}
	if x == nil || x.Dims() != 4 {
		return b.Fail(fmt.Errorf("layer %s: DynOPool input must be N×C×H×W", name))
	}
	if s := x.Shape(); s[2] != from.H || s[3] != from.W {
		return b.Fail(fmt.Errorf("layer %s: input %v is not of its size %d×%d", name, s, from.H, from.W))
	}
	if q > Centre {
		return b.Fail(fmt.Errorf("layer %s: %v", name, q))
	}
	return b.Apply(name, sample{oh: to.H, ow: to.W, query: q, st: &sampleState{train: b.Train()}}, x, from.node, to.node)
}
