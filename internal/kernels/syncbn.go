package kernels

// #include "kernels.h"
import "C"

import (
	"math"
	"unsafe"
)

// Synchronised batch norm (SyncBN): the ranks of a data-parallel job each hold a share of the
// batch; ForwardTrain and Backward are split at their per-channel reductions, which the caller
// sums over the ranks between the steps below. Each path splits its own kernels (the C ones
// run the very code of their fused kernels, the Go ones the same sums and roundings as
// ForwardTrain and Backward), so the statistics, outputs and gradients equal one process's over
// the whole batch up to the order of the float64 additions across the ranks; with one rank,
// bit for bit.

// SumX writes Σx of every channel into sum (float64, C values).
func (b BatchNorm) SumX(x []float32, sum []float64) {
	if b.sumsC(x, nil, sum) {
		return
	}
	parallelFor(b.C, b.N*b.HW, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			var s float64
			for n := 0; n < b.N; n++ {
				s += sum32(b.plane(x, n, c))
			}
			sum[c] = s
		}
	})
}

// SumSquares writes Σ(x − mean)² of every channel into ss.
func (b BatchNorm) SumSquares(x, mean []float32, ss []float64) {
	if b.sumsC(x, mean, ss) {
		return
	}
	parallelFor(b.C, b.N*b.HW, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			var s float64
			for n := 0; n < b.N; n++ {
				s += sumSquares32(b.plane(x, n, c), mean[c])
			}
			ss[c] = s
		}
	})
}

// ForwardGlobal normalises x with statistics of a batch of count values per channel whose
// mean is mean (as float32(Σx/count)) and whose Σ(x − mean)² is ss, saves them in st and updates
// the running statistics, as ForwardTrain does for its own batch.
func (b BatchNorm) ForwardGlobal(x, gamma, beta, y []float32, mean []float32, ss []float64, count int, st Stats,
	runMean, runVar []float32, momentum float32) {
	if k := simd(); k != nil {
		parallelFor(b.C, b.N*b.HW, func(lo, hi int) {
			C.segkit_bn_norm(k, C.long(b.N), C.long(b.C), C.long(b.HW), C.float(b.Eps), cbool(b.ReLU), C.float(momentum),
				ptr(x), ptr(gamma), ptr(beta), ptr(y), ptr(mean), ptr64(ss), C.double(count), ptr(st.Mean), ptr(st.InvStd),
				ptr(runMean), ptr(runVar), C.long(lo), C.long(hi))
		})
		return
	}
	m := float64(count)
	for c := 0; c < b.C; c++ {
		variance := ss[c] / m
		invStd := 1 / math.Sqrt(variance+float64(b.Eps))
		st.Mean[c], st.InvStd[c] = mean[c], float32(invStd)
		unbiased := variance
		if count > 1 {
			unbiased = ss[c] / (m - 1)
		}
		runMean[c] = (1-momentum)*runMean[c] + momentum*mean[c]
		runVar[c] = (1-momentum)*runVar[c] + momentum*float32(unbiased)
	}
	parallelFor(b.C, b.N*b.HW, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			scale := gamma[c] * st.InvStd[c]
			shift := beta[c] - st.Mean[c]*scale
			for n := 0; n < b.N; n++ {
				xs, ys := b.plane(x, n, c), b.plane(y, n, c)
				ys = ys[:len(xs)]
				for i, v := range xs {
					v = v*scale + shift
					if b.ReLU && v < 0 {
						v = 0
					}
					ys[i] = v
				}
			}
		}
	})
}

// GradSums writes, per channel, Σdy' and Σdy'·(x − mean) with dy' the gradient masked by the
// ReLU (y: the forward output, nil without ReLU).
func (b BatchNorm) GradSums(x, y, dy, mean []float32, sumDy, sumDyXc []float64) {
	if k := simd(); k != nil {
		parallelFor(b.C, b.N*b.HW, func(lo, hi int) {
			C.segkit_bn_grad_sums(k, C.long(b.N), C.long(b.C), C.long(b.HW), cbool(b.ReLU), ptr(x), ptr(y), ptr(dy), ptr(mean),
				ptr64(sumDy), ptr64(sumDyXc), C.long(lo), C.long(hi))
		})
		return
	}
	parallelFor(b.C, b.N*b.HW, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			var s, sx float64
			for n := 0; n < b.N; n++ {
				var mask []float32
				if b.ReLU {
					mask = b.plane(y, n, c)
				}
				a, ax := sumGrad32(b.plane(dy, n, c), b.plane(x, n, c), mask, mean[c])
				s += a
				sx += ax
			}
			sumDy[c], sumDyXc[c] = s, sx
		}
	})
}

// BackwardGlobal computes dx of a training-mode batch norm whose batch (count values per
// channel) has the gradient sums sumDy and sumDyXc (GradSums over the whole batch); st holds
// the forward's statistics.
func (b BatchNorm) BackwardGlobal(x, y, dy, gamma []float32, st Stats, sumDy, sumDyXc []float64, count int, dx []float32) {
	if k := simd(); k != nil {
		parallelFor(b.C, b.N*b.HW, func(lo, hi int) {
			C.segkit_bn_grad_dx(k, C.long(b.N), C.long(b.C), C.long(b.HW), cbool(b.ReLU), ptr(x), ptr(y), ptr(dy), ptr(gamma),
				ptr(st.Mean), ptr(st.InvStd), ptr64(sumDy), ptr64(sumDyXc), C.double(count), ptr(dx), C.long(lo), C.long(hi))
		})
		return
	}
	m := float64(count)
	parallelFor(b.C, b.N*b.HW, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			mean, invStd := st.Mean[c], st.InvStd[c]
			sumDyXhat := sumDyXc[c] * float64(invStd)
			k := gamma[c] * invStd
			a, bb := float32(sumDy[c]/m), float32(sumDyXhat/m)*invStd
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

// sumsC runs SumX (mean nil) or SumSquares on the C path in use, reporting false on the Go one.
func (b BatchNorm) sumsC(x, mean []float32, sum []float64) bool {
	if k := simd(); k != nil {
		parallelFor(b.C, b.N*b.HW, func(lo, hi int) {
			C.segkit_bn_sums(k, C.long(b.N), C.long(b.C), C.long(b.HW), ptr(x), ptr(mean), ptr64(sum), C.long(lo), C.long(hi))
		})
		return true
	}
	return false
}

// ptr64 returns a C pointer to s[0], or nil for an empty slice.
func ptr64(s []float64) *C.double {
	if len(s) == 0 {
		return nil
	}
	return (*C.double)(unsafe.Pointer(&s[0]))
}
