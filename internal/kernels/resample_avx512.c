//go:build amd64

// DynOPool's sampling forward (resample_tmpl.h) on AVX-512.

#define SIMD_H "simd_avx512.h"
#include "resample_tmpl.h"
