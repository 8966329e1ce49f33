package segmentation

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/segkit/segkit/importer"
	"github.com/segkit/segkit/internal/golden"
	"github.com/segkit/segkit/internal/numcheck"
)

// importGoldens are the importer fixtures' mmseg test-path references (importer/testdata).
type importGoldens struct {
	Input    golden.Tensor `json:"input"`
	Classes  []string      `json:"classes"`
	Palette  [][3]uint8    `json:"palette"`
	MMSegOri golden.Tensor `json:"mmseg_ori"`
	Slide    struct {
		Shape  []int         `json:"shape"`
		Proj   float64       `json:"proj"`
		Norm   float64       `json:"norm"`
		Argmax []int         `json:"argmax"`
		Every7 golden.Tensor `json:"every7"`
	} `json:"mmseg_slide"`
}

const mmsegFixture = "../importer/testdata/mmseg_0x.pth"

func readImportGoldens(t *testing.T) *importGoldens {
	t.Helper()
	raw, err := os.ReadFile("../importer/testdata/import_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g importGoldens
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	return &g
}

// An mmseg model's test path as mmseg's: the logits go 1/4 → network input (75×100) → image
// (45×60), and slide windows larger than the image (80×80 on 75 rows) are not padded.
func TestMMSegTestPath(t *testing.T) {
	g := readImportGoldens(t)
	im, err := ImportModel(mmsegFixture, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	inf := im.State.Config.TestInference()
	if !inf.MMSeg || inf.AlignCorners {
		t.Fatalf("test inference of an mmseg model: MMSeg %v, AlignCorners %v", inf.MMSeg, inf.AlignCorners)
	}
	x := g.Input.Dense(t).Float32s()
	full, _, err := inf.logits(im.Net, x, 75, 100, 45, 60)
	if err != nil {
		t.Fatal(err)
	}
	if e := numcheck.RelErr(full, g.MMSegOri.Data); !(e <= 1e-4) {
		t.Errorf("logits at the image's size: relative error %.3g", e)
	}
	inf.Crop, inf.Stride = 80, 40
	slide, _, err := inf.slide(im.Net, x, 75, 100)
	if err != nil {
		t.Fatal(err)
	}
	want := g.Slide
	if got := numcheck.Projection(slide); !numcheck.Close(got, want.Proj, 1e-5*want.Norm) {
		t.Errorf("slide logits: projection %.7g, want %.7g", got, want.Proj)
	}
	every7 := make([]float32, 0, len(want.Every7.Data))
	for i := 0; i < len(slide); i += 7 {
		every7 = append(every7, slide[i])
	}
	if e := numcheck.RelErr(every7, want.Every7.Data); !(e <= 1e-4) {
		t.Errorf("slide logits: relative error %.3g", e)
	}
	hw := 75 * 100
	wrong := 0
	for i := 0; i < hw; i++ {
		best := 0
		for k := 1; k < 8; k++ {
			if slide[k*hw+i] > slide[best*hw+i] {
				best = k
			}
		}
		if best != want.Argmax[i] {
			wrong++
		}
	}
	if wrong > hw/1000 { // near-ties may flip
		t.Errorf("slide argmax differs from mmseg's at %d of %d pixels", wrong, hw)
	}
	inf.MMSeg = false // segkit pads the windows: other logits
	padded, _, err := inf.slide(im.Net, x, 75, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got := numcheck.Projection(padded); numcheck.Close(got, want.Proj, 1e-3*want.Norm) {
		t.Error("padded windows give mmseg's slide logits: the test cannot tell them apart")
	}
}

// A PyTorch file opens as a checkpoint (eval, segpredict), and `segtrain import`'s output reads
// back as the same model, with the names, palette, conventions and provenance.
func TestImportRoundTrip(t *testing.T) {
	g := readImportGoldens(t)
	ck, err := OpenCheckpoint(mmsegFixture, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	im, err := ImportModel(mmsegFixture, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := im.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := OpenCheckpoint(path, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Checkpoint{ck, back} {
		st := c.State
		if !slices.Equal(st.Classes, g.Classes) || !slices.Equal(st.Palette, g.Palette) || st.Config.Convention != importer.ConventionMMSeg ||
			st.Config.Model != "w18_small_v1" || st.Imported == nil || st.Imported.Family != "mmseg" || !strings.Contains(st.Imported.Report, "synthesized") {
			t.Errorf("state %+v", st)
		}
		if len(c.Params) != len(ck.Params) || !slices.Equal(c.Params["last_layer.3.weight"], ck.Params["last_layer.3.weight"]) {
			t.Errorf("the saved checkpoint's weights differ")
		}
	}
	if _, _, err := LoadModel(back, len(g.Classes)); err != nil {
		t.Fatal(err)
	}
	names := []string{"a", "b"}
	if _, err := ImportModel(mmsegFixture, ImportOptions{Classes: names}); err == nil || !strings.Contains(err.Error(), "2 class names given for a model with 8 classes") {
		t.Errorf("two names for eight classes: %v", err)
	}
}

// A model trained with fixed resizing (here mmseg's) starts a DynOPool run: every weight loads by
// name (a stride-2 conv becomes a pool and a stride-1 conv with the same weights); only the
// alphas are the run's own.
func TestPretrainedIntoDynOPool(t *testing.T) {
	c := tinyConfig(t)
	c.Resize, c.Pretrained, c.Iters = "dynopool", mmsegFixture, 1
	var out strings.Builder
	r := &Run{Cfg: c, Out: &out, NoBar: true}
	if _, err := r.Train(); err != nil {
		t.Fatal(err)
	}
	log := out.String()
	for _, want := range []string{"mmseg HRNetV2-w18_small_v1", "skipped: pools.stem.alpha, pools.transition1.alpha, pools.transition2.alpha, pools.transition3.alpha"} {
		if !strings.Contains(log, want) {
			t.Errorf("the run's output lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "missing") || strings.Contains(log, "mismatched") {
		t.Errorf("not every weight loaded:\n%s", log)
	}
	c.Model = "w18_small_v2"
	c.Name = "v2"
	if _, err := (&Run{Cfg: c, Out: io.Discard, NoBar: true}).Train(); err == nil || !strings.Contains(err.Error(), "--model w18_small_v1") {
		t.Errorf("an HRNetV2-w18_small_v1 file into a w18_small_v2 run: %v", err)
	}
}

// A model's class count suggests its dataset: its recipe's test protocol, and its names and
// colours where the file has none; the file's names, or the user's, come first.
func TestImportSettings(t *testing.T) {
	for _, c := range []struct {
		classes   int
		fileNames []string
		opt       ImportOptions
		dataset   string
		name0     string
		slide     bool
	}{
		{19, nil, ImportOptions{}, "cityscapes", "road", false},
		{150, nil, ImportOptions{}, "ade20k", "wall", false},
		{59, nil, ImportOptions{}, "pascal_context_59", "aeroplane", true},
		{21, nil, ImportOptions{}, "voc", "background", false},
		{19, nil, ImportOptions{Classes: make19("x")}, "cityscapes", "x0", false},
		{8, []string{"a", "b", "c", "d", "e", "f", "g", "h"}, ImportOptions{}, "", "a", false},
		{7, nil, ImportOptions{}, "", "class 0", false},
	} {
		cfg, names, palette, err := importSettings(&importer.Model{Classes: c.classes, Names: c.fileNames}, c.opt)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Dataset != c.dataset || len(names) != c.classes || names[0] != c.name0 || (cfg.EvalMode == EvalSlide) != c.slide ||
			(c.dataset != "" && len(palette) != c.classes) {
			t.Errorf("%d classes: dataset %q, names %v…, %d colours, eval mode %q", c.classes, cfg.Dataset, names[0], len(palette), cfg.EvalMode)
		}
	}
}

func make19(prefix string) []string {
	out := make([]string, 19)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}
