// Winograd F(4×4, 3×3) for 3×3, stride-1, padding-1 convolutions on the GEMM's microkernel,
// written once for both instruction sets (winograd_avx2.c and winograd_avx512.c define SIMD_H and
// include this).
//
// Each 4×4 output tile is A^T [ (G g G^T) ⊙ (B^T d B) ] A over the 6×6 input tile d: 36 products
// per tile instead of 144. Per block of up to WN tiles: the input transform writes V[ξ][c][tile]
// (already in the GEMM's packed-panel layout, panels of NR tiles), 36 GEMMs M[ξ] = U[ξ]·V[ξ] reuse
// the microkernel, and the output transform writes the tiles. Lanes of the transforms are VL
// tiles; the tiles of a group of VL are read and written through runs (below), one per row of
// tiles they span.

#include SIMD_H

#include "gemm.h"

#define WN 64 // tiles per block: AVX-512's NR, and AVX2's too, so U is read once per 64 tiles

// Per-thread V and M blocks.
static _Thread_local float *wino_v, *wino_m;
static _Thread_local long wino_vcap, wino_mcap;

// wino_filter writes U[ξ][k][c] = (G g_kc G^T)[ξ] for filters k in [k0, k1).
SIMD void ISA_NAME(wino_filter)(long K, long C, const float *w, float *u, long k0, long k1) {
	const vf q = vf_set1(0.25f), s6 = vf_set1(1.0f / 6), neg6 = vf_set1(-1.0f / 6), s12 = vf_set1(1.0f / 12),
	         s24 = vf_set1(1.0f / 24);
	for (long k = k0; k < k1; k++) {
		for (long c = 0; c < C; c += VL) {
			long lanes = C - c < VL ? C - c : VL;
			const float *src = w + (k * C + c) * 9;
			vf g[3][3], t[6][3];
			for (int i = 0; i < 9; i++) g[i / 3][i % 3] = vf_gather9_first(src + i, lanes);
			// t = G g (rows), then U = t G^T (columns), same 1-D transform twice.
#define GT(o, a, b, cc)                                                                                       \
	do {                                                                                                      \
		vf sum02 = vf_add(a, cc);                                                                             \
		o[0] = vf_mul(q, a);                                                                                  \
		o[1] = vf_mul(neg6, vf_add(sum02, b));                                                                \
		o[2] = vf_mul(neg6, vf_sub(sum02, b));                                                                \
		vf e = vf_fmadd(s24, a, vf_mul(s6, cc));                                                              \
		o[3] = vf_fmadd(s12, b, e);                                                                           \
		o[4] = vf_fnmadd(s12, b, e);                                                                          \
		o[5] = cc;                                                                                            \
	} while (0)
			for (int j = 0; j < 3; j++) {
				vf o[6];
				GT(o, g[0][j], g[1][j], g[2][j]);
				for (int i = 0; i < 6; i++) t[i][j] = o[i];
			}
			for (int i = 0; i < 6; i++) {
				vf o[6];
				GT(o, t[i][0], t[i][1], t[i][2]);
				for (int j = 0; j < 6; j++) vf_store_first(u + ((i * 6 + j) * K + k) * C + c, lanes, o[j]);
			}
#undef GT
		}
	}
}

// bt applies B^T to six vectors.
SIMD_INLINE void bt(vf *o, const vf *d) {
	const vf four = vf_set1(4), five = vf_set1(5), two = vf_set1(2);
	vf a = vf_fnmadd(four, d[2], d[4]); // d4 - 4 d2
	vf b = vf_fnmadd(four, d[1], d[3]); // d3 - 4 d1
	vf e = vf_sub(d[4], d[2]);          // d4 - d2
	vf f = vf_mul(two, vf_sub(d[3], d[1]));
	o[0] = vf_fnmadd(five, d[2], vf_fmadd(four, d[0], d[4]));
	o[1] = vf_add(a, b);
	o[2] = vf_sub(a, b);
	o[3] = vf_add(e, f);
	o[4] = vf_sub(e, f);
	o[5] = vf_fnmadd(five, d[3], vf_fmadd(four, d[1], d[5]));
}

// at applies A^T to six vectors.
SIMD_INLINE void at(vf *o, const vf *m) {
	vf s12 = vf_add(m[1], m[2]), d12 = vf_sub(m[1], m[2]);
	vf s34 = vf_add(m[3], m[4]), d34 = vf_sub(m[3], m[4]);
	o[0] = vf_add(vf_add(m[0], s12), s34);
	o[1] = vf_fmadd(vf_set1(2), d34, d12);
	o[2] = vf_fmadd(vf_set1(4), s34, s12);
	o[3] = vf_add(vf_fmadd(vf_set1(8), d34, d12), m[5]);
}

// The runs and the shuffles between rows of the image and tiles per lane differ by instruction
// set: lane masks on AVX-512; on AVX2, vector masks with bit copies that let whole runs take
// plain loads and stores (masked ones are slow there).
#if SIMD_AVX512

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
SIMD static int group_runs(long t, long n, long th, long tw, long W, run *runs) {
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
SIMD_INLINE void deinterleave4(const __m512 *z, __m512 *e) {
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
SIMD_INLINE void interleave4(const __m512 *o, __m512 *z) {
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

// run_load returns the window j of a run's input row src (in the plane [lo, hi)): lanes outside the
// image zero.
SIMD_INLINE vf run_load(const run *rn, int j, const float *src, const float *lo, const float *hi) {
	return load16(rn->in[j], src);
}

// run_blend returns d with the run's lanes taken from e.
SIMD_INLINE vf run_blend(const run *rn, vf d, vf e) { return _mm512_mask_mov_ps(d, rn->lanes, e); }

// run_writes reports whether the run writes any of output vector j.
SIMD_INLINE int run_writes(const run *rn, int j) { return rn->out[j] != 0; }

// run_out_load returns the run's output vector j at p (in the plane [lo, hi)), zero elsewhere.
SIMD_INLINE vf run_out_load(const run *rn, int j, const float *p, const float *lo, const float *hi) {
	return load16(rn->out[j], p);
}

// run_out_store stores the run's lanes of output vector j.
SIMD_INLINE void run_out_store(const run *rn, int j, float *p, vf v) { store16(p, rn->out[j], v); }

#else

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
SIMD static int group_runs(long t, long n, long th, long tw, long W, run *runs) {
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
SIMD_INLINE void deinterleave4(const __m256 *z, __m256 *e) {
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
SIMD_INLINE void interleave4(const __m256 *o, __m256 *z) {
	__m256 t0 = _mm256_unpacklo_ps(o[0], o[1]), t1 = _mm256_unpackhi_ps(o[0], o[1]);
	__m256 t2 = _mm256_unpacklo_ps(o[2], o[3]), t3 = _mm256_unpackhi_ps(o[2], o[3]);
	__m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
	__m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
	z[0] = _mm256_permute2f128_ps(u0, u1, 0x20);
	z[1] = _mm256_permute2f128_ps(u2, u3, 0x20);
	z[2] = _mm256_permute2f128_ps(u0, u1, 0x31);
	z[3] = _mm256_permute2f128_ps(u2, u3, 0x31);
}

// run_load returns the window j of a run's input row src (in the plane [lo, hi)): lanes outside the
// image zero.
SIMD_INLINE vf run_load(const run *rn, int j, const float *src, const float *lo, const float *hi) {
	return rn->inside ? _mm256_loadu_ps(src) : masked(src, rn->in[j], lo, hi);
}

// run_blend returns d with the run's lanes taken from e.
SIMD_INLINE vf run_blend(const run *rn, vf d, vf e) { return _mm256_blendv_ps(d, e, rn->lanes); }

// run_writes reports whether the run writes any of output vector j.
SIMD_INLINE int run_writes(const run *rn, int j) { return rn->outbits[j] != 0; }

// run_out_load returns the run's output vector j at p (in the plane [lo, hi)), zero elsewhere.
SIMD_INLINE vf run_out_load(const run *rn, int j, const float *p, const float *lo, const float *hi) {
	return rn->outbits[j] == 0xFF ? _mm256_loadu_ps(p) : masked(p, rn->out[j], lo, hi);
}

// run_out_store stores the run's lanes of output vector j, lane by lane unless all.
SIMD_INLINE void run_out_store(const run *rn, int j, float *p, vf v) {
	int bits = rn->outbits[j];
	if (bits == 0xFF) {
		_mm256_storeu_ps(p, v);
		return;
	}
	float t[8];
	_mm256_storeu_ps(t, v);
	for (int l = 0; l < 8; l++)
		if (bits >> l & 1) p[l] = t[l];
}

#endif

// wino_block convolves tiles [t0, t0+nt) (nt ≤ WN; raster order over ⌈H/4⌉×⌈W/4⌉ per image, images
// one after another) of the N×C×H×W x with the transformed filters u (36×K×C), writing output
// channels [k0, k1) of the N×K×H×W y through the per-channel epilogue (scale, shift, add, relu; as
// sgemm's, add laid out as y). Tiles are read and written a row segment at a time (contiguous
// loads, shuffled into one tile per lane).
SIMD void ISA_NAME(wino_block)(long C, long K, long H, long W, const float *x, const float *u, const float *scale,
                               const float *shift, const float *add, int relu, float *y, long t0, long nt, long k0,
                               long k1) {
	long tw = (W + 3) / 4, th = (H + 3) / 4;
	float *v = segkit_grow(&wino_v, &wino_vcap, 36 * C * WN);
	float *m = segkit_grow(&wino_m, &wino_mcap, 36 * K * WN);
	run group[WN / VL][VL]; // every VL-tile group's runs, for the input and the output transform
	int nruns[WN / VL];
	for (long g = 0; g < nt; g += VL)
		nruns[g / VL] = group_runs(t0 + g, nt - g < VL ? nt - g : VL, th, tw, W, group[g / VL]);
	for (long g = 0; g < nt; g += VL) {
		const run *runs = group[g / VL];
		int nr = nruns[g / VL];
		float *vg = v + (g / NR) * NR * C + g % NR; // this group's lanes in its packed panel
		for (long c = 0; c < C; c++) {
			vf h[6][6];
			for (int r = 0; r < 6; r++) {
				vf d[6];
				for (int s = 0; s < 6; s++) d[s] = vf_zero();
				for (int i = 0; i < nr; i++) {
					const run *rn = &runs[i];
					long iy = rn->oy - 1 + r;
					if (iy < 0 || iy >= H) continue;
					const float *plane = x + (rn->n * C + c) * H * W, *src = plane + iy * W + rn->col;
					vf z[4], zb[4], e[4], eb[4];
					for (int j = 0; j < 4; j++) {
						z[j] = run_load(rn, j, src + VL * j, plane, plane + H * W);
						zb[j] = run_load(rn, 4 + j, src + 4 + VL * j, plane, plane + H * W);
					}
					deinterleave4(z, e);
					deinterleave4(zb, eb);
					if (nr == 1) {
						d[0] = e[0], d[1] = e[1], d[2] = e[2], d[3] = e[3], d[4] = eb[0], d[5] = eb[1];
						continue;
					}
					for (int s = 0; s < 4; s++) d[s] = run_blend(rn, d[s], e[s]);
					d[4] = run_blend(rn, d[4], eb[0]);
					d[5] = run_blend(rn, d[5], eb[1]);
				}
				bt(h[r], d); // along the row
			}
			for (int s = 0; s < 6; s++) {
				vf col[6], o[6];
				for (int r = 0; r < 6; r++) col[r] = h[r][s];
				bt(o, col); // down the column
				for (int r = 0; r < 6; r++) vf_store(vg + (r * 6 + s) * C * WN + c * NR, o[r]);
			}
		}
	}
	for (int xi = 0; xi < 36; xi++)
		ISA_NAME(gemm_block)(k1 - k0, nt, C, u + (xi * K + k0) * C, C, 1, v + xi * C * WN, m + (xi * K + k0) * WN, WN,
		                     0, 1, 0, 0);
	for (long g = 0; g < nt; g += VL) {
		const run *runs = group[g / VL];
		int nr = nruns[g / VL];
		for (long k = k0; k < k1; k++) {
			vf sc = vf_set1(scale ? scale[k] : 1), sh = vf_set1(shift ? shift[k] : 0);
			vf p[6][4], o[4][4];
			for (int r = 0; r < 6; r++) {
				vf row[6];
				for (int s = 0; s < 6; s++) row[s] = vf_load(m + ((r * 6 + s) * K + k) * WN + g);
				at(p[r], row);
			}
			for (int s = 0; s < 4; s++) {
				vf col[6], out[4];
				for (int r = 0; r < 6; r++) col[r] = p[r][s];
				at(out, col);
				for (int a = 0; a < 4; a++) o[a][s] = vf_fmadd(out[a], sc, sh);
			}
			for (int a = 0; a < 4; a++) {
				vf z[4];
				interleave4(o[a], z);
				for (int i = 0; i < nr; i++) {
					const run *rn = &runs[i];
					if (rn->oy + a >= H) continue;
					long base = (rn->n * K + k) * H * W, off = base + (rn->oy + a) * W + rn->col + 1;
					for (int j = 0; j < 4; j++) {
						if (!run_writes(rn, j)) continue;
						vf r = z[j];
						if (add) r = vf_add(r, run_out_load(rn, j, add + off + VL * j, add + base, add + base + H * W));
						if (relu) r = vf_max(r, vf_zero());
						run_out_store(rn, j, y + off + VL * j, r);
					}
				}
			}
		}
	}
}
