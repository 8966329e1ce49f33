//go:build amd64

// Batch normalisation (batchnorm_tmpl.h) on AVX-512.

#define SIMD_H "simd_avx512.h"
#include "batchnorm_tmpl.h"
