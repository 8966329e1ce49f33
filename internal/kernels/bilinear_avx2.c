//go:build amd64

// AVX2 bilinear resizing (bilinear.go has the definition and the Go version; bilinear_avx512.c
// the same in 16-wide vectors). The forward matches Go bit for bit (same operations, no FMA
// contraction); the backward sums down the columns in vectors, then along the rows in scalars.

#pragma GCC optimize("fp-contract=off")

#include <string.h>

#include "simd_avx2.h"
#include "kernels.h"

// hrow interpolates source row src along the width: out[ox] = w0·src[i0] + w1·src[i1].
AVX2 static void hrow(const float *src, long OW, const int *i0, const int *i1, const float *w0, const float *w1,
                      float *out) {
	long ox = 0;
	for (; ox + 8 <= OW; ox += 8) {
		__m256 a = _mm256_i32gather_ps(src, _mm256_loadu_si256((const __m256i *)(i0 + ox)), 4);
		__m256 b = _mm256_i32gather_ps(src, _mm256_loadu_si256((const __m256i *)(i1 + ox)), 4);
		_mm256_storeu_ps(out + ox, _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(w0 + ox), a),
		                                         _mm256_mul_ps(_mm256_loadu_ps(w1 + ox), b)));
	}
	for (; ox < OW; ox++) out[ox] = w0[ox] * src[i0[ox]] + w1[ox] * src[i1[ox]];
}

// segkit_avx2_bilinear_forward is segkit_avx512_bilinear_forward (bilinear_avx512.c).
AVX2 void segkit_avx2_bilinear_forward(long H, long W, long OH, long OW, const float *x, float *y, const int *yi0,
                                       const int *yi1, const float *ya0, const float *ya1, const int *xi0,
                                       const int *xi1, const float *xw0, const float *xw1, long p0, long p1,
                                       float *scratch) {
	float *buf[2] = {scratch, scratch + OW};
	for (long p = p0; p < p1; p++) {
		const float *src = x + p * H * W;
		long have[2] = {-1, -1}; // the source rows interpolated in buf
		for (long oy = 0; oy < OH; oy++) {
			long want[2] = {yi0[oy], yi1[oy]};
			const float *h[2];
			for (int k = 0; k < 2; k++) {
				int b = have[0] == want[k] ? 0 : have[1] == want[k] ? 1 : -1;
				if (b < 0) { // interpolate it, into the buffer the other wanted row is not in
					b = have[0] == want[1 - k] ? 1 : 0;
					hrow(src + want[k] * W, OW, xi0, xi1, xw0, xw1, buf[b]);
					have[b] = want[k];
				}
				h[k] = buf[b];
			}
			float a0 = ya0[oy], a1 = ya1[oy];
			__m256 va0 = _mm256_set1_ps(a0), va1 = _mm256_set1_ps(a1);
			float *out = y + (p * OH + oy) * OW;
			long ox = 0;
			for (; ox + 8 <= OW; ox += 8)
				_mm256_storeu_ps(out + ox, _mm256_add_ps(_mm256_mul_ps(va0, _mm256_loadu_ps(h[0] + ox)),
				                                         _mm256_mul_ps(va1, _mm256_loadu_ps(h[1] + ox))));
			for (; ox < OW; ox++) out[ox] = a0 * h[0][ox] + a1 * h[1][ox];
		}
	}
}

// segkit_avx2_bilinear_backward is segkit_avx512_bilinear_backward (bilinear_avx512.c); scratch holds
// H·OW floats.
AVX2 void segkit_avx2_bilinear_backward(long H, long W, long OH, long OW, const float *dy, float *dx, const int *yi0,
                                        const int *yi1, const float *ya0, const float *ya1, const int *xi0,
                                        const int *xi1, const float *xw0, const float *xw1, long p0, long p1,
                                        float *scratch) {
	for (long p = p0; p < p1; p++) {
		memset(scratch, 0, sizeof(float) * H * OW);
		for (long oy = 0; oy < OH; oy++) {
			const float *g = dy + (p * OH + oy) * OW;
			float *r0 = scratch + yi0[oy] * OW, *r1 = scratch + yi1[oy] * OW;
			float a0 = ya0[oy], a1 = ya1[oy];
			__m256 va0 = _mm256_set1_ps(a0), va1 = _mm256_set1_ps(a1);
			long ox = 0;
			for (; ox + 8 <= OW; ox += 8) {
				__m256 v = _mm256_loadu_ps(g + ox);
				_mm256_storeu_ps(r0 + ox, _mm256_add_ps(_mm256_loadu_ps(r0 + ox), _mm256_mul_ps(va0, v)));
				_mm256_storeu_ps(r1 + ox, _mm256_add_ps(_mm256_loadu_ps(r1 + ox), _mm256_mul_ps(va1, v)));
			}
			for (; ox < OW; ox++) r0[ox] += a0 * g[ox], r1[ox] += a1 * g[ox];
		}
		float *dst = dx + p * H * W;
		memset(dst, 0, sizeof(float) * H * W);
		for (long r = 0; r < H; r++) {
			const float *hg = scratch + r * OW;
			float *row = dst + r * W;
			for (long ox = 0; ox < OW; ox++) {
				row[xi0[ox]] += xw0[ox] * hg[ox];
				row[xi1[ox]] += xw1[ox] * hg[ox];
			}
		}
	}
}
