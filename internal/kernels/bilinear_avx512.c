//go:build amd64

// Bilinear resizing (bilinear_tmpl.h) on AVX-512.

#define SIMD_H "simd_avx512.h"
#include "bilinear_tmpl.h"
