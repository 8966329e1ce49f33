//go:build device

package cuda

/*
#include <stdlib.h>
#include "decl.h"
int sk_cuInit(void *f, unsigned flags);
int sk_cuDeviceGet(void *f, sk_CUdevice *d, int ordinal);
int sk_cuDeviceGetName(void *f, char *name, int len, sk_CUdevice d);
int sk_cuDeviceGetAttribute(void *f, int *v, int attr, sk_CUdevice d);
int sk_cuDriverGetVersion(void *f, int *v);
int sk_cuDevicePrimaryCtxRetain(void *f, sk_CUcontext *c, sk_CUdevice d);
int sk_cuCtxSetCurrent(void *f, sk_CUcontext c);
int sk_cuModuleLoadData(void *f, sk_CUmodule *m, const void *image);
int sk_cuModuleGetFunction(void *f, sk_CUfunction *fn, sk_CUmodule m, const char *name);
const char *sk_cuErrorString(void *f, sk_CUresult r);
int sk_nvrtcCreateProgram(void *f, sk_nvrtcProgram *p, const char *src, const char *name);
int sk_nvrtcCompileProgram(void *f, sk_nvrtcProgram p, int n, const char *const *opts);
int sk_nvrtcGetSize(void *f, sk_nvrtcProgram p, size_t *n);
int sk_nvrtcGetText(void *f, sk_nvrtcProgram p, char *out);
int sk_nvrtcDestroyProgram(void *f, sk_nvrtcProgram *p);
size_t sk_cudnnGetVersion(void *f);
int sk_cudnnCreate(void *f, sk_cudnnHandle *h);
*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"

	"github.com/segkit/segkit/internal/device"
	"github.com/segkit/segkit/internal/devkernels"
)

// NEVER RUN ON A GPU: everything below was compiled and vetted only (no GPU here).

// gpu is what newDevice starts: the driver on GPU 0 with its primary context, our kernels
// compiled by NVRTC for its architecture and loaded, and a cuDNN handle.
type gpu struct {
	name        string
	sm          int // compute capability, 10·major + minor
	driver      int // CUDA driver version, 1000·major + 10·minor
	cudnn       int
	ctx         C.sk_CUcontext
	module      C.sk_CUmodule
	kernels     map[string]C.sk_CUfunction
	dnn         C.sk_cudnnHandle
	errorString unsafe.Pointer
}

// newDevice starts the GPU. It then reports ErrIncomplete: the memory, kernel-launch and cuDNN
// calls of device.Device are not written yet, and a half backend must not run a training.
func newDevice(l *Libs) (device.Device, error) {
	runtime.LockOSThread() // a context is current per OS thread
	defer runtime.UnlockOSThread()
	sym := func(h unsafe.Pointer, name string) unsafe.Pointer {
		p, err := symbol(h, name)
		if err != nil {
			panic(err) // recovered below: a library without an entry point we use
		}
		return p
	}
	g := &gpu{kernels: map[string]C.sk_CUfunction{}}
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%v", r)
			}
		}()
		g.errorString = sym(l.CUDA, "cuGetErrorString")
		check := func(what string, r C.int) {
			if r != 0 {
				panic(fmt.Sprintf("%s: %s (CUresult %d)", what, C.GoString(C.sk_cuErrorString(g.errorString, C.sk_CUresult(r))), int(r)))
			}
		}
		check("cuInit", C.sk_cuInit(sym(l.CUDA, "cuInit"), 0))
		var dev C.sk_CUdevice
		check("cuDeviceGet", C.sk_cuDeviceGet(sym(l.CUDA, "cuDeviceGet"), &dev, 0))
		var name [256]C.char
		check("cuDeviceGetName", C.sk_cuDeviceGetName(sym(l.CUDA, "cuDeviceGetName"), &name[0], 256, dev))
		g.name = C.GoString(&name[0])
		var major, minor, drv C.int
		attr := sym(l.CUDA, "cuDeviceGetAttribute")
		check("compute capability", C.sk_cuDeviceGetAttribute(attr, &major, C.SK_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev))
		check("compute capability", C.sk_cuDeviceGetAttribute(attr, &minor, C.SK_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev))
		check("cuDriverGetVersion", C.sk_cuDriverGetVersion(sym(l.CUDA, "cuDriverGetVersion"), &drv))
		g.sm, g.driver = int(10*major+minor), int(drv)
		check("cuDevicePrimaryCtxRetain", C.sk_cuDevicePrimaryCtxRetain(sym(l.CUDA, "cuDevicePrimaryCtxRetain"), &g.ctx, dev))
		check("cuCtxSetCurrent", C.sk_cuCtxSetCurrent(sym(l.CUDA, "cuCtxSetCurrent"), g.ctx))
		ptx := g.compile(l, sym)
		cptx := C.CString(ptx)
		defer C.free(unsafe.Pointer(cptx))
		check("cuModuleLoadData", C.sk_cuModuleLoadData(sym(l.CUDA, "cuModuleLoadData"), &g.module, unsafe.Pointer(cptx)))
		get := sym(l.CUDA, "cuModuleGetFunction")
		for _, k := range devkernels.Kernels {
			ck := C.CString(k)
			var f C.sk_CUfunction
			r := C.sk_cuModuleGetFunction(get, &f, g.module, ck)
			C.free(unsafe.Pointer(ck))
			check("kernel "+k, r)
			g.kernels[k] = f
		}
		g.cudnn = int(C.sk_cudnnGetVersion(sym(l.CUDNN, "cudnnGetVersion")))
		if r := C.sk_cudnnCreate(sym(l.CUDNN, "cudnnCreate"), &g.dnn); r != 0 {
			panic(fmt.Sprintf("cudnnCreate: status %d", int(r)))
		}
	}()
	if err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%s (sm_%d, driver %d.%d, cuDNN %d) started and our %d kernels compiled, but %w: memory, launches and cuDNN calls are not written",
		g.name, g.sm, g.driver/1000, g.driver%1000/10, g.cudnn, len(g.kernels), ErrIncomplete)
}

// compile turns devkernels.Source into PTX for this GPU with NVRTC: strict fp32 (no
// contraction, IEEE division and square root), as the CPU kernels round.
func (g *gpu) compile(l *Libs, sym func(unsafe.Pointer, string) unsafe.Pointer) string {
	src := C.CString(devkernels.Source())
	defer C.free(unsafe.Pointer(src))
	name := C.CString("segkit.cu")
	defer C.free(unsafe.Pointer(name))
	var prog C.sk_nvrtcProgram
	if r := C.sk_nvrtcCreateProgram(sym(l.NVRTC, "nvrtcCreateProgram"), &prog, src, name); r != 0 {
		panic(fmt.Sprintf("nvrtcCreateProgram: %d", int(r)))
	}
	defer C.sk_nvrtcDestroyProgram(sym(l.NVRTC, "nvrtcDestroyProgram"), &prog)
	opts := []string{fmt.Sprintf("--gpu-architecture=compute_%d", g.sm), "--fmad=false", "--prec-div=true", "--prec-sqrt=true"}
	copts := make([]*C.char, len(opts))
	for i, o := range opts {
		copts[i] = C.CString(o)
		defer C.free(unsafe.Pointer(copts[i]))
	}
	r := C.sk_nvrtcCompileProgram(sym(l.NVRTC, "nvrtcCompileProgram"), prog, C.int(len(opts)), &copts[0])
	text := func(size, get string) string {
		var n C.size_t
		C.sk_nvrtcGetSize(sym(l.NVRTC, size), prog, &n)
		buf := make([]byte, max(int(n), 1))
		C.sk_nvrtcGetText(sym(l.NVRTC, get), prog, (*C.char)(unsafe.Pointer(&buf[0])))
		return string(buf[:max(int(n)-1, 0)])
	}
	if r != 0 {
		panic(fmt.Sprintf("NVRTC could not compile the kernels (%d): %s", int(r), text("nvrtcGetProgramLogSize", "nvrtcGetProgramLog")))
	}
	return text("nvrtcGetPTXSize", "nvrtcGetPTX")
}
