package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/segkit/segkit/internal/numcheck"
)

// direct computes the convolution and both gradients by the definition, in float64.
func direct(c Conv, x, w, dy []float32) (y, dx, dw []float64) {
	oh, ow := c.OutSize()
	y, dx, dw = make([]float64, c.N*c.K*oh*ow), make([]float64, len(x)), make([]float64, len(w))
	for n := 0; n < c.N; n++ {
		for k := 0; k < c.K; k++ {
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					o := ((n*c.K+k)*oh+i)*ow + j
					for ch := 0; ch < c.C; ch++ {
						for ki := 0; ki < c.Kernel; ki++ {
							for kj := 0; kj < c.Kernel; kj++ {
								ih, iw := i*c.Stride-c.Pad+ki*c.Dilation, j*c.Stride-c.Pad+kj*c.Dilation
								if ih < 0 || ih >= c.H || iw < 0 || iw >= c.W {
									continue
								}
								xi, wi := ((n*c.C+ch)*c.H+ih)*c.W+iw, ((k*c.C+ch)*c.Kernel+ki)*c.Kernel+kj
								y[o] += float64(x[xi]) * float64(w[wi])
								dx[xi] += float64(dy[o]) * float64(w[wi])
								dw[wi] += float64(dy[o]) * float64(x[xi])
							}
						}
					}
				}
			}
		}
	}
	return y, dx, dw
}

// The kernels against the definition, in float64. The shapes cover every path: im2col or the
// implicit GEMM (patch rows within, across and wider than a packed panel) in one or many
// blocks (with per-goroutine filter gradients summed), pointwise, the flipped-filter data
// gradient of stride-1 convolutions and col2im for strided ones.
func TestConvAlgorithmsMatchDefinition(t *testing.T) {
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
		{N: 2, C: 64, H: 40, W: 37, K: 5, Kernel: 3, Stride: 1, Pad: 1, Dilation: 1},
		{N: 1, C: 70, H: 33, W: 30, K: 7, Kernel: 3, Stride: 2, Pad: 1, Dilation: 1},
		{N: 1, C: 9, H: 70, W: 64, K: 4, Kernel: 1, Stride: 1, Pad: 0, Dilation: 1},
		{N: 2, C: 3, H: 9, W: 150, K: 13, Kernel: 3, Stride: 1, Pad: 1, Dilation: 1},
		{N: 1, C: 5, H: 20, W: 90, K: 8, Kernel: 3, Stride: 2, Pad: 3, Dilation: 2},
		{N: 2, C: 120, H: 10, W: 12, K: 7, Kernel: 3, Stride: 1, Pad: 1, Dilation: 1},
	}
	for _, c := range shapes {
		name := fmt.Sprintf("%+v", c)
		oh, ow := c.OutSize()
		x, w := randSlice(rng, c.N*c.C*c.H*c.W), randSlice(rng, c.K*c.C*c.Kernel*c.Kernel)
		dy := randSlice(rng, c.N*c.K*oh*ow)
		y, dx, dw := make([]float32, len(dy)), make([]float32, len(x)), make([]float32, len(w))
		c.Forward(x, w, nil, y)
		wantY, wantDx, wantDw := direct(c, x, w, dy)
		if e := numcheck.RelErr(y, wantY); e > 1e-5 {
			t.Errorf("%s: forward relative error %.2g", name, e)
		}
		c.BackwardData(w, dy, dx)
		c.BackwardFilter(x, dy, dw, nil)
		if e := numcheck.RelErr(dx, wantDx); e > 1e-5 {
			t.Errorf("%s: data gradient relative error %.2g", name, e)
		}
		if e := numcheck.RelErr(dw, wantDw); e > 1e-5 {
			t.Errorf("%s: filter gradient relative error %.2g", name, e)
		}
	}
}
