// Implicit-GEMM convolution and its filter gradient on the GEMM (gemm.h), written once for both
// instruction sets (conv_avx2.c and conv_avx512.c define SIMD_H and include this): the
// convolution's GEMM with its patch matrix (im2col) never formed; B panels are packed straight
// from the image, which saves writing and re-reading the patch matrix. The packers differ by
// instruction set (lane masks on AVX-512; whole loads, ANDs and shuffles on AVX2) and are kept
// apart below; they only move floats, so both feed their GEMMs the same values.

#include <string.h>

#include SIMD_H

#include "gemm.h"
#include "conv_geometry.h"

// Per-thread copy of the filter gradient's A rows.
static _Thread_local float *abuf;
static _Thread_local long abuf_cap;

#if SIMD_AVX512

// pack_patches writes rows [r0, r0+kc) and columns [q0, q0+nc) (output pixels) of the patch
// matrix of image x as panels of NR columns, zero-padded.
SIMD static void pack_patches(const geometry *g, const float *x, long r0, long kc, long q0, long nc, float *dst) {
	const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
	const __m512i zero = _mm512_setzero_si512(), width = _mm512_set1_epi32((int)g->W);
	patch_row rows[KC];
	for (long r = 0; r < kc; r++) rows[r] = patch_row_of(g, x, r0 + r);
	for (long j0 = 0; j0 < nc; j0 += NR) {
		long w = nc - j0 < NR ? nc - j0 : NR;
		float *d = dst + j0 * kc;
		runs rn;
		split_runs(g, q0 + j0, w, &rn);
		for (long r = 0; r < kc; r++) {
			float *out = d + r * NR;
			for (long t = w & ~15L; t < NR; t += 16) store16(out + t, ~tail_mask(w - t), _mm512_setzero_ps());
			for (int i = 0; i < rn.n; i++) {
				long iy = rn.oy[i] * g->s + rows[r].ky, ix0 = rn.ox[i] * g->s + rows[r].kx;
				long len = rn.at[i + 1] - rn.at[i];
				float *o = out + rn.at[i];
				if (iy < 0 || iy >= g->H) {
					for (long t = 0; t < len; t += 16) store16(o + t, tail_mask(len - t), _mm512_setzero_ps());
					continue;
				}
				const float *src = rows[r].plane + iy * g->W;
				if (g->s != 1) {
					for (long t = 0; t < len; t++) {
						long ix = ix0 + t * g->s;
						o[t] = ix >= 0 && ix < g->W ? src[ix] : 0;
					}
					continue;
				}
				for (long t = 0; t < len; t += 16) {
					// Each tap is its own stream through the plane, more than the hardware
					// prefetchers follow: fetch the next panel's pixels ahead.
					_mm_prefetch((const char *)(src + ix0 + t + NR), _MM_HINT_T0);
					__m512i c = _mm512_add_epi32(iota, _mm512_set1_epi32((int)(ix0 + t)));
					__mmask16 in = _mm512_cmpge_epi32_mask(c, zero) & _mm512_cmplt_epi32_mask(c, width);
					__mmask16 n = tail_mask(len - t);
					store16(o + t, n, load16(in & n, src + ix0 + t));
				}
			}
		}
	}
}

// patch_row_vec returns a patch row's values at 16 pixels (runs rn, split_runs of 16 or fewer),
// zero outside the image and past the pixels.
SIMD_INLINE __m512 patch_row_vec(const geometry *g, const runs *rn, patch_row row) {
	const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
	__m512 v = _mm512_setzero_ps();
	for (int i = 0; i < rn->n; i++) {
		long iy = rn->oy[i] * g->s + row.ky;
		if (iy < 0 || iy >= g->H) continue;
		long a = rn->at[i], b = rn->at[i + 1];
		long ix0 = rn->ox[i] * g->s + row.kx; // lane a's input column
		const float *src = row.plane + iy * g->W;
		if (g->s != 1) {
			float t[16];
			_mm512_storeu_ps(t, v);
			for (long l = a; l < b; l++) {
				long ix = ix0 + (l - a) * g->s;
				t[l] = ix >= 0 && ix < g->W ? src[ix] : 0;
			}
			v = _mm512_loadu_ps(t);
			continue;
		}
		long base = ix0 - a; // lane l reads column base + l
		if (a == 0 && b == 16 && base >= 0 && base + 16 <= g->W) return _mm512_loadu_ps(src + base); // the usual case
		__m512i col = _mm512_add_epi32(iota, _mm512_set1_epi32((int)base));
		__mmask16 in = (__mmask16)(((1u << b) - 1) & ~((1u << a) - 1)) &
		               _mm512_cmpge_epi32_mask(col, _mm512_setzero_si512()) &
		               _mm512_cmplt_epi32_mask(col, _mm512_set1_epi32((int)g->W));
		v = in == 0xFFFF ? _mm512_loadu_ps(src + base) : _mm512_mask_loadu_ps(v, in, src + base);
	}
	return v;
}

#else

// gather writes o[t] = src[ix0 + t·s] for t in [0, len), zero outside [0, W).
SIMD_INLINE void gather(float *o, const float *src, long ix0, long len, long s, long W) {
	if (s != 1) {
		for (long t = 0; t < len; t++) {
			long ix = ix0 + t * s;
			o[t] = ix >= 0 && ix < W ? src[ix] : 0;
		}
		return;
	}
	long lo = ix0 < 0 ? -ix0 : 0, hi = W - ix0 < len ? W - ix0 : len;
	if (lo >= hi) {
		for (long t = 0; t < len; t++) o[t] = 0;
		return;
	}
	long t = 0;
	for (; t < lo; t++) o[t] = 0;
	for (; t + 8 <= hi; t += 8) _mm256_storeu_ps(o + t, _mm256_loadu_ps(src + ix0 + t));
	for (; t < hi; t++) o[t] = src[ix0 + t];
	for (; t < len; t++) o[t] = 0;
}

// window returns the lanes l of [a + 8·half, a + 8·half + 8) (as a maskload mask) with
// lo ≤ l < hi.
SIMD_INLINE __m256i window(long lo, long hi, int half) {
	__m256i l = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(8 * half));
	return _mm256_and_si256(_mm256_cmpgt_epi32(l, _mm256_set1_epi32((int)lo - 1)),
	                        _mm256_cmpgt_epi32(_mm256_set1_epi32((int)hi), l));
}

// evens returns lanes 0, 2, …, 14 of the 16 floats a, b.
SIMD_INLINE __m256 evens(__m256 a, __m256 b) {
	__m256 t = _mm256_shuffle_ps(a, b, 0x88); // a0 a2 b0 b2 | a4 a6 b4 b6
	return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), 0xD8));
}

// stride2 returns src[2l] for lanes l with lo ≤ 2l < hi (columns of a stride-2 patch row), zero
// elsewhere: src may point outside the image row; plo, phi bound its plane (see masked).
SIMD_INLINE __m256 stride2(const float *src, long lo, long hi, const float *plo, const float *phi) {
	return evens(masked(src, window(lo, hi, 0), plo, phi), masked(src + 8, window(lo, hi, 1), plo, phi));
}

#define PREFETCH_PANELS 2

// pack_patches writes rows [r0, r0+kc) and columns [q0, q0+nc) (output pixels) of the patch
// matrix of image x as panels of NR columns, zero-padded.
SIMD static void pack_patches(const geometry *g, const float *x, long r0, long kc, long q0, long nc, float *dst) {
	patch_row rows[KC];
	for (long r = 0; r < kc; r++) rows[r] = patch_row_of(g, x, r0 + r);
	// Where input rows are as wide as output rows (stride 1 with "same" padding, and stride 2's
	// phase planes), a panel's pixels are consecutive in the plane too, across output rows: a tap
	// at column offset -1, 0 or +1 is two loads, with the lanes that would read past the row's
	// first or last column cleared.
	int flat = g->s == 1 && g->W == g->OW;
	for (long j0 = 0; j0 < nc; j0 += NR) {
		long w = nc - j0 < NR ? nc - j0 : NR, q = q0 + j0;
		float *d = dst + j0 * kc;
		runs rn;
		split_runs(g, q, w, &rn);
		__m256i keep[3][2]; // by column offset + 1, the lanes to keep
		if (flat && w == NR) {
			int k0[NR], k2[NR];
			for (int l = 0; l < NR; l++) k0[l] = (q + l) % g->OW != 0 ? -1 : 0, k2[l] = (q + l) % g->OW != g->OW - 1 ? -1 : 0;
			for (int h = 0; h < 2; h++) {
				keep[0][h] = _mm256_loadu_si256((const __m256i *)(k0 + 8 * h));
				keep[1][h] = _mm256_set1_epi32(-1);
				keep[2][h] = _mm256_loadu_si256((const __m256i *)(k2 + 8 * h));
			}
		}
		long top = q / g->OW, bottom = (q + w - 1) / g->OW; // output rows of the first and last pixel
		for (long r = 0; r < kc; r++) {
			float *out = d + r * NR;
			long ky = rows[r].ky, kx = rows[r].kx;
			if (flat && w == NR && kx >= -1 && kx <= 1 && top + ky >= 0 && bottom + ky < g->H) {
				const float *plane = rows[r].plane, *end = plane + g->H * g->W, *a = plane + q + ky * g->W + kx;
				// Each tap is its own stream through the plane, more than the hardware prefetchers
				// follow: fetch the next panels' pixels ahead.
				_mm_prefetch((const char *)(a + PREFETCH_PANELS * NR), _MM_HINT_T0);
				_mm256_store_ps(out, masked(a, keep[kx + 1][0], plane, end));
				_mm256_store_ps(out + 8, masked(a + 8, keep[kx + 1][1], plane, end));
				continue;
			}
			for (long t = w; t < NR; t++) out[t] = 0;
			for (int i = 0; i < rn.n; i++) {
				long iy = rn.oy[i] * g->s + rows[r].ky, ix0 = rn.ox[i] * g->s + rows[r].kx;
				long len = rn.at[i + 1] - rn.at[i];
				float *o = out + rn.at[i];
				if (iy < 0 || iy >= g->H) {
					_mm256_storeu_ps(o, _mm256_setzero_ps()); // as below: past the run is rewritten later
					_mm256_storeu_ps(o + 8, _mm256_setzero_ps());
					continue;
				}
				const float *src = rows[r].plane + iy * g->W, *pend = rows[r].plane + g->H * g->W;
				if (len == NR && g->s == 1 && ix0 >= 0 && ix0 + NR <= g->W) { // the usual case
					_mm256_store_ps(o, _mm256_loadu_ps(src + ix0));
					_mm256_store_ps(o + 8, _mm256_loadu_ps(src + ix0 + 8));
					continue;
				}
				if (g->s == 1) {
					// Short runs (narrow images) and edges: masked loads (zeros outside the image and
					// past the run; they never fault), stored whole. What lands past the run is
					// rewritten by the runs and rows packed after it (the buffer has NR floats to spare).
					long lo = ix0 < 0 ? -ix0 : 0, hi = g->W - ix0 < len ? g->W - ix0 : len;
					_mm256_storeu_ps(o, masked(src + ix0, window(lo, hi, 0), rows[r].plane, pend));
					_mm256_storeu_ps(o + 8, masked(src + ix0 + 8, window(lo, hi, 1), rows[r].plane, pend));
					continue;
				}
				gather(o, src, ix0, len, g->s, g->W);
			}
		}
	}
}

// patch_row_vec returns a patch row's values at 8 pixels (runs rn, split_runs of 8 or fewer), zero
// outside the image and past the pixels.
SIMD_INLINE __m256 patch_row_vec(const geometry *g, const runs *rn, patch_row row) {
	if (rn->n == 1 && rn->at[1] == 8 && g->s == 1) { // the usual case: one whole vector
		long iy = rn->oy[0] + row.ky, ix0 = rn->ox[0] + row.kx;
		if (iy < 0 || iy >= g->H) return _mm256_setzero_ps();
		if (ix0 >= 0 && ix0 + 8 <= g->W) return _mm256_loadu_ps(row.plane + iy * g->W + ix0);
	}
	const float *pend = row.plane + g->H * g->W;
	if (g->s == 1) { // each run's lanes by a masked load (zeros elsewhere), OR-ed together
		__m256 v = _mm256_setzero_ps();
		for (int i = 0; i < rn->n; i++) {
			long iy = rn->oy[i] + row.ky;
			if (iy < 0 || iy >= g->H) continue;
			long a = rn->at[i], b = rn->at[i + 1], base = rn->ox[i] + row.kx - a; // lane l reads column base + l
			long lo = a > -base ? a : -base, hi = b < g->W - base ? b : g->W - base;
			v = _mm256_or_ps(v, masked(row.plane + iy * g->W + base, window(lo, hi, 0), row.plane, pend));
		}
		return v;
	}
	if (g->s == 2) { // lane l reads column base + 2l
		__m256 v = _mm256_setzero_ps();
		for (int i = 0; i < rn->n; i++) {
			long iy = rn->oy[i] * 2 + row.ky;
			if (iy < 0 || iy >= g->H) continue;
			long a = rn->at[i], b = rn->at[i + 1], base = rn->ox[i] * 2 + row.kx - 2 * a;
			long lo = 2 * a > -base ? 2 * a : -base, hi = 2 * b < g->W - base ? 2 * b : g->W - base;
			v = _mm256_or_ps(v, stride2(row.plane + iy * g->W + base, lo, hi, row.plane, pend));
		}
		return v;
	}
	float t[8] = {0};
	for (int i = 0; i < rn->n; i++) {
		long iy = rn->oy[i] * g->s + row.ky;
		if (iy < 0 || iy >= g->H) continue;
		gather(t + rn->at[i], row.plane + iy * g->W, rn->ox[i] * g->s + row.kx, rn->at[i + 1] - rn->at[i], g->s, g->W);
	}
	return _mm256_loadu_ps(t);
}

#endif

// conv_sgemm computes output pixels [q0, q0+nq) of all K channels of one image's convolution,
// y = w · patches(x), through the epilogue (as sgemm's); y and add point at pixel q0 of channel
// 0, rows OH·OW apart; w is K×(C·k·k).
void ISA_NAME(conv_sgemm)(long C, long H, long W, long K, long k, long s, long p, long d, const float *x,
                          const float *w, long q0, long nq, float *y, const float *scale, const float *shift,
                          const float *add, int relu, int phased) {
	geometry g = make_geometry(C, H, W, k, s, p, d), pg = g;
	if (phased) x = phase_window(&g, x, q0, nq, &pg);
	long rows = C * k * k, ldc = g.OH * g.OW;
	epilogue ep = {scale, shift, add, relu};
	const epilogue *last = scale || shift || add || relu ? &ep : 0;
	float *bp = ISA_NAME(pack_buffer)();
	for (long jc = 0; jc < nq; jc += NC) {
		long nc = nq - jc < NC ? nq - jc : NC;
		for (long pc = 0; pc < rows; pc += KC) {
			long kc = rows - pc < KC ? rows - pc : KC;
			pack_patches(&pg, x, pc, kc, q0 + jc, nc, bp);
			ISA_NAME(gemm_block)(K, nc, kc, w + pc, rows, 1, bp, y + jc, ldc, jc, 1, pc == 0 ? 0 : 1,
			                     pc + kc == rows ? last : 0);
		}
	}
}

// pack_patches_t writes the transposed patch matrix, rows [q0, q0+kc) (output pixels, kc ≤ KC)
// and columns [r0, r0+nc) (patch rows), as panels of NR columns, zero-padded: VL pixels of VL
// patch rows are loaded (row segments of the image) and transposed in registers.
SIMD static void pack_patches_t(const geometry *g, const float *x, long q0, long kc, long r0, long nc, float *dst) {
	runs chunks[KC / VL]; // the pixels, VL at a time
	for (long c = 0; c * VL < kc; c++) split_runs(g, q0 + c * VL, kc - c * VL < VL ? kc - c * VL : VL, &chunks[c]);
	for (long j0 = 0; j0 < nc; j0 += NR) {
		long live = nc - j0 < NR ? nc - j0 : NR; // patch rows of this panel
		patch_row rows[NR];
		for (long j = 0; j < live; j++) rows[j] = patch_row_of(g, x, r0 + j0 + j);
		for (long c = 0; c * VL < kc; c++) {
			const runs *ck = &chunks[c];
			float *d = dst + j0 * kc + c * VL * NR;
			for (long jb = 0; jb < NR; jb += VL) {
				vf v[VL], o[VL];
				SIMD_UNROLL_VL
				for (int jj = 0; jj < VL; jj++)
					v[jj] = jb + jj < live ? patch_row_vec(g, ck, rows[jb + jj]) : vf_zero();
				vf_transpose(v, o);
				for (long t = 0; t < ck->at[ck->n]; t++) vf_store(d + t * NR + jb, o[t]);
			}
		}
	}
}

// conv_filter_grad adds (beta = 1) or writes (beta = 0) dw = dy · patches(x)ᵀ over the output
// pixels [q0, q0+nq) of one image: dy points at pixel q0 of channel 0 (rows OH·OW apart), dw is
// K×(C·k·k).
void ISA_NAME(conv_filter_grad)(long C, long H, long W, long K, long k, long s, long p, long d, const float *x,
                                const float *dy, long q0, long nq, float *dw, float beta) {
	geometry g = make_geometry(C, H, W, k, s, p, d);
	long rows = C * k * k, ld = g.OH * g.OW;
	float *bp = ISA_NAME(pack_buffer)();
	for (long jc = 0; jc < rows; jc += NC) {
		long nc = rows - jc < NC ? rows - jc : NC;
		for (long pc = 0; pc < nq; pc += KC) {
			long kc = nq - pc < KC ? nq - pc : KC;
			pack_patches_t(&g, x, q0 + pc, kc, jc, nc, bp);
			// dy's rows are OH·OW apart, often a power of two: copied together, they no longer
			// compete for the same cache sets.
			float *ap = segkit_grow(&abuf, &abuf_cap, K * kc);
			for (long i = 0; i < K; i++) memcpy(ap + i * kc, dy + i * ld + pc, sizeof(float) * kc);
			ISA_NAME(gemm_block)(K, nc, kc, ap, kc, 1, bp, dw + jc, rows, jc, 1, pc == 0 ? beta : 1, 0);
		}
	}
}
