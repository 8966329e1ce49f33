package kernels

import "fmt"

// Conv describes a 2-D convolution of an N×C×H×W input with a K×C×k×k filter.
type Conv struct {
	N, C, H, W     int // input
	K              int // output channels
	Kernel, Stride int
	Pad, Dilation  int
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

// convScratch is the im2col buffer; its mutex also guards the Winograd workspaces.
var convScratch workspace

// Forward computes y = conv(x, w) + bias (bias may be nil).
func (c Conv) Forward(x, w, bias, y []float32) {
	convScratch.mu.Lock()
	defer convScratch.mu.Unlock()
	if c.winogradOK() {
		u := winoU.get(16 * c.K * c.C)
		winoFilter(w, c.K, c.C, false, u)
		c.wino().forward(x, u, bias, y)
		return
	}
	oh, ow := c.OutSize()
	hw, in, out, rows := oh*ow, c.C*c.H*c.W, c.K*oh*ow, c.colRows()
	for n := 0; n < c.N; n++ {
		col := x[n*in : (n+1)*in]
		if !c.pointwise() {
			col = convScratch.get(rows * hw)
			c.im2col(x[n*in:(n+1)*in], col)
		}
		yn := y[n*out : (n+1)*out]
		ParallelSgemm(false, false, c.K, hw, rows, 1, w, rows, col, hw, 0, yn, hw)
		if bias != nil {
			for k := 0; k < c.K; k++ {
				b, plane := bias[k], yn[k*hw:(k+1)*hw]
				for i := range plane {
					plane[i] += b
				}
			}
		}
	}
}

// BackwardData computes dx = ∂L/∂x from dy = ∂L/∂y.
func (c Conv) BackwardData(w, dy, dx []float32) {
	convScratch.mu.Lock()
	defer convScratch.mu.Unlock()
	oh, ow := c.OutSize()
	if c.winogradOK() {
		// A stride-1 convolution's data gradient is a convolution of dy with the flipped,
		// transposed filter and padding 2 − pad.
		back := Conv{N: c.N, C: c.K, H: oh, W: ow, K: c.C, Kernel: 3, Stride: 1, Pad: 2 - c.Pad, Dilation: 1}
		u := winoU.get(16 * c.K * c.C)
		winoFilter(w, c.K, c.C, true, u)
		back.wino().forward(dy, u, nil, dx)
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

// BackwardFilter computes dw = ∂L/∂w and, when dbias is not nil, dbias = ∂L/∂bias.
func (c Conv) BackwardFilter(x, dy, dw, dbias []float32) {
	oh, ow := c.OutSize()
	hw, in, out, rows := oh*ow, c.C*c.H*c.W, c.K*oh*ow, c.colRows()
	if dbias != nil {
		SumPlanes(dy, c.N, c.K, hw, dbias)
	}
	convScratch.mu.Lock()
	defer convScratch.mu.Unlock()
	if c.winogradOK() {
		c.wino().backwardFilter(x, dy, dw)
		return
	}
	for n := 0; n < c.N; n++ {
		col := x[n*in : (n+1)*in]
		if !c.pointwise() {
			col = convScratch.get(rows * hw)
			c.im2col(x[n*in:(n+1)*in], col)
		}
		beta := float32(1)
		if n == 0 {
			beta = 0
		}
		ParallelSgemm(false, true, c.K, rows, hw, 1, dy[n*out:(n+1)*out], hw, col, hw, beta, dw, rows)
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

// im2col writes one image's patches as a (C·k·k)×(OH·OW) matrix, row r = (c, ki, kj).
func (c Conv) im2col(x, col []float32) {
	oh, ow := c.OutSize()
	kk := c.Kernel * c.Kernel
	parallelFor(c.C*kk, oh*ow, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			ch, ki, kj := r/kk, (r%kk)/c.Kernel, r%c.Kernel
			plane := x[ch*c.H*c.W : (ch+1)*c.H*c.W]
			dst := col[r*oh*ow : (r+1)*oh*ow]
			c.patchRow(plane, dst, ki, kj, oh, ow, false)
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
				c.patchRow(plane, col[r*oh*ow:(r+1)*oh*ow], k/c.Kernel, k%c.Kernel, oh, ow, true)
			}
		}
	})
}

// patchRow moves one kernel tap (ki, kj) between an input plane and its OH×OW patch row:
// gather (dst[o] = plane[i], zero outside) or scatter-add (plane[i] += dst[o]).
func (c Conv) patchRow(plane, row []float32, ki, kj, oh, ow int, scatter bool) {
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
	for o := 0; o < oh; o++ {
		ih := o*s + ki*d - p
		dst := row[o*ow : (o+1)*ow]
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
