/* Per-element bodies of segkit's device kernels, in the common subset of C and CUDA C: gcc
 * compiles them into host loops (host.c) to test them against the CPU kernels, NVRTC compiles
 * the same text into the CUDA kernels (kernels.cu). Each body computes one output element and
 * repeats the CPU kernel's arithmetic in the same order (float32 where it is float32, double
 * where it is float64), so with contraction off (gcc -ffp-contract=off, NVRTC -fmad=false) it
 * gives the portable CPU kernel's bits. Why so: exactness first, and a difference found here
 * is a bug, not rounding. */
#ifndef SEGKIT_BODIES_H
#define SEGKIT_BODIES_H

#if defined(__CUDACC__) || defined(__CUDA__)
#ifdef SK_NO_CUDA_MATH
/* clang without NVIDIA's headers (the PTX check): the built-in variables, attributes and
 * libdevice's names that NVRTC provides itself. */
#include <__clang_cuda_builtin_vars.h>
#define __global__ __attribute__((global))
#define __device__ __attribute__((device))
#define __shared__ __attribute__((shared))
extern "C" __device__ void __syncthreads(void);
extern "C" __device__ double __nv_exp(double);
extern "C" __device__ double __nv_log(double);
#define sk_exp __nv_exp
#define sk_log __nv_log
#define sk_atomic_add_int(p, v) __nvvm_atom_add_gen_i((p), (v))
#else
#define sk_exp exp
#define sk_log log
#define sk_atomic_add_int(p, v) atomicAdd((p), (v))
#endif
#define sk_sync() __syncthreads()
#define SK_FN __device__ static inline
#else
#include <math.h>
#define SK_FN static inline
#define sk_exp exp
#define sk_log log
#endif

SK_FN unsigned sk_bits(float f) {
	union { float f; unsigned u; } v;
	v.f = f;
	return v.u;
}

SK_FN float sk_from_bits(unsigned u) {
	union { float f; unsigned u; } v;
	v.u = u;
	return v.f;
}

/* Go's max builtin on float32: NaN wins, +0 over -0. */
SK_FN float sk_max(float a, float b) {
	if (a != a || b != b) return a + b;
	if (a == b) return (sk_bits(a) >> 31) ? b : a;
	return a > b ? a : b;
}

SK_FN float sk_min(float a, float b) {
	if (a != a || b != b) return a + b;
	if (a == b) return (sk_bits(a) >> 31) ? a : b;
	return a < b ? a : b;
}

/* ---- bilinear resize (kernels.Bilinear, PyTorch's convention) ---- */

/* One tap of output index d: source indices *i0, *i1 and weights *w0, *w1, in float32. */
SK_FN void sk_linear_tap(int in, int out, int align, int d, int *i0, int *i1, float *w0, float *w1) {
	float scale = (float)in / (float)out, src, l1;
	if (align) {
		scale = 0;
		if (out > 1) scale = (float)(in - 1) / (float)(out - 1);
		src = scale * (float)d;
	} else {
		src = sk_max(((float)d + 0.5f) * scale - 0.5f, 0.0f);
	}
	*i0 = (int)src;
	if (*i0 > in - 1) *i0 = in - 1;
	*i1 = *i0 < in - 1 ? *i0 + 1 : *i0;
	l1 = sk_min(sk_max(src - (float)*i0, 0.0f), 1.0f);
	*w0 = 1 - l1;
	*w1 = l1;
}

/* y[idx] for idx over planes × OH × OW. */
SK_FN void sk_bilinear_fwd(long idx, int H, int W, int OH, int OW, int align, const float *x, float *y) {
	long p = idx / ((long)OH * OW);
	int oy = (int)(idx / OW % OH), ox = (int)(idx % OW);
	int y0, y1, x0, x1;
	float a0, a1, b0, b1;
	const float *r0, *r1;
	sk_linear_tap(H, OH, align, oy, &y0, &y1, &a0, &a1);
	sk_linear_tap(W, OW, align, ox, &x0, &x1, &b0, &b1);
	r0 = x + p * H * W + (long)y0 * W;
	r1 = x + p * H * W + (long)y1 * W;
	y[idx] = a0 * (b0 * r0[x0] + b1 * r0[x1]) + a1 * (b0 * r1[x0] + b1 * r1[x1]);
}

/* The output indices along one axis whose taps can reach input index i: [*lo, *hi). The tap
 * function decides; this range only has to contain every such index (a margin of two). */
SK_FN void sk_tap_range(int in, int out, int align, int i, int *lo, int *hi) {
	float scale;
	if (align) {
		scale = out > 1 ? (float)(out - 1) / (float)(in > 1 ? in - 1 : 1) : 0;
		*lo = (int)((float)(i - 1) * scale) - 2;
		*hi = (int)((float)(i + 1) * scale) + 3;
	} else {
		scale = (float)out / (float)in;
		*lo = (int)(((float)i - 0.5f) * scale) - 2;
		*hi = (int)(((float)i + 1.5f) * scale) + 3;
	}
	if (in == 1 || out == 1) {
		*lo = 0;
		*hi = out;
	}
	if (*lo < 0) *lo = 0;
	if (*hi > out) *hi = out;
}

/* dx[idx] for idx over planes × H × W, gathered from dy: the contributions in the order the CPU
 * kernel scatters them (rows, then columns, then the four taps), so the sum rounds the same. */
SK_FN void sk_bilinear_bwd(long idx, int H, int W, int OH, int OW, int align, const float *dy, float *dx) {
	long p = idx / ((long)H * W);
	int iy = (int)(idx / W % H), ix = (int)(idx % W);
	int ylo, yhi, xlo, xhi, oy, ox;
	float s = 0;
	const float *g = dy + p * OH * OW;
	sk_tap_range(H, OH, align, iy, &ylo, &yhi);
	sk_tap_range(W, OW, align, ix, &xlo, &xhi);
	for (oy = ylo; oy < yhi; oy++) {
		int y0, y1, x0, x1;
		float a0, a1, b0, b1;
		sk_linear_tap(H, OH, align, oy, &y0, &y1, &a0, &a1);
		if (y0 != iy && y1 != iy) continue;
		for (ox = xlo; ox < xhi; ox++) {
			float v = g[(long)oy * OW + ox], v0, v1;
			sk_linear_tap(W, OW, align, ox, &x0, &x1, &b0, &b1);
			v0 = a0 * v;
			v1 = a1 * v;
			if (y0 == iy && x0 == ix) s += b0 * v0;
			if (y0 == iy && x1 == ix) s += b1 * v0;
			if (y1 == iy && x0 == ix) s += b0 * v1;
			if (y1 == iy && x1 == ix) s += b1 * v1;
		}
	}
	dx[idx] = s;
}

/* ---- sums, ReLU, SGD ---- */

/* y[i] = x0 + x1 (+ x2 (+ x3)), then max(·, 0) when relu; absent inputs are null. */
SK_FN void sk_sum4(long i, int relu, float *y, const float *x0, const float *x1, const float *x2, const float *x3) {
	float s = x0[i];
	if (x1) s += x1[i];
	if (x2) s += x2[i];
	if (x3) s += x3[i];
	if (relu) s = sk_max(s, 0.0f);
	y[i] = s;
}

/* dx = dy where y > 0 (the CPU's branch-free mask on y's bits: +0 passes nothing). */
SK_FN void sk_relu_bwd(long i, const float *y, const float *dy, float *dx) {
	unsigned keep = (0u - sk_bits(y[i])) >> 31;
	dx[i] = sk_from_bits(sk_bits(dy[i]) & (0u - keep));
}

/* torch.optim.SGD: v = mu·v + g + wd·w; w -= lr·v. */
SK_FN void sk_momentum(long i, float *w, const float *g, float *v, float lr, float wd, float mu) {
	v[i] = mu * v[i] + g[i] + wd * w[i];
	w[i] -= lr * v[i];
}

/* ---- softmax cross-entropy, ignore index ---- */

/* Pixel p of N × HW: its loss (0 when ignored) and, when dl is not null, g·(softmax − onehot)
 * into dl (0 for an ignored pixel). Labels were checked to lie in [0, C) or be ignore. */
SK_FN double sk_ce_pixel(long p, int C, long HW, const float *logits, const int *labels, int ignore, float g, float *dl) {
	long n = p / HW, i = p % HW, base = n * C * HW + i;
	int label = labels[p], c;
	float peak;
	double z = 0, lse;
	if (label == ignore) {
		if (dl)
			for (c = 0; c < C; c++) dl[base + c * HW] = 0;
		return 0;
	}
	peak = logits[base];
	for (c = 1; c < C; c++) peak = sk_max(peak, logits[base + c * HW]);
	for (c = 0; c < C; c++) z += sk_exp((double)(logits[base + c * HW] - peak));
	lse = (double)peak + sk_log(z);
	if (dl)
		for (c = 0; c < C; c++) {
			float prob = (float)sk_exp((double)logits[base + c * HW] - lse);
			if (c == label) prob--;
			dl[base + c * HW] = g * prob;
		}
	return lse - (double)logits[base + (long)label * HW];
}

/* ---- DynOPool sampling (kernels.Resample, forward) ---- */

/* Query k (0 ≤ k < 2·out) along an axis of n pixels: rows *i0, *i1 and weight *t of *i1. */
SK_FN void sk_query_tap(int n, float ratio, int k, int *i0, int *i1, float *t) {
	float cell = (float)(k / 2) + ((k % 2) ? 0.75f : 0.25f);
	float u = cell * ratio - 0.5f;
	u = sk_min(sk_max(u, 0.0f), (float)(n - 1));
	*i0 = (int)u;
	*i1 = *i0 + 1 < n - 1 ? *i0 + 1 : n - 1;
	*t = u - (float)*i0;
}

/* torch.lerp's rounding (kernels.lerp). */
SK_FN float sk_lerp(float a, float b, float t) {
	if (t < 0.5f) return a + t * (b - a);
	return b - (b - a) * (1 - t);
}

/* Query (row k, column j) of plane x: rows interpolated first, as the CPU kernel does. */
SK_FN float sk_query(const float *x, int W, int r0, int r1, float tr, int c0, int c1, float tc, int colsAligned) {
	float a = tr == 0 ? x[(long)r0 * W + c0] : sk_lerp(x[(long)r0 * W + c0], x[(long)r1 * W + c0], tr);
	float b;
	if (colsAligned) return a;
	b = tr == 0 ? x[(long)r0 * W + c1] : sk_lerp(x[(long)r0 * W + c1], x[(long)r1 * W + c1], tr);
	return sk_lerp(a, b, tc);
}

/* y[idx] for idx over planes × OH × OW: the max (mean) of the cell's four queries; argmax (not
 * null: training, max mode) receives the first winner, 0–3 = (−,−), (−,+), (+,−), (+,+). */
SK_FN void sk_resample_fwd(long idx, int H, int W, int OH, int OW, float ratioH, float ratioW, int colsAligned,
                           int mean, const float *x, float *y, unsigned char *argmax) {
	long p = idx / ((long)OH * OW);
	int i = (int)(idx / OW % OH), j = (int)(idx % OW), k;
	int r0[2], r1[2], c0[2], c1[2];
	float tr[2], tc[2], v[4], m;
	const float *src = x + p * H * W;
	for (k = 0; k < 2; k++) {
		sk_query_tap(H, ratioH, 2 * i + k, &r0[k], &r1[k], &tr[k]);
		sk_query_tap(W, ratioW, 2 * j + k, &c0[k], &c1[k], &tc[k]);
	}
	for (k = 0; k < 4; k++)
		v[k] = sk_query(src, W, r0[k >> 1], r1[k >> 1], tr[k >> 1], c0[k & 1], c1[k & 1], tc[k & 1], colsAligned);
	if (mean) {
		y[idx] = (v[0] + v[1] + v[2] + v[3]) * 0.25f;
		return;
	}
	m = sk_max(sk_max(v[0], v[1]), sk_max(v[2], v[3]));
	if (argmax) {
		unsigned nz[3];
		for (k = 0; k < 3; k++) {
			unsigned b = sk_bits(m - v[k]);
			nz[k] = (b | (0u - b)) >> 31;
		}
		k = (int)(nz[0] * (1 + nz[1] * (1 + nz[2])));
		argmax[idx] = (unsigned char)k;
		y[idx] = v[k];
		return;
	}
	y[idx] = m;
}

/* ---- copies, plane gradients, argmax ---- */

/* Element i of count channels × hw per image: dst channel to+c of N×dstC×hw from src channel
 * from+c of N×srcC×hw (a concat's input placed, a channel slice taken). */
SK_FN void sk_copy_channels(long i, const float *src, int srcC, int from, float *dst, int dstC, int to, int count, long hw) {
	long b = i / ((long)count * hw), c = i / hw % count, j = i % hw;
	dst[(b * dstC + to + c) * hw + j] = src[(b * srcC + from + c) * hw + j];
}

/* The gradient of a plane mean: dx[i] = dm[plane] / hw, in float32 as the CPU divides. */
SK_FN void sk_spread_planes(long i, long hw, const float *dm, float *dx) {
	dx[i] = dm[i / hw] / (float)hw;
}

/* Pixel i of N × hw: the first class of the highest score over C planes (NaN never wins, as
 * the CPU's strict >). */
SK_FN void sk_argmax(long i, int C, long hw, const float *s, int *out) {
	long base = (i / hw) * C * hw + i % hw;
	float best = s[base];
	int arg = 0, k;
	for (k = 1; k < C; k++)
		if (s[base + k * hw] > best) {
			best = s[base + k * hw];
			arg = k;
		}
	out[i] = arg;
}

#endif
