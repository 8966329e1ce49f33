package dynopool

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"

	"github.com/segkit/segkit/internal/kernels"
	"github.com/segkit/segkit/internal/numcheck"
	"github.com/segkit/segkit/nn"
)

func meanOrMax(mean bool) Query {
	if mean {
		return Mean
	}
	return Max
}

func randFloats(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// maxPool2 is MaxPool2d(kernel 2, stride 2) and its gradient (to the first maximum).
func maxPool2(x, dy []float32, planes, h, w int) (y, dx []float32) {
	oh, ow := h/2, w/2
	y, dx = make([]float32, planes*oh*ow), make([]float32, len(x))
	for p := 0; p < planes; p++ {
		for i := 0; i < oh; i++ {
			for j := 0; j < ow; j++ {
				best := p*h*w + 2*i*w + 2*j
				for _, off := range []int{1, w, w + 1} {
					if k := p*h*w + 2*i*w + 2*j + off; x[k] > x[best] {
						best = k
					}
				}
				y[(p*oh+i)*ow+j] = x[best]
				dx[best] += dy[(p*oh+i)*ow+j]
			}
		}
	}
	return y, dx
}

// alpha = 2 on even sizes is 2×2 stride-2 max-pooling, bit for bit, forward and backward.
func TestAlpha2IsMaxPool(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range [][4]int{{2, 3, 8, 12}, {1, 5, 16, 16}, {3, 2, 2, 6}, {1, 4, 10, 14}, {2, 48, 64, 64}} {
		planes, h, w := s[0]*s[1], s[2], s[3]
		x := randFloats(rng, planes*h*w)
		r := kernels.Resample{Planes: planes, H: h, W: w, OH: h / 2, OW: w / 2,
			SizeIn: [2]float64{float64(h), float64(w)}, SizeOut: [2]float64{float64(h / 2), float64(w / 2)}}
		y := make([]float32, planes*(h/2)*(w/2))
		r.Forward(x, y, nil)
		dy := randFloats(rng, len(y))
		dx := make([]float32, len(x))
		r.Backward(x, dy, dx, nil)
		wantY, wantDx := maxPool2(x, dy, planes, h, w)
		for i := range y {
			if y[i] != wantY[i] {
				t.Fatalf("%v: y[%d] = %v, max-pool %v", s, i, y[i], wantY[i])
			}
		}
		for i := range dx {
			if dx[i] != wantDx[i] {
				t.Fatalf("%v: dx[%d] = %v, max-pool %v", s, i, dx[i], wantDx[i])
			}
		}
	}
}

// onCentre reports whether an interior query of the axis lies on a pixel centre, where the
// bilinear read has a kink and finite differences do not apply.
func onCentre(n int, sizeIn, sizeOut float64) bool {
	out := int(math.Round(sizeOut))
	ratio := float32(sizeIn) / float32(sizeOut)
	for k := 0; k < 2*out; k++ {
		u := (float32(k/2)+[2]float32{0.25, 0.75}[k%2])*ratio - 0.5
		if u > 0 && u < float32(n-1) && u == float32(int(u)) {
			return true
		}
	}
	return false
}

// The size gradients against finite differences in the straight-through sizes (positions from a
// real-valued size, the integer output size held fixed), and dL/dalpha = dL/dHs·(−H/alpha²).
func TestSizeGradientsFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct {
		h, w  int
		alpha [2]float32
		mean  bool
	}{
		{9, 13, [2]float32{1.7, 2.3}, false}, {16, 16, [2]float32{3.1, 1.4}, true}, {5, 7, [2]float32{0.6, 0.8}, false},
		{12, 10, [2]float32{1.3, 2.6}, true}, {20, 11, [2]float32{2.2, 1.8}, false},
	} {
		p := Pool{Name: "p", Init: 1, MinOut: 1}
		oh, ow := p.axis(c.h, c.alpha[0]), p.axis(c.w, c.alpha[1])
		if onCentre(c.h, float64(c.h), float64(oh)) || onCentre(c.w, float64(c.w), float64(ow)) {
			t.Fatalf("case %+v has queries on pixel centres; pick another", c)
		}
		planes := 3
		x := randFloats(rng, planes*c.h*c.w)
		dy := randFloats(rng, planes*oh*ow)
		loss := func(sh, sw float64) float64 {
			r := kernels.Resample{Planes: planes, H: c.h, W: c.w, OH: oh, OW: ow, Mean: c.mean,
				SizeIn: [2]float64{float64(c.h), float64(c.w)}, SizeOut: [2]float64{sh, sw}}
			y := make([]float32, len(dy))
			r.Forward(x, y, nil)
			var l float64
			for i := range y {
				l += float64(y[i]) * float64(dy[i])
			}
			return l
		}
		r := kernels.Resample{Planes: planes, H: c.h, W: c.w, OH: oh, OW: ow, Mean: c.mean,
			SizeIn: [2]float64{float64(c.h), float64(c.w)}, SizeOut: [2]float64{float64(oh), float64(ow)}}
		_, dOut := r.Backward(x, dy, make([]float32, len(x)), nil)
		const eps = 1e-3
		fd := [2]float64{
			(loss(float64(oh)+eps, float64(ow)) - loss(float64(oh)-eps, float64(ow))) / (2 * eps),
			(loss(float64(oh), float64(ow)+eps) - loss(float64(oh), float64(ow)-eps)) / (2 * eps),
		}
		for i := 0; i < 2; i++ {
			if !numcheck.Close(dOut[i], fd[i], 1e-2*(1+math.Abs(fd[i]))) {
				t.Errorf("%+v: dL/dHs[%d] = %.6g, finite difference %.6g", c, i, dOut[i], fd[i])
			}
		}

		// Through the graph: dL/dalpha is dL/dHs times the chain rule.
		b := nn.NewBuilder(nn.NewParams(0), true)
		a := b.Param("p.alpha", []int{2}, Group, nn.Constant(1))
		copy(b.Params().Get("p.alpha").Data(), c.alpha[:])
		xn := b.Const("x", []int{1, planes, c.h, c.w}, x)
		in := InputSize(b, c.h, c.w)
		y := Resample(b, "p", xn, in, p.Out(b, in), meanOrMax(c.mean))
		l := b.Apply("loss", dot{}, y, b.Const("dy", []int{1, planes, oh, ow}, dy))
		grads, err := G.Grad(l, a)
		if err != nil {
			t.Fatal(err)
		}
		prog, err := nn.Compile(b.Graph(), grads...)
		if err != nil {
			t.Fatal(err)
		}
		if err := prog.Run(); err != nil {
			t.Fatal(err)
		}
		da := nn.Floats(prog.Value(grads[0]))
		for i, n := range []int{c.h, c.w} {
			want := fd[i] * (-float64(n) / (float64(c.alpha[i]) * float64(c.alpha[i])))
			if !numcheck.Close(float64(da[i]), want, 1e-2*(1+math.Abs(want))) {
				t.Errorf("%+v: dL/dalpha[%d] = %.6g, finite difference × chain rule %.6g", c, i, da[i], want)
			}
		}
	}
}

// Random shapes (tiny ones included) and alphas never panic and keep sizes within the clamps.
func TestRandomShapesStayInRange(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for trial := 0; trial < 300; trial++ {
		h, w := 1+rng.IntN(20), 1+rng.IntN(20)
		if trial%5 == 0 {
			h = 1
		}
		p := Pool{Name: "p", Init: 1, MinOut: 1 + rng.IntN(3), CapAtInput: rng.IntN(2) == 0}
		alpha := [2]float32{0.2 + 6*rng.Float32(), 0.2 + 6*rng.Float32()}
		params := nn.NewParams(0)
		b := nn.NewBuilder(params, true)
		a := b.Param("p.alpha", []int{2}, Group, nn.Constant(1))
		copy(params.Get("p.alpha").Data(), alpha[:])
		x := b.Const("x", []int{1, 2, h, w}, randFloats(rng, 2*h*w))
		in := InputSize(b, h, w)
		out := p.Out(b, in)
		name := fmt.Sprintf("%d×%d alpha %v %+v", h, w, alpha, p)
		inRange := func(s, n int) bool {
			lo := max(p.MinOut, 1)
			if p.CapAtInput { // the cap wins over MinOut on inputs smaller than MinOut
				return s >= min(lo, n) && s <= n
			}
			return s >= lo
		}
		if !inRange(out.H, h) || !inRange(out.W, w) {
			t.Fatalf("%s: output size %d×%d out of range", name, out.H, out.W)
		}
		y := Resample(b, "p", x, in, out, Query(rng.IntN(3)))
		l := b.Apply("loss", dot{}, y, b.Const("dy", []int{1, 2, out.H, out.W}, randFloats(rng, 2*out.H*out.W)))
		if b.Err() != nil {
			t.Fatalf("%s: %v", name, b.Err())
		}
		grads, err := G.Grad(l, x, a)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		prog, err := nn.Compile(b.Graph(), append(G.Nodes{y}, grads...)...)
		if err == nil {
			err = prog.Run()
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, v := range nn.Floats(prog.Value(grads[1])) {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("%s: alpha gradient %v", name, v)
			}
		}
		p.Clamp(params, h, w)
		if oh, ow := p.OutSize(params, h, w); !inRange(oh, h) || !inRange(ow, w) {
			t.Fatalf("%s: after Clamp, size %d×%d", name, oh, ow)
		}
	}
}

func TestClamps(t *testing.T) {
	params := nn.NewParams(0)
	b := nn.NewBuilder(params, true)
	p := Pool{Name: "p", Init: 40, MinOut: 2}
	b.Param("p.alpha", []int{2}, Group, nn.Constant(40))
	params.Get("p.alpha").Data()[1] = 3
	if h, w := p.OutSize(params, 9, 13); h != 2 || w != 4 {
		t.Errorf("min_out 2, 9×13, alpha (40, 3): %d×%d, want 2×4", h, w)
	}
	p.Clamp(params, 9, 13)
	if a := p.Alpha(params); a[0] != 4.5 || a[1] != 3 {
		t.Errorf("clamped alpha %v, want (4.5, 3)", a)
	}
	up := Pool{Name: "u", Init: 0.5, MinOut: 1, CapAtInput: true}
	if h, w := up.OutSize(params, 9, 13); h != 9 || w != 13 {
		t.Errorf("cap at input, alpha 0.5: %d×%d, want 9×13", h, w)
	}
	half := Pool{Name: "e", Init: 4, MinOut: 1}
	if h, w := half.OutSize(params, 10, 14); h != 2 || w != 4 {
		t.Errorf("10/4 = 2.5 and 14/4 = 3.5 round half to even: %d×%d, want 2×4", h, w)
	}
}

// The complexity loss and its gradient, as the reference's check: a pool at alpha 2 on 64×48
// feeding one layer with baseline 32×24 and 1.5 GMACs, λ = 0.1: L = 0.15 and
// dL/dalpha_h = 0.1·24/(32·24)·1.5·(−64/4).
func TestGMACsLoss(t *testing.T) {
	for _, hinge := range []bool{false, true} {
		params := nn.NewParams(0)
		b := nn.NewBuilder(params, true)
		p := Pool{Name: "p", Init: 2, MinOut: 1}
		in := InputSize(b, 64, 48)
		out := p.Out(b, in)
		terms := []Term{{Size: out, H0: 32, W0: 24, GMACs0: 1.5}}
		if g := Current(terms); g != 1.5 {
			t.Errorf("current GMACs %v, want 1.5", g)
		}
		Loss(b, terms, Budget{Lambda: 0.1, Scale: 1, Hinge: hinge, Limit: 2})
		loss := b.Losses()[0]
		grads, err := G.Grad(loss, b.ParamNode("p.alpha"))
		if err != nil {
			t.Fatal(err)
		}
		prog, err := nn.Compile(b.Graph(), loss, grads[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := prog.Run(); err != nil {
			t.Fatal(err)
		}
		l, _ := nn.ScalarValue(prog.Value(loss))
		da := nn.Floats(prog.Value(grads[0]))
		wantL, wantDa := 0.15, 0.1*24/(32.0*24)*1.5*(-64.0/4)
		if hinge { // 1.5 GMACs is under the limit of 2: no loss, no gradient
			wantL, wantDa = 0, 0
		}
		if !numcheck.Close(float64(l), wantL, 1e-6) || !numcheck.Close(float64(da[0]), wantDa, 1e-6) {
			t.Errorf("hinge=%t: loss %v, dalpha_h %v; want %v, %v", hinge, l, da[0], wantL, wantDa)
		}
	}
}
