package kernels

// #include "kernels.h"
import "C"

// cpuISA returns the best kernels the CPU runs.
func cpuISA() isa { return isa(C.segkit_cpu_isa()) }

// kernelsFor returns the table of l's C kernels (nil for the portable ones).
func kernelsFor(l isa) *C.segkit_kernels { return C.segkit_kernels_for(C.int(l)) }
