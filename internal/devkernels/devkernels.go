// Package devkernels holds the device kernels' code written once: per-element bodies in the
// common subset of C and CUDA C (bodies.h), compiled here by gcc into host loops (host.c) and,
// on a GPU, by NVRTC into the CUDA kernels of kernels.cu (Source). The host loops are what the
// tests compare with the CPU kernels of internal/kernels, bit for bit, and what the bodies do
// per GPU thread; scripts/test.sh also compiles the CUDA text to PTX with clang.
package devkernels

/*
#cgo CFLAGS: -O2
#cgo LDFLAGS: -lm
void skh_bilinear_fwd(long n, int H, int W, int OH, int OW, int align, const float *x, float *y);
void skh_bilinear_bwd(long n, int H, int W, int OH, int OW, int align, const float *dy, float *dx);
void skh_sum4(long n, int relu, float *y, const float *x0, const float *x1, const float *x2, const float *x3);
void skh_relu_bwd(long n, const float *y, const float *dy, float *dx);
void skh_momentum(long n, float *w, const float *g, float *v, float lr, float wd, float mu);
double skh_ce(long pixels, int C, long HW, const float *logits, const int *labels, int ignore, float g, float *dl);
void skh_resample_fwd(long n, int H, int W, int OH, int OW, float ratioH, float ratioW, int colsAligned, int mean,
                      const float *x, float *y, unsigned char *argmax);
void skh_copy_channels(long n, const float *src, int srcC, int from, float *dst, int dstC, int to, int count, long hw);
void skh_spread_planes(long n, long hw, const float *dm, float *dx);
void skh_argmax(long n, int C, long hw, const float *s, int *out);
*/
import "C"

import (
	_ "embed"
	"fmt"
	"unsafe"

	"github.com/segkit/segkit/internal/kernels"
)

//go:embed bodies.h
var bodies string

//go:embed kernels.cu
var kernelsCU string

// Source returns the CUDA C text of every kernel (the bodies followed by the kernels), as
// NVRTC compiles it: one translation unit, no includes.
func Source() string { return bodies + "\n" + stripInclude(kernelsCU) }

// stripInclude drops kernels.cu's #include of bodies.h (Source inlines it).
func stripInclude(s string) string {
	const inc = "#include \"bodies.h\"\n"
	for i := 0; i+len(inc) <= len(s); i++ {
		if s[i:i+len(inc)] == inc {
			return s[:i] + s[i+len(inc):]
		}
	}
	return s
}

func f32(s []float32) *C.float {
	if len(s) == 0 {
		return nil
	}
	return (*C.float)(unsafe.Pointer(&s[0]))
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// BilinearForward is kernels.Bilinear.Forward by the single-source body.
func BilinearForward(b kernels.Bilinear, x, y []float32) {
	C.skh_bilinear_fwd(C.long(b.Planes*b.OH*b.OW), C.int(b.H), C.int(b.W), C.int(b.OH), C.int(b.OW), cbool(b.AlignCorners), f32(x), f32(y))
}

// BilinearBackward is kernels.Bilinear.Backward by the single-source body (a gather per input).
func BilinearBackward(b kernels.Bilinear, dy, dx []float32) {
	C.skh_bilinear_bwd(C.long(b.Planes*b.H*b.W), C.int(b.H), C.int(b.W), C.int(b.OH), C.int(b.OW), cbool(b.AlignCorners), f32(dy), f32(dx))
}

// Sum is kernels.Sum: the inputs four at a time, the running sum as the first of the next pass.
func Sum(xs [][]float32, y []float32, relu bool) {
	first, rest := xs[0], xs[1:]
	for {
		k := min(3, len(rest))
		var part [3]*C.float
		for i := range k {
			part[i] = f32(rest[i])
		}
		rest = rest[k:]
		C.skh_sum4(C.long(len(y)), cbool(relu && len(rest) == 0), f32(y), f32(first), part[0], part[1], part[2])
		if len(rest) == 0 {
			return
		}
		first = y
	}
}

// ReLUBackward is kernels.ReLUBackward.
func ReLUBackward(y, dy, dx []float32) { C.skh_relu_bwd(C.long(len(y)), f32(y), f32(dy), f32(dx)) }

// Momentum is kernels.Momentum.
func Momentum(w, g, v []float32, lr, wd, mu float32) {
	C.skh_momentum(C.long(len(w)), f32(w), f32(g), f32(v), C.float(lr), C.float(wd), C.float(mu))
}

// CrossEntropy is kernels.CrossEntropy.Forward by the pixel body, summed in pixel order.
func CrossEntropy(ce kernels.CrossEntropy, logits []float32, labels []int32, scale float32, dlogits []float32) (float32, int, error) {
	count := 0
	for i, l := range labels {
		if l == ce.Ignore {
			continue
		}
		if l < 0 || int(l) >= ce.C {
			return 0, 0, fmt.Errorf("label %d at pixel %d is outside [0, %d)", l, i, ce.C)
		}
		count++
	}
	if count == 0 {
		clear(dlogits)
		return 0, 0, nil
	}
	g := float32(float64(scale) / float64(count))
	s := C.skh_ce(C.long(len(labels)), C.int(ce.C), C.long(ce.HW), f32(logits), (*C.int)(unsafe.Pointer(&labels[0])), C.int(ce.Ignore), C.float(g), f32(dlogits))
	return float32(float64(s) / float64(count)), count, nil
}

// ResampleRatios are the float32 ratios SizeIn/SizeOut per axis and whether every column
// query sits on a pixel centre, as the CPU kernel derives them.
func ResampleRatios(r kernels.Resample) (ratioH, ratioW float32, colsAligned bool) {
	ratioH = float32(r.SizeIn[0]) / float32(r.SizeOut[0])
	ratioW = float32(r.SizeIn[1]) / float32(r.SizeOut[1])
	colsAligned = true
	for k := 0; k < 2*r.OW; k++ {
		cell := float32(k/2) + [2]float32{0.25, 0.75}[k%2]
		u := min(max(cell*ratioW-0.5, 0), float32(r.W-1))
		colsAligned = colsAligned && u-float32(int(u)) == 0
	}
	return ratioH, ratioW, colsAligned
}

// ResampleForward is kernels.Resample.Forward by the single-source body.
func ResampleForward(r kernels.Resample, x, y []float32, argmax []uint8) {
	rh, rw, aligned := ResampleRatios(r)
	var won *C.uchar
	if argmax != nil && !r.Mean {
		won = (*C.uchar)(unsafe.Pointer(&argmax[0]))
	}
	C.skh_resample_fwd(C.long(r.Planes*r.OH*r.OW), C.int(r.H), C.int(r.W), C.int(r.OH), C.int(r.OW), C.float(rh), C.float(rw),
		cbool(aligned), cbool(r.Mean), f32(x), f32(y), won)
}

// CopyChannels is kernels.CopyChannels by the single-source body: channels [from, from+count)
// of n images of srcC planes into channels [to, to+count) of dstC.
func CopyChannels(src []float32, srcC, from int, dst []float32, dstC, to, count, n, hw int) {
	C.skh_copy_channels(C.long(n*count*hw), f32(src), C.int(srcC), C.int(from), f32(dst), C.int(dstC), C.int(to), C.int(count), C.long(hw))
}

// SpreadPlanes is kernels.SpreadPlanes by the single-source body.
func SpreadPlanes(dmeans []float32, hw int, dx []float32) {
	C.skh_spread_planes(C.long(len(dmeans)*hw), C.long(hw), f32(dmeans), f32(dx))
}

// Argmax is kernels.Argmax by the single-source body: per pixel of n images of c planes of hw.
func Argmax(scores []float32, n, c, hw int, out []int32) {
	if n*hw == 0 {
		return
	}
	C.skh_argmax(C.long(n*hw), C.int(c), C.long(hw), f32(scores), (*C.int)(unsafe.Pointer(&out[0])))
}

// Kernels are the entry points of kernels.cu, for the CUDA module and the PTX check.
var Kernels = []string{"sk_bilinear_fwd_k", "sk_bilinear_bwd_k", "sk_sum4_k", "sk_relu_bwd_k", "sk_momentum_k",
	"sk_resample_fwd_k", "sk_copy_channels_k", "sk_spread_planes_k", "sk_argmax_k", "sk_plane_reduce_k",
	"sk_ce_count_k", "sk_ce_pixels_k", "sk_ce_mean_k"}
