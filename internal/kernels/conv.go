package kernels

import "fmt"

// Conv describes a 2-D convolution of an N×C×H×W input with a K×C×k×k filter.
type Conv struct {
	N, C, H, W     int // input
	K              int // output channels
	Kernel, Stride int
	Pad, Dilation  int
	// Winograd lets Forward use Winograd F(4×4, 3×3) where it applies and pays (3×3, stride 1,
	// padding 1, AVX-512 or AVX2, enough tiles): 2.2–2.8× faster, with rounding that differs from the
	// direct sum in the fifth digit (errors up to ~1.5e-5 of the output's largest value,
	// measured). For inference.
	Winograd bool
	// PerImage decides Winograd as for one image (N = 1), so that each image of a batch gets
	// exactly the result it gets alone (a batch's tile count would otherwise tip the choice).
	PerImage bool
}

// Validate reports invalid parameters or an empty output.
func (c Conv) Validate() error {
	switch {
	case c.N < 1 || c.C < 1 || c.H < 1 || c.W < 1 || c.K < 1:
		return fmt.Errorf("conv: sizes must be positive (N=%d C=%d H=%d W=%d K=%d)", c.N, c.C, c.H, c.W, c.K)
	case c.Kernel < 1 || c.Stride < 1 || c.Dilation < 1 || c.Pad < 0:
		return fmt.Errorf("conv: invalid kernel %d, stride %d, padding %d, dilation %d", c.Kernel, c.Stride, c.Pad, c.Dilation)
	}
	if oh, ow := c.OutSize(); oh < 1 || ow < 1 {
		return fmt.Errorf("conv: kernel %d (dilation %d) does not fit a %d×%d input with padding %d",
			c.Kernel, c.Dilation, c.H, c.W, c.Pad)
	}
	return nil
}

// OutSize returns the output height and width.
func (c Conv) OutSize() (int, int) {
	span := c.Dilation*(c.Kernel-1) + 1
	return (c.H+2*c.Pad-span)/c.Stride + 1, (c.W+2*c.Pad-span)/c.Stride + 1
}

// pointwise reports a 1×1, stride-1, unpadded convolution: a plain GEMM with no im2col.
func (c Conv) pointwise() bool { return c.Kernel == 1 && c.Stride == 1 && c.Pad == 0 }

func (c Conv) colRows() int { return c.C * c.Kernel * c.Kernel }

// FLOPs counts 2·MACs of the direct convolution (forward only).
func (c Conv) FLOPs() float64 {
	oh, ow := c.OutSize()
	return 2 * float64(c.N) * float64(c.K) * float64(c.colRows()) * float64(oh*ow)
}

// convScratch guards the shared scratch of the convolution kernels: the whole-image patch
// matrix of strided data gradients (and the flipped filter) and the per-goroutine buffers.
var (
	convScratch workspace
	convBufs    []convBuf
)

type convBuf struct{ col, dw []float32 }

// blocks splits every image's output rows into blocks whose patch matrix is about 1 MiB, so
// that im2col's output is still in cache when the GEMM reads it; blocks run in parallel.
func (c Conv) blocks() (rowsPerBlock, perImage int) {
	oh, ow := c.OutSize()
	rows := max(1, blockBytes/(4*c.colRows()*ow))
	if c.pointwise() {
		rows = max(1, 4096/ow) // no patch matrix: blocks only spread the work
	}
	// Wide enough that packing the filter (K rows) is amortised over the block.
	rows = max(rows, (max(c.K, minBlockCols)+ow-1)/ow)
	// Enough blocks to keep every goroutine busy.
	for rows > 1 && c.N*((oh+rows-1)/rows) < blockSpread*Workers {
		rows = (rows + 1) / 2
	}
	rows = min(rows, oh)
	if len(convBufs) < Workers {
		convBufs = append(convBufs, make([]convBuf, Workers-len(convBufs))...)
	}
	return rows, (oh + rows - 1) / rows
}

// Block sizing, measured on the benchmark shapes: a 1 MiB patch matrix, at least 128 columns,
// at least one block per goroutine.
const blockBytes, minBlockCols, blockSpread = 1 << 20, 128, 1

// eachBlock runs fn(worker, n, o0, o1) over the blocks of output rows [o0, o1) of image n, in
// parallel.
func (c Conv) eachBlock(fn func(worker, n, o0, o1 int)) {
	oh, _ := c.OutSize()
	rows, per := c.blocks()
	parallelBlocks(c.N*per, func(w, b int) {
		n, o0 := b/per, (b%per)*rows
		fn(w, n, o0, min(o0+rows, oh))
	})
}

// patches returns the patch matrix of output rows [o0, o1) of image x: (C·k·k)×((o1−o0)·OW),
// row stride returned; for a pointwise convolution it is x itself.
func (c Conv) patches(x []float32, o0, o1 int, buf *convBuf) ([]float32, int) {
	_, ow := c.OutSize()
	if c.pointwise() {
		return x[o0*ow:], c.H * c.W
	}
	nb := (o1 - o0) * ow
	col := grow(&buf.col, c.colRows()*nb)
	kk := c.Kernel * c.Kernel
	for r := 0; r < c.colRows(); r++ {
		ch := r / kk
		c.patchRow(x[ch*c.H*c.W:(ch+1)*c.H*c.W], col[r*nb:(r+1)*nb], (r%kk)/c.Kernel, r%c.Kernel, o0, o1, false)
	}
	return col, nb
}

// Forward computes y = conv(x, w) + bias (bias may be nil).
func (c Conv) Forward(x, w, bias, y []float32) { c.ForwardAffine(x, w, Affine{Shift: bias}, y) }

// ForwardAffine computes y = conv(x, w) through the per-output-channel epilogue ep.
func (c Conv) ForwardAffine(x, w []float32, ep Affine, y []float32) {
	convScratch.mu.Lock()
	defer convScratch.mu.Unlock()
	c.forward(x, w, ep, y)
}

func (c Conv) forward(x, w []float32, ep Affine, y []float32) {
	if c.winograd() {
		c.forwardWinograd(x, w, ep, y)
		return
	}
	oh, ow := c.OutSize()
	hw, in, out, rows := oh*ow, c.C*c.H*c.W, c.K*oh*ow, c.colRows()
	phased := c.phased()
	c.eachBlock(func(wk, n, o0, o1 int) {
		nb := (o1 - o0) * ow
		if c.implicitConv() {
			c.implicitGemm(x[n*in:(n+1)*in], w, o0*ow, nb, y[n*out+o0*ow:], ep.from(n*out+o0*ow), phased)
			return
		}
		col, ld := c.patches(x[n*in:(n+1)*in], o0, o1, &convBufs[wk])
		sgemm(false, false, c.K, nb, rows, 1, w, rows, col, ld, 0, y[n*out+o0*ow:], hw, ep.from(n*out+o0*ow))
	})
}

// BackwardData computes dx = ∂L/∂x from dy = ∂L/∂y.
func (c Conv) BackwardData(w, dy, dx []float32) {
	convScratch.mu.Lock()
	defer convScratch.mu.Unlock()
	oh, ow := c.OutSize()
	if c.Stride == 1 && !c.pointwise() && c.Pad <= c.Dilation*(c.Kernel-1) {
		// A stride-1 convolution's data gradient is the convolution of dy with the flipped,
		// transposed filter and the complementary padding.
		back := Conv{N: c.N, C: c.K, H: oh, W: ow, K: c.C, Kernel: c.Kernel, Stride: 1,
			Pad: c.Dilation*(c.Kernel-1) - c.Pad, Dilation: c.Dilation}
		flipped := convScratch.get(len(w))
		c.flipFilter(w, flipped)
		back.forward(dy, flipped, Affine{}, dx)
		return
	}
	hw, in, out, rows := oh*ow, c.C*c.H*c.W, c.K*oh*ow, c.colRows()
	for n := 0; n < c.N; n++ {
		dxn := dx[n*in : (n+1)*in]
		if c.pointwise() {
			ParallelSgemm(true, false, rows, hw, c.K, 1, w, rows, dy[n*out:(n+1)*out], hw, 0, dxn, hw)
			continue
		}
		dcol := convScratch.get(rows * hw)
		ParallelSgemm(true, false, rows, hw, c.K, 1, w, rows, dy[n*out:(n+1)*out], hw, 0, dcol, hw)
		c.col2im(dcol, dxn)
	}
}

// flipFilter writes w'[c][k] = rot180(w[k][c]), the C×K filter bank of the data gradient.
func (c Conv) flipFilter(w, flipped []float32) {
	kk := c.Kernel * c.Kernel
	for k := 0; k < c.K; k++ {
		for ch := 0; ch < c.C; ch++ {
			src, dst := w[(k*c.C+ch)*kk:(k*c.C+ch+1)*kk], flipped[(ch*c.K+k)*kk:(ch*c.K+k+1)*kk]
			for i, v := range src {
				dst[kk-1-i] = v
			}
		}
	}
}

// BackwardFilter computes dw = ∂L/∂w and, when dbias is not nil, dbias = ∂L/∂bias.
func (c Conv) BackwardFilter(x, dy, dw, dbias []float32) {
	oh, ow := c.OutSize()
	hw, in, out, rows := oh*ow, c.C*c.H*c.W, c.K*oh*ow, c.colRows()
	if dbias != nil {
		SumPlanes(dy, c.N, c.K, hw, dbias)
	}
	convScratch.mu.Lock()
	defer convScratch.mu.Unlock()
	// Each goroutine sums its blocks' dy·colᵀ into its own partial filter gradient.
	used := make([]bool, Workers)
	c.eachBlock(func(wk, n, o0, o1 int) {
		buf := &convBufs[wk]
		part := grow(&buf.dw, len(dw))
		beta := float32(1)
		if !used[wk] {
			used[wk], beta = true, 0
		}
		if c.implicitConv() {
			c.implicitFilterGrad(x[n*in:(n+1)*in], dy[n*out+o0*ow:], o0*ow, (o1-o0)*ow, part, beta)
			return
		}
		col, ld := c.patches(x[n*in:(n+1)*in], o0, o1, buf)
		Sgemm(false, true, c.K, rows, (o1-o0)*ow, 1, dy[n*out+o0*ow:], hw, col, ld, beta, part, rows)
	})
	sumParts(dw, used, func(w int) []float32 { return convBufs[w].dw })
}

// sumParts sets dst to the sum of the partial results of the goroutines marked used.
func sumParts(dst []float32, used []bool, part func(worker int) []float32) {
	first := true
	for w, ok := range used {
		if !ok {
			continue
		}
		src := part(w)[:len(dst)]
		if first {
			copy(dst, src)
			first = false
			continue
		}
		for i, v := range src {
			dst[i] += v
		}
	}
	if first {
		clear(dst)
	}
}

// SumPlanes sets sum[c] to the sum of plane c over all n of an N×C×HW tensor.
func SumPlanes(t []float32, n, c, hw int, sum []float32) {
	parallelFor(c, n*hw, func(lo, hi int) {
		for k := lo; k < hi; k++ {
			var s float64
			for i := 0; i < n; i++ {
				for _, v := range t[(i*c+k)*hw : (i*c+k+1)*hw] {
					s += float64(v)
				}
			}
			sum[k] = float32(s)
		}
	})
}

// col2im accumulates a patch matrix back into one image (zeroing it first).
func (c Conv) col2im(col, x []float32) {
	oh, ow := c.OutSize()
	kk := c.Kernel * c.Kernel
	parallelFor(c.C, kk*oh*ow, func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			plane := x[ch*c.H*c.W : (ch+1)*c.H*c.W]
			clear(plane)
			for k := 0; k < kk; k++ {
				r := ch*kk + k
				c.patchRow(plane, col[r*oh*ow:(r+1)*oh*ow], k/c.Kernel, k%c.Kernel, 0, oh, true)
			}
		}
	})
}

// patchRow moves one kernel tap (ki, kj) between an input plane and its patch row for output
// rows [o0, o1): gather (row[o] = plane[i], zero outside) or scatter-add (plane[i] += row[o]).
func (c Conv) patchRow(plane, row []float32, ki, kj, o0, o1 int, scatter bool) {
	_, ow := c.OutSize()
	s, d, p := c.Stride, c.Dilation, c.Pad
	offW := kj*d - p
	// Output columns whose input column lies inside the image: [owLo, owHi).
	owLo := 0
	if offW < 0 {
		owLo = (-offW + s - 1) / s
	}
	owHi := ow
	if last := (c.W - 1 - offW); last < 0 {
		owHi = 0
	} else if m := last/s + 1; m < owHi {
		owHi = m
	}
	owLo = min(owLo, owHi)
	for o := o0; o < o1; o++ {
		ih := o*s + ki*d - p
		dst := row[(o-o0)*ow : (o-o0+1)*ow]
		if ih < 0 || ih >= c.H {
			if !scatter {
				clear(dst)
			}
			continue
		}
		src := plane[ih*c.W : (ih+1)*c.W]
		if scatter {
			if s == 1 {
				seg := src[owLo+offW : owHi+offW]
				for i, v := range dst[owLo:owHi] {
					seg[i] += v
				}
			} else {
				for j := owLo; j < owHi; j++ {
					src[j*s+offW] += dst[j]
				}
			}
			continue
		}
		clear(dst[:owLo])
		clear(dst[owHi:])
		if s == 1 {
			copy(dst[owLo:owHi], src[owLo+offW:owHi+offW])
		} else {
			for j := owLo; j < owHi; j++ {
				dst[j] = src[j*s+offW]
			}
		}
	}
}
