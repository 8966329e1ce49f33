package kernels

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"
	"time"
)

// smallCropConvs are the inference convolutions of w18_small_v1 at 176² × 8 (N fixed to 8):
// C, K, H(=W), kernel, stride, calls.
var smallCropConvs = [][6]int{
	{3, 64, 176, 3, 2, 1}, {64, 64, 88, 3, 2, 1}, {64, 32, 44, 1, 1, 1}, {32, 32, 44, 3, 1, 1}, {32, 128, 44, 1, 1, 1},
	{64, 128, 44, 1, 1, 1}, {128, 16, 44, 3, 1, 1}, {128, 32, 44, 3, 2, 1}, {16, 16, 44, 3, 1, 12}, {32, 32, 22, 3, 1, 12},
	{64, 64, 11, 3, 1, 8}, {128, 128, 6, 3, 1, 4}, {16, 32, 44, 3, 2, 3}, {16, 16, 44, 3, 2, 3}, {32, 64, 22, 3, 2, 3},
	{64, 128, 11, 3, 2, 2}, {16, 64, 22, 3, 2, 2}, {32, 16, 22, 1, 1, 3}, {64, 32, 11, 1, 1, 2}, {64, 16, 11, 1, 1, 2},
	{240, 240, 44, 1, 1, 1}, {240, 21, 44, 1, 1, 1}, {32, 32, 22, 3, 2, 1}, {16, 16, 22, 3, 2, 1}, {16, 128, 11, 3, 2, 1},
	{32, 128, 11, 3, 2, 1},
}

// BenchmarkSmallCrop times each convolution of smallCropConvs as the network calls it (Winograd
// where the inference graph takes it, folded BN and ReLU) and prints a table: by default on one
// worker in the thread's CPU time (what other load on the machine disturbs least),
// SMALLCROP_WORKERS=2 on two workers in wall time; SMALLCROP=i times row i alone, 20× longer
// (for perf record). Each row is the fastest of 5 rounds.
func BenchmarkSmallCrop(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	saved := Workers
	defer func() { Workers = saved }()
	Workers = 1
	clock := threadTime
	if os.Getenv("SMALLCROP_WORKERS") == "2" {
		Workers, clock = 2, func() time.Duration { return time.Duration(time.Now().UnixNano()) }
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var total time.Duration
	only := os.Getenv("SMALLCROP")
	for i, s := range smallCropConvs {
		if only != "" && only != fmt.Sprint(i) {
			continue
		}
		c := Conv{N: 8, C: s[0], H: s[2], W: s[2], K: s[1], Kernel: s[3], Stride: s[4], Pad: s[3] / 2, Dilation: 1, Winograd: true}
		oh, ow := c.OutSize()
		x, w := randSlice(rng, 8*c.C*c.H*c.W), randSlice(rng, c.K*c.C*s[3]*s[3])
		y := make([]float32, 8*c.K*oh*ow)
		ep := Affine{Scale: randSlice(rng, c.K), Shift: randSlice(rng, c.K), ReLU: true}
		c.ForwardAffine(x, w, ep, y)
		reps := max(2, int(2e8/c.FLOPs()))
		if only != "" {
			reps *= 20
		}
		per := time.Duration(1 << 62)
		for round := 0; round < 5; round++ { // other load only slows a round down
			t0 := clock()
			for i := 0; i < reps; i++ {
				c.ForwardAffine(x, w, ep, y)
			}
			per = min(per, (clock()-t0)/time.Duration(reps))
		}
		total += per * time.Duration(s[5])
		fmt.Fprintf(os.Stderr, "%3d>%-3d %3d² k%d s%d wino=%-5v ×%-2d %6.2f ms/call %6.2f ms  %5.1f GFLOP/s\n", c.C, c.K, c.H, s[3], s[4],
			c.winograd(), s[5], per.Seconds()*1e3, (per*time.Duration(s[5])).Seconds()*1e3, c.FLOPs()/per.Seconds()/1e9)
	}
	fmt.Fprintf(os.Stderr, "total %.1f ms on %d worker(s)\n", total.Seconds()*1e3, Workers)
}
