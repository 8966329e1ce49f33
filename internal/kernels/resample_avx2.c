//go:build amd64

// DynOPool's sampling forward (resample_tmpl.h) on AVX2.

#define SIMD_H "simd_avx2.h"
#include "resample_tmpl.h"
