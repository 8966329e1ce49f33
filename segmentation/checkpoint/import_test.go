package checkpoint

import (
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/segkit/segkit/segmentation/internal/segtest"

	"github.com/segkit/segkit/importer"
	"github.com/segkit/segkit/segmentation"
)

// A PyTorch file opens as a checkpoint (eval, segpredict), and `segtrain import`'s output reads
// back as the same model, with the names, palette, conventions and provenance.
func TestImportRoundTrip(t *testing.T) {
	g := segtest.ReadImportGoldens(t)
	ck, err := OpenCheckpoint(segtest.MMSegFixture, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	im, err := ImportModel(segtest.MMSegFixture, ImportOptions{})
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
	if _, err := ImportModel(segtest.MMSegFixture, ImportOptions{Classes: names}); err == nil || !strings.Contains(err.Error(), "2 class names given for a model with 8 classes") {
		t.Errorf("two names for eight classes: %v", err)
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
		if cfg.Dataset != c.dataset || len(names) != c.classes || names[0] != c.name0 || (cfg.EvalMode == segmentation.EvalSlide) != c.slide ||
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
