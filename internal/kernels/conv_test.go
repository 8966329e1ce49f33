package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// directConv is the textbook definition, in float64, for checking both algorithms.
func directConv(c Conv, x, w []float32) []float64 {
	oh, ow := c.OutSize()
	y := make([]float64, c.N*c.K*oh*ow)
	for n := 0; n < c.N; n++ {
		for k := 0; k < c.K; k++ {
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					var s float64
					for ch := 0; ch < c.C; ch++ {
						for ki := 0; ki < c.Kernel; ki++ {
							for kj := 0; kj < c.Kernel; kj++ {
								ih, iw := i*c.Stride-c.Pad+ki*c.Dilation, j*c.Stride-c.Pad+kj*c.Dilation
								if ih >= 0 && ih < c.H && iw >= 0 && iw < c.W {
									s += float64(x[((n*c.C+ch)*c.H+ih)*c.W+iw]) * float64(w[((k*c.C+ch)*c.Kernel+ki)*c.Kernel+kj])
								}
							}
						}
					}
					y[((n*c.K+k)*oh+i)*ow+j] = s
				}
			}
		}
	}
	return y
}

func maxRelErr(got []float32, want []float64) float64 {
	var diff, peak float64
	for i := range want {
		diff = max(diff, math.Abs(float64(got[i])-want[i]))
		peak = max(peak, math.Abs(want[i]))
	}
	return diff / peak
}

// Both algorithms (im2col and Winograd) against the definition: forward, and the two
// gradients through their adjoint identities ⟨dy, conv(x)⟩ = ⟨dx, x⟩ = ⟨dw, w⟩ checked
// elementwise against the definition of each gradient.
func TestConvAlgorithmsMatchDefinition(t *testing.T) {
	defer func(v bool) { UseWinograd = v }(UseWinograd)
	rng := rand.New(rand.NewPCG(4, 4))
	shapes := []Conv{
		{N: 2, C: 3, H: 7, W: 9, K: 4, Kernel: 3, Stride: 1, Pad: 1, Dilation: 1},
		{N: 1, C: 5, H: 8, W: 8, K: 6, Kernel: 3, Stride: 1, Pad: 1, Dilation: 1},
		{N: 1, C: 2, H: 5, W: 6, K: 3, Kernel: 3, Stride: 1, Pad: 0, Dilation: 1},
		{N: 2, C: 2, H: 4, W: 3, K: 2, Kernel: 3, Stride: 1, Pad: 2, Dilation: 1},
		{N: 1, C: 3, H: 1, W: 1, K: 2, Kernel: 3, Stride: 1, Pad: 1, Dilation: 1},
		{N: 1, C: 2, H: 1, W: 6, K: 2, Kernel: 3, Stride: 1, Pad: 1, Dilation: 1},
		{N: 2, C: 3, H: 9, W: 8, K: 4, Kernel: 3, Stride: 2, Pad: 1, Dilation: 1},
		{N: 1, C: 4, H: 9, W: 9, K: 3, Kernel: 3, Stride: 1, Pad: 2, Dilation: 2},
		{N: 2, C: 4, H: 5, W: 5, K: 3, Kernel: 1, Stride: 1, Pad: 0, Dilation: 1},
		{N: 1, C: 4, H: 7, W: 7, K: 3, Kernel: 1, Stride: 2, Pad: 0, Dilation: 1},
	}
	for _, c := range shapes {
		for _, wino := range []bool{false, true} {
			UseWinograd = wino
			name := fmt.Sprintf("%+v winograd=%t(applies %t)", c, wino, c.winogradOK())
			oh, ow := c.OutSize()
			x, w := randSlice(rng, c.N*c.C*c.H*c.W), randSlice(rng, c.K*c.C*c.Kernel*c.Kernel)
			dy := randSlice(rng, c.N*c.K*oh*ow)
			y, dx, dw := make([]float32, len(dy)), make([]float32, len(x)), make([]float32, len(w))
			c.Forward(x, w, nil, y)
			if e := maxRelErr(y, directConv(c, x, w)); e > 1e-5 {
				t.Errorf("%s: forward relative error %.2g", name, e)
			}
			c.BackwardData(w, dy, dx)
			c.BackwardFilter(x, dy, dw, nil)
			// dx[i] = ⟨dy, conv(e_i, w)⟩ and dw[j] = ⟨dy, conv(x, e_j)⟩: conv is linear in each.
			wantDx := make([]float64, len(x))
			for i := range x {
				e := make([]float32, len(x))
				e[i] = 1
				for o, v := range directConv(c, e, w) {
					wantDx[i] += v * float64(dy[o])
				}
			}
			wantDw := make([]float64, len(w))
			for j := range w {
				e := make([]float32, len(w))
				e[j] = 1
				for o, v := range directConv(c, x, e) {
					wantDw[j] += v * float64(dy[o])
				}
			}
			if e := maxRelErr(dx, wantDx); e > 1e-5 {
				t.Errorf("%s: data gradient relative error %.2g", name, e)
			}
			if e := maxRelErr(dw, wantDw); e > 1e-5 {
				t.Errorf("%s: filter gradient relative error %.2g", name, e)
			}
		}
	}
}
