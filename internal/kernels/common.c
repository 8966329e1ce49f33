//go:build amd64

// What the kernels of both instruction sets share (declared in kernels.h): the CPU check, the
// tables of kernels, per-thread scratch and the phase planes of stride-2 convolutions.

#include <stdlib.h>

#include <immintrin.h>

#include "kernels.h"

int segkit_cpu_isa(void) {
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f")) return 2;
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
	return 0;
}

// KERNELS(isa) lists the kernels segkit_<isa>_*, in segkit_kernels' order.
#define KERNELS(isa)                                                                                             \
	{                                                                                                            \
		segkit_##isa##_sgemm, segkit_##isa##_conv_sgemm, segkit_##isa##_conv_filter_grad,                       \
		segkit_##isa##_wino_filter, segkit_##isa##_wino_block, segkit_##isa##_bn_train, segkit_##isa##_bn_affine,  \
		segkit_##isa##_bn_backward, segkit_##isa##_bn_sums, segkit_##isa##_bn_norm, segkit_##isa##_bn_grad_sums,  \
		segkit_##isa##_bn_grad_dx, segkit_##isa##_bilinear_forward, segkit_##isa##_bilinear_backward,          \
		segkit_##isa##_sum4, segkit_##isa##_relu_backward, segkit_##isa##_momentum, segkit_##isa##_softmax_ce,   \
		segkit_##isa##_resample,                                                                                 \
	}

static const segkit_kernels avx2 = KERNELS(avx2), avx512 = KERNELS(avx512);

const segkit_kernels *segkit_kernels_for(int isa) {
	switch (isa) {
	case 1:
		return &avx2;
	case 2:
		return &avx512;
	}
	return 0;
}

float *segkit_grow(float **buf, long *cap, long n) {
	if (*cap < n) {
		free(*buf);
		*buf = aligned_alloc(64, sizeof(float) * ((n + 15) & ~15L));
		*cap = n;
	}
	return *buf;
}

// segkit_phase_rows serves both instruction sets' convolutions (AVX-512 CPUs have AVX2).
__attribute__((target("avx2,fma"))) void segkit_phase_rows(long C, long H, long W, const float *x, float *out, long i0, long R) {
	long PW = (W + 1) / 2, ps = R * PW;
	for (long c = 0; c < C; c++) {
		const float *in = x + c * H * W;
		for (int a = 0; a < 2; a++) {
			for (long i = 0; i < R; i++) {
				long iy = 2 * (i0 + i) + a;
				float *ev = out + (4 * c + 2 * a) * ps + i * PW, *od = ev + ps;
				if (iy >= H) { // odd H: the last row of the odd phases is outside the image
					for (long j = 0; j < PW; j++) ev[j] = od[j] = 0;
					continue;
				}
				const float *src = in + iy * W;
				long j = 0;
				for (; 2 * j + 16 <= W; j += 8) {
					__m256 u = _mm256_loadu_ps(src + 2 * j), v = _mm256_loadu_ps(src + 2 * j + 8);
					__m256 e = _mm256_shuffle_ps(u, v, 0x88), d = _mm256_shuffle_ps(u, v, 0xDD);
					_mm256_storeu_ps(ev + j, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xD8)));
					_mm256_storeu_ps(od + j, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(d), 0xD8)));
				}
				for (; j < PW; j++) {
					ev[j] = src[2 * j];
					od[j] = 2 * j + 1 < W ? src[2 * j + 1] : 0;
				}
			}
		}
	}
}
