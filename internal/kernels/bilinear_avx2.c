//go:build amd64

// Bilinear resizing (bilinear_tmpl.h) on AVX2.

#define SIMD_H "simd_avx2.h"
#include "bilinear_tmpl.h"
