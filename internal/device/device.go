// Package device is the seam between the engine's executor (package nn) and a compute device:
// memory addressed by Ptr, transfers, and the operations a training or inference graph lowers
// to. The CPU path does not use it. Implementations: internal/device/sim (host memory, the CPU
// kernels: the GPU code path run without a GPU) and internal/cuda (NVIDIA, loaded at run time).
//
// Operations are asynchronous on a real device: they are queued in order, and only the
// downloads (and Sync) wait. Errors of queued work may surface at the next download.
package device

import (
	"unsafe"

	"github.com/segkit/segkit/internal/kernels"
)

// Ptr is a device address in bytes; 0 is none. Offsets add bytes (Floats adds float32s).
type Ptr uint64

// Floats returns p moved by n float32 values.
func (p Ptr) Floats(n int) Ptr { return p + Ptr(4*n) }

// Device is a device's memory and the operations of the graphs on it.
type Device interface {
	Memory
	Ops
}

// Memory is a device's memory and the transfers to, from and within it.
type Memory interface {
	// Name says what runs the work ("sim", "cuda: NVIDIA H100 80GB HBM3, cuDNN 9.10.2").
	Name() string
	Alloc(bytes int) (Ptr, error) // zeroed memory
	Free(p Ptr) error
	Upload(dst Ptr, src []byte) error
	Download(dst []byte, src Ptr) error
	Copy(dst, src Ptr, bytes int) error
	Zero(dst Ptr, bytes int) error
	Sync() error
}

// Ops are the operations the graphs lower to, on device memory. Shapes and parameters come in
// the CPU kernels' own descriptions (internal/kernels), so a lowering cannot describe an op
// differently on the two paths.
type Ops interface {
	// cuDNN-shaped: convolutions (bias 0: none) and batch normalisation, exact fp32.
	ConvForward(g kernels.Conv, x, w, bias, y Ptr) error
	ConvBackwardData(g kernels.Conv, w, dy, dx Ptr) error
	ConvBackwardFilter(g kernels.Conv, x, dy, dw Ptr) error
	// BNForwardTrain saves the batch mean and 1/std in mean and invStd (C values each) and
	// updates the running statistics (PyTorch's momentum, unbiased variance).
	BNForwardTrain(bn kernels.BatchNorm, x, gamma, beta, y, mean, invStd, runMean, runVar Ptr, momentum float32) error
	BNForwardEval(bn kernels.BatchNorm, x, gamma, beta, y, runMean, runVar Ptr) error
	// BNBackward: y is read for the ReLU mask when bn.ReLU (else 0).
	BNBackward(bn kernels.BatchNorm, x, y, dy, gamma, mean, invStd, dx, dgamma, dbeta Ptr) error

	// Our own kernels.
	Sum(n int, xs []Ptr, y Ptr, relu bool) error
	ReLUBackward(n int, y, dy, dx Ptr) error
	CopyChannels(src Ptr, srcC, from int, dst Ptr, dstC, to, count, n, hw int) error
	SumPlanes(n, c, hw int, x, out Ptr) error // per channel, over N and HW (a bias gradient)
	PlaneMeans(planes, hw int, x, means Ptr) error
	SpreadPlanes(planes, hw int, dmeans, dx Ptr) error
	Bilinear(b kernels.Bilinear, x, y Ptr) error
	BilinearBackward(b kernels.Bilinear, dy, dx Ptr) error
	// CrossEntropy writes the mean loss (a float32) to loss when loss is not 0 and
	// scale·∂loss/∂logits to dlogits when dlogits is not 0 (scale: a device float32, 0 for 1).
	// labels are int32; bad receives the number of labels outside [0, C) that are not ignored
	// (an int32), for the caller to report.
	CrossEntropy(ce kernels.CrossEntropy, logits, labels, scale, loss, dlogits, bad Ptr) error
	// Resample is DynOPool's sampling; argmax (bytes, training max mode) records the winners.
	Resample(r kernels.Resample, x, y, argmax Ptr) error
	// ResampleBackward writes dx and, to sizeGrads, ∂L/∂SizeIn (h, w), ∂L/∂SizeOut (h, w) as
	// four float32 (summed in float64 first, as the CPU kernel).
	ResampleBackward(r kernels.Resample, x, dy, dx, argmax, sizeGrads Ptr) error
	Momentum(n int, w, g, v Ptr, lr, wd, mu float32) error
	Argmax(n, c, hw int, scores, out Ptr) error
}

// bytesOf views a slice's memory as bytes, for transfers.
func bytesOf[T float32 | int32 | uint8](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(s[0])))
}

// UploadFloats copies host values to the device.
func UploadFloats(d Memory, dst Ptr, src []float32) error { return d.Upload(dst, bytesOf(src)) }

// UploadInts copies host int32 values to the device.
func UploadInts(d Memory, dst Ptr, src []int32) error { return d.Upload(dst, bytesOf(src)) }

// DownloadFloats copies device values to the host (waiting for the work queued before).
func DownloadFloats(d Memory, dst []float32, src Ptr) error { return d.Download(bytesOf(dst), src) }

// DownloadInts copies device int32 values to the host.
func DownloadInts(d Memory, dst []int32, src Ptr) error { return d.Download(bytesOf(dst), src) }
