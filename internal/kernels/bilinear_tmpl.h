// Bilinear resizing, written once for both instruction sets (bilinear_avx2.c and
// bilinear_avx512.c define SIMD_H and include this); bilinear.go has the definition and the Go
// version. The forward matches Go bit for bit (same operations, no FMA contraction); the backward
// sums down the columns in vectors, then along the rows in scalars. Rows run whole vectors, then
// the rest once (vf_load_first, vf_store_first), lane for lane the same operations.

#pragma GCC optimize("fp-contract=off")

#include <string.h>

#include SIMD_H

// hrow_at writes out = w0·src[i0] + w1·src[i1] at the r columns from ox.
SIMD_INLINE void hrow_at(const float *src, long ox, long r, const int *i0, const int *i1, const float *w0,
                         const float *w1, float *out) {
	vf a = vf_gather_first(src, i0 + ox, r), b = vf_gather_first(src, i1 + ox, r);
	vf_store_first(out + ox, r, vf_add(vf_mul(vf_load_first(w0 + ox, r), a), vf_mul(vf_load_first(w1 + ox, r), b)));
}

// hrow interpolates source row src along the width: out[ox] = w0·src[i0] + w1·src[i1].
SIMD static void hrow(const float *src, long OW, const int *i0, const int *i1, const float *w0, const float *w1,
                      float *out) {
	long ox = 0;
	for (; ox + VL <= OW; ox += VL) hrow_at(src, ox, VL, i0, i1, w0, w1, out);
	if (ox < OW) hrow_at(src, ox, OW - ox, i0, i1, w0, w1, out);
}

// vrow_at writes out = a0·h0 + a1·h1 at the r columns from ox.
SIMD_INLINE void vrow_at(float *out, const float *h0, const float *h1, long ox, long r, vf a0, vf a1) {
	vf_store_first(out + ox, r, vf_add(vf_mul(a0, vf_load_first(h0 + ox, r)), vf_mul(a1, vf_load_first(h1 + ox, r))));
}

// bilinear_forward resizes planes [p0, p1); taps as bilinear.go's (row: yi0, yi1, ya0, ya1;
// column: xi0, xi1, xw0, xw1); scratch holds 2·OW floats.
SIMD void ISA_NAME(bilinear_forward)(long H, long W, long OH, long OW, const float *x, float *y, const int *yi0,
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
			vf a0 = vf_set1(ya0[oy]), a1 = vf_set1(ya1[oy]);
			float *out = y + (p * OH + oy) * OW;
			long ox = 0;
			for (; ox + VL <= OW; ox += VL) vrow_at(out, h[0], h[1], ox, VL, a0, a1);
			if (ox < OW) vrow_at(out, h[0], h[1], ox, OW - ox, a0, a1);
		}
	}
}

// spread_at adds a0·g to r0 and a1·g to r1 at the r columns from ox.
SIMD_INLINE void spread_at(const float *g, float *r0, float *r1, long ox, long r, vf a0, vf a1) {
	vf v = vf_load_first(g + ox, r);
	vf_store_first(r0 + ox, r, vf_add(vf_load_first(r0 + ox, r), vf_mul(a0, v)));
	vf_store_first(r1 + ox, r, vf_add(vf_load_first(r1 + ox, r), vf_mul(a1, v)));
}

// bilinear_backward writes dx for planes [p0, p1) from dy; scratch holds H·OW floats.
SIMD void ISA_NAME(bilinear_backward)(long H, long W, long OH, long OW, const float *dy, float *dx, const int *yi0,
                                      const int *yi1, const float *ya0, const float *ya1, const int *xi0,
                                      const int *xi1, const float *xw0, const float *xw1, long p0, long p1,
                                      float *scratch) {
	for (long p = p0; p < p1; p++) {
		memset(scratch, 0, sizeof(float) * H * OW);
		for (long oy = 0; oy < OH; oy++) {
			const float *g = dy + (p * OH + oy) * OW;
			float *r0 = scratch + yi0[oy] * OW, *r1 = scratch + yi1[oy] * OW;
			vf a0 = vf_set1(ya0[oy]), a1 = vf_set1(ya1[oy]);
			long ox = 0;
			for (; ox + VL <= OW; ox += VL) spread_at(g, r0, r1, ox, VL, a0, a1);
			if (ox < OW) spread_at(g, r0, r1, ox, OW - ox, a0, a1);
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
