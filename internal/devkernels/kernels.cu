// segkit's CUDA kernels: each a grid-stride loop over the per-element bodies of bodies.h, or a
// fixed-shape reduction (deterministic: no floating-point atomics, so runs repeat bit for bit).
// NVRTC compiles Source() (this file with bodies.h inlined), and so does the CI check, with
// clang -x cuda -nocudainc -DSK_NO_CUDA_MATH (bodies.h then declares what CUDA's headers would).
#include "bodies.h"

#define SK_LOOP(n) for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < (n); i += (long)blockDim.x * gridDim.x)

extern "C" __global__ void sk_bilinear_fwd_k(long n, int H, int W, int OH, int OW, int align, const float *x, float *y) {
	SK_LOOP(n) sk_bilinear_fwd(i, H, W, OH, OW, align, x, y);
}

extern "C" __global__ void sk_bilinear_bwd_k(long n, int H, int W, int OH, int OW, int align, const float *dy, float *dx) {
	SK_LOOP(n) sk_bilinear_bwd(i, H, W, OH, OW, align, dy, dx);
}

extern "C" __global__ void sk_sum4_k(long n, int relu, float *y, const float *x0, const float *x1, const float *x2, const float *x3) {
	SK_LOOP(n) sk_sum4(i, relu, y, x0, x1, x2, x3);
}

extern "C" __global__ void sk_relu_bwd_k(long n, const float *y, const float *dy, float *dx) {
	SK_LOOP(n) sk_relu_bwd(i, y, dy, dx);
}

extern "C" __global__ void sk_momentum_k(long n, float *w, const float *g, float *v, float lr, float wd, float mu) {
	SK_LOOP(n) sk_momentum(i, w, g, v, lr, wd, mu);
}

extern "C" __global__ void sk_resample_fwd_k(long n, int H, int W, int OH, int OW, float ratioH, float ratioW, int colsAligned,
                                             int mean, const float *x, float *y, unsigned char *argmax) {
	SK_LOOP(n) sk_resample_fwd(i, H, W, OH, OW, ratioH, ratioW, colsAligned, mean, x, y, argmax);
}

// dst channels [to, to+count) of N×dstC×HW from src channels [from, from+count) of N×srcC×HW.
extern "C" __global__ void sk_copy_channels_k(long n, const float *src, int srcC, int from, float *dst, int dstC, int to, int count, long hw) {
	SK_LOOP(n) sk_copy_channels(i, src, srcC, from, dst, dstC, to, count, hw);
}

extern "C" __global__ void sk_spread_planes_k(long n, long hw, const float *dm, float *dx) {
	SK_LOOP(n) sk_spread_planes(i, hw, dm, dx);
}

extern "C" __global__ void sk_argmax_k(long n, int C, long hw, const float *s, int *out) {
	SK_LOOP(n) sk_argmax(i, C, hw, s, out);
}

// One block of 256 threads per output: the sum over N planes of hw values of channel blockIdx.x
// (a bias gradient: planes c, c+C, …) or, with C = planes and N = 1, each plane's mean.
// Each thread sums a fixed stride in double, then a fixed tree: the same bits every run.
extern "C" __global__ void sk_plane_reduce_k(int N, int C, long hw, int mean, const float *x, float *out) {
	__shared__ double part[256];
	int c = blockIdx.x, t = threadIdx.x;
	double s = 0;
	for (int b = 0; b < N; b++)
		for (long j = t; j < hw; j += 256) s += x[((long)b * C + c) * hw + j];
	part[t] = s;
	sk_sync();
	for (int w = 128; w > 0; w >>= 1) {
		if (t < w) part[t] += part[t + w];
		sk_sync();
	}
	if (t == 0) out[c] = mean ? (float)(part[0] / (double)hw) : (float)part[0];
}

// Cross-entropy in three launches: count (counts[0] labelled pixels, counts[1] invalid labels;
// integer atomics are exact), per-pixel losses and gradient, then one block's fixed-tree mean.
extern "C" __global__ void sk_ce_count_k(long n, int C, int ignore, const int *labels, int *counts) {
	SK_LOOP(n) {
		int l = labels[i];
		if (l != ignore) sk_atomic_add_int(&counts[(l < 0 || l >= C) ? 1 : 0], 1);
	}
}

extern "C" __global__ void sk_ce_pixels_k(long n, int C, long HW, const float *logits, const int *labels, int ignore,
                                          const float *scale, const int *counts, double *part, float *dl) {
	SK_LOOP(n) {
		float g;
		if (counts[0] == 0 || counts[1] != 0) {
			if (dl)
				for (int c = 0; c < C; c++) dl[(i / HW) * C * HW + c * HW + i % HW] = 0;
			part[i] = 0;
			continue;
		}
		g = (float)((double)(scale ? *scale : 1.0f) / (double)counts[0]);
		part[i] = sk_ce_pixel(i, C, HW, logits, labels, ignore, g, dl);
	}
}

extern "C" __global__ void sk_ce_mean_k(long n, const double *part, const int *counts, float *loss) {
	__shared__ double acc[256];
	int t = threadIdx.x;
	double s = 0;
	for (long j = t; j < n; j += 256) s += part[j];
	acc[t] = s;
	sk_sync();
	for (int w = 128; w > 0; w >>= 1) {
		if (t < w) acc[t] += acc[t + w];
		sk_sync();
	}
	if (t == 0) *loss = counts[0] > 0 ? (float)(acc[0] / (double)counts[0]) : 0.0f;
}
