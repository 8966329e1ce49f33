package kernels

// #include "kernels.h"
import "C"

import (
	"math"
	"unsafe"
)

// Resample is DynOPool's sampling op (docs/dynopool.md): planes of H×W resized to OH×OW
// where every output cell reads four queries, at the centres of its 2×2 sub-cells, by bilinear
// interpolation with border clamping, and keeps their max (or mean). Query rows of output row i
// sit at q = (i + ¼ or ¾)·SizeIn/SizeOut in pixel units (pixel k covers [k, k+1)), read at index
// u = q − ½ clamped to [0, H−1]. SizeIn and SizeOut are the straight-through sizes of the two
// ends: their values are the integer sizes (real values only in finite-difference checks), and the
// backward pass returns the loss gradient with respect to them.
//
// Bilinear reads one query per cell, at its centre, instead: a bilinear resize (half-pixel, as
// PyTorch's align_corners=False) whose sizes carry gradients; the identity at equal sizes.
type Resample struct {
	Planes, H, W, OH, OW int
	SizeIn, SizeOut      [2]float64 // (h, w)
	Mean                 bool
	Bilinear             bool
}

// axisTaps are the query positions along one axis, 2 per output cell (Bilinear: 1): rows i0,
// i1 = i0+1 (clamped) and weight t of i1; dIn and dOut are ∂u/∂SizeIn and ∂u/∂SizeOut.
type axisTaps struct {
	i0, i1    []int
	j0, j1    []int32 // i0, i1 for the C kernel
	t         []float32
	mask      []float32 // 1 for queries strictly inside the border (they have a position gradient)
	dIn, dOut []float64
	aligned   bool // every t is 0: queries on pixel centres (alpha 2 on even sizes)
}

// The query positions inside a cell, in cell units: the centres of its two halves, or its centre.
var (
	queryOffsets    = []float32{0.25, 0.75}
	bilinearOffsets = []float32{0.5}
)

// taps returns the row and column taps of r.
func (r Resample) taps() (rows, cols axisTaps) {
	offsets := queryOffsets
	if r.Bilinear {
		offsets = bilinearOffsets
	}
	return newAxisTaps(r.H, r.OH, r.SizeIn[0], r.SizeOut[0], offsets), newAxisTaps(r.W, r.OW, r.SizeIn[1], r.SizeOut[1], offsets)
}

func newAxisTaps(n, out int, sizeIn, sizeOut float64, offsets []float32) axisTaps {
	q := len(offsets) * out
	a := axisTaps{make([]int, q), make([]int, q), make([]int32, q), make([]int32, q),
		make([]float32, q), make([]float32, q), make([]float64, q), make([]float64, q), true}
	// In float32, as the reference computes it: exact for alpha = 2 (every query on a pixel centre).
	ratio := float32(sizeIn) / float32(sizeOut)
	for k := range a.i0 {
		cell := float32(k/len(offsets)) + offsets[k%len(offsets)]
		u := float32(cell*ratio) - 0.5 // float32(): no fused multiply-add (arm64 fuses), as the reference
		free := u > 0 && u < float32(n-1)
		u = min(max(u, 0), float32(n-1))
		i0 := int(u)
		a.i0[k], a.i1[k], a.t[k] = i0, min(i0+1, n-1), u-float32(i0)
		a.j0[k], a.j1[k] = int32(a.i0[k]), int32(a.i1[k])
		a.aligned = a.aligned && a.t[k] == 0
		if free {
			a.mask[k] = 1
			a.dIn[k] = float64(cell) / sizeOut
			a.dOut[k] = -float64(cell) * sizeIn / (sizeOut * sizeOut)
		}
	}
	return a
}

// lerp is torch.lerp, rounding included: exact at t = 0 (a query on a pixel centre). The ulp
// matters: it decides near-ties of the max, and so where the size gradient goes (the HRNet
// goldens' alpha gradients move by 2% with a + t(b−a) alone), so the products are rounded
// before the sums: the explicit float32() keeps the compiler from fusing them into one
// multiply-add, which it does on arm64 (and which moved those gradients by 1.7% there).
func lerp(a, b, t float32) float32 {
	if t < 0.5 {
		return a + float32(t*(b-a))
	}
	return b - float32((b-a)*(1-t))
}

// Forward writes y from x and, when argmax is not nil (training, max mode), which query of each
// cell won (0–3), for Backward. Separably, as the reference: every query row is interpolated
// between two input rows (2·OH×W), then every query within those rows (2·OH×2·OW), then each cell
// keeps the max (or mean) of its four queries.
func (r Resample) Forward(x, y []float32, argmax []uint8) {
	rows, cols := r.taps()
	if r.Bilinear {
		parallelFor(r.Planes, r.OH*r.W*4, func(lo, hi int) {
			rq := make([]float32, r.OH*r.W)
			for p := lo; p < hi; p++ {
				r.queries(x[p*r.H*r.W:(p+1)*r.H*r.W], &rows, &cols, rq, y[p*r.OH*r.OW:(p+1)*r.OH*r.OW])
			}
		})
		return
	}
	if k := simd(); k != nil {
		r.forwardC(k, x, y, argmax, &rows, &cols)
		return
	}
	parallelFor(r.Planes, r.OH*r.W*8, func(lo, hi int) {
		rq := make([]float32, 2*r.OH*r.W)
		q := make([]float32, 4*r.OH*r.OW)
		for p := lo; p < hi; p++ {
			r.queries(x[p*r.H*r.W:(p+1)*r.H*r.W], &rows, &cols, rq, q)
			dst := y[p*r.OH*r.OW : (p+1)*r.OH*r.OW]
			for i := 0; i < r.OH; i++ {
				top, bottom := q[2*i*2*r.OW:(2*i+1)*2*r.OW], q[(2*i+1)*2*r.OW:(2*i+2)*2*r.OW]
				out := dst[i*r.OW : (i+1)*r.OW]
				switch {
				case r.Mean:
					for j := range out {
						out[j] = (top[2*j] + top[2*j+1] + bottom[2*j] + bottom[2*j+1]) * 0.25
					}
				case argmax != nil:
					won := argmax[(p*r.OH+i)*r.OW : (p*r.OH+i+1)*r.OW]
					for j := range out {
						v := [4]float32{top[2*j], top[2*j+1], bottom[2*j], bottom[2*j+1]}
						k := argmax4(&v)
						out[j], won[j] = v[k], uint8(k)
					}
				default:
					for j := range out {
						out[j] = max(max(top[2*j], top[2*j+1]), max(bottom[2*j], bottom[2*j+1]))
					}
				}
			}
		}
	})
}

// queries fills rq (query rows: the row taps × W) and q (queries: the row taps × the column
// taps) for one plane.
func (r Resample) queries(src []float32, rows, cols *axisTaps, rq, q []float32) {
	for a := range rows.i0 {
		r0, r1 := src[rows.i0[a]*r.W:(rows.i0[a]+1)*r.W], src[rows.i1[a]*r.W:(rows.i1[a]+1)*r.W]
		dst, t := rq[a*r.W:(a+1)*r.W], rows.t[a]
		if t == 0 {
			copy(dst, r0)
			continue
		}
		for c := range dst {
			dst[c] = lerp(r0[c], r1[c], t)
		}
	}
	nq := len(cols.i0)
	for a := range rows.i0 {
		row, dst := rq[a*r.W:(a+1)*r.W], q[a*nq:(a+1)*nq]
		if cols.aligned {
			for b := range dst {
				dst[b] = row[cols.i0[b]]
			}
			continue
		}
		for b := range dst {
			dst[b] = lerp(row[cols.i0[b]], row[cols.i1[b]], cols.t[b])
		}
	}
}

// argmax4 returns the first maximal of the four queries (−,−), (−,+), (+,−), (+,+), without
// branches (which query wins is random, and mispredicted branches dominated): nz(k) is 0
// exactly when v[k] equals the max (then max − v[k] is +0, all bits clear).
func argmax4(v *[4]float32) int {
	m := max(max(v[0], v[1]), max(v[2], v[3]))
	nz := func(k int) int {
		b := math.Float32bits(m - v[k])
		return int((b | -b) >> 31)
	}
	return nz(0) * (1 + nz(1)*(1+nz(2)))
}

// Backward writes dx from dy and returns ∂L/∂SizeIn and ∂L/∂SizeOut (h, w), summed in float64.
// argmax is what Forward recorded (nil: found again). Each cell's gradient goes to its winning
// query (max) or a quarter to each (mean); a query passes it to its four pixels with their
// bilinear weights, and to its row and column positions times the value's slope there.
func (r Resample) Backward(x, dy, dx []float32, argmax []uint8) (dIn, dOut [2]float64) {
	rows, cols := r.taps()
	nr, nc := len(rows.i0), len(cols.i0)
	// Per worker: ∂L/∂u of every query row and column, reduced after the planes are done.
	parts := make([][]float64, Workers)
	chunk := (r.Planes + Workers - 1) / Workers
	parallelFor(r.Planes, r.OH*r.OW*32, func(lo, hi int) {
		gu := make([]float64, nr+nc)
		parts[lo/chunk] = gu
		plane := make([]float32, nr+nc) // this plane's sums, in float32
		gRow, gCol := plane[:nr], plane[nr:]
		var won []uint8
		var one Resample
		var scratch []float32
		if !r.Mean && !r.Bilinear && argmax == nil {
			won, scratch = make([]uint8, r.OH*r.OW), make([]float32, r.OH*r.OW)
			one = r
			one.Planes = 1
		}
		for p := lo; p < hi; p++ {
			src, g, dst := x[p*r.H*r.W:(p+1)*r.H*r.W], dy[p*r.OH*r.OW:(p+1)*r.OH*r.OW], dx[p*r.H*r.W:(p+1)*r.H*r.W]
			switch {
			case r.Mean || r.Bilinear:
			case argmax != nil:
				won = argmax[p*r.OH*r.OW : (p+1)*r.OH*r.OW]
			default:
				one.Forward(src, scratch, won)
			}
			clear(dst)
			clear(plane)
			if r.Bilinear {
				r.backBilinear(src, g, dst, &rows, &cols, gRow, gCol)
			} else if level() != isaPortable { // plain C: any x86-64
				r.backPlaneC(src, g, dst, won, &rows, &cols, gRow, gCol)
			} else {
				r.backPlane(src, g, dst, won, &rows, &cols, gRow, gCol)
			}
			for k, v := range plane {
				gu[k] += float64(v)
			}
		}
	})
	for _, gu := range parts {
		if gu == nil {
			continue
		}
		for k, g := range gu[:nr] {
			dIn[0] += g * rows.dIn[k]
			dOut[0] += g * rows.dOut[k]
		}
		for k, g := range gu[nr:] {
			dIn[1] += g * cols.dIn[k]
			dOut[1] += g * cols.dOut[k]
		}
	}
	return dIn, dOut
}

// backPlane is Backward's per-cell loop for one plane; won is nil in mean mode.
func (r Resample) backPlane(src, g, dst []float32, won []uint8, rows, cols *axisTaps, gRow, gCol []float32) {
	for i := 0; i < r.OH; i++ {
		for j := 0; j < r.OW; j++ {
			gy := g[i*r.OW+j]
			if r.Mean {
				for k := 0; k < 4; k++ {
					r.backQuery(src, dst, rows, cols, 2*i+k>>1, 2*j+k&1, 0.25*gy, gRow, gCol)
				}
				continue
			}
			k := int(won[i*r.OW+j])
			r.backQuery(src, dst, rows, cols, 2*i+k>>1, 2*j+k&1, gy, gRow, gCol)
		}
	}
}

// backBilinear is Backward's per-cell loop for one plane of a Bilinear resample: each cell is
// its one query.
func (r Resample) backBilinear(src, g, dst []float32, rows, cols *axisTaps, gRow, gCol []float32) {
	for i := 0; i < r.OH; i++ {
		for j := 0; j < r.OW; j++ {
			r.backQuery(src, dst, rows, cols, i, j, g[i*r.OW+j], gRow, gCol)
		}
	}
}

// backQuery sends g, the gradient of query (row a, column b), to its four pixels and adds g
// times the value's slope to its row and column positions. A free position is strictly inside
// the image, so its second tap is the next pixel and the slope is the forward difference,
// exact on a pixel centre (t = 0) too; a clamped position passes nothing (mask 0).
func (r Resample) backQuery(src, dst []float32, rows, cols *axisTaps, a, b int, g float32, gRow, gCol []float32) {
	r0, r1, tr := rows.i0[a]*r.W, rows.i1[a]*r.W, rows.t[a]
	c0, c1, tc := cols.i0[b], cols.i1[b], cols.t[b]
	x00, x01, x10, x11 := src[r0+c0], src[r0+c1], src[r1+c0], src[r1+c1]
	gt, gb := g*(1-tr), g*tr
	dst[r0+c0] += gt * (1 - tc)
	dst[r0+c1] += gt * tc
	dst[r1+c0] += gb * (1 - tc)
	dst[r1+c1] += gb * tc
	gRow[a] += rows.mask[a] * g * ((1-tc)*(x10-x00) + tc*(x11-x01))
	gCol[b] += cols.mask[b] * g * ((1-tr)*(x01-x00) + tr*(x11-x10))
}

// forwardC is Forward by the C kernels k (resample_tmpl.h), 16 or 8 output cells at a time.
func (r Resample) forwardC(k *C.segkit_kernels, x, y []float32, argmax []uint8, rows, cols *axisTaps) {
	// The cells' left and right queries, each as its own tap list.
	side := func(s int) (i0, i1 []int32, t []float32) {
		i0, i1, t = make([]int32, r.OW), make([]int32, r.OW), make([]float32, r.OW)
		for j := range t {
			i0[j], i1[j], t[j] = cols.j0[2*j+s], cols.j1[2*j+s], cols.t[2*j+s]
		}
		return i0, i1, t
	}
	l0, l1, lt := side(0)
	r0, r1, rt := side(1)
	var won *C.uchar
	if argmax != nil && !r.Mean {
		won = (*C.uchar)(unsafe.Pointer(&argmax[0]))
	}
	parallelFor(r.Planes, r.OH*r.W*8, func(lo, hi int) {
		scratch := make([]float32, 2*(r.W+32)) // two query rows, SCRATCH_GAP (resample_*.c) apart
		C.segkit_resample(k, C.long(r.H), C.long(r.W), C.long(r.OH), C.long(r.OW), ptr(x), ptr(y), won, cbool(r.Mean),
			cint(rows.j0), cint(rows.j1), ptr(rows.t), cint(l0), cint(l1), ptr(lt), cint(r0), cint(r1), ptr(rt),
			C.long(lo), C.long(hi), ptr(scratch))
	})
}

// backPlaneC is backPlane in C (resample_back.c), without Go's bounds checks.
func (r Resample) backPlaneC(src, g, dst []float32, won []uint8, rows, cols *axisTaps, gRow, gCol []float32) {
	var w *C.uchar
	if !r.Mean {
		w = (*C.uchar)(unsafe.Pointer(&won[0]))
	}
	C.segkit_resample_back_plane(C.long(r.W), C.long(r.OH), C.long(r.OW), ptr(src), ptr(g), ptr(dst), w,
		cint(rows.j0), cint(rows.j1), ptr(rows.t), ptr(rows.mask), cint(cols.j0), cint(cols.j1), ptr(cols.t), ptr(cols.mask),
		ptr(gRow), ptr(gCol))
}
