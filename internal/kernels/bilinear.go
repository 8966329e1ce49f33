package kernels

// Bilinear resizes the planes of an N×C×H×W tensor to OH×OW with PyTorch's
// align_corners=False convention: source = (dst + 0.5)·in/out − 0.5, clamped at 0.
type Bilinear struct {
	Planes, H, W, OH, OW int
}

// taps holds, per output index, the two source indices and their weights.
type taps struct {
	i0, i1 []int
	w0, w1 []float32
}

func linearTaps(in, out int) taps {
	t := taps{make([]int, out), make([]int, out), make([]float32, out), make([]float32, out)}
	scale := float32(in) / float32(out)
	for d := 0; d < out; d++ {
		src := (float32(d)+0.5)*scale - 0.5
		if src < 0 {
			src = 0
		}
		i0 := min(int(src), in-1)
		i1 := i0
		if i0 < in-1 {
			i1 = i0 + 1
		}
		l1 := src - float32(i0)
		t.i0[d], t.i1[d], t.w0[d], t.w1[d] = i0, i1, 1-l1, l1
	}
	return t
}

// Forward writes the resized planes of x into y.
func (b Bilinear) Forward(x, y []float32) {
	th, tw := linearTaps(b.H, b.OH), linearTaps(b.W, b.OW)
	in, out := b.H*b.W, b.OH*b.OW
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
	th, tw := linearTaps(b.H, b.OH), linearTaps(b.W, b.OW)
	in, out := b.H*b.W, b.OH*b.OW
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
