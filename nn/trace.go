package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Trace is a model's inference graph for one input shape as the computations it does, in an
// order where every layer follows its inputs: what a translator to another format (package
// export writes ONNX) reads. It is the graph the engine runs (batch norms and residual sums
// folded into convolutions), so a translation of it computes what segkit computes.
type Trace struct {
	Input  []int   // N×C×H×W
	Layers []Layer // every layer after its inputs
	Output int     // the layer giving the logits
}

// Layer is one computation of a Trace.
type Layer struct {
	Name  string // the layer name given to the builder ("stage2.0.fuse.1")
	Op    any    // ConvOp, SumOp, ConcatOp, ResizeOp, or another package's op (dynopool.SampleOp)
	In    []Ref  // the inputs the computation reads, in the op's order
	Shape []int  // the output's
}

// Ref is an input of a layer: the graph input (Layer −1, no Param), an earlier layer's output
// (Layer ≥ 0), or a parameter (Param set).
type Ref struct {
	Layer int
	Param *Param
}

// Traceable kernels say what they compute in an inference graph: op, an exported description
// (values fixed when the graph was built, such as DynOPool's sizes, are part of it), and which
// inputs it reads (uses[i] false: input i only carries a build-time value or a gradient path).
type Traceable interface {
	Trace() (op any, uses []bool)
}

// ConvOp is a convolution: inputs x, weight (K×C×k×k) and, with Spec.Bias, bias. In an
// inference graph a batch norm may follow, folded in (BN: inputs γ, β, running mean and running
// variance follow, with Eps), then a residual sum (Add: the tensor added is the last input),
// then ReLU.
type ConvOp struct {
	Spec      ConvSpec
	BN        bool
	Eps       float32
	Add, ReLU bool
}

// SumOp adds its inputs, then applies ReLU when ReLU is set.
type SumOp struct{ ReLU bool }

// ConcatOp stacks its inputs' channels (axis 1).
type ConcatOp struct{}

// ResizeOp resizes bilinearly to H×W: half-pixel centres (PyTorch's align_corners=False), or
// corners onto corners with AlignCorners.
type ResizeOp struct {
	H, W         int
	AlignCorners bool
}

func (k conv2d) Trace() (any, []bool) {
	return ConvOp{Spec: k.ConvSpec}, AllTrue(len(k.Signature()) - 1)
}

func (k convBN) Trace() (any, []bool) {
	return ConvOp{Spec: k.ConvSpec, BN: true, Eps: k.eps, Add: k.add, ReLU: k.relu}, AllTrue(len(k.Signature()) - 1)
}

func (k sum) Trace() (any, []bool)    { return SumOp{ReLU: k.relu}, AllTrue(k.n) }
func (k concat) Trace() (any, []bool) { return ConcatOp{}, AllTrue(k.n) }
func (k resize) Trace() (any, []bool) {
	return ResizeOp{H: k.h, W: k.w, AlignCorners: k.align}, []bool{true}
}

// Trace builds the model's inference graph for input shape x (N×C×H×W) with the current
// parameters and returns what it computes. A layer whose kernel is not Traceable is an error
// naming it.
func (n *Net) Trace(x tensor.Shape) (*Trace, error) {
	b, input, logits, err := forward(n.Model, n.Params, Inference, x, n.PerImage)
	if err != nil {
		return nil, err
	}
	params := make(map[*G.Node]*Param, len(b.bound))
	for p, node := range b.bound {
		params[node] = p
	}
	t := &Trace{Input: append([]int(nil), x...)}
	index := map[*G.Node]int{}
	var visit func(node *G.Node) (Ref, error)
	visit = func(node *G.Node) (Ref, error) {
		if node == input {
			return Ref{Layer: -1}, nil
		}
		if p, ok := params[node]; ok {
			return Ref{Param: p}, nil
		}
		if i, ok := index[node]; ok {
			return Ref{Layer: i}, nil
		}
		name := b.names[node]
		if name == "" {
			name = node.Name()
		}
		o, ok := node.Op().(op)
		if !ok {
			return Ref{}, fmt.Errorf("layer %s: %v is not an operation of the engine", name, node.Op())
		}
		tk, ok := o.k.(Traceable)
		if !ok {
			return Ref{}, fmt.Errorf("layer %s: %s cannot be traced", name, o.k.Describe())
		}
		desc, uses := tk.Trace()
		var children []*G.Node
		for it := b.g.From(node.ID()); it.Next(); {
			children = append(children, it.Node().(*G.Node))
		}
		if len(uses) != len(children) {
			return Ref{}, fmt.Errorf("layer %s: %s traces %d inputs of %d", name, o.k.Describe(), len(uses), len(children))
		}
		l := Layer{Name: name, Op: desc, Shape: append([]int(nil), node.Shape()...)}
		for i, c := range children {
			if !uses[i] {
				continue
			}
			r, err := visit(c)
			if err != nil {
				return Ref{}, err
			}
			l.In = append(l.In, r)
		}
		index[node] = len(t.Layers)
		t.Layers = append(t.Layers, l)
		return Ref{Layer: index[node]}, nil
	}
	out, err := visit(logits)
	if err != nil {
		return nil, err
	}
	if out.Layer < 0 || out.Param != nil {
		return nil, fmt.Errorf("the model's logits are its input or a parameter: nothing to trace")
	}
	t.Output = out.Layer
	return t, nil
}
