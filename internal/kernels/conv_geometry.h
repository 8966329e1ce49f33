// The convolution geometry shared by the implicit-GEMM packers of both instruction sets
// (conv_tmpl.h), included after gemm.h (which defines NR, the panel width).

#ifndef SEGKIT_CONV_GEOMETRY_H
#define SEGKIT_CONV_GEOMETRY_H

#include "kernels.h"

typedef struct {
	long C, H, W, k, s, p, d, OH, OW;
	int phased; // the input is rows [row0, row0 + H) of its phase planes (see phase_window)
	long row0;
} geometry;

static geometry make_geometry(long C, long H, long W, long k, long s, long p, long d) {
	geometry g = {C, H, W, k, s, p, d, (H + 2 * p - d * (k - 1) - 1) / s + 1, (W + 2 * p - d * (k - 1) - 1) / s + 1, 0, 0};
	return g;
}

// This thread's phase rows.
static _Thread_local float *phase_buf;
static _Thread_local long phase_cap;

// phase_window prepares a stride-2 convolution's output pixels [q0, q0+nq) for packing: packing
// a stride-2 row gathers every other column, which cost more than the GEMM; split into phase
// planes (rows and columns of one parity each), every tap reads consecutive pixels, as at
// stride 1. Only the rows these pixels read are split, into this thread's buffer, so that they
// are packed from cache and the image is read once, in order. Returns the buffer; *pg becomes the
// geometry to pack it with: stride 1 over R rows of ((W+1)/2) from phase row row0.
static const float *phase_window(const geometry *g, const float *x, long q0, long nq, geometry *pg) {
	long lo = 0, hi = 0; // the taps' offsets in phase rows, from the output row
	for (long ky = 0; ky < g->k; ky++) {
		long t = ky * g->d - g->p, off = (t - (t & 1)) / 2;
		lo = ky == 0 || off < lo ? off : lo;
		hi = ky == 0 || off > hi ? off : hi;
	}
	long PH = (g->H + 1) / 2, first = q0 / g->OW + lo, last = (q0 + nq - 1) / g->OW + hi;
	long i0 = first > 0 ? first : 0, i1 = last < PH - 1 ? last : PH - 1, R = i1 >= i0 ? i1 - i0 + 1 : 0;
	*pg = *g;
	pg->H = R, pg->W = (g->W + 1) / 2, pg->s = 1, pg->phased = 1, pg->row0 = i0;
	// 16 floats of margin each side: the AVX2 packer's whole-vector loads at a plane's edges.
	float *buf = segkit_grow(&phase_buf, &phase_cap, g->C * 4 * R * pg->W + 32) + 16;
	segkit_phase_rows(g->C, g->H, g->W, x, buf, i0, R);
	return buf;
}

// A patch row (input channel, kernel tap): its input plane and the tap's offsets from an output
// pixel's scaled position (divisions done once per row, not per pixel).
typedef struct {
	const float *plane;
	long ky, kx;
} patch_row;

static patch_row patch_row_of(const geometry *g, const float *x, long row) {
	long kk = g->k * g->k, ky = row % kk / g->k * g->d - g->p, kx = row % g->k * g->d - g->p;
	if (!g->phased) {
		patch_row r = {x + row / kk * g->H * g->W, ky, kx};
		return r;
	}
	// Input row 2·oy + ky is row oy + (ky − a)/2 of the phase a = ky mod 2 (two's complement: the
	// floor for negative ky too), which is row0 rows into the window; columns alike.
	long a = ky & 1, b = kx & 1;
	patch_row r = {x + (row / kk * 4 + 2 * a + b) * g->H * g->W, (ky - a) / 2 - g->row0, (kx - b) / 2};
	return r;
}

// Runs of consecutive output pixels by output row: run i covers [at[i], at[i+1]) of the pixels
// from q, starting at output pixel (oy[i], ox[i]).
typedef struct {
	long at[NR + 1], oy[NR], ox[NR];
	int n;
} runs;

static void split_runs(const geometry *g, long q, long count, runs *r) {
	r->n = 0;
	for (long l = 0; l < count; r->n++) {
		int i = r->n;
		r->at[i] = l, r->oy[i] = (q + l) / g->OW, r->ox[i] = (q + l) % g->OW;
		l += g->OW - r->ox[i] < count - l ? g->OW - r->ox[i] : count - l;
	}
	r->at[r->n] = count;
}

#endif
