// Shared by the AVX-512 GEMM (sgemm_avx512.c) and its users (conv_avx512.c, winograd_avx512.c):
// the register tile and cache block sizes, the microkernels and small helpers.

#ifndef SEGKIT_GEMM_AVX512_H
#define SEGKIT_GEMM_AVX512_H

#include "simd_avx512.h"

// The register tile is MR×NR (24 zmm accumulators); B is packed KC rows by up to NC columns at a
// time, in panels of NR columns.
#define MR 6
#define NR 64
#define KC 256
#define NC 960

// transpose16 sets o[c][r] = r[r][c] for a 16×16 block.
__attribute__((target("avx512f"), always_inline)) static inline void transpose16(const __m512 *r, __m512 *o) {
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

// epilogue is applied to finished rows of C: row i becomes scale[i]·row + shift[i] (scale or shift
// NULL: 1 or 0), plus the matching elements of add (laid out as C; NULL: none), then max(·, 0) when
// relu; a NULL epilogue means none.
typedef struct {
	const float *scale, *shift, *add;
	int relu;
} epilogue;

// segkit_avx512_gemm_block computes C[0:m, 0:nc] = alpha·A·B + beta·C for one packed B block (kc×nc,
// panels of NR columns), then the epilogue ep (NULL: none; C's columns are col0.. of the whole
// C that ep's add mirrors). A's element (i, k) is a[i*ai + k*ak].
void segkit_avx512_gemm_block(long m, long nc, long kc, const float *a, long ai, long ak, const float *bp, float *c,
                       long ldc, long col0, float alpha, float beta, const epilogue *ep);

// segkit_avx512_pack_buffer returns this thread's buffer for KC×(NC+NR) packed floats.
float *segkit_avx512_pack_buffer(void);

#endif
