// A single-precision GEMM for row-major matrices, written once for both instruction sets
// (sgemm_avx2.c and sgemm_avx512.c define SIMD_H and include this). The AVX-512 one runs in place
// of OpenBLAS, whose build here runs its AVX2 (Haswell) kernels at half of what AVX-512 reaches on
// a core with full-width FMA units; the AVX2 one is as fast as OpenBLAS's per call, but packs
// convolution patches straight from the image, fuses the epilogue and agrees with the AVX-512
// one bit for bit.
//
// Layout (BLIS-style): B is packed per KC×NC block into panels of NR columns (zero-padded), A is
// read in place (MR rows, or MR columns when transposed, broadcast one value at a time), and a
// register-blocked MR×NR microkernel keeps its accumulators in registers over KC steps. One call
// runs on the calling thread; callers split work across threads themselves.

#include SIMD_H

#include "gemm.h"

// Per-thread packing buffer: concurrent calls come from different threads.
static _Thread_local float *packed;
static _Thread_local long packed_cap;

float *ISA_NAME(pack_buffer)(void) { return segkit_grow(&packed, &packed_cap, KC * (NC + NR)); }

// pack_b writes op(B)[0:kc, 0:nc] as panels of NR columns, each kc×NR, zero-padded on the right.
SIMD static void pack_b(int trans, long kc, long nc, const float *b, long ldb, float *dst) {
	for (long j0 = 0; j0 < nc; j0 += NR) {
		long w = nc - j0 < NR ? nc - j0 : NR;
		float *d = dst + j0 * kc;
		if (!trans) {
			const float *s = b + j0;
			for (long k = 0; k < kc; k++, s += ldb, d += NR)
				for (int j = 0; j < NV; j++) vf_store(d + VL * j, vf_load_first(s + VL * j, w - VL * j));
			continue;
		}
		// op(B)[k][j] = b[j*ldb + k]: VL×VL blocks, transposed in registers (zeros past w and kc).
		for (long k = 0; k < kc; k += VL) {
			long kn = kc - k < VL ? kc - k : VL;
			for (long jb = 0; jb < NR; jb += VL) {
				vf r[VL], o[VL];
				for (int jj = 0; jj < VL; jj++)
					r[jj] = jb + jj < w ? vf_load_first(b + (j0 + jb + jj) * ldb + k, kn) : vf_zero();
				vf_transpose(r, o);
				for (long kk = 0; kk < kn; kk++) vf_store(d + (k + kk) * NR + jb, o[kk]);
			}
		}
	}
}

// finish writes one vector of a C row through beta and the epilogue; n of its elements are
// stored (all VL for n ≥ VL).
SIMD_INLINE void finish(float *ci, vf acc, long n, vf va, float beta, vf vb, const epilogue *ep, vf sc, vf sh,
                        const float *add, int relu) {
	vf r = vf_mul(va, acc);
	if (beta != 0) r = vf_fmadd(vb, vf_load_first(ci, n), r);
	if (ep) {
		r = vf_fmadd(r, sc, sh);
		if (add) r = vf_add(r, vf_load_first(add, n));
		if (relu) r = vf_max(r, vf_zero());
	}
	vf_store_first(ci, n, r);
}

// kernel computes the mr×NR tile C = alpha·A·Bpanel + beta·C over kc steps, then the epilogue
// (for the tile at row row0, column col0 of the whole C); A's element (i, k) is a[i*ai + k*ak];
// n (≤ NR) columns of C are written. Instantiated for each constant mr.
SIMD_INLINE void kernel(int mr, long kc, const float *a, long ai, long ak, const float *bp, float *c, long ldc, long n,
                        float alpha, float beta, const epilogue *ep, long row0, long col0) {
	vf acc[MR][NV];
	for (int i = 0; i < mr; i++)
		for (int j = 0; j < NV; j++) acc[i][j] = vf_zero();
#if SIMD_AVX2 // measured faster there; the AVX-512 loop is long enough as it is
#pragma GCC unroll 4
#endif
	for (long k = 0; k < kc; k++) {
		vf bv[NV];
		for (int j = 0; j < NV; j++) bv[j] = vf_load(bp + VL * j);
		bp += NR;
		for (int i = 0; i < mr; i++) {
			// set1, not a broadcast from memory: GCC treats that builtin's pointer as escaping
			// memory and then stores every accumulator to the stack each k.
			vf av = vf_set1(a[i * ai + k * ak]);
			for (int j = 0; j < NV; j++) acc[i][j] = vf_fmadd(av, bv[j], acc[i][j]);
		}
	}
	vf va = vf_set1(alpha), vb = vf_set1(beta);
	for (int i = 0; i < mr; i++) {
		float *ci = c + i * ldc;
		vf sc = vf_set1(ep && ep->scale ? ep->scale[row0 + i] : 1), sh = vf_set1(ep && ep->shift ? ep->shift[row0 + i] : 0);
		const float *add = ep && ep->add ? ep->add + (row0 + i) * ldc + col0 : 0;
		int relu = ep && ep->relu;
		for (int j = 0; j < NV && VL * j < n; j++)
			finish(ci + VL * j, acc[i][j], n - VL * j, va, beta, vb, ep, sc, sh, add ? add + VL * j : 0, relu);
	}
}

#define KERNEL(R)                                                                                             \
	SIMD static void kernel##R(long kc, const float *a, long ai, long ak, const float *bp, float *c, long ldc, \
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

void ISA_NAME(gemm_block)(long m, long nc, long kc, const float *a, long ai, long ak, const float *bp, float *c,
                          long ldc, long col0, float alpha, float beta, const epilogue *ep) {
	for (long jr = 0; jr < nc; jr += NR) { // a packed panel stays in cache across A's rows
		long w = nc - jr < NR ? nc - jr : NR;
		for (long ic = 0; ic < m; ic += MR) {
			int mr = m - ic < MR ? (int)(m - ic) : MR;
			kernels[mr](kc, a + ic * ai, ai, ak, bp + jr * kc, c + ic * ldc + jr, ldc, w, alpha, beta, ep, ic, col0 + jr);
		}
	}
}

void ISA_NAME(sgemm)(int transA, int transB, long m, long n, long k, float alpha, const float *a, long lda,
                     const float *b, long ldb, float beta, float *c, long ldc, const float *scale, const float *shift,
                     const float *add, int relu) {
	epilogue ep = {scale, shift, add, relu};
	const epilogue *last = scale || shift || add || relu ? &ep : 0;
	float *bp = ISA_NAME(pack_buffer)();
	long ai = transA ? 1 : lda, ak = transA ? lda : 1;
	for (long jc = 0; jc < n; jc += NC) {
		long nc = n - jc < NC ? n - jc : NC;
		for (long pc = 0; pc < k; pc += KC) {
			long kc = k - pc < KC ? k - pc : KC;
			const float *bs = transB ? b + jc * ldb + pc : b + pc * ldb + jc;
			pack_b(transB, kc, nc, bs, ldb, bp);
			ISA_NAME(gemm_block)(m, nc, kc, a + pc * ak, ai, ak, bp, c + jc, ldc, jc, alpha, pc == 0 ? beta : 1,
			                     pc + kc == k ? last : 0);
		}
	}
}
