package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/segmentation/train"
	"github.com/segkit/segkit/voc"
)

func writeMask(t *testing.T, path string, w, h int, labels []uint8) {
	t.Helper()
	data, err := voc.EncodeMask(voc.Mask{W: w, H: h, Labels: labels})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Two images, 3 classes: the totals of both go into one matrix.
// a: gt 0 0 1 1, pred 0 1 1 1;  b: gt 2 2 255 0, pred 2 0 1 0.
// counts (gt, pred): (0,0)=2 (0,1)=1 (1,1)=2 (2,2)=1 (2,0)=1 → aAcc 5/7,
// IoU 0: 2/(3+3−2)=1/2, 1: 2/(2+3−2)=2/3, 2: 1/(2+1−1)=1/2.
func TestEvalPredDir(t *testing.T) {
	dir := t.TempDir()
	gt, pred := filepath.Join(dir, "gt"), filepath.Join(dir, "pred")
	os.Mkdir(gt, 0o755)
	os.Mkdir(pred, 0o755)
	writeMask(t, filepath.Join(gt, "a.png"), 2, 2, []uint8{0, 0, 1, 1})
	writeMask(t, filepath.Join(pred, "a.png"), 2, 2, []uint8{0, 1, 1, 1})
	writeMask(t, filepath.Join(gt, "b.png"), 2, 2, []uint8{2, 2, 255, 0})
	writeMask(t, filepath.Join(pred, "b.png"), 2, 2, []uint8{2, 0, 1, 0})
	out := filepath.Join(dir, "m.json")
	if _, err := run("eval", "--pred-dir", pred, "--gt-dir", gt, "--classes", "3", "--json", out); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		MIoU, AAcc float64
		PerClass   map[string]struct{ IoU *float64 } `json:"per_class"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if !near(m.AAcc, 5.0/7) || !near(m.MIoU, (0.5+2.0/3+0.5)/3) || !near(*m.PerClass["class 1"].IoU, 2.0/3) {
		t.Errorf("metrics %s", raw)
	}

	// Errors name the file and the problem.
	writeMask(t, filepath.Join(gt, "c.png"), 3, 1, []uint8{0, 0, 0})
	writeMask(t, filepath.Join(pred, "c.png"), 1, 3, []uint8{0, 0, 0})
	if _, err := run("eval", "--pred-dir", pred, "--gt-dir", gt, "--classes", "3"); err == nil || !strings.Contains(err.Error(), "c.png is 1×3 but its ground truth") {
		t.Errorf("size mismatch: %v", err)
	}
	os.Remove(filepath.Join(pred, "c.png"))
	if _, err := run("eval", "--pred-dir", pred, "--gt-dir", gt, "--classes", "3"); err == nil || !strings.Contains(err.Error(), filepath.Join(pred, "c.png")) {
		t.Errorf("missing prediction: %v", err)
	}
	writeMask(t, filepath.Join(pred, "c.png"), 3, 1, []uint8{0, 7, 0})
	if _, err := run("eval", "--pred-dir", pred, "--gt-dir", gt, "--classes", "3"); err == nil || !strings.Contains(err.Error(), "predicted label 7") {
		t.Errorf("label out of range: %v", err)
	}
	empty := filepath.Join(dir, "empty.txt")
	os.WriteFile(empty, nil, 0o644)
	if _, err := run("eval", "--pred-dir", pred, "--gt-dir", gt, "--ids", empty); err == nil || !strings.Contains(err.Error(), "no ids") {
		t.Errorf("empty id list: %v", err)
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

// Evaluating a run's final checkpoint reproduces the run's final metrics; flip TTA and sliding
// windows run; predictions are saved.
func TestEvalCheckpoint(t *testing.T) {
	c := segmentation.DemoConfig()
	c.Crop, c.Batch, c.Iters, c.DemoImages, c.EvalEvery, c.CkptEvery = 32, 2, 4, 20, 0, 0
	c.Out, c.Name = t.TempDir(), "run"
	sum, err := (&train.Run{Cfg: c, Out: io.Discard, NoBar: true}).Train()
	if err != nil {
		t.Fatal(err)
	}
	ck := filepath.Join(sum.Dir, "ckpt_iter_0000004.safetensors")
	out := filepath.Join(t.TempDir(), "m.json")
	if _, err := run("eval", "--checkpoint", ck, "--json", out); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(out)
	var m struct{ MIoU float64 }
	json.Unmarshal(raw, &m)
	if m.MIoU != sum.Final.MIoU {
		t.Errorf("checkpoint mIoU %v, the run's %v", m.MIoU, sum.Final.MIoU)
	}
	saved := filepath.Join(t.TempDir(), "pred")
	if _, err := run("eval", "--checkpoint", ck, "--tta", "flip,ms", "--mode", "slide", "--save-dir", saved); err != nil {
		t.Fatal(err)
	}
	if files, _ := filepath.Glob(filepath.Join(saved, "*.png")); len(files) != 4 {
		t.Errorf("%d saved predictions, want 4", len(files))
	}
	for _, args := range [][]string{{"--mode", "tiles"}, {"--tta", "rotate"}} {
		if _, err := run(append([]string{"eval", "--checkpoint", ck}, args...)...); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

// A flag that does nothing in the chosen mode is refused, naming it, as a usage error; so is
// a wrong --mode or --tta, before the checkpoint is read.
func TestEvalRefusesIdleFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--checkpoint", "c.safetensors", "--classes", "3"},
		{"--checkpoint", "c.safetensors", "--ids", "val.txt"},
		{"--checkpoint", "c.safetensors", "--pred-dir", "p"},
		{"--checkpoint", "c.safetensors", "--gt-dir", "g"},
		{"--pred-dir", "p", "--gt-dir", "g", "--tta", "flip"},
		{"--pred-dir", "p", "--gt-dir", "g", "--mode", "slide"},
		{"--pred-dir", "p", "--gt-dir", "g", "--save-dir", "s"},
		{"--pred-dir", "p", "--gt-dir", "g", "--data", "d"},
		{"--pred-dir", "p", "--gt-dir", "g", "--split", "val"},
		{"--checkpoint", "missing.safetensors", "--mode", "tiles"},
		{"--checkpoint", "missing.safetensors", "--tta", "rotate"},
		{"--pred-dir", "p", "--gt-dir", "g", "--classes", "0"},
		{"--pred-dir", "p"},
	} {
		_, err := run(append([]string{"eval"}, args...)...)
		if !isUsage(err) || !strings.Contains(err.Error(), args[len(args)-2]) {
			t.Errorf("eval %v: %v (want a usage error naming %s)", args, err, args[len(args)-2])
		}
	}
}
