// Helpers shared by the AVX-512 kernels (*_avx512.c).

#ifndef SEGKIT_AVX512_H
#define SEGKIT_AVX512_H

#include <immintrin.h>

// tail_mask selects the first n (clamped to [0, 16]) lanes.
static inline __mmask16 tail_mask(long n) {
	if (n >= 16) return 0xFFFF;
	if (n <= 0) return 0;
	return (__mmask16)((1u << n) - 1);
}

// store16 stores the lanes of v selected by m. Masked stores are slow on AMD's cores (measured:
// they made packing 3× slower), so a full mask takes a plain store.
__attribute__((target("avx512f"), always_inline)) static inline void store16(float *p, __mmask16 m, __m512 v) {
	if (m == 0xFFFF)
		_mm512_storeu_ps(p, v);
	else
		_mm512_mask_storeu_ps(p, m, v);
}

// load16 loads the lanes of p selected by m, zeros elsewhere; a full mask takes a plain load
// (masked loads are slower too).
__attribute__((target("avx512f"), always_inline)) static inline __m512 load16(__mmask16 m, const float *p) {
	return m == 0xFFFF ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m, p);
}

#endif
