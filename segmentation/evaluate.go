package segmentation

import (
	"fmt"

	"gorgonia.org/tensor"

	"github.com/segkit/segkit/internal/kernels"
	"github.com/segkit/segkit/metrics"
	"github.com/segkit/segkit/nn"
	"github.com/segkit/segkit/voc"
)

// Predict segments one sample as evaluation does: the test transform (rescale to fit, normalise),
// the network in inference mode, logits resized bilinearly to the sample's own size, argmax.
func Predict(net *nn.Net, aug voc.Augment, s voc.Sample) ([]uint8, error) {
	ex := aug.Test(s)
	x := tensor.New(tensor.WithShape(1, 3, ex.H, ex.W), tensor.WithBacking(ex.Image))
	logits, err := net.Predict(x)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.ID, err)
	}
	shape := logits.Shape()
	c, h, w := shape[1], shape[2], shape[3]
	full := make([]float32, c*s.Image.H*s.Image.W)
	kernels.Bilinear{Planes: c, H: h, W: w, OH: s.Image.H, OW: s.Image.W}.Forward(logits.Float32s(), full)
	idx := make([]int32, s.Image.H*s.Image.W)
	kernels.Argmax(full, 1, c, s.Image.H*s.Image.W, idx)
	out := make([]uint8, len(idx))
	for i, v := range idx {
		out[i] = uint8(v)
	}
	return out, nil
}

// Evaluate predicts every sample of data and returns the confusion matrix over all of them.
// Memory does not grow with the number of images.
func Evaluate(net *nn.Net, aug voc.Augment, data voc.Dataset) (*metrics.Confusion, error) {
	conf := metrics.NewConfusion(len(data.Classes()), voc.Ignore)
	for i := 0; i < data.Len(); i++ {
		s, err := data.Load(i)
		if err != nil {
			return nil, err
		}
		pred, err := Predict(net, aug, s)
		if err != nil {
			return nil, err
		}
		if err := conf.Add(s.Mask.Labels, pred); err != nil {
			return nil, fmt.Errorf("%s: %w", s.ID, err)
		}
	}
	return conf, nil
}
