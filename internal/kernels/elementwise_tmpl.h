// Elementwise kernels, written once for both instruction sets (elementwise_avx2.c and
// elementwise_avx512.c define SIMD_H and include this). elementwise.go has the definitions and
// the Go versions, which these match bit for bit: the same float32 operations in the same order.
// Each runs whole vectors, then the last r < VL elements once (vf_load_first, vf_store_first).

#pragma GCC optimize("fp-contract=off") // momentum rounds as Go does

#include SIMD_H

// sum4_at writes y = x0 + x1 (+ x2 (+ x3)) at the r elements from i.
SIMD_INLINE void sum4_at(long i, long r, int relu, float *y, const float *x0, const float *x1, const float *x2,
                         const float *x3) {
	vf v = vf_add(vf_load_first(x0 + i, r), vf_load_first(x1 + i, r));
	if (x2) v = vf_add(v, vf_load_first(x2 + i, r));
	if (x3) v = vf_add(v, vf_load_first(x3 + i, r));
	if (relu) v = vf_max(v, vf_zero());
	vf_store_first(y + i, r, v);
}

// sum4 writes y[i] = x0[i] + x1[i] (+ x2[i] (+ x3[i])) over [0, n), left to right, then
// max(·, 0) when relu; x2 and x3 may be NULL.
SIMD void ISA_NAME(sum4)(long n, int relu, float *y, const float *x0, const float *x1, const float *x2,
                         const float *x3) {
	long i = 0;
	for (; i + VL <= n; i += VL) sum4_at(i, VL, relu, y, x0, x1, x2, x3);
	if (i < n) sum4_at(i, n - i, relu, y, x0, x1, x2, x3);
}

// relu_backward writes dx = dy where y > 0, else 0, over [0, n).
SIMD void ISA_NAME(relu_backward)(long n, const float *y, const float *dy, float *dx) {
	long i = 0;
	for (; i + VL <= n; i += VL) vf_storeu(dx + i, vf_keep_positive(vf_loadu(y + i), vf_loadu(dy + i)));
	if (i < n) vf_store_first(dx + i, n - i, vf_keep_positive(vf_load_first(y + i, n - i), vf_load_first(dy + i, n - i)));
}

// momentum_at is momentum at the r elements from i.
SIMD_INLINE void momentum_at(long i, long r, float *w, const float *g, float *v, vf vlr, vf vwd, vf vmu) {
	vf wi = vf_load_first(w + i, r);
	vf vi = vf_add(vf_add(vf_mul(vmu, vf_load_first(v + i, r)), vf_load_first(g + i, r)), vf_mul(vwd, wi));
	vf_store_first(v + i, r, vi);
	vf_store_first(w + i, r, vf_sub(wi, vf_mul(vlr, vi)));
}

// momentum is one SGD-with-momentum step over [0, n), in the Go version's float32 operations and
// order (no FMA contraction in this file): v = mu·v + g + wd·w; w −= lr·v.
SIMD void ISA_NAME(momentum)(long n, float *w, const float *g, float *v, float lr, float wd, float mu) {
	vf vlr = vf_set1(lr), vwd = vf_set1(wd), vmu = vf_set1(mu);
	long i = 0;
	for (; i + VL <= n; i += VL) momentum_at(i, VL, w, g, v, vlr, vwd, vmu);
	if (i < n) momentum_at(i, n - i, w, g, v, vlr, vwd, vmu);
}
