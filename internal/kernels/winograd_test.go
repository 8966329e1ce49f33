package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/segkit/segkit/internal/numcheck"
)

// TestWinograd compares the Winograd forward, and the direct one's fused epilogue (scale, shift,
// residual, ReLU), with the direct convolution followed by the epilogue in Go, on sizes that leave partial tiles, tiny
// planes, several images and blocks, and channel counts off every vector width. Bounds are
// relative to the output's largest magnitude.
func TestWinograd(t *testing.T) {
	needCPaths(t) // the portable path has no Winograd
	onPaths(func(i int) {
		if p := cpuPaths()[i]; p != isaPortable {
			t.Run(p.String(), testWinograd)
		}
	})
}

func testWinograd(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, s := range []struct{ n, c, k, h, w int }{
		{1, 8, 8, 4, 4}, {2, 9, 13, 5, 7}, {1, 17, 18, 1, 1}, {1, 18, 8, 2, 3}, {3, 33, 20, 37, 29},
		{1, 48, 48, 64, 64}, {2, 384, 384, 32, 32}, {1, 10, 70, 40, 3}, {1, 64, 64, 130, 9},
		{2, 384, 384, 16, 16}, {3, 20, 30, 9, 11}, {5, 12, 12, 3, 3},
	} {
		c := Conv{N: s.n, C: s.c, H: s.h, W: s.w, K: s.k, Kernel: 3, Stride: 1, Pad: 1, Dilation: 1}
		x, w := randSlice(rng, s.n*s.c*s.h*s.w), randSlice(rng, s.k*s.c*9)
		plain := make([]float32, s.n*s.k*s.h*s.w)
		c.Forward(x, w, nil, plain)
		for _, ep := range []Affine{{}, {Shift: randSlice(rng, s.k)}, {Scale: randSlice(rng, s.k), Shift: randSlice(rng, s.k), ReLU: true},
			{Scale: randSlice(rng, s.k), Add: randSlice(rng, len(plain)), ReLU: true}} {
			want := append([]float32(nil), plain...)
			for n, out := 0, s.k*s.h*s.w; n < s.n; n++ {
				ep.from(n*out).apply(want[n*out:], s.k, s.h*s.w, s.h*s.w)
			}
			direct, wino := make([]float32, len(want)), make([]float32, len(want))
			for i := range wino {
				direct[i], wino[i] = float32(math.NaN()), float32(math.NaN()) // every output must be written
			}
			c.Winograd = false
			c.ForwardAffine(x, w, ep, direct)
			c.Winograd = true
			c.forwardWinograd(x, w, ep, wino) // also where Forward would not take it (few tiles)
			for _, r := range []struct {
				name  string
				got   []float32
				bound float64
			}{{"direct", direct, 1e-6}, {"winograd", wino, 3e-5}} {
				worst, scale := numcheck.MaxDiff(r.got, want)
				if !(worst <= r.bound*scale) {
					t.Errorf("%+v epilogue %+v: max |%s − reference| = %.3g (scale %.3g)", s, ep, r.name, worst, scale)
				}
			}
		}
		tiles, _ := c.winogradTiles()
		if c.winograd() != (tiles >= 64) {
			t.Errorf("%+v: winograd() = %v with %d tiles", s, c.winograd(), tiles)
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

// TestWinogradPathsAgree checks that the AVX2 Winograd convolution equals the AVX-512 one bit for
// bit (the same transforms in the same operations, the same GEMM chains), where the CPU runs both:
// partial tiles, runs split across tile rows and images, channel counts off both vector widths.
func TestWinogradPathsAgree(t *testing.T) {
	if cpuISA() < isaAVX512 {
		t.Skip("needs a CPU with AVX-512 (and so AVX2)")
	}
	rng := rand.New(rand.NewPCG(9, 10))
	for _, s := range []struct{ n, c, k, h, w int }{{2, 9, 13, 5, 7}, {3, 33, 20, 37, 29}, {1, 48, 48, 64, 64}, {1, 10, 70, 40, 3}, {2, 17, 9, 6, 9}} {
		c := Conv{N: s.n, C: s.c, H: s.h, W: s.w, K: s.k, Kernel: 3, Stride: 1, Pad: 1, Dilation: 1, Winograd: true}
		x, w := randSlice(rng, s.n*s.c*s.h*s.w), randSlice(rng, s.k*s.c*9)
		ep := Affine{Scale: randSlice(rng, s.k), Shift: randSlice(rng, s.k), Add: randSlice(rng, s.n*s.k*s.h*s.w), ReLU: true}
		var y [2][]float32
		for i, p := range []isa{isaAVX512, isaAVX2} {
			saved := level()
			kernelISA.level = p
			y[i] = make([]float32, s.n*s.k*s.h*s.w)
			c.forwardWinograd(x, w, ep, y[i])
			kernelISA.level = saved
		}
		if !slices.Equal(y[0], y[1]) {
			t.Errorf("%+v: AVX2 Winograd differs from AVX-512's", s)
		}
	}
}

// PerImage makes the choice one image's: a batch whose tiles would tip it keeps the direct sum.
func TestWinogradPerImage(t *testing.T) {
	c := Conv{N: 5, C: 16, H: 24, W: 24, K: 16, Kernel: 3, Stride: 1, Pad: 1, Dilation: 1, Winograd: true}
	if level() == isaPortable {
		t.Skip("no Winograd on the portable path")
	}
	one := c
	one.N = 1
	if !c.winograd() || one.winograd() {
		t.Fatalf("batch of 5: %v, one image: %v (want true, false: 180 and 36 tiles)", c.winograd(), one.winograd())
	}
	c.PerImage = true
	if c.winograd() {
		t.Error("PerImage: a batch of 5 took Winograd where one image does not")
	}
}
