package kernels

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/segkit/segkit/internal/numcheck"
)

// TestCrossEntropyPaths compares the AVX-512 softmax cross-entropy with the float64 Go one on
// plane sizes off the vector width, several images split across goroutines, ignored pixels and
// large logits.
func TestCrossEntropyPaths(t *testing.T) {
	if !useAVX512() {
		t.Skip("no AVX-512")
	}
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
		var loss [2]float32
		var count [2]int
		var grad [2][]float32
		onBothPaths(func(i int) {
			grad[i] = make([]float32, len(logits))
			for j := range grad[i] {
				grad[i][j] = float32(math.NaN()) // every element must be written
			}
			var err error
			loss[i], count[i], err = ce.Forward(logits, labels, 0.5, grad[i])
			if err != nil {
				t.Fatal(err)
			}
		})
		if count[0] != count[1] || !numcheck.Close(float64(loss[0]), float64(loss[1]), 1e-5*math.Abs(float64(loss[1]))) {
			t.Errorf("%+v: loss %v over %d pixels, want %v over %d", s, loss[0], count[0], loss[1], count[1])
		}
		if worst, peak := numcheck.MaxDiff(grad[0], grad[1]); !(worst <= 1e-5*peak) {
			t.Errorf("%+v: gradients differ by %.3g (scale %.3g)", s, worst, peak)
		}
	}
}
