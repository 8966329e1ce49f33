// Implicit-GEMM convolution on the AVX-512 GEMM (sgemm_avx512.c): the convolution's GEMM with
// its patch matrix (im2col) never formed; B panels are packed straight from the image, which
// saves writing and re-reading the patch matrix.

#if defined(__x86_64__)

#include "gemm_avx512.h"

typedef struct {
	long C, H, W, k, s, p, d, OH, OW;
} geometry;

// Per-thread copy of the filter gradient's A rows.
static _Thread_local float *abuf;
static _Thread_local long abuf_cap;

// pack_patches writes rows [r0, r0+kc) and columns [q0, q0+nc) (output pixels) of the patch
// matrix of image x as panels of NR columns, zero-padded.
__attribute__((target("avx512f"))) static void pack_patches(const geometry *g, const float *x, long r0, long kc,
                                                           long q0, long nc, float *dst) {
	const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
	const __m512i zero = _mm512_setzero_si512(), width = _mm512_set1_epi32((int)g->W);
	long kk = g->k * g->k;
	// The rows' planes and kernel offsets, once (divisions are slow).
	const float *plane[KC];
	long dy[KC], dx[KC];
	for (long r = 0; r < kc; r++) {
		long row = r0 + r;
		plane[r] = x + row / kk * g->H * g->W;
		dy[r] = row % kk / g->k * g->d - g->p, dx[r] = row % g->k * g->d - g->p;
	}
	for (long j0 = 0; j0 < nc; j0 += NR) {
		long w = nc - j0 < NR ? nc - j0 : NR;
		float *d = dst + j0 * kc;
		// The panel's columns by output row: segments [at, at+len) starting at (oy, ox).
		long at[NR + 1], oy[NR + 1], ox[NR + 1], len[NR + 1];
		int ns = 0;
		for (long jj = 0; jj < w; ns++) {
			long q = q0 + j0 + jj;
			at[ns] = jj, oy[ns] = q / g->OW, ox[ns] = q % g->OW;
			len[ns] = g->OW - ox[ns] < w - jj ? g->OW - ox[ns] : w - jj;
			jj += len[ns];
		}
		for (long r = 0; r < kc; r++) {
			float *out = d + r * NR;
			for (long t = w & ~15L; t < NR; t += 16) store16(out + t, ~tail_mask(w - t), _mm512_setzero_ps());
			for (int i = 0; i < ns; i++) {
				long iy = oy[i] * g->s + dy[r], ix0 = ox[i] * g->s + dx[r];
				float *o = out + at[i];
				if (iy < 0 || iy >= g->H) {
					for (long t = 0; t < len[i]; t += 16) store16(o + t, tail_mask(len[i] - t), _mm512_setzero_ps());
					continue;
				}
				const float *src = plane[r] + iy * g->W;
				if (g->s != 1) {
					for (long t = 0; t < len[i]; t++) {
						long ix = ix0 + t * g->s;
						o[t] = ix >= 0 && ix < g->W ? src[ix] : 0;
					}
					continue;
				}
				for (long t = 0; t < len[i]; t += 16) {
					__m512i c = _mm512_add_epi32(iota, _mm512_set1_epi32((int)(ix0 + t)));
					__mmask16 in = _mm512_cmpge_epi32_mask(c, zero) & _mm512_cmplt_epi32_mask(c, width);
					__mmask16 n = tail_mask(len[i] - t);
					store16(o + t, n, load16(in & n, src + ix0 + t));
				}
			}
		}
	}
}

// segkit_conv_sgemm computes output pixels [q0, q0+nq) of all K channels of one image's
// convolution, y = w · patches(x), through the epilogue (as segkit_sgemm's); y and add point
// at pixel q0 of channel 0, rows OH·OW apart; w is K×(C·k·k).
void segkit_conv_sgemm(long C, long H, long W, long K, long k, long s, long p, long d, const float *x,
                       const float *w, long q0, long nq, float *y, const float *scale, const float *shift,
                       const float *add, int relu) {
	long oh = (H + 2 * p - d * (k - 1) - 1) / s + 1, ow = (W + 2 * p - d * (k - 1) - 1) / s + 1;
	geometry g = {C, H, W, k, s, p, d, oh, ow};
	long rows = C * k * k, ldc = oh * ow;
	epilogue ep = {scale, shift, add, relu};
	const epilogue *last = scale || shift || add || relu ? &ep : 0;
	float *bp = segkit_pack_buffer();
	for (long jc = 0; jc < nq; jc += NC) {
		long nc = nq - jc < NC ? nq - jc : NC;
		for (long pc = 0; pc < rows; pc += KC) {
			long kc = rows - pc < KC ? rows - pc : KC;
			pack_patches(&g, x, pc, kc, q0 + jc, nc, bp);
			const epilogue *e = pc + kc == rows ? last : 0;
			for (long jr = 0; jr < nc; jr += NR) {
				long n = nc - jr < NR ? nc - jr : NR;
				for (long ic = 0; ic < K; ic += MR) {
					int mr = K - ic < MR ? (int)(K - ic) : MR;
					segkit_kernels[mr](kc, w + ic * rows + pc, rows, 1, bp + jr * kc, y + ic * ldc + jc + jr, ldc, n, 1,
					            pc == 0 ? 0 : 1, e, ic, jc + jr);
				}
			}
		}
	}
}

// A chunk: 16 consecutive output pixels, by output row: lanes [l0[i], l0[i+1]) start at
// (oy[i], ox[i]); n pixels in all.
typedef struct {
	long l0[17], oy[16], ox[16];
	int ns, n;
} chunk;

// patch_row16 returns a patch row's values (input plane, kernel offsets dy, dx) at a chunk's
// pixels, zero outside the image and past the chunk's pixels.
__attribute__((target("avx512f"), always_inline)) static inline __m512 patch_row16(const geometry *g, const chunk *ck,
                                                                                 const float *plane, long dy,
                                                                                 long dx) {
	const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
	__m512 v = _mm512_setzero_ps();
	for (int i = 0; i < ck->ns; i++) {
		long iy = ck->oy[i] * g->s + dy;
		if (iy < 0 || iy >= g->H) continue;
		long a = ck->l0[i], b = ck->l0[i + 1];
		long ix0 = ck->ox[i] * g->s + dx; // lane a's input column
		const float *src = plane + iy * g->W;
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
		v = _mm512_mask_loadu_ps(v, in, src + base);
	}
	return v;
}

// pack_patches_t writes the transposed patch matrix, rows [q0, q0+kc) (output pixels, kc ≤ KC)
// and columns [r0, r0+nc) (patch rows), as panels of NR columns, zero-padded: 16 pixels of 16
// patch rows are loaded (row segments of the image) and transposed in registers.
__attribute__((target("avx512f"))) static void pack_patches_t(const geometry *g, const float *x, long q0, long kc,
                                                             long r0, long nc, float *dst) {
	long kk = g->k * g->k;
	chunk chunks[KC / 16];
	for (long c = 0; c * 16 < kc; c++) {
		chunk *ck = &chunks[c];
		ck->n = kc - c * 16 < 16 ? (int)(kc - c * 16) : 16;
		ck->ns = 0;
		for (long l = 0; l < ck->n; ck->ns++) {
			long q = q0 + c * 16 + l;
			int i = ck->ns;
			ck->l0[i] = l, ck->oy[i] = q / g->OW, ck->ox[i] = q % g->OW;
			l += g->OW - ck->ox[i] < ck->n - l ? g->OW - ck->ox[i] : ck->n - l;
		}
		ck->l0[ck->ns] = ck->n;
	}
	for (long j0 = 0; j0 < nc; j0 += NR) {
		// The panel's patch rows: their plane and kernel offsets (divisions once).
		const float *plane[NR];
		long dy[NR], dx[NR];
		for (long j = 0; j < NR; j++) {
			long row = r0 + j0 + j < r0 + nc ? r0 + j0 + j : r0; // past the end: any row (zeroed below)
			plane[j] = x + row / kk * g->H * g->W;
			dy[j] = row % kk / g->k * g->d - g->p, dx[j] = row % g->k * g->d - g->p;
		}
		long live = nc - j0; // patch rows of this panel
		for (long c = 0; c * 16 < kc; c++) {
			const chunk *ck = &chunks[c];
			float *d = dst + j0 * kc + c * 16 * NR;
			for (long jb = 0; jb < NR; jb += 16) {
				__m512 v[16], o[16];
#pragma GCC unroll 16
				for (int jj = 0; jj < 16; jj++)
					v[jj] = jb + jj < live ? patch_row16(g, ck, plane[jb + jj], dy[jb + jj], dx[jb + jj])
					                       : _mm512_setzero_ps();
				transpose16(v, o);
				for (long t = 0; t < ck->n; t++) _mm512_store_ps(d + t * NR + jb, o[t]);
			}
		}
	}
}

// segkit_conv_filter_grad adds (beta = 1) or writes (beta = 0) dw = dy · patches(x)ᵀ over the
// output pixels [q0, q0+nq) of one image: dy points at pixel q0 of channel 0 (rows OH·OW
// apart), dw is K×(C·k·k).
__attribute__((target("avx512f"))) void segkit_conv_filter_grad(long C, long H, long W, long K, long k, long s, long p, long d, const float *x,
                             const float *dy, long q0, long nq, float *dw, float beta) {
	long oh = (H + 2 * p - d * (k - 1) - 1) / s + 1, ow = (W + 2 * p - d * (k - 1) - 1) / s + 1;
	geometry g = {C, H, W, k, s, p, d, oh, ow};
	long rows = C * k * k, ld = oh * ow;
	float *bp = segkit_pack_buffer();
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
			for (long jr = 0; jr < nc; jr += NR) {
				long n = nc - jr < NR ? nc - jr : NR;
				for (long ic = 0; ic < K; ic += MR) {
					int mr = K - ic < MR ? (int)(K - ic) : MR;
					segkit_kernels[mr](kc, ap + ic * kc, kc, 1, bp + jr * kc, dw + ic * rows + jc + jr, rows, n, 1,
					            pc == 0 ? beta : 1, 0, ic, jc + jr);
				}
			}
		}
	}
}

#else

void segkit_conv_sgemm(long C, long H, long W, long K, long k, long s, long p, long d, const float *x,
                       const float *w, long q0, long nq, float *y, const float *scale, const float *shift,
                       const float *add, int relu) {}
void segkit_conv_filter_grad(long C, long H, long W, long K, long k, long s, long p, long d, const float *x,
                             const float *dy, long q0, long nq, float *dw, float beta) {}

#endif
