package onnxref

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/segkit/segkit/onnx"
)

// one builds a model of a single node reading x (and the given initializers) into y.
func one(node onnx.Node, inits ...onnx.Tensor) *onnx.Model {
	node.Outputs = []string{"y"}
	return &onnx.Model{Graph: onnx.Graph{Nodes: []onnx.Node{node}, Initializers: inits,
		Inputs: []onnx.Value{{Name: "x"}}, Outputs: []onnx.Value{{Name: "y"}}}}
}

func run1(t *testing.T, m *onnx.Model, shape []int, x ...float64) Tensor {
	t.Helper()
	out, err := Run(m, map[string]Tensor{"x": {Shape: shape, F: x}})
	if err != nil {
		t.Fatal(err)
	}
	return out["y"]
}

func close(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > 1e-12 {
			return false
		}
	}
	return true
}

// Values worked out by hand from the operator definitions.
func TestOps(t *testing.T) {
	resize := func(mode string, sizes ...int64) *onnx.Model {
		return one(onnx.Node{Op: "Resize", Inputs: []string{"x", "", "", "s"},
			Attrs: []onnx.Attr{onnx.String("mode", "linear"), onnx.String("coordinate_transformation_mode", mode)}},
			onnx.Int64Tensor("s", []int64{4}, sizes))
	}
	// Half-pixel 2 → 4: x_orig = (x + ½)/2 − ½ = −¼ (clamped to 0), ¼, ¾, 1¼ (clamped to 1).
	if y := run1(t, resize("half_pixel", 1, 1, 1, 4), []int{1, 1, 1, 2}, 0, 1); !close(y.F, []float64{0, 0.25, 0.75, 1}) {
		t.Errorf("half_pixel 2 → 4: %v", y.F)
	}
	// Align corners 2 → 3: 0, ½, 1; and 3 → 1 reads index 0.
	if y := run1(t, resize("align_corners", 1, 1, 3, 1), []int{1, 1, 2, 1}, 0, 1); !close(y.F, []float64{0, 0.5, 1}) {
		t.Errorf("align_corners 2 → 3: %v", y.F)
	}
	// Half-pixel 3 → 2 on both axes: rows and columns at ¼ and 1¾ of x = 10·row + column.
	x := []float64{0, 1, 2, 10, 11, 12, 20, 21, 22}
	if y := run1(t, resize("half_pixel", 1, 1, 2, 2), []int{1, 1, 3, 3}, x...); !close(y.F, []float64{2.75, 4.25, 17.75, 19.25}) {
		t.Errorf("half_pixel 3×3 → 2×2: %v", y.F)
	}
	pool := func(op string) *onnx.Model {
		return one(onnx.Node{Op: op, Inputs: []string{"x"}, Attrs: []onnx.Attr{onnx.Ints("kernel_shape", 2, 2), onnx.Ints("strides", 2, 2)}})
	}
	if y := run1(t, pool("MaxPool"), []int{1, 1, 3, 3}, x...); !close(y.F, []float64{11}) || !slices.Equal(y.Shape, []int{1, 1, 1, 1}) {
		t.Errorf("MaxPool: %v %v", y.F, y.Shape)
	}
	if y := run1(t, pool("AveragePool"), []int{1, 1, 3, 3}, x...); !close(y.F, []float64{5.5}) {
		t.Errorf("AveragePool: %v", y.F)
	}
	// A 3×3 conv with padding 1, stride 2, on a 3×3 input of ones: corners see 4 ones, plus bias.
	conv := one(onnx.Node{Op: "Conv", Inputs: []string{"x", "w", "b"}, Attrs: []onnx.Attr{onnx.Ints("pads", 1, 1, 1, 1), onnx.Ints("strides", 2, 2)}},
		onnx.FloatTensor("w", []int64{1, 1, 3, 3}, []float32{1, 1, 1, 1, 1, 1, 1, 1, 1}), onnx.FloatTensor("b", []int64{1}, []float32{0.5}))
	if y := run1(t, conv, []int{1, 1, 3, 3}, 1, 1, 1, 1, 1, 1, 1, 1, 1); !close(y.F, []float64{4.5, 4.5, 4.5, 4.5}) {
		t.Errorf("Conv: %v", y.F)
	}
	sm := run1(t, one(onnx.Node{Op: "Softmax", Inputs: []string{"x"}, Attrs: []onnx.Attr{onnx.Int("axis", 1)}}), []int{1, 2, 1, 1}, 0, math.Log(3))
	if !close(sm.F, []float64{0.25, 0.75}) {
		t.Errorf("Softmax: %v", sm.F)
	}
	// Pixel 0 has 1, 7, 7 and pixel 1 has 5, 5, 2 over the three classes.
	am := run1(t, one(onnx.Node{Op: "ArgMax", Inputs: []string{"x"}, Attrs: []onnx.Attr{onnx.Int("axis", 1)}}), []int{1, 3, 1, 2}, 1, 5, 7, 5, 7, 2)
	if !slices.Equal(am.I, []int64{1, 0}) || !slices.Equal(am.Shape, []int{1, 1, 1, 2}) {
		t.Errorf("ArgMax (first of ties): %v %v", am.I, am.Shape)
	}
	// Shape → Slice [0:1] → Concat with [3]: a symbolic batch's sizes.
	m := &onnx.Model{Graph: onnx.Graph{
		Nodes: []onnx.Node{
			{Op: "Shape", Inputs: []string{"x"}, Outputs: []string{"s"}},
			{Op: "Slice", Inputs: []string{"s", "zero", "one"}, Outputs: []string{"n"}},
			{Op: "Concat", Inputs: []string{"n", "three"}, Outputs: []string{"y"}, Attrs: []onnx.Attr{onnx.Int("axis", 0)}},
		},
		Initializers: []onnx.Tensor{onnx.Int64Tensor("zero", []int64{1}, []int64{0}), onnx.Int64Tensor("one", []int64{1}, []int64{1}), onnx.Int64Tensor("three", []int64{1}, []int64{3})},
		Outputs:      []onnx.Value{{Name: "y"}},
	}}
	if y := run1(t, m, []int{2, 1, 1, 1}, 0, 0); !slices.Equal(y.I, []int64{2, 3}) {
		t.Errorf("Shape/Slice/Concat: %v", y.I)
	}
}

func TestErrors(t *testing.T) {
	for _, c := range []struct {
		m    *onnx.Model
		want string
	}{
		{one(onnx.Node{Op: "Gemm", Inputs: []string{"x"}}), "op Gemm is not evaluated"},
		{one(onnx.Node{Op: "Relu", Inputs: []string{"z"}}), `input "z" is not defined`},
		{one(onnx.Node{Op: "Add", Inputs: []string{"x"}}), "1 inputs, want 2"},
		{one(onnx.Node{Op: "Resize", Inputs: []string{"x"}, Attrs: []onnx.Attr{onnx.String("mode", "linear")}}), "only explicit sizes"},
	} {
		_, err := Run(c.m, map[string]Tensor{"x": {Shape: []int{1, 1, 1, 1}, F: []float64{1}}})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.m.Graph.Nodes[0].Op, err, c.want)
		}
	}
}
