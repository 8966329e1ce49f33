package kernels

// #include "kernels.h"
import "C"

import "math"

// Sum writes the elementwise sum of xs into y, then max(·, 0) when relu is set.
func Sum(xs [][]float32, y []float32, relu bool) {
	if kt := simd(); kt != nil && len(xs) > 1 {
		parallelFor(len(y), len(xs), func(lo, hi int) {
			// Up to four inputs per pass, the running sum as the first input of the next.
			first, rest := xs[0][lo:hi], xs[1:]
			for len(rest) > 0 {
				k := min(3, len(rest))
				part := [3][]float32{}
				for i := range k {
					part[i] = rest[i][lo:hi]
				}
				rest = rest[k:]
				n, r, yp, x0, x1, x2, x3 := C.long(hi-lo), cbool(relu && len(rest) == 0), ptr(y[lo:hi]), ptr(first),
					ptr(part[0]), ptr(part[1]), ptr(part[2])
				C.segkit_sum4(kt, n, r, yp, x0, x1, x2, x3)
				first = y[lo:hi]
			}
		})
		return
	}
	const chunk = 4096 // the partial sum stays in L1 while every input is added
	parallelFor(len(y), len(xs), func(lo, hi int) {
		for c := lo; c < hi; c += chunk {
			e := min(c+chunk, hi)
			dst := y[c:e]
			copy(dst, xs[0][c:e])
			for _, x := range xs[1:] {
				for i, v := range x[c:e] {
					dst[i] += v
				}
			}
			if relu {
				for i, v := range dst {
					dst[i] = max(v, 0)
				}
			}
		}
	})
}

// ReLUBackward writes dx = dy where y > 0, else 0.
func ReLUBackward(y, dy, dx []float32) {
	if k := simd(); k != nil {
		parallelFor(len(y), 1, func(lo, hi int) {
			C.segkit_relu_backward(k, C.long(hi-lo), ptr(y[lo:hi]), ptr(dy[lo:hi]), ptr(dx[lo:hi]))
		})
		return
	}
	parallelFor(len(y), 1, func(lo, hi int) {
		ys, ds, out := y[lo:hi], dy[lo:hi], dx[lo:hi]
		ds, out = ds[:len(ys)], out[:len(ys)]
		for i, v := range ys {
			out[i] = masked(ds[i], v)
		}
	})
}

// masked returns g where the ReLU output y is positive, else 0, without a branch (the pattern
// is random, so a branch would mispredict half the time). ReLU outputs come from the max
// builtin, so y is +0 or positive: its bits, negated, have the sign bit set exactly when y > 0.
func masked(g, y float32) float32 {
	keep := uint32(-int32(math.Float32bits(y))) >> 31 // 1 when y > 0
	return math.Float32frombits(math.Float32bits(g) & -keep)
}

// CopyChannels copies channels [from, from+count) of an N×srcC×HW tensor into channels
// [to, to+count) of an N×dstC×HW tensor.
func CopyChannels(src []float32, srcC, from int, dst []float32, dstC, to, count, n, hw int) {
	parallelFor(n, count*hw, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			copy(dst[(i*dstC+to)*hw:(i*dstC+to+count)*hw], src[(i*srcC+from)*hw:(i*srcC+from+count)*hw])
		}
	})
}

// PlaneMeans writes the mean of each of the planes (of hw values) of x into means.
func PlaneMeans(x []float32, hw int, means []float32) {
	parallelFor(len(means), hw, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			means[p] = float32(sum32(x[p*hw:(p+1)*hw]) / float64(hw))
		}
	})
}

// SpreadPlanes writes dx[p, i] = dmeans[p] / hw, the gradient of PlaneMeans.
func SpreadPlanes(dmeans []float32, hw int, dx []float32) {
	parallelFor(len(dmeans), hw, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			g := dmeans[p] / float32(hw)
			for i := range dx[p*hw : (p+1)*hw] {
				dx[p*hw+i] = g
			}
		}
	})
}

// Momentum is one step of SGD with momentum and weight decay, as torch.optim.SGD:
// v = mu·v + g + wd·w, then w −= lr·v.
func Momentum(w, g, v []float32, lr, wd, mu float32) {
	k := simd()
	parallelFor(len(w), 1, func(lo, hi int) {
		if k != nil {
			C.segkit_momentum(k, C.long(hi-lo), ptr(w[lo:hi]), ptr(g[lo:hi]), ptr(v[lo:hi]), C.float(lr), C.float(wd), C.float(mu))
			return
		}
		ws, gs, vs := w[lo:hi], g[lo:hi], v[lo:hi]
		for i, gi := range gs[:len(ws)] {
			vs[i] = mu*vs[i] + gi + wd*ws[i]
			ws[i] -= lr * vs[i]
		}
	})
}
