//go:build amd64

// The GEMM (sgemm_tmpl.h) on AVX-512.

#define SIMD_H "simd_avx512.h"
#include "sgemm_tmpl.h"
