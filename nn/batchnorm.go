package nn

import (
	"fmt"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/segkit/segkit/internal/kernels"
)

// BatchNorm defaults, as in PyTorch.
const (
	BNMomentum = 0.1
	BNEps      = 1e-5
)

// bnState links a batch-norm node to its running statistics (which live in the parameter
// store, so they survive graph rebuilds) and carries what the forward saves for the backward.
type bnState struct {
	layer           string
	runMean, runVar []float32
	saved           kernels.Stats
	dgamma, dbeta   []float32
	train, relu     bool
	eps, momentum   float32
	sync            *Shard // SyncBN: statistics over the ranks' whole batch (nil: this process's)
	syncScratch
}

func (s *bnState) kernel(x tensor.Shape) kernels.BatchNorm {
	n, c, h, w := nchw(x)
	return kernels.BatchNorm{N: n, C: c, HW: h * w, Eps: s.eps, ReLU: s.relu}
}

func (s *bnState) check(x, gamma, beta tensor.Shape) error {
	if err := want4("batch norm input", x); err != nil {
		return err
	}
	c := x[1]
	if len(gamma) != 1 || gamma[0] != c || len(beta) != 1 || beta[0] != c || len(s.runMean) != c {
		return fmt.Errorf("batch norm over %d channels got weight %v, bias %v, %d running statistics", c, gamma, beta, len(s.runMean))
	}
	if s.train && s.sync == nil && x[0]*x[2]*x[3] < 2 {
		return fmt.Errorf("batch norm in training mode needs more than one value per channel, got input %v", x)
	}
	return nil
}

// batchNorm: (x, γ, β) → y = BN(x), then ReLU when relu is set.
type batchNorm struct{ st *bnState }

func (k batchNorm) Describe() string {
	return fmt.Sprintf("BatchNorm(%s %p train=%t relu=%t eps=%g momentum=%g)", k.st.layer, k.st, k.st.train, k.st.relu, k.st.eps, k.st.momentum)
}
func (k batchNorm) Signature() []hm.Type { return []hm.Type{Tensor4, Vector, Vector, Tensor4} }

func (k batchNorm) Shape(in []tensor.Shape) (tensor.Shape, error) {
	if err := k.st.check(in[0], in[1], in[2]); err != nil {
		return nil, err
	}
	return in[0].Clone(), nil
}

func (k batchNorm) Run(out G.Value, in []G.Value) error {
	st := k.st
	if err := st.check(in[0].Shape(), in[1].Shape(), in[2].Shape()); err != nil {
		return err
	}
	bn := st.kernel(in[0].Shape())
	x, gamma, beta, y := Floats(in[0]), Floats(in[1]), Floats(in[2]), Floats(out)
	if len(st.saved.Mean) != bn.C {
		st.saved = kernels.Stats{Mean: make([]float32, bn.C), InvStd: make([]float32, bn.C)}
	}
	if st.train && st.sync != nil {
		return st.sync.forwardBN(st, bn, x, gamma, beta, y)
	}
	if st.train {
		bn.ForwardTrain(x, gamma, beta, y, st.saved, st.runMean, st.runVar, st.momentum)
		return nil
	}
	for c := range st.saved.Mean {
		st.saved.Mean[c] = st.runMean[c]
		st.saved.InvStd[c] = float32(1 / math.Sqrt(float64(st.runVar[c])+float64(st.eps)))
	}
	bn.ForwardEval(x, gamma, beta, y, st.runMean, st.runVar)
	return nil
}

func (k batchNorm) WRT() []bool { return AllTrue(3) }

// Stateful: the backward reads the saved statistics; training updates the running ones.
func (batchNorm) Stateful() {}

func (k batchNorm) Grads(in G.Nodes, y, dy *G.Node) (G.Nodes, error) {
	args := G.Nodes{in[0], dy, in[1]}
	if k.st.relu {
		args = G.Nodes{in[0], dy, in[1], y} // y only for the ReLU mask: without, y need not be kept
	}
	dx, err := Apply(bnBackward{k.st}, args...)
	if err != nil {
		return nil, err
	}
	dgamma, err := Apply(bnParamGrad{k.st, false}, dx)
	if err != nil {
		return nil, err
	}
	dbeta, err := Apply(bnParamGrad{k.st, true}, dx)
	return G.Nodes{dx, dgamma, dbeta}, err
}

// bnBackward: (x, dy, γ[, y when relu]) → dx; also leaves dγ and dβ in the state for
// bnParamGrad.
type bnBackward struct{ st *bnState }

func (k bnBackward) Describe() string { return fmt.Sprintf("BatchNormGrad(%s %p)", k.st.layer, k.st) }

func (k bnBackward) Signature() []hm.Type {
	if k.st.relu {
		return []hm.Type{Tensor4, Tensor4, Vector, Tensor4, Tensor4}
	}
	return []hm.Type{Tensor4, Tensor4, Vector, Tensor4}
}

func (k bnBackward) Shape(in []tensor.Shape) (tensor.Shape, error) {
	if !in[0].Eq(in[1]) || (k.st.relu && !in[0].Eq(in[3])) {
		return nil, fmt.Errorf("batch norm gradient: x %v, dy %v, y %v differ", in[0], in[1], in[len(in)-1])
	}
	return in[0].Clone(), nil
}

func (k bnBackward) Run(out G.Value, in []G.Value) error {
	st := k.st
	bn := st.kernel(in[0].Shape())
	if len(st.dgamma) != bn.C {
		st.dgamma, st.dbeta = make([]float32, bn.C), make([]float32, bn.C)
	}
	var y []float32
	if st.relu {
		y = Floats(in[3])
	}
	if st.train && st.sync != nil {
		return st.sync.backwardBN(st, bn, Floats(in[0]), y, Floats(in[1]), Floats(in[2]), Floats(out))
	}
	bn.Backward(Floats(in[0]), y, Floats(in[1]), Floats(in[2]), st.saved, st.train, Floats(out), st.dgamma, st.dbeta)
	return nil
}

// bnParamGrad: dx → dγ or dβ, read from the state bnBackward filled (dx only orders the two).
type bnParamGrad struct {
	st   *bnState
	beta bool
}

func (k bnParamGrad) Describe() string {
	return fmt.Sprintf("BatchNormParamGrad(%s %p beta=%t)", k.st.layer, k.st, k.beta)
}
func (k bnParamGrad) Signature() []hm.Type { return []hm.Type{Tensor4, Vector} }

func (k bnParamGrad) Shape(in []tensor.Shape) (tensor.Shape, error) {
	return tensor.Shape{len(k.st.runMean)}, nil
}

func (k bnParamGrad) Run(out G.Value, _ []G.Value) error {
	src := k.st.dgamma
	if k.beta {
		src = k.st.dbeta
	}
	copy(Floats(out), src)
	return nil
}
