package devkernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/segkit/segkit/internal/kernels"
	"github.com/segkit/segkit/internal/testci"
)

// The bodies repeat the portable CPU kernels' arithmetic, so they are compared with those (the
// AVX kernels round differently, e.g. with fused multiply-adds).
func TestMain(m *testing.M) {
	os.Setenv("SEGKIT_ISA", "portable")
	os.Exit(m.Run())
}

func randFloats(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// sameBits reports the first index where a and b differ in their bits.
func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Errorf("%s: element %d of %d is %v, the CPU kernel's %v", what, i, len(want), got[i], want[i])
			return
		}
	}
}

// HRNet's resizes (×2, ×4, ×8 up, the head's to the label size, downsampling, odd sizes), both
// corner conventions, forward and adjoint.
func TestBilinearEqualsCPU(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, s := range [][4]int{{8, 8, 16, 16}, {7, 9, 28, 36}, {5, 6, 40, 48}, {13, 11, 6, 5}, {1, 1, 5, 4}, {6, 5, 1, 1},
		{16, 12, 64, 48}, {33, 31, 33, 31}, {9, 10, 17, 23}} {
		for _, align := range []bool{false, true} {
			b := kernels.Bilinear{Planes: 3, H: s[0], W: s[1], OH: s[2], OW: s[3], AlignCorners: align}
			name := fmt.Sprintf("%d×%d→%d×%d align=%t", s[0], s[1], s[2], s[3], align)
			x := randFloats(rng, b.Planes*b.H*b.W)
			want, got := make([]float32, b.Planes*b.OH*b.OW), make([]float32, b.Planes*b.OH*b.OW)
			b.Forward(x, want)
			BilinearForward(b, x, got)
			sameBits(t, name+" forward", got, want)
			dy := randFloats(rng, b.Planes*b.OH*b.OW)
			wantDx, gotDx := make([]float32, len(x)), make([]float32, len(x))
			b.Backward(dy, wantDx)
			BilinearBackward(b, dy, gotDx)
			sameBits(t, name+" backward", gotDx, wantDx)
		}
	}
}

func TestSumReLUMomentumEqualCPU(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	const n = 1000
	for inputs := 1; inputs <= 7; inputs++ {
		for _, relu := range []bool{false, true} {
			xs := make([][]float32, inputs)
			for i := range xs {
				xs[i] = randFloats(rng, n)
			}
			xs[0][3], xs[0][4] = float32(math.Copysign(0, -1)), float32(math.NaN())
			want, got := make([]float32, n), make([]float32, n)
			kernels.Sum(xs, want, relu)
			Sum(xs, got, relu)
			sameBits(t, fmt.Sprintf("sum of %d relu=%t", inputs, relu), got, want)
		}
	}
	y, dy := randFloats(rng, n), randFloats(rng, n)
	for i := range y {
		y[i] = max(y[i], 0)
	}
	want, got := make([]float32, n), make([]float32, n)
	kernels.ReLUBackward(y, dy, want)
	ReLUBackward(y, dy, got)
	sameBits(t, "relu backward", got, want)

	w, g, v := randFloats(rng, n), randFloats(rng, n), randFloats(rng, n)
	w2, v2 := slices.Clone(w), slices.Clone(v)
	kernels.Momentum(w, g, v, 0.01, 5e-4, 0.9)
	Momentum(w2, g, v2, 0.01, 5e-4, 0.9)
	sameBits(t, "momentum w", w2, w)
	sameBits(t, "momentum v", v2, v)
}

// Softmax cross-entropy: the pixel body against the CPU kernel. exp and log come from the C
// library here (CUDA's on a GPU) and Go's math on the CPU: both within an ulp of the truth,
// so values are compared to 1e-6 of the largest, with the count of differing bits reported.
func TestCrossEntropyMatchesCPU(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	ce := kernels.CrossEntropy{N: 2, C: 21, HW: 37 * 29, Ignore: 255}
	logits := randFloats(rng, ce.N*ce.C*ce.HW)
	for i := range logits {
		logits[i] *= 4
	}
	labels := make([]int32, ce.N*ce.HW)
	for i := range labels {
		labels[i] = int32(rng.IntN(ce.C))
		if rng.IntN(5) == 0 {
			labels[i] = 255
		}
	}
	want, got := make([]float32, len(logits)), make([]float32, len(logits))
	lw, cw, err := ce.Forward(logits, labels, 0.7, want)
	if err != nil {
		t.Fatal(err)
	}
	lg, cg, err := CrossEntropy(ce, logits, labels, 0.7, got)
	if err != nil {
		t.Fatal(err)
	}
	if cw != cg || math.Abs(float64(lg-lw)) > 1e-6*math.Abs(float64(lw)) {
		t.Errorf("loss %v over %d pixels, CPU %v over %d", lg, cg, lw, cw)
	}
	var peak, worst float64
	diff := 0
	for i := range want {
		peak = max(peak, math.Abs(float64(want[i])))
		worst = max(worst, math.Abs(float64(got[i]-want[i])))
		if got[i] != want[i] {
			diff++
		}
	}
	if worst > 1e-6*peak {
		t.Errorf("gradient differs by %g (largest %g)", worst, peak)
	}
	t.Logf("loss %v vs %v; gradient: %d of %d values differ in bits, by at most %g of the largest", lg, lw, diff, len(want), worst/peak)
	labels[7] = 30
	if _, _, err := CrossEntropy(ce, logits, labels, 1, got); err == nil {
		t.Error("label 30 of 21 classes accepted")
	}
}

// DynOPool's sampling: HRNet's levels at alpha 2 (queries on pixel centres), learned fractional
// sizes, clamped borders, max with the winners and mean.
func TestResampleEqualsCPU(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for _, s := range [][4]int{{32, 32, 16, 16}, {31, 27, 12, 15}, {8, 8, 11, 13}, {5, 7, 2, 3}, {1, 9, 1, 4}, {64, 48, 23, 17}} {
		for _, mean := range []bool{false, true} {
			r := kernels.Resample{Planes: 3, H: s[0], W: s[1], OH: s[2], OW: s[3], Mean: mean,
				SizeIn: [2]float64{float64(s[0]), float64(s[1])}, SizeOut: [2]float64{float64(s[2]), float64(s[3])}}
			x := randFloats(rng, r.Planes*r.H*r.W)
			for i := 0; i < len(x); i += 5 {
				x[i] = x[max(i-1, 0)] // ties, where the first winner counts
			}
			n := r.Planes * r.OH * r.OW
			want, got := make([]float32, n), make([]float32, n)
			wa, ga := make([]uint8, n), make([]uint8, n)
			r.Forward(x, want, wa)
			ResampleForward(r, x, got, ga)
			name := fmt.Sprintf("%d×%d→%d×%d mean=%t", s[0], s[1], s[2], s[3], mean)
			sameBits(t, name, got, want)
			if !mean && !slices.Equal(ga, wa) {
				t.Errorf("%s: winners differ", name)
			}
		}
	}
}

// Every kernel compiles to PTX with Debian's clang, without NVIDIA's software: the very text
// NVRTC gets (Source), for sm_80 (the driver JIT-compiles that for newer GPUs).
func TestKernelsCompileToPTX(t *testing.T) {
	clang := ""
	for _, c := range []string{"clang-19", "clang-15", "clang"} {
		if p, err := exec.LookPath(c); err == nil {
			clang = p
			break
		}
	}
	if clang == "" {
		testci.Missing(t, "no clang on PATH (scripts/setup.sh --clang installs clang-15): the CUDA kernels were not compiled to PTX")
	}
	dir := t.TempDir()
	src, out := filepath.Join(dir, "segkit.cu"), filepath.Join(dir, "segkit.ptx")
	if err := os.WriteFile(src, []byte(Source()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(clang, "-x", "cuda", "--cuda-device-only", "--cuda-gpu-arch=sm_80", "-nocudainc", "-nocudalib",
		"-DSK_NO_CUDA_MATH", "-ffp-contract=off", "-O3", "-S", "-Werror", "-Wall", "-Wno-unknown-cuda-version", "-o", out, src)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, b)
	}
	ptx, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range Kernels {
		if !strings.Contains(string(ptx), ".entry "+k+"(") {
			t.Errorf("PTX has no entry %s", k)
		}
	}
	t.Logf("%s: %d kernels, %d bytes of PTX", filepath.Base(clang), len(Kernels), len(ptx))
}

// Source is one translation unit: the bodies, then the kernels, without the include.
func TestSourceIsSelfContained(t *testing.T) {
	s := Source()
	if strings.Contains(s, "#include \"bodies.h\"") || !strings.Contains(s, "SK_FN float sk_max") || !strings.Contains(s, "sk_ce_mean_k") {
		t.Error("Source does not inline bodies.h into kernels.cu")
	}
}

// Without clang the PTX check skips, but fails under CI=true: this test binary runs it again
// with a PATH of one empty directory.
func TestKernelsCompileToPTXWithoutClang(t *testing.T) {
	empty := t.TempDir()
	for _, c := range []struct {
		ci    string
		fails bool
		line  string
	}{{"", false, "--- SKIP: TestKernelsCompileToPTX"}, {"true", true, "--- FAIL: TestKernelsCompileToPTX"}} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKernelsCompileToPTX$", "-test.v")
		cmd.Env = append(os.Environ(), "PATH="+empty, "CI="+c.ci)
		out, err := cmd.CombinedOutput()
		if (err != nil) != c.fails || !strings.Contains(string(out), c.line) || !strings.Contains(string(out), "no clang on PATH") {
			t.Errorf("CI=%q: %v, want failed=%t and %q:\n%s", c.ci, err, c.fails, c.line, out)
		}
	}
}

// The channel copy (concat, slice), the plane-mean gradient and the argmax, compiled until now
// only for the GPU, against the CPU kernels bit for bit: every element the CPU writes, and
// those it leaves alone untouched.
func TestCopySpreadArgmaxEqualCPU(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for _, c := range []struct{ n, srcC, from, dstC, to, count, hw int }{
		{1, 1, 0, 1, 0, 1, 1}, {2, 5, 1, 7, 2, 3, 11}, {3, 4, 0, 9, 5, 4, 35}, {2, 6, 5, 2, 1, 1, 64},
	} {
		src := randFloats(rng, c.n*c.srcC*c.hw)
		src[0] = float32(math.NaN())
		want := randFloats(rng, c.n*c.dstC*c.hw)
		got := slices.Clone(want)
		kernels.CopyChannels(src, c.srcC, c.from, want, c.dstC, c.to, c.count, c.n, c.hw)
		CopyChannels(src, c.srcC, c.from, got, c.dstC, c.to, c.count, c.n, c.hw)
		sameBits(t, fmt.Sprintf("copy channels %+v", c), got, want)
	}
	for _, hw := range []int{1, 3, 35, 1000} {
		dm := randFloats(rng, 7)
		dm[1], dm[2], dm[3] = float32(math.Copysign(0, -1)), float32(math.NaN()), float32(math.Inf(-1))
		dm[4] = math.SmallestNonzeroFloat32 * 3 // subnormal: the division must not flush it
		want, got := make([]float32, len(dm)*hw), make([]float32, len(dm)*hw)
		kernels.SpreadPlanes(dm, hw, want)
		SpreadPlanes(dm, hw, got)
		sameBits(t, fmt.Sprintf("spread planes hw=%d", hw), got, want)
	}
	for _, c := range []struct{ n, c, hw int }{{1, 1, 5}, {2, 3, 17}, {3, 21, 12}} {
		s := randFloats(rng, c.n*c.c*c.hw)
		for i := range s {
			switch rng.IntN(8) {
			case 0:
				s[i] = 0.5 // ties: the first class wins
			case 1:
				s[i] = float32(math.NaN()) // never wins, even in class 0
			case 2:
				s[i] = float32(math.Inf(-1))
			}
		}
		want, got := make([]int32, c.n*c.hw), make([]int32, c.n*c.hw)
		for i := range got {
			got[i] = -1
		}
		kernels.Argmax(s, c.n, c.c, c.hw, want)
		Argmax(s, c.n, c.c, c.hw, got)
		if !slices.Equal(got, want) {
			t.Errorf("argmax %+v: %v, CPU %v", c, got, want)
		}
	}
}
