// The convolution geometry shared by the implicit-GEMM packers (conv_avx512.c, conv_avx2.c), each
// of which includes this after its GEMM header (which defines NR, the panel width).

#ifndef SEGKIT_CONV_GEOMETRY_H
#define SEGKIT_CONV_GEOMETRY_H

typedef struct {
	long C, H, W, k, s, p, d, OH, OW;
	int phased; // the input is split into phase planes (see phased_geometry)
} geometry;

static geometry make_geometry(long C, long H, long W, long k, long s, long p, long d) {
	geometry g = {C, H, W, k, s, p, d, (H + 2 * p - d * (k - 1) - 1) / s + 1, (W + 2 * p - d * (k - 1) - 1) / s + 1, 0};
	return g;
}

// phased_geometry is what the packers see of a stride-2 convolution whose input was split by
// segkit_phase_split into four phase planes per channel (rows and columns of one parity each, of
// ((H+1)/2)×((W+1)/2)): in those, every tap reads a window of consecutive pixels, as at stride 1.
// Packing a stride-2 row otherwise gathers every other column, which cost more than the GEMM.
static geometry phased_geometry(geometry g) {
	g.H = (g.H + 1) / 2, g.W = (g.W + 1) / 2, g.s = 1, g.phased = 1;
	return g;
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
	// floor for negative ky too); columns alike.
	long a = ky & 1, b = kx & 1;
	patch_row r = {x + (row / kk * 4 + 2 * a + b) * g->H * g->W, (ky - a) / 2, (kx - b) / 2};
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
