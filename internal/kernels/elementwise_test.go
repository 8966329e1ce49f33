package kernels

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestElementwisePaths checks the AVX-512 sum (two to seven inputs, with and without ReLU) and
// ReLU gradient against the Go ones, bit for bit: the sums run in the same order.
func TestElementwisePaths(t *testing.T) {
	if !useAVX512() {
		t.Skip("no AVX-512")
	}
	rng := rand.New(rand.NewPCG(6, 1))
	for _, n := range []int{1, 15, 17, 5000, 70001} {
		xs := make([][]float32, 7)
		for i := range xs {
			xs[i] = randSlice(rng, n)
		}
		for k := 2; k <= len(xs); k++ {
			for _, relu := range []bool{false, true} {
				var y [2][]float32
				onBothPaths(func(i int) {
					y[i] = make([]float32, n)
					Sum(xs[:k], y[i], relu)
				})
				if !slices.Equal(y[0], y[1]) {
					t.Errorf("n=%d, %d inputs, relu=%v: sums differ", n, k, relu)
				}
			}
		}
		var dx [2][]float32
		y := make([]float32, n)
		Sum(xs[:2], y, true)
		onBothPaths(func(i int) {
			dx[i] = make([]float32, n)
			ReLUBackward(y, xs[2], dx[i])
		})
		if !slices.Equal(dx[0], dx[1]) {
			t.Errorf("n=%d: ReLU gradients differ", n)
		}
	}
}

// TestMomentumPaths checks the AVX-512 SGD step against the Go one, bit for bit.
func TestMomentumPaths(t *testing.T) {
	if !useAVX512() {
		t.Skip("no AVX-512")
	}
	rng := rand.New(rand.NewPCG(6, 2))
	for _, n := range []int{1, 17, 100003} {
		w0, g, v0 := randSlice(rng, n), randSlice(rng, n), randSlice(rng, n)
		var w, v [2][]float32
		onBothPaths(func(i int) {
			w[i], v[i] = slices.Clone(w0), slices.Clone(v0)
			Momentum(w[i], g, v[i], 0.01, 5e-4, 0.9)
		})
		if !slices.Equal(w[0], w[1]) || !slices.Equal(v[0], v[1]) {
			t.Errorf("n=%d: AVX-512 step differs from Go's", n)
		}
	}
}
