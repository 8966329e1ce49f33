//go:build amd64

// An AVX-512 single-precision GEMM for row-major matrices, used in place of OpenBLAS where the
// CPU has AVX-512: the OpenBLAS build here must run its AVX2 (Haswell) kernels, which reach half
// of what AVX-512 does on a core with full-width FMA units.
//
// Layout (BLIS-style): B is packed per KC×NC block into panels of NR columns (zero-padded), A is
// read in place (MR rows, or MR columns when transposed, broadcast one value at a time), and a
// register-blocked MR×NR microkernel keeps its 24 accumulators in zmm registers over KC steps.
// One call runs on the calling thread; callers split work across threads themselves.

#include <stdlib.h>

#include "gemm_avx512.h"
#include "kernels.h"

// Per-thread packing buffer: concurrent calls come from different threads.
static _Thread_local float *packed;
static _Thread_local long packed_cap;

float *segkit_avx512_pack_buffer(void) { return segkit_grow(&packed, &packed_cap, KC * (NC + NR)); }

// pack_b writes op(B)[0:kc, 0:nc] as panels of NR columns, each kc×NR, zero-padded on the right.
__attribute__((target("avx512f"))) static void pack_b(int trans, long kc, long nc, const float *b, long ldb,
                                                      float *dst) {
	for (long j0 = 0; j0 < nc; j0 += NR) {
		long w = nc - j0 < NR ? nc - j0 : NR;
		float *d = dst + j0 * kc;
		if (!trans) {
			const float *s = b + j0;
			__mmask16 m0 = tail_mask(w), m1 = tail_mask(w - 16), m2 = tail_mask(w - 32), m3 = tail_mask(w - 48);
			for (long k = 0; k < kc; k++, s += ldb, d += NR) {
				_mm512_store_ps(d, load16(m0, s));
				_mm512_store_ps(d + 16, load16(m1, s + 16));
				_mm512_store_ps(d + 32, load16(m2, s + 32));
				_mm512_store_ps(d + 48, load16(m3, s + 48));
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
					r[jj] = jb + jj < w ? load16(km, b + (j0 + jb + jj) * ldb + k) : _mm512_setzero_ps();
				transpose16(r, o);
				for (long kk = 0; kk < kn; kk++) _mm512_store_ps(d + (k + kk) * NR + jb, o[kk]);
			}
		}
	}
}

// kernel computes the mr×NR tile C = alpha·A·Bpanel + beta·C over kc steps, then the epilogue
// (for the tile at row row0, column col0 of the whole C); A's element (i, k) is a[i*ai + k*ak];
// n (≤ NR) columns of C are written. Instantiated for each constant mr.
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
			if (beta != 0) r = _mm512_fmadd_ps(vb, load16(m[j], ci + 16 * j), r);
			if (ep) {
				r = _mm512_fmadd_ps(r, sc, sh);
				if (add) r = _mm512_add_ps(r, load16(m[j], add + 16 * j));
				if (ep->relu) r = _mm512_max_ps(r, _mm512_setzero_ps());
			}
			store16(ci + 16 * j, m[j], r);
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

typedef void (*kernel_fn)(long kc, const float *a, long ai, long ak, const float *bp, float *c, long ldc, long n,
                          float alpha, float beta, const epilogue *ep, long row0, long col0);
static const kernel_fn kernels[MR + 1] = {0, kernel1, kernel2, kernel3, kernel4, kernel5, kernel6};

void segkit_avx512_gemm_block(long m, long nc, long kc, const float *a, long ai, long ak, const float *bp, float *c,
                       long ldc, long col0, float alpha, float beta, const epilogue *ep) {
	for (long jr = 0; jr < nc; jr += NR) { // a packed panel stays in cache across A's rows
		long w = nc - jr < NR ? nc - jr : NR;
		for (long ic = 0; ic < m; ic += MR) {
			int mr = m - ic < MR ? (int)(m - ic) : MR;
			kernels[mr](kc, a + ic * ai, ai, ak, bp + jr * kc, c + ic * ldc + jr, ldc, w, alpha, beta, ep, ic, col0 + jr);
		}
	}
}

// segkit_avx512_sgemm computes C = alpha·op(A)·op(B) + beta·C (row-major; op(A) m×k, op(B) k×n), then
// the epilogue (scale, shift, add, relu) when any of them is set. Requires k > 0 and avx512f.
void segkit_avx512_sgemm(int transA, int transB, long m, long n, long k, float alpha, const float *a, long lda,
                  const float *b, long ldb, float beta, float *c, long ldc, const float *scale,
                  const float *shift, const float *add, int relu) {
	epilogue ep = {scale, shift, add, relu};
	const epilogue *last = scale || shift || add || relu ? &ep : 0;
	float *bp = segkit_avx512_pack_buffer();
	long ai = transA ? 1 : lda, ak = transA ? lda : 1;
	for (long jc = 0; jc < n; jc += NC) {
		long nc = n - jc < NC ? n - jc : NC;
		for (long pc = 0; pc < k; pc += KC) {
			long kc = k - pc < KC ? k - pc : KC;
			const float *bs = transB ? b + jc * ldb + pc : b + pc * ldb + jc;
			pack_b(transB, kc, nc, bs, ldb, bp);
			segkit_avx512_gemm_block(m, nc, kc, a + pc * ak, ai, ak, bp, c + jc, ldc, jc, alpha, pc == 0 ? beta : 1,
			                  pc + kc == k ? last : 0);
		}
	}
}
