//go:build amd64

// AVX2 forward of DynOPool's sampling op: resample_avx512.c in 8-wide vectors, the cells past the
// last whole vector in scalars; bit for bit resample.go's (the same float32 operations, no FMA).

#pragma GCC optimize("fp-contract=off") // round as Go does: a multiply and an add stay two operations

#include "simd_avx2.h"
#include "kernels.h"

// lerp8 is torch.lerp per lane, as resample.go's lerp.
AVX2_INLINE __m256 lerp8(__m256 a, __m256 b, __m256 t) {
	__m256 d = _mm256_sub_ps(b, a);
	__m256 lo = _mm256_add_ps(a, _mm256_mul_ps(t, d));
	__m256 hi = _mm256_sub_ps(b, _mm256_mul_ps(d, _mm256_sub_ps(_mm256_set1_ps(1), t)));
	return _mm256_blendv_ps(hi, lo, _mm256_cmp_ps(t, _mm256_set1_ps(0.5f), _CMP_LT_OQ));
}

// The cells' queries read the two query rows through gathers, which are slow (about one lane per
// cycle on AMD's cores); where 8 cells' taps lie within 16 columns (upsampling, and downsampling
// by up to about 2), the rows' 16 floats from the leftmost tap are permuted into place instead:
// window16 returns lanes w[d] of the 16 floats w0, w1 for offsets d in [0, 16). The rows in
// scratch are SCRATCH_GAP floats apart and scratch has that many to spare at the end, so the
// 16 floats read past a row's last tap are memory (never selected).
#define SCRATCH_GAP 32
AVX2_INLINE __m256 window16(__m256 w0, __m256 w1, __m256i d) {
	return _mm256_blendv_ps(_mm256_permutevar8x32_ps(w0, d), _mm256_permutevar8x32_ps(w1, d),
	                        _mm256_castsi256_ps(_mm256_cmpgt_epi32(d, _mm256_set1_epi32(7))));
}

// hmin8 and hmax8 return the least and greatest lane.
AVX2_INLINE int hmin8(__m256i v) {
	__m128i m = _mm_min_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
	m = _mm_min_epi32(m, _mm_shuffle_epi32(m, 0x4E));
	return _mm_cvtsi128_si32(_mm_min_epi32(m, _mm_shuffle_epi32(m, 0xB1)));
}
AVX2_INLINE int hmax8(__m256i v) {
	__m128i m = _mm_max_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
	m = _mm_max_epi32(m, _mm_shuffle_epi32(m, 0x4E));
	return _mm_cvtsi128_si32(_mm_max_epi32(m, _mm_shuffle_epi32(m, 0xB1)));
}

static inline float lerp1(float a, float b, float t) { return t < 0.5f ? a + t * (b - a) : b - (b - a) * (1 - t); }

// max1 is maxps on one lane: b unless a > b.
static inline float max1(float a, float b) { return a > b ? a : b; }

// segkit_avx2_resample is segkit_avx512_resample (resample_avx512.c).
AVX2 void segkit_avx2_resample(long H, long W, long OH, long OW, const float *x, float *y, unsigned char *argmax,
                               int mean, const int *ri0, const int *ri1, const float *rt, const int *cl0,
                               const int *cl1, const float *clt, const int *cr0, const int *cr1, const float *crt,
                               long p0, long p1, float *scratch) {
	for (long p = p0; p < p1; p++) {
		const float *src = x + p * H * W;
		for (long i = 0; i < OH; i++) {
			// The cell row's two query rows, interpolated between input rows.
			for (int h = 0; h < 2; h++) {
				long a = 2 * i + h;
				const float *s0 = src + ri0[a] * W, *s1 = src + ri1[a] * W;
				float *dst = scratch + h * (W + SCRATCH_GAP), t = rt[a];
				__m256 vt = _mm256_set1_ps(t);
				long c = 0;
				for (; c + 8 <= W; c += 8) {
					__m256 v = _mm256_loadu_ps(s0 + c);
					if (t != 0) v = lerp8(v, _mm256_loadu_ps(s1 + c), vt);
					_mm256_storeu_ps(dst + c, v);
				}
				for (; c < W; c++) dst[c] = t != 0 ? lerp1(s0[c], s1[c], t) : s0[c];
			}
			const float *top = scratch, *bottom = scratch + W + SCRATCH_GAP;
			float *out = y + (p * OH + i) * OW;
			unsigned char *won = argmax ? argmax + (p * OH + i) * OW : 0;
			long j = 0;
			for (; j + 8 <= OW; j += 8) {
				__m256i l0 = _mm256_loadu_si256((const __m256i *)(cl0 + j)), l1 = _mm256_loadu_si256((const __m256i *)(cl1 + j));
				__m256i r0 = _mm256_loadu_si256((const __m256i *)(cr0 + j)), r1 = _mm256_loadu_si256((const __m256i *)(cr1 + j));
				__m256 lt = _mm256_loadu_ps(clt + j), rtv = _mm256_loadu_ps(crt + j);
				__m256 tl0, tl1, tr0, tr1, bl0, bl1, br0, br1;
				long base = hmin8(_mm256_min_epi32(l0, r0));
				if (hmax8(_mm256_max_epi32(l1, r1)) - base < 16) { // the usual case: see window16
					__m256i vb = _mm256_set1_epi32((int)base);
					l0 = _mm256_sub_epi32(l0, vb), l1 = _mm256_sub_epi32(l1, vb);
					r0 = _mm256_sub_epi32(r0, vb), r1 = _mm256_sub_epi32(r1, vb);
					__m256 t0 = _mm256_loadu_ps(top + base), t1 = _mm256_loadu_ps(top + base + 8);
					__m256 b0 = _mm256_loadu_ps(bottom + base), b1 = _mm256_loadu_ps(bottom + base + 8);
					tl0 = window16(t0, t1, l0), tl1 = window16(t0, t1, l1), tr0 = window16(t0, t1, r0), tr1 = window16(t0, t1, r1);
					bl0 = window16(b0, b1, l0), bl1 = window16(b0, b1, l1), br0 = window16(b0, b1, r0), br1 = window16(b0, b1, r1);
				} else {
					tl0 = _mm256_i32gather_ps(top, l0, 4), tl1 = _mm256_i32gather_ps(top, l1, 4);
					tr0 = _mm256_i32gather_ps(top, r0, 4), tr1 = _mm256_i32gather_ps(top, r1, 4);
					bl0 = _mm256_i32gather_ps(bottom, l0, 4), bl1 = _mm256_i32gather_ps(bottom, l1, 4);
					br0 = _mm256_i32gather_ps(bottom, r0, 4), br1 = _mm256_i32gather_ps(bottom, r1, 4);
				}
				__m256 v[4] = {lerp8(tl0, tl1, lt), lerp8(tr0, tr1, rtv), lerp8(bl0, bl1, lt), lerp8(br0, br1, rtv)};
				__m256 r;
				if (mean) {
					r = _mm256_mul_ps(_mm256_add_ps(_mm256_add_ps(_mm256_add_ps(v[0], v[1]), v[2]), v[3]),
					                  _mm256_set1_ps(0.25f));
				} else {
					r = _mm256_max_ps(_mm256_max_ps(v[0], v[1]), _mm256_max_ps(v[2], v[3]));
					if (won) { // the first query equal to the max
						__m256i k = _mm256_set1_epi32(3);
						for (int q = 2; q >= 0; q--)
							k = _mm256_blendv_epi8(k, _mm256_set1_epi32(q),
							                       _mm256_castps_si256(_mm256_cmp_ps(v[q], r, _CMP_EQ_OQ)));
						int ks[8];
						_mm256_storeu_si256((__m256i *)ks, k);
						for (int l = 0; l < 8; l++) won[j + l] = (unsigned char)ks[l];
					}
				}
				_mm256_storeu_ps(out + j, r);
			}
			for (; j < OW; j++) {
				float v[4] = {lerp1(top[cl0[j]], top[cl1[j]], clt[j]), lerp1(top[cr0[j]], top[cr1[j]], crt[j]),
				              lerp1(bottom[cl0[j]], bottom[cl1[j]], clt[j]), lerp1(bottom[cr0[j]], bottom[cr1[j]], crt[j])};
				if (mean) {
					out[j] = (v[0] + v[1] + v[2] + v[3]) * 0.25f;
					continue;
				}
				float r = max1(max1(v[0], v[1]), max1(v[2], v[3]));
				if (won) {
					int k = 3;
					for (int q = 2; q >= 0; q--)
						if (v[q] == r) k = q;
					won[j] = (unsigned char)k;
				}
				out[j] = r;
			}
		}
	}
}
