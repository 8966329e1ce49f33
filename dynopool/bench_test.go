package dynopool

import (
	"math/rand/v2"
	"testing"

	"github.com/segkit/segkit/internal/kernels"
)

// BenchmarkPoolVsConv times DynOPool forward + backward at N=2, C=48, 128×128 → 64×64 (alpha 2,
// and a non-integer alpha) next to the 3×3 conv 48→48 at 64×64 it feeds, forward + backward.
func BenchmarkPoolVsConv(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	x := randFloats(rng, 2*48*128*128)
	dx := make([]float32, len(x))
	for _, c := range []struct {
		name   string
		oh, ow int
		sizeIn [2]float64
	}{{"pool-alpha2", 64, 64, [2]float64{128, 128}}, {"pool-alpha1.9x2.1", 67, 61, [2]float64{128, 128}}} {
		b.Run(c.name, func(b *testing.B) {
			r := kernels.Resample{Planes: 96, H: 128, W: 128, OH: c.oh, OW: c.ow, SizeIn: c.sizeIn,
				SizeOut: [2]float64{float64(c.oh), float64(c.ow)}}
			y, dy := make([]float32, 96*c.oh*c.ow), randFloats(rng, 96*c.oh*c.ow)
			won := make([]uint8, len(y)) // as in training: the forward records the winners
			for i := 0; i < b.N; i++ {
				r.Forward(x, y, won)
				r.Backward(x, dy, dx, won)
			}
		})
		b.Run(c.name+"-forward", func(b *testing.B) {
			r := kernels.Resample{Planes: 96, H: 128, W: 128, OH: c.oh, OW: c.ow, SizeIn: c.sizeIn,
				SizeOut: [2]float64{float64(c.oh), float64(c.ow)}}
			y := make([]float32, 96*c.oh*c.ow)
			for i := 0; i < b.N; i++ {
				r.Forward(x, y, nil)
			}
		})
	}
	b.Run("conv3x3-48-64x64", func(b *testing.B) {
		conv := kernels.Conv{N: 2, C: 48, H: 64, W: 64, K: 48, Kernel: 3, Stride: 1, Pad: 1, Dilation: 1}
		in, w, dy := randFloats(rng, 2*48*64*64), randFloats(rng, 48*48*9), randFloats(rng, 2*48*64*64)
		y, din, dw := make([]float32, len(dy)), make([]float32, len(in)), make([]float32, len(w))
		for i := 0; i < b.N; i++ {
			conv.Forward(in, w, nil, y)
			conv.BackwardData(w, dy, din)
			conv.BackwardFilter(in, dy, dw, nil)
		}
	})
}
