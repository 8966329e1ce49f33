// Helpers shared by the AVX2 kernels (*_avx2.c). AVX2 has no cheap lane masks, so these kernels
// run whole 8-float vectors and finish each row with scalar code in the same operations.

#ifndef SEGKIT_AVX2_H
#define SEGKIT_AVX2_H

#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))
#define AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline

// hsum8 returns the sum of v's lanes, in double, lane order.
AVX2_INLINE double hsum8(__m256 v) {
	float t[8];
	_mm256_storeu_ps(t, v);
	double s = 0;
	for (int i = 0; i < 8; i++) s += t[i];
	return s;
}

#endif
