package kernels

// #include "kernels.h"
import "C"

// Bilinear resizes the planes of an N×C×H×W tensor to OH×OW as PyTorch's bilinear
// interpolation: with align_corners=False, source = (dst + 0.5)·in/out − 0.5, clamped at 0;
// with AlignCorners, source = dst·(in − 1)/(out − 1) (0 when out is 1), corner pixels onto
// corner pixels.
type Bilinear struct {
	Planes, H, W, OH, OW int
	AlignCorners         bool
}

// taps holds, per output index, the two source indices and their weights.
type taps struct {
	i0, i1 []int
	j0, j1 []int32 // i0, i1 for the C kernels
	w0, w1 []float32
}

// linearTaps computes the taps in float32, as PyTorch does for float32 tensors.
func linearTaps(in, out int, alignCorners bool) taps {
	t := taps{make([]int, out), make([]int, out), make([]int32, out), make([]int32, out), make([]float32, out), make([]float32, out)}
	scale := float32(in) / float32(out)
	if alignCorners {
		scale = 0
		if out > 1 {
			scale = float32(in-1) / float32(out-1)
		}
	}
	for d := 0; d < out; d++ {
		src := scale * float32(d)
		if !alignCorners {
			src = max((float32(d)+0.5)*scale-0.5, 0)
		}
		i0 := min(int(src), in-1)
		i1 := i0
		if i0 < in-1 {
			i1 = i0 + 1
		}
		l1 := min(max(src-float32(i0), 0), 1)
		t.i0[d], t.i1[d], t.w0[d], t.w1[d] = i0, i1, 1-l1, l1
		t.j0[d], t.j1[d] = int32(i0), int32(i1)
	}
	return t
}

// Forward writes the resized planes of x into y.
func (b Bilinear) Forward(x, y []float32) {
	th, tw := linearTaps(b.H, b.OH, b.AlignCorners), linearTaps(b.W, b.OW, b.AlignCorners)
	in, out := b.H*b.W, b.OH*b.OW
	if k := simd(); k != nil {
		parallelFor(b.Planes, out, func(lo, hi int) {
			scratch := make([]float32, 2*b.OW)
			C.segkit_bilinear(k, 0, C.long(b.H), C.long(b.W), C.long(b.OH), C.long(b.OW), ptr(x), ptr(y),
				cint(th.j0), cint(th.j1), ptr(th.w0), ptr(th.w1), cint(tw.j0), cint(tw.j1), ptr(tw.w0), ptr(tw.w1),
				C.long(lo), C.long(hi), ptr(scratch))
		})
		return
	}
	parallelFor(b.Planes, out, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			src, dst := x[p*in:(p+1)*in], y[p*out:(p+1)*out]
			for oy := 0; oy < b.OH; oy++ {
				r0, r1 := src[th.i0[oy]*b.W:], src[th.i1[oy]*b.W:]
				a0, a1 := th.w0[oy], th.w1[oy]
				row := dst[oy*b.OW : (oy+1)*b.OW]
				for ox := range row {
					j0, j1 := tw.i0[ox], tw.i1[ox]
					row[ox] = a0*(tw.w0[ox]*r0[j0]+tw.w1[ox]*r0[j1]) + a1*(tw.w0[ox]*r1[j0]+tw.w1[ox]*r1[j1])
				}
			}
		}
	})
}

// Backward writes dx, the adjoint of Forward applied to dy.
func (b Bilinear) Backward(dy, dx []float32) {
	th, tw := linearTaps(b.H, b.OH, b.AlignCorners), linearTaps(b.W, b.OW, b.AlignCorners)
	in, out := b.H*b.W, b.OH*b.OW
	if k := simd(); k != nil {
		parallelFor(b.Planes, out, func(lo, hi int) {
			scratch := make([]float32, b.H*b.OW)
			C.segkit_bilinear(k, 1, C.long(b.H), C.long(b.W), C.long(b.OH), C.long(b.OW), ptr(dy), ptr(dx),
				cint(th.j0), cint(th.j1), ptr(th.w0), ptr(th.w1), cint(tw.j0), cint(tw.j1), ptr(tw.w0), ptr(tw.w1),
				C.long(lo), C.long(hi), ptr(scratch))
		})
		return
	}
	parallelFor(b.Planes, out, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			g, dst := dy[p*out:(p+1)*out], dx[p*in:(p+1)*in]
			clear(dst)
			for oy := 0; oy < b.OH; oy++ {
				r0, r1 := dst[th.i0[oy]*b.W:], dst[th.i1[oy]*b.W:]
				a0, a1 := th.w0[oy], th.w1[oy]
				for ox, v := range g[oy*b.OW : (oy+1)*b.OW] {
					j0, j1 := tw.i0[ox], tw.i1[ox]
					v0, v1 := a0*v, a1*v
					r0[j0] += tw.w0[ox] * v0
					r0[j1] += tw.w1[ox] * v0
					r1[j0] += tw.w0[ox] * v1
					r1[j1] += tw.w1[ox] * v1
				}
			}
		}
	})
}
