//go:build amd64

// Winograd F(4×4, 3×3) (winograd_tmpl.h) on AVX-512, 16 tiles per vector.

#define SIMD_H "simd_avx512.h"
#include "winograd_tmpl.h"
