//go:build amd64

// Winograd F(4×4, 3×3) for 3×3, stride-1, padding-1 convolutions, on the AVX-512 GEMM's
// microkernel (sgemm_avx512.c).
//
// Each 4×4 output tile is A^T [ (G g G^T) ⊙ (B^T d B) ] A over the 6×6 input tile d: 36 products
// per tile instead of 144. Per block of up to WN tiles: the input transform writes V[ξ][c][tile]
// (already in the GEMM's packed-panel layout), 36 GEMMs M[ξ] = U[ξ]·V[ξ] reuse the microkernel,
// and the output transform writes the tiles. Lanes of the transforms are 16 tiles.

#include "simd_avx512.h"
#include "gemm.h"
#include "kernels.h"

#define WN NR

// Per-thread V and M blocks.
static _Thread_local float *wino_v, *wino_m;
static _Thread_local long wino_vcap, wino_mcap;

// segkit_avx512_wino_filter writes U[ξ][k][c] = (G g_kc G^T)[ξ] for filters k in [k0, k1).
__attribute__((target("avx512f"))) void segkit_avx512_wino_filter(long K, long C, const float *w, float *u, long k0,
                                                           long k1) {
	const __m512i idx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
	                                       _mm512_set1_epi32(9));
	const __m512 q = _mm512_set1_ps(0.25f), s6 = _mm512_set1_ps(1.0f / 6), neg6 = _mm512_set1_ps(-1.0f / 6),
	             s12 = _mm512_set1_ps(1.0f / 12), s24 = _mm512_set1_ps(1.0f / 24);
	for (long k = k0; k < k1; k++) {
		for (long c = 0; c < C; c += 16) {
			__mmask16 lanes = tail_mask(C - c);
			const float *src = w + (k * C + c) * 9;
			__m512 g[3][3], t[6][3];
			for (int i = 0; i < 9; i++)
				g[i / 3][i % 3] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), lanes, idx, src + i, 4);
			// t = G g (rows), then U = t G^T (columns), same 1-D transform twice.
#define GT(o, a, b, cc)                                                                                       \
	do {                                                                                                      \
		__m512 sum02 = _mm512_add_ps(a, cc);                                                                  \
		o[0] = _mm512_mul_ps(q, a);                                                                           \
		o[1] = _mm512_mul_ps(neg6, _mm512_add_ps(sum02, b));                                                  \
		o[2] = _mm512_mul_ps(neg6, _mm512_sub_ps(sum02, b));                                                  \
		__m512 e = _mm512_fmadd_ps(s24, a, _mm512_mul_ps(s6, cc));                                            \
		o[3] = _mm512_fmadd_ps(s12, b, e);                                                                    \
		o[4] = _mm512_fnmadd_ps(s12, b, e);                                                                   \
		o[5] = cc;                                                                                            \
	} while (0)
			for (int j = 0; j < 3; j++) {
				__m512 o[6];
				GT(o, g[0][j], g[1][j], g[2][j]);
				for (int i = 0; i < 6; i++) t[i][j] = o[i];
			}
			for (int i = 0; i < 6; i++) {
				__m512 o[6];
				GT(o, t[i][0], t[i][1], t[i][2]);
				for (int j = 0; j < 6; j++) store16(u + ((i * 6 + j) * K + k) * C + c, lanes, o[j]);
			}
#undef GT
		}
	}
}

// bt applies B^T to six vectors.
__attribute__((target("avx512f"), always_inline)) static inline void bt(__m512 *o, const __m512 *d) {
	const __m512 four = _mm512_set1_ps(4), five = _mm512_set1_ps(5), two = _mm512_set1_ps(2);
	__m512 a = _mm512_fnmadd_ps(four, d[2], d[4]); // d4 - 4 d2
	__m512 b = _mm512_fnmadd_ps(four, d[1], d[3]); // d3 - 4 d1
	__m512 e = _mm512_sub_ps(d[4], d[2]);          // d4 - d2
	__m512 f = _mm512_mul_ps(two, _mm512_sub_ps(d[3], d[1]));
	o[0] = _mm512_fnmadd_ps(five, d[2], _mm512_fmadd_ps(four, d[0], d[4]));
	o[1] = _mm512_add_ps(a, b);
	o[2] = _mm512_sub_ps(a, b);
	o[3] = _mm512_add_ps(e, f);
	o[4] = _mm512_sub_ps(e, f);
	o[5] = _mm512_fnmadd_ps(five, d[3], _mm512_fmadd_ps(four, d[1], d[5]));
}

// at applies A^T to six vectors.
__attribute__((target("avx512f"), always_inline)) static inline void at(__m512 *o, const __m512 *m) {
	__m512 s12 = _mm512_add_ps(m[1], m[2]), d12 = _mm512_sub_ps(m[1], m[2]);
	__m512 s34 = _mm512_add_ps(m[3], m[4]), d34 = _mm512_sub_ps(m[3], m[4]);
	o[0] = _mm512_add_ps(_mm512_add_ps(m[0], s12), s34);
	o[1] = _mm512_fmadd_ps(_mm512_set1_ps(2), d34, d12);
	o[2] = _mm512_fmadd_ps(_mm512_set1_ps(4), s34, s12);
	o[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8), d34, d12), m[5]);
}

// A run: the lanes of a 16-tile group whose tiles lie in one row of tiles of one image. Lane l of
// the run reads input columns col + 4l + [0, 6) and writes output columns col + 1 + 4l + [0, 4).
typedef struct {
	long n, oy, col;  // image; the tiles' top output row; input column of lane 0's window
	__mmask16 in[8];  // load masks (columns inside the image): window col + [0, 64), window col + 4 + [0, 64)
	__mmask16 out[4]; // store masks: output columns of the run's lanes inside the image
	__mmask16 lanes;
} run;

// group_runs splits tiles [t, t+n) (n ≤ 16; numbered over all images, th×tw per image) into
// runs; it returns their number.
__attribute__((target("avx512f"))) static int group_runs(long t, long n, long th, long tw, long W, run *runs) {
	const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
	const __m512i zero = _mm512_setzero_si512(), w = _mm512_set1_epi32((int)W);
	int nr = 0;
	for (long l0 = 0, l1; l0 < n; l0 = l1) {
		long img = (t + l0) / (th * tw), ty = (t + l0) % (th * tw) / tw, tx = (t + l0) % tw;
		l1 = l0 + (tw - tx < n - l0 ? tw - tx : n - l0);
		run *r = &runs[nr++];
		r->n = img;
		r->oy = 4 * ty;
		r->col = 4 * tx - 1 - 4 * l0;
		r->lanes = (__mmask16)(((1u << l1) - 1) & ~((1u << l0) - 1));
		for (int j = 0; j < 8; j++) {
			__m512i c = _mm512_add_epi32(iota, _mm512_set1_epi32((int)(r->col + 16 * (j % 4) + 4 * (j / 4))));
			r->in[j] = _mm512_cmpge_epi32_mask(c, zero) & _mm512_cmplt_epi32_mask(c, w);
		}
		for (int j = 0; j < 4; j++) {
			__m512i e = _mm512_add_epi32(iota, _mm512_set1_epi32(16 * j));
			__m512i lane = _mm512_srli_epi32(e, 2);
			__m512i c = _mm512_add_epi32(e, _mm512_set1_epi32((int)(r->col + 1)));
			r->out[j] = _mm512_cmpge_epi32_mask(lane, _mm512_set1_epi32((int)l0)) &
			            _mm512_cmplt_epi32_mask(lane, _mm512_set1_epi32((int)l1)) & _mm512_cmplt_epi32_mask(c, w);
		}
	}
	return nr;
}

// deinterleave4 splits 64 consecutive floats z[0..3] by position mod 4: e[s][l] = z[4l + s].
__attribute__((target("avx512f"), always_inline)) static inline void deinterleave4(const __m512 *z, __m512 *e) {
	const __m512i i01 = _mm512_set_epi32(29, 25, 21, 17, 13, 9, 5, 1, 28, 24, 20, 16, 12, 8, 4, 0);
	const __m512i i23 = _mm512_set_epi32(31, 27, 23, 19, 15, 11, 7, 3, 30, 26, 22, 18, 14, 10, 6, 2);
	__m512 lo = _mm512_permutex2var_ps(z[0], i01, z[1]), hi = _mm512_permutex2var_ps(z[2], i01, z[3]);
	e[0] = _mm512_shuffle_f32x4(lo, hi, 0x44);
	e[1] = _mm512_shuffle_f32x4(lo, hi, 0xEE);
	lo = _mm512_permutex2var_ps(z[0], i23, z[1]), hi = _mm512_permutex2var_ps(z[2], i23, z[3]);
	e[2] = _mm512_shuffle_f32x4(lo, hi, 0x44);
	e[3] = _mm512_shuffle_f32x4(lo, hi, 0xEE);
}

// interleave4 is the inverse: z[i/16][i%16] = o[i%4][i/4].
__attribute__((target("avx512f"), always_inline)) static inline void interleave4(const __m512 *o, __m512 *z) {
	const __m512i p = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
	const __m512i ph = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
	const __m512i q = _mm512_set_epi32(23, 22, 7, 6, 21, 20, 5, 4, 19, 18, 3, 2, 17, 16, 1, 0);
	const __m512i qh = _mm512_set_epi32(31, 30, 15, 14, 29, 28, 13, 12, 27, 26, 11, 10, 25, 24, 9, 8);
	__m512 a = _mm512_permutex2var_ps(o[0], p, o[1]), ah = _mm512_permutex2var_ps(o[0], ph, o[1]);
	__m512 b = _mm512_permutex2var_ps(o[2], p, o[3]), bh = _mm512_permutex2var_ps(o[2], ph, o[3]);
	z[0] = _mm512_permutex2var_ps(a, q, b);
	z[1] = _mm512_permutex2var_ps(a, qh, b);
	z[2] = _mm512_permutex2var_ps(ah, q, bh);
	z[3] = _mm512_permutex2var_ps(ah, qh, bh);
}

// segkit_avx512_wino_block convolves tiles [t0, t0+nt) (nt ≤ WN; raster order over ⌈H/4⌉×⌈W/4⌉ per
// image, images one after another) of the N×C×H×W x with the transformed filters u (36×K×C),
// writing output channels [k0, k1) of the N×K×H×W y through the per-channel epilogue (scale,
// shift, add, relu; as segkit_avx512_sgemm's, add laid out as y). Tiles are read and written a row
// segment at a time (contiguous loads, shuffled into one tile per lane).
__attribute__((target("avx512f"))) void segkit_avx512_wino_block(long C, long K, long H, long W, const float *x,
                                                          const float *u, const float *scale, const float *shift,
                                                          const float *add, int relu, float *y, long t0, long nt,
                                                          long k0, long k1) {
	long tw = (W + 3) / 4, th = (H + 3) / 4;
	float *v = segkit_grow(&wino_v, &wino_vcap, 36 * C * WN);
	float *m = segkit_grow(&wino_m, &wino_mcap, 36 * K * WN);
	run group[WN / 16][16]; // every 16-tile group's runs, for the input and the output transform
	int nruns[WN / 16];
	for (long g = 0; g < nt; g += 16)
		nruns[g / 16] = group_runs(t0 + g, nt - g < 16 ? nt - g : 16, th, tw, W, group[g / 16]);
	for (long g = 0; g < nt; g += 16) {
		const run *runs = group[g / 16];
		int nr = nruns[g / 16];
		for (long c = 0; c < C; c++) {
			__m512 h[6][6];
			for (int r = 0; r < 6; r++) {
				__m512 d[6];
				for (int s = 0; s < 6; s++) d[s] = _mm512_setzero_ps();
				for (int i = 0; i < nr; i++) {
					const run *rn = &runs[i];
					long iy = rn->oy - 1 + r;
					if (iy < 0 || iy >= H) continue;
					const float *src = x + (rn->n * C + c) * H * W + iy * W + rn->col;
					__m512 z[4], zb[4], e[4], eb[4];
					for (int j = 0; j < 4; j++) {
						z[j] = load16(rn->in[j], src + 16 * j);
						zb[j] = load16(rn->in[4 + j], src + 4 + 16 * j);
					}
					deinterleave4(z, e);
					deinterleave4(zb, eb);
					if (nr == 1) {
						d[0] = e[0], d[1] = e[1], d[2] = e[2], d[3] = e[3], d[4] = eb[0], d[5] = eb[1];
						continue;
					}
					for (int s = 0; s < 4; s++) d[s] = _mm512_mask_mov_ps(d[s], rn->lanes, e[s]);
					d[4] = _mm512_mask_mov_ps(d[4], rn->lanes, eb[0]);
					d[5] = _mm512_mask_mov_ps(d[5], rn->lanes, eb[1]);
				}
				bt(h[r], d); // along the row
			}
			for (int s = 0; s < 6; s++) {
				__m512 col[6], o[6];
				for (int r = 0; r < 6; r++) col[r] = h[r][s];
				bt(o, col); // down the column
				for (int r = 0; r < 6; r++) _mm512_store_ps(v + ((r * 6 + s) * C + c) * WN + g, o[r]);
			}
		}
	}
	for (int xi = 0; xi < 36; xi++)
		segkit_avx512_gemm_block(k1 - k0, nt, C, u + (xi * K + k0) * C, C, 1, v + xi * C * WN, m + (xi * K + k0) * WN, WN, 0,
		                  1, 0, 0);
	for (long g = 0; g < nt; g += 16) {
		const run *runs = group[g / 16];
		int nr = nruns[g / 16];
		for (long k = k0; k < k1; k++) {
			__m512 sc = _mm512_set1_ps(scale ? scale[k] : 1), sh = _mm512_set1_ps(shift ? shift[k] : 0);
			__m512 p[6][4], o[4][4];
			for (int r = 0; r < 6; r++) {
				__m512 row[6];
				for (int s = 0; s < 6; s++) row[s] = _mm512_load_ps(m + ((r * 6 + s) * K + k) * WN + g);
				at(p[r], row);
			}
			for (int s = 0; s < 4; s++) {
				__m512 col[6], out[4];
				for (int r = 0; r < 6; r++) col[r] = p[r][s];
				at(out, col);
				for (int a = 0; a < 4; a++) o[a][s] = _mm512_fmadd_ps(out[a], sc, sh);
			}
			for (int a = 0; a < 4; a++) {
				__m512 z[4];
				interleave4(o[a], z);
				for (int i = 0; i < nr; i++) {
					const run *rn = &runs[i];
					if (rn->oy + a >= H) continue;
					long off = (rn->n * K + k) * H * W + (rn->oy + a) * W + rn->col + 1;
					for (int j = 0; j < 4; j++) {
						__m512 r = z[j];
						if (add) r = _mm512_add_ps(r, load16(rn->out[j], add + off + 16 * j));
						if (relu) r = _mm512_max_ps(r, _mm512_setzero_ps());
						store16(y + off + 16 * j, rn->out[j], r);
					}
				}
			}
		}
	}
}
