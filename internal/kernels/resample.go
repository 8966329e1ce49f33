package kernels

import "math"

// Resample is DynOPool's sampling op (shared/docs/dynopool.md): planes of H×W resized to OH×OW
// where every output cell reads four queries, at the centres of its 2×2 sub-cells, by bilinear
// interpolation with border clamping, and keeps their max (or mean). Query rows of output row i
// sit at q = (i + ¼ or ¾)·SizeIn/SizeOut in pixel units (pixel k covers [k, k+1)), read at index
// u = q − ½ clamped to [0, H−1]. SizeIn and SizeOut are the straight-through sizes of the two
// ends: their values are the integer sizes (real values only in finite-difference checks), and the
// backward pass returns the loss gradient with respect to them.
type Resample struct {
	Planes, H, W, OH, OW int
	SizeIn, SizeOut      [2]float64 // (h, w)
	Mean                 bool
}

// axisTaps are the 2·n query positions along one axis: rows i0, i1 = i0+1 (clamped) and weight
// t of i1; free marks queries strictly inside the border (the only ones with a position
// gradient); dIn and dOut are ∂u/∂SizeIn and ∂u/∂SizeOut.
type axisTaps struct {
	i0, i1    []int
	t         []float32
	free      []bool
	dIn, dOut []float64
}

// queryOffsets are the query positions inside a cell, in cell units.
var queryOffsets = [2]float32{0.25, 0.75}

func newAxisTaps(n, out int, sizeIn, sizeOut float64) axisTaps {
	a := axisTaps{make([]int, 2*out), make([]int, 2*out), make([]float32, 2*out), make([]bool, 2*out),
		make([]float64, 2*out), make([]float64, 2*out)}
	// In float32, as the reference computes it: exact for alpha = 2 (every query on a pixel centre).
	ratio := float32(sizeIn) / float32(sizeOut)
	for k := range a.i0 {
		cell := float32(k/2) + queryOffsets[k%2]
		u := cell*ratio - 0.5
		a.free[k] = u > 0 && u < float32(n-1)
		u = min(max(u, 0), float32(n-1))
		i0 := int(u)
		a.i0[k], a.i1[k], a.t[k] = i0, min(i0+1, n-1), u-float32(i0)
		if a.free[k] {
			a.dIn[k] = float64(cell) / sizeOut
			a.dOut[k] = -float64(cell) * sizeIn / (sizeOut * sizeOut)
		}
	}
	return a
}

// lerp is torch.lerp: exact at t = 0 and t = 1.
func lerp(a, b, t float32) float32 {
	if t < 0.5 {
		return a + t*(b-a)
	}
	return b - (b-a)*(1-t)
}

// Forward writes y from x.
func (r Resample) Forward(x, y []float32) {
	rows, cols := newAxisTaps(r.H, r.OH, r.SizeIn[0], r.SizeOut[0]), newAxisTaps(r.W, r.OW, r.SizeIn[1], r.SizeOut[1])
	parallelFor(r.Planes, r.OH*r.OW*16, func(lo, hi int) {
		var v [4]float32
		for p := lo; p < hi; p++ {
			src, dst := x[p*r.H*r.W:(p+1)*r.H*r.W], y[p*r.OH*r.OW:(p+1)*r.OH*r.OW]
			for i := 0; i < r.OH; i++ {
				for j := 0; j < r.OW; j++ {
					r.queries(src, &rows, &cols, i, j, &v)
					dst[i*r.OW+j] = r.aggregate(&v)
				}
			}
		}
	})
}

// queries reads the four queries of cell (i, j), ordered (−,−), (−,+), (+,−), (+,+):
// rows first, then columns, as the reference interpolates separably.
func (r Resample) queries(src []float32, rows, cols *axisTaps, i, j int, v *[4]float32) {
	for a := 0; a < 2; a++ {
		ri := 2*i + a
		row0, row1, tr := src[rows.i0[ri]*r.W:], src[rows.i1[ri]*r.W:], rows.t[ri]
		for b := 0; b < 2; b++ {
			ci := 2*j + b
			c0, c1 := cols.i0[ci], cols.i1[ci]
			v[2*a+b] = lerp(lerp(row0[c0], row1[c0], tr), lerp(row0[c1], row1[c1], tr), cols.t[ci])
		}
	}
}

// aggregate returns the max (first maximal query) or the mean.
func (r Resample) aggregate(v *[4]float32) float32 {
	if r.Mean {
		return (v[0] + v[1] + v[2] + v[3]) * 0.25
	}
	return v[r.argmax(v)]
}

func (r Resample) argmax(v *[4]float32) int {
	best := 0
	for k := 1; k < 4; k++ {
		if v[k] > v[best] {
			best = k
		}
	}
	return best
}

// Backward writes dx from dy and returns ∂L/∂SizeIn and ∂L/∂SizeOut (h, w), summed in float64.
func (r Resample) Backward(x, dy, dx []float32) (dIn, dOut [2]float64) {
	rows, cols := newAxisTaps(r.H, r.OH, r.SizeIn[0], r.SizeOut[0]), newAxisTaps(r.W, r.OW, r.SizeIn[1], r.SizeOut[1])
	// Per worker: ∂L/∂u of every query row and column, reduced after the planes are done.
	parts := make([][]float64, Workers)
	chunk := (r.Planes + Workers - 1) / Workers
	parallelFor(r.Planes, r.OH*r.OW*32, func(lo, hi int) {
		gu := make([]float64, 2*r.OH+2*r.OW)
		parts[lo/chunk] = gu
		gRow, gCol := gu[:2*r.OH], gu[2*r.OH:]
		var v [4]float32
		for p := lo; p < hi; p++ {
			src, g, dst := x[p*r.H*r.W:(p+1)*r.H*r.W], dy[p*r.OH*r.OW:(p+1)*r.OH*r.OW], dx[p*r.H*r.W:(p+1)*r.H*r.W]
			clear(dst)
			for i := 0; i < r.OH; i++ {
				for j := 0; j < r.OW; j++ {
					gy := g[i*r.OW+j]
					if gy == 0 {
						continue
					}
					first, last, w := 0, 4, float32(0.25)
					if !r.Mean {
						r.queries(src, &rows, &cols, i, j, &v)
						first = r.argmax(&v)
						last, w = first+1, 1
					}
					for k := first; k < last; k++ {
						ri, ci := 2*i+k/2, 2*j+k%2
						r.backQuery(src, dst, &rows, &cols, ri, ci, gy*w, gRow, gCol)
					}
				}
			}
		}
	})
	for _, gu := range parts {
		if gu == nil {
			continue
		}
		for k, g := range gu[:2*r.OH] {
			dIn[0] += g * rows.dIn[k]
			dOut[0] += g * rows.dOut[k]
		}
		for k, g := range gu[2*r.OH:] {
			dIn[1] += g * cols.dIn[k]
			dOut[1] += g * cols.dOut[k]
		}
	}
	return dIn, dOut
}

// backQuery sends g, the gradient of query (row ri, column ci), to its four input pixels and
// accumulates g·∂value/∂u for its row and column position. On a pixel centre (t = 0) the slope is
// the forward difference.
func (r Resample) backQuery(src, dst []float32, rows, cols *axisTaps, ri, ci int, g float32, gRow, gCol []float64) {
	r0, r1, tr := rows.i0[ri], rows.i1[ri], rows.t[ri]
	c0, c1, tc := cols.i0[ci], cols.i1[ci], cols.t[ci]
	dst[r0*r.W+c0] += g * (1 - tr) * (1 - tc)
	dst[r0*r.W+c1] += g * (1 - tr) * tc
	dst[r1*r.W+c0] += g * tr * (1 - tc)
	dst[r1*r.W+c1] += g * tr * tc
	at := func(y, x int) float64 { return float64(src[y*r.W+x]) }
	if rows.free[ri] { // then r0+1 < H
		slope := (1-float64(tc))*(at(r0+1, c0)-at(r0, c0)) + float64(tc)*(at(r0+1, c1)-at(r0, c1))
		gRow[ri] += float64(g) * slope
	}
	if cols.free[ci] {
		slope := (1-float64(tr))*(at(r0, c0+1)-at(r0, c0)) + float64(tr)*(at(r1, c0+1)-at(r1, c0))
		gCol[ci] += float64(g) * slope
	}
}

// RoundHalfEven is the integer size DynOPool gives a continuous size (torch.round).
func RoundHalfEven(s float32) int { return int(math.RoundToEven(float64(s))) }
