// Package nn is the training engine: gorgonia ops backed by the kernels in internal/kernels,
// a Builder that describes a model once and turns it into a graph for a given input shape, the
// executor that runs such graphs with a static memory plan, the graph cache, parameters and the
// SGD solver.
package nn

import (
	"fmt"
	"hash"
	"hash/fnv"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Kernel is one graph operation of ours; Apply adapts it to gorgonia's Op (and SDOp when it
// is Differentiable). Ops of other packages (dynopool) are Kernels too.
type Kernel interface {
	// Describe names the operation with every parameter. It is the op's hash: gorgonia merges
	// two nodes with equal descriptions and equal inputs.
	Describe() string
	// Signature lists the input types followed by the output type.
	Signature() []hm.Type
	// Shape checks the input shapes and returns the output shape.
	Shape(in []tensor.Shape) (tensor.Shape, error)
	// Run computes the output into out (already shaped like the node) from in.
	Run(out G.Value, in []G.Value) error
}

// Differentiable kernels express their gradient as graph nodes.
type Differentiable interface {
	// WRT reports which inputs get a gradient.
	WRT() []bool
	// Grads returns one node per input (nil where WRT is false) given the output y and dL/dy.
	Grads(in G.Nodes, y, dy *G.Node) (G.Nodes, error)
}

// Stateful kernels leave state that other kernels read (the statistics a batch-norm forward
// saves for its backward) or that outlives the run (running statistics). The executor always
// runs them, with what they need, even when no requested output depends on their value.
type Stateful interface {
	Kernel
	Stateful()
}

type op struct{ k Kernel }

var (
	_ G.Op              = op{}
	_ G.SDOp            = op{}
	_ G.UsePreallocDoer = op{}
)

func (o op) Arity() int            { return len(o.k.Signature()) - 1 }
func (o op) Type() hm.Type         { return hm.NewFnType(o.k.Signature()...) }
func (o op) ReturnsPtr() bool      { return false }
func (o op) CallsExtern() bool     { return false }
func (o op) OverwritesInput() int  { return -1 }
func (o op) String() string        { return o.k.Describe() }
func (o op) WriteHash(h hash.Hash) { fmt.Fprint(h, o.k.Describe()) }

func (o op) Hashcode() uint32 {
	h := fnv.New32a()
	o.WriteHash(h)
	return h.Sum32()
}

func (o op) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	shapes := make([]tensor.Shape, len(ds))
	for i, d := range ds {
		s, ok := d.(tensor.Shape)
		if !ok {
			return nil, fmt.Errorf("%s: input %d has no static shape", o.k.Describe(), i)
		}
		shapes[i] = s
	}
	return o.k.Shape(shapes)
}

// Do allocates the output; the executor avoids it through UsePreallocDo.
func (o op) Do(in ...G.Value) (G.Value, error) {
	shapes := make([]tensor.Shape, len(in))
	for i, v := range in {
		shapes[i] = v.Shape()
	}
	s, err := o.k.Shape(shapes)
	if err != nil {
		return nil, err
	}
	out := newValue(o.k.Signature()[len(in)], s)
	return out, o.k.Run(out, in)
}

func (o op) UsePreallocDo(out G.Value, in ...G.Value) (G.Value, error) {
	return out, o.k.Run(out, in)
}

func (o op) DiffWRT(n int) []bool {
	if d, ok := o.k.(Differentiable); ok {
		return d.WRT()
	}
	return make([]bool, n)
}

func (o op) SymDiff(in G.Nodes, out, grad *G.Node) (G.Nodes, error) {
	d, ok := o.k.(Differentiable)
	if !ok {
		return nil, fmt.Errorf("%s has no gradient", o.k.Describe())
	}
	return d.Grads(in, out, grad)
}

// Apply adds a node computing k to the graph of its inputs.
func Apply(k Kernel, in ...*G.Node) (*G.Node, error) { return G.ApplyOp(op{k}, in...) }

// Types for Kernel signatures: a float32 scalar, vector and NCHW tensor, and int32 N×H×W labels.
var (
	Scalar  = tensor.Float32
	Vector  = G.TensorType{Dims: 1, Of: tensor.Float32}
	Tensor4 = G.TensorType{Dims: 4, Of: tensor.Float32}
	Labels  = G.TensorType{Dims: 3, Of: tensor.Int32}
)

// AllTrue is a WRT for n inputs that all get a gradient.
func AllTrue(n int) []bool {
	b := make([]bool, n)
	for i := range b {
		b[i] = true
	}
	return b
}

// Repeat is n copies of t, for signatures of variadic kernels.
func Repeat(t hm.Type, n int) []hm.Type {
	ts := make([]hm.Type, n)
	for i := range ts {
		ts[i] = t
	}
	return ts
}

// newValue allocates a zero value of type t (a tensor type or a scalar dtype) and shape s.
func newValue(t hm.Type, s tensor.Shape) G.Value {
	if dt, ok := t.(tensor.Dtype); ok && s.IsScalar() {
		if dt == tensor.Float32 {
			return G.NewF32(0)
		}
	}
	dt := tensor.Float32
	if tt, ok := t.(G.TensorType); ok {
		if d, ok := tt.Of.(tensor.Dtype); ok {
			dt = d
		}
	}
	return tensor.New(tensor.Of(dt), tensor.WithShape(s.Clone()...))
}

// Floats returns the float32 values of a tensor or scalar value (kernels run on these).
func Floats(v G.Value) []float32 {
	switch t := v.(type) {
	case *tensor.Dense:
		return t.Float32s()
	case *G.F32:
		return []float32{float32(*t)}
	}
	panic(fmt.Sprintf("nn: value of type %T is not a float32 tensor", v))
}

// ScalarValue reads a float32 scalar value.
func ScalarValue(v G.Value) (float32, error) {
	switch t := v.(type) {
	case *G.F32:
		return float32(*t), nil
	case *tensor.Dense:
		if t.Dtype() == tensor.Float32 && t.Shape().TotalSize() == 1 {
			return t.Float32s()[0], nil
		}
	}
	return 0, fmt.Errorf("expected a float32 scalar, got %T %v", v, v.Shape())
}

// SetScalar writes a float32 scalar value (a kernel's scalar output).
func SetScalar(v G.Value, x float32) error {
	switch t := v.(type) {
	case *G.F32:
		*t = G.F32(x)
		return nil
	case *tensor.Dense:
		if t.Dtype() == tensor.Float32 && t.Shape().TotalSize() == 1 {
			t.Float32s()[0] = x
			return nil
		}
	}
	return fmt.Errorf("expected a float32 scalar output, got %T", v)
}

func nchw(s tensor.Shape) (n, c, h, w int) { return s[0], s[1], s[2], s[3] }

func want4(what string, s tensor.Shape) error {
	if len(s) != 4 {
		return fmt.Errorf("%s must be N×C×H×W, got shape %v", what, s)
	}
	return nil
}
