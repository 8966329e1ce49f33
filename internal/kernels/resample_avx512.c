//go:build amd64

// AVX-512 forward of DynOPool's sampling op (resample.go has the definition and the Go version,
// which this matches bit for bit: the same float32 operations in the same order, no FMA).

#pragma GCC optimize("fp-contract=off") // round as Go does: a multiply and an add stay two operations

#include "simd_avx512.h"
#include "kernels.h"

// lerp16 is torch.lerp per lane, as resample.go's lerp.
__attribute__((target("avx512f"), always_inline)) static inline __m512 lerp16(__m512 a, __m512 b, __m512 t) {
	__m512 d = _mm512_sub_ps(b, a);
	__m512 lo = _mm512_add_ps(a, _mm512_mul_ps(t, d));
	__m512 hi = _mm512_sub_ps(b, _mm512_mul_ps(d, _mm512_sub_ps(_mm512_set1_ps(1), t)));
	return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(t, _mm512_set1_ps(0.5f), _CMP_LT_OQ), hi, lo);
}

// The cells' queries read the two query rows through gathers, which are slow (about one lane per
// cycle on AMD's cores); where 16 cells' taps lie within 32 columns (upsampling, and downsampling
// by up to about 2), the rows' 32 floats from the leftmost tap are permuted into place instead.
// The rows in scratch are SCRATCH_GAP floats apart and scratch has that many to spare at the end,
// so the floats read past a row's last tap are memory (never selected).
#define SCRATCH_GAP 32

// segkit_avx512_resample planes [p0, p1) of x (H×W each) into y (OH×OW each). Row taps (2·OH: input rows
// r0, r1 and weight rt of every query row) and column taps split by side (OW each: left queries
// l0, l1, lt; right r0, r1, rt) come from resample.go; when argmax is not NULL the winning query
// (0–3) of every cell is stored there; scratch holds 2·(W + SCRATCH_GAP) floats.
__attribute__((target("avx512f"))) void segkit_avx512_resample(long H, long W, long OH, long OW, const float *x, float *y,
                                                        unsigned char *argmax, int mean, const int *ri0,
                                                        const int *ri1, const float *rt, const int *cl0,
                                                        const int *cl1, const float *clt, const int *cr0,
                                                        const int *cr1, const float *crt, long p0, long p1,
                                                        float *scratch) {
	for (long p = p0; p < p1; p++) {
		const float *src = x + p * H * W;
		for (long i = 0; i < OH; i++) {
			// The cell row's two query rows, interpolated between input rows.
			for (int h = 0; h < 2; h++) {
				long a = 2 * i + h;
				const float *s0 = src + ri0[a] * W, *s1 = src + ri1[a] * W;
				float *dst = scratch + h * (W + SCRATCH_GAP);
				__m512 t = _mm512_set1_ps(rt[a]);
				for (long c = 0; c < W; c += 16) {
					__mmask16 m = W - c >= 16 ? 0xFFFF : (__mmask16)((1u << (W - c)) - 1);
					__m512 v = load16(m, s0 + c);
					if (rt[a] != 0) v = lerp16(v, load16(m, s1 + c), t);
					store16(dst + c, m, v);
				}
			}
			const float *top = scratch, *bottom = scratch + W + SCRATCH_GAP;
			float *out = y + (p * OH + i) * OW;
			for (long j = 0; j < OW; j += 16) {
				__mmask16 m = OW - j >= 16 ? 0xFFFF : (__mmask16)((1u << (OW - j)) - 1);
				__m512i l0 = _mm512_maskz_loadu_epi32(m, cl0 + j), l1 = _mm512_maskz_loadu_epi32(m, cl1 + j);
				__m512i r0 = _mm512_maskz_loadu_epi32(m, cr0 + j), r1 = _mm512_maskz_loadu_epi32(m, cr1 + j);
				__m512 lt = load16(m, clt + j), rtv = load16(m, crt + j);
				__m512 z = _mm512_setzero_ps(), tl0, tl1, tr0, tr1, bl0, bl1, br0, br1;
				long base = _mm512_mask_reduce_min_epi32(m, _mm512_min_epi32(l0, r0));
				if (_mm512_mask_reduce_max_epi32(m, _mm512_max_epi32(l1, r1)) - base < 32) { // see SCRATCH_GAP
					__m512i vb = _mm512_set1_epi32((int)base);
					l0 = _mm512_sub_epi32(l0, vb), l1 = _mm512_sub_epi32(l1, vb);
					r0 = _mm512_sub_epi32(r0, vb), r1 = _mm512_sub_epi32(r1, vb);
					__m512 t0 = _mm512_loadu_ps(top + base), t1 = _mm512_loadu_ps(top + base + 16);
					__m512 b0 = _mm512_loadu_ps(bottom + base), b1 = _mm512_loadu_ps(bottom + base + 16);
					tl0 = _mm512_permutex2var_ps(t0, l0, t1), tl1 = _mm512_permutex2var_ps(t0, l1, t1);
					tr0 = _mm512_permutex2var_ps(t0, r0, t1), tr1 = _mm512_permutex2var_ps(t0, r1, t1);
					bl0 = _mm512_permutex2var_ps(b0, l0, b1), bl1 = _mm512_permutex2var_ps(b0, l1, b1);
					br0 = _mm512_permutex2var_ps(b0, r0, b1), br1 = _mm512_permutex2var_ps(b0, r1, b1);
				} else {
					tl0 = _mm512_mask_i32gather_ps(z, m, l0, top, 4), tl1 = _mm512_mask_i32gather_ps(z, m, l1, top, 4);
					tr0 = _mm512_mask_i32gather_ps(z, m, r0, top, 4), tr1 = _mm512_mask_i32gather_ps(z, m, r1, top, 4);
					bl0 = _mm512_mask_i32gather_ps(z, m, l0, bottom, 4), bl1 = _mm512_mask_i32gather_ps(z, m, l1, bottom, 4);
					br0 = _mm512_mask_i32gather_ps(z, m, r0, bottom, 4), br1 = _mm512_mask_i32gather_ps(z, m, r1, bottom, 4);
				}
				__m512 v[4] = {lerp16(tl0, tl1, lt), lerp16(tr0, tr1, rtv), lerp16(bl0, bl1, lt), lerp16(br0, br1, rtv)};
				__m512 r;
				if (mean) {
					r = _mm512_mul_ps(_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(v[0], v[1]), v[2]), v[3]),
					                  _mm512_set1_ps(0.25f));
				} else {
					r = _mm512_max_ps(_mm512_max_ps(v[0], v[1]), _mm512_max_ps(v[2], v[3]));
					if (argmax) { // the first query equal to the max
						__m512i k = _mm512_set1_epi32(3);
						for (int q = 2; q >= 0; q--)
							k = _mm512_mask_mov_epi32(k, _mm512_cmp_ps_mask(v[q], r, _CMP_EQ_OQ), _mm512_set1_epi32(q));
						_mm512_mask_cvtepi32_storeu_epi8(argmax + (p * OH + i) * OW + j, m, k);
					}
				}
				store16(out + j, m, r);
			}
		}
	}
}
