package kernels

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestElementwisePaths checks the C sum of every path the CPU runs (two to seven inputs, with and without ReLU) and
// ReLU gradient against the Go ones, bit for bit: the sums run in the same order.
func TestElementwisePaths(t *testing.T) {
	needCPaths(t)
	rng := rand.New(rand.NewPCG(6, 1))
	for _, n := range []int{1, 15, 17, 5000, 70001} {
		xs := make([][]float32, 7)
		for i := range xs {
			xs[i] = randSlice(rng, n)
		}
		for k := 2; k <= len(xs); k++ {
			for _, relu := range []bool{false, true} {
				y := make([][]float32, len(cpuPaths()))
				last := onPaths(func(i int) {
					y[i] = make([]float32, n)
					Sum(xs[:k], y[i], relu)
				}) - 1
				for i := range last {
					if !slices.Equal(y[i], y[last]) {
						t.Errorf("%s n=%d, %d inputs, relu=%v: sums differ", isaNames[cpuPaths()[i]], n, k, relu)
					}
				}
			}
		}
		dx := make([][]float32, len(cpuPaths()))
		y := make([]float32, n)
		Sum(xs[:2], y, true)
		last := onPaths(func(i int) {
			dx[i] = make([]float32, n)
			ReLUBackward(y, xs[2], dx[i])
		}) - 1
		for i := range last {
			if !slices.Equal(dx[i], dx[last]) {
				t.Errorf("%s n=%d: ReLU gradients differ", isaNames[cpuPaths()[i]], n)
			}
		}
	}
}

// TestMomentumPaths checks the C SGD step of every path the CPU runs against the Go one, bit for bit.
func TestMomentumPaths(t *testing.T) {
	needCPaths(t)
	rng := rand.New(rand.NewPCG(6, 2))
	for _, n := range []int{1, 17, 100003} {
		w0, g, v0 := randSlice(rng, n), randSlice(rng, n), randSlice(rng, n)
		w, v := make([][]float32, len(cpuPaths())), make([][]float32, len(cpuPaths()))
		last := onPaths(func(i int) {
			w[i], v[i] = slices.Clone(w0), slices.Clone(v0)
			Momentum(w[i], g, v[i], 0.01, 5e-4, 0.9)
		}) - 1
		for i := range last {
			if !slices.Equal(w[i], w[last]) || !slices.Equal(v[i], v[last]) {
				t.Errorf("%s n=%d: step differs from Go's", isaNames[cpuPaths()[i]], n)
			}
		}
	}
}
