//go:build amd64

// Winograd F(4×4, 3×3) (winograd_tmpl.h) on AVX2+FMA, 8 tiles per vector.

#define SIMD_H "simd_avx2.h"
#include "winograd_tmpl.h"
