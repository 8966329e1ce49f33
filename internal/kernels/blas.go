package kernels

/*
#cgo LDFLAGS: -lopenblas -lm
#cgo CFLAGS: -O3
// Declared here rather than through <cblas.h>: Debian installs that header under a
// BLAS-vendor-specific path, and these two prototypes are all we need (C enums are ints).
void cblas_sgemm(int order, int transA, int transB, int m, int n, int k, float alpha,
                 const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
void openblas_set_num_threads(int n);
#include "kernels.h"
*/
import "C"

import (
	"fmt"
	"os"
	"sync"
	"unsafe"
)

// isa is a set of kernels: the C ones for a CPU family, or the portable Go ones (with OpenBLAS).
type isa int

const (
	isaPortable isa = iota // Go and OpenBLAS: any CPU
	isaAVX2                // *_tmpl.h on simd_avx2.h: AVX2 and FMA (x86-64 since Haswell and Zen)
	isaAVX512              // *_tmpl.h on simd_avx512.h: AVX-512F

	// The numbers are kernels.h's too (segkit_kernels_for, segkit_cpu_isa).
)

var isaNames = [...]string{isaPortable: "portable", isaAVX2: "avx2", isaAVX512: "avx512"}

// kernelISA records which kernels run: the best the CPU has, or a lesser one that SEGKIT_ISA
// (avx512, avx2 or portable; SEGKIT_AVX512=off is an alias of portable) asks for, to compare or to
// test them. It is decided at the first kernel call, not at package initialisation: `go test`
// keys its cache only on environment variables read while tests run, so a value read earlier
// would let `SEGKIT_ISA=portable go test` replay the AVX-512 results.
var kernelISA struct {
	once   sync.Once
	level  isa
	tables [isaAVX512 + 1]*C.segkit_kernels // each level's C kernels (kernels.h); nil: portable
}

// requestedISA returns the kernels the environment asks for, capped at those the CPU has; an
// unknown name is reported and ignored.
func requestedISA(best isa) isa {
	want := os.Getenv("SEGKIT_ISA")
	if want == "" && os.Getenv("SEGKIT_AVX512") == "off" {
		want = "portable"
	}
	if want == "" {
		return best
	}
	for l, name := range isaNames {
		if name == want {
			return min(isa(l), best)
		}
	}
	fmt.Fprintf(os.Stderr, "segkit: SEGKIT_ISA=%q is not avx512, avx2 or portable; running %s\n", want, isaNames[best])
	return best
}

func level() isa {
	kernelISA.once.Do(func() {
		kernelISA.level = requestedISA(cpuISA())
		for l := range kernelISA.tables {
			kernelISA.tables[l] = kernelsFor(isa(l))
		}
	})
	return kernelISA.level
}

// simd returns the table of the C kernels in use (kernels.h); nil when the portable ones run.
func simd() *C.segkit_kernels { return kernelISA.tables[level()] }

// Path names the kernels in use: "avx512", "avx2" or "portable" (OpenBLAS and Go).
func Path() string { return isaNames[level()] }

const (
	cblasRowMajor = 101
	cblasNoTrans  = 111
	cblasTrans    = 112
)

// Sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices, where op(A) is m×k,
// op(B) is k×n and C is m×n, through OpenBLAS. lda, ldb, ldc are the row strides.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int,
	beta float32, c []float32, ldc int) {
	sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, Affine{})
}

// Affine is a per-channel epilogue fused into a kernel's output: y = Scale[i]·y + Shift[i]
// (nil Scale: 1, nil Shift: 0), plus Add (a tensor laid out as y; nil: none), then max(y, 0)
// when ReLU — a convolution's bias, or an inference-mode batch norm folded into the convolution
// before it, with the residual sum and ReLU after it.
type Affine struct {
	Scale, Shift, Add []float32
	ReLU              bool
}

func (a Affine) none() bool { return a.Scale == nil && a.Shift == nil && a.Add == nil && !a.ReLU }

// from returns the epilogue for the part of the output that starts at offset off.
func (a Affine) from(off int) Affine {
	if a.Add != nil {
		a.Add = a.Add[off:]
	}
	return a
}

// apply applies the epilogue to rows of length n (stride ld) of channels [0, channels).
func (a Affine) apply(c []float32, channels, n, ld int) {
	if a.none() {
		return
	}
	for i := 0; i < channels; i++ {
		sc, sh := float32(1), float32(0)
		if a.Scale != nil {
			sc = a.Scale[i]
		}
		if a.Shift != nil {
			sh = a.Shift[i]
		}
		row := c[i*ld : i*ld+n]
		if a.Add != nil {
			for j, v := range a.Add[i*ld : i*ld+n] {
				row[j] = row[j]*sc + sh + v
			}
			sc, sh = 1, 0
		}
		affineRow(row, row, sc, sh, a.ReLU)
	}
}

// affineRow writes dst = src·scale + shift, then max(·, 0) when relu.
func affineRow(src, dst []float32, scale, shift float32, relu bool) {
	dst = dst[:len(src)]
	if relu {
		for i, v := range src {
			dst[i] = max(v*scale+shift, 0)
		}
		return
	}
	for i, v := range src {
		dst[i] = v*scale + shift
	}
}

// ptr returns a C pointer to s[0], or nil for an empty slice.
func ptr(s []float32) *C.float {
	if len(s) == 0 {
		return nil
	}
	return (*C.float)(unsafe.Pointer(&s[0]))
}

// cint returns a C pointer to s[0] (s not empty).
func cint(s []int32) *C.int { return (*C.int)(unsafe.Pointer(&s[0])) }

// sgemm is Sgemm followed by the epilogue ep on the rows of C (fused in the AVX-512 kernel).
func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int,
	beta float32, c []float32, ldc int, ep Affine) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		// BLAS would leave C untouched only for beta == 1; make the empty sum explicit.
		for i := 0; i < m; i++ {
			row := c[i*ldc : i*ldc+n]
			for j := range row {
				row[j] *= beta
			}
		}
		ep.apply(c, m, n, ldc)
		return
	}
	pa, pb, pc := ptr(a), ptr(b), ptr(c)
	if kt := simd(); kt != nil {
		C.segkit_sgemm(kt, cbool(transA), cbool(transB), C.long(m), C.long(n), C.long(k), C.float(alpha),
			pa, C.long(lda), pb, C.long(ldb), C.float(beta), pc, C.long(ldc), ptr(ep.Scale), ptr(ep.Shift), ptr(ep.Add), cbool(ep.ReLU))
		return
	}
	ta, tb := C.int(cblasNoTrans), C.int(cblasNoTrans)
	if transA {
		ta = cblasTrans
	}
	if transB {
		tb = cblasTrans
	}
	C.cblas_sgemm(cblasRowMajor, ta, tb, C.int(m), C.int(n), C.int(k), C.float(alpha),
		pa, C.int(lda), pb, C.int(ldb), C.float(beta), pc, C.int(ldc))
	ep.apply(c, m, n, ldc)
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

func init() {
	// Kernels split their work over goroutines themselves and call OpenBLAS single-threaded:
	// OpenBLAS's own threads spin after each call and would take the cores from that work.
	SetBLASThreads(1)
}

// ParallelSgemm is Sgemm split over Workers goroutines along the columns of C (or its rows when
// C is narrow), each part a single-threaded OpenBLAS call.
func ParallelSgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int,
	beta float32, c []float32, ldc int) {
	const minPart = 64
	byCols := n >= m
	size := m
	if byCols {
		size = n
	}
	parts := min(Workers, size/minPart)
	if parts <= 1 || float64(m)*float64(n)*float64(k) < 1<<20 {
		Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	step := (size + parts - 1) / parts
	parallelBlocks(parts, func(_, p int) {
		lo, hi := p*step, min((p+1)*step, size)
		if lo >= hi {
			return
		}
		if byCols {
			boff := lo // op(B) columns: B's columns, or B's rows when transposed
			if transB {
				boff = lo * ldb
			}
			Sgemm(transA, transB, m, hi-lo, k, alpha, a, lda, b[boff:], ldb, beta, c[lo:], ldc)
			return
		}
		aoff := lo * lda // op(A) rows: A's rows, or A's columns when transposed
		if transA {
			aoff = lo
		}
		Sgemm(transA, transB, hi-lo, n, k, alpha, a[aoff:], lda, b, ldb, beta, c[lo*ldc:], ldc)
	})
}

// SetBLASThreads sets how many threads OpenBLAS uses for one GEMM.
func SetBLASThreads(n int) { C.openblas_set_num_threads(C.int(n)) }

// implicitConv reports whether the convolution runs as an implicit GEMM (a C GEMM packing the
// patch matrix straight from the image) rather than im2col and a GEMM.
func (c Conv) implicitConv() bool { return simd() != nil && !c.pointwise() }

// implicitGemm computes output pixels [q0, q0+nq) of image x's convolution (y and ep's Add
// start at pixel q0) with the C GEMM packing the patch matrix straight from x (through phase
// planes when phased).
func (c Conv) implicitGemm(x, w []float32, q0, nq int, y []float32, ep Affine, phased bool) {
	C.segkit_conv_sgemm(simd(), C.long(c.C), C.long(c.H), C.long(c.W), C.long(c.K), C.long(c.Kernel), C.long(c.Stride),
		C.long(c.Pad), C.long(c.Dilation), ptr(x), ptr(w), C.long(q0), C.long(nq), ptr(y),
		ptr(ep.Scale), ptr(ep.Shift), ptr(ep.Add), cbool(ep.ReLU), cbool(phased))
}

// phased reports whether the forward convolution packs from phase planes (conv_geometry.h's
// phase_window): at stride 2 every tap then reads consecutive pixels, which packs several times
// faster than every other column.
func (c Conv) phased() bool { return c.implicitConv() && c.Stride == 2 }

// implicitFilterGrad sets (beta 0) or adds to (beta 1) dw the filter gradient of output pixels
// [q0, q0+nq) of image x (dy starts at pixel q0), packing the patches straight from x.
func (c Conv) implicitFilterGrad(x, dy []float32, q0, nq int, dw []float32, beta float32) {
	C.segkit_conv_filter_grad(simd(), C.long(c.C), C.long(c.H), C.long(c.W), C.long(c.K), C.long(c.Kernel), C.long(c.Stride),
		C.long(c.Pad), C.long(c.Dilation), ptr(x), ptr(dy), C.long(q0), C.long(nq), ptr(dw), C.float(beta))
}

func (l isa) String() string { return isaNames[l] }
