package nn

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/segkit/segkit/internal/kernels"
)

// ConvSpec describes a square 2-D convolution.
type ConvSpec struct {
	Kernel, Stride, Pad, Dilation int
	Bias                          bool
}

func (s ConvSpec) String() string {
	return fmt.Sprintf("k%d s%d p%d d%d bias=%t", s.Kernel, s.Stride, s.Pad, s.Dilation, s.Bias)
}

// geometry checks x (N×C×H×W) against w (K×C×k×k) and returns the kernel description.
func (s ConvSpec) geometry(x, w tensor.Shape) (kernels.Conv, error) {
	if err := want4("conv input", x); err != nil {
		return kernels.Conv{}, err
	}
	if err := want4("conv weight", w); err != nil {
		return kernels.Conv{}, err
	}
	n, c, h, wd := nchw(x)
	if w[1] != c || w[2] != s.Kernel || w[3] != s.Kernel {
		return kernels.Conv{}, fmt.Errorf("conv weight %v does not fit input %v with kernel %d", w, x, s.Kernel)
	}
	g := kernels.Conv{N: n, C: c, H: h, W: wd, K: w[0], Kernel: s.Kernel, Stride: s.Stride, Pad: s.Pad, Dilation: s.Dilation}
	return g, g.Validate()
}

// conv2d: (x, w[, bias]) → y. Inference graphs set winograd: faster 3×3 convolutions whose
// rounding differs slightly from the direct sum (gradients are always exact).
type conv2d struct {
	ConvSpec
	winograd bool
	perImage bool // Net.PerImage
}

func (k conv2d) Describe() string {
	return fmt.Sprintf("Conv2d(%v winograd=%t)", k.ConvSpec, k.winograd)
}

func (k conv2d) Signature() []hm.Type {
	if k.Bias {
		return []hm.Type{Tensor4, Tensor4, Vector, Tensor4}
	}
	return []hm.Type{Tensor4, Tensor4, Tensor4}
}

func (k conv2d) Shape(in []tensor.Shape) (tensor.Shape, error) {
	g, err := k.geometry(in[0], in[1])
	if err != nil {
		return nil, err
	}
	if k.Bias && (len(in[2]) != 1 || in[2][0] != g.K) {
		return nil, fmt.Errorf("conv bias shape %v, want (%d)", in[2], g.K)
	}
	oh, ow := g.OutSize()
	return tensor.Shape{g.N, g.K, oh, ow}, nil
}

func (k conv2d) Run(out G.Value, in []G.Value) error {
	g, err := k.geometry(in[0].Shape(), in[1].Shape())
	if err != nil {
		return err
	}
	g.Winograd, g.PerImage = k.winograd, k.perImage
	var bias []float32
	if k.Bias {
		bias = Floats(in[2])
	}
	g.Forward(Floats(in[0]), Floats(in[1]), bias, Floats(out))
	return nil
}

func (k conv2d) WRT() []bool { return AllTrue(len(k.Signature()) - 1) }

func (k conv2d) Grads(in G.Nodes, _, dy *G.Node) (G.Nodes, error) {
	dx, err := Apply(convData{k.ConvSpec, in[0].Shape()}, in[1], dy)
	if err != nil {
		return nil, err
	}
	dw, err := Apply(convFilter{k.ConvSpec, in[1].Shape()}, in[0], dy)
	if err != nil {
		return nil, err
	}
	if !k.Bias {
		return G.Nodes{dx, dw}, nil
	}
	db, err := Apply(planeSum{}, dy)
	return G.Nodes{dx, dw, db}, err
}

// convBN: (x, w[, bias], γ, β, running mean, running var[, add]) → BN(conv(x, w) + bias) + add,
// then ReLU when relu is set: an inference graph's convolution, the batch norm after it and a
// residual sum as one kernel, applied as the convolution's epilogue (no gradient).
type convBN struct {
	ConvSpec
	relu, add bool
	eps       float32
	perImage  bool // Net.PerImage
}

func (k convBN) Describe() string {
	return fmt.Sprintf("Conv2dBatchNorm(%v relu=%t add=%t eps=%g)", k.ConvSpec, k.relu, k.add, k.eps)
}

func (k convBN) Signature() []hm.Type {
	t := []hm.Type{Tensor4, Tensor4}
	if k.Bias {
		t = append(t, Vector)
	}
	t = append(t, Vector, Vector, Vector, Vector)
	if k.add {
		t = append(t, Tensor4)
	}
	return append(t, Tensor4)
}

func (k convBN) Shape(in []tensor.Shape) (tensor.Shape, error) {
	g, err := k.geometry(in[0], in[1])
	if err != nil {
		return nil, err
	}
	oh, ow := g.OutSize()
	out := tensor.Shape{g.N, g.K, oh, ow}
	vectors := in[2:]
	if k.add {
		vectors = in[2 : len(in)-1]
		if a := in[len(in)-1]; !a.Eq(out) {
			return nil, fmt.Errorf("sum of a %v convolution and a %v tensor", out, a)
		}
	}
	for _, s := range vectors {
		if len(s) != 1 || s[0] != g.K {
			return nil, fmt.Errorf("%d-channel conv + batch norm got a parameter of shape %v", g.K, s)
		}
	}
	return out, nil
}

func (k convBN) Run(out G.Value, in []G.Value) error {
	g, err := k.geometry(in[0].Shape(), in[1].Shape())
	if err != nil {
		return err
	}
	g.Winograd, g.PerImage = true, k.perImage
	var bias []float32
	rest := in[2:]
	if k.Bias {
		bias, rest = Floats(rest[0]), rest[1:]
	}
	bn := kernels.BatchNorm{C: g.K, Eps: k.eps, ReLU: k.relu}
	ep := bn.EvalAffine(Floats(rest[0]), Floats(rest[1]), Floats(rest[2]), Floats(rest[3]))
	for c, b := range bias {
		ep.Shift[c] += b * ep.Scale[c]
	}
	if k.add {
		ep.Add = Floats(rest[4])
	}
	g.ForwardAffine(Floats(in[0]), Floats(in[1]), ep, Floats(out))
	return nil
}

// convData: (w, dy) → dx, for an input of shape x.
type convData struct {
	ConvSpec
	x tensor.Shape
}

func (k convData) Describe() string {
	return fmt.Sprintf("Conv2dGradInput(%v, x%v)", k.ConvSpec, k.x)
}
func (k convData) Signature() []hm.Type { return []hm.Type{Tensor4, Tensor4, Tensor4} }

func (k convData) Shape(in []tensor.Shape) (tensor.Shape, error) {
	if _, err := k.geometry(k.x, in[0]); err != nil {
		return nil, err
	}
	return k.x.Clone(), nil
}

func (k convData) Run(out G.Value, in []G.Value) error {
	g, err := k.geometry(k.x, in[0].Shape())
	if err != nil {
		return err
	}
	g.BackwardData(Floats(in[0]), Floats(in[1]), Floats(out))
	return nil
}

// convFilter: (x, dy) → dw, for a weight of shape w.
type convFilter struct {
	ConvSpec
	w tensor.Shape
}

func (k convFilter) Describe() string {
	return fmt.Sprintf("Conv2dGradWeight(%v, w%v)", k.ConvSpec, k.w)
}
func (k convFilter) Signature() []hm.Type { return []hm.Type{Tensor4, Tensor4, Tensor4} }

func (k convFilter) Shape(in []tensor.Shape) (tensor.Shape, error) {
	if _, err := k.geometry(in[0], k.w); err != nil {
		return nil, err
	}
	return k.w.Clone(), nil
}

func (k convFilter) Run(out G.Value, in []G.Value) error {
	g, err := k.geometry(in[0].Shape(), k.w)
	if err != nil {
		return err
	}
	g.BackwardFilter(Floats(in[0]), Floats(in[1]), Floats(out), nil)
	return nil
}

// planeSum: N×C×H×W → C, the sum over everything but the channel (a bias gradient).
type planeSum struct{}

func (planeSum) Describe() string     { return "PlaneSum" }
func (planeSum) Signature() []hm.Type { return []hm.Type{Tensor4, Vector} }

func (planeSum) Shape(in []tensor.Shape) (tensor.Shape, error) {
	if err := want4("plane sum input", in[0]); err != nil {
		return nil, err
	}
	return tensor.Shape{in[0][1]}, nil
}

func (planeSum) Run(out G.Value, in []G.Value) error {
	n, c, h, w := nchw(in[0].Shape())
	kernels.SumPlanes(Floats(in[0]), n, c, h*w, Floats(out))
	return nil
}
