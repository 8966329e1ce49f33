package importer

import (
	"encoding/json"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/internal/golden"
	"github.com/segkit/segkit/internal/numcheck"
	"github.com/segkit/segkit/nn"
	"github.com/segkit/segkit/weights"
)

// goldens are the logits of each family's own PyTorch forward (testdata/make_fixtures.py).
type goldens struct {
	Input           golden.Tensor `json:"input"`
	Classes         []string      `json:"classes"`
	Palette         [][3]uint8    `json:"palette"`
	NegatedBN       []string      `json:"negated_bn"`
	MMSeg           golden.Tensor `json:"mmseg"`
	MMSegDirectFuse golden.Tensor `json:"mmseg_direct_fuse"`
	OfficialABN     golden.Tensor `json:"official_abn"`
	OfficialABNBN   golden.Tensor `json:"official_abn_bn"`
	Official        golden.Tensor `json:"official"`
	OfficialAligned golden.Tensor `json:"official_aligned"`
}

func readGoldens(t *testing.T) *goldens {
	t.Helper()
	raw, err := os.ReadFile("testdata/import_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g goldens
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	return &g
}

func convert(t *testing.T, path string, opt Options) *Model {
	t.Helper()
	f, err := weights.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Convert(f, opt)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// logits runs the imported model, with its conventions, on x (eval mode) and checks that every
// parameter came from the file.
func logits(t *testing.T, m *Model, x *tensor.Dense) []float32 {
	t.Helper()
	h, err := hrnet.New(m.Config, m.Classes, hrnet.Fixed)
	if err != nil {
		t.Fatal(err)
	}
	h.AlignCorners, h.TwoStepFuse = m.AlignCorners, m.Convention == ConventionMMSeg
	net := nn.NewNet(h, 0)
	g, err := net.Graph(nn.Inference, x.Shape())
	if err != nil {
		t.Fatal(err)
	}
	if rep := weights.Apply(net.Params, m.Tensors, nil); !rep.OK() || len(rep.Unexpected) > 0 {
		t.Fatalf("the imported tensors do not fit the model: %v", rep)
	}
	if err := g.Forward(x, nil); err != nil {
		t.Fatal(err)
	}
	return slices.Clone(g.Logits().Float32s())
}

// expectLogits compares logits with PyTorch's (≤ 1e-5 relative: 10× PyTorch's own float32 spread
// from float64 on these models, as export's tol) and the argmax maps exactly
// wherever the reference's top two classes are not within the error of each other.
func expectLogits(t *testing.T, what string, got []float32, want *golden.Tensor) {
	t.Helper()
	e := numcheck.RelErr(got, want.Data)
	if !(e <= 1e-5) {
		t.Errorf("%s: logits relative error %.3g", what, e)
		return
	}
	c, hw := want.Shape[1], want.Shape[2]*want.Shape[3]
	_, peak := numcheck.MaxDiff(got, want.Data)
	margin := 1e-5 * peak
	ties, wrong := 0, 0
	for i := 0; i < hw; i++ {
		best, second, arg := math.Inf(-1), math.Inf(-1), -1
		gotArg, gotBest := -1, float32(math.Inf(-1))
		for k := 0; k < c; k++ {
			v := want.Data[k*hw+i]
			if v > best {
				best, second, arg = v, best, k
			} else if v > second {
				second = v
			}
			if got[k*hw+i] > gotBest {
				gotBest, gotArg = got[k*hw+i], k
			}
		}
		if best-second < 2*margin {
			ties++
			continue
		}
		if gotArg != arg {
			wrong++
		}
	}
	if wrong > 0 {
		t.Errorf("%s: argmax differs from PyTorch's at %d of %d pixels", what, wrong, hw)
	}
	t.Logf("%s: relative error %.2g, argmax exact on %d pixels (%d near-ties skipped)", what, e, hw-ties, ties)
}

// mmseg files of both containers: detected, the layout and classes read off the shapes and the
// metadata, and the logits of mmseg's forward (two-step fuse) on a 75×100 input; the direct
// fuse gives other logits there, so the convention is what makes them match.
func TestMMSeg(t *testing.T) {
	g := readGoldens(t)
	x := g.Input.Dense(t)
	for _, c := range []struct{ file, container string }{{"mmseg_0x.pth", "mmcv"}, {"mmseg_1x.pth", "mmengine"}} {
		m := convert(t, "testdata/"+c.file, Options{})
		if m.Family != MMSeg || m.Container != c.container || m.Config != "w18_small_v1" || m.Classes != 8 ||
			m.Convention != ConventionMMSeg || m.AlignCorners || m.ABN {
			t.Errorf("%s: %s in %q, %s, %d classes, convention %q, align_corners %v, ABN %v", c.file, m.Family,
				m.Container, m.Config, m.Classes, m.Convention, m.AlignCorners, m.ABN)
		}
		if !slices.Equal(m.Names, g.Classes) || !slices.Equal(m.Palette, g.Palette) {
			t.Errorf("%s: classes %v, palette %v", c.file, m.Names, m.Palette)
		}
		if len(m.Report.Synthesized) != 1 || !strings.HasPrefix(m.Report.Synthesized[0], "last_layer.0.bias") {
			t.Errorf("%s: synthesized %v, want the head conv's bias", c.file, m.Report.Synthesized)
		}
		expectLogits(t, c.file, logits(t, m, x), &g.MMSeg)
		m.Convention = ""
		if e := numcheck.RelErr(logits(t, m, x), g.MMSeg.Data); !(e > 1e-2) {
			t.Errorf("%s: the one-step fuse is within %.3g of mmseg's logits at 75×100: the test cannot tell them apart", c.file, e)
		}
	}
}

// The official file trained with InPlaceABN (no num_batches_tracked, negative BN weights):
// detected as ABN and folded to |γ| + 1e-5, or read as plain BN when asked; align_corners=True
// as the file's config says; the loss's class weights dropped.
func TestOfficialInPlaceABN(t *testing.T) {
	g := readGoldens(t)
	x := g.Input.Dense(t)
	aligned := true
	m := convert(t, "testdata/official_abn.pth", Options{AlignCorners: &aligned})
	if m.Family != Official || !m.ABN || !m.AlignCorners || m.Names != nil || m.Classes != 8 {
		t.Errorf("official_abn.pth: %s, ABN %v, align_corners %v, names %v, %d classes", m.Family, m.ABN, m.AlignCorners, m.Names, m.Classes)
	}
	if !slices.Equal(m.Report.Dropped, []string{"loss.criterion.weight"}) {
		t.Errorf("dropped %v, want the loss's class weights", m.Report.Dropped)
	}
	for _, name := range g.NegatedBN {
		if !slices.Contains(m.Report.Folded, strings.TrimPrefix(name, "model.")) {
			t.Errorf("BN weight %s not folded (folded: %d)", name, len(m.Report.Folded))
		}
	}
	expectLogits(t, "official InPlaceABN, align_corners", logits(t, m, x), &g.OfficialABN)
	plain := convert(t, "testdata/official_abn.pth", Options{AlignCorners: &aligned, BN: BNPlain})
	if plain.ABN || len(plain.Report.Folded) != 0 {
		t.Errorf("--bn bn still folded %d weights", len(plain.Report.Folded))
	}
	expectLogits(t, "official read as BN, align_corners", logits(t, plain, x), &g.OfficialABNBN)
}

// An official state_dict with plain BN (it has num_batches_tracked): not folded; its logits with
// align_corners False (the default) and True.
func TestOfficialBN(t *testing.T) {
	g := readGoldens(t)
	x := g.Input.Dense(t)
	const path = "../weights/testdata/hrnet_tiny_fixed.pth"
	m := convert(t, path, Options{})
	if m.Family != Official || m.ABN || m.AlignCorners || m.Convention != "" {
		t.Errorf("%s: %s, ABN %v, align_corners %v, convention %q", path, m.Family, m.ABN, m.AlignCorners, m.Convention)
	}
	expectLogits(t, "official", logits(t, m, x), &g.Official)
	aligned := true
	expectLogits(t, "official, align_corners", logits(t, convert(t, path, Options{AlignCorners: &aligned}), x), &g.OfficialAligned)
	if _, err := Convert(&weights.File{Tensors: renamed(t, "backbone.", "")}, Options{AlignCorners: &aligned}); err == nil ||
		!strings.Contains(err.Error(), "--align-corners") {
		t.Errorf("an mmseg file with --align-corners: %v", err)
	}
}

// official returns the official tensors of the fixture file.
func official(t *testing.T) map[string]weights.Tensor {
	t.Helper()
	f, err := weights.Read("../weights/testdata/hrnet_tiny_fixed.pth")
	if err != nil {
		t.Fatal(err)
	}
	return f.Tensors
}

// renamed returns the official tensors in mmseg's layout (prefix on the backbone) plus extra.
func renamed(t *testing.T, prefix string, extra ...string) map[string]weights.Tensor {
	out := map[string]weights.Tensor{}
	head := map[string]string{"last_layer.0.weight": "decode_head.convs.0.conv.weight", "last_layer.3.weight": "decode_head.conv_seg.weight",
		"last_layer.3.bias": "decode_head.conv_seg.bias"}
	for name, v := range official(t) {
		switch {
		case head[name] != "":
			out[head[name]] = v
		case strings.HasPrefix(name, "last_layer.1."):
			out["decode_head.convs.0.bn."+strings.TrimPrefix(name, "last_layer.1.")] = v
		case name == "last_layer.0.bias":
		default:
			out[prefix+name] = v
		}
	}
	for _, e := range extra {
		out[e] = weights.Tensor{Shape: []int{1}, Data: []float32{0}}
	}
	return out
}

// What segkit cannot reproduce is refused with what the file is and what is supported.
func TestRefusals(t *testing.T) {
	base := official(t)
	withOut := func(drop string, extra ...string) map[string]weights.Tensor {
		out := map[string]weights.Tensor{}
		for k, v := range base {
			if !strings.HasPrefix(k, drop) {
				out[k] = v
			}
		}
		for _, e := range extra {
			out[e] = weights.Tensor{Shape: []int{1}, Data: []float32{0}}
		}
		return out
	}
	badKernel := renamed(t, "backbone.")
	w := badKernel["decode_head.convs.0.conv.weight"]
	badKernel["decode_head.convs.0.conv.weight"] = weights.Tensor{Shape: []int{w.Shape[0], w.Shape[1] / 9, 3, 3}, Data: w.Data}
	for _, c := range []struct {
		name    string
		tensors map[string]weights.Tensor
		want    string
	}{
		{"OCRNet", renamed(t, "backbone.", "decode_head.0.conv_seg.weight", "decode_head.1.bottleneck.conv.weight"), "OCRNet"},
		{"num_convs 2", renamed(t, "backbone.", "decode_head.convs.1.conv.weight"), "num_convs > 1"},
		{"concat_input", renamed(t, "backbone.", "decode_head.conv_cat.conv.weight"), "concat_input"},
		{"3×3 head", badKernel, "3×3 conv"},
		{"official OCR", withOut("none.", "ocr_gather_head.x"), "HRNet-OCR"},
		{"another layout", withOut("stage4.0.branches.3."), "layout segkit does not have"},
		{"not HRNet", map[string]weights.Tensor{"fc.weight": {Shape: []int{1}, Data: []float32{1}}}, "not an HRNet checkpoint"},
		{"segkit", map[string]weights.Tensor{"param/conv1.weight": {Shape: []int{1}, Data: []float32{1}}}, "segkit checkpoint"},
	} {
		_, err := Convert(&weights.File{Tensors: c.tensors, Integer: []string{"bn1.num_batches_tracked"}}, Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
}

// An ImageNet backbone (official classification layout, timm's names): the classification
// parts dropped, the layout inferred, no classes.
func TestBackbone(t *testing.T) {
	tensors := map[string]weights.Tensor{}
	for k, v := range official(t) {
		if !strings.HasPrefix(k, "last_layer.") {
			tensors[k] = v
		}
	}
	for _, k := range []string{"incre_modules.0.0.conv1.weight", "downsamp_modules.0.0.weight", "final_layer.0.weight", "classifier.weight", "classifier.bias"} {
		tensors[k] = weights.Tensor{Shape: []int{1}, Data: []float32{0}}
	}
	prefixed := map[string]weights.Tensor{}
	for k, v := range tensors {
		prefixed["backbone."+k] = v
	}
	for _, ts := range []map[string]weights.Tensor{tensors, prefixed} { // timm's and official names; mmseg's
		m, err := Convert(&weights.File{Tensors: ts}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if m.Family != Backbone || m.Config != "w18_small_v1" || m.Classes != 0 || len(m.Report.Dropped) != 5 || m.ABN ||
			m.Tensors["conv1.weight"].Data == nil {
			t.Errorf("backbone: %s %s, %d classes, dropped %v, ABN %v", m.Family, m.Config, m.Classes, m.Report.Dropped, m.ABN)
		}
	}
}
