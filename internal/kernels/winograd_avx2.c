//go:build amd64

// Winograd F(4×4, 3×3) on the AVX2 GEMM (sgemm_avx2.c): winograd_avx512.c's algorithm with 8
// tiles per vector. Per block of up to WN tiles the input transform writes V[ξ][c][tile] in the
// GEMM's packed-panel layout (panels of NR tiles), 36 GEMMs M[ξ] = U[ξ]·V[ξ] run on the
// microkernel, and the output transform writes the tiles.

#include "simd_avx2.h"
#include "gemm.h"
#include "kernels.h"

#define WN 64 // tiles per block: the AVX-512 block's, so U is read once per 64 tiles here too

// Per-thread V and M blocks.
static _Thread_local float *wino_v, *wino_m;
static _Thread_local long wino_vcap, wino_mcap;

// segkit_avx2_wino_filter writes U[ξ][k][c] = (G g_kc G^T)[ξ] for filters k in [k0, k1).
AVX2 void segkit_avx2_wino_filter(long K, long C, const float *w, float *u, long k0, long k1) {
	const __m256 q = _mm256_set1_ps(0.25f), neg6 = _mm256_set1_ps(-1.0f / 6), s6 = _mm256_set1_ps(1.0f / 6),
	             s12 = _mm256_set1_ps(1.0f / 12), s24 = _mm256_set1_ps(1.0f / 24);
	for (long k = k0; k < k1; k++) {
		for (long c = 0; c < C; c += 8) {
			long lanes = C - c < 8 ? C - c : 8;
			const float *src = w + (k * C + c) * 9;
			__m256 g[3][3], t[6][3];
			for (int i = 0; i < 9; i++) {
				float v[8] = {0};
				for (long l = 0; l < lanes; l++) v[l] = src[l * 9 + i];
				g[i / 3][i % 3] = _mm256_loadu_ps(v);
			}
			// t = G g (rows), then U = t G^T (columns), same 1-D transform twice.
#define GT(o, a, b, cc)                                                                                       \
	do {                                                                                                      \
		__m256 sum02 = _mm256_add_ps(a, cc);                                                                  \
		o[0] = _mm256_mul_ps(q, a);                                                                           \
		o[1] = _mm256_mul_ps(neg6, _mm256_add_ps(sum02, b));                                                  \
		o[2] = _mm256_mul_ps(neg6, _mm256_sub_ps(sum02, b));                                                  \
		__m256 e = _mm256_fmadd_ps(s24, a, _mm256_mul_ps(s6, cc));                                            \
		o[3] = _mm256_fmadd_ps(s12, b, e);                                                                    \
		o[4] = _mm256_fnmadd_ps(s12, b, e);                                                                   \
		o[5] = cc;                                                                                            \
	} while (0)
			for (int j = 0; j < 3; j++) {
				__m256 o[6];
				GT(o, g[0][j], g[1][j], g[2][j]);
				for (int i = 0; i < 6; i++) t[i][j] = o[i];
			}
			for (int i = 0; i < 6; i++) {
				__m256 o[6];
				GT(o, t[i][0], t[i][1], t[i][2]);
				for (int j = 0; j < 6; j++) {
					float *dst = u + ((i * 6 + j) * K + k) * C + c;
					if (lanes == 8) {
						_mm256_storeu_ps(dst, o[j]);
						continue;
					}
					float v[8];
					_mm256_storeu_ps(v, o[j]);
					for (long l = 0; l < lanes; l++) dst[l] = v[l];
				}
			}
#undef GT
		}
	}
}

// bt applies B^T to six vectors.
AVX2_INLINE void bt(__m256 *o, const __m256 *d) {
	const __m256 four = _mm256_set1_ps(4), five = _mm256_set1_ps(5), two = _mm256_set1_ps(2);
	__m256 a = _mm256_fnmadd_ps(four, d[2], d[4]); // d4 - 4 d2
	__m256 b = _mm256_fnmadd_ps(four, d[1], d[3]); // d3 - 4 d1
	__m256 e = _mm256_sub_ps(d[4], d[2]);          // d4 - d2
	__m256 f = _mm256_mul_ps(two, _mm256_sub_ps(d[3], d[1]));
	o[0] = _mm256_fnmadd_ps(five, d[2], _mm256_fmadd_ps(four, d[0], d[4]));
	o[1] = _mm256_add_ps(a, b);
	o[2] = _mm256_sub_ps(a, b);
	o[3] = _mm256_add_ps(e, f);
	o[4] = _mm256_sub_ps(e, f);
	o[5] = _mm256_fnmadd_ps(five, d[3], _mm256_fmadd_ps(four, d[1], d[5]));
}

// at applies A^T to six vectors.
AVX2_INLINE void at(__m256 *o, const __m256 *m) {
	__m256 s12 = _mm256_add_ps(m[1], m[2]), d12 = _mm256_sub_ps(m[1], m[2]);
	__m256 s34 = _mm256_add_ps(m[3], m[4]), d34 = _mm256_sub_ps(m[3], m[4]);
	o[0] = _mm256_add_ps(_mm256_add_ps(m[0], s12), s34);
	o[1] = _mm256_fmadd_ps(_mm256_set1_ps(2), d34, d12);
	o[2] = _mm256_fmadd_ps(_mm256_set1_ps(4), s34, s12);
	o[3] = _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(8), d34, d12), m[5]);
}

// A run: the lanes of an 8-tile group whose tiles lie in one row of tiles of one image. Lane l of
// the run reads input columns col + 4l + [0, 6) and writes output columns col + 1 + 4l + [0, 4).
typedef struct {
	long n, oy, col;  // image; the tiles' top output row; input column of lane 0's window
	__m256i in[8];    // load masks (columns inside the image): window col + [0, 32), window col + 4 + [0, 32)
	__m256i out[4];   // store masks: output columns of the run's lanes inside the image
	__m256 lanes;     // the run's lanes
	int inside;       // every in mask full: plain loads
	int outbits[4];   // out as bits (0xFF: a plain store)
} run;

// group_runs splits tiles [t, t+n) (n ≤ 8; numbered over all images, th×tw per image) into runs;
// it returns their number.
AVX2 static int group_runs(long t, long n, long th, long tw, long W, run *runs) {
	const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), minus1 = _mm256_set1_epi32(-1),
	              w = _mm256_set1_epi32((int)W);
	int nr = 0;
	for (long l0 = 0, l1; l0 < n; l0 = l1) {
		long img = (t + l0) / (th * tw), ty = (t + l0) % (th * tw) / tw, tx = (t + l0) % tw;
		l1 = l0 + (tw - tx < n - l0 ? tw - tx : n - l0);
		run *r = &runs[nr++];
		r->n = img;
		r->oy = 4 * ty;
		r->col = 4 * tx - 1 - 4 * l0;
		__m256i lane = _mm256_and_si256(_mm256_cmpgt_epi32(iota, _mm256_set1_epi32((int)l0 - 1)),
		                                _mm256_cmpgt_epi32(_mm256_set1_epi32((int)l1), iota));
		r->lanes = _mm256_castsi256_ps(lane);
		r->inside = 1;
		for (int j = 0; j < 8; j++) {
			__m256i c = _mm256_add_epi32(iota, _mm256_set1_epi32((int)(r->col + 8 * (j % 4) + 4 * (j / 4))));
			r->in[j] = _mm256_and_si256(_mm256_cmpgt_epi32(c, minus1), _mm256_cmpgt_epi32(w, c));
			r->inside &= _mm256_movemask_ps(_mm256_castsi256_ps(r->in[j])) == 0xFF;
		}
		for (int j = 0; j < 4; j++) {
			__m256i e = _mm256_add_epi32(iota, _mm256_set1_epi32(8 * j));
			__m256i tile = _mm256_srli_epi32(e, 2);
			__m256i c = _mm256_add_epi32(e, _mm256_set1_epi32((int)(r->col + 1)));
			r->out[j] = _mm256_and_si256(
			    _mm256_and_si256(_mm256_cmpgt_epi32(tile, _mm256_set1_epi32((int)l0 - 1)),
			                     _mm256_cmpgt_epi32(_mm256_set1_epi32((int)l1), tile)),
			    _mm256_cmpgt_epi32(w, c));
			r->outbits[j] = _mm256_movemask_ps(_mm256_castsi256_ps(r->out[j]));
		}
	}
	return nr;
}

// deinterleave4 splits 32 consecutive floats z[0..3] by position mod 4: e[s][l] = z[4l + s].
AVX2_INLINE void deinterleave4(const __m256 *z, __m256 *e) {
	__m256 a0 = _mm256_permute2f128_ps(z[0], z[2], 0x20), a1 = _mm256_permute2f128_ps(z[0], z[2], 0x31);
	__m256 a2 = _mm256_permute2f128_ps(z[1], z[3], 0x20), a3 = _mm256_permute2f128_ps(z[1], z[3], 0x31);
	__m256 b0 = _mm256_unpacklo_ps(a0, a1), b1 = _mm256_unpackhi_ps(a0, a1);
	__m256 b2 = _mm256_unpacklo_ps(a2, a3), b3 = _mm256_unpackhi_ps(a2, a3);
	e[0] = _mm256_shuffle_ps(b0, b2, 0x44);
	e[1] = _mm256_shuffle_ps(b0, b2, 0xEE);
	e[2] = _mm256_shuffle_ps(b1, b3, 0x44);
	e[3] = _mm256_shuffle_ps(b1, b3, 0xEE);
}

// interleave4 is the inverse: z[i/8][i%8] = o[i%4][i/4].
AVX2_INLINE void interleave4(const __m256 *o, __m256 *z) {
	__m256 t0 = _mm256_unpacklo_ps(o[0], o[1]), t1 = _mm256_unpackhi_ps(o[0], o[1]);
	__m256 t2 = _mm256_unpacklo_ps(o[2], o[3]), t3 = _mm256_unpackhi_ps(o[2], o[3]);
	__m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
	__m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
	z[0] = _mm256_permute2f128_ps(u0, u1, 0x20);
	z[1] = _mm256_permute2f128_ps(u2, u3, 0x20);
	z[2] = _mm256_permute2f128_ps(u0, u1, 0x31);
	z[3] = _mm256_permute2f128_ps(u2, u3, 0x31);
}

// segkit_avx2_wino_block is segkit_avx512_wino_block (winograd_avx512.c) on AVX2. Loads past the image
// are masked (see masked); partial stores go lane by lane (masked stores are slow).
AVX2 void segkit_avx2_wino_block(long C, long K, long H, long W, const float *x, const float *u, const float *scale,
                                 const float *shift, const float *add, int relu, float *y, long t0, long nt, long k0,
                                 long k1) {
	long tw = (W + 3) / 4, th = (H + 3) / 4;
	float *v = segkit_grow(&wino_v, &wino_vcap, 36 * C * WN);
	float *m = segkit_grow(&wino_m, &wino_mcap, 36 * K * WN);
	run group[WN / 8][8]; // every 8-tile group's runs, for the input and the output transform
	int nruns[WN / 8];
	for (long g = 0; g < nt; g += 8)
		nruns[g / 8] = group_runs(t0 + g, nt - g < 8 ? nt - g : 8, th, tw, W, group[g / 8]);
	for (long g = 0; g < nt; g += 8) {
		const run *runs = group[g / 8];
		int nr = nruns[g / 8];
		float *vg = v + (g / NR) * NR * C + g % NR; // this group's lanes in its packed panel
		for (long c = 0; c < C; c++) {
			__m256 h[6][6];
			for (int r = 0; r < 6; r++) {
				__m256 d[6];
				for (int s = 0; s < 6; s++) d[s] = _mm256_setzero_ps();
				for (int i = 0; i < nr; i++) {
					const run *rn = &runs[i];
					long iy = rn->oy - 1 + r;
					if (iy < 0 || iy >= H) continue;
					const float *plane = x + (rn->n * C + c) * H * W, *src = plane + iy * W + rn->col;
					__m256 z[4], zb[4], e[4], eb[4];
					if (rn->inside) {
						for (int j = 0; j < 4; j++) z[j] = _mm256_loadu_ps(src + 8 * j), zb[j] = _mm256_loadu_ps(src + 4 + 8 * j);
					} else {
						for (int j = 0; j < 4; j++) {
							z[j] = masked(src + 8 * j, rn->in[j], plane, plane + H * W);
							zb[j] = masked(src + 4 + 8 * j, rn->in[4 + j], plane, plane + H * W);
						}
					}
					deinterleave4(z, e);
					deinterleave4(zb, eb);
					if (nr == 1) {
						d[0] = e[0], d[1] = e[1], d[2] = e[2], d[3] = e[3], d[4] = eb[0], d[5] = eb[1];
						continue;
					}
					for (int s = 0; s < 4; s++) d[s] = _mm256_blendv_ps(d[s], e[s], rn->lanes);
					d[4] = _mm256_blendv_ps(d[4], eb[0], rn->lanes);
					d[5] = _mm256_blendv_ps(d[5], eb[1], rn->lanes);
				}
				bt(h[r], d); // along the row
			}
			for (int s = 0; s < 6; s++) {
				__m256 col[6], o[6];
				for (int r = 0; r < 6; r++) col[r] = h[r][s];
				bt(o, col); // down the column
				for (int r = 0; r < 6; r++) _mm256_store_ps(vg + (r * 6 + s) * C * WN + c * NR, o[r]);
			}
		}
	}
	for (int xi = 0; xi < 36; xi++)
		segkit_avx2_gemm_block(k1 - k0, nt, C, u + (xi * K + k0) * C, C, 1, v + xi * C * WN, m + (xi * K + k0) * WN,
		                       WN, 0, 1, 0, 0);
	for (long g = 0; g < nt; g += 8) {
		const run *runs = group[g / 8];
		int nr = nruns[g / 8];
		for (long k = k0; k < k1; k++) {
			__m256 sc = _mm256_set1_ps(scale ? scale[k] : 1), sh = _mm256_set1_ps(shift ? shift[k] : 0);
			__m256 p[6][4], o[4][4];
			for (int r = 0; r < 6; r++) {
				__m256 row[6];
				for (int s = 0; s < 6; s++) row[s] = _mm256_loadu_ps(m + ((r * 6 + s) * K + k) * WN + g);
				at(p[r], row);
			}
			for (int s = 0; s < 4; s++) {
				__m256 col[6], out[4];
				for (int r = 0; r < 6; r++) col[r] = p[r][s];
				at(out, col);
				for (int a = 0; a < 4; a++) o[a][s] = _mm256_fmadd_ps(out[a], sc, sh);
			}
			for (int a = 0; a < 4; a++) {
				__m256 z[4];
				interleave4(o[a], z);
				for (int i = 0; i < nr; i++) {
					const run *rn = &runs[i];
					if (rn->oy + a >= H) continue;
					long base = (rn->n * K + k) * H * W, off = base + (rn->oy + a) * W + rn->col + 1;
					for (int j = 0; j < 4; j++) {
						int bits = rn->outbits[j];
						if (!bits) continue;
						__m256 r = z[j];
						if (add)
							r = _mm256_add_ps(r, bits == 0xFF ? _mm256_loadu_ps(add + off + 8 * j)
							                                  : masked(add + off + 8 * j, rn->out[j], add + base, add + base + H * W));
						if (relu) r = _mm256_max_ps(r, _mm256_setzero_ps());
						if (bits == 0xFF) {
							_mm256_storeu_ps(y + off + 8 * j, r);
							continue;
						}
						float t[8];
						_mm256_storeu_ps(t, r);
						for (int l = 0; l < 8; l++)
							if (bits >> l & 1) y[off + 8 * j + l] = t[l];
					}
				}
			}
		}
	}
}
