// DynOPool's backward per plane, in plain C (any CPU; called where the vector kernels run): scattered adds that vectors do not help.

#pragma GCC optimize("fp-contract=off") // round as Go does: a multiply and an add stay two operations

#include "kernels.h"

// segkit_resample_back_plane is the per-cell loop of resample.go's Backward for one plane, in
// the same float32 operations: each cell's gradient goes to its winning query (won[cell]) or a
// quarter to each (won NULL: mean); a query passes it to its four pixels (dx) and, times the
// value's slope, to its row and column positions (grow, gcol).
void segkit_resample_back_plane(long W, long OH, long OW, const float *src, const float *g, float *dx,
                                const unsigned char *won, const int *ri0, const int *ri1, const float *rt,
                                const float *rmask, const int *ci0, const int *ci1, const float *ct,
                                const float *cmask, float *grow, float *gcol) {
	for (long i = 0; i < OH; i++)
		for (long j = 0; j < OW; j++) {
			float gy = g[i * OW + j];
			int k0 = won ? won[i * OW + j] : 0, k1 = won ? k0 + 1 : 4;
			if (!won) gy = 0.25f * gy;
			for (int k = k0; k < k1; k++) {
				long a = 2 * i + (k >> 1), b = 2 * j + (k & 1);
				long r0 = ri0[a] * W, r1 = ri1[a] * W, c0 = ci0[b], c1 = ci1[b];
				float tr = rt[a], tc = ct[b];
				float x00 = src[r0 + c0], x01 = src[r0 + c1], x10 = src[r1 + c0], x11 = src[r1 + c1];
				float gt = gy * (1 - tr), gb = gy * tr;
				dx[r0 + c0] += gt * (1 - tc);
				dx[r0 + c1] += gt * tc;
				dx[r1 + c0] += gb * (1 - tc);
				dx[r1 + c1] += gb * tc;
				grow[a] += rmask[a] * gy * ((1 - tc) * (x10 - x00) + tc * (x11 - x01));
				gcol[b] += cmask[b] * gy * ((1 - tr) * (x01 - x00) + tr * (x11 - x10));
			}
		}
}
