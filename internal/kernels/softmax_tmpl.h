// Softmax cross-entropy over the class planes of N×C×HW logits, VL pixels per vector, written once
// for both instruction sets (softmax_avx2.c and softmax_avx512.c define SIMD_H and include this).

#include <math.h>

#include SIMD_H

// exp_neg is e^x for x ≤ 0 (softmax arguments): 2^n·p(f) with x = n·ln2 + f, |f| ≤ ln2/2, p the
// degree-7 Taylor polynomial (relative error < 2e-8 before rounding); below −87 it flushes to 0.
SIMD_INLINE vf exp_neg(vf x) {
	const vf ln2hi = vf_set1(0.693145751953125f), ln2lo = vf_set1(1.428606765330187e-06f);
	x = vf_max(x, vf_set1(-87.0f));
	vf n = vf_round_nearest(vf_mul(x, vf_set1(1.44269504088896341f)));
	vf f = vf_fnmadd(n, ln2lo, vf_fnmadd(n, ln2hi, x));
	vf p = vf_set1(1.0f / 5040);
	p = vf_fmadd(p, f, vf_set1(1.0f / 720));
	p = vf_fmadd(p, f, vf_set1(1.0f / 120));
	p = vf_fmadd(p, f, vf_set1(1.0f / 24));
	p = vf_fmadd(p, f, vf_set1(1.0f / 6));
	p = vf_fmadd(p, f, vf_set1(0.5f));
	p = vf_fmadd(p, f, vf_set1(1.0f));
	p = vf_fmadd(p, f, vf_set1(1.0f));
	return vf_ldexp(p, n);
}

// pixels handles the r pixels (r ≤ VL) from x whose class c is at x[c·hw] (dx likewise; NULL: no
// gradient) with labels lab (the ignore label for pixels that do not count); it adds their losses
// to *total.
SIMD_INLINE void pixels(long c, long hw, const float *x, const int *lab, long r, int ignore, float g, float *dx,
                        double *total) {
	const vf vg = vf_set1(g);
	vi lv = vi_load_first(lab, r);
	vm live = vm_and(vm_first(r), vm_ne(lv, vi_set1(ignore)));
	vf peak = vf_set1(-INFINITY);
	for (long k = 0; k < c; k++) peak = vf_max(peak, vf_load_first(x + k * hw, r));
	vf z = vf_zero(), picked = vf_zero();
	for (long k = 0; k < c; k++) {
		vf v = vf_load_first(x + k * hw, r);
		vf e = exp_neg(vf_sub(v, peak));
		z = vf_add(z, e);
		picked = vf_blend(picked, vm_eq(lv, vi_set1((int)k)), v);
		if (dx) vf_store_first(dx + k * hw, r, e);
	}
	float zs[VL], ps[VL], ls[VL];
	vf_storeu(zs, z), vf_storeu(ps, peak), vf_storeu(ls, picked);
	int on = vm_bits(live);
	// The two paths round the total as they always have: AVX-512 adds each pixel's loss to it,
	// AVX2 the sum of a vector's.
#if SIMD_AVX512
	double *sum = total;
#else
	double vector = 0, *sum = &vector;
#endif
	for (int l = 0; l < VL; l++)
		if (on >> l & 1) *sum += (double)ps[l] + log((double)zs[l]) - (double)ls[l];
#if !SIMD_AVX512
	*total += vector;
#endif
	if (!dx) return;
	vf scale = vf_maskz(live, vf_div(vg, z)); // g/z on counted pixels, 0 elsewhere
	for (long k = 0; k < c; k++) {
		vf pr = vf_mul(vf_load_first(dx + k * hw, r), scale);
		pr = vf_sub_in(pr, vm_and(live, vm_eq(lv, vi_set1((int)k))), vg);
		vf_store_first(dx + k * hw, r, pr);
	}
}

// softmax_ce handles pixels [p0, p1) of the flattened N×HW: it returns the sum of their losses
// (log Σ e^logit − logit[label]) and, when dlogits is not NULL, writes g·(softmax − one-hot) there
// (0 for pixels labelled ignore, whose loss is not counted). Labels are valid.
SIMD double ISA_NAME(softmax_ce)(long c, long hw, const float *logits, const int *labels, int ignore, float g,
                                 float *dlogits, long p0, long p1) {
	double total = 0;
	for (long p = p0, end; p < p1; p = end) { // one image at a time
		long n = p / hw;
		end = (n + 1) * hw < p1 ? (n + 1) * hw : p1;
		for (long q = p; q < end; q += VL) {
			long off = n * c * hw + q % hw;
			pixels(c, hw, logits + off, labels + q, end - q < VL ? end - q : VL, ignore, g, dlogits ? dlogits + off : 0,
			       &total);
		}
	}
	return total;
}
