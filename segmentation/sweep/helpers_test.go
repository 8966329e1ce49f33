package sweep

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/segkit/segkit/segmentation"
)

// tinyConfig trains w18_small_v1 with DynOPool on 32×32 demo images: a second or so.
func tinyConfig(t *testing.T) segmentation.Config {
	c := segmentation.DemoConfig()
	c.Crop, c.Batch, c.Iters, c.DemoImages = 32, 2, 6, 20
	c.EvalEvery, c.CkptEvery, c.LogEvery, c.Warmup = 0, 0, 1, 2
	c.AlphaLR = 0.05 // let the sizes move: resuming must survive graph rebuilds
	c.Out, c.Name = t.TempDir(), "run"
	return c
}

// losses reads the per-iteration losses of a run's log.
func losses(t *testing.T, dir string) map[int]float64 {
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
