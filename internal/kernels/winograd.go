package kernels

/*
void segkit_wino_filter(long K, long C, const float *w, float *u, long k0, long k1);
void segkit_wino_block(long C, long K, long H, long W, const float *x, const float *u, const float *scale,
                       const float *shift, const float *add, int relu, float *y, long t0, long nt);
*/
import "C"

// winogradTiles is the number of 4×4 output tiles per block (the GEMM panel width).
const winogradTiles = 64

// winograd reports whether Forward takes the Winograd path (sgemm_avx512.c). Its GEMMs always
// compute whole blocks of winogradTiles tiles: with blocks less than half full on average they
// would cost more than the direct convolution saves.
func (c Conv) winograd() bool {
	if !c.Winograd || !useAVX512 || c.Kernel != 3 || c.Stride != 1 || c.Pad != 1 || c.Dilation != 1 ||
		c.C < 8 || c.K < 8 {
		return false
	}
	tiles, blocks := c.winogradTiles()
	return blocks*winogradTiles <= 2*tiles
}

// winogradTiles returns the 4×4 output tiles of one image and the blocks they are split into.
func (c Conv) winogradTiles() (tiles, blocks int) {
	tiles = ((c.H + 3) / 4) * ((c.W + 3) / 4)
	return tiles, (tiles + winogradTiles - 1) / winogradTiles
}

// forwardWinograd computes y = ep(conv(x, w)) with Winograd F(4×4, 3×3): the filter is
// transformed once (split over the filters), then blocks of tiles run in parallel.
func (c Conv) forwardWinograd(x, w []float32, ep Affine, y []float32) {
	u := convScratch.get(36 * c.K * c.C)
	pu, pw := ptr(u), ptr(w)
	parallelFor(c.K, 36*c.C*4, func(lo, hi int) {
		C.segkit_wino_filter(C.long(c.K), C.long(c.C), pw, pu, C.long(lo), C.long(hi))
	})
	sc, sh, relu := ptr(ep.Scale), ptr(ep.Shift), cbool(ep.ReLU)
	tiles, per := c.winogradTiles()
	plane := c.H * c.W
	parallelBlocks(c.N*per, func(_, b int) {
		n, t0 := b/per, (b%per)*winogradTiles
		nt := min(winogradTiles, tiles-t0)
		C.segkit_wino_block(C.long(c.C), C.long(c.K), C.long(c.H), C.long(c.W),
			ptr(x[n*c.C*plane:]), pu, sc, sh, ptr(ep.from(n*c.K*plane).Add), relu, ptr(y[n*c.K*plane:]),
			C.long(t0), C.long(nt))
	})
}
