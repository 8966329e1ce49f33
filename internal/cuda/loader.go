//go:build device

// Package cuda is segkit's NVIDIA backend, loaded at run time: libcuda (the driver API), NVRTC
// and cuDNN are opened with dlopen and called through our own declarations (decl.h), so the
// binary builds and runs where no CUDA exists, and uses a GPU where the driver and libraries
// are. Where they are missing, Select says so in one line and the CPU path runs.
package cuda

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
static void *sk_dlopen(const char *path) { return dlopen(path, RTLD_NOW | RTLD_LOCAL); }
static const char *sk_dlerror(void) { const char *e = dlerror(); return e ? e : ""; }
*/
import "C"

import (
	"fmt"
	"os"
	"strings"
	"unsafe"
)

// Libs are the opened libraries.
type Libs struct {
	CUDA, NVRTC, CUDNN unsafe.Pointer
	Paths              map[string]string // What → the path that opened
}

// openLib tries lib's candidates in order and returns the first that opens.
func openLib(lib Library, dirs []string) (unsafe.Pointer, string, error) {
	var first string
	for _, path := range candidates(lib, dirs) {
		if strings.Contains(path, "/") {
			if _, err := os.Stat(path); err != nil {
				continue // not there: no need to ask the loader
			}
		}
		cs := C.CString(path)
		h := C.sk_dlopen(cs)
		C.free(unsafe.Pointer(cs))
		if h != nil {
			return h, path, nil
		}
		if first == "" {
			first = C.GoString(C.sk_dlerror())
		}
	}
	where := "$" + EnvLibs + ", the loader's path, /usr/local/cuda, /usr/local/nvidia, pip's site-packages/nvidia/*/lib"
	msg := fmt.Sprintf("%s (%s) not found in %s", lib.What, strings.Join(lib.Names, " or "), where)
	if first != "" && !strings.Contains(first, "No such file") && !strings.Contains(first, "cannot open shared object file") {
		msg += ": " + first
	}
	return nil, "", fmt.Errorf("%s", msg)
}

// Open loads the driver, NVRTC and cuDNN, searching as searchDirs says.
func Open() (*Libs, error) {
	env := os.Getenv(EnvLibs)
	sp := sitePackages()
	l := &Libs{Paths: map[string]string{}}
	for _, t := range []struct {
		lib Library
		dst *unsafe.Pointer
	}{{libCUDA, &l.CUDA}, {libNVRTC, &l.NVRTC}, {libCUDNN, &l.CUDNN}} {
		h, path, err := openLib(t.lib, searchDirs(env, sp, t.lib.Wheel))
		if err != nil {
			return nil, err
		}
		*t.dst, l.Paths[t.lib.What] = h, path
	}
	return l, nil
}

// symbol returns the address of name in library h.
func symbol(h unsafe.Pointer, name string) (unsafe.Pointer, error) {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	p := C.dlsym(h, cs)
	if p == nil {
		return nil, fmt.Errorf("symbol %s: %s", name, C.GoString(C.sk_dlerror()))
	}
	return p, nil
}
