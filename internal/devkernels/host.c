// The bodies of bodies.h run over every element on the host (one thread): what the tests
// compare with the CPU kernels, and what a CUDA kernel does per thread.
// No fused multiply-adds: the bodies must round as the Go kernels do (cgo's flag allowlist
// refuses -ffp-contract=off, so the pragma says it; x86-64's baseline has no FMA anyway).
#pragma GCC optimize("fp-contract=off")
#include "bodies.h"

void skh_bilinear_fwd(long n, int H, int W, int OH, int OW, int align, const float *x, float *y) {
	for (long i = 0; i < n; i++) sk_bilinear_fwd(i, H, W, OH, OW, align, x, y);
}

void skh_bilinear_bwd(long n, int H, int W, int OH, int OW, int align, const float *dy, float *dx) {
	for (long i = 0; i < n; i++) sk_bilinear_bwd(i, H, W, OH, OW, align, dy, dx);
}

void skh_sum4(long n, int relu, float *y, const float *x0, const float *x1, const float *x2, const float *x3) {
	for (long i = 0; i < n; i++) sk_sum4(i, relu, y, x0, x1, x2, x3);
}

void skh_relu_bwd(long n, const float *y, const float *dy, float *dx) {
	for (long i = 0; i < n; i++) sk_relu_bwd(i, y, dy, dx);
}

void skh_momentum(long n, float *w, const float *g, float *v, float lr, float wd, float mu) {
	for (long i = 0; i < n; i++) sk_momentum(i, w, g, v, lr, wd, mu);
}

// Pixel losses summed in pixel order (the device reduces in a fixed tree instead).
double skh_ce(long pixels, int C, long HW, const float *logits, const int *labels, int ignore, float g, float *dl) {
	double s = 0;
	for (long p = 0; p < pixels; p++) s += sk_ce_pixel(p, C, HW, logits, labels, ignore, g, dl);
	return s;
}

void skh_resample_fwd(long n, int H, int W, int OH, int OW, float ratioH, float ratioW, int colsAligned, int mean,
                      const float *x, float *y, unsigned char *argmax) {
	for (long i = 0; i < n; i++) sk_resample_fwd(i, H, W, OH, OW, ratioH, ratioW, colsAligned, mean, x, y, argmax);
}

void skh_copy_channels(long n, const float *src, int srcC, int from, float *dst, int dstC, int to, int count, long hw) {
	for (long i = 0; i < n; i++) sk_copy_channels(i, src, srcC, from, dst, dstC, to, count, hw);
}

void skh_spread_planes(long n, long hw, const float *dm, float *dx) {
	for (long i = 0; i < n; i++) sk_spread_planes(i, hw, dm, dx);
}

void skh_argmax(long n, int C, long hw, const float *s, int *out) {
	for (long i = 0; i < n; i++) sk_argmax(i, C, hw, s, out);
}
