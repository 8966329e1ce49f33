//go:build amd64

// AVX2 batch normalisation over the channels [c0, c1) of an N×C×HW tensor (batchnorm.go has the
// definitions and the Go version; batchnorm_avx512.c the same in 16-wide vectors). Sums run in
// float32 vectors over blocks of 256 values and are added up in double, in a fixed order.

#include <math.h>

#include "simd_avx2.h"
#include "kernels.h"

#define BLOCK 256

// plane_sum returns Σ x and, with sq, Σ (x − mean)² over one plane.
AVX2 static double plane_sum(const float *x, long n, int sq, float mean) {
	double total = 0;
	__m256 mv = _mm256_set1_ps(mean);
	for (long b = 0; b < n; b += BLOCK) {
		long e = b + BLOCK < n ? b + BLOCK : n, i = b;
		__m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
		for (int k = 0; i + 8 <= e; i += 8, k = (k + 1) & 3) {
			__m256 v = _mm256_loadu_ps(x + i);
			if (sq) {
				v = _mm256_sub_ps(v, mv);
				v = _mm256_mul_ps(v, v);
			}
			acc[k] = _mm256_add_ps(acc[k], v);
		}
		float rest = 0;
		for (; i < e; i++) rest += sq ? (x[i] - mean) * (x[i] - mean) : x[i];
		total += hsum8(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]))) + rest;
	}
	return total;
}

// affine writes y = x·scale + shift (then ReLU) over one plane.
AVX2 static void affine(const float *x, float *y, long n, float scale, float shift, int relu) {
	__m256 s = _mm256_set1_ps(scale), h = _mm256_set1_ps(shift);
	long i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 v = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), s, h);
		if (relu) v = _mm256_max_ps(v, _mm256_setzero_ps());
		_mm256_storeu_ps(y + i, v);
	}
	for (; i < n; i++) {
		float v = fmaf(x[i], scale, shift);
		y[i] = relu && !(v > 0) ? 0 : v;
	}
}

// chan_sum returns Σ x over the planes of channel c and, with sq, Σ (x − mean)².
AVX2 static double chan_sum(long N, long C, long HW, const float *x, long c, int sq, float mean) {
	double sum = 0;
	for (long n = 0; n < N; n++) sum += plane_sum(x + (n * C + c) * HW, HW, sq, mean);
	return sum;
}

// normalise finishes the statistics of channel c (mean, Σ (x − mean)² over m values), saves them,
// updates the running ones and writes y. Not inlined: the fused and the split (SyncBN) forward
// run this very code, so that their roundings (and GCC's contractions) are the same.
AVX2 __attribute__((noinline)) static void normalise(long N, long C, long HW, float eps, int relu, float momentum,
                                                     const float *x, const float *gamma, const float *beta, float *y,
                                                     float mean, double ss, double m, float *mean_out,
                                                     float *invstd_out, float *run_mean, float *run_var, long c) {
	double variance = ss / m, invstd = 1 / sqrt(variance + (double)eps);
	mean_out[c] = mean, invstd_out[c] = (float)invstd;
	double unbiased = m > 1 ? ss / (m - 1) : variance;
	run_mean[c] = (1 - momentum) * run_mean[c] + momentum * mean;
	run_var[c] = (1 - momentum) * run_var[c] + momentum * (float)unbiased;
	float scale = gamma[c] * (float)invstd, shift = beta[c] - mean * scale;
	for (long n = 0; n < N; n++) affine(x + (n * C + c) * HW, y + (n * C + c) * HW, HW, scale, shift, relu);
}

// segkit_avx2_bn_train is BatchNorm.ForwardTrain for channels [c0, c1).
AVX2 void segkit_avx2_bn_train(long N, long C, long HW, float eps, int relu, float momentum, const float *x,
                               const float *gamma, const float *beta, float *y, float *mean_out, float *invstd_out,
                               float *run_mean, float *run_var, long c0, long c1) {
	double m = (double)(N * HW);
	for (long c = c0; c < c1; c++) {
		float mean = (float)(chan_sum(N, C, HW, x, c, 0, 0) / m);
		double ss = chan_sum(N, C, HW, x, c, 1, mean);
		normalise(N, C, HW, eps, relu, momentum, x, gamma, beta, y, mean, ss, m, mean_out, invstd_out, run_mean,
		          run_var, c);
	}
}

// segkit_avx2_bn_sums is SyncBN's BatchNorm.SumX (mean NULL) or SumSquares for channels [c0, c1).
AVX2 void segkit_avx2_bn_sums(long N, long C, long HW, const float *x, const float *mean, double *sum, long c0,
                              long c1) {
	for (long c = c0; c < c1; c++) sum[c] = chan_sum(N, C, HW, x, c, mean != 0, mean ? mean[c] : 0);
}

// segkit_avx2_bn_norm is SyncBN's BatchNorm.ForwardGlobal for channels [c0, c1): m values per
// channel over the ranks.
AVX2 void segkit_avx2_bn_norm(long N, long C, long HW, float eps, int relu, float momentum, const float *x,
                              const float *gamma, const float *beta, float *y, const float *mean, const double *ss,
                              double m, float *mean_out, float *invstd_out, float *run_mean, float *run_var, long c0,
                              long c1) {
	for (long c = c0; c < c1; c++)
		normalise(N, C, HW, eps, relu, momentum, x, gamma, beta, y, mean[c], ss[c], m, mean_out, invstd_out,
		          run_mean, run_var, c);
}

// segkit_avx2_bn_affine is BatchNorm.ForwardEval (as per-channel scale and shift) for channels [c0, c1).
AVX2 void segkit_avx2_bn_affine(long N, long C, long HW, int relu, const float *x, const float *scale,
                                const float *shift, float *y, long c0, long c1) {
	for (long c = c0; c < c1; c++)
		for (long n = 0; n < N; n++) affine(x + (n * C + c) * HW, y + (n * C + c) * HW, HW, scale[c], shift[c], relu);
}

// grad_sums returns Σ dy' and Σ dy'·(x − mean) over the planes of channel c, dy' masked by the ReLU.
AVX2 __attribute__((noinline)) static void grad_sums(long N, long C, long HW, int relu, const float *x,
                                                     const float *y, const float *dy, float mean, long c,
                                                     double *sum_dy, double *sum_dyxc) {
	const __m256 zero = _mm256_setzero_ps();
	__m256 mv = _mm256_set1_ps(mean);
	double sd = 0, sx = 0;
	for (long n = 0; n < N; n++) {
		const float *xs = x + (n * C + c) * HW, *gs = dy + (n * C + c) * HW, *ys = y + (n * C + c) * HW;
		for (long b = 0; b < HW; b += BLOCK) {
			long e = b + BLOCK < HW ? b + BLOCK : HW, i = b;
			__m256 s = zero, t = zero;
			for (; i + 8 <= e; i += 8) {
				__m256 g = _mm256_loadu_ps(gs + i);
				if (relu) g = _mm256_and_ps(g, _mm256_cmp_ps(_mm256_loadu_ps(ys + i), zero, _CMP_GT_OQ));
				s = _mm256_add_ps(s, g);
				t = _mm256_fmadd_ps(g, _mm256_sub_ps(_mm256_loadu_ps(xs + i), mv), t);
			}
			float rs = 0, rt = 0;
			for (; i < e; i++) {
				float g = relu && !(ys[i] > 0) ? 0 : gs[i];
				rs += g, rt += g * (xs[i] - mean);
			}
			sd += hsum8(s) + rs, sx += hsum8(t) + rt;
		}
	}
	*sum_dy = sd, *sum_dyxc = sx;
}

// backward_dx writes dx of channel c from its gradient sums over m values (train; eval: dx =
// k·dy'), and dγ, dβ where dgamma is not NULL. Not inlined, as normalise.
AVX2 __attribute__((noinline)) static void backward_dx(long N, long C, long HW, int relu, int train, const float *x,
                                                       const float *y, const float *dy, const float *gamma,
                                                       float mean, float invstd, double sum_dy, double sum_dyxc,
                                                       double m, float *dx, float *dgamma, float *dbeta, long c) {
	const __m256 zero = _mm256_setzero_ps();
	double sum_dyxhat = sum_dyxc * (double)invstd;
	if (dgamma) dgamma[c] = (float)sum_dyxhat, dbeta[c] = (float)sum_dy;
	float k = gamma[c] * invstd, a = 0, bb = 0;
	if (train) a = (float)(sum_dy / m), bb = (float)(sum_dyxhat / m) * invstd;
	// train: dx = k·(dy' − mean(dy') − x̂·mean(dy'·x̂)); eval: dx = k·dy'.
	__m256 mv = _mm256_set1_ps(mean), kv = _mm256_set1_ps(k), av = _mm256_set1_ps(a), bv = _mm256_set1_ps(bb);
	for (long n = 0; n < N; n++) {
		const float *xs = x + (n * C + c) * HW, *gs = dy + (n * C + c) * HW, *ys = y + (n * C + c) * HW;
		float *out = dx + (n * C + c) * HW;
		long i = 0;
		for (; i + 8 <= HW; i += 8) {
			__m256 g = _mm256_loadu_ps(gs + i);
			if (relu) g = _mm256_and_ps(g, _mm256_cmp_ps(_mm256_loadu_ps(ys + i), zero, _CMP_GT_OQ));
			__m256 xc = _mm256_sub_ps(_mm256_loadu_ps(xs + i), mv);
			_mm256_storeu_ps(out + i, _mm256_mul_ps(kv, _mm256_fnmadd_ps(xc, bv, _mm256_sub_ps(g, av))));
		}
		for (; i < HW; i++) {
			float g = relu && !(ys[i] > 0) ? 0 : gs[i];
			out[i] = k * fmaf(-(xs[i] - mean), bb, g - a);
		}
	}
}

// segkit_avx2_bn_backward is BatchNorm.Backward for channels [c0, c1).
AVX2 void segkit_avx2_bn_backward(long N, long C, long HW, int relu, int train, const float *x, const float *y,
                                  const float *dy, const float *gamma, const float *mean_in, const float *invstd_in,
                                  float *dx, float *dgamma, float *dbeta, long c0, long c1) {
	double m = (double)(N * HW);
	for (long c = c0; c < c1; c++) {
		double sum_dy, sum_dyxc;
		grad_sums(N, C, HW, relu, x, y, dy, mean_in[c], c, &sum_dy, &sum_dyxc);
		backward_dx(N, C, HW, relu, train, x, y, dy, gamma, mean_in[c], invstd_in[c], sum_dy, sum_dyxc, m, dx, dgamma,
		            dbeta, c);
	}
}

// segkit_avx2_bn_grad_sums is SyncBN's BatchNorm.GradSums for channels [c0, c1).
AVX2 void segkit_avx2_bn_grad_sums(long N, long C, long HW, int relu, const float *x, const float *y, const float *dy,
                                   const float *mean, double *sum_dy, double *sum_dyxc, long c0, long c1) {
	for (long c = c0; c < c1; c++) grad_sums(N, C, HW, relu, x, y, dy, mean[c], c, sum_dy + c, sum_dyxc + c);
}

// segkit_avx2_bn_grad_dx is SyncBN's BatchNorm.BackwardGlobal for channels [c0, c1): sums over m values.
AVX2 void segkit_avx2_bn_grad_dx(long N, long C, long HW, int relu, const float *x, const float *y, const float *dy,
                                 const float *gamma, const float *mean, const float *invstd, const double *sum_dy,
                                 const double *sum_dyxc, double m, float *dx, long c0, long c1) {
	for (long c = c0; c < c1; c++)
		backward_dx(N, C, HW, relu, 1, x, y, dy, gamma, mean[c], invstd[c], sum_dy[c], sum_dyxc[c], m, dx, 0, 0, c);
}
