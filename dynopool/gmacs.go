package dynopool

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/segkit/segkit/nn"
)

// Term is one layer downstream of a DynOPool for the complexity loss: its output size Size now,
// and its output size H0×W0 and multiply-accumulates GMACs0 (in 1e9) in the fixed-resize model
// at the training crop.
type Term struct {
	Size   Size
	H0, W0 int
	GMACs0 float64
}

// Budget shapes the complexity loss λ·f(L) with L = Σ (Hs·Ws)/(H0·W0)·GMACs0 · Scale:
// f(L) = L (the paper's form) or, with Hinge, max(0, L − Limit) (no more than Limit).
type Budget struct {
	Lambda float64
	Scale  float64 // 1 for GMACs; 1/Σ GMACs0 to express L as a fraction of the baseline
	Hinge  bool
	Limit  float64
}

// Current returns the terms' GMACs at their integer sizes.
func Current(terms []Term) float64 {
	var g float64
	for _, t := range terms {
		g += float64(t.Size.H*t.Size.W) / float64(t.H0*t.W0) * t.GMACs0
	}
	return g
}

// Loss adds λ·f(L) to the training loss (nothing when λ is 0).
func Loss(b *nn.Builder, terms []Term, budget Budget) {
	if b.Err() != nil || budget.Lambda == 0 || len(terms) == 0 {
		return
	}
	k := gmacs{budget: budget}
	var nodes G.Nodes
	index := map[*G.Node]int{}
	for _, t := range terms {
		if t.H0 < 1 || t.W0 < 1 {
			b.Fail(fmt.Errorf("GMACs term with baseline size %d×%d", t.H0, t.W0))
			return
		}
		i, ok := index[t.Size.node]
		if !ok {
			i = len(nodes)
			index[t.Size.node] = i
			nodes = append(nodes, t.Size.node)
		}
		k.terms = append(k.terms, gmacsTerm{i, t.GMACs0 / float64(t.H0*t.W0)})
	}
	b.AddLoss(b.Apply("gmacs_loss", k, nodes...))
}

type gmacsTerm struct {
	size int     // input index of its size
	w    float64 // GMACs0 / (H0·W0)
}

// gmacs: (size vectors…) → λ·f(L).
type gmacs struct {
	terms  []gmacsTerm
	budget Budget
}

func (k gmacs) Describe() string {
	return fmt.Sprintf("GMACsLoss(%v %+v)", k.terms, k.budget)
}

func (k gmacs) inputs() int {
	n := 0
	for _, t := range k.terms {
		n = max(n, t.size+1)
	}
	return n
}

func (k gmacs) Signature() []hm.Type { return append(nn.Repeat(nn.Vector, k.inputs()), nn.Scalar) }

func (k gmacs) Shape(in []tensor.Shape) (tensor.Shape, error) {
	for i, s := range in {
		if err := sizeShape(s, fmt.Sprintf("GMACs term size %d", i)); err != nil {
			return nil, err
		}
	}
	return tensor.ScalarShape(), nil
}

// value returns L (scaled) and whether the loss is active (its gradient non-zero).
func (k gmacs) value(in []G.Value) (float64, bool) {
	var l float64
	for _, t := range k.terms {
		s := nn.Floats(in[t.size])
		l += float64(s[0]) * float64(s[1]) * t.w
	}
	l *= k.budget.Scale
	if k.budget.Hinge {
		return max(0, l-k.budget.Limit), l > k.budget.Limit
	}
	return l, true
}

func (k gmacs) Run(out G.Value, in []G.Value) error {
	l, _ := k.value(in)
	return nn.SetScalar(out, float32(k.budget.Lambda*l))
}

func (k gmacs) WRT() []bool { return nn.AllTrue(k.inputs()) }

func (k gmacs) Grads(in G.Nodes, _, g *G.Node) (G.Nodes, error) {
	grads := make(G.Nodes, len(in))
	for i := range in {
		var err error
		if grads[i], err = nn.Apply(gmacsGrad{k, i}, append(append(G.Nodes{}, in...), g)...); err != nil {
			return nil, err
		}
	}
	return grads, nil
}

// gmacsGrad: (size vectors…, g) → g·∂(λ·f(L))/∂(size i).
type gmacsGrad struct {
	gmacs
	i int
}

func (k gmacsGrad) Describe() string { return fmt.Sprintf("Grad%d%s", k.i, k.gmacs.Describe()) }

func (k gmacsGrad) Signature() []hm.Type {
	return append(nn.Repeat(nn.Vector, k.inputs()), nn.Scalar, nn.Vector)
}

func (k gmacsGrad) Shape([]tensor.Shape) (tensor.Shape, error) { return tensor.Shape{2}, nil }

func (k gmacsGrad) Run(out G.Value, in []G.Value) error {
	g, err := nn.ScalarValue(in[len(in)-1])
	if err != nil {
		return err
	}
	o := nn.Floats(out)
	o[0], o[1] = 0, 0
	if _, active := k.value(in[:len(in)-1]); !active {
		return nil
	}
	c := float64(g) * k.budget.Lambda * k.budget.Scale
	for _, t := range k.terms {
		if t.size != k.i {
			continue
		}
		s := nn.Floats(in[t.size])
		o[0] += float32(c * t.w * float64(s[1]))
		o[1] += float32(c * t.w * float64(s[0]))
	}
	return nil
}
