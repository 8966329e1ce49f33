package nn

import (
	"testing"

	"gorgonia.org/tensor"

	"github.com/segkit/segkit/internal/numcheck"
)

func scalarParam(name, group string, w float32) *Param {
	return &Param{Name: name, Group: group, Value: tensor.New(tensor.WithShape(1), tensor.WithBacking([]float32{w}))}
}

// Two steps of torch.optim.SGD(momentum=0.9, weight_decay=0.01, lr=0.1) with gradient 0.5, by
// hand: v1 = 0.5 + 0.01·1 = 0.51, w1 = 0.949; v2 = 0.9·0.51 + 0.5 + 0.01·0.949, w2 = 0.852151.
// The "alpha" group has 10× the learning rate and no decay: w1 = 1 − 1·0.5 = 0.5.
func TestSGDMatchesPyTorchWithGroups(t *testing.T) {
	ps := NewParams(0)
	w, a := scalarParam("w", "", 1), scalarParam("alpha", "alpha", 1)
	ps.list = []*Param{w, a}
	opt := &SGD{LR: 0.1, Momentum: 0.9, WeightDecay: 0.01, Groups: map[string]Group{"alpha": {LRMult: 10, NoDecay: true}}}
	for _, p := range ps.list {
		p.Grad = []float32{0.5}
	}
	opt.Step(ps)
	if got := w.Data()[0]; !numcheck.Close(float64(got), 0.949, 1e-6) {
		t.Errorf("w after one step = %v, want 0.949", got)
	}
	if got := a.Data()[0]; !numcheck.Close(float64(got), 0.5, 1e-6) {
		t.Errorf("alpha after one step = %v, want 0.5", got)
	}
	opt.Step(ps)
	if got := w.Data()[0]; !numcheck.Close(float64(got), 0.852151, 1e-6) {
		t.Errorf("w after two steps = %v, want 0.852151", got)
	}
	if got := a.Data()[0]; !numcheck.Close(float64(got), 0.5-0.95, 1e-6) { // v2 = 0.45 + 0.5
		t.Errorf("alpha after two steps = %v, want -0.45", got)
	}
	buf := &Param{Name: "running_mean", Buffer: true, Value: tensor.New(tensor.WithShape(1), tensor.WithBacking([]float32{3})), Grad: []float32{1}}
	ps.list = append(ps.list, buf)
	opt.Step(ps)
	if buf.Data()[0] != 3 {
		t.Error("SGD changed a buffer")
	}
}

func TestPolyLR(t *testing.T) {
	for _, c := range []struct {
		iter, max int
		want      float64
	}{
		{0, 40000, 0.01},
		{20000, 40000, 0.0099*0.5358867312681466 + 1e-4},
		{40000, 40000, 1e-4},
		{50000, 40000, 1e-4},
	} {
		if got := PolyLR(0.01, 1e-4, c.iter, c.max, 0.9); !numcheck.Close(got, c.want, 1e-12) {
			t.Errorf("PolyLR(iter %d of %d) = %v, want %v", c.iter, c.max, got, c.want)
		}
	}
}
