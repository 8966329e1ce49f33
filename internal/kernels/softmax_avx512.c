//go:build amd64

// Softmax cross-entropy (softmax_tmpl.h) on AVX-512.

#define SIMD_H "simd_avx512.h"
#include "softmax_tmpl.h"
