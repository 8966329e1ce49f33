// The AVX2+FMA vocabulary of the kernel templates (*_tmpl.h): the vector type and its operations,
// named alike in simd_avx512.h, so that each kernel is written once. AVX2 has no cheap lane masks
// (maskload is slow on AMD's cores): where AVX-512 loads or stores part of a vector, these run
// whole vectors and finish with scalar code in the same operations, or load whole and AND.

#ifndef SEGKIT_SIMD_H
#define SEGKIT_SIMD_H

#include <immintrin.h>
#include <stdint.h>

#include "kernels.h"

#define SIMD_AVX2 1
#define VL 8 // floats per vector

// The rest of a row after its whole vectors is not one more, partial vector here: where a sum
// takes it, in scalars (in the kernels' own order, not the AVX-512 one).
#define SIMD_PARTIAL_VECTORS 0

// ISA_NAME(x) is this instruction set's segkit_avx2_x.
#define ISA_NAME(x) segkit_avx2_##x

// SIMD marks a function compiled for the instruction set; SIMD_INLINE a helper always inlined.
#define SIMD __attribute__((target("avx2,fma")))
#define SIMD_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline
#define SIMD_UNROLL_VL _Pragma("GCC unroll 8") // the next loop, over VL, unrolled

typedef __m256 vf;
typedef __m256i vi;

#define vf_zero _mm256_setzero_ps
#define vf_set1 _mm256_set1_ps
#define vf_load _mm256_load_ps // aligned
#define vf_loadu _mm256_loadu_ps
#define vf_store _mm256_store_ps // aligned
#define vf_storeu _mm256_storeu_ps
#define vf_add _mm256_add_ps
#define vf_sub _mm256_sub_ps
#define vf_mul _mm256_mul_ps
#define vf_div _mm256_div_ps
#define vf_max _mm256_max_ps
#define vf_fmadd _mm256_fmadd_ps   // a·b + c, one rounding
#define vf_fnmadd _mm256_fnmadd_ps // −a·b + c, one rounding

// vf_load_first returns the first n floats at p (all VL for n ≥ VL, none for n ≤ 0), zeros in the
// other lanes; it reads no float past them.
SIMD_INLINE vf vf_load_first(const float *p, long n) {
	if (n >= 8) return _mm256_loadu_ps(p);
	float t[8] = {0};
	for (long l = 0; l < n; l++) t[l] = p[l];
	return _mm256_loadu_ps(t);
}

// vf_store_first stores the first n lanes of v at p (all VL for n ≥ VL); it writes no float past
// them.
SIMD_INLINE void vf_store_first(float *p, long n, vf v) {
	if (n >= 8) {
		_mm256_storeu_ps(p, v);
		return;
	}
	float t[8];
	_mm256_storeu_ps(t, v);
	for (long l = 0; l < n; l++) p[l] = t[l];
}

// vf_gather9_first returns p[0], p[9], p[18], … in the first n lanes (all VL for n ≥ VL), zeros in
// the others: a filter tap of n consecutive 3×3 filters.
SIMD_INLINE vf vf_gather9_first(const float *p, long n) {
	float v[8] = {0};
	for (long l = 0; l < n; l++) v[l] = p[l * 9];
	return _mm256_loadu_ps(v);
}

// vf_gather_first returns src[idx[l]] in the first n lanes l (all VL for n ≥ VL), zeros in the
// others.
SIMD_INLINE vf vf_gather_first(const float *src, const int *idx, long n) {
	if (n >= 8) return _mm256_i32gather_ps(src, _mm256_loadu_si256((const __m256i *)idx), 4);
	float t[8] = {0};
	for (long l = 0; l < n; l++) t[l] = src[idx[l]];
	return _mm256_loadu_ps(t);
}

#define vi_set1 _mm256_set1_epi32
#define vi_sub _mm256_sub_epi32
#define vi_min _mm256_min_epi32
#define vi_max _mm256_max_epi32

// vi_load_first returns the first n ints at p (all VL for n ≥ VL), zeros in the other lanes.
SIMD_INLINE vi vi_load_first(const int *p, long n) {
	if (n >= 8) return _mm256_loadu_si256((const __m256i *)p);
	int t[8] = {0};
	for (long l = 0; l < n; l++) t[l] = p[l];
	return _mm256_loadu_si256((const __m256i *)t);
}

// vi_hmin_first and vi_hmax_first return the least and greatest of the first n (≥ 1) lanes.
SIMD_INLINE int vi_hmin_first(vi v, long n) {
	if (n < 8) {
		int t[8], m;
		_mm256_storeu_si256((__m256i *)t, v);
		m = t[0];
		for (long l = 1; l < n; l++) m = t[l] < m ? t[l] : m;
		return m;
	}
	__m128i m = _mm_min_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
	m = _mm_min_epi32(m, _mm_shuffle_epi32(m, 0x4E));
	return _mm_cvtsi128_si32(_mm_min_epi32(m, _mm_shuffle_epi32(m, 0xB1)));
}
SIMD_INLINE int vi_hmax_first(vi v, long n) {
	if (n < 8) {
		int t[8], m;
		_mm256_storeu_si256((__m256i *)t, v);
		m = t[0];
		for (long l = 1; l < n; l++) m = t[l] > m ? t[l] : m;
		return m;
	}
	__m128i m = _mm_max_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
	m = _mm_max_epi32(m, _mm_shuffle_epi32(m, 0x4E));
	return _mm_cvtsi128_si32(_mm_max_epi32(m, _mm_shuffle_epi32(m, 0xB1)));
}

// vf_gather_vi_first returns src[idx[l]] in the first n lanes l (all VL for n ≥ VL), zeros in the
// others.
SIMD_INLINE vf vf_gather_vi_first(const float *src, vi idx, long n) {
	if (n >= 8) return _mm256_i32gather_ps(src, idx, 4);
	int i[8];
	float t[8] = {0};
	_mm256_storeu_si256((__m256i *)i, idx);
	for (long l = 0; l < n; l++) t[l] = src[i[l]];
	return _mm256_loadu_ps(t);
}

// vf_window returns lanes w[d] of the 2·VL floats w = w0‖w1, for offsets d in [0, 2·VL).
SIMD_INLINE vf vf_window(vf w0, vf w1, vi d) {
	return _mm256_blendv_ps(_mm256_permutevar8x32_ps(w0, d), _mm256_permutevar8x32_ps(w1, d),
	                        _mm256_castsi256_ps(_mm256_cmpgt_epi32(d, _mm256_set1_epi32(7))));
}

// vf_select_lt returns a in the lanes where t < c, b elsewhere.
SIMD_INLINE vf vf_select_lt(vf t, vf c, vf a, vf b) { return _mm256_blendv_ps(b, a, _mm256_cmp_ps(t, c, _CMP_LT_OQ)); }

// vi_select_eq returns x in the lanes where a == b, y elsewhere.
SIMD_INLINE vi vi_select_eq(vf a, vf b, vi x, vi y) {
	return _mm256_blendv_epi8(y, x, _mm256_castps_si256(_mm256_cmp_ps(a, b, _CMP_EQ_OQ)));
}

// vi_store_bytes_first stores the first n lanes of k (all VL for n ≥ VL) as bytes at p.
SIMD_INLINE void vi_store_bytes_first(unsigned char *p, long n, vi k) {
	int t[8];
	_mm256_storeu_si256((__m256i *)t, k);
	for (long l = 0; l < (n < 8 ? n : 8); l++) p[l] = (unsigned char)t[l];
}

#define vf_round_nearest(v) _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

// vf_ldexp returns p·2^n for integral n ≥ −126 (a normal number), the power built in the exponent
// bits.
SIMD_INLINE vf vf_ldexp(vf p, vf n) {
	__m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
	return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

// vm is a set of lanes: all bits of a lane set, or none.
typedef __m256 vm;

// vm_first selects the first n lanes (all for n ≥ VL).
SIMD_INLINE vm vm_first(long n) {
	__m256i l = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
	return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(n < 8 ? (int)n : 8), l));
}

#define vm_and _mm256_and_ps

// vm_eq and vm_ne select the lanes where a == b, a != b.
SIMD_INLINE vm vm_eq(vi a, vi b) { return _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, b)); }
SIMD_INLINE vm vm_ne(vi a, vi b) {
	return _mm256_castsi256_ps(_mm256_xor_si256(_mm256_cmpeq_epi32(a, b), _mm256_set1_epi32(-1)));
}

// vm_bits returns m as bits, lane l in bit l.
SIMD_INLINE int vm_bits(vm m) { return _mm256_movemask_ps(m); }

// vf_blend returns b in the lanes of m, a elsewhere; vf_maskz v in the lanes of m, zero elsewhere;
// vf_sub_in a − b in the lanes of m, a elsewhere.
SIMD_INLINE vf vf_blend(vf a, vm m, vf b) { return _mm256_blendv_ps(a, b, m); }
SIMD_INLINE vf vf_maskz(vm m, vf v) { return _mm256_and_ps(m, v); }
SIMD_INLINE vf vf_sub_in(vf a, vm m, vf b) { return _mm256_sub_ps(a, _mm256_and_ps(m, b)); }

// vf_keep_positive returns d in the lanes where y > 0, zero elsewhere.
SIMD_INLINE vf vf_keep_positive(vf y, vf d) {
	return _mm256_and_ps(_mm256_cmp_ps(y, _mm256_setzero_ps(), _CMP_GT_OQ), d);
}

// vf_hsum returns the sum of v's lanes, in double, lane order.
SIMD_INLINE double vf_hsum(__m256 v) {
	float t[8];
	_mm256_storeu_ps(t, v);
	double s = 0;
	for (int i = 0; i < 8; i++) s += t[i];
	return s;
}

// vf_transpose sets o[c][r] = r[r][c] for a VL×VL block.
SIMD_INLINE void vf_transpose(const __m256 *r, __m256 *o) {
	__m256 t[8], u[8];
	for (int i = 0; i < 4; i++) { // pairs of rows, interleaved within 128-bit lanes
		t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
		t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
	}
	for (int i = 0; i < 2; i++) { // four rows' columns c, c+4 in the two lanes
		u[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
		u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
		u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
		u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
	}
	for (int c = 0; c < 4; c++) { // rows 0-3 with rows 4-7
		o[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
		o[c + 4] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
	}
}

// masked returns the 8 floats at a with the lanes of mask m kept, zero elsewhere, as
// _mm256_maskload_ps would. That instruction is slow on some CPUs (AMD Zen measured: packing
// with it took longer than the GEMM), so where the 8 floats lie inside the input plane [lo, hi)
// they are loaded whole and the mask applied with an AND; only loads that could leave the
// plane (its first and last few floats) stay masked, since those may leave the allocation.
SIMD_INLINE __m256 masked(const float *a, __m256i m, const float *lo, const float *hi) {
	if ((uintptr_t)a >= (uintptr_t)lo && (uintptr_t)(a + 8) <= (uintptr_t)hi)
		return _mm256_and_ps(_mm256_loadu_ps(a), _mm256_castsi256_ps(m));
	return _mm256_maskload_ps(a, m);
}

#endif
