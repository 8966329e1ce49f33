// The AVX-512F vocabulary of the kernel templates (*_tmpl.h): the vector type and its operations,
// named alike in simd_avx2.h, so that each kernel is written once. Partial vectors are loaded and
// stored through lane masks.

#ifndef SEGKIT_SIMD_H
#define SEGKIT_SIMD_H

#include <immintrin.h>

#include "kernels.h"

#define SIMD_AVX512 1
#define VL 16 // floats per vector

// The rest of a row after its whole vectors is one more, partial vector (masked lanes).
#define SIMD_PARTIAL_VECTORS 1

// ISA_NAME(x) is this instruction set's segkit_avx512_x.
#define ISA_NAME(x) segkit_avx512_##x

// SIMD marks a function compiled for the instruction set; SIMD_INLINE a helper always inlined.
#define SIMD __attribute__((target("avx512f")))
#define SIMD_INLINE __attribute__((target("avx512f"), always_inline)) static inline
#define SIMD_UNROLL_VL _Pragma("GCC unroll 16") // the next loop, over VL, unrolled

typedef __m512 vf;
typedef __m512i vi;

#define vf_zero _mm512_setzero_ps
#define vf_set1 _mm512_set1_ps
#define vf_load _mm512_load_ps // aligned
#define vf_loadu _mm512_loadu_ps
#define vf_store _mm512_store_ps // aligned
#define vf_storeu _mm512_storeu_ps
#define vf_add _mm512_add_ps
#define vf_sub _mm512_sub_ps
#define vf_mul _mm512_mul_ps
#define vf_div _mm512_div_ps
#define vf_max _mm512_max_ps
#define vf_fmadd _mm512_fmadd_ps   // a·b + c, one rounding
#define vf_fnmadd _mm512_fnmadd_ps // −a·b + c, one rounding

// tail_mask selects the first n (clamped to [0, 16]) lanes.
static inline __mmask16 tail_mask(long n) {
	if (n >= 16) return 0xFFFF;
	if (n <= 0) return 0;
	return (__mmask16)((1u << n) - 1);
}

// store16 stores the lanes of v selected by m. Masked stores are slow on AMD's cores (measured:
// they made packing 3× slower), so a full mask takes a plain store.
SIMD_INLINE void store16(float *p, __mmask16 m, __m512 v) {
	if (m == 0xFFFF)
		_mm512_storeu_ps(p, v);
	else
		_mm512_mask_storeu_ps(p, m, v);
}

// load16 loads the lanes of p selected by m, zeros elsewhere; a full mask takes a plain load
// (masked loads are slower too).
SIMD_INLINE __m512 load16(__mmask16 m, const float *p) {
	return m == 0xFFFF ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m, p);
}

// vf_load_first returns the first n floats at p (all VL for n ≥ VL, none for n ≤ 0), zeros in the
// other lanes; it reads no float past them.
SIMD_INLINE vf vf_load_first(const float *p, long n) { return load16(tail_mask(n), p); }

// vf_store_first stores the first n lanes of v at p (all VL for n ≥ VL); it writes no float past
// them.
SIMD_INLINE void vf_store_first(float *p, long n, vf v) { store16(p, tail_mask(n), v); }

// vf_gather9_first returns p[0], p[9], p[18], … in the first n lanes (all VL for n ≥ VL), zeros in
// the others: a filter tap of n consecutive 3×3 filters.
SIMD_INLINE vf vf_gather9_first(const float *p, long n) {
	const __m512i idx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
	                                       _mm512_set1_epi32(9));
	return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), tail_mask(n), idx, p, 4);
}

// vf_gather_first returns src[idx[l]] in the first n lanes l (all VL for n ≥ VL), zeros in the
// others.
SIMD_INLINE vf vf_gather_first(const float *src, const int *idx, long n) {
	__mmask16 m = tail_mask(n);
	return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, _mm512_maskz_loadu_epi32(m, idx), src, 4);
}

#define vi_set1 _mm512_set1_epi32
#define vi_sub _mm512_sub_epi32
#define vi_min _mm512_min_epi32
#define vi_max _mm512_max_epi32

// vi_load_first returns the first n ints at p (all VL for n ≥ VL), zeros in the other lanes.
SIMD_INLINE vi vi_load_first(const int *p, long n) { return _mm512_maskz_loadu_epi32(tail_mask(n), p); }

// vi_hmin_first and vi_hmax_first return the least and greatest of the first n (≥ 1) lanes.
SIMD_INLINE int vi_hmin_first(vi v, long n) { return _mm512_mask_reduce_min_epi32(tail_mask(n), v); }
SIMD_INLINE int vi_hmax_first(vi v, long n) { return _mm512_mask_reduce_max_epi32(tail_mask(n), v); }

// vf_gather_vi_first returns src[idx[l]] in the first n lanes l (all VL for n ≥ VL), zeros in the
// others.
SIMD_INLINE vf vf_gather_vi_first(const float *src, vi idx, long n) {
	return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), tail_mask(n), idx, src, 4);
}

// vf_window returns lanes w[d] of the 2·VL floats w = w0‖w1, for offsets d in [0, 2·VL).
SIMD_INLINE vf vf_window(vf w0, vf w1, vi d) { return _mm512_permutex2var_ps(w0, d, w1); }

// vf_select_lt returns a in the lanes where t < c, b elsewhere.
SIMD_INLINE vf vf_select_lt(vf t, vf c, vf a, vf b) {
	return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(t, c, _CMP_LT_OQ), b, a);
}

// vi_select_eq returns x in the lanes where a == b, y elsewhere.
SIMD_INLINE vi vi_select_eq(vf a, vf b, vi x, vi y) {
	return _mm512_mask_mov_epi32(y, _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ), x);
}

// vi_store_bytes_first stores the first n lanes of k (all VL for n ≥ VL) as bytes at p.
SIMD_INLINE void vi_store_bytes_first(unsigned char *p, long n, vi k) {
	_mm512_mask_cvtepi32_storeu_epi8(p, tail_mask(n), k);
}

#define vf_round_nearest(v) _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define vf_ldexp _mm512_scalef_ps // p·2^n

// vm is a set of lanes.
typedef __mmask16 vm;

// vm_first selects the first n lanes (all for n ≥ VL).
#define vm_first tail_mask

static inline vm vm_and(vm a, vm b) { return a & b; }

// vm_eq and vm_ne select the lanes where a == b, a != b.
#define vm_eq _mm512_cmpeq_epi32_mask
#define vm_ne _mm512_cmpneq_epi32_mask

// vm_bits returns m as bits, lane l in bit l.
static inline int vm_bits(vm m) { return m; }

// vf_blend returns b in the lanes of m, a elsewhere; vf_maskz v in the lanes of m, zero elsewhere;
// vf_sub_in a − b in the lanes of m, a elsewhere.
#define vf_blend _mm512_mask_mov_ps
#define vf_maskz _mm512_maskz_mov_ps
SIMD_INLINE vf vf_sub_in(vf a, vm m, vf b) { return _mm512_mask_sub_ps(a, m, a, b); }

// vf_keep_positive returns d in the lanes where y > 0, zero elsewhere.
SIMD_INLINE vf vf_keep_positive(vf y, vf d) {
	return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(y, _mm512_setzero_ps(), _CMP_GT_OQ), d);
}

// vf_sub_first returns a − b in the first n lanes, zero in the others.
SIMD_INLINE vf vf_sub_first(vf a, vf b, long n) { return _mm512_maskz_sub_ps(tail_mask(n), a, b); }

// vf_hsum returns the sum of v's lanes, in double, lane order.
SIMD_INLINE double vf_hsum(__m512 v) {
	float t[16];
	_mm512_storeu_ps(t, v);
	double s = 0;
	for (int i = 0; i < 16; i++) s += t[i];
	return s;
}

// vf_transpose sets o[c][r] = r[r][c] for a VL×VL block.
SIMD_INLINE void vf_transpose(const __m512 *r, __m512 *o) {
	__m512 t[16], u[16];
	for (int i = 0; i < 8; i++) { // lane L of t[2i]: r2i[4L], r2i+1[4L], r2i[4L+1], r2i+1[4L+1]
		t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
		t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
	}
	for (int i = 0; i < 4; i++) { // lane L of u[4i+c]: column 4L+c of rows 4i..4i+3
		__m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 2]);
		__m512d c = _mm512_castps_pd(t[4 * i + 1]), d = _mm512_castps_pd(t[4 * i + 3]);
		u[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
		u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
		u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
		u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
	}
	for (int c = 0; c < 4; c++) { // 128-bit lanes: rows 0-3, 4-7 (t[c], t[c+4]) and 8-11, 12-15
		t[c] = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);      // columns c, 8+c
		t[c + 4] = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);  // columns 4+c, 12+c
		t[c + 8] = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
		t[c + 12] = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
	}
	for (int c = 0; c < 4; c++) {
		o[c] = _mm512_shuffle_f32x4(t[c], t[c + 8], 0x88);
		o[c + 8] = _mm512_shuffle_f32x4(t[c], t[c + 8], 0xDD);
		o[c + 4] = _mm512_shuffle_f32x4(t[c + 4], t[c + 12], 0x88);
		o[c + 12] = _mm512_shuffle_f32x4(t[c + 4], t[c + 12], 0xDD);
	}
}

#endif
