//go:build amd64

// Implicit-GEMM convolution (conv_tmpl.h) on AVX-512.

#define SIMD_H "simd_avx512.h"
#include "conv_tmpl.h"
