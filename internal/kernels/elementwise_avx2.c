//go:build amd64

// AVX2 elementwise kernels (elementwise.go has the definitions and the Go versions, which these
// match bit for bit: the same float32 operations in the same order).

#pragma GCC optimize("fp-contract=off") // segkit_avx2_momentum rounds as Go does

#include "simd_avx2.h"
#include "kernels.h"

// segkit_avx2_sum4 is segkit_avx512_sum4 (elementwise_avx512.c): y = x0 + x1 (+ x2 (+ x3)), left to
// right, then max(·, 0) when relu; x2 and x3 may be NULL.
AVX2 void segkit_avx2_sum4(long n, int relu, float *y, const float *x0, const float *x1, const float *x2,
                           const float *x3) {
	long i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 v = _mm256_add_ps(_mm256_loadu_ps(x0 + i), _mm256_loadu_ps(x1 + i));
		if (x2) v = _mm256_add_ps(v, _mm256_loadu_ps(x2 + i));
		if (x3) v = _mm256_add_ps(v, _mm256_loadu_ps(x3 + i));
		if (relu) v = _mm256_max_ps(v, _mm256_setzero_ps());
		_mm256_storeu_ps(y + i, v);
	}
	for (; i < n; i++) {
		float v = x0[i] + x1[i];
		if (x2) v += x2[i];
		if (x3) v += x3[i];
		y[i] = relu && !(v > 0) ? 0 : v;
	}
}

// segkit_avx2_relu_backward writes dx = dy where y > 0, else 0.
AVX2 void segkit_avx2_relu_backward(long n, const float *y, const float *dy, float *dx) {
	long i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 on = _mm256_cmp_ps(_mm256_loadu_ps(y + i), _mm256_setzero_ps(), _CMP_GT_OQ);
		_mm256_storeu_ps(dx + i, _mm256_and_ps(on, _mm256_loadu_ps(dy + i)));
	}
	for (; i < n; i++) dx[i] = y[i] > 0 ? dy[i] : 0;
}

// segkit_avx2_momentum is one SGD-with-momentum step: v = mu·v + g + wd·w; w −= lr·v.
AVX2 void segkit_avx2_momentum(long n, float *w, const float *g, float *v, float lr, float wd, float mu) {
	__m256 vlr = _mm256_set1_ps(lr), vwd = _mm256_set1_ps(wd), vmu = _mm256_set1_ps(mu);
	long i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 wi = _mm256_loadu_ps(w + i);
		__m256 vi = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(vmu, _mm256_loadu_ps(v + i)), _mm256_loadu_ps(g + i)),
		                          _mm256_mul_ps(vwd, wi));
		_mm256_storeu_ps(v + i, vi);
		_mm256_storeu_ps(w + i, _mm256_sub_ps(wi, _mm256_mul_ps(vlr, vi)));
	}
	for (; i < n; i++) {
		v[i] = mu * v[i] + g[i] + wd * w[i];
		w[i] -= lr * v[i];
	}
}
