package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/segkit/segkit/internal/numcheck"
)

// naiveGemm is the float64 reference for Sgemm.
func naiveGemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int,
	beta float32, c []float32, ldc int) []float64 {
	out := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				ai, bi := i*lda+p, p*ldb+j
				if transA {
					ai = p*lda + i
				}
				if transB {
					bi = j*ldb + p
				}
				av, bv := a[ai], b[bi]
				s += float64(av) * float64(bv)
			}
			out[i*n+j] = float64(alpha)*s + float64(beta)*float64(c[i*ldc+j])
		}
	}
	return out
}

// TestSgemm checks every transpose combination, edge tiles (m, n not multiples of the register
// tile, k across cache blocks), strides wider than the matrices, alpha and beta, and that C's
// padding columns are never written, on every path the CPU runs.
func TestSgemm(t *testing.T) {
	onPaths(func(i int) { t.Run(isaNames[cpuPaths()[i]], testSgemm) })
}

func testSgemm(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	shapes := [][3]int{{1, 1, 1}, {6, 64, 256}, {7, 65, 257}, {18, 100, 27}, {5, 1000, 600}, {13, 3, 5}, {64, 17, 513}}
	for _, sh := range shapes {
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				for _, ab := range [][2]float32{{1, 0}, {0.5, 1}, {-2, 0.25}} {
					m, n, k := sh[0], sh[1], sh[2]
					lda, ldb, ldc := k+3, n+2, n+5
					if ta {
						lda = m + 3
					}
					if tb {
						ldb = k + 2
					}
					arows, brows := m, k
					if ta {
						arows = k
					}
					if tb {
						brows = n
					}
					a, b, c := randSlice(rng, arows*lda), randSlice(rng, brows*ldb), randSlice(rng, m*ldc)
					want := naiveGemm(ta, tb, m, n, k, ab[0], a, lda, b, ldb, ab[1], c, ldc)
					orig := append([]float32(nil), c...)
					Sgemm(ta, tb, m, n, k, ab[0], a, lda, b, ldb, ab[1], c, ldc)
					for i := 0; i < m; i++ {
						for j := 0; j < ldc; j++ {
							got := float64(c[i*ldc+j])
							if j >= n {
								if c[i*ldc+j] != orig[i*ldc+j] {
									t.Fatalf("%v ta=%v tb=%v: padding C[%d][%d] written", sh, ta, tb, i, j)
								}
								continue
							}
							w := want[i*n+j]
							if !numcheck.Close(got, w, 1e-4*(1+math.Sqrt(float64(k)))) {
								t.Fatalf("%v ta=%v tb=%v alpha,beta=%v: C[%d][%d] = %g, want %g", sh, ta, tb, ab, i, j, got, w)
							}
						}
					}
				}
			}
		}
	}
}

// TestSgemmBetaZeroIgnoresC checks that beta = 0 overwrites C without reading it (NaN stays out).
func TestSgemmBetaZeroIgnoresC(t *testing.T) {
	onPaths(func(i int) {
		a, b := []float32{1, 2}, []float32{3, 4}
		c := []float32{float32(math.NaN())}
		Sgemm(false, false, 1, 1, 2, 1, a, 2, b, 1, 0, c, 1)
		if c[0] != 11 {
			t.Errorf("%s: got %v, want 11", isaNames[cpuPaths()[i]], c[0])
		}
	})
}

// TestSgemmPathsAgree checks that the AVX2 GEMM equals the AVX-512 one bit for bit (the same FMA
// chain per element, the same k blocking), epilogues included, where the CPU runs both.
func TestSgemmPathsAgree(t *testing.T) {
	if cpuISA() < isaAVX512 {
		t.Skip("needs a CPU with AVX-512 (and so AVX2)")
	}
	rng := rand.New(rand.NewPCG(5, 5))
	for _, sh := range [][3]int{{1, 1, 1}, {7, 65, 257}, {18, 100, 27}, {13, 1000, 600}, {64, 17, 513}} {
		m, n, k := sh[0], sh[1], sh[2]
		for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			a, b, c0 := randSlice(rng, m*k), randSlice(rng, k*n), randSlice(rng, m*n)
			lda, ldb := k, n
			if tr[0] {
				lda = m
			}
			if tr[1] {
				ldb = k
			}
			ep := Affine{Scale: randSlice(rng, m), Shift: randSlice(rng, m), Add: randSlice(rng, m*n), ReLU: true}
			var got [2][]float32
			for i, p := range []isa{isaAVX512, isaAVX2} {
				saved := level()
				kernelISA.level = p
				got[i] = slices.Clone(c0)
				sgemm(tr[0], tr[1], m, n, k, 0.5, a, lda, b, ldb, 0.25, got[i], n, ep)
				kernelISA.level = saved
			}
			if !slices.Equal(got[0], got[1]) {
				t.Errorf("%v trans %v: AVX2 GEMM differs from AVX-512's", sh, tr)
			}
		}
	}
}

// BenchmarkSgemmShapes times single-threaded GEMMs of the convolutions' shapes (forward:
// K×(C·9) by (C·9)×cols); compare SEGKIT_AVX512=off (OpenBLAS).
func BenchmarkSgemmShapes(b *testing.B) {
	rng := rand.New(rand.NewPCG(4, 4))
	for _, s := range [][3]int{{48, 2048, 432}, {96, 1024, 864}, {192, 512, 1728}, {384, 256, 3456}, {2048, 2048, 2048}} {
		m, n, k := s[0], s[1], s[2]
		for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}} {
			b.Run(fmt.Sprintf("%dx%dx%d-t%v", m, n, k, tr), func(b *testing.B) {
				a, bb, c := randSlice(rng, m*k), randSlice(rng, k*n), make([]float32, m*n)
				lda, ldb := k, n
				if tr[0] {
					lda = m
				}
				if tr[1] {
					ldb = k
				}
				b.ResetTimer()
				start := time.Now()
				for i := 0; i < b.N; i++ {
					Sgemm(tr[0], tr[1], m, n, k, 1, a, lda, bb, ldb, 0, c, n)
				}
				reportGFLOPs(b, 2*float64(m)*float64(n)*float64(k), time.Since(start))
			})
		}
	}
}

// cpuPaths lists the kernels this CPU runs, best first: the last is the portable one.
func cpuPaths() []isa {
	var ps []isa
	for l := cpuISA(); l >= isaPortable; l-- {
		ps = append(ps, l)
	}
	return ps
}

// onPaths runs run(i) on each of cpuPaths()'s kernels in turn, whatever the environment selects
// (tests compare every other path with the last, portable one), and returns how many ran.
func onPaths(run func(i int)) int {
	saved := level()
	defer func() { kernelISA.level = saved }()
	ps := cpuPaths()
	for i, p := range ps {
		kernelISA.level = p
		run(i)
	}
	return len(ps)
}

// needCPaths skips tests that compare C kernels with the Go ones on CPUs that have none.
func needCPaths(t *testing.T) {
	if len(cpuPaths()) < 2 {
		t.Skip("no C kernels for this CPU")
	}
}

// The kernels follow SEGKIT_ISA (or SEGKIT_AVX512=off) as read when the tests run: the passes of
// scripts/test.sh on the other paths must run those kernels (and so must not replay a cached run).
func TestPathFollowsEnvironment(t *testing.T) {
	want := os.Getenv("SEGKIT_ISA")
	if want == "" && os.Getenv("SEGKIT_AVX512") == "off" {
		want = "portable"
	}
	for _, p := range cpuPaths() {
		if isaNames[p] == want && Path() != want {
			t.Fatalf("SEGKIT_ISA=%s but the kernels run %s", want, Path())
		}
	}
	t.Logf("kernels: %s (this CPU: %v)", Path(), cpuPaths())
}

// TestRequestedISA checks the environment's choice: capped at what the CPU has, the alias, and
// unknown names ignored.
func TestRequestedISA(t *testing.T) {
	for _, c := range []struct {
		isa, avx512 string
		best, want  isa
	}{
		{"", "", isaAVX512, isaAVX512}, {"avx2", "", isaAVX512, isaAVX2}, {"portable", "", isaAVX2, isaPortable},
		{"avx512", "", isaAVX2, isaAVX2}, {"", "off", isaAVX512, isaPortable}, {"avx2", "off", isaAVX512, isaAVX2},
		{"sse", "", isaAVX2, isaAVX2}, {"avx2", "", isaPortable, isaPortable},
	} {
		t.Setenv("SEGKIT_ISA", c.isa)
		t.Setenv("SEGKIT_AVX512", c.avx512)
		if got := requestedISA(c.best); got != c.want {
			t.Errorf("SEGKIT_ISA=%q SEGKIT_AVX512=%q on %s: %s, want %s", c.isa, c.avx512, isaNames[c.best], isaNames[got], isaNames[c.want])
		}
	}
}
