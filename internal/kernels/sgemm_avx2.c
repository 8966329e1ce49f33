//go:build amd64

// The GEMM (sgemm_tmpl.h) on AVX2+FMA, for CPUs without AVX-512 (most laptops and many servers).

#define SIMD_H "simd_avx2.h"
#include "sgemm_tmpl.h"
