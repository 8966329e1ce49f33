package dynopool

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/segkit/segkit/internal/kernels"
	"github.com/segkit/segkit/nn"
)

// Sizes travel through graphs as float32 vectors (h, w): straight-through sizes whose values are
// integers and whose gradients reach the alphas that set them.
func sizeShape(s tensor.Shape, what string) error {
	if len(s) != 1 || s[0] != 2 {
		return fmt.Errorf("%s must be a size vector (h, w), got shape %v", what, s)
	}
	return nil
}

func sizeOf(v G.Value) [2]float64 {
	f := nn.Floats(v)
	return [2]float64{float64(f[0]), float64(f[1])}
}

// sample: (x N×C×H×W, size in, size out) → y N×C×H'×W', the DynOPool sampling op. The integer
// output size is fixed when the graph is built; the size vectors carry its straight-through value.
type sample struct {
	oh, ow int
	query  Query
	st     *sampleState
}

// sampleState keeps, in training, the winning query of every cell from the forward for the
// backward, and carries the size gradients from sampleGrad to sizeGrad.
type sampleState struct {
	train     bool
	argmax    []uint8
	dIn, dOut [2]float64
}

// winners returns the argmax buffer for an output of n values (nil when not kept).
func (s *sampleState) winners(n int, q Query) []uint8 {
	if !s.train || q != Max {
		return nil
	}
	if len(s.argmax) != n {
		s.argmax = make([]uint8, n)
	}
	return s.argmax
}

func (k sample) Describe() string {
	return fmt.Sprintf("DynOPoolSample(%d×%d %v %p)", k.oh, k.ow, k.query, k.st)
}
func (k sample) Signature() []hm.Type { return []hm.Type{nn.Tensor4, nn.Vector, nn.Vector, nn.Tensor4} }

func (k sample) Shape(in []tensor.Shape) (tensor.Shape, error) {
	if len(in[0]) != 4 {
		return nil, fmt.Errorf("DynOPool input must be N×C×H×W, got shape %v", in[0])
	}
	if err := sizeShape(in[1], "input size"); err != nil {
		return nil, err
	}
	if err := sizeShape(in[2], "output size"); err != nil {
		return nil, err
	}
	if k.oh < 1 || k.ow < 1 {
		return nil, fmt.Errorf("DynOPool output size %d×%d must be positive", k.oh, k.ow)
	}
	return tensor.Shape{in[0][0], in[0][1], k.oh, k.ow}, nil
}

func (k sample) kernel(x tensor.Shape, sin, sout G.Value) kernels.Resample {
	return kernels.Resample{Planes: x[0] * x[1], H: x[2], W: x[3], OH: k.oh, OW: k.ow,
		SizeIn: sizeOf(sin), SizeOut: sizeOf(sout), Mean: k.query == Mean, Bilinear: k.query == Centre}
}

func (k sample) Run(out G.Value, in []G.Value) error {
	y := nn.Floats(out)
	k.kernel(in[0].Shape(), in[1], in[2]).Forward(nn.Floats(in[0]), y, k.st.winners(len(y), k.query))
	return nil
}

func (k sample) WRT() []bool { return []bool{true, true, true} }

// SampleOp is what the sampling op computes in a trace (nn.Trace): its input resized to OH×OW,
// each cell read as Query says. The size vectors only carry gradients to the alphas, so a trace
// reads the tensor alone.
type SampleOp struct {
	OH, OW int
	Query  Query
}

func (k sample) Trace() (any, []bool) {
	return SampleOp{OH: k.oh, OW: k.ow, Query: k.query}, []bool{true, false, false}
}

// Stateful: the backward reads the winning queries the forward recorded.
func (sample) Stateful() {}

func (k sample) Grads(in G.Nodes, _, dy *G.Node) (G.Nodes, error) {
	dx, err := nn.Apply(sampleGrad{k}, in[0], in[1], in[2], dy)
	if err != nil {
		return nil, err
	}
	dIn, err := nn.Apply(sizeGrad{k.st, false}, dx)
	if err != nil {
		return nil, err
	}
	dOut, err := nn.Apply(sizeGrad{k.st, true}, dx)
	return G.Nodes{dx, dIn, dOut}, err
}

// sampleGrad: (x, size in, size out, dy) → dx; leaves the size gradients in the state.
type sampleGrad struct{ sample }

func (k sampleGrad) Describe() string { return "Grad" + k.sample.Describe() }
func (k sampleGrad) Signature() []hm.Type {
	return []hm.Type{nn.Tensor4, nn.Vector, nn.Vector, nn.Tensor4, nn.Tensor4}
}

func (k sampleGrad) Shape(in []tensor.Shape) (tensor.Shape, error) {
	y, err := k.sample.Shape(in[:3])
	if err != nil {
		return nil, err
	}
	if !y.Eq(in[3]) {
		return nil, fmt.Errorf("DynOPool gradient has shape %v, the output %v", in[3], y)
	}
	return in[0].Clone(), nil
}

func (k sampleGrad) Run(out G.Value, in []G.Value) error {
	r := k.kernel(in[0].Shape(), in[1], in[2])
	dy := nn.Floats(in[3])
	k.st.dIn, k.st.dOut = r.Backward(nn.Floats(in[0]), dy, nn.Floats(out), k.st.winners(len(dy), k.query))
	return nil
}

// sizeGrad: dx → ∂L/∂(size in) or ∂L/∂(size out), read from the state (dx only orders it).
type sizeGrad struct {
	st  *sampleState
	out bool
}

func (k sizeGrad) Describe() string     { return fmt.Sprintf("DynOPoolSizeGrad(out=%t %p)", k.out, k.st) }
func (k sizeGrad) Signature() []hm.Type { return []hm.Type{nn.Tensor4, nn.Vector} }

func (k sizeGrad) Shape([]tensor.Shape) (tensor.Shape, error) { return tensor.Shape{2}, nil }

func (k sizeGrad) Run(out G.Value, _ []G.Value) error {
	d := k.st.dIn
	if k.out {
		d = k.st.dOut
	}
	o := nn.Floats(out)
	o[0], o[1] = float32(d[0]), float32(d[1])
	return nil
}

// sizeScale: size → k·size, with its gradient.
type sizeScale struct{ k float32 }

func (k sizeScale) Describe() string     { return fmt.Sprintf("SizeScale(%g)", k.k) }
func (k sizeScale) Signature() []hm.Type { return []hm.Type{nn.Vector, nn.Vector} }

func (k sizeScale) Shape(in []tensor.Shape) (tensor.Shape, error) {
	return tensor.Shape{2}, sizeShape(in[0], "size")
}

func (k sizeScale) Run(out G.Value, in []G.Value) error {
	s, o := nn.Floats(in[0]), nn.Floats(out)
	o[0], o[1] = k.k*s[0], k.k*s[1]
	return nil
}

func (k sizeScale) WRT() []bool { return []bool{true} }

func (k sizeScale) Grads(_ G.Nodes, _, dy *G.Node) (G.Nodes, error) {
	d, err := nn.Apply(k, dy)
	return G.Nodes{d}, err
}

// stSize: (size in, alpha) → the straight-through output size: value the integer size fixed at
// build time, gradient that of size in / alpha. It fails when alpha has moved to another integer
// size: the graph is stale, its model must report the sizes in its GraphKey.
type stSize struct {
	pool  Pool
	value [2]int
}

func (k stSize) Describe() string {
	return fmt.Sprintf("StraightThroughSize(%s → %d×%d)", k.pool.Name, k.value[0], k.value[1])
}
func (k stSize) Signature() []hm.Type { return []hm.Type{nn.Vector, nn.Vector, nn.Vector} }

func (k stSize) Shape(in []tensor.Shape) (tensor.Shape, error) {
	if err := sizeShape(in[0], "input size"); err != nil {
		return nil, err
	}
	if err := sizeShape(in[1], "alpha"); err != nil {
		return nil, err
	}
	return tensor.Shape{2}, nil
}

func (k stSize) Run(out G.Value, in []G.Value) error {
	s, a := nn.Floats(in[0]), nn.Floats(in[1])
	if h, w := k.pool.axis(int(s[0]), a[0]), k.pool.axis(int(s[1]), a[1]); h != k.value[0] || w != k.value[1] {
		return fmt.Errorf("%s: alpha %v gives %d×%d but the graph was built for %d×%d: the model's GraphKey must include its DynOPool sizes",
			k.pool.Name, a, h, w, k.value[0], k.value[1])
	}
	o := nn.Floats(out)
	o[0], o[1] = float32(k.value[0]), float32(k.value[1])
	return nil
}

func (k stSize) WRT() []bool { return []bool{true, true} }

func (k stSize) Grads(in G.Nodes, _, dy *G.Node) (G.Nodes, error) {
	dIn, err := nn.Apply(stSizeGrad{false}, in[0], in[1], dy)
	if err != nil {
		return nil, err
	}
	dAlpha, err := nn.Apply(stSizeGrad{true}, in[0], in[1], dy)
	return G.Nodes{dIn, dAlpha}, err
}

// stSizeGrad: (size in, alpha, dL/dsize out) → dL/dsize in = g/alpha, or dL/dalpha = −g·size in/alpha².
type stSizeGrad struct{ alpha bool }

func (k stSizeGrad) Describe() string {
	return fmt.Sprintf("StraightThroughSizeGrad(alpha=%t)", k.alpha)
}
func (k stSizeGrad) Signature() []hm.Type {
	return []hm.Type{nn.Vector, nn.Vector, nn.Vector, nn.Vector}
}

func (k stSizeGrad) Shape([]tensor.Shape) (tensor.Shape, error) { return tensor.Shape{2}, nil }

func (k stSizeGrad) Run(out G.Value, in []G.Value) error {
	s, a, g, o := nn.Floats(in[0]), nn.Floats(in[1]), nn.Floats(in[2]), nn.Floats(out)
	for i := 0; i < 2; i++ {
		if k.alpha {
			o[i] = float32(-float64(g[i]) * float64(s[i]) / (float64(a[i]) * float64(a[i])))
		} else {
			o[i] = float32(float64(g[i]) / float64(a[i]))
		}
	}
	return nil
}
