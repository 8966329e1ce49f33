package kernels

import (
	"fmt"
	"math/rand/v2"
	"slices"
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

// The kernels of every path the CPU runs against the definition, in float64, on convShapes.
func TestConvAlgorithmsMatchDefinition(t *testing.T) {
	onPaths(func(i int) { t.Run(isaNames[cpuPaths()[i]], testConvAlgorithms) })
}

func testConvAlgorithms(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for _, c := range convShapes {
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

// convShapes cover every path: im2col or the implicit GEMM (patch rows within, across and wider
// than a packed panel of either GEMM) in one or many blocks (with per-goroutine filter gradients
// summed), pointwise, the flipped-filter data gradient of stride-1 convolutions and col2im for
// strided ones.
var convShapes = []Conv{
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

// TestConvPathsAgree checks that the AVX2 convolutions (forward with a fused epilogue, data and
// filter gradients) equal the AVX-512 ones bit for bit, where the CPU runs both.
func TestConvPathsAgree(t *testing.T) {
	if cpuISA() < isaAVX512 {
		t.Skip("needs a CPU with AVX-512 (and so AVX2)")
	}
	rng := rand.New(rand.NewPCG(6, 6))
	for _, c := range convShapes {
		oh, ow := c.OutSize()
		x, w := randSlice(rng, c.N*c.C*c.H*c.W), randSlice(rng, c.K*c.C*c.Kernel*c.Kernel)
		dy := randSlice(rng, c.N*c.K*oh*ow)
		ep := Affine{Scale: randSlice(rng, c.K), Shift: randSlice(rng, c.K), Add: randSlice(rng, len(dy)), ReLU: true}
		var y, dx, dw [2][]float32
		for i, p := range []isa{isaAVX512, isaAVX2} {
			saved := level()
			kernelISA.level = p
			y[i], dx[i], dw[i] = make([]float32, len(dy)), make([]float32, len(x)), make([]float32, len(w))
			c.ForwardAffine(x, w, ep, y[i])
			c.BackwardData(w, dy, dx[i])
			c.BackwardFilter(x, dy, dw[i], nil)
			kernelISA.level = saved
		}
		if !slices.Equal(y[0], y[1]) || !slices.Equal(dx[0], dx[1]) || !slices.Equal(dw[0], dw[1]) {
			t.Errorf("%+v: AVX2 differs from AVX-512 (forward %v, data gradient %v, filter gradient %v equal)", c,
				slices.Equal(y[0], y[1]), slices.Equal(dx[0], dx[1]), slices.Equal(dw[0], dw[1]))
		}
	}
}

// TestImplicitConvEqualsIm2col checks on each C path that the implicit-GEMM convolution packs
// exactly the patch matrix: it equals im2col followed by the same GEMM bit for bit, at stride 2
// too, where the input is first split into phase planes.
func TestImplicitConvEqualsIm2col(t *testing.T) {
	needCPaths(t)
	rng := rand.New(rand.NewPCG(7, 7))
	onPaths(func(i int) {
		if cpuPaths()[i] == isaPortable {
			return
		}
		for _, c := range convShapes {
			if c.pointwise() {
				continue
			}
			oh, ow := c.OutSize()
			x, w := randSlice(rng, c.N*c.C*c.H*c.W), randSlice(rng, c.K*c.C*c.Kernel*c.Kernel)
			ep := Affine{Scale: randSlice(rng, c.K), Shift: randSlice(rng, c.K), ReLU: true}
			got, want := make([]float32, c.N*c.K*oh*ow), make([]float32, c.N*c.K*oh*ow)
			c.ForwardAffine(x, w, ep, got)
			in, out := c.C*c.H*c.W, c.K*oh*ow
			var buf convBuf
			for n := 0; n < c.N; n++ {
				col, ld := c.patches(x[n*in:(n+1)*in], 0, oh, &buf)
				sgemm(false, false, c.K, oh*ow, c.colRows(), 1, w, c.colRows(), col, ld, 0, want[n*out:], oh*ow, ep.from(n*out))
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s %+v: implicit convolution differs from im2col + GEMM", isaNames[cpuPaths()[i]], c)
			}
		}
	})
}
