//go:build amd64

// Batch normalisation (batchnorm_tmpl.h) on AVX2+FMA.

#define SIMD_H "simd_avx2.h"
#include "batchnorm_tmpl.h"
