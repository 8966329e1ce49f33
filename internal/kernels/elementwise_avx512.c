//go:build amd64

// AVX-512 elementwise kernels (elementwise.go has the definitions and the Go versions).

#pragma GCC optimize("fp-contract=off") // segkit_avx512_momentum rounds as Go does

#include "simd_avx512.h"
#include "kernels.h"

// segkit_avx512_sum4 writes y[i] = x0[i] + x1[i] (+ x2[i] (+ x3[i])) over [0, n), left to right,
// then max(·, 0) when relu; x2 and x3 may be NULL.
__attribute__((target("avx512f"))) void segkit_avx512_sum4(long n, int relu, float *y, const float *x0, const float *x1,
                                                    const float *x2, const float *x3) {
	for (long i = 0; i < n; i += 16) {
		__mmask16 m = tail_mask(n - i);
		__m512 v = _mm512_add_ps(load16(m, x0 + i), load16(m, x1 + i));
		if (x2) v = _mm512_add_ps(v, load16(m, x2 + i));
		if (x3) v = _mm512_add_ps(v, load16(m, x3 + i));
		if (relu) v = _mm512_max_ps(v, _mm512_setzero_ps());
		store16(y + i, m, v);
	}
}

// segkit_avx512_relu_backward writes dx = dy where y > 0, else 0, over [0, n).
__attribute__((target("avx512f"))) void segkit_avx512_relu_backward(long n, const float *y, const float *dy, float *dx) {
	for (long i = 0; i < n; i += 16) {
		__mmask16 m = tail_mask(n - i);
		__mmask16 on = _mm512_cmp_ps_mask(load16(m, y + i), _mm512_setzero_ps(), _CMP_GT_OQ);
		store16(dx + i, m, load16(on & m, dy + i));
	}
}

// segkit_avx512_momentum is one SGD-with-momentum step over [0, n), in the Go version's float32
// operations and order (no FMA contraction in this file): v = mu·v + g + wd·w; w −= lr·v.
__attribute__((target("avx512f"))) void segkit_avx512_momentum(long n, float *w, const float *g, float *v, float lr,
                                                        float wd, float mu) {
	__m512 vlr = _mm512_set1_ps(lr), vwd = _mm512_set1_ps(wd), vmu = _mm512_set1_ps(mu);
	for (long i = 0; i < n; i += 16) {
		__mmask16 m = tail_mask(n - i);
		__m512 wi = load16(m, w + i);
		__m512 vi = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(vmu, load16(m, v + i)), load16(m, g + i)),
		                          _mm512_mul_ps(vwd, wi));
		store16(v + i, m, vi);
		store16(w + i, m, _mm512_sub_ps(wi, _mm512_mul_ps(vlr, vi)));
	}
}
