package nn

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/segkit/segkit/internal/kernels"
)

// IgnoreIndex marks label pixels that take no part in the loss or the metrics (VOC's borders).
const IgnoreIndex = 255

func ceKernel(logits, labels tensor.Shape) (kernels.CrossEntropy, error) {
	if err := want4("cross-entropy logits", logits); err != nil {
		return kernels.CrossEntropy{}, err
	}
	n, c, h, w := nchw(logits)
	if len(labels) != 3 || labels[0] != n || labels[1] != h || labels[2] != w {
		return kernels.CrossEntropy{}, fmt.Errorf("cross-entropy labels have shape %v, want (%d, %d, %d) for logits %v", labels, n, h, w, logits)
	}
	return kernels.CrossEntropy{N: n, C: c, HW: h * w, Ignore: IgnoreIndex}, nil
}

// crossEntropy: (logits N×C×H×W, labels N×H×W int32) → mean softmax cross-entropy over the
// pixels not labelled IgnoreIndex; with shard (one rank of a data-parallel job), this rank's sum
// divided by the labelled pixels of the whole batch.
type crossEntropy struct{ shard *ceShard }

// ceShard is the data-parallel cross-entropy's state: the whole batch's count, set before each
// run, and this rank's summed loss, for the step to sum over the ranks.
type ceShard struct {
	denom int
	sum   float64
}

func (k crossEntropy) Describe() string {
	if k.shard != nil {
		return fmt.Sprintf("CrossEntropy(ignore=255 shard=%p)", k.shard)
	}
	return "CrossEntropy(ignore=255)"
}
func (crossEntropy) Signature() []hm.Type { return []hm.Type{Tensor4, Labels, Scalar} }

func (crossEntropy) Shape(in []tensor.Shape) (tensor.Shape, error) {
	if _, err := ceKernel(in[0], in[1]); err != nil {
		return nil, err
	}
	return tensor.ScalarShape(), nil
}

func (k crossEntropy) Run(out G.Value, in []G.Value) error {
	ce, err := ceKernel(in[0].Shape(), in[1].Shape())
	if err != nil {
		return err
	}
	if sh := k.shard; sh != nil {
		sum, _, err := ce.ForwardSum(Floats(in[0]), in[1].Data().([]int32), sh.denom, 1, nil)
		if err != nil {
			return err
		}
		sh.sum = sum
		return SetScalar(out, float32(sum/float64(max(sh.denom, 1))))
	}
	loss, _, err := ce.Forward(Floats(in[0]), in[1].Data().([]int32), 1, nil)
	if err != nil {
		return err
	}
	return SetScalar(out, loss)
}

func (crossEntropy) WRT() []bool { return []bool{true, false} }

func (k crossEntropy) Grads(in G.Nodes, _, g *G.Node) (G.Nodes, error) {
	d, err := Apply(crossEntropyGrad{k.shard}, in[0], in[1], g)
	return G.Nodes{d, nil}, err
}

// crossEntropyGrad: (logits, labels, g) → g·∂loss/∂logits.
type crossEntropyGrad struct{ shard *ceShard }

func (k crossEntropyGrad) Describe() string {
	if k.shard != nil {
		return fmt.Sprintf("CrossEntropyGrad(ignore=255 shard=%p)", k.shard)
	}
	return "CrossEntropyGrad(ignore=255)"
}
func (crossEntropyGrad) Signature() []hm.Type { return []hm.Type{Tensor4, Labels, Scalar, Tensor4} }

func (crossEntropyGrad) Shape(in []tensor.Shape) (tensor.Shape, error) {
	if _, err := ceKernel(in[0], in[1]); err != nil {
		return nil, err
	}
	return in[0].Clone(), nil
}

func (k crossEntropyGrad) Run(out G.Value, in []G.Value) error {
	ce, err := ceKernel(in[0].Shape(), in[1].Shape())
	if err != nil {
		return err
	}
	g, err := ScalarValue(in[2])
	if err != nil {
		return err
	}
	if k.shard != nil {
		_, _, err = ce.ForwardSum(Floats(in[0]), in[1].Data().([]int32), k.shard.denom, g, Floats(out))
		return err
	}
	_, _, err = ce.Forward(Floats(in[0]), in[1].Data().([]int32), g, Floats(out))
	return err
}

// Argmax returns, for N×C×H×W scores, the N×H×W class indices of the highest score.
func Argmax(scores *tensor.Dense) (*tensor.Dense, error) {
	s := scores.Shape()
	if err := want4("argmax input", s); err != nil {
		return nil, err
	}
	if scores.Dtype() != tensor.Float32 {
		return nil, fmt.Errorf("argmax input must be float32, got %v", scores.Dtype())
	}
	n, c, h, w := nchw(s)
	out := make([]int32, n*h*w)
	kernels.Argmax(scores.Float32s(), n, c, h*w, out)
	return tensor.New(tensor.WithShape(n, h, w), tensor.WithBacking(out)), nil
}
