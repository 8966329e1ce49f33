package kernels

// #include "kernels.h"
import "C"

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
	if k := simd(); k != nil {
		parallelFor(b.C, m, func(lo, hi int) {
			C.segkit_bn_train(k, C.long(b.N), C.long(b.C), C.long(b.HW), C.float(b.Eps), cbool(b.ReLU), C.float(momentum),
				ptr(x), ptr(gamma), ptr(beta), ptr(y), ptr(st.Mean), ptr(st.InvStd), ptr(runMean), ptr(runVar), C.long(lo), C.long(hi))
		})
		return
	}
	parallelFor(b.C, m, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			var sum float64
			for n := 0; n < b.N; n++ {
				sum += sum32(b.plane(x, n, c))
			}
			mean := sum / float64(m)
			var ss float64
			for n := 0; n < b.N; n++ {
				ss += sumSquares32(b.plane(x, n, c), float32(mean))
			}
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
	ep := b.EvalAffine(gamma, beta, runMean, runVar)
	if k := simd(); k != nil {
		parallelFor(b.C, b.N*b.HW, func(lo, hi int) {
			C.segkit_bn_affine(k, C.long(b.N), C.long(b.C), C.long(b.HW), cbool(b.ReLU), ptr(x), ptr(ep.Scale), ptr(ep.Shift),
				ptr(y), C.long(lo), C.long(hi))
		})
		return
	}
	parallelFor(b.C, b.N*b.HW, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			b.affine(x, y, c, ep.Scale[c], ep.Shift[c])
		}
	})
}

// EvalAffine returns the inference-mode normalisation (+ReLU) as a per-channel epilogue, the
// form in which it folds into the convolution before it.
func (b BatchNorm) EvalAffine(gamma, beta, runMean, runVar []float32) Affine {
	ep := Affine{Scale: make([]float32, b.C), Shift: make([]float32, b.C), ReLU: b.ReLU}
	for c := range ep.Scale {
		ep.Scale[c] = gamma[c] / float32(math.Sqrt(float64(runVar[c])+float64(b.Eps)))
		ep.Shift[c] = beta[c] - runMean[c]*ep.Scale[c]
	}
	return ep
}

func (b BatchNorm) plane(t []float32, n, c int) []float32 {
	off := (n*b.C + c) * b.HW
	return t[off : off+b.HW : off+b.HW]
}

func (b BatchNorm) affine(x, y []float32, c int, scale, shift float32) {
	for n := 0; n < b.N; n++ {
		affineRow(b.plane(x, n, c), b.plane(y, n, c), scale, shift, b.ReLU)
	}
}

// Backward computes dx, dgamma and dbeta. y is the forward output (for the ReLU mask; nil
// without ReLU); st holds the statistics the forward normalised with: the batch's (train) or,
// for eval mode, the running mean and 1/sqrt(running var + eps) with train false.
func (b BatchNorm) Backward(x, y, dy, gamma []float32, st Stats, train bool, dx, dgamma, dbeta []float32) {
	m := float64(b.N * b.HW)
	if k := simd(); k != nil {
		parallelFor(b.C, b.N*b.HW, func(lo, hi int) {
			C.segkit_bn_backward(k, C.long(b.N), C.long(b.C), C.long(b.HW), cbool(b.ReLU), cbool(train), ptr(x), ptr(y), ptr(dy),
				ptr(gamma), ptr(st.Mean), ptr(st.InvStd), ptr(dx), ptr(dgamma), ptr(dbeta), C.long(lo), C.long(hi))
		})
		return
	}
	parallelFor(b.C, b.N*b.HW, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			mean, invStd := st.Mean[c], st.InvStd[c]
			var sumDy, sumDyXc float64 // Σ dy' and Σ dy'·(x − mean), dy' masked by the ReLU
			for n := 0; n < b.N; n++ {
				var mask []float32
				if b.ReLU {
					mask = b.plane(y, n, c)
				}
				s, sx := sumGrad32(b.plane(dy, n, c), b.plane(x, n, c), mask, mean)
				sumDy += s
				sumDyXc += sx
			}
			sumDyXhat := sumDyXc * float64(invStd)
			dgamma[c], dbeta[c] = float32(sumDyXhat), float32(sumDy)
			k := gamma[c] * invStd
			// train: dx = k·(dy' − mean(dy') − x̂·mean(dy'·x̂)); eval: dx = k·dy'.
			var a, bb float32
			if train {
				a, bb = float32(sumDy/m), float32(sumDyXhat/m)*invStd
			}
			for n := 0; n < b.N; n++ {
				xs, ds, out := b.plane(x, n, c), b.plane(dy, n, c), b.plane(dx, n, c)
				ds, out = ds[:len(xs)], out[:len(xs)]
				if b.ReLU {
					ys := b.plane(y, n, c)[:len(xs)]
					for i, g := range ds {
						out[i] = k * (masked(g, ys[i]) - a - (xs[i]-mean)*bb)
					}
					continue
				}
				for i, g := range ds {
					out[i] = k * (g - a - (xs[i]-mean)*bb)
				}
			}
		}
	})
}

// The reductions below keep four float32 partial sums over blocks of 64 values (independent
// chains, so they pipeline) and add each block to a float64 total (so long sums stay exact).

func sum32(xs []float32) float64 {
	var total float64
	for len(xs) > 0 {
		blk := xs[:min(64, len(xs))]
		xs = xs[len(blk):]
		var s0, s1, s2, s3 float32
		i := 0
		for ; i+4 <= len(blk); i += 4 {
			s0 += blk[i]
			s1 += blk[i+1]
			s2 += blk[i+2]
			s3 += blk[i+3]
		}
		for ; i < len(blk); i++ {
			s0 += blk[i]
		}
		total += float64(s0+s1) + float64(s2+s3)
	}
	return total
}

func sumSquares32(xs []float32, mean float32) float64 {
	var total float64
	for len(xs) > 0 {
		blk := xs[:min(64, len(xs))]
		xs = xs[len(blk):]
		var s0, s1, s2, s3 float32
		i := 0
		for ; i+4 <= len(blk); i += 4 {
			d0, d1, d2, d3 := blk[i]-mean, blk[i+1]-mean, blk[i+2]-mean, blk[i+3]-mean
			s0 += d0 * d0
			s1 += d1 * d1
			s2 += d2 * d2
			s3 += d3 * d3
		}
		for ; i < len(blk); i++ {
			d := blk[i] - mean
			s0 += d * d
		}
		total += float64(s0+s1) + float64(s2+s3)
	}
	return total
}

// sumGrad32 returns Σ g and Σ g·(x − mean) over the entries where mask > 0 (all when mask is nil).
func sumGrad32(g, x, mask []float32, mean float32) (float64, float64) {
	var total, totalX float64
	for len(g) > 0 {
		n := min(64, len(g))
		gb, xb := g[:n], x[:n:n]
		var s0, s1, t0, t1 float32
		if mask == nil {
			i := 0
			for ; i+2 <= n; i += 2 {
				s0 += gb[i]
				s1 += gb[i+1]
				t0 += gb[i] * (xb[i] - mean)
				t1 += gb[i+1] * (xb[i+1] - mean)
			}
			for ; i < n; i++ {
				s0 += gb[i]
				t0 += gb[i] * (xb[i] - mean)
			}
		} else {
			mb := mask[:n:n]
			for i, v := range gb {
				v = masked(v, mb[i])
				s0 += v
				t0 += v * (xb[i] - mean)
			}
			mask = mask[n:]
		}
		total += float64(s0 + s1)
		totalX += float64(t0 + t1)
		g, x = g[n:], x[n:]
	}
	return total, totalX
}
