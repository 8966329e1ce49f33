// An AVX-512 single-precision GEMM for row-major matrices, used in place of OpenBLAS where the
// CPU has AVX-512: the OpenBLAS build here must run its AVX2 (Haswell) kernels, which reach half
// of what AVX-512 does on a core with full-width FMA units.
//
// Layout (BLIS-style): B is packed per KC×NC block into panels of NR columns (zero-padded), A is
// read in place (MR rows, or MR columns when transposed, broadcast one value at a time), and a
// register-blocked MR×NR microkernel keeps its 24 accumulators in zmm registers over KC steps.
// One call runs on the calling thread; callers split work across threads themselves.

#if defined(__x86_64__)

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#define MR 6
#define NR 64
#define KC 256
#define NC 960

int segkit_has_avx512(void) {
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f");
}

// Per-thread packing buffer: concurrent calls come from different threads.
static _Thread_local float *packed;

static float *pack_buffer(void) {
	if (!packed) {
		packed = aligned_alloc(64, sizeof(float) * KC * (NC + NR));
	}
	return packed;
}

static inline __mmask16 tail_mask(long n) {
	if (n >= 16) return 0xFFFF;
	if (n <= 0) return 0;
	return (__mmask16)((1u << n) - 1);
}

// transpose16 sets o[c][r] = r[r][c] for a 16×16 block.
__attribute__((target("avx512f"), always_inline)) static inline void transpose16(const __m512 *r, __m512 *o) {
	__m512 t[16], u[16];
	for (int i = 0; i < 8; i++) { // lane L of t[2i]: r2i[4L], r2i+1[4L], r2i[4L+1], r2i+1[4L+1]
		t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
		t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
	}
	for (int i = 0; i < 4; i++) { // lane L of u[4i+c]: column 4L+c of rows 4i..4i+3
		__m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 2]);
		__m512d c = _mm512_castps_pd(t[4 * i + 1]), d = _mm512_castps_pd(t[4 * i + 3]);
		u[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
		u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
		u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
		u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
	}
	for (int c = 0; c < 4; c++) { // 128-bit lanes: rows 0-3, 4-7 (t[c], t[c+4]) and 8-11, 12-15
		t[c] = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);      // columns c, 8+c
		t[c + 4] = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);  // columns 4+c, 12+c
		t[c + 8] = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
		t[c + 12] = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
	}
	for (int c = 0; c < 4; c++) {
		o[c] = _mm512_shuffle_f32x4(t[c], t[c + 8], 0x88);
		o[c + 8] = _mm512_shuffle_f32x4(t[c], t[c + 8], 0xDD);
		o[c + 4] = _mm512_shuffle_f32x4(t[c + 4], t[c + 12], 0x88);
		o[c + 12] = _mm512_shuffle_f32x4(t[c + 4], t[c + 12], 0xDD);
	}
}

// pack_b writes op(B)[0:kc, 0:nc] as panels of NR columns, each kc×NR, zero-padded on the right.
__attribute__((target("avx512f"))) static void pack_b(int trans, long kc, long nc, const float *b, long ldb,
                                                      float *dst) {
	for (long j0 = 0; j0 < nc; j0 += NR) {
		long w = nc - j0 < NR ? nc - j0 : NR;
		float *d = dst + j0 * kc;
		if (!trans) {
			const float *s = b + j0;
			if (w == NR) {
				for (long k = 0; k < kc; k++, s += ldb, d += NR) {
					_mm512_store_ps(d, _mm512_loadu_ps(s));
					_mm512_store_ps(d + 16, _mm512_loadu_ps(s + 16));
					_mm512_store_ps(d + 32, _mm512_loadu_ps(s + 32));
					_mm512_store_ps(d + 48, _mm512_loadu_ps(s + 48));
				}
			} else {
				__mmask16 m0 = tail_mask(w), m1 = tail_mask(w - 16), m2 = tail_mask(w - 32),
				          m3 = tail_mask(w - 48);
				for (long k = 0; k < kc; k++, s += ldb, d += NR) {
					_mm512_store_ps(d, _mm512_maskz_loadu_ps(m0, s));
					_mm512_store_ps(d + 16, _mm512_maskz_loadu_ps(m1, s + 16));
					_mm512_store_ps(d + 32, _mm512_maskz_loadu_ps(m2, s + 32));
					_mm512_store_ps(d + 48, _mm512_maskz_loadu_ps(m3, s + 48));
				}
			}
			continue;
		}
		// op(B)[k][j] = b[j*ldb + k]: 16×16 blocks, transposed in registers (zeros past w).
		for (long k = 0; k < kc; k += 16) {
			long kn = kc - k < 16 ? kc - k : 16;
			__mmask16 km = tail_mask(kn);
			for (long jb = 0; jb < NR; jb += 16) {
				__m512 r[16], o[16];
				for (int jj = 0; jj < 16; jj++)
					r[jj] = jb + jj < w ? _mm512_maskz_loadu_ps(km, b + (j0 + jb + jj) * ldb + k) : _mm512_setzero_ps();
				transpose16(r, o);
				for (long kk = 0; kk < kn; kk++) _mm512_store_ps(d + (k + kk) * NR + jb, o[kk]);
			}
		}
	}
}

// epilogue is applied to finished rows of C: row i becomes scale[i]·row + shift[i] (scale or shift
// NULL: 1 or 0), plus the matching elements of add (laid out as C; NULL: none), then max(·, 0) when
// relu; a NULL epilogue means none.
typedef struct {
	const float *scale, *shift, *add;
	int relu;
} epilogue;

// kernel computes the mr×NR tile C = alpha·A·Bpanel + beta·C over kc steps, then ep (for the tile
// at row row0, column col0 of the whole C). A's element (i, k) is a[i*ai + k*ak]; n (≤ NR)
// columns of C are written.
__attribute__((target("avx512f"), always_inline)) static inline void kernel(int mr, long kc, const float *a,
                                                                          long ai, long ak, const float *bp,
                                                                          float *c, long ldc, long n, float alpha,
                                                                          float beta, const epilogue *ep,
                                                                          long row0, long col0) {
	__m512 acc[MR][4];
	for (int i = 0; i < mr; i++)
		for (int j = 0; j < 4; j++) acc[i][j] = _mm512_setzero_ps();
	for (long k = 0; k < kc; k++) {
		__m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16), b2 = _mm512_load_ps(bp + 32),
		       b3 = _mm512_load_ps(bp + 48);
		bp += NR;
		for (int i = 0; i < mr; i++) {
			__m512 av = _mm512_set1_ps(a[i * ai + k * ak]);
			acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
			acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
			acc[i][2] = _mm512_fmadd_ps(av, b2, acc[i][2]);
			acc[i][3] = _mm512_fmadd_ps(av, b3, acc[i][3]);
		}
	}
	__m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
	__mmask16 m[4] = {tail_mask(n), tail_mask(n - 16), tail_mask(n - 32), tail_mask(n - 48)};
	for (int i = 0; i < mr; i++) {
		float *ci = c + i * ldc;
		__m512 sc = _mm512_set1_ps(ep && ep->scale ? ep->scale[row0 + i] : 1),
		       sh = _mm512_set1_ps(ep && ep->shift ? ep->shift[row0 + i] : 0);
		const float *add = ep && ep->add ? ep->add + (row0 + i) * ldc + col0 : 0;
		for (int j = 0; j < 4; j++) {
			if (!m[j]) break;
			__m512 r = _mm512_mul_ps(va, acc[i][j]);
			if (beta != 0) r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m[j], ci + 16 * j), r);
			if (ep) {
				r = _mm512_fmadd_ps(r, sc, sh);
				if (add) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m[j], add + 16 * j));
				if (ep->relu) r = _mm512_max_ps(r, _mm512_setzero_ps());
			}
			_mm512_mask_storeu_ps(ci + 16 * j, m[j], r);
		}
	}
}

#define KERNEL(R)                                                                                             \
	__attribute__((target("avx512f"))) static void kernel##R(long kc, const float *a, long ai, long ak,       \
	                                                         const float *bp, float *c, long ldc, long n,     \
	                                                         float alpha, float beta, const epilogue *ep,     \
	                                                         long row0, long col0) {                          \
		kernel(R, kc, a, ai, ak, bp, c, ldc, n, alpha, beta, ep, row0, col0);                                 \
	}
KERNEL(1)
KERNEL(2)
KERNEL(3)
KERNEL(4)
KERNEL(5)
KERNEL(6)

typedef void (*kernel_fn)(long, const float *, long, long, const float *, float *, long, long, float, float,
                          const epilogue *, long, long);
static const kernel_fn kernels[MR + 1] = {0, kernel1, kernel2, kernel3, kernel4, kernel5, kernel6};

// segkit_sgemm computes C = alpha·op(A)·op(B) + beta·C (row-major; op(A) m×k, op(B) k×n), then
// the epilogue (scale, shift, add, relu) when any of them is set. Requires k > 0 and avx512f.
void segkit_sgemm(int transA, int transB, long m, long n, long k, float alpha, const float *a, long lda,
                  const float *b, long ldb, float beta, float *c, long ldc, const float *scale,
                  const float *shift, const float *add, int relu) {
	epilogue ep = {scale, shift, add, relu};
	const epilogue *last = scale || shift || add || relu ? &ep : 0;
	float *bp = pack_buffer();
	long ai = transA ? 1 : lda, ak = transA ? lda : 1;
	for (long jc = 0; jc < n; jc += NC) {
		long nc = n - jc < NC ? n - jc : NC;
		for (long pc = 0; pc < k; pc += KC) {
			long kc = k - pc < KC ? k - pc : KC;
			const float *bs = transB ? b + jc * ldb + pc : b + pc * ldb + jc;
			pack_b(transB, kc, nc, bs, ldb, bp);
			float bt = pc == 0 ? beta : 1;
			const epilogue *e = pc + kc == k ? last : 0;
			for (long jr = 0; jr < nc; jr += NR) { // a packed panel stays in cache across A's rows
				long w = nc - jr < NR ? nc - jr : NR;
				for (long ic = 0; ic < m; ic += MR) {
					int mr = m - ic < MR ? (int)(m - ic) : MR;
					kernels[mr](kc, a + ic * ai + pc * ak, ai, ak, bp + jr * kc, c + ic * ldc + jc + jr, ldc, w, alpha,
					            bt, e, ic, jc + jr);
				}
			}
		}
	}
}


// ---- Implicit-GEMM convolution -------------------------------------------------------------------
//
// The convolution's GEMM with its patch matrix (im2col) never formed: B panels are packed
// straight from the image, which saves writing and re-reading the patch matrix.

typedef struct {
	long C, H, W, k, s, p, d, OH, OW;
} geometry;

// pack_patches writes rows [r0, r0+kc) and columns [q0, q0+nc) (output pixels) of the patch
// matrix of image x as panels of NR columns, zero-padded.
__attribute__((target("avx512f"))) static void pack_patches(const geometry *g, const float *x, long r0, long kc,
                                                           long q0, long nc, float *dst) {
	const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
	const __m512i zero = _mm512_setzero_si512(), width = _mm512_set1_epi32((int)g->W);
	long kk = g->k * g->k;
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
			long row = r0 + r, ch = row / kk, ki = row % kk / g->k, kj = row % g->k;
			const float *plane = x + ch * g->H * g->W;
			float *out = d + r * NR;
			for (long t = w & ~15L; t < NR; t += 16) _mm512_mask_storeu_ps(out + t, ~tail_mask(w - t), _mm512_setzero_ps());
			for (int i = 0; i < ns; i++) {
				long iy = oy[i] * g->s + ki * g->d - g->p, ix0 = ox[i] * g->s + kj * g->d - g->p;
				float *o = out + at[i];
				if (iy < 0 || iy >= g->H) {
					for (long t = 0; t < len[i]; t += 16) _mm512_mask_storeu_ps(o + t, tail_mask(len[i] - t), _mm512_setzero_ps());
					continue;
				}
				const float *src = plane + iy * g->W;
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
					_mm512_mask_storeu_ps(o + t, n, _mm512_maskz_loadu_ps(in & n, src + ix0 + t));
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
	float *bp = pack_buffer();
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
					kernels[mr](kc, w + ic * rows + pc, rows, 1, bp + jr * kc, y + ic * ldc + jc + jr, ldc, n, 1,
					            pc == 0 ? 0 : 1, e, ic, jc + jr);
				}
			}
		}
	}
}

// pack_patches_t writes the transposed patch matrix, rows [q0, q0+kc) (output pixels, kc ≤ KC)
// and columns [r0, r0+nc) (patch rows), as panels of NR columns, zero-padded: 16 pixels of 16
// patch rows are loaded (row segments of the image) and transposed in registers.
__attribute__((target("avx512f"))) static void pack_patches_t(const geometry *g, const float *x, long q0, long kc,
                                                             long r0, long nc, float *dst) {
	const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
	const __m512i zero = _mm512_setzero_si512(), width = _mm512_set1_epi32((int)g->W);
	long kk = g->k * g->k;
	// Every 16-pixel chunk by output row: lanes [l0[c][i], l0[c][i+1]) start at (oy, ox)[c][i].
	enum { CHUNKS = KC / 16 };
	long l0[CHUNKS][17], oy[CHUNKS][16], ox[CHUNKS][16];
	int ns[CHUNKS];
	for (long c = 0; c * 16 < kc; c++) {
		long kn = kc - c * 16 < 16 ? kc - c * 16 : 16;
		ns[c] = 0;
		for (long l = 0; l < kn; ns[c]++) {
			long q = q0 + c * 16 + l;
			int i = ns[c];
			l0[c][i] = l, oy[c][i] = q / g->OW, ox[c][i] = q % g->OW;
			l += g->OW - ox[c][i] < kn - l ? g->OW - ox[c][i] : kn - l;
		}
		l0[c][ns[c]] = kn;
	}
	for (long j0 = 0; j0 < nc; j0 += NR) {
		// The panel's patch rows: their plane and kernel offsets.
		const float *plane[NR];
		long dy[NR], dx[NR];
		for (long j = 0; j < NR && j0 + j < nc; j++) {
			long row = r0 + j0 + j;
			plane[j] = x + row / kk * g->H * g->W;
			dy[j] = row % kk / g->k * g->d - g->p, dx[j] = row % g->k * g->d - g->p;
		}
		for (long c = 0; c * 16 < kc; c++) {
			long kn = l0[c][ns[c]];
			float *d = dst + j0 * kc + c * 16 * NR;
			for (long jb = 0; jb < NR; jb += 16) {
				__m512 v[16], o[16];
				for (int jj = 0; jj < 16; jj++) {
					long j = jb + jj;
					v[jj] = _mm512_setzero_ps();
					if (j0 + j >= nc) continue;
					for (int i = 0; i < ns[c]; i++) {
						long iy = oy[c][i] * g->s + dy[j];
						if (iy < 0 || iy >= g->H) continue;
						long a = l0[c][i], b = l0[c][i + 1];
						long ix0 = ox[c][i] * g->s + dx[j]; // lane a's input column
						const float *src = plane[j] + iy * g->W;
						if (g->s != 1) {
							float t[16];
							_mm512_storeu_ps(t, v[jj]);
							for (long l = a; l < b; l++) {
								long ix = ix0 + (l - a) * g->s;
								t[l] = ix >= 0 && ix < g->W ? src[ix] : 0;
							}
							v[jj] = _mm512_loadu_ps(t);
							continue;
						}
						long base = ix0 - a; // lane l reads column base + l
						__m512i col = _mm512_add_epi32(iota, _mm512_set1_epi32((int)base));
						__mmask16 in = (__mmask16)(((1u << b) - 1) & ~((1u << a) - 1)) &
						               _mm512_cmpge_epi32_mask(col, zero) & _mm512_cmplt_epi32_mask(col, width);
						v[jj] = _mm512_mask_loadu_ps(v[jj], in, src + base);
					}
				}
				transpose16(v, o);
				for (long t = 0; t < kn; t++) _mm512_store_ps(d + t * NR + jb, o[t]);
			}
		}
	}
}

// segkit_conv_filter_grad adds (beta = 1) or writes (beta = 0) dw = dy · patches(x)ᵀ over the
// output pixels [q0, q0+nq) of one image: dy points at pixel q0 of channel 0 (rows OH·OW
// apart), dw is K×(C·k·k).
void segkit_conv_filter_grad(long C, long H, long W, long K, long k, long s, long p, long d, const float *x,
                             const float *dy, long q0, long nq, float *dw, float beta) {
	long oh = (H + 2 * p - d * (k - 1) - 1) / s + 1, ow = (W + 2 * p - d * (k - 1) - 1) / s + 1;
	geometry g = {C, H, W, k, s, p, d, oh, ow};
	long rows = C * k * k, ld = oh * ow;
	float *bp = pack_buffer();
	for (long jc = 0; jc < rows; jc += NC) {
		long nc = rows - jc < NC ? rows - jc : NC;
		for (long pc = 0; pc < nq; pc += KC) {
			long kc = nq - pc < KC ? nq - pc : KC;
			pack_patches_t(&g, x, q0 + pc, kc, jc, nc, bp);
			for (long jr = 0; jr < nc; jr += NR) {
				long n = nc - jr < NR ? nc - jr : NR;
				for (long ic = 0; ic < K; ic += MR) {
					int mr = K - ic < MR ? (int)(K - ic) : MR;
					kernels[mr](kc, dy + ic * ld + pc, ld, 1, bp + jr * kc, dw + ic * rows + jc + jr, rows, n, 1,
					            pc == 0 ? beta : 1, 0, ic, jc + jr);
				}
			}
		}
	}
}

// ---- Winograd F(4×4, 3×3) for 3×3, stride-1, padding-1 convolutions ----------------------------
//
// Each 4×4 output tile is A^T [ (G g G^T) ⊙ (B^T d B) ] A over the 6×6 input tile d: 36 products
// per tile instead of 144. Per block of up to WN tiles: the input transform writes V[ξ][c][tile]
// (already in the GEMM's packed-panel layout), 36 GEMMs M[ξ] = U[ξ]·V[ξ] reuse the microkernel,
// and the output transform writes the tiles. Lanes of the transforms are 16 tiles.

#define WN NR

// Per-thread V and M blocks.
static _Thread_local float *wino_v, *wino_m;
static _Thread_local long wino_vcap, wino_mcap;

static float *grow_aligned(float **buf, long *cap, long n) {
	if (*cap < n) {
		free(*buf);
		*buf = aligned_alloc(64, sizeof(float) * ((n + 15) & ~15L));
		*cap = n;
	}
	return *buf;
}

// segkit_wino_filter writes U[ξ][k][c] = (G g_kc G^T)[ξ] for filters k in [k0, k1).
__attribute__((target("avx512f"))) void segkit_wino_filter(long K, long C, const float *w, float *u, long k0,
                                                           long k1) {
	const __m512i idx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
	                                       _mm512_set1_epi32(9));
	const __m512 q = _mm512_set1_ps(0.25f), s6 = _mm512_set1_ps(1.0f / 6), s12 = _mm512_set1_ps(1.0f / 12),
	             s24 = _mm512_set1_ps(1.0f / 24);
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
		o[1] = _mm512_mul_ps(_mm512_set1_ps(-1.0f / 6), _mm512_add_ps(sum02, b));                             \
		o[2] = _mm512_mul_ps(_mm512_set1_ps(-1.0f / 6), _mm512_sub_ps(sum02, b));                             \
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
				for (int j = 0; j < 6; j++) _mm512_mask_storeu_ps(u + ((i * 6 + j) * K + k) * C + c, lanes, o[j]);
			}
#undef GT
		}
	}
	(void)s6;
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

// segkit_wino_block convolves tiles [t0, t0+nt) (nt ≤ WN; raster order over ⌈H/4⌉×⌈W/4⌉ per
// image, images one after another) of the N×C×H×W x with the transformed filters u (36×K×C),
// writing output channels [k0, k1) of the N×K×H×W y through the per-channel epilogue (scale,
// shift, add, relu; as segkit_sgemm's, add laid out as y). Tiles are read and written a row
// segment at a time (contiguous loads, shuffled into one tile per lane).
__attribute__((target("avx512f"))) void segkit_wino_block(long C, long K, long H, long W, const float *x,
                                                          const float *u, const float *scale, const float *shift,
                                                          const float *add, int relu, float *y, long t0, long nt,
                                                          long k0, long k1) {
	long tw = (W + 3) / 4, th = (H + 3) / 4;
	float *v = grow_aligned(&wino_v, &wino_vcap, 36 * C * WN);
	float *m = grow_aligned(&wino_m, &wino_mcap, 36 * K * WN);
	run runs[16];
	for (long g = 0; g < nt; g += 16) {
		int nr = group_runs(t0 + g, nt - g < 16 ? nt - g : 16, th, tw, W, runs);
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
						z[j] = _mm512_maskz_loadu_ps(rn->in[j], src + 16 * j);
						zb[j] = _mm512_maskz_loadu_ps(rn->in[4 + j], src + 4 + 16 * j);
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
		for (long i0 = k0; i0 < k1; i0 += MR) {
			int mr = k1 - i0 < MR ? (int)(k1 - i0) : MR;
			kernels[mr](C, u + (xi * K + i0) * C, C, 1, v + xi * C * WN, m + (xi * K + i0) * WN, WN, nt, 1, 0, 0, 0, 0);
		}
	for (long g = 0; g < nt; g += 16) {
		int nr = group_runs(t0 + g, nt - g < 16 ? nt - g : 16, th, tw, W, runs);
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
					long at = (rn->n * K + k) * H * W + (rn->oy + a) * W + rn->col + 1;
					for (int j = 0; j < 4; j++) {
						__m512 r = z[j];
						if (add) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(rn->out[j], add + at + 16 * j));
						if (relu) r = _mm512_max_ps(r, _mm512_setzero_ps());
						_mm512_mask_storeu_ps(y + at + 16 * j, rn->out[j], r);
					}
				}
			}
		}
	}
}

#else

int segkit_has_avx512(void) { return 0; }
void segkit_sgemm(int transA, int transB, long m, long n, long k, float alpha, const float *a, long lda,
                  const float *b, long ldb, float beta, float *c, long ldc, const float *scale,
                  const float *shift, const float *add, int relu) {}
void segkit_wino_filter(long K, long C, const float *w, float *u, long k0, long k1) {}
void segkit_conv_sgemm(long C, long H, long W, long K, long k, long s, long p, long d, const float *x,
                       const float *w, long q0, long nq, float *y, const float *scale, const float *shift,
                       const float *add, int relu) {}
void segkit_conv_filter_grad(long C, long H, long W, long K, long k, long s, long p, long d, const float *x,
                             const float *dy, long q0, long nq, float *dw, float beta) {}
void segkit_wino_block(long C, long K, long H, long W, const float *x, const float *u, const float *scale,
                       const float *shift, const float *add, int relu, float *y, long t0, long nt, long k0,
                       long k1) {}

#endif
