package kernels

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/segkit/segkit/internal/numcheck"
)

// TestResampleAVX512MatchesGo checks the AVX-512 forward and the C backward against the Go ones
// bit for bit (values, winners, input and size gradients), max and mean, on queries on pixel centres (alpha 2), shrinking, growing, border
// clamping, single rows and columns and widths off the vector width; ties included.
func TestResampleAVX512MatchesGo(t *testing.T) {
	if !useAVX512() {
		t.Skip("no AVX-512")
	}
	rng := rand.New(rand.NewPCG(8, 8))
	for _, s := range [][4]int{{8, 8, 4, 4}, {37, 53, 13, 29}, {5, 7, 9, 11}, {1, 1, 1, 1}, {1, 40, 1, 17}, {40, 1, 23, 1}, {64, 64, 32, 32}, {30, 100, 11, 67}} {
		for _, mean := range []bool{false, true} {
			r := Resample{Planes: 3, H: s[0], W: s[1], OH: s[2], OW: s[3], Mean: mean,
				SizeIn: [2]float64{float64(s[0]), float64(s[1])}, SizeOut: [2]float64{float64(s[2]), float64(s[3])}}
			x := randSlice(rng, r.Planes*r.H*r.W)
			for i := range x {
				if rng.IntN(4) == 0 {
					x[i] = 0 // ties between queries
				}
			}
			dy := randSlice(rng, r.Planes*r.OH*r.OW)
			var y, dx [2][]float32
			var won [2][]uint8
			var dIn, dOut [2][2]float64
			onBothPaths(func(i int) {
				y[i], won[i] = make([]float32, r.Planes*r.OH*r.OW), make([]uint8, r.Planes*r.OH*r.OW)
				r.Forward(x, y[i], won[i])
				dx[i] = make([]float32, len(x))
				dIn[i], dOut[i] = r.Backward(x, dy, dx[i], won[i])
			})
			if !slices.Equal(y[0], y[1]) || (!mean && !slices.Equal(won[0], won[1])) {
				t.Errorf("%v mean=%v: AVX-512 forward differs from Go's", s, mean)
			}
			if !slices.Equal(dx[0], dx[1]) || dIn[0] != dIn[1] || dOut[0] != dOut[1] {
				t.Errorf("%v mean=%v: C backward differs from Go's: size gradients %v %v, want %v %v", s, mean, dIn[0], dOut[0], dIn[1], dOut[1])
			}
		}
	}
}

// TestBilinearPaths checks the AVX-512 bilinear resize against the Go one: the forward bit for
// bit, the (differently summed) backward to float32 rounding; up, down, to one pixel and back.
func TestBilinearPaths(t *testing.T) {
	if !useAVX512() {
		t.Skip("no AVX-512")
	}
	rng := rand.New(rand.NewPCG(4, 9))
	for _, s := range [][4]int{{16, 16, 64, 64}, {37, 21, 128, 100}, {64, 48, 17, 13}, {1, 1, 5, 7}, {5, 7, 1, 1}, {9, 33, 9, 33}} {
		for _, align := range []bool{false, true} {
			b := Bilinear{Planes: 3, H: s[0], W: s[1], OH: s[2], OW: s[3], AlignCorners: align}
			x, dy := randSlice(rng, b.Planes*b.H*b.W), randSlice(rng, b.Planes*b.OH*b.OW)
			var y, dx [2][]float32
			onBothPaths(func(i int) {
				y[i], dx[i] = make([]float32, len(dy)), make([]float32, len(x))
				b.Forward(x, y[i])
				b.Backward(dy, dx[i])
			})
			if !slices.Equal(y[0], y[1]) {
				t.Errorf("%v align_corners=%v: AVX-512 forward differs from Go's", s, align)
			}
			if worst, peak := numcheck.MaxDiff(dx[0], dx[1]); !(worst <= 1e-5*peak) {
				t.Errorf("%v align_corners=%v: backward differs by %.3g (scale %.3g)", s, align, worst, peak)
			}
		}
	}
}
