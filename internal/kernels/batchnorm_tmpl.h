// Batch normalisation over the channels [c0, c1) of an N×C×HW tensor, written once for both
// instruction sets (batchnorm_avx2.c and batchnorm_avx512.c define SIMD_H and include this);
// batchnorm.go has the definitions and the portable Go version. Sums run in float32 vectors over
// blocks of 256 values and are added up in double, in a fixed order: the rest of a block after
// its whole vectors is one more, masked vector on AVX-512 and a scalar sum on AVX2
// (SIMD_PARTIAL_VECTORS), so the two paths' sums differ in their last bits.

#include <math.h>

#include SIMD_H

#define BLOCK 256

// plane_sum returns Σ x and, with sq, Σ (x − mean)² over one plane.
SIMD static double plane_sum(const float *x, long n, int sq, float mean) {
	double total = 0;
	vf mv = vf_set1(mean);
	for (long b = 0; b < n; b += BLOCK) {
		long e = b + BLOCK < n ? b + BLOCK : n, i = b;
		vf acc[4] = {vf_zero(), vf_zero(), vf_zero(), vf_zero()};
		int k = 0;
		for (; i + VL <= e; i += VL, k = (k + 1) & 3) {
			vf v = vf_loadu(x + i);
			if (sq) {
				v = vf_sub(v, mv);
				v = vf_mul(v, v);
			}
			acc[k] = vf_add(acc[k], v);
		}
#if SIMD_PARTIAL_VECTORS
		if (i < e) {
			vf v = vf_load_first(x + i, e - i);
			if (sq) {
				v = vf_sub_first(v, mv, e - i);
				v = vf_mul(v, v);
			}
			acc[k] = vf_add(acc[k], v);
		}
		total += vf_hsum(vf_add(vf_add(acc[0], acc[1]), vf_add(acc[2], acc[3])));
#else
		float rest = 0;
		for (; i < e; i++) rest += sq ? (x[i] - mean) * (x[i] - mean) : x[i];
		total += vf_hsum(vf_add(vf_add(acc[0], acc[1]), vf_add(acc[2], acc[3]))) + rest;
#endif
	}
	return total;
}

// affine_at writes y = x·scale + shift (then ReLU) at the r elements from i.
SIMD_INLINE void affine_at(const float *x, float *y, long i, long r, vf s, vf h, int relu) {
	vf v = vf_fmadd(vf_load_first(x + i, r), s, h);
	if (relu) v = vf_max(v, vf_zero());
	vf_store_first(y + i, r, v);
}

// affine writes y = x·scale + shift (then ReLU) over one plane.
SIMD static void affine(const float *x, float *y, long n, float scale, float shift, int relu) {
	vf s = vf_set1(scale), h = vf_set1(shift);
	long i = 0;
	for (; i + VL <= n; i += VL) affine_at(x, y, i, VL, s, h, relu);
	if (i < n) affine_at(x, y, i, n - i, s, h, relu);
}

// chan_sum returns Σ x over the planes of channel c and, with sq, Σ (x − mean)².
SIMD static double chan_sum(long N, long C, long HW, const float *x, long c, int sq, float mean) {
	double sum = 0;
	for (long n = 0; n < N; n++) sum += plane_sum(x + (n * C + c) * HW, HW, sq, mean);
	return sum;
}

// normalise finishes the statistics of channel c (mean, Σ (x − mean)² over m values), saves them,
// updates the running ones and writes y. Not inlined: the fused and the split (SyncBN) forward
// run this very code, so that their roundings (and GCC's contractions) are the same.
SIMD __attribute__((noinline)) static void normalise(long N, long C, long HW, float eps, int relu, float momentum,
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

// bn_train is BatchNorm.ForwardTrain for channels [c0, c1).
SIMD void ISA_NAME(bn_train)(long N, long C, long HW, float eps, int relu, float momentum, const float *x,
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

// bn_sums is SyncBN's BatchNorm.SumX (mean NULL) or SumSquares for channels [c0, c1).
SIMD void ISA_NAME(bn_sums)(long N, long C, long HW, const float *x, const float *mean, double *sum, long c0,
                            long c1) {
	for (long c = c0; c < c1; c++) sum[c] = chan_sum(N, C, HW, x, c, mean != 0, mean ? mean[c] : 0);
}

// bn_norm is SyncBN's BatchNorm.ForwardGlobal for channels [c0, c1): m values per channel over
// the ranks.
SIMD void ISA_NAME(bn_norm)(long N, long C, long HW, float eps, int relu, float momentum, const float *x,
                            const float *gamma, const float *beta, float *y, const float *mean, const double *ss,
                            double m, float *mean_out, float *invstd_out, float *run_mean, float *run_var, long c0,
                            long c1) {
	for (long c = c0; c < c1; c++)
		normalise(N, C, HW, eps, relu, momentum, x, gamma, beta, y, mean[c], ss[c], m, mean_out, invstd_out,
		          run_mean, run_var, c);
}

// bn_affine is BatchNorm.ForwardEval (as per-channel scale and shift) for channels [c0, c1).
SIMD void ISA_NAME(bn_affine)(long N, long C, long HW, int relu, const float *x, const float *scale,
                              const float *shift, float *y, long c0, long c1) {
	for (long c = c0; c < c1; c++)
		for (long n = 0; n < N; n++) affine(x + (n * C + c) * HW, y + (n * C + c) * HW, HW, scale[c], shift[c], relu);
}

// grad_at adds the r elements from i of dy' (dy masked by the ReLU) to s, and of dy'·(x − mean)
// to t.
SIMD_INLINE void grad_at(const float *xs, const float *ys, const float *gs, long i, long r, int relu, vf mv, vf *s,
                         vf *t) {
	vf g = vf_load_first(gs + i, r);
	if (relu) g = vf_keep_positive(vf_load_first(ys + i, r), g);
	*s = vf_add(*s, g);
	*t = vf_fmadd(g, vf_sub(vf_load_first(xs + i, r), mv), *t);
}

// grad_sums returns Σ dy' and Σ dy'·(x − mean) over the planes of channel c, dy' masked by the ReLU.
SIMD __attribute__((noinline)) static void grad_sums(long N, long C, long HW, int relu, const float *x,
                                                     const float *y, const float *dy, float mean, long c,
                                                     double *sum_dy, double *sum_dyxc) {
	vf mv = vf_set1(mean);
	double sd = 0, sx = 0;
	for (long n = 0; n < N; n++) {
		const float *xs = x + (n * C + c) * HW, *gs = dy + (n * C + c) * HW, *ys = y + (n * C + c) * HW;
		for (long b = 0; b < HW; b += BLOCK) {
			long e = b + BLOCK < HW ? b + BLOCK : HW, i = b;
			vf s = vf_zero(), t = vf_zero();
			for (; i + VL <= e; i += VL) grad_at(xs, ys, gs, i, VL, relu, mv, &s, &t);
#if SIMD_PARTIAL_VECTORS
			if (i < e) grad_at(xs, ys, gs, i, e - i, relu, mv, &s, &t);
			sd += vf_hsum(s), sx += vf_hsum(t);
#else
			float rs = 0, rt = 0;
			for (; i < e; i++) {
				float g = relu && !(ys[i] > 0) ? 0 : gs[i];
				rs += g, rt += g * (xs[i] - mean);
			}
			sd += vf_hsum(s) + rs, sx += vf_hsum(t) + rt;
#endif
		}
	}
	*sum_dy = sd, *sum_dyxc = sx;
}

// dx_at writes the r elements from i of dx = k·(dy' − a − (x − mean)·bb).
SIMD_INLINE void dx_at(const float *xs, const float *ys, const float *gs, float *out, long i, long r, int relu, vf mv,
                       vf kv, vf av, vf bv) {
	vf g = vf_load_first(gs + i, r);
	if (relu) g = vf_keep_positive(vf_load_first(ys + i, r), g);
	vf xc = vf_sub(vf_load_first(xs + i, r), mv);
	vf_store_first(out + i, r, vf_mul(kv, vf_fnmadd(xc, bv, vf_sub(g, av))));
}

// backward_dx writes dx of channel c from its gradient sums over m values (train; eval: dx =
// k·dy'), and dγ, dβ where dgamma is not NULL. Not inlined, as normalise.
SIMD __attribute__((noinline)) static void backward_dx(long N, long C, long HW, int relu, int train, const float *x,
                                                       const float *y, const float *dy, const float *gamma,
                                                       float mean, float invstd, double sum_dy, double sum_dyxc,
                                                       double m, float *dx, float *dgamma, float *dbeta, long c) {
	double sum_dyxhat = sum_dyxc * (double)invstd;
	if (dgamma) dgamma[c] = (float)sum_dyxhat, dbeta[c] = (float)sum_dy;
	float k = gamma[c] * invstd, a = 0, bb = 0;
	if (train) a = (float)(sum_dy / m), bb = (float)(sum_dyxhat / m) * invstd;
	// train: dx = k·(dy' − mean(dy') − x̂·mean(dy'·x̂)); eval: dx = k·dy'.
	vf mv = vf_set1(mean), kv = vf_set1(k), av = vf_set1(a), bv = vf_set1(bb);
	for (long n = 0; n < N; n++) {
		const float *xs = x + (n * C + c) * HW, *gs = dy + (n * C + c) * HW, *ys = y + (n * C + c) * HW;
		float *out = dx + (n * C + c) * HW;
		long i = 0;
		for (; i + VL <= HW; i += VL) dx_at(xs, ys, gs, out, i, VL, relu, mv, kv, av, bv);
		if (i < HW) dx_at(xs, ys, gs, out, i, HW - i, relu, mv, kv, av, bv);
	}
}

// bn_backward is BatchNorm.Backward for channels [c0, c1).
SIMD void ISA_NAME(bn_backward)(long N, long C, long HW, int relu, int train, const float *x, const float *y,
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

// bn_grad_sums is SyncBN's BatchNorm.GradSums for channels [c0, c1).
SIMD void ISA_NAME(bn_grad_sums)(long N, long C, long HW, int relu, const float *x, const float *y, const float *dy,
                                 const float *mean, double *sum_dy, double *sum_dyxc, long c0, long c1) {
	for (long c = c0; c < c1; c++) grad_sums(N, C, HW, relu, x, y, dy, mean[c], c, sum_dy + c, sum_dyxc + c);
}

// bn_grad_dx is SyncBN's BatchNorm.BackwardGlobal for channels [c0, c1): sums over m values.
SIMD void ISA_NAME(bn_grad_dx)(long N, long C, long HW, int relu, const float *x, const float *y, const float *dy,
                               const float *gamma, const float *mean, const float *invstd, const double *sum_dy,
                               const double *sum_dyxc, double m, float *dx, long c0, long c1) {
	for (long c = c0; c < c1; c++)
		backward_dx(N, C, HW, relu, 1, x, y, dy, gamma, mean[c], invstd[c], sum_dy[c], sum_dyxc[c], m, dx, 0, 0, c);
}
