// Calls through the function pointers dlsym returned, with decl.h's types (cgo cannot call a
// C function pointer itself). One wrapper per entry point segkit uses.
#include "decl.h"

typedef sk_CUresult (*fn_cuInit)(unsigned);
typedef sk_CUresult (*fn_cuDeviceGet)(sk_CUdevice *, int);
typedef sk_CUresult (*fn_cuDeviceGetName)(char *, int, sk_CUdevice);
typedef sk_CUresult (*fn_cuDeviceGetAttribute)(int *, int, sk_CUdevice);
typedef sk_CUresult (*fn_cuDriverGetVersion)(int *);
typedef sk_CUresult (*fn_cuDevicePrimaryCtxRetain)(sk_CUcontext *, sk_CUdevice);
typedef sk_CUresult (*fn_cuCtxSetCurrent)(sk_CUcontext);
typedef sk_CUresult (*fn_cuModuleLoadData)(sk_CUmodule *, const void *);
typedef sk_CUresult (*fn_cuModuleGetFunction)(sk_CUfunction *, sk_CUmodule, const char *);
typedef sk_CUresult (*fn_cuGetErrorString)(sk_CUresult, const char **);
typedef sk_nvrtcResult (*fn_nvrtcCreateProgram)(sk_nvrtcProgram *, const char *, const char *, int, const char *const *, const char *const *);
typedef sk_nvrtcResult (*fn_nvrtcCompileProgram)(sk_nvrtcProgram, int, const char *const *);
typedef sk_nvrtcResult (*fn_nvrtcGetSize)(sk_nvrtcProgram, size_t *);
typedef sk_nvrtcResult (*fn_nvrtcGetText)(sk_nvrtcProgram, char *);
typedef sk_nvrtcResult (*fn_nvrtcDestroyProgram)(sk_nvrtcProgram *);
typedef size_t (*fn_cudnnGetVersion)(void);
typedef sk_cudnnStatus (*fn_cudnnCreate)(sk_cudnnHandle *);

int sk_cuInit(void *f, unsigned flags) { return ((fn_cuInit)f)(flags); }
int sk_cuDeviceGet(void *f, sk_CUdevice *d, int ordinal) { return ((fn_cuDeviceGet)f)(d, ordinal); }
int sk_cuDeviceGetName(void *f, char *name, int len, sk_CUdevice d) { return ((fn_cuDeviceGetName)f)(name, len, d); }
int sk_cuDeviceGetAttribute(void *f, int *v, int attr, sk_CUdevice d) { return ((fn_cuDeviceGetAttribute)f)(v, attr, d); }
int sk_cuDriverGetVersion(void *f, int *v) { return ((fn_cuDriverGetVersion)f)(v); }
int sk_cuDevicePrimaryCtxRetain(void *f, sk_CUcontext *c, sk_CUdevice d) { return ((fn_cuDevicePrimaryCtxRetain)f)(c, d); }
int sk_cuCtxSetCurrent(void *f, sk_CUcontext c) { return ((fn_cuCtxSetCurrent)f)(c); }
int sk_cuModuleLoadData(void *f, sk_CUmodule *m, const void *image) { return ((fn_cuModuleLoadData)f)(m, image); }
int sk_cuModuleGetFunction(void *f, sk_CUfunction *fn, sk_CUmodule m, const char *name) { return ((fn_cuModuleGetFunction)f)(fn, m, name); }
const char *sk_cuErrorString(void *f, sk_CUresult r) {
	const char *s = 0;
	if (!f || ((fn_cuGetErrorString)f)(r, &s) != 0 || !s) return "unknown CUDA error";
	return s;
}
int sk_nvrtcCreateProgram(void *f, sk_nvrtcProgram *p, const char *src, const char *name) {
	return ((fn_nvrtcCreateProgram)f)(p, src, name, 0, 0, 0);
}
int sk_nvrtcCompileProgram(void *f, sk_nvrtcProgram p, int n, const char *const *opts) { return ((fn_nvrtcCompileProgram)f)(p, n, opts); }
int sk_nvrtcGetSize(void *f, sk_nvrtcProgram p, size_t *n) { return ((fn_nvrtcGetSize)f)(p, n); }
int sk_nvrtcGetText(void *f, sk_nvrtcProgram p, char *out) { return ((fn_nvrtcGetText)f)(p, out); }
int sk_nvrtcDestroyProgram(void *f, sk_nvrtcProgram *p) { return ((fn_nvrtcDestroyProgram)f)(p); }
size_t sk_cudnnGetVersion(void *f) { return ((fn_cudnnGetVersion)f)(); }
int sk_cudnnCreate(void *f, sk_cudnnHandle *h) { return ((fn_cudnnCreate)f)(h); }
