// Package kernels holds the float32 NCHW compute kernels behind the graph ops: convolution,
// batch normalisation, bilinear resizing, DynOPool's sampling, softmax cross-entropy and
// elementwise helpers. Kernels work on plain slices; shapes are checked by the callers.
//
// The heavy kernels are C with intrinsics for two x86-64 families, chosen at the first kernel
// call by the CPU's features: AVX-512 (*_avx512.c) and AVX2 with FMA (*_avx2.c). Each kernel is
// written once (*_tmpl.h) over a vocabulary per family (simd_avx512.h, simd_avx2.h: 16- and
// 8-wide vectors), declared in kernels.h and called through that family's table. Both have our
// own GEMM, convolutions as implicit GEMMs (the patch
// matrix packed straight from the image) or, for inference, Winograd F(4×4, 3×3), with a fused
// per-channel epilogue (bias, folded batch norm, residual sum, ReLU). Elsewhere (arm64, older
// x86) the portable Go kernels run, with im2col and OpenBLAS for the GEMMs. SEGKIT_ISA=avx512,
// avx2 or portable picks a lesser path to compare or test it (SEGKIT_AVX512=off: portable);
// Path names the one in use. Every path is tested against the definitions and the Go kernels.
package kernels

import (
	"runtime"
	"sync"
)

// Workers is the number of goroutines a kernel splits its work over.
var Workers = runtime.GOMAXPROCS(0)

// recordSplit, when set (worksplit.go), replaces the goroutines of a parallel call: it gets
// the call's goroutines and work items (item i runs on goroutine i % goroutines) and runs them.
var recordSplit func(goroutines, items int, run func(goroutine, item int))

// parallelFor runs fn over [0, n) split into at most Workers contiguous chunks, in parallel.
// Small jobs (n*cost below a threshold) run on the calling goroutine.
func parallelFor(n int, costPerItem int, fn func(lo, hi int)) {
	w := Workers
	if w > n {
		w = n
	}
	if w <= 1 || n*costPerItem < 1<<14 {
		if n > 0 {
			fn(0, n)
		}
		return
	}
	chunk := (n + w - 1) / w
	parts := (n + chunk - 1) / chunk // chunk i is goroutine i's whole share
	spread(parts, parts, func(_, i int) { fn(i*chunk, min(i*chunk+chunk, n)) })
}

// parallelBlocks runs fn(worker, block) for blocks 0..n-1 on Workers goroutines: worker w takes
// blocks w, w+Workers, …, so what each worker accumulates (and so every result) is the same from
// run to run; worker (< Workers) indexes per-goroutine scratch.
func parallelBlocks(n int, fn func(worker, block int)) {
	w := min(Workers, n)
	if w <= 1 {
		for b := 0; b < n; b++ {
			fn(0, b)
		}
		return
	}
	spread(w, n, fn)
}

// spread runs fn(g, i) for items i in [0, items) on goroutines g in [0, goroutines), item i on
// goroutine i % goroutines, and returns when all have run.
func spread(goroutines, items int, fn func(goroutine, item int)) {
	if recordSplit != nil {
		recordSplit(goroutines, items, fn)
		return
	}
	share := func(g int) {
		for i := g; i < items; i += goroutines {
			fn(g, i)
		}
	}
	if crew.run(goroutines, share) {
		return
	}
	// Busy (a concurrent or nested call): goroutines of its own.
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			share(g)
		}(g)
	}
	wg.Wait()
}

// workspace is a grow-only scratch buffer shared by the convolution kernels; the mutex is held
// for the whole kernel so concurrent callers stay correct.
type workspace struct {
	mu  sync.Mutex
	buf []float32
}

// grow returns (*buf)[:n], reallocating when its capacity is short.
func grow(buf *[]float32, n int) []float32 {
	if cap(*buf) < n {
		*buf = make([]float32, n)
	}
	return (*buf)[:n]
}

func (w *workspace) get(n int) []float32 {
	if cap(w.buf) < n {
		w.buf = make([]float32, n)
	}
	return w.buf[:n]
}
