package kernels

import "math"

// BatchNorm normalises an N×C×HW tensor per channel, optionally followed by ReLU.
type BatchNorm struct {
	N, C, HW int
	Eps      float32
	ReLU     bool
}

// Stats are the per-channel statistics a training-mode forward saves for its backward.
type Stats struct{ Mean, InvStd []float32 }

// ForwardTrain normalises with the batch statistics, saves them in st and updates the running
// statistics as PyTorch does: running = (1-momentum)·running + momentum·batch, where the running
// variance takes the unbiased batch variance.
func (b BatchNorm) ForwardTrain(x, gamma, beta, y []float32, st Stats, runMean, runVar []float32, momentum float32) {
	m := b.N * b.HW
	parallelFor(b.C, m, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			var sum float64
			b.eachPlane(c, func(off int) {
				for _, v := range x[off : off+b.HW] {
					sum += float64(v)
				}
			})
			mean := sum / float64(m)
			var ss float64
			b.eachPlane(c, func(off int) {
				for _, v := range x[off : off+b.HW] {
					d := float64(v) - mean
					ss += d * d
				}
			})
			variance := ss / float64(m)
			invStd := 1 / math.Sqrt(variance+float64(b.Eps))
			st.Mean[c], st.InvStd[c] = float32(mean), float32(invStd)
			unbiased := variance
			if m > 1 {
				unbiased = ss / float64(m-1)
			}
			runMean[c] = (1-momentum)*runMean[c] + momentum*float32(mean)
			runVar[c] = (1-momentum)*runVar[c] + momentum*float32(unbiased)
			scale := gamma[c] * float32(invStd)
			b.affine(x, y, c, scale, beta[c]-float32(mean)*scale)
		}
	})
}

// ForwardEval normalises with the running statistics.
func (b BatchNorm) ForwardEval(x, gamma, beta, y, runMean, runVar []float32) {
	parallelFor(b.C, b.N*b.HW, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			scale := gamma[c] / float32(math.Sqrt(float64(runVar[c])+float64(b.Eps)))
			b.affine(x, y, c, scale, beta[c]-runMean[c]*scale)
		}
	})
}

func (b BatchNorm) affine(x, y []float32, c int, scale, shift float32) {
	b.eachPlane(c, func(off int) {
		dst := y[off : off+b.HW]
		for i, v := range x[off : off+b.HW] {
			o := v*scale + shift
			if b.ReLU && o < 0 {
				o = 0
			}
			dst[i] = o
		}
	})
}

// Backward computes dx, dgamma and dbeta. y is the forward output (for the ReLU mask; nil
// without ReLU); st holds
// the statistics the forward normalised with: the batch's (train) or, for eval mode, the running
// mean and 1/sqrt(running var + eps) with train false.
func (b BatchNorm) Backward(x, y, dy, gamma []float32, st Stats, train bool, dx, dgamma, dbeta []float32) {
	m := float64(b.N * b.HW)
	parallelFor(b.C, b.N*b.HW, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			mean, invStd := st.Mean[c], st.InvStd[c]
			var sumDy, sumDyXhat float64
			b.eachPlane(c, func(off int) {
				xs, ys, ds := x[off:off+b.HW], b.mask(y, off), dy[off:off+b.HW]
				for i, g := range ds {
					if ys != nil && ys[i] <= 0 {
						continue
					}
					sumDy += float64(g)
					sumDyXhat += float64(g) * float64((xs[i]-mean)*invStd)
				}
			})
			dgamma[c], dbeta[c] = float32(sumDyXhat), float32(sumDy)
			k := gamma[c] * invStd
			// train: dx = k·(dy - mean(dy) - x̂·mean(dy·x̂)); eval: dx = k·dy.
			var a, bb float32
			if train {
				a, bb = float32(sumDy/m), float32(sumDyXhat/m)
			}
			b.eachPlane(c, func(off int) {
				xs, ys, ds, out := x[off:off+b.HW], b.mask(y, off), dy[off:off+b.HW], dx[off:off+b.HW]
				for i, g := range ds {
					if ys != nil && ys[i] <= 0 {
						g = 0
					}
					out[i] = k * (g - a - (xs[i]-mean)*invStd*bb)
				}
			})
		}
	})
}

// mask returns the plane of y at off when the ReLU applies, else nil.
func (b BatchNorm) mask(y []float32, off int) []float32 {
	if !b.ReLU {
		return nil
	}
	return y[off : off+b.HW]
}

func (b BatchNorm) eachPlane(c int, fn func(off int)) {
	for n := 0; n < b.N; n++ {
		fn((n*b.C + c) * b.HW)
	}
}
