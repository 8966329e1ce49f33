// Shared by the AVX2+FMA GEMM (sgemm_avx2.c) and its users (conv_avx2.c, winograd_avx2.c): the
// register tile and cache block sizes, the block driver and small helpers. The kernels mirror the
// AVX-512 ones (gemm_avx512.h) operation for operation: each C element is the same chain of FMAs
// over k, blocked by the same KC, so the two paths give bit-identical GEMMs and convolutions.

#ifndef SEGKIT_GEMM_AVX2_H
#define SEGKIT_GEMM_AVX2_H

#include <immintrin.h>
#include <stdint.h>

// The register tile is MR×NR (12 ymm accumulators, two B vectors and a broadcast: 15 of the 16
// registers); B is packed KC rows by up to NC columns at a time, in panels of NR columns. KC must
// stay the AVX-512 GEMM's for the paths to agree bit for bit.
#define MR 6
#define NR 16
#define KC 256
#define NC 960

#define AVX2 __attribute__((target("avx2,fma")))
#define AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline

// transpose8 sets o[c][r] = r[r][c] for an 8×8 block.
AVX2_INLINE void transpose8(const __m256 *r, __m256 *o) {
	__m256 t[8], u[8];
	for (int i = 0; i < 4; i++) { // pairs of rows, interleaved within 128-bit lanes
		t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
		t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
	}
	for (int i = 0; i < 2; i++) { // four rows' columns c, c+4 in the two lanes
		u[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
		u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
		u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
		u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
	}
	for (int c = 0; c < 4; c++) { // rows 0-3 with rows 4-7
		o[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
		o[c + 4] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
	}
}

// masked returns the 8 floats at a with the lanes of mask m kept, zero elsewhere, as
// _mm256_maskload_ps would. That instruction is slow on some CPUs (AMD Zen measured: packing
// with it took longer than the GEMM), so where the 8 floats lie inside the input plane [lo, hi)
// they are loaded whole and the mask applied with an AND; only loads that could leave the
// plane (its first and last few floats) stay masked, since those may leave the allocation.
AVX2_INLINE __m256 masked(const float *a, __m256i m, const float *lo, const float *hi) {
	if ((uintptr_t)a >= (uintptr_t)lo && (uintptr_t)(a + 8) <= (uintptr_t)hi)
		return _mm256_and_ps(_mm256_loadu_ps(a), _mm256_castsi256_ps(m));
	return _mm256_maskload_ps(a, m);
}

// epilogue is applied to finished rows of C, as in gemm_avx512.h.
typedef struct {
	const float *scale, *shift, *add;
	int relu;
} epilogue;

// segkit_avx2_gemm_block is segkit_avx512_gemm_block (gemm_avx512.h) for panels of this file's NR.
void segkit_avx2_gemm_block(long m, long nc, long kc, const float *a, long ai, long ak, const float *bp, float *c,
                            long ldc, long col0, float alpha, float beta, const epilogue *ep);

// segkit_avx2_pack_buffer returns this thread's buffer for KC×(NC+NR) packed floats.
float *segkit_avx2_pack_buffer(void);

#endif
