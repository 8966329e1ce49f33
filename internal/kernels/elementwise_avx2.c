//go:build amd64

// The elementwise kernels (elementwise_tmpl.h) on AVX2: whole vectors, the tail through a copy.

#define SIMD_H "simd_avx2.h"
#include "elementwise_tmpl.h"
