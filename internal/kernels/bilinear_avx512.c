//go:build amd64

// AVX-512 bilinear resizing (bilinear.go has the definition and the Go version). The forward
// matches Go bit for bit (same operations, no FMA contraction); the backward is separable: the
// output gradient is first summed down the columns into the source rows' interpolated gradient
// (vectors), which then goes back along the rows (scalar: neighbouring outputs share pixels).

#pragma GCC optimize("fp-contract=off")

#include "simd_avx512.h"
#include <string.h>
#include "kernels.h"

// hrow interpolates source row src along the width: out[ox] = w0·src[i0] + w1·src[i1].
__attribute__((target("avx512f"))) static void hrow(const float *src, long OW, const int *i0, const int *i1,
                                                   const float *w0, const float *w1, float *out) {
	for (long ox = 0; ox < OW; ox += 16) {
		__mmask16 m = tail_mask(OW - ox);
		__m512 z = _mm512_setzero_ps();
		__m512 a = _mm512_mask_i32gather_ps(z, m, _mm512_maskz_loadu_epi32(m, i0 + ox), src, 4);
		__m512 b = _mm512_mask_i32gather_ps(z, m, _mm512_maskz_loadu_epi32(m, i1 + ox), src, 4);
		__m512 v = _mm512_add_ps(_mm512_mul_ps(load16(m, w0 + ox), a),
		                         _mm512_mul_ps(load16(m, w1 + ox), b));
		store16(out + ox, m, v);
	}
}

// segkit_avx512_bilinear_forward resizes planes [p0, p1); taps as bilinear.go's (row: yi0, yi1, ya0,
// ya1; column: xi0, xi1, xw0, xw1); scratch holds 2·OW floats.
__attribute__((target("avx512f"))) void segkit_avx512_bilinear_forward(long H, long W, long OH, long OW, const float *x,
                                                                float *y, const int *yi0, const int *yi1,
                                                                const float *ya0, const float *ya1, const int *xi0,
                                                                const int *xi1, const float *xw0, const float *xw1,
                                                                long p0, long p1, float *scratch) {
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
			__m512 a0 = _mm512_set1_ps(ya0[oy]), a1 = _mm512_set1_ps(ya1[oy]);
			float *out = y + (p * OH + oy) * OW;
			for (long ox = 0; ox < OW; ox += 16) {
				__mmask16 m = tail_mask(OW - ox);
				__m512 v = _mm512_add_ps(_mm512_mul_ps(a0, load16(m, h[0] + ox)),
				                         _mm512_mul_ps(a1, load16(m, h[1] + ox)));
				store16(out + ox, m, v);
			}
		}
	}
}

// segkit_avx512_bilinear_backward writes dx for planes [p0, p1) from dy; scratch holds H·OW floats.
__attribute__((target("avx512f"))) void segkit_avx512_bilinear_backward(long H, long W, long OH, long OW, const float *dy,
                                                                 float *dx, const int *yi0, const int *yi1,
                                                                 const float *ya0, const float *ya1, const int *xi0,
                                                                 const int *xi1, const float *xw0, const float *xw1,
                                                                 long p0, long p1, float *scratch) {
	for (long p = p0; p < p1; p++) {
		memset(scratch, 0, sizeof(float) * H * OW);
		for (long oy = 0; oy < OH; oy++) {
			const float *g = dy + (p * OH + oy) * OW;
			float *r0 = scratch + yi0[oy] * OW, *r1 = scratch + yi1[oy] * OW;
			__m512 a0 = _mm512_set1_ps(ya0[oy]), a1 = _mm512_set1_ps(ya1[oy]);
			for (long ox = 0; ox < OW; ox += 16) {
				__mmask16 m = tail_mask(OW - ox);
				__m512 v = load16(m, g + ox);
				store16(r0 + ox, m, _mm512_add_ps(load16(m, r0 + ox), _mm512_mul_ps(a0, v)));
				store16(r1 + ox, m, _mm512_add_ps(load16(m, r1 + ox), _mm512_mul_ps(a1, v)));
			}
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
