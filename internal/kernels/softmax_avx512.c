//go:build amd64

// AVX-512 softmax cross-entropy over the class planes of N×C×HW logits, 16 pixels per vector.

#include "simd_avx512.h"
#include <math.h>
#include "kernels.h"

// exp16 is e^x for x ≤ 0 (softmax arguments): 2^n·p(f) with x = n·ln2 + f, |f| ≤ ln2/2, p the
// degree-7 Taylor polynomial (relative error < 2e-8 before rounding); below −87 it flushes to 0.
__attribute__((target("avx512f"), always_inline)) static inline __m512 exp16(__m512 x) {
	const __m512 ln2hi = _mm512_set1_ps(0.693145751953125f), ln2lo = _mm512_set1_ps(1.428606765330187e-06f);
	x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
	__m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
	                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m512 f = _mm512_fnmadd_ps(n, ln2lo, _mm512_fnmadd_ps(n, ln2hi, x));
	__m512 p = _mm512_set1_ps(1.0f / 5040);
	p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f / 720));
	p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f / 120));
	p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f / 24));
	p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f / 6));
	p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.5f));
	p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
	p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
	return _mm512_scalef_ps(p, n);
}

// segkit_avx512_softmax_ce handles pixels [p0, p1) of the flattened N×HW: it returns the sum of their
// losses (log Σ e^logit − logit[label]) and, when dlogits is not NULL, writes g·(softmax −
// one-hot) there (0 for pixels labelled ignore, whose loss is not counted). Labels are valid.
__attribute__((target("avx512f"))) double segkit_avx512_softmax_ce(long c, long hw, const float *logits,
                                                                   const int *labels, int ignore, float g,
                                                                   float *dlogits, long p0, long p1, float *tail) {
	double total = 0;
	const __m512 vg = _mm512_set1_ps(g);
	for (long p = p0, end; p < p1; p = end) { // one image at a time
		long n = p / hw;
		end = (n + 1) * hw < p1 ? (n + 1) * hw : p1;
		for (long q = p; q < end; q += 16) {
			const float *x = logits + (n * c * hw + q % hw);
			float *dx = dlogits ? dlogits + (n * c * hw + q % hw) : 0;
			__mmask16 m = end - q >= 16 ? 0xFFFF : (__mmask16)((1u << (end - q)) - 1);
			__m512i lab = _mm512_maskz_loadu_epi32(m, labels + q);
			__mmask16 live = m & _mm512_cmpneq_epi32_mask(lab, _mm512_set1_epi32(ignore));
			__m512 peak = _mm512_set1_ps(-INFINITY);
			for (long k = 0; k < c; k++) peak = _mm512_max_ps(peak, load16(m, x + k * hw));
			__m512 z = _mm512_setzero_ps(), picked = _mm512_setzero_ps();
			for (long k = 0; k < c; k++) {
				__m512 v = load16(m, x + k * hw);
				__m512 e = exp16(_mm512_sub_ps(v, peak));
				z = _mm512_add_ps(z, e);
				picked = _mm512_mask_mov_ps(picked, _mm512_cmpeq_epi32_mask(lab, _mm512_set1_epi32((int)k)), v);
				if (dx) store16(dx + k * hw, m, e);
			}
			float zs[16], ps[16], ls[16];
			_mm512_storeu_ps(zs, z), _mm512_storeu_ps(ps, peak), _mm512_storeu_ps(ls, picked);
			for (int l = 0; l < 16; l++)
				if (live >> l & 1) total += (double)ps[l] + log((double)zs[l]) - (double)ls[l];
			if (!dx) continue;
			__m512 scale = _mm512_maskz_div_ps(live, vg, z); // g/z on counted pixels, 0 elsewhere
			for (long k = 0; k < c; k++) {
				__m512 pr = _mm512_mul_ps(load16(m, dx + k * hw), scale);
				__mmask16 hot = live & _mm512_cmpeq_epi32_mask(lab, _mm512_set1_epi32((int)k));
				pr = _mm512_mask_sub_ps(pr, hot, pr, vg);
				store16(dx + k * hw, m, pr);
			}
		}
	}
	return total;
}
