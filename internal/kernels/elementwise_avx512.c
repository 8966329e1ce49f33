// AVX-512 elementwise kernels (elementwise.go has the definitions and the Go versions).

#if defined(__x86_64__)

#include <immintrin.h>

__attribute__((target("avx512f"), always_inline)) static inline __mmask16 mask16(long n) {
	return n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1);
}

// segkit_sum4 writes y[i] = x0[i] + x1[i] (+ x2[i] (+ x3[i])) over [0, n), left to right,
// then max(·, 0) when relu; x2 and x3 may be NULL.
__attribute__((target("avx512f"))) void segkit_sum4(long n, int relu, float *y, const float *x0, const float *x1,
                                                    const float *x2, const float *x3) {
	for (long i = 0; i < n; i += 16) {
		__mmask16 m = mask16(n - i);
		__m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, x0 + i), _mm512_maskz_loadu_ps(m, x1 + i));
		if (x2) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, x2 + i));
		if (x3) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, x3 + i));
		if (relu) v = _mm512_max_ps(v, _mm512_setzero_ps());
		_mm512_mask_storeu_ps(y + i, m, v);
	}
}

// segkit_relu_backward writes dx = dy where y > 0, else 0, over [0, n).
__attribute__((target("avx512f"))) void segkit_relu_backward(long n, const float *y, const float *dy, float *dx) {
	for (long i = 0; i < n; i += 16) {
		__mmask16 m = mask16(n - i);
		__mmask16 on = _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(m, y + i), _mm512_setzero_ps(), _CMP_GT_OQ);
		_mm512_mask_storeu_ps(dx + i, m, _mm512_maskz_loadu_ps(on & m, dy + i));
	}
}

#else

void segkit_sum4(long n, int relu, float *y, const float *x0, const float *x1, const float *x2, const float *x3) {}
void segkit_relu_backward(long n, const float *y, const float *dy, float *dx) {}

#endif
