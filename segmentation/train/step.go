package train

import (
	"fmt"
	"math"

	"gorgonia.org/tensor"

	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/nn"
)

// Step is the training step of a run, alone: what Run executes each iteration, and what the
// bench package times.
type Step struct {
	Net   *nn.Net
	Model *hrnet.Model
	Opt   *nn.SGD // its LR is the caller's (Run sets the schedule's)
	H, W  int     // the crop, which the alphas are clamped to
}

// Train runs forward and backward on a batch and, when the loss and every gradient are
// finite, the SGD step and the alphas' clamp. Otherwise bad says what is not finite and the
// weights are left as they were.
func (s Step) Train(x, labels *tensor.Dense) (losses nn.Losses, bad string, err error) {
	if losses, err = s.Net.TrainStep(x, labels); err != nil {
		return losses, "", err
	}
	if bad = nonFinite(losses, s.Net.Params); bad == "" {
		s.Opt.Step(s.Net.Params)
		s.Model.ClampAlphas(s.Net.Params, s.H, s.W)
	}
	return losses, bad, nil
}

// nonFinite describes a NaN or infinite loss or gradient ("" if all are finite), naming the
// first parameter in forward order whose gradient is not finite: where the blow-up begins.
func nonFinite(l nn.Losses, params *nn.Params) string {
	finite := func(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }
	for _, p := range params.All() {
		for _, g := range p.Grad {
			if !finite(g) {
				return fmt.Sprintf("the loss is %v and the gradient of %s is %v (the first layer to blow up)", l.Total, p.Name, g)
			}
		}
	}
	if !finite(l.Total) {
		return fmt.Sprintf("the loss is %v", l.Total)
	}
	return ""
}
