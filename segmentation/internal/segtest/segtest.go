// Package segtest holds what the application packages' tests share: a tiny training setting,
// a run log's losses and the importer fixtures' mmseg references.
package segtest

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/segkit/segkit/internal/golden"
	"github.com/segkit/segkit/segmentation"
)

// TinyConfig trains w18_small_v1 with DynOPool on 32×32 demo images: a second or so.
func TinyConfig(t testing.TB) segmentation.Config {
	c := segmentation.DemoConfig()
	c.Crop, c.Batch, c.Iters, c.DemoImages = 32, 2, 6, 20
	c.EvalEvery, c.CkptEvery, c.LogEvery, c.Warmup = 0, 0, 1, 2
	c.AlphaLR, c.AlphaStart = 0.05, 0 // let the sizes move: resuming must survive graph rebuilds
	c.Out, c.Name = t.TempDir(), "run"
	return c
}

// Losses reads the per-iteration losses of a run's log.
func Losses(t testing.TB, dir string) map[int]float64 {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "train.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[int]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e struct {
			Iter int
			Loss *float64
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if e.Loss != nil {
			out[e.Iter] = *e.Loss
		}
	}
	return out
}

// ImportGoldens are the importer fixtures' mmseg test-path references (importer/testdata).
type ImportGoldens struct {
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

// MMSegFixture is the mmseg 0.x checkpoint of the importer's fixtures, from a package two
// levels below the repository root.
const MMSegFixture = "../../importer/testdata/mmseg_0x.pth"

// ReadImportGoldens reads importer/testdata/import_golden.json.
func ReadImportGoldens(t testing.TB) *ImportGoldens {
	t.Helper()
	raw, err := os.ReadFile("../../importer/testdata/import_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g ImportGoldens
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	return &g
}
