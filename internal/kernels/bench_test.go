package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"gonum.org/v1/netlib/blas/netlib"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The shapes: 3×3 convolutions, C→C channels at N=2.
var benchShapes = []struct{ c, hw int }{{48, 128}, {96, 64}, {192, 32}, {384, 16}}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

// reportGFLOPs reports flops per iteration as GFLOP/s.
func reportGFLOPs(b *testing.B, flops float64, took time.Duration) {
	b.ReportMetric(flops*float64(b.N)/took.Seconds()/1e9, "GFLOP/s")
}

// BenchmarkConv3x3 times forward + backward (data and filter) of our convolution; FLOPs are
// those of the direct convolution, 3 × 2·MACs.
func BenchmarkConv3x3(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, s := range benchShapes {
		b.Run(fmt.Sprintf("%d-%dx%d", s.c, s.hw, s.hw), func(b *testing.B) {
			c := Conv{N: 2, C: s.c, H: s.hw, W: s.hw, K: s.c, Kernel: 3, Stride: 1, Pad: 1, Dilation: 1}
			x, w, dy := randSlice(rng, 2*s.c*s.hw*s.hw), randSlice(rng, s.c*s.c*9), randSlice(rng, 2*s.c*s.hw*s.hw)
			y, dx, dw := make([]float32, len(dy)), make([]float32, len(x)), make([]float32, len(w))
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				c.Forward(x, w, nil, y)
				c.BackwardData(w, dy, dx)
				c.BackwardFilter(x, dy, dw, nil)
			}
			reportGFLOPs(b, 3*c.FLOPs(), time.Since(start))
		})
	}
}

// withBLASThreads runs fn with OpenBLAS threaded over Workers cores (its best for one big
// GEMM, and how gorgonia uses it); the kernels otherwise keep it single-threaded.
func withBLASThreads(fn func()) {
	SetBLASThreads(Workers)
	defer SetBLASThreads(1)
	fn()
}

// BenchmarkSgemm2048 is the ceiling: one 2048³ OpenBLAS sgemm on all cores.
func BenchmarkSgemm2048(b *testing.B) { withBLASThreads(func() { benchSgemm2048(b) }) }

func benchSgemm2048(b *testing.B) {
	const n = 2048
	rng := rand.New(rand.NewPCG(2, 2))
	a, bb, c := randSlice(rng, n*n), randSlice(rng, n*n), make([]float32, n*n)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		Sgemm(false, false, n, n, n, 1, a, n, bb, n, 0, c, n)
	}
	reportGFLOPs(b, 2*n*n*n, time.Since(start))
}

// BenchmarkGorgoniaConv3x3 is gorgonia's own Conv2d, forward + backward, on the same OpenBLAS.
func BenchmarkGorgoniaConv3x3(b *testing.B) { withBLASThreads(func() { benchGorgoniaConv3x3(b) }) }

func benchGorgoniaConv3x3(b *testing.B) {
	G.Use(netlib.Implementation{})
	rng := rand.New(rand.NewPCG(3, 3))
	for _, s := range benchShapes {
		b.Run(fmt.Sprintf("%d-%dx%d", s.c, s.hw, s.hw), func(b *testing.B) {
			g := G.NewGraph()
			xv := tensor.New(tensor.WithShape(2, s.c, s.hw, s.hw), tensor.WithBacking(randSlice(rng, 2*s.c*s.hw*s.hw)))
			wv := tensor.New(tensor.WithShape(s.c, s.c, 3, 3), tensor.WithBacking(randSlice(rng, s.c*s.c*9)))
			x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(xv.Shape()...), G.WithValue(xv), G.WithName("x"))
			w := G.NewTensor(g, tensor.Float32, 4, G.WithShape(wv.Shape()...), G.WithValue(wv), G.WithName("w"))
			y, err := G.Conv2d(x, w, tensor.Shape{3, 3}, []int{1, 1}, []int{1, 1}, []int{1, 1})
			if err != nil {
				b.Fatal(err)
			}
			cost, err := G.Sum(y)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := G.Grad(cost, x, w); err != nil {
				b.Fatal(err)
			}
			vm := G.NewTapeMachine(g)
			defer vm.Close()
			c := Conv{N: 2, C: s.c, H: s.hw, W: s.hw, K: s.c, Kernel: 3, Stride: 1, Pad: 1, Dilation: 1}
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if err := vm.RunAll(); err != nil {
					b.Fatal(err)
				}
				vm.Reset()
			}
			reportGFLOPs(b, 3*c.FLOPs(), time.Since(start))
		})
	}
}

// BenchmarkConv3x3FilterGrad times the filter gradient alone (the GEMM with the transposed
// patch matrix).
func BenchmarkConv3x3FilterGrad(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, s := range benchShapes {
		b.Run(fmt.Sprintf("%d-%dx%d", s.c, s.hw, s.hw), func(b *testing.B) {
			c := Conv{N: 2, C: s.c, H: s.hw, W: s.hw, K: s.c, Kernel: 3, Stride: 1, Pad: 1, Dilation: 1}
			x, dy := randSlice(rng, 2*s.c*s.hw*s.hw), randSlice(rng, 2*s.c*s.hw*s.hw)
			dw := make([]float32, s.c*s.c*9)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				c.BackwardFilter(x, dy, dw, nil)
			}
			reportGFLOPs(b, c.FLOPs(), time.Since(start))
		})
	}
}
