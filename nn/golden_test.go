package nn

import (
	"fmt"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/segkit/segkit/internal/golden"
	"github.com/segkit/segkit/internal/numcheck"
)

// The bound: max error relative to the largest reference magnitude.
const goldenTol = 1e-4

// runKernel builds x → k → y with inputs bound to ins, differentiates with the upstream
// gradient gy (nil: forward only) through k's SymDiff, and runs it with the executor.
func runKernel(k Kernel, ins []G.Value, gy G.Value) (G.Value, []G.Value, error) {
	g := G.NewGraph()
	nodes := make(G.Nodes, len(ins))
	for i, v := range ins {
		nodes[i] = G.NewTensor(g, v.Dtype(), v.Shape().Dims(), G.WithShape(v.Shape()...), G.WithValue(v), G.WithName(fmt.Sprint("in", i)))
	}
	y, err := Apply(k, nodes...)
	if err != nil {
		return nil, nil, err
	}
	outputs := G.Nodes{y}
	var grads G.Nodes
	if gy != nil {
		var gn *G.Node
		if gy.Shape().IsScalar() {
			gn = G.NewScalar(g, gy.Dtype(), G.WithValue(gy), G.WithName("dy"))
		} else {
			gn = G.NewTensor(g, gy.Dtype(), gy.Shape().Dims(), G.WithShape(gy.Shape()...), G.WithValue(gy), G.WithName("dy"))
		}
		if grads, err = (op{k}).SymDiff(nodes, y, gn); err != nil {
			return nil, nil, err
		}
		for _, n := range grads {
			if n != nil {
				outputs = append(outputs, n)
			}
		}
	}
	p, err := compile(g, outputs, &arena{})
	if err != nil {
		return nil, nil, err
	}
	if err := p.run(); err != nil {
		return nil, nil, err
	}
	vals := make([]G.Value, len(grads))
	for i, n := range grads {
		if n != nil {
			vals[i] = p.value(n)
		}
	}
	return p.value(y), vals, nil
}

// expect compares got with want and fails the test beyond goldenTol; it returns the error.
func expect(t *testing.T, what string, got G.Value, want *golden.Tensor) float64 {
	t.Helper()
	if got == nil {
		t.Errorf("%s: no value", what)
		return 0
	}
	if !got.Shape().Eq(tensor.Shape(want.Shape)) && !(got.Shape().IsScalar() && len(want.Shape) == 0) {
		t.Errorf("%s: shape %v, want %v", what, got.Shape(), want.Shape)
		return 0
	}
	e := numcheck.RelErr(Floats(got), want.Data)
	if e > goldenTol {
		t.Errorf("%s: relative error %.3g > %g", what, e, goldenTol)
	}
	return e
}

func forEachGolden(t *testing.T, name string, cases any, each func(path string)) {
	files, err := golden.Files(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range files {
		if err := golden.Cases(path, cases); err != nil {
			t.Fatal(err)
		}
		each(path)
	}
}

func TestConvGolden(t *testing.T) {
	var cases []struct {
		Name                      string
		X, Weight, Y, DX, DWeight golden.Tensor
		GradY                     golden.Tensor `json:"grad_y"`
		Bias, DBias               *golden.Tensor
		Stride, Padding, Dilation int
	}
	forEachGolden(t, "conv2d.json", &cases, func(path string) {
		for _, c := range cases {
			k := conv2d{ConvSpec: ConvSpec{Kernel: c.Weight.Shape[2], Stride: c.Stride, Pad: c.Padding, Dilation: c.Dilation, Bias: c.Bias != nil}}
			ins := []G.Value{c.X.Dense(t), c.Weight.Dense(t)}
			if c.Bias != nil {
				ins = append(ins, c.Bias.Dense(t))
			}
			y, grads, err := runKernel(k, ins, c.GradY.Dense(t))
			if err != nil {
				t.Fatalf("%s %s: %v", path, c.Name, err)
			}
			worst := max(expect(t, c.Name+" y", y, &c.Y), expect(t, c.Name+" dx", grads[0], &c.DX),
				expect(t, c.Name+" dweight", grads[1], &c.DWeight))
			if c.Bias != nil {
				worst = max(worst, expect(t, c.Name+" dbias", grads[2], c.DBias))
			}
			t.Logf("%s %s: max relative error %.2g", path, c.Name, worst)
		}
	})
}

func TestBatchNormGolden(t *testing.T) {
	var cases []struct {
		Name                  string
		X, Weight, Bias       golden.Tensor
		RunningMean           golden.Tensor `json:"running_mean"`
		RunningVar            golden.Tensor `json:"running_var"`
		GradY                 golden.Tensor `json:"grad_y"`
		Y, DX, DWeight, DBias golden.Tensor
		RunningMeanAfter      golden.Tensor `json:"running_mean_after"`
		RunningVarAfter       golden.Tensor `json:"running_var_after"`
		Momentum, Eps         float32
	}
	forEachGolden(t, "batchnorm.json", &cases, func(path string) {
		for _, c := range cases {
			rm, rv := c.RunningMean.Dense(t), c.RunningVar.Dense(t)
			st := &bnState{layer: "bn", train: true, eps: c.Eps, momentum: c.Momentum, runMean: rm.Float32s(), runVar: rv.Float32s()}
			y, grads, err := runKernel(batchNorm{st}, []G.Value{c.X.Dense(t), c.Weight.Dense(t), c.Bias.Dense(t)}, c.GradY.Dense(t))
			if err != nil {
				t.Fatalf("%s %s: %v", path, c.Name, err)
			}
			worst := max(expect(t, c.Name+" y", y, &c.Y), expect(t, c.Name+" dx", grads[0], &c.DX),
				expect(t, c.Name+" dweight", grads[1], &c.DWeight), expect(t, c.Name+" dbias", grads[2], &c.DBias),
				expect(t, c.Name+" running_mean", rm, &c.RunningMeanAfter), expect(t, c.Name+" running_var", rv, &c.RunningVarAfter))
			t.Logf("%s %s: max relative error %.2g", path, c.Name, worst)
		}
	})
}

func TestBilinearGolden(t *testing.T) {
	var cases []struct {
		Name         string
		X, Y, DX     golden.Tensor
		GradY        golden.Tensor `json:"grad_y"`
		OutSize      [2]int        `json:"out_size"`
		AlignCorners bool          `json:"align_corners"`
	}
	check := func(path string) {
		for _, c := range cases {
			y, grads, err := runKernel(resize{c.OutSize[0], c.OutSize[1], c.AlignCorners}, []G.Value{c.X.Dense(t)}, c.GradY.Dense(t))
			if err != nil {
				t.Fatalf("%s %s: %v", path, c.Name, err)
			}
			worst := max(expect(t, c.Name+" y", y, &c.Y), expect(t, c.Name+" dx", grads[0], &c.DX))
			t.Logf("%s %s: max relative error %.2g", path, c.Name, worst)
		}
	}
	// align_corners=False (tools/reference/golden.py) and True (testdata/make_bilinear_aligned.py).
	forEachGolden(t, "bilinear.json", &cases, check)
	const aligned = "testdata/bilinear_align_corners.json"
	if err := golden.Cases(aligned, &cases); err != nil {
		t.Fatal(err)
	}
	check(aligned)
}

func TestCrossEntropyGolden(t *testing.T) {
	var cases []struct {
		Name           string
		Logits, Labels golden.Tensor
		DLogits        golden.Tensor
		Loss           float64
		IgnoreIndex    int `json:"ignore_index"`
	}
	forEachGolden(t, "cross_entropy.json", &cases, func(path string) {
		for _, c := range cases {
			if c.IgnoreIndex != IgnoreIndex {
				t.Fatalf("%s %s: ignore index %d, the engine uses %d", path, c.Name, c.IgnoreIndex, IgnoreIndex)
			}
			lab, err := c.Labels.I32()
			if err != nil {
				t.Fatal(err)
			}
			labels := tensor.New(tensor.WithShape(c.Labels.Shape...), tensor.WithBacking(lab))
			loss, grads, err := runKernel(crossEntropy{}, []G.Value{c.Logits.Dense(t), labels}, G.NewF32(1))
			if err != nil {
				t.Fatalf("%s %s: %v", path, c.Name, err)
			}
			worst := max(expect(t, c.Name+" loss", loss, &golden.Tensor{Data: []float64{c.Loss}}),
				expect(t, c.Name+" dlogits", grads[0], &c.DLogits))
			t.Logf("%s %s: max relative error %.2g", path, c.Name, worst)
		}
	})
}
