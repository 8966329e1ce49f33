//go:build amd64

// Implicit-GEMM convolution on the AVX-512 GEMM (sgemm_avx512.c): the convolution's GEMM with
// its patch matrix (im2col) never formed; B panels are packed straight from the image, which
// saves writing and re-reading the patch matrix.

#include "simd_avx512.h"
#include "gemm.h"
#include "conv_geometry.h"
#include "kernels.h"

// Per-thread copy of the filter gradient's A rows.
static _Thread_local float *abuf;
static _Thread_local long abuf_cap;

// pack_patches writes rows [r0, r0+kc) and columns [q0, q0+nc) (output pixels) of the patch
// matrix of image x as panels of NR columns, zero-padded.
__attribute__((target("avx512f"))) static void pack_patches(const geometry *g, const float *x, long r0, long kc,
                                                           long q0, long nc, float *dst) {
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

// segkit_avx512_conv_sgemm computes output pixels [q0, q0+nq) of all K channels of one image's
// convolution, y = w · patches(x), through the epilogue (as segkit_avx512_sgemm's); y and add point
// at pixel q0 of channel 0, rows OH·OW apart; w is K×(C·k·k).
void segkit_avx512_conv_sgemm(long C, long H, long W, long K, long k, long s, long p, long d, const float *x,
                       const float *w, long q0, long nq, float *y, const float *scale, const float *shift,
                       const float *add, int relu, int phased) {
	geometry g = make_geometry(C, H, W, k, s, p, d), pg = g;
	if (phased) x = phase_window(&g, x, q0, nq, &pg);
	long rows = C * k * k, ldc = g.OH * g.OW;
	epilogue ep = {scale, shift, add, relu};
	const epilogue *last = scale || shift || add || relu ? &ep : 0;
	float *bp = segkit_avx512_pack_buffer();
	for (long jc = 0; jc < nq; jc += NC) {
		long nc = nq - jc < NC ? nq - jc : NC;
		for (long pc = 0; pc < rows; pc += KC) {
			long kc = rows - pc < KC ? rows - pc : KC;
			pack_patches(&pg, x, pc, kc, q0 + jc, nc, bp);
			segkit_avx512_gemm_block(K, nc, kc, w + pc, rows, 1, bp, y + jc, ldc, jc, 1, pc == 0 ? 0 : 1,
			                  pc + kc == rows ? last : 0);
		}
	}
}

// patch_row16 returns a patch row's values at 16 pixels (runs rn, split_runs of 16 or fewer),
// zero outside the image and past the pixels.
__attribute__((target("avx512f"), always_inline)) static inline __m512 patch_row16(const geometry *g, const runs *rn,
                                                                                 patch_row row) {
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

// pack_patches_t writes the transposed patch matrix, rows [q0, q0+kc) (output pixels, kc ≤ KC)
// and columns [r0, r0+nc) (patch rows), as panels of NR columns, zero-padded: 16 pixels of 16
// patch rows are loaded (row segments of the image) and transposed in registers.
__attribute__((target("avx512f"))) static void pack_patches_t(const geometry *g, const float *x, long q0, long kc,
                                                             long r0, long nc, float *dst) {
	runs chunks[KC / 16]; // the pixels, 16 at a time
	for (long c = 0; c * 16 < kc; c++) split_runs(g, q0 + c * 16, kc - c * 16 < 16 ? kc - c * 16 : 16, &chunks[c]);
	for (long j0 = 0; j0 < nc; j0 += NR) {
		long live = nc - j0 < NR ? nc - j0 : NR; // patch rows of this panel
		patch_row rows[NR];
		for (long j = 0; j < live; j++) rows[j] = patch_row_of(g, x, r0 + j0 + j);
		for (long c = 0; c * 16 < kc; c++) {
			const runs *ck = &chunks[c];
			float *d = dst + j0 * kc + c * 16 * NR;
			for (long jb = 0; jb < NR; jb += 16) {
				__m512 v[16], o[16];
#pragma GCC unroll 16
				for (int jj = 0; jj < 16; jj++)
					v[jj] = jb + jj < live ? patch_row16(g, ck, rows[jb + jj]) : _mm512_setzero_ps();
				vf_transpose(v, o);
				for (long t = 0; t < ck->at[ck->n]; t++) _mm512_store_ps(d + t * NR + jb, o[t]);
			}
		}
	}
}

// segkit_avx512_conv_filter_grad adds (beta = 1) or writes (beta = 0) dw = dy · patches(x)ᵀ over the
// output pixels [q0, q0+nq) of one image: dy points at pixel q0 of channel 0 (rows OH·OW
// apart), dw is K×(C·k·k).
__attribute__((target("avx512f"))) void segkit_avx512_conv_filter_grad(long C, long H, long W, long K, long k, long s,
                                                                long p, long d, const float *x, const float *dy,
                                                                long q0, long nq, float *dw, float beta) {
	geometry g = make_geometry(C, H, W, k, s, p, d);
	long rows = C * k * k, ld = g.OH * g.OW;
	float *bp = segkit_avx512_pack_buffer();
	for (long jc = 0; jc < rows; jc += NC) {
		long nc = rows - jc < NC ? rows - jc : NC;
		for (long pc = 0; pc < nq; pc += KC) {
			long kc = nq - pc < KC ? nq - pc : KC;
			pack_patches_t(&g, x, q0 + pc, kc, jc, nc, bp);
			// dy's rows are OH·OW apart, often a power of two: copied together, they no longer
			// compete for the same cache sets.
			float *ap = segkit_grow(&abuf, &abuf_cap, K * kc);
			for (long i = 0; i < K; i++)
				for (long t = 0; t < kc; t += 16)
					store16(ap + i * kc + t, tail_mask(kc - t), load16(tail_mask(kc - t), dy + i * ld + pc + t));
			segkit_avx512_gemm_block(K, nc, kc, ap, kc, 1, bp, dw + jc, rows, jc, 1, pc == 0 ? beta : 1, 0);
		}
	}
}
