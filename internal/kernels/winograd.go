package kernels

// Winograd F(2×2, 3×3) for 3×3, stride-1, undilated convolutions: each 2×2 output tile costs
// 16 multiplies per channel pair instead of 36. The 16 positions ξ of the 4×4 transformed
// tiles are independent GEMMs over channels:
//   V[ξ][c][t] = (Bᵀ d B)[ξ], U[ξ][k][c] = (G g Gᵀ)[ξ], M[ξ] = U[ξ]·V[ξ], y = Aᵀ M A.
// The data gradient is the same forward pass over dy with the flipped, transposed filter;
// the filter gradient is dU[ξ] = (A dy Aᵀ)[ξ]·V[ξ]ᵀ, then dg = Gᵀ dU G.
// Tiles (over all images) are processed in blocks small enough for V and M to stay in cache:
// each goroutine transforms a block, runs its 16 GEMMs single-threaded and transforms back.

// UseWinograd selects Winograd for the convolutions it applies to (see winogradOK). Off: with
// OpenBLAS GEMMs per position it measured slower than im2col on every benchmark shape.
var UseWinograd = false

// Block size bounds, in tiles.
var WinoMinBlock, WinoMaxBlock = 32, 512

// winoU holds the transformed filter; winoBufs the per-goroutine block buffers.
var (
	winoU    workspace
	winoBufs []winoBuf
)

type winoBuf struct{ v, m, du []float32 }

func grow(buf *[]float32, n int) []float32 {
	if cap(*buf) < n {
		*buf = make([]float32, n)
	}
	return (*buf)[:n]
}

// winogradOK reports whether the Winograd path applies: 3×3, stride 1, dilation 1, and
// padding at most 2 (so the data gradient is again such a convolution).
func (c Conv) winogradOK() bool {
	return UseWinograd && c.Kernel == 3 && c.Stride == 1 && c.Dilation == 1 && c.Pad <= 2
}

// wino is a Winograd pass: the 2×2-tile grid of the output, blocked.
type wino struct {
	Conv
	oh, ow, th, tw int
	tiles, block   int // tiles over the batch, tiles per block
}

func (c Conv) wino() wino {
	oh, ow := c.OutSize()
	p := wino{Conv: c, oh: oh, ow: ow, th: (oh + 1) / 2, tw: (ow + 1) / 2}
	p.tiles = c.N * p.th * p.tw
	// V and M of a block in about 1 MiB, but wide enough for efficient GEMMs.
	p.block = min(max((1<<20)/(64*(c.C+c.K)), WinoMinBlock), WinoMaxBlock, p.tiles)
	if len(winoBufs) < Workers {
		winoBufs = append(winoBufs, make([]winoBuf, Workers-len(winoBufs))...)
	}
	return p
}

func (p wino) blocks() int { return (p.tiles + p.block - 1) / p.block }

// span returns block b's first tile and its number of tiles.
func (p wino) span(b int) (int, int) {
	t0 := b * p.block
	return t0, min(p.block, p.tiles-t0)
}

// each calls fn(t, n, y0, x0) for the tiles [t0, t0+nb): index within the block, image and
// top-left output pixel.
func (p wino) each(t0, nb int, fn func(t, n, y0, x0 int)) {
	n, rest := t0/(p.th*p.tw), t0%(p.th*p.tw)
	ti, tj := rest/p.tw, rest%p.tw
	for t := 0; t < nb; t++ {
		fn(t, n, 2*ti, 2*tj)
		if tj++; tj == p.tw {
			tj = 0
			if ti++; ti == p.th {
				ti = 0
				n++
			}
		}
	}
}

// winoFilter writes U (16×K×C) from w (K×C×3×3); with flip set it transforms instead the
// filter of the data gradient, w'[c][k] = rot180(w[k][c]), as a C×K filter bank.
func winoFilter(w []float32, k, c int, flip bool, u []float32) {
	rows, cols := k, c
	if flip {
		rows, cols = c, k
	}
	kc := rows * cols
	parallelFor(rows, cols*64, func(lo, hi int) {
		var g [9]float32
		for r := lo; r < hi; r++ {
			for s := 0; s < cols; s++ {
				if flip {
					src := w[(s*c+r)*9 : (s*c+r)*9+9]
					for i := 0; i < 9; i++ {
						g[i] = src[8-i]
					}
				} else {
					copy(g[:], w[(r*c+s)*9:])
				}
				// G g Gᵀ with G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1].
				var q [12]float32
				for j := 0; j < 3; j++ {
					q[j] = g[j]
					q[3+j] = 0.5 * (g[j] + g[3+j] + g[6+j])
					q[6+j] = 0.5 * (g[j] - g[3+j] + g[6+j])
					q[9+j] = g[6+j]
				}
				off := r*cols + s
				for i := 0; i < 4; i++ {
					a, b, e := q[3*i], q[3*i+1], q[3*i+2]
					u[(4*i)*kc+off] = a
					u[(4*i+1)*kc+off] = 0.5 * (a + b + e)
					u[(4*i+2)*kc+off] = 0.5 * (a - b + e)
					u[(4*i+3)*kc+off] = e
				}
			}
		}
	})
}

// input writes V (16×C×nb) for the tiles [t0, t0+nb) of x.
func (p wino) input(x []float32, t0, nb int, v []float32) {
	cs := p.C * nb
	var d [16]float32
	for ch := 0; ch < p.C; ch++ {
		p.each(t0, nb, func(t, n, y0, x0 int) {
			plane := x[(n*p.C+ch)*p.H*p.W : (n*p.C+ch+1)*p.H*p.W]
			r0, c0 := y0-p.Pad, x0-p.Pad
			if r0 >= 0 && c0 >= 0 && r0+4 <= p.H && c0+4 <= p.W {
				for r := 0; r < 4; r++ {
					copy(d[4*r:4*r+4], plane[(r0+r)*p.W+c0:])
				}
			} else {
				for r := 0; r < 4; r++ {
					for q := 0; q < 4; q++ {
						ih, iw := r0+r, c0+q
						if ih >= 0 && ih < p.H && iw >= 0 && iw < p.W {
							d[4*r+q] = plane[ih*p.W+iw]
						} else {
							d[4*r+q] = 0
						}
					}
				}
			}
			// Bᵀ d B with Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1].
			var m [16]float32
			for q := 0; q < 4; q++ {
				m[q] = d[q] - d[8+q]
				m[4+q] = d[4+q] + d[8+q]
				m[8+q] = d[8+q] - d[4+q]
				m[12+q] = d[4+q] - d[12+q]
			}
			base := ch*nb + t
			for r := 0; r < 4; r++ {
				a, b, cc, e := m[4*r], m[4*r+1], m[4*r+2], m[4*r+3]
				v[(4*r)*cs+base] = a - cc
				v[(4*r+1)*cs+base] = b + cc
				v[(4*r+2)*cs+base] = cc - b
				v[(4*r+3)*cs+base] = b - e
			}
		})
	}
}

// output writes the tiles [t0, t0+nb) of y = Aᵀ M A (+ bias) from M (16×K×nb).
func (p wino) output(m, bias, y []float32, t0, nb int) {
	ks := p.K * nb
	for k := 0; k < p.K; k++ {
		var b float32
		if bias != nil {
			b = bias[k]
		}
		p.each(t0, nb, func(t, n, oy, ox int) {
			plane := y[(n*p.K+k)*p.oh*p.ow : (n*p.K+k+1)*p.oh*p.ow]
			base := k*nb + t
			var v [16]float32
			for i := range v {
				v[i] = m[i*ks+base]
			}
			// Aᵀ v A with Aᵀ = [1 1 1 0; 0 1 −1 −1].
			var s [8]float32
			for q := 0; q < 4; q++ {
				s[q] = v[q] + v[4+q] + v[8+q]
				s[4+q] = v[4+q] - v[8+q] - v[12+q]
			}
			ow := p.ow
			plane[oy*ow+ox] = s[0] + s[1] + s[2] + b
			if ox+1 < ow {
				plane[oy*ow+ox+1] = s[1] - s[2] - s[3] + b
			}
			if oy+1 < p.oh {
				plane[(oy+1)*ow+ox] = s[4] + s[5] + s[6] + b
				if ox+1 < ow {
					plane[(oy+1)*ow+ox+1] = s[5] - s[6] - s[7] + b
				}
			}
		})
	}
}

// gradOutput writes dM (16×K×nb) = A dy Aᵀ for the tiles [t0, t0+nb) of dy (zero past the edges).
func (p wino) gradOutput(dy []float32, t0, nb int, dm []float32) {
	ks := p.K * nb
	for k := 0; k < p.K; k++ {
		p.each(t0, nb, func(t, n, oy, ox int) {
			plane := dy[(n*p.K+k)*p.oh*p.ow : (n*p.K+k+1)*p.oh*p.ow]
			ow := p.ow
			var g [4]float32
			g[0] = plane[oy*ow+ox]
			if ox+1 < ow {
				g[1] = plane[oy*ow+ox+1]
			}
			if oy+1 < p.oh {
				g[2] = plane[(oy+1)*ow+ox]
				if ox+1 < ow {
					g[3] = plane[(oy+1)*ow+ox+1]
				}
			}
			// A g Aᵀ with A = [1 0; 1 1; 1 −1; 0 −1].
			a := [8]float32{g[0], g[1], g[0] + g[2], g[1] + g[3], g[0] - g[2], g[1] - g[3], -g[2], -g[3]}
			base := k*nb + t
			for i := 0; i < 4; i++ {
				l, r := a[2*i], a[2*i+1]
				dm[(4*i)*ks+base] = l
				dm[(4*i+1)*ks+base] = l + r
				dm[(4*i+2)*ks+base] = l - r
				dm[(4*i+3)*ks+base] = -r
			}
		})
	}
}

// forward computes y from x given the transformed filter u (16×K×C).
func (p wino) forward(x, u, bias, y []float32) {
	parallelBlocks(p.blocks(), func(w, b int) {
		t0, nb := p.span(b)
		buf := &winoBufs[w]
		v, m := grow(&buf.v, 16*p.C*nb), grow(&buf.m, 16*p.K*nb)
		p.input(x, t0, nb, v)
		for xi := 0; xi < 16; xi++ {
			Sgemm(false, false, p.K, nb, p.C, 1, u[xi*p.K*p.C:], p.C, v[xi*p.C*nb:], nb, 0, m[xi*p.K*nb:], nb)
		}
		p.output(m, bias, y, t0, nb)
	})
}

// backwardFilter computes dw (K×C×3×3) from x and dy.
func (p wino) backwardFilter(x, dy, dw []float32) {
	size := 16 * p.K * p.C
	used := make([]bool, len(winoBufs))
	parallelBlocks(p.blocks(), func(w, b int) {
		t0, nb := p.span(b)
		buf := &winoBufs[w]
		v, dm, du := grow(&buf.v, 16*p.C*nb), grow(&buf.m, 16*p.K*nb), grow(&buf.du, size)
		beta := float32(1)
		if !used[w] {
			used[w], beta = true, 0
		}
		p.input(x, t0, nb, v)
		p.gradOutput(dy, t0, nb, dm)
		for xi := 0; xi < 16; xi++ {
			Sgemm(false, true, p.K, p.C, nb, 1, dm[xi*p.K*nb:], nb, v[xi*p.C*nb:], nb, beta, du[xi*p.K*p.C:], p.C)
		}
	})
	var du []float32
	for w, ok := range used {
		if !ok {
			continue
		}
		if du == nil {
			du = winoBufs[w].du[:size]
			continue
		}
		for i, g := range winoBufs[w].du[:size] {
			du[i] += g
		}
	}
	winoFilterGrad(du, p.K, p.C, dw)
}

// winoFilterGrad writes dw (K×C×3×3) = Gᵀ dU G from dU (16×K×C).
func winoFilterGrad(du []float32, k, c int, dw []float32) {
	kc := k * c
	parallelFor(kc, 64, func(lo, hi int) {
		for off := lo; off < hi; off++ {
			var u [16]float32
			for i := range u {
				u[i] = du[i*kc+off]
			}
			// Gᵀ u G with Gᵀ = [1 ½ ½ 0; 0 ½ −½ 0; 0 ½ ½ 1].
			var p [12]float32
			for q := 0; q < 4; q++ {
				p[q] = u[q] + 0.5*(u[4+q]+u[8+q])
				p[4+q] = 0.5 * (u[4+q] - u[8+q])
				p[8+q] = 0.5*(u[4+q]+u[8+q]) + u[12+q]
			}
			out := dw[off*9 : off*9+9]
			for i := 0; i < 3; i++ {
				a, b, e, f := p[4*i], p[4*i+1], p[4*i+2], p[4*i+3]
				out[3*i] = a + 0.5*(b+e)
				out[3*i+1] = 0.5 * (b - e)
				out[3*i+2] = 0.5*(b+e) + f
			}
		}
	})
}
