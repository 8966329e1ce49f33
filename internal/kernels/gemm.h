// The GEMM's blocking, epilogue and block driver, shared by sgemm_tmpl.h and its users
// (conv_tmpl.h, winograd_tmpl.h); included after simd_avx2.h or simd_avx512.h.
//
// The register tile is MR×NR; B is packed KC rows by up to NC columns at a time, in panels of
// NR columns. Each C element is the same chain of FMAs over k, blocked by the same KC, on both
// instruction sets, so their GEMMs and convolutions agree bit for bit: KC must stay the same.

#ifndef SEGKIT_GEMM_H
#define SEGKIT_GEMM_H

#define MR 6
#if SIMD_AVX512
#define NR 64 // 24 zmm accumulators
#else
#define NR 16 // 12 ymm accumulators, two B vectors and a broadcast: 15 of the 16 registers
#endif
#define NV (NR / VL) // vectors per tile row
#define KC 256
#define NC 960

// epilogue is applied to finished rows of C: row i becomes scale[i]·row + shift[i] (scale or shift
// NULL: 1 or 0), plus the matching elements of add (laid out as C; NULL: none), then max(·, 0) when
// relu; a NULL epilogue means none.
typedef struct {
	const float *scale, *shift, *add;
	int relu;
} epilogue;

// gemm_block computes C[0:m, 0:nc] = alpha·A·B + beta·C for one packed B block (kc×nc, panels of
// NR columns), then the epilogue ep (NULL: none; C's columns are col0.. of the whole C that ep's
// add mirrors). A's element (i, k) is a[i*ai + k*ak].
void ISA_NAME(gemm_block)(long m, long nc, long kc, const float *a, long ai, long ak, const float *bp, float *c,
                          long ldc, long col0, float alpha, float beta, const epilogue *ep);

// pack_buffer returns this thread's buffer for KC×(NC+NR) packed floats.
float *ISA_NAME(pack_buffer)(void);

#endif
