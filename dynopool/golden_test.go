package dynopool

import (
	"fmt"
	"testing"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/segkit/segkit/internal/golden"
	"github.com/segkit/segkit/internal/numcheck"
	"github.com/segkit/segkit/nn"
)

// dot: (y, gy) → Σ y·gy, so that the gradient of every input is that of L = Σ gy·y.
type dot struct{}

func (dot) Describe() string     { return "Dot" }
func (dot) Signature() []hm.Type { return []hm.Type{nn.Tensor4, nn.Tensor4, nn.Scalar} }
func (dot) Shape(in []tensor.Shape) (tensor.Shape, error) {
	if !in[0].Eq(in[1]) {
		return nil, fmt.Errorf("dot of %v and %v", in[0], in[1])
	}
	return tensor.ScalarShape(), nil
}
func (dot) Run(out G.Value, in []G.Value) error {
	var s float64
	for i, v := range nn.Floats(in[0]) {
		s += float64(v) * float64(nn.Floats(in[1])[i])
	}
	return nn.SetScalar(out, float32(s))
}
func (dot) WRT() []bool { return []bool{true, false} }
func (dot) Grads(in G.Nodes, _, g *G.Node) (G.Nodes, error) {
	d, err := G.Mul(in[1], g)
	return G.Nodes{d, nil}, err
}

type poolCase struct {
	Name     string
	Mode     string
	Alpha    []float32
	X, Y, DX golden.Tensor
	GradY    golden.Tensor `json:"grad_y"`
	OutSize  []int         `json:"out_size"`
	DAlpha   []float64     `json:"dalpha"`
	SizeIn   []float64     `json:"size_in"`
	SizeOut  []float64     `json:"size_out"`
	DSizeIn  []float64     `json:"dsize_in"`
	DSizeOut []float64     `json:"dsize_out"`
}

func values(t *testing.T, gt *golden.Tensor) []float32 {
	t.Helper()
	v, err := gt.F32()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// result of one case: y, dx and the gradients of the alpha (learned mode) or of both sizes.
type result struct {
	y, dx             []float32
	dAlpha, dIn, dOut []float32
	outH, outW        int
}

// runCase builds y = DynOPool(x) with either a learned pool (alpha) or target sizes, and
// differentiates Σ gy·y with respect to x and the alpha or the sizes.
func runCase(t *testing.T, c poolCase) result {
	t.Helper()
	b := nn.NewBuilder(nn.NewParams(0), true)
	x := b.Const("x", c.X.Shape, values(t, &c.X))
	h, w := c.X.Shape[2], c.X.Shape[3]
	var from, to Size
	var wrt G.Nodes
	if c.Alpha != nil {
		p := Pool{Name: "pool", Init: 1, MinOut: 1}
		a := b.Param("pool.alpha", []int{2}, Group, nn.Constant(1))
		copy(b.Params().Get("pool.alpha").Data(), c.Alpha)
		from = InputSize(b, h, w)
		to = p.Out(b, from)
		wrt = G.Nodes{x, a}
	} else {
		from = Size{H: h, W: w, node: b.Const("size_in", []int{2}, []float32{float32(c.SizeIn[0]), float32(c.SizeIn[1])})}
		to = Size{H: int(c.SizeOut[0]), W: int(c.SizeOut[1]), node: b.Const("size_out", []int{2}, []float32{float32(c.SizeOut[0]), float32(c.SizeOut[1])})}
		wrt = G.Nodes{x, from.node, to.node}
	}
	q, err := ParseQuery(c.Mode)
	if err != nil {
		t.Fatalf("%s: %v", c.Name, err)
	}
	y := Resample(b, "pool", x, from, to, q)
	gy := b.Const("gy", c.GradY.Shape, values(t, &c.GradY))
	loss := b.Apply("loss", dot{}, y, gy)
	if b.Err() != nil {
		t.Fatalf("%s: %v", c.Name, b.Err())
	}
	grads, err := G.Grad(loss, wrt...)
	if err != nil {
		t.Fatalf("%s: %v", c.Name, err)
	}
	prog, err := nn.Compile(b.Graph(), append(G.Nodes{y}, grads...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := prog.Run(); err != nil {
		t.Fatalf("%s: %v", c.Name, err)
	}
	r := result{y: nn.Floats(prog.Value(y)), dx: nn.Floats(prog.Value(grads[0])), outH: to.H, outW: to.W}
	if c.Alpha != nil {
		r.dAlpha = nn.Floats(prog.Value(grads[1]))
	} else {
		r.dIn, r.dOut = nn.Floats(prog.Value(grads[1])), nn.Floats(prog.Value(grads[2]))
	}
	return r
}

// Every case of the reference's dynopool.json (max and mean, integer, non-integer and
// up-sampling alphas, target-size mode) and dynopool_centre.json (the centre query, the same
// kinds of cases): y, dx and the alpha or size gradients within 1e-4.
func TestGolden(t *testing.T) {
	var files []string
	for _, name := range []string{"dynopool.json", "dynopool_centre.json"} {
		f, err := golden.Files(name)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f...)
	}
	for _, path := range files {
		var cases []poolCase
		if err := golden.Cases(path, &cases); err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			r := runCase(t, c)
			errs := []float64{numcheck.RelErr(r.y, c.Y.Data), numcheck.RelErr(r.dx, c.DX.Data)}
			if c.Alpha != nil {
				if r.outH != c.OutSize[0] || r.outW != c.OutSize[1] {
					t.Errorf("%s: output %d×%d, want %v", c.Name, r.outH, r.outW, c.OutSize)
				}
				errs = append(errs, numcheck.RelErr(r.dAlpha, c.DAlpha))
			} else {
				errs = append(errs, numcheck.RelErr(r.dIn, c.DSizeIn), numcheck.RelErr(r.dOut, c.DSizeOut))
			}
			worst := 0.0
			for _, e := range errs {
				worst = max(worst, e)
			}
			if !(worst <= 1e-4) {
				t.Errorf("%s %s: relative errors y, dx, d(alpha|sizes) = %.2g", path, c.Name, errs)
			} else {
				t.Logf("%s %s: max relative error %.2g", path, c.Name, worst)
			}
		}
	}
}
