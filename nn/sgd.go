package nn

import (
	"math"

	"github.com/segkit/segkit/internal/kernels"
)

// Group holds the optimizer settings of one parameter group.
type Group struct {
	LRMult  float64 // learning rate = LR × LRMult
	NoDecay bool    // no weight decay
}

// SGD is stochastic gradient descent with momentum and weight decay as PyTorch defines it:
// d = g + wd·w; v = μ·v + d; w -= lr·v.
type SGD struct {
	LR, Momentum, WeightDecay float64
	Groups                    map[string]Group // by Param.Group; missing groups: LRMult 1, decay on
}

// Step updates every trainable parameter that has a gradient.
func (s *SGD) Step(params *Params) {
	for _, p := range params.All() {
		if p.Buffer || p.Grad == nil {
			continue
		}
		lr, wd, mu := s.rates(p)
		w := p.Data()
		if p.Velocity == nil {
			p.Velocity = make([]float32, len(w))
		}
		kernels.Momentum(w, p.Grad, p.Velocity, lr, wd, mu)
	}
}

// rates returns p's learning rate, weight decay and momentum (shared with the device step).
func (s *SGD) rates(p *Param) (lr, wd, mu float32) {
	grp, ok := s.Groups[p.Group]
	if !ok {
		grp = Group{LRMult: 1}
	}
	lr, wd, mu = float32(s.LR*grp.LRMult), float32(s.WeightDecay), float32(s.Momentum)
	if grp.NoDecay {
		wd = 0
	}
	return lr, wd, mu
}

// PolyLR is mmsegmentation's poly schedule: (base − min)·(1 − iter/maxIter)^power + min.
func PolyLR(base, minLR float64, iter, maxIter int, power float64) float64 {
	if maxIter <= 0 || iter >= maxIter {
		return minLR
	}
	return (base-minLR)*math.Pow(1-float64(iter)/float64(maxIter), power) + minLR
}
