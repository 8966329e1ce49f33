package kernels

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/segkit/segkit/internal/numcheck"
)

// TestCrossEntropyPaths compares the C softmax cross-entropy of every path the CPU runs with the float64 Go one on
// plane sizes off the vector width, several images split across goroutines, ignored pixels and
// large logits.
func TestCrossEntropyPaths(t *testing.T) {
	needCPaths(t)
	rng := rand.New(rand.NewPCG(3, 3))
	for _, s := range []struct{ n, c, hw int }{{1, 2, 1}, {2, 21, 37}, {3, 5, 1000}, {2, 150, 333}, {1, 19, 4096}} {
		logits := randSlice(rng, s.n*s.c*s.hw)
		for i := range logits {
			logits[i] *= 30
		}
		labels := make([]int32, s.n*s.hw)
		for i := range labels {
			labels[i] = int32(rng.IntN(s.c))
			if rng.IntN(5) == 0 {
				labels[i] = 255
			}
		}
		ce := CrossEntropy{N: s.n, C: s.c, HW: s.hw, Ignore: 255}
		n := len(cpuPaths())
		loss, count, grad := make([]float32, n), make([]int, n), make([][]float32, n)
		last := onPaths(func(i int) {
			grad[i] = make([]float32, len(logits))
			for j := range grad[i] {
				grad[i][j] = float32(math.NaN()) // every element must be written
			}
			var err error
			loss[i], count[i], err = ce.Forward(logits, labels, 0.5, grad[i])
			if err != nil {
				t.Fatal(err)
			}
		}) - 1
		for i := range last {
			path := isaNames[cpuPaths()[i]]
			if count[i] != count[last] || !numcheck.Close(float64(loss[i]), float64(loss[last]), 1e-5*math.Abs(float64(loss[last]))) {
				t.Errorf("%s %+v: loss %v over %d pixels, want %v over %d", path, s, loss[i], count[i], loss[last], count[last])
			}
			if worst, peak := numcheck.MaxDiff(grad[i], grad[last]); !(worst <= 1e-5*peak) {
				t.Errorf("%s %+v: gradients differ by %.3g (scale %.3g)", path, s, worst, peak)
			}
		}
	}
}
