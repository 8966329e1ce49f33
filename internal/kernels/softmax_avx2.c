//go:build amd64

// Softmax cross-entropy (softmax_tmpl.h) on AVX2+FMA.

#define SIMD_H "simd_avx2.h"
#include "softmax_tmpl.h"
