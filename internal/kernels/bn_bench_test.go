package kernels

import (
	"math/rand/v2"
	"testing"
)

func BenchmarkBatchNormTrain(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	bn := BatchNorm{N: 2, C: 48, HW: 128 * 128, Eps: 1e-5, ReLU: true}
	x := randSlice(rng, 2*48*128*128)
	y, dx := make([]float32, len(x)), make([]float32, len(x))
	g, be := randSlice(rng, 48), randSlice(rng, 48)
	st := Stats{make([]float32, 48), make([]float32, 48)}
	rm, rv := make([]float32, 48), make([]float32, 48)
	b.Run("forward", func(b *testing.B) {
		b.SetBytes(int64(8 * len(x)))
		for i := 0; i < b.N; i++ {
			bn.ForwardTrain(x, g, be, y, st, rm, rv, 0.1)
		}
	})
	b.Run("backward", func(b *testing.B) {
		b.SetBytes(int64(12 * len(x)))
		for i := 0; i < b.N; i++ {
			bn.Backward(x, y, x, g, st, true, dx, rm, rv)
		}
	})
	b.Run("copy", func(b *testing.B) {
		b.SetBytes(int64(8 * len(x)))
		for i := 0; i < b.N; i++ {
			copy(y, x)
		}
	})
}
