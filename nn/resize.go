package nn

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/segkit/segkit/internal/kernels"
)

// resize: x (N×C×H×W) → bilinear resize to H'×W' (align_corners as align).
type resize struct {
	h, w  int
	align bool
}

func (k resize) Describe() string {
	return fmt.Sprintf("Bilinear(%d×%d%s)", k.h, k.w, alignNote(k.align))
}

func alignNote(align bool) string {
	if align {
		return ", align_corners"
	}
	return ""
}
func (k resize) Signature() []hm.Type { return []hm.Type{Tensor4, Tensor4} }

func (k resize) Shape(in []tensor.Shape) (tensor.Shape, error) {
	if err := want4("resize input", in[0]); err != nil {
		return nil, err
	}
	if k.h < 1 || k.w < 1 {
		return nil, fmt.Errorf("resize target %d×%d must be positive", k.h, k.w)
	}
	return tensor.Shape{in[0][0], in[0][1], k.h, k.w}, nil
}

func (k resize) Run(out G.Value, in []G.Value) error {
	n, c, h, w := nchw(in[0].Shape())
	kernels.Bilinear{Planes: n * c, H: h, W: w, OH: k.h, OW: k.w, AlignCorners: k.align}.Forward(Floats(in[0]), Floats(out))
	return nil
}

func (k resize) WRT() []bool { return []bool{true} }

func (k resize) Grads(in G.Nodes, _, dy *G.Node) (G.Nodes, error) {
	s := in[0].Shape()
	dx, err := Apply(resizeGrad{s[2], s[3], k.align}, dy)
	return G.Nodes{dx}, err
}

// resizeGrad: dy (N×C×H'×W') → dx (N×C×H×W), the adjoint of resize to H'×W'.
type resizeGrad struct {
	h, w  int
	align bool
}

func (k resizeGrad) Describe() string {
	return fmt.Sprintf("BilinearGrad(to %d×%d%s)", k.h, k.w, alignNote(k.align))
}
func (k resizeGrad) Signature() []hm.Type { return []hm.Type{Tensor4, Tensor4} }

func (k resizeGrad) Shape(in []tensor.Shape) (tensor.Shape, error) {
	if err := want4("resize gradient", in[0]); err != nil {
		return nil, err
	}
	return tensor.Shape{in[0][0], in[0][1], k.h, k.w}, nil
}

func (k resizeGrad) Run(out G.Value, in []G.Value) error {
	n, c, oh, ow := nchw(in[0].Shape())
	kernels.Bilinear{Planes: n * c, H: k.h, W: k.w, OH: oh, OW: ow, AlignCorners: k.align}.Backward(Floats(in[0]), Floats(out))
	return nil
}
