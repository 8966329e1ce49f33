package kernels

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/segkit/segkit/internal/numcheck"
)

// TestResampleCMatchesGo checks the C forward of every path the CPU runs and the C backward against the Go ones
// bit for bit (values, winners, input and size gradients), max and mean, on queries on pixel centres (alpha 2), shrinking, growing, border
// clamping, single rows and columns and widths off the vector width; ties included.
func TestResampleCMatchesGo(t *testing.T) {
	needCPaths(t)
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
			n := len(cpuPaths())
			y, dx, won := make([][]float32, n), make([][]float32, n), make([][]uint8, n)
			dIn, dOut := make([][2]float64, n), make([][2]float64, n)
			last := onPaths(func(i int) {
				y[i], won[i] = make([]float32, r.Planes*r.OH*r.OW), make([]uint8, r.Planes*r.OH*r.OW)
				r.Forward(x, y[i], won[i])
				dx[i] = make([]float32, len(x))
				dIn[i], dOut[i] = r.Backward(x, dy, dx[i], won[i])
			}) - 1
			for i := range last {
				path := isaNames[cpuPaths()[i]]
				if !slices.Equal(y[i], y[last]) || (!mean && !slices.Equal(won[i], won[last])) {
					t.Errorf("%s %v mean=%v: forward differs from Go's", path, s, mean)
				}
				if !slices.Equal(dx[i], dx[last]) || dIn[i] != dIn[last] || dOut[i] != dOut[last] {
					t.Errorf("%s %v mean=%v: C backward differs from Go's: size gradients %v %v, want %v %v", path, s, mean, dIn[i], dOut[i], dIn[last], dOut[last])
				}
			}
		}
	}
}

// TestBilinearPaths checks the C bilinear resize of every path the CPU runs against the Go one: the forward bit for
// bit, the (differently summed) backward to float32 rounding; up, down, to one pixel and back.
func TestBilinearPaths(t *testing.T) {
	needCPaths(t)
	rng := rand.New(rand.NewPCG(4, 9))
	for _, s := range [][4]int{{16, 16, 64, 64}, {37, 21, 128, 100}, {64, 48, 17, 13}, {1, 1, 5, 7}, {5, 7, 1, 1}, {9, 33, 9, 33}} {
		for _, align := range []bool{false, true} {
			b := Bilinear{Planes: 3, H: s[0], W: s[1], OH: s[2], OW: s[3], AlignCorners: align}
			x, dy := randSlice(rng, b.Planes*b.H*b.W), randSlice(rng, b.Planes*b.OH*b.OW)
			n := len(cpuPaths())
			y, dx := make([][]float32, n), make([][]float32, n)
			last := onPaths(func(i int) {
				y[i], dx[i] = make([]float32, len(dy)), make([]float32, len(x))
				b.Forward(x, y[i])
				b.Backward(dy, dx[i])
			}) - 1
			for i := range last {
				path := isaNames[cpuPaths()[i]]
				if !slices.Equal(y[i], y[last]) {
					t.Errorf("%s %v align_corners=%v: forward differs from Go's", path, s, align)
				}
				if worst, peak := numcheck.MaxDiff(dx[i], dx[last]); !(worst <= 1e-5*peak) {
					t.Errorf("%s %v align_corners=%v: backward differs by %.3g (scale %.3g)", path, s, align, worst, peak)
				}
			}
		}
	}
}

// The centre query (Resample.Bilinear) is the half-pixel bilinear resize: the Bilinear kernel's
// values and input gradients to float32 rounding (they round differently: lerp against weighted
// sums), growing, shrinking and mixed; at equal sizes it is the identity, bit for bit.
func TestResampleCentreIsBilinear(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 1))
	for _, s := range [][4]int{{9, 13, 4, 6}, {8, 8, 16, 16}, {6, 10, 13, 4}, {1, 7, 3, 7}, {7, 7, 7, 7}, {12, 6, 12, 6}} {
		r := Resample{Planes: 3, H: s[0], W: s[1], OH: s[2], OW: s[3], Bilinear: true,
			SizeIn: [2]float64{float64(s[0]), float64(s[1])}, SizeOut: [2]float64{float64(s[2]), float64(s[3])}}
		b := Bilinear{Planes: 3, H: s[0], W: s[1], OH: s[2], OW: s[3]}
		x, dy := randSlice(rng, r.Planes*r.H*r.W), randSlice(rng, r.Planes*r.OH*r.OW)
		y, want := make([]float32, len(dy)), make([]float32, len(dy))
		r.Forward(x, y, nil)
		b.Forward(x, want)
		dx, wantDx := make([]float32, len(x)), make([]float32, len(x))
		r.Backward(x, dy, dx, nil)
		b.Backward(dy, wantDx)
		if s[0] == s[2] && s[1] == s[3] {
			if !slices.Equal(y, x) || !slices.Equal(dx, dy) {
				t.Errorf("%v: the centre query at equal sizes is not the identity", s)
			}
			continue
		}
		if worst, peak := numcheck.MaxDiff(y, want); !(worst <= 1e-6*peak) {
			t.Errorf("%v: forward differs from the bilinear resize by %.3g (scale %.3g)", s, worst, peak)
		}
		if worst, peak := numcheck.MaxDiff(dx, wantDx); !(worst <= 1e-5*peak) {
			t.Errorf("%v: input gradient differs from the bilinear resize's by %.3g (scale %.3g)", s, worst, peak)
		}
	}
}
