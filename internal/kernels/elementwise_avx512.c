//go:build amd64

// The elementwise kernels (elementwise_tmpl.h) on AVX-512: masked tails.

#define SIMD_H "simd_avx512.h"
#include "elementwise_tmpl.h"
