// Package kernels holds the float32 NCHW compute kernels behind the graph ops: convolution
// through im2col and OpenBLAS, batch normalisation, bilinear resizing, softmax cross-entropy and
// elementwise helpers. Kernels work on plain slices; shapes are checked by the callers.
package kernels

import (
	"runtime"
	"sync"
)

// Workers is the number of goroutines a kernel splits its work over.
var Workers = runtime.GOMAXPROCS(0)

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
	var wg sync.WaitGroup
	chunk := (n + w - 1) / w
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			fn(lo, hi)
		}(lo, hi)
	}
	wg.Wait()
}

// workspace is a grow-only scratch buffer shared by the convolution kernels; the mutex is held
// for the whole kernel so concurrent callers stay correct.
type workspace struct {
	mu  sync.Mutex
	buf []float32
}

func (w *workspace) get(n int) []float32 {
	if cap(w.buf) < n {
		w.buf = make([]float32, n)
	}
	return w.buf[:n]
}
