//go:build amd64

// Implicit-GEMM convolution (conv_tmpl.h) on AVX2+FMA.

#define SIMD_H "simd_avx2.h"
#include "conv_tmpl.h"
