// The forward of DynOPool's sampling op, written once for both instruction sets (resample_avx2.c
// and resample_avx512.c define SIMD_H and include this); resample.go has the definition and the Go
// version, which this matches bit for bit: the same float32 operations in the same order, no FMA.
// Rows run whole vectors of cells, then the rest once (the *_first operations).

#pragma GCC optimize("fp-contract=off") // round as Go does: a multiply and an add stay two operations

#include SIMD_H

// lerp is torch.lerp per lane, as resample.go's lerp.
SIMD_INLINE vf lerp(vf a, vf b, vf t) {
	vf d = vf_sub(b, a);
	vf lo = vf_add(a, vf_mul(t, d));
	vf hi = vf_sub(b, vf_mul(d, vf_sub(vf_set1(1), t)));
	return vf_select_lt(t, vf_set1(0.5f), lo, hi);
}

// The cells' queries read the two query rows through gathers, which are slow (about one lane per
// cycle on AMD's cores); where a vector of cells' taps lie within 2·VL columns (upsampling, and
// downsampling by up to about 2), the rows' 2·VL floats from the leftmost tap are permuted into
// place instead (vf_window). The rows in scratch are SCRATCH_GAP floats apart and scratch has that
// many to spare at the end, so the floats read past a row's last tap are memory (never selected).
#define SCRATCH_GAP 32

// row_at writes the r query-row values from c: s0, or its lerp towards s1 by t.
SIMD_INLINE void row_at(const float *s0, const float *s1, float *dst, long c, long r, float t, vf vt) {
	vf v = vf_load_first(s0 + c, r);
	if (t != 0) v = lerp(v, vf_load_first(s1 + c, r), vt);
	vf_store_first(dst + c, r, v);
}

// cells_at writes the r cells from j of one cell row (query rows top and bottom); won, when not
// NULL, takes the winning query of each.
SIMD_INLINE void cells_at(long j, long r, const float *top, const float *bottom, float *out, unsigned char *won,
                          int mean, const int *cl0, const int *cl1, const float *clt, const int *cr0, const int *cr1,
                          const float *crt) {
	vi l0 = vi_load_first(cl0 + j, r), l1 = vi_load_first(cl1 + j, r);
	vi r0 = vi_load_first(cr0 + j, r), r1 = vi_load_first(cr1 + j, r);
	vf lt = vf_load_first(clt + j, r), rtv = vf_load_first(crt + j, r);
	vf tl0, tl1, tr0, tr1, bl0, bl1, br0, br1;
	long base = vi_hmin_first(vi_min(l0, r0), r);
	if (vi_hmax_first(vi_max(l1, r1), r) - base < 2 * VL) { // the usual case: see SCRATCH_GAP
		vi vb = vi_set1((int)base);
		l0 = vi_sub(l0, vb), l1 = vi_sub(l1, vb);
		r0 = vi_sub(r0, vb), r1 = vi_sub(r1, vb);
		vf t0 = vf_loadu(top + base), t1 = vf_loadu(top + base + VL);
		vf b0 = vf_loadu(bottom + base), b1 = vf_loadu(bottom + base + VL);
		tl0 = vf_window(t0, t1, l0), tl1 = vf_window(t0, t1, l1), tr0 = vf_window(t0, t1, r0), tr1 = vf_window(t0, t1, r1);
		bl0 = vf_window(b0, b1, l0), bl1 = vf_window(b0, b1, l1), br0 = vf_window(b0, b1, r0), br1 = vf_window(b0, b1, r1);
	} else {
		tl0 = vf_gather_vi_first(top, l0, r), tl1 = vf_gather_vi_first(top, l1, r);
		tr0 = vf_gather_vi_first(top, r0, r), tr1 = vf_gather_vi_first(top, r1, r);
		bl0 = vf_gather_vi_first(bottom, l0, r), bl1 = vf_gather_vi_first(bottom, l1, r);
		br0 = vf_gather_vi_first(bottom, r0, r), br1 = vf_gather_vi_first(bottom, r1, r);
	}
	vf v[4] = {lerp(tl0, tl1, lt), lerp(tr0, tr1, rtv), lerp(bl0, bl1, lt), lerp(br0, br1, rtv)};
	vf res;
	if (mean) {
		res = vf_mul(vf_add(vf_add(vf_add(v[0], v[1]), v[2]), v[3]), vf_set1(0.25f));
	} else {
		res = vf_max(vf_max(v[0], v[1]), vf_max(v[2], v[3]));
		if (won) { // the first query equal to the max
			vi k = vi_set1(3);
			for (int q = 2; q >= 0; q--) k = vi_select_eq(v[q], res, vi_set1(q), k);
			vi_store_bytes_first(won + j, r, k);
		}
	}
	vf_store_first(out + j, r, res);
}

// resample writes planes [p0, p1) of x (H×W each) into y (OH×OW each). Row taps (2·OH: input rows
// r0, r1 and weight rt of every query row) and column taps split by side (OW each: left queries
// l0, l1, lt; right r0, r1, rt) come from resample.go; when argmax is not NULL the winning query
// (0–3) of every cell is stored there; scratch holds 2·(W + SCRATCH_GAP) floats.
SIMD void ISA_NAME(resample)(long H, long W, long OH, long OW, const float *x, float *y, unsigned char *argmax,
                             int mean, const int *ri0, const int *ri1, const float *rt, const int *cl0, const int *cl1,
                             const float *clt, const int *cr0, const int *cr1, const float *crt, long p0, long p1,
                             float *scratch) {
	for (long p = p0; p < p1; p++) {
		const float *src = x + p * H * W;
		for (long i = 0; i < OH; i++) {
			// The cell row's two query rows, interpolated between input rows.
			for (int h = 0; h < 2; h++) {
				long a = 2 * i + h;
				const float *s0 = src + ri0[a] * W, *s1 = src + ri1[a] * W;
				float *dst = scratch + h * (W + SCRATCH_GAP), t = rt[a];
				vf vt = vf_set1(t);
				long c = 0;
				for (; c + VL <= W; c += VL) row_at(s0, s1, dst, c, VL, t, vt);
				if (c < W) row_at(s0, s1, dst, c, W - c, t, vt);
			}
			const float *top = scratch, *bottom = scratch + W + SCRATCH_GAP;
			float *out = y + (p * OH + i) * OW;
			unsigned char *won = argmax ? argmax + (p * OH + i) * OW : 0;
			long j = 0;
			for (; j + VL <= OW; j += VL) cells_at(j, VL, top, bottom, out, won, mean, cl0, cl1, clt, cr0, cr1, crt);
			if (j < OW) cells_at(j, OW - j, top, bottom, out, won, mean, cl0, cl1, clt, cr0, cr1, crt);
		}
	}
}
