package kernels

// Sum writes the elementwise sum of xs into y, then max(·, 0) when relu is set.
func Sum(xs [][]float32, y []float32, relu bool) {
	parallelFor(len(y), len(xs), func(lo, hi int) {
		dst := y[lo:hi]
		copy(dst, xs[0][lo:hi])
		for _, x := range xs[1:] {
			for i, v := range x[lo:hi] {
				dst[i] += v
			}
		}
		if relu {
			for i, v := range dst {
				if v < 0 {
					dst[i] = 0
				}
			}
		}
	})
}

// ReLUBackward writes dx = dy where y > 0, else 0.
func ReLUBackward(y, dy, dx []float32) {
	parallelFor(len(y), 1, func(lo, hi int) {
		for i, v := range y[lo:hi] {
			if v > 0 {
				dx[lo+i] = dy[lo+i]
			} else {
				dx[lo+i] = 0
			}
		}
	})
}

// CopyChannels copies channels [from, from+count) of an N×srcC×HW tensor into channels
// [to, to+count) of an N×dstC×HW tensor.
func CopyChannels(src []float32, srcC, from int, dst []float32, dstC, to, count, n, hw int) {
	parallelFor(n, count*hw, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			copy(dst[(i*dstC+to)*hw:(i*dstC+to+count)*hw], src[(i*srcC+from)*hw:(i*srcC+from+count)*hw])
		}
	})
}
