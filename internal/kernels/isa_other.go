//go:build !amd64

package kernels

// #include "kernels.h"
import "C"

// cpuISA returns the best kernels the CPU runs: the C ones are x86-64's.
func cpuISA() isa { return isaPortable }

// kernelsFor returns nil: no C kernels are built here.
func kernelsFor(isa) *C.segkit_kernels { return nil }
