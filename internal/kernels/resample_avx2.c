// AVX2 forward of DynOPool's sampling op: resample_avx512.c in 8-wide vectors, the cells past the
// last whole vector in scalars; bit for bit resample.go's (the same float32 operations, no FMA).

#if defined(__x86_64__)

#pragma GCC optimize("fp-contract=off") // round as Go does: a multiply and an add stay two operations

#include "avx2.h"

// lerp8 is torch.lerp per lane, as resample.go's lerp.
AVX2_INLINE __m256 lerp8(__m256 a, __m256 b, __m256 t) {
	__m256 d = _mm256_sub_ps(b, a);
	__m256 lo = _mm256_add_ps(a, _mm256_mul_ps(t, d));
	__m256 hi = _mm256_sub_ps(b, _mm256_mul_ps(d, _mm256_sub_ps(_mm256_set1_ps(1), t)));
	return _mm256_blendv_ps(hi, lo, _mm256_cmp_ps(t, _mm256_set1_ps(0.5f), _CMP_LT_OQ));
}

static inline float lerp1(float a, float b, float t) { return t < 0.5f ? a + t * (b - a) : b - (b - a) * (1 - t); }

// max1 is maxps on one lane: b unless a > b.
static inline float max1(float a, float b) { return a > b ? a : b; }

// segkit_avx2_resample is segkit_resample (resample_avx512.c).
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
				float *dst = scratch + h * W, t = rt[a];
				__m256 vt = _mm256_set1_ps(t);
				long c = 0;
				for (; c + 8 <= W; c += 8) {
					__m256 v = _mm256_loadu_ps(s0 + c);
					if (t != 0) v = lerp8(v, _mm256_loadu_ps(s1 + c), vt);
					_mm256_storeu_ps(dst + c, v);
				}
				for (; c < W; c++) dst[c] = t != 0 ? lerp1(s0[c], s1[c], t) : s0[c];
			}
			const float *top = scratch, *bottom = scratch + W;
			float *out = y + (p * OH + i) * OW;
			unsigned char *won = argmax ? argmax + (p * OH + i) * OW : 0;
			long j = 0;
			for (; j + 8 <= OW; j += 8) {
				__m256i l0 = _mm256_loadu_si256((const __m256i *)(cl0 + j)), l1 = _mm256_loadu_si256((const __m256i *)(cl1 + j));
				__m256i r0 = _mm256_loadu_si256((const __m256i *)(cr0 + j)), r1 = _mm256_loadu_si256((const __m256i *)(cr1 + j));
				__m256 lt = _mm256_loadu_ps(clt + j), rtv = _mm256_loadu_ps(crt + j);
				__m256 v[4] = {
				    lerp8(_mm256_i32gather_ps(top, l0, 4), _mm256_i32gather_ps(top, l1, 4), lt),
				    lerp8(_mm256_i32gather_ps(top, r0, 4), _mm256_i32gather_ps(top, r1, 4), rtv),
				    lerp8(_mm256_i32gather_ps(bottom, l0, 4), _mm256_i32gather_ps(bottom, l1, 4), lt),
				    lerp8(_mm256_i32gather_ps(bottom, r0, 4), _mm256_i32gather_ps(bottom, r1, 4), rtv),
				};
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

#else

void segkit_avx2_resample(long H, long W, long OH, long OW, const float *x, float *y, unsigned char *argmax,
                          int mean, const int *ri0, const int *ri1, const float *rt, const int *cl0,
                          const int *cl1, const float *clt, const int *cr0, const int *cr1, const float *crt,
                          long p0, long p1, float *scratch) {}

#endif
