//go:build amd64

// An AVX2+FMA single-precision GEMM for row-major matrices, for CPUs without AVX-512 (most
// laptops and many servers): the same BLIS-style layout as sgemm_avx512.c with a 6×16 register
// tile. OpenBLAS's Haswell kernel is as fast per call, but ours packs convolution patches straight
// from the image and fuses the epilogue, and mirrors the AVX-512 GEMM bit for bit.

#include <stdlib.h>

#include "gemm_avx2.h"
#include "kernels.h"

// Per-thread packing buffer: concurrent calls come from different threads.
static _Thread_local float *packed;
static _Thread_local long packed_cap;

float *segkit_avx2_pack_buffer(void) { return segkit_grow(&packed, &packed_cap, KC * (NC + NR)); }

// pack_b writes op(B)[0:kc, 0:nc] as panels of NR columns, each kc×NR, zero-padded on the right.
AVX2 static void pack_b(int trans, long kc, long nc, const float *b, long ldb, float *dst) {
	for (long j0 = 0; j0 < nc; j0 += NR) {
		long w = nc - j0 < NR ? nc - j0 : NR;
		float *d = dst + j0 * kc;
		if (!trans) {
			const float *s = b + j0;
			if (w == NR) {
				for (long k = 0; k < kc; k++, s += ldb, d += NR) {
					_mm256_store_ps(d, _mm256_loadu_ps(s));
					_mm256_store_ps(d + 8, _mm256_loadu_ps(s + 8));
				}
				continue;
			}
			for (long k = 0; k < kc; k++, s += ldb, d += NR)
				for (long j = 0; j < NR; j++) d[j] = j < w ? s[j] : 0;
			continue;
		}
		// op(B)[k][j] = b[j*ldb + k]: 8×8 blocks, transposed in registers (zeros past w and kc).
		for (long k = 0; k < kc; k += 8) {
			long kn = kc - k < 8 ? kc - k : 8;
			for (long jb = 0; jb < NR; jb += 8) {
				__m256 r[8], o[8];
				for (int jj = 0; jj < 8; jj++) {
					const float *s = b + (j0 + jb + jj) * ldb + k;
					if (jb + jj >= w) {
						r[jj] = _mm256_setzero_ps();
					} else if (kn == 8) {
						r[jj] = _mm256_loadu_ps(s);
					} else {
						float t[8] = {0};
						for (long kk = 0; kk < kn; kk++) t[kk] = s[kk];
						r[jj] = _mm256_loadu_ps(t);
					}
				}
				transpose8(r, o);
				for (long kk = 0; kk < kn; kk++) _mm256_store_ps(d + (k + kk) * NR + jb, o[kk]);
			}
		}
	}
}

// finish writes one 8-wide vector of a C row through beta and the epilogue, in the AVX-512
// kernel's operations; n (≤ 8) of its elements are stored.
AVX2_INLINE void finish(float *ci, __m256 acc, long n, __m256 va, float beta, __m256 vb, const epilogue *ep,
                        __m256 sc, __m256 sh, const float *add, int relu) {
	float t[8];
	__m256 r = _mm256_mul_ps(va, acc);
	if (n < 8) {
		if (beta != 0 || add) {
			for (long j = 0; j < 8; j++) t[j] = j < n && beta != 0 ? ci[j] : 0;
			if (beta != 0) r = _mm256_fmadd_ps(vb, _mm256_loadu_ps(t), r);
		}
	} else if (beta != 0) {
		r = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci), r);
	}
	if (ep) {
		r = _mm256_fmadd_ps(r, sc, sh);
		if (add) {
			if (n < 8) {
				for (long j = 0; j < 8; j++) t[j] = j < n ? add[j] : 0;
				r = _mm256_add_ps(r, _mm256_loadu_ps(t));
			} else {
				r = _mm256_add_ps(r, _mm256_loadu_ps(add));
			}
		}
		if (relu) r = _mm256_max_ps(r, _mm256_setzero_ps());
	}
	if (n >= 8) {
		_mm256_storeu_ps(ci, r);
		return;
	}
	_mm256_storeu_ps(t, r);
	for (long j = 0; j < n; j++) ci[j] = t[j];
}

// kernel computes the mr×NR tile C = alpha·A·Bpanel + beta·C over kc steps, then the epilogue
// (for the tile at row row0, column col0 of the whole C); A's element (i, k) is a[i*ai + k*ak];
// n (≤ NR) columns of C are written. Instantiated for each constant mr.
AVX2_INLINE void kernel(int mr, long kc, const float *a, long ai, long ak, const float *bp, float *c, long ldc, long n,
                        float alpha, float beta, const epilogue *ep, long row0, long col0) {
	__m256 acc[MR][2];
	for (int i = 0; i < mr; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
#pragma GCC unroll 4
	for (long k = 0; k < kc; k++) {
		__m256 b0 = _mm256_load_ps(bp), b1 = _mm256_load_ps(bp + 8);
		bp += NR;
		for (int i = 0; i < mr; i++) {
			// set1, not _mm256_broadcast_ss: GCC treats that builtin's pointer as escaping memory
			// and then stores every accumulator to the stack each k.
			__m256 av = _mm256_set1_ps(a[i * ai + k * ak]);
			acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
			acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
		}
	}
	__m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
	for (int i = 0; i < mr; i++) {
		float *ci = c + i * ldc;
		__m256 sc = _mm256_set1_ps(ep && ep->scale ? ep->scale[row0 + i] : 1),
		       sh = _mm256_set1_ps(ep && ep->shift ? ep->shift[row0 + i] : 0);
		const float *add = ep && ep->add ? ep->add + (row0 + i) * ldc + col0 : 0;
		int relu = ep && ep->relu;
		finish(ci, acc[i][0], n, va, beta, vb, ep, sc, sh, add, relu);
		if (n > 8) finish(ci + 8, acc[i][1], n - 8, va, beta, vb, ep, sc, sh, add ? add + 8 : 0, relu);
	}
}

#define KERNEL(R)                                                                                             \
	AVX2 static void kernel##R(long kc, const float *a, long ai, long ak, const float *bp, float *c, long ldc, \
	                           long n, float alpha, float beta, const epilogue *ep, long row0, long col0) {    \
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

void segkit_avx2_gemm_block(long m, long nc, long kc, const float *a, long ai, long ak, const float *bp, float *c,
                            long ldc, long col0, float alpha, float beta, const epilogue *ep) {
	for (long jr = 0; jr < nc; jr += NR) { // a packed panel stays in L1 across A's rows
		long w = nc - jr < NR ? nc - jr : NR;
		for (long ic = 0; ic < m; ic += MR) {
			int mr = m - ic < MR ? (int)(m - ic) : MR;
			kernels[mr](kc, a + ic * ai, ai, ak, bp + jr * kc, c + ic * ldc + jr, ldc, w, alpha, beta, ep, ic, col0 + jr);
		}
	}
}

// segkit_avx2_sgemm is segkit_avx512_sgemm (sgemm_avx512.c) on AVX2+FMA. Requires k > 0.
void segkit_avx2_sgemm(int transA, int transB, long m, long n, long k, float alpha, const float *a, long lda,
                       const float *b, long ldb, float beta, float *c, long ldc, const float *scale,
                       const float *shift, const float *add, int relu) {
	epilogue ep = {scale, shift, add, relu};
	const epilogue *last = scale || shift || add || relu ? &ep : 0;
	float *bp = segkit_avx2_pack_buffer();
	long ai = transA ? 1 : lda, ak = transA ? lda : 1;
	for (long jc = 0; jc < n; jc += NC) {
		long nc = n - jc < NC ? n - jc : NC;
		for (long pc = 0; pc < k; pc += KC) {
			long kc = k - pc < KC ? k - pc : KC;
			const float *bs = transB ? b + jc * ldb + pc : b + pc * ldb + jc;
			pack_b(transB, kc, nc, bs, ldb, bp);
			segkit_avx2_gemm_block(m, nc, kc, a + pc * ak, ai, ak, bp, c + jc, ldc, jc, alpha, pc == 0 ? beta : 1,
			                       pc + kc == k ? last : 0);
		}
	}
}
