package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/segkit/segkit/internal/numcheck"
)

// TestBatchNormPaths compares the C batch norm of every path the CPU runs (training and eval forward, backward in
// both modes, with and without ReLU) with the Go one, on planes smaller than a vector, off the
// vector width and over several summation blocks.
func TestBatchNormPaths(t *testing.T) {
	needCPaths(t)
	rng := rand.New(rand.NewPCG(2, 7))
	for _, s := range [][3]int{{2, 3, 1}, {2, 5, 37}, {3, 4, 1000}, {2, 17, 256}} {
		for _, relu := range []bool{false, true} {
			b := BatchNorm{N: s[0], C: s[1], HW: s[2], Eps: 1e-5, ReLU: relu}
			n := b.N * b.C * b.HW
			x, dy := randSlice(rng, n), randSlice(rng, n)
			for i := range x {
				x[i] = 3*x[i] + 1
			}
			gamma, beta := randSlice(rng, b.C), randSlice(rng, b.C)
			type out struct{ y, ye, dx, dxe, dg, db, mean, inv, rm, rv []float32 }
			o := make([]out, len(cpuPaths()))
			last := onPaths(func(i int) {
				r := out{make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, b.C),
					make([]float32, b.C), make([]float32, b.C), make([]float32, b.C), make([]float32, b.C), make([]float32, b.C)}
				for c := range r.rv {
					r.rm[c], r.rv[c] = 0.5, 2
				}
				st := Stats{Mean: r.mean, InvStd: r.inv}
				b.ForwardTrain(x, gamma, beta, r.y, st, r.rm, r.rv, 0.1)
				b.ForwardEval(x, gamma, beta, r.ye, r.rm, r.rv)
				var mask []float32
				if relu {
					mask = r.y
				}
				b.Backward(x, mask, dy, gamma, st, true, r.dx, r.dg, r.db)
				b.Backward(x, mask, dy, gamma, st, false, r.dxe, make([]float32, b.C), make([]float32, b.C))
				o[i] = r
			}) - 1
			for i, g := range o[:last] {
				w := o[last]
				for _, f := range []struct {
					name      string
					got, want []float32
				}{{"y", g.y, w.y}, {"eval y", g.ye, w.ye}, {"dx", g.dx, w.dx}, {"eval dx", g.dxe, w.dxe},
					{"dgamma", g.dg, w.dg}, {"dbeta", g.db, w.db}, {"mean", g.mean, w.mean},
					{"invstd", g.inv, w.inv}, {"running mean", g.rm, w.rm}, {"running var", g.rv, w.rv}} {
					worst, peak := numcheck.MaxDiff(f.got, f.want)
					if !(worst <= 1e-5*peak+1e-7) { // the floor: gradients that cancel to ~0 (two values per channel)
						t.Errorf("%s %s relu=%v: %s differs by %.3g (scale %.3g)", isaNames[cpuPaths()[i]], fmt.Sprint(s), relu, f.name, worst, peak)
					}
				}
			}
		}
	}
}
