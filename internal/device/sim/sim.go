// Package sim is a simulated device: the device.Device interface on host memory, each
// operation done by the CPU kernels (internal/kernels). It runs the GPU code path (the lowering
// of graphs to device calls, the device memory plan, parameter residency, the transfers) where
// no GPU exists, and, since its arithmetic is the CPU path's, a training step on it must equal
// the CPU step bit for bit.
//
// Addresses are checked: every Ptr names an allocation and an offset, and an access outside
// the allocation panics with what was asked (a lowering bug, as an out-of-bounds access on a
// GPU would be, but found here).
package sim

import (
	"fmt"
	"sync"
	"unsafe"

	"github.com/segkit/segkit/internal/device"
	"github.com/segkit/segkit/internal/kernels"
)

// A Ptr is (allocation id << idShift) | byte offset.
const idShift = 40

// Device is the simulated device. The zero value is not usable; call New.
type Device struct {
	mu     sync.Mutex
	allocs map[uint64][]float32 // by id; bytes rounded up to float32s
	next   uint64
	// Stats counts what the device did, for tests: bytes each way and allocations alive.
	Stats Stats
}

// Stats counts transfers and live memory.
type Stats struct {
	Uploaded, Downloaded int64 // bytes
	Live                 int64 // bytes allocated and not freed
	Calls                int   // operations run
}

var _ device.Device = (*Device)(nil)

// New returns an empty simulated device.
func New() *Device { return &Device{allocs: map[uint64][]float32{}, next: 1} }

func (d *Device) Name() string { return "sim (host memory, CPU kernels)" }

func (d *Device) Alloc(bytes int) (device.Ptr, error) {
	if bytes <= 0 {
		return 0, fmt.Errorf("sim: allocation of %d bytes", bytes)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	id := d.next
	d.next++
	d.allocs[id] = make([]float32, (bytes+3)/4)
	d.Stats.Live += int64(bytes)
	return device.Ptr(id << idShift), nil
}

func (d *Device) Free(p device.Ptr) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	id := uint64(p) >> idShift
	a, ok := d.allocs[id]
	if !ok || uint64(p)&(1<<idShift-1) != 0 {
		return fmt.Errorf("sim: free of %#x, not an allocation", uint64(p))
	}
	d.Stats.Live -= int64(4 * len(a))
	delete(d.allocs, id)
	return nil
}

// mem returns the n bytes at p, panicking when they are not inside one allocation.
func (d *Device) mem(p device.Ptr, n int) []byte {
	d.mu.Lock()
	a, ok := d.allocs[uint64(p)>>idShift]
	d.mu.Unlock()
	off := int(uint64(p) & (1<<idShift - 1))
	if !ok || off+n > 4*len(a) || n < 0 {
		panic(fmt.Sprintf("sim: access of %d bytes at %#x (allocation %d, offset %d, %d bytes long, exists %t)",
			n, uint64(p), uint64(p)>>idShift, off, 4*len(a), ok))
	}
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&a[0])), 4*len(a))[off : off+n]
}

// f32 returns the n float32 values at p (nil for a null p).
func (d *Device) f32(p device.Ptr, n int) []float32 {
	if p == 0 || n == 0 {
		return nil
	}
	b := d.mem(p, 4*n)
	if uintptr(unsafe.Pointer(&b[0]))%4 != 0 {
		panic(fmt.Sprintf("sim: float32 access at unaligned %#x", uint64(p)))
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), n)
}

func (d *Device) i32(p device.Ptr, n int) []int32 {
	f := d.f32(p, n)
	if f == nil {
		return nil
	}
	return unsafe.Slice((*int32)(unsafe.Pointer(&f[0])), n)
}

func (d *Device) Upload(dst device.Ptr, src []byte) error {
	copy(d.mem(dst, len(src)), src)
	d.Stats.Uploaded += int64(len(src))
	return nil
}

func (d *Device) Download(dst []byte, src device.Ptr) error {
	copy(dst, d.mem(src, len(dst)))
	d.Stats.Downloaded += int64(len(dst))
	return nil
}

func (d *Device) Copy(dst, src device.Ptr, bytes int) error {
	copy(d.mem(dst, bytes), d.mem(src, bytes))
	return nil
}

func (d *Device) Zero(dst device.Ptr, bytes int) error {
	clear(d.mem(dst, bytes))
	return nil
}

func (d *Device) Sync() error { return nil }

func (d *Device) op() { d.Stats.Calls++ }

func (d *Device) ConvForward(g kernels.Conv, x, w, bias, y device.Ptr) error {
	d.op()
	oh, ow := g.OutSize()
	g.Forward(d.f32(x, g.N*g.C*g.H*g.W), d.f32(w, g.K*g.C*g.Kernel*g.Kernel), d.f32(bias, g.K), d.f32(y, g.N*g.K*oh*ow))
	return nil
}

func (d *Device) ConvBackwardData(g kernels.Conv, w, dy, dx device.Ptr) error {
	d.op()
	oh, ow := g.OutSize()
	g.BackwardData(d.f32(w, g.K*g.C*g.Kernel*g.Kernel), d.f32(dy, g.N*g.K*oh*ow), d.f32(dx, g.N*g.C*g.H*g.W))
	return nil
}

func (d *Device) ConvBackwardFilter(g kernels.Conv, x, dy, dw device.Ptr) error {
	d.op()
	oh, ow := g.OutSize()
	g.BackwardFilter(d.f32(x, g.N*g.C*g.H*g.W), d.f32(dy, g.N*g.K*oh*ow), d.f32(dw, g.K*g.C*g.Kernel*g.Kernel), nil)
	return nil
}

func (d *Device) BNForwardTrain(bn kernels.BatchNorm, x, gamma, beta, y, mean, invStd, runMean, runVar device.Ptr, momentum float32) error {
	d.op()
	n := bn.N * bn.C * bn.HW
	bn.ForwardTrain(d.f32(x, n), d.f32(gamma, bn.C), d.f32(beta, bn.C), d.f32(y, n),
		kernels.Stats{Mean: d.f32(mean, bn.C), InvStd: d.f32(invStd, bn.C)}, d.f32(runMean, bn.C), d.f32(runVar, bn.C), momentum)
	return nil
}

func (d *Device) BNForwardEval(bn kernels.BatchNorm, x, gamma, beta, y, runMean, runVar device.Ptr) error {
	d.op()
	n := bn.N * bn.C * bn.HW
	bn.ForwardEval(d.f32(x, n), d.f32(gamma, bn.C), d.f32(beta, bn.C), d.f32(y, n), d.f32(runMean, bn.C), d.f32(runVar, bn.C))
	return nil
}

func (d *Device) BNBackward(bn kernels.BatchNorm, x, y, dy, gamma, mean, invStd, dx, dgamma, dbeta device.Ptr) error {
	d.op()
	n := bn.N * bn.C * bn.HW
	var ys []float32
	if bn.ReLU {
		ys = d.f32(y, n)
	}
	bn.Backward(d.f32(x, n), ys, d.f32(dy, n), d.f32(gamma, bn.C), kernels.Stats{Mean: d.f32(mean, bn.C), InvStd: d.f32(invStd, bn.C)},
		true, d.f32(dx, n), d.f32(dgamma, bn.C), d.f32(dbeta, bn.C))
	return nil
}

func (d *Device) Sum(n int, xs []device.Ptr, y device.Ptr, relu bool) error {
	d.op()
	in := make([][]float32, len(xs))
	for i, x := range xs {
		in[i] = d.f32(x, n)
	}
	kernels.Sum(in, d.f32(y, n), relu)
	return nil
}

func (d *Device) ReLUBackward(n int, y, dy, dx device.Ptr) error {
	d.op()
	kernels.ReLUBackward(d.f32(y, n), d.f32(dy, n), d.f32(dx, n))
	return nil
}

func (d *Device) CopyChannels(src device.Ptr, srcC, from int, dst device.Ptr, dstC, to, count, n, hw int) error {
	d.op()
	kernels.CopyChannels(d.f32(src, n*srcC*hw), srcC, from, d.f32(dst, n*dstC*hw), dstC, to, count, n, hw)
	return nil
}

func (d *Device) SumPlanes(n, c, hw int, x, out device.Ptr) error {
	d.op()
	kernels.SumPlanes(d.f32(x, n*c*hw), n, c, hw, d.f32(out, c))
	return nil
}

func (d *Device) PlaneMeans(planes, hw int, x, means device.Ptr) error {
	d.op()
	kernels.PlaneMeans(d.f32(x, planes*hw), hw, d.f32(means, planes))
	return nil
}

func (d *Device) SpreadPlanes(planes, hw int, dmeans, dx device.Ptr) error {
	d.op()
	kernels.SpreadPlanes(d.f32(dmeans, planes), hw, d.f32(dx, planes*hw))
	return nil
}

func (d *Device) Bilinear(b kernels.Bilinear, x, y device.Ptr) error {
	d.op()
	b.Forward(d.f32(x, b.Planes*b.H*b.W), d.f32(y, b.Planes*b.OH*b.OW))
	return nil
}

func (d *Device) BilinearBackward(b kernels.Bilinear, dy, dx device.Ptr) error {
	d.op()
	b.Backward(d.f32(dy, b.Planes*b.OH*b.OW), d.f32(dx, b.Planes*b.H*b.W))
	return nil
}

func (d *Device) CrossEntropy(ce kernels.CrossEntropy, logits, labels, scale, loss, dlogits, bad device.Ptr) error {
	d.op()
	n := ce.N * ce.C * ce.HW
	lab := d.i32(labels, ce.N*ce.HW)
	g := float32(1)
	if scale != 0 {
		g = d.f32(scale, 1)[0]
	}
	var invalid int32
	for _, l := range lab {
		if l != ce.Ignore && (l < 0 || int(l) >= ce.C) {
			invalid++
		}
	}
	d.i32(bad, 1)[0] = invalid
	if invalid > 0 {
		return nil // the caller reports it; the CPU kernel would refuse the labels
	}
	l, _, err := ce.Forward(d.f32(logits, n), lab, g, d.f32(dlogits, n))
	if err != nil {
		return err
	}
	if loss != 0 {
		d.f32(loss, 1)[0] = l
	}
	return nil
}

func (d *Device) Resample(r kernels.Resample, x, y, argmax device.Ptr) error {
	d.op()
	var won []uint8
	if argmax != 0 {
		won = d.mem(argmax, r.Planes*r.OH*r.OW)
	}
	r.Forward(d.f32(x, r.Planes*r.H*r.W), d.f32(y, r.Planes*r.OH*r.OW), won)
	return nil
}

func (d *Device) ResampleBackward(r kernels.Resample, x, dy, dx, argmax, sizeGrads device.Ptr) error {
	d.op()
	var won []uint8
	if argmax != 0 {
		won = d.mem(argmax, r.Planes*r.OH*r.OW)
	}
	dIn, dOut := r.Backward(d.f32(x, r.Planes*r.H*r.W), d.f32(dy, r.Planes*r.OH*r.OW), d.f32(dx, r.Planes*r.H*r.W), won)
	g := d.f32(sizeGrads, 4)
	g[0], g[1], g[2], g[3] = float32(dIn[0]), float32(dIn[1]), float32(dOut[0]), float32(dOut[1])
	return nil
}

func (d *Device) Momentum(n int, w, g, v device.Ptr, lr, wd, mu float32) error {
	d.op()
	kernels.Momentum(d.f32(w, n), d.f32(g, n), d.f32(v, n), lr, wd, mu)
	return nil
}

func (d *Device) Argmax(n, c, hw int, scores, out device.Ptr) error {
	d.op()
	kernels.Argmax(d.f32(scores, n*c*hw), n, c, hw, d.i32(out, n*hw))
	return nil
}
