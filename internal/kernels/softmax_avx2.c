//go:build amd64

// AVX2 softmax cross-entropy over the class planes of N×C×HW logits, 8 pixels per vector: the
// AVX-512 kernel (softmax_avx512.c) in 8-wide vectors, with the pixels past a plane's last whole
// vector done by the same code on a zero-padded copy.

#include <math.h>

#include "simd_avx2.h"
#include "kernels.h"

// exp8 is e^x for x ≤ 0, as softmax_avx512.c's exp16: 2^n·p(f), x = n·ln2 + f; 2^n is built in
// the exponent bits (n ≥ −126 after the clamp, so it is a normal number).
AVX2_INLINE __m256 exp8(__m256 x) {
	const __m256 ln2hi = _mm256_set1_ps(0.693145751953125f), ln2lo = _mm256_set1_ps(1.428606765330187e-06f);
	x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
	__m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
	                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m256 f = _mm256_fnmadd_ps(n, ln2lo, _mm256_fnmadd_ps(n, ln2hi, x));
	__m256 p = _mm256_set1_ps(1.0f / 5040);
	p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f / 720));
	p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f / 120));
	p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f / 24));
	p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f / 6));
	p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(0.5f));
	p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
	p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
	__m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
	return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

// pixels8 handles 8 pixels whose class c is at x[c·hw] (dx likewise; NULL: no gradient) with
// labels lab (the ignore label for pixels that do not count); it returns their summed loss.
AVX2_INLINE double pixels8(long c, long hw, const float *x, __m256i lab, int ignore, float g, float *dx) {
	const __m256 vg = _mm256_set1_ps(g);
	__m256 live = _mm256_castsi256_ps(
	    _mm256_xor_si256(_mm256_cmpeq_epi32(lab, _mm256_set1_epi32(ignore)), _mm256_set1_epi32(-1)));
	__m256 peak = _mm256_set1_ps(-INFINITY);
	for (long k = 0; k < c; k++) peak = _mm256_max_ps(peak, _mm256_loadu_ps(x + k * hw));
	__m256 z = _mm256_setzero_ps(), picked = _mm256_setzero_ps();
	for (long k = 0; k < c; k++) {
		__m256 v = _mm256_loadu_ps(x + k * hw);
		__m256 e = exp8(_mm256_sub_ps(v, peak));
		z = _mm256_add_ps(z, e);
		picked = _mm256_blendv_ps(picked, v, _mm256_castsi256_ps(_mm256_cmpeq_epi32(lab, _mm256_set1_epi32((int)k))));
		if (dx) _mm256_storeu_ps(dx + k * hw, e);
	}
	float zs[8], ps[8], ls[8], on[8];
	_mm256_storeu_ps(zs, z), _mm256_storeu_ps(ps, peak), _mm256_storeu_ps(ls, picked), _mm256_storeu_ps(on, live);
	double total = 0;
	for (int l = 0; l < 8; l++)
		if (on[l] != 0) total += (double)ps[l] + log((double)zs[l]) - (double)ls[l];
	if (!dx) return total;
	__m256 scale = _mm256_and_ps(live, _mm256_div_ps(vg, z)); // g/z on counted pixels, 0 elsewhere
	for (long k = 0; k < c; k++) {
		__m256 pr = _mm256_mul_ps(_mm256_loadu_ps(dx + k * hw), scale);
		__m256 hot = _mm256_and_ps(live, _mm256_castsi256_ps(_mm256_cmpeq_epi32(lab, _mm256_set1_epi32((int)k))));
		pr = _mm256_sub_ps(pr, _mm256_and_ps(hot, vg));
		_mm256_storeu_ps(dx + k * hw, pr);
	}
	return total;
}

// segkit_avx2_softmax_ce is segkit_avx512_softmax_ce (softmax_avx512.c); tail holds 2·8·c floats.
AVX2 double segkit_avx2_softmax_ce(long c, long hw, const float *logits, const int *labels, int ignore, float g,
                                   float *dlogits, long p0, long p1, float *tail) {
	double total = 0;
	for (long p = p0, end; p < p1; p = end) { // one image at a time
		long n = p / hw;
		end = (n + 1) * hw < p1 ? (n + 1) * hw : p1;
		long q = p;
		for (; q + 8 <= end; q += 8) {
			long off = n * c * hw + q % hw;
			total += pixels8(c, hw, logits + off, _mm256_loadu_si256((const __m256i *)(labels + q)), ignore, g,
			                 dlogits ? dlogits + off : 0);
		}
		if (q == end) continue;
		// The last pixels: copied to 8-wide class rows (padded with ignored zeros) and back.
		long m = end - q, off = n * c * hw + q % hw;
		int lab[8];
		for (int l = 0; l < 8; l++) lab[l] = l < m ? labels[q + l] : ignore;
		for (long k = 0; k < c; k++)
			for (int l = 0; l < 8; l++) tail[k * 8 + l] = l < m ? logits[off + k * hw + l] : 0;
		float *dt = dlogits ? tail + 8 * c : 0;
		total += pixels8(c, 8, tail, _mm256_loadu_si256((const __m256i *)lab), ignore, g, dt);
		if (dt)
			for (long k = 0; k < c; k++)
				for (long l = 0; l < m; l++) dlogits[off + k * hw + l] = dt[k * 8 + l];
	}
	return total;
}
