package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// TestWinograd compares the Winograd forward with the direct (im2col) one on sizes that leave
// partial tiles, tiny planes, several images and blocks, bias, and channel counts off every
// vector width; the error bound is relative to the output's largest magnitude.
func TestWinograd(t *testing.T) {
	if !useAVX512 {
		t.Skip("no AVX-512: Forward never takes the Winograd path")
	}
	rng := rand.New(rand.NewPCG(9, 9))
	for _, s := range []struct{ n, c, k, h, w int }{
		{1, 8, 8, 4, 4}, {2, 9, 13, 5, 7}, {1, 17, 18, 1, 1}, {1, 18, 8, 2, 3}, {3, 33, 20, 37, 29},
		{1, 48, 48, 64, 64}, {2, 384, 384, 32, 32}, {1, 10, 70, 40, 3}, {1, 64, 64, 130, 9},
	} {
		for _, withBias := range []bool{false, true} {
			c := Conv{N: s.n, C: s.c, H: s.h, W: s.w, K: s.k, Kernel: 3, Stride: 1, Pad: 1, Dilation: 1}
			x, w := randSlice(rng, s.n*s.c*s.h*s.w), randSlice(rng, s.k*s.c*9)
			var bias []float32
			if withBias {
				bias = randSlice(rng, s.k)
			}
			want, got := make([]float32, s.n*s.k*s.h*s.w), make([]float32, s.n*s.k*s.h*s.w)
			for i := range got {
				got[i] = float32(math.NaN()) // every output must be written
			}
			c.Forward(x, w, bias, want)
			c.Winograd = true
			tiles, _ := c.winogradTiles()
			c.forwardWinograd(x, w, bias, got) // also where Forward would not take it (few tiles)
			if c.winograd() != (tiles >= 32) {
				t.Errorf("%+v: winograd() = %v with %d tiles per image", s, c.winograd(), tiles)
			}
			var scale, worst float64
			for i := range want {
				scale = max(scale, math.Abs(float64(want[i])))
				worst = max(worst, math.Abs(float64(got[i]-want[i])))
			}
			if !(worst <= 3e-5*scale) {
				t.Errorf("%+v bias=%v: max |winograd − direct| = %.3g (scale %.3g)", s, withBias, worst, scale)
			}
		}
	}
}

// BenchmarkConv3x3Forward times the forward pass alone, direct and Winograd (inference).
func BenchmarkConv3x3Forward(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, s := range benchShapes {
		for _, wino := range []bool{false, true} {
			b.Run(fmt.Sprintf("%d-%dx%d-winograd=%v", s.c, s.hw, s.hw, wino), func(b *testing.B) {
				c := Conv{N: 2, C: s.c, H: s.hw, W: s.hw, K: s.c, Kernel: 3, Stride: 1, Pad: 1, Dilation: 1, Winograd: wino}
				x, w := randSlice(rng, 2*s.c*s.hw*s.hw), randSlice(rng, s.c*s.c*9)
				y := make([]float32, len(x))
				b.ResetTimer()
				start := time.Now()
				for i := 0; i < b.N; i++ {
					c.Forward(x, w, nil, y)
				}
				reportGFLOPs(b, c.FLOPs(), time.Since(start))
			})
		}
	}
}
