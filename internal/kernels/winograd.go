package kernels

// #include "kernels.h"
import "C"

// winogradTiles is the number of 4×4 output tiles per block (the GEMM panel width).
const winogradTiles = 64

// winograd reports whether Forward takes the Winograd path (winograd_tmpl.h). Its GEMMs always
// compute whole blocks of winogradTiles tiles, and its transformed filter is 4× the filter's
// size: with fewer tiles than one block, or blocks less than half full on average, it costs
// more than the direct convolution saves (measured: 384 channels, 2×16×16 break even).
func (c Conv) winograd() bool {
	if !c.Winograd || level() == isaPortable || c.Kernel != 3 || c.Stride != 1 || c.Pad != 1 || c.Dilation != 1 ||
		c.C < 8 || c.K < 8 {
		return false
	}
	if c.PerImage {
		c.N = 1
	}
	tiles, blocks := c.winogradTiles()
	return tiles >= winogradTiles && blocks*winogradTiles <= 2*tiles
}

// winogradTiles returns the 4×4 output tiles of all images and the blocks they are split into
// (a block may span two images).
func (c Conv) winogradTiles() (tiles, blocks int) {
	tiles = c.N * ((c.H + 3) / 4) * ((c.W + 3) / 4)
	return tiles, (tiles + winogradTiles - 1) / winogradTiles
}

// forwardWinograd computes y = ep(conv(x, w)) with Winograd F(4×4, 3×3): the filter is
// transformed once (split over the filters), then blocks of tiles run in parallel; with fewer
// blocks than goroutines, each block's output channels are split too.
func (c Conv) forwardWinograd(x, w []float32, ep Affine, y []float32) {
	u := convScratch.get(36 * c.K * c.C)
	pu, pw := ptr(u), ptr(w)
	k := simd()
	parallelFor(c.K, 36*c.C*4, func(lo, hi int) {
		C.segkit_wino_filter(k, C.long(c.K), C.long(c.C), pw, pu, C.long(lo), C.long(hi))
	})
	sc, sh, add, relu := ptr(ep.Scale), ptr(ep.Shift), ptr(ep.Add), cbool(ep.ReLU)
	tiles, blocks := c.winogradTiles()
	// Blocks of equal size, a multiple of the goroutines in number (72 tiles on 2 used to be
	// 64 + 8); the kernels take whole groups of 8 tiles best. Every tile's result is the same
	// whatever block it is in.
	blocks = Workers * ((blocks + Workers - 1) / Workers)
	per := min(winogradTiles, (tiles+blocks-1)/blocks+7) &^ 7
	blocks = (tiles + per - 1) / per
	parts := 1
	if blocks < Workers {
		parts = (Workers + blocks - 1) / blocks
	}
	step := (c.K + parts - 1) / parts
	parallelBlocks(blocks*parts, func(_, i int) {
		t0, k0 := (i/parts)*per, (i%parts)*step
		nt, k1 := min(per, tiles-t0), min(k0+step, c.K)
		C.segkit_wino_block(k, C.long(c.C), C.long(c.K), C.long(c.H), C.long(c.W), ptr(x), pu, sc, sh, add, relu,
			ptr(y), C.long(t0), C.long(nt), C.long(k0), C.long(k1))
	})
}
