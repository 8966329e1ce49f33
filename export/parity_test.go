package export

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/segkit/segkit/export/internal/onnxref"
	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/internal/numcheck"
	"github.com/segkit/segkit/onnx"
	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/segmentation/checkpoint"
	"github.com/segkit/segkit/segmentation/infer"
	"github.com/segkit/segkit/voc"
)

// runner runs an exported model (decoded m, encoded raw) on the N×3×H×W input x and returns its
// output: float values, or int64 labels, and the shape.
type runner func(t testing.TB, m *onnx.Model, raw []byte, x []float32, shape []int) ([]float32, []int64, []int)

// reference runs the graph in package onnxref (float64, from the operator definitions).
func reference(t testing.TB, m *onnx.Model, _ []byte, x []float32, shape []int) ([]float32, []int64, []int) {
	t.Helper()
	in := onnxref.Tensor{Shape: shape, F: make([]float64, len(x))}
	for i, v := range x {
		in.F[i] = float64(v)
	}
	outs, err := onnxref.Run(m, map[string]onnxref.Tensor{m.Graph.Inputs[0].Name: in})
	if err != nil {
		t.Fatal(err)
	}
	o := outs[m.Graph.Outputs[0].Name]
	if o.Int {
		return nil, o.I, o.Shape
	}
	f := make([]float32, len(o.F))
	for i, v := range o.F {
		f[i] = float32(v)
	}
	return f, nil, o.Shape
}

// parityCase is a model exported at a size, with its input and the logits it must give.
type parityCase struct {
	name  string
	model Model
	opt   Options
	shape []int     // the input's
	want  []float32 // PyTorch's logits; nil: segkit's own
}

func parityCases(t testing.TB) []parityCase {
	cases := []parityCase{
		{name: "fixed 75×100", model: testModel(t, hrnet.Fixed, false, nil, 1), opt: Options{H: 75, W: 100, Batch: 1}},
		{name: "DynOPool max, anisotropic alphas, 75×100", model: testModel(t, hrnet.DynOPool, false, anisotropic, 2), opt: Options{H: 75, W: 100, Batch: 1}},
		{name: "DynOPool mean, anisotropic alphas, 61×77", model: testModel(t, hrnet.DynOPool, true, anisotropic, 3), opt: Options{H: 61, W: 77, Batch: 1}},
		{name: "DynOPool at alpha 2, 64×64 (exact pools)", model: testModel(t, hrnet.DynOPool, false, nil, 4), opt: Options{H: 64, W: 64, Batch: 1}},
		{name: "DynOPool, symbolic batch of 2, 45×60", model: testModel(t, hrnet.DynOPool, false, anisotropic, 5), opt: Options{H: 45, W: 60}},
		{name: "DynOPool strided, bilinear up, anisotropic alphas, 75×100", model: stridedModel(t, anisotropic, 6), opt: Options{H: 75, W: 100, Batch: 1}},
		{name: "DynOPool strided at alpha 2, 64×64 (identity resizes)", model: stridedModel(t, nil, 7), opt: Options{H: 64, W: 64, Batch: 1}},
	}
	g := importerGoldens(t)
	for _, f := range importerFixtures {
		cases = append(cases, parityCase{name: "imported " + f.file + " 75×100", model: importFixture(t, f),
			opt: Options{H: 75, W: 100, Batch: 1}, want: g[f.golden].Data})
	}
	for i := range cases {
		c := &cases[i]
		n := c.opt.Batch
		if n == 0 { // symbolic: run two images
			n = 2
		}
		c.shape = []int{n, 3, c.opt.H, c.opt.W}
	}
	return cases
}

// testParity exports every case and compares what run computes with segkit's logits and, for
// imported models, PyTorch's.
func testParity(t *testing.T, run runner) {
	g := importerGoldens(t)
	for _, c := range parityCases(t) {
		t.Run(c.name, func(t *testing.T) {
			x := randomInput(c.shape[0], c.shape[2], c.shape[3], 9)
			if c.want != nil {
				x = g["input"].Data
			}
			ours, shape := segkitLogits(t, c.model.Net, x, c.shape...)
			m, raw := export(t, c.model, c.opt)
			got, _, gotShape := run(t, m, raw, x, c.shape)
			if !slices.Equal(gotShape, shape) {
				t.Fatalf("output shape %v, segkit's %v", gotShape, shape)
			}
			e, _ := checkParity(t, "vs segkit", got, ours, shape)
			t.Logf("max |ONNX − segkit| / max |segkit| = %.3g", e)
			if c.want != nil {
				e, _ := checkParity(t, "vs PyTorch", got, c.want, shape)
				t.Logf("max |ONNX − PyTorch| / max |PyTorch| = %.3g", e)
			}
		})
	}
}

// The exported graphs, evaluated by the ONNX operator definitions, compute segkit's logits (and
// PyTorch's, for imported models): fixed and DynOPool models with anisotropic alphas (one axis at
// 1), max and mean, odd sizes, a symbolic batch, mmseg's two-step fuse and align_corners.
func TestParityReference(t *testing.T) {
	testParity(t, reference)
}

// The outputs a deployment asks for: up-sampled probabilities and labels, on a symbolic batch of
// two images normalised with the metadata's mean and std, equal segkit's inference (which
// normalises and up-samples itself) on the same images.
func testOutputs(t *testing.T, run runner) {
	m := testModel(t, hrnet.DynOPool, false, anisotropic, 6)
	const h, w = 45, 60
	m.State.Config.TestScale = [2]int{w, h} // the test transform keeps 45×60 images as they are
	inf := infer.ForConfig(m.State.Config)
	imgs := []voc.RGB{testImage(h, w, 1), testImage(h, w, 2)}
	for _, out := range []Output{Probs, Labels} {
		om, raw := export(t, m, Options{H: h, W: w, Output: out, Upsample: true})
		mean, std := metaFloats(t, om, "mean"), metaFloats(t, om, "std")
		x := make([]float32, 0, 2*3*h*w)
		for _, img := range imgs {
			for c := 0; c < 3; c++ {
				for i := 0; i < h*w; i++ {
					x = append(x, float32((float64(img.Pix[3*i+c])-mean[c])/std[c]))
				}
			}
		}
		f, labels, shape := run(t, om, raw, x, []int{2, 3, h, w})
		// Softmax moves no probability by more than half the largest change of a logit: the
		// logits' tolerance bounds the probabilities'.
		logits, _ := segkitLogits(t, m.Net, x, 2, 3, h, w)
		probTol := 0.5 * tol * numcheck.Peak(logits)
		for b, img := range imgs {
			switch out {
			case Probs:
				want, k, err := inf.Probabilities(m.Net, img)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(shape, []int{2, k, h, w}) {
					t.Fatalf("probs of shape %v", shape)
				}
				d, _ := numcheck.MaxDiff(f[b*k*h*w:(b+1)*k*h*w], want)
				t.Logf("image %d: probabilities within %.3g (bound %.3g; logits peak %.3g)", b, d, probTol, numcheck.Peak(logits))
				if !(d <= probTol) {
					t.Errorf("image %d: probabilities differ by up to %.3g > %.3g", b, d, probTol)
				}
			case Labels:
				want, err := inf.Predict(m.Net, img)
				if err != nil {
					t.Fatal(err)
				}
				probs, k, _ := inf.Probabilities(m.Net, img)
				if !slices.Equal(shape, []int{2, 1, h, w}) {
					t.Fatalf("labels of shape %v", shape)
				}
				differ := 0
				for i, l := range want {
					best, second := argmax2(probs, 0, k, h*w, i)
					if int64(l) != labels[b*h*w+i] && float64(probs[best*h*w+i]-probs[second*h*w+i]) > 2*probTol {
						differ++
					}
				}
				if differ > 0 {
					t.Errorf("image %d: %d labels differ from segkit's away from ties", b, differ)
				}
			}
		}
	}
}

func TestOutputsReference(t *testing.T) { testOutputs(t, reference) }

// testImage is an h×w image of smooth colours with a few edges.
func testImage(h, w int, seed int) voc.RGB {
	img := voc.RGB{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			for c := 0; c < 3; c++ {
				v := 128 + 100*math.Sin(float64(x*(c+seed))/7+float64(y*(3-c))/5)
				if (x/11+y/9+seed)%3 == 0 {
					v = 255 - v
				}
				img.Pix[3*(y*w+x)+c] = uint8(v)
			}
		}
	}
	return img
}

// The graph is what the issue specifies: opset 13 and IR 7; no BatchNormalization (folded into
// the convolutions, in float64); every Resize linear with explicit sizes (never scales) and
// half-pixel centres; every DynOPool resize a MaxPool (2×2, stride 2) after a Resize to twice its
// size, left out only where that Resize would be the identity; the metadata a deployment needs.
func TestGraphStructure(t *testing.T) {
	m := testModel(t, hrnet.DynOPool, false, anisotropic, 2)
	om, _ := export(t, m, Options{H: 75, W: 100, Batch: 1})
	if om.IRVersion != 7 || om.Opset != 13 || om.ProducerName != "segkit" {
		t.Errorf("IR %d, opset %d, producer %q", om.IRVersion, om.Opset, om.ProducerName)
	}
	ops := map[string]int{}
	values := map[string]*onnx.Node{}
	for i := range om.Graph.Nodes {
		n := &om.Graph.Nodes[i]
		ops[n.Op]++
		values[n.Outputs[0]] = n
	}
	inits := map[string]onnx.Tensor{}
	for _, t := range om.Graph.Initializers {
		inits[t.Name] = t
	}
	if ops["BatchNormalization"] != 0 || ops["Conv"] == 0 || ops["MaxPool"] == 0 || ops["AveragePool"] != 0 {
		t.Errorf("ops %v", ops)
	}
	// w18_small_v1 resizes 33 times: the stem twice, 3 new branches, 15 fuse down-steps (1, 4 and
	// 10 in the modules of 2, 3 and 4 branches), 10 fuse and 3 head up-samplings. Level sizes
	// 75×100 → 33×59 → 14×35 → 9×15 → 9×12 → 5×5: none is an exact halving.
	if ops["MaxPool"] != 33 || ops["Resize"] != 33 {
		t.Errorf("%d MaxPool and %d Resize nodes, want 33 and 33", ops["MaxPool"], ops["Resize"])
	}
	for _, n := range om.Graph.Nodes {
		switch n.Op {
		case "Resize":
			mode, _ := n.Attr("mode")
			coord, _ := n.Attr("coordinate_transformation_mode")
			if len(n.Inputs) != 4 || n.Inputs[1] != "" || n.Inputs[2] != "" || mode.String != "linear" || coord.String != "half_pixel" {
				t.Errorf("Resize %s: inputs %q, mode %q, %q", n.Name, n.Inputs, mode.String, coord.String)
			}
			if s, err := inits[n.Inputs[3]].Int64s(); err != nil || len(s) != 4 || s[0] != 1 || s[2]%2 != 0 || s[3]%2 != 0 {
				t.Errorf("Resize %s: sizes %v (%v), want N, C and an even size", n.Name, s, err)
			}
		case "MaxPool":
			k, _ := n.Attr("kernel_shape")
			s, _ := n.Attr("strides")
			src := values[n.Inputs[0]]
			if !slices.Equal(k.Ints, []int64{2, 2}) || !slices.Equal(s.Ints, []int64{2, 2}) || src == nil || src.Op != "Resize" {
				t.Errorf("MaxPool %s: kernel %v, strides %v, after %v", n.Name, k.Ints, s.Ints, src)
			}
		}
	}
	// conv1's weights: the batch norm folded in float64.
	w, b := m.Net.Params.Get("conv1.weight").Data(), m.Net.Params.Get("bn1.weight").Data()
	mean, vr, beta := m.Net.Params.Get("bn1.running_mean").Data(), m.Net.Params.Get("bn1.running_var").Data(), m.Net.Params.Get("bn1.bias").Data()
	fw, err1 := inits["conv1.weight"].Floats()
	fb, err2 := inits["conv1.bias"].Floats()
	if err1 != nil || err2 != nil || len(fw) != len(w) || len(fb) != 64 {
		t.Fatalf("conv1's initializers: %v, %v", err1, err2)
	}
	for k := 0; k < 64; k++ {
		s := float64(b[k]) / math.Sqrt(float64(vr[k])+1e-5)
		if got, want := fb[k], float32(float64(beta[k])-float64(mean[k])*s); math.Abs(float64(got-want)) > 1e-6 {
			t.Errorf("conv1 bias %d: %v, want %v", k, got, want)
		}
		for i := 0; i < 27; i++ {
			if got, want := fw[k*27+i], float32(float64(w[k*27+i])*s); math.Abs(float64(got-want)) > 1e-6*math.Abs(float64(want))+1e-12 {
				t.Errorf("conv1 weight %d,%d: %v, want %v", k, i, got, want)
			}
		}
	}
	var classes []string
	var alphas map[string][2]float32
	var levels map[string][2]int
	for key, v := range map[string]any{"classes": &classes, "alphas": &alphas, "level_sizes": &levels} {
		s, _ := om.Meta(key)
		if err := json.Unmarshal([]byte(s), v); err != nil {
			t.Errorf("metadata %s = %q: %v", key, s, err)
		}
	}
	if !slices.Equal(classes, m.State.Classes) || alphas["pools.transition2.alpha"] != anisotropic["pools.transition2.alpha"] ||
		levels["0"] != [2]int{14, 35} || levels["3"] != [2]int{5, 5} {
		t.Errorf("metadata: classes %v, alphas %v, level sizes %v", classes, alphas, levels)
	}
	for _, key := range []string{"palette", "mean", "std", "config", "resize", "segkit_version", "input_size", "output"} {
		if v, ok := om.Meta(key); !ok || v == "" {
			t.Errorf("metadata lacks %s", key)
		}
	}
	// At alpha 2 on 64×64 the pools that halve exactly need no Resize, and the logits at 16×16
	// and 1/4 resolution make every fuse up-sampling a Resize to twice the size.
	init := testModel(t, hrnet.DynOPool, false, nil, 4)
	om, _ = export(t, init, Options{H: 64, W: 64, Batch: 1})
	ops = map[string]int{}
	for _, n := range om.Graph.Nodes {
		ops[n.Op]++
	}
	if ops["MaxPool"] != 33 || ops["Resize"] != 13 { // 64 → 32 → 16 → 8 → 4 → 2: only the 13 up-samplings resize
		t.Errorf("at alpha 2: %d MaxPool, %d Resize, want 33 and 13", ops["MaxPool"], ops["Resize"])
	}
	// Imported conventions: mmseg's two-step fuse is two Resizes; align_corners is the mode.
	for _, f := range importerFixtures {
		im := importFixture(t, f)
		om, _ := export(t, im, Options{H: 75, W: 100, Batch: 1})
		n, align := 0, 0
		for _, node := range om.Graph.Nodes {
			if node.Op == "Resize" {
				n++
				if c, _ := node.Attr("coordinate_transformation_mode"); c.String == "align_corners" {
					align++
				}
			}
		}
		if f.align && align != n || !f.align && align != 0 {
			t.Errorf("%s: %d of %d Resizes align corners", f.file, align, n)
		}
		// 10 fuse up-samplings (two steps each for mmseg: no ×2^k lands on a size at 75×100) and 3 in the head.
		if want := map[bool]int{false: 10*2 + 3, true: 10 + 3}[f.align]; n != want {
			t.Errorf("%s: %d Resizes, want %d", f.file, n, want)
		}
	}
}

// The default size is the checkpoint's test size: the crop's shape rescaled to the test scale,
// or the crop for slide evaluation.
func TestDefaultSize(t *testing.T) {
	for _, c := range []struct {
		dataset string
		h, w    int
	}{{"voc", 512, 512}, {"cityscapes", 1024, 2048}, {"pascal_context", 480, 480}, {"camvid", 360, 480}} {
		r, err := segmentation.RecipeFor(c.dataset)
		if err != nil {
			t.Fatal(err)
		}
		if h, w := DefaultSize(r.Config); h != c.h || w != c.w {
			t.Errorf("%s: default size %d×%d, want %d×%d", c.dataset, h, w, c.h, c.w)
		}
	}
}

// Bad input is one clear error: unknown outputs, sizes the model or TensorRT cannot take, files
// that are not segkit checkpoints.
func TestErrors(t *testing.T) {
	m := testModel(t, hrnet.DynOPool, false, nil, 1)
	for _, c := range []struct {
		opt  Options
		want string
	}{
		{Options{H: 64, W: 64, Output: "softmax"}, `unknown output "softmax": logits, probs or labels`},
		{Options{H: 0, W: 64}, "input size 0×64: both sides must be positive"},
		{Options{H: 64, W: 64, Batch: -1}, "batch -1: positive, or 0 for a symbolic batch"},
		{Options{H: 40000, W: 40000, Batch: 1}, "input 1×3×40000×40000 has 2^31 elements or more: too large for TensorRT"},
		{Options{H: 12000, W: 12000, Batch: 1}, "layer bn1: its output [1 64 6000 6000] has 2^31 elements or more"},
		{Options{H: 4000, W: 4000, Batch: 1, Upsample: true, Output: Probs}, ""},
	} {
		_, err := ONNX(m, c.opt)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.opt, err, c.want)
		}
	}
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.onnx")
	os.WriteFile(junk, []byte("not a checkpoint at all"), 0o644)
	for _, c := range []struct{ path, want string }{
		{filepath.Join(dir, "missing.safetensors"), "no such file"},
		{junk, "not a checkpoint"},
		{"../importer/testdata/mmseg_0x.pth", "convert a PyTorch model with 'segtrain import' first"},
	} {
		if _, err := Checkpoint(c.path, Options{}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.path, err, c.want)
		}
	}
	nameless := filepath.Join(dir, "nameless.safetensors")
	if err := checkpoint.SaveCheckpoint(nameless, m.Net.Params, checkpoint.State{Config: m.State.Config}); err != nil {
		t.Fatal(err)
	}
	if _, err := Checkpoint(nameless, Options{}); err == nil || !strings.Contains(err.Error(), "does not name its classes") {
		t.Errorf("a checkpoint without class names: %v", err)
	}
}

// A checkpoint exports at its test size by default, with its alphas and classes.
func TestCheckpoint(t *testing.T) {
	m := testModel(t, hrnet.DynOPool, false, anisotropic, 3)
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := checkpoint.SaveCheckpoint(path, m.Net.Params, m.State); err != nil {
		t.Fatal(err)
	}
	om, err := Checkpoint(path, Options{Batch: 1})
	if err != nil {
		t.Fatal(err)
	}
	in := om.Graph.Inputs[0]
	if in.Name != "input" || in.Type != onnx.Float || fmt.Sprint(in.Shape) != "[1 3 64 64]" {
		t.Errorf("input %+v, want 1×3×64×64 (the crop at the test scale)", in)
	}
	out := om.Graph.Outputs[0]
	// 64 → round(64/2.3) = 28 → 12 rows, 64 → round(64/1.7) = 38 → 22 columns.
	if out.Name != "logits" || out.Type != onnx.Float || fmt.Sprint(out.Shape) != "[1 5 12 22]" {
		t.Errorf("output %+v, want logits 1×5×12×22", out)
	}
	if s, _ := om.Meta("alphas"); !strings.Contains(s, `"pools.stem.alpha":[2.3,1.7]`) {
		t.Errorf("alphas %s", s)
	}
}
