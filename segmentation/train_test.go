package segmentation

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/internal/numcheck"
	"github.com/segkit/segkit/nn"
	"github.com/segkit/segkit/voc"
)

// tinyConfig trains w18_small_v1 with DynOPool on 32×32 demo images: a second or so.
func tinyConfig(t *testing.T) Config {
	c := DemoConfig()
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

// A run stopped at iteration 3 and resumed gives the same losses, bit for bit, and the same
// final weights as an uninterrupted run: weights, momentum, BN statistics, alphas and the data
// position all come back.
func TestResumeEqualsUninterrupted(t *testing.T) {
	c := tinyConfig(t)
	whole := &Run{Cfg: c, Out: io.Discard, NoBar: true}
	if _, err := whole.Train(); err != nil {
		t.Fatal(err)
	}
	c2 := c
	c2.Out = t.TempDir()
	first := &Run{Cfg: c2, Out: io.Discard, NoBar: true, StopAt: 3}
	if _, err := first.Train(); err != nil {
		t.Fatal(err)
	}
	second := &Run{Out: io.Discard, NoBar: true, Resume: filepath.Join(c2.Out, "run")}
	sum, err := second.Train()
	if err != nil {
		t.Fatal(err)
	}
	a, b := losses(t, filepath.Join(c.Out, "run")), losses(t, sum.Dir)
	for it := 1; it <= c.Iters; it++ {
		if a[it] != b[it] || a[it] == 0 {
			t.Errorf("iteration %d: loss %v uninterrupted, %v resumed", it, a[it], b[it])
		}
	}
	for _, p := range whole.net.Params.All() {
		q := second.net.Params.Get(p.Name)
		for i, v := range p.Data() {
			if q.Data()[i] != v {
				t.Fatalf("%s[%d] = %v resumed, %v uninterrupted", p.Name, i, q.Data()[i], v)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(sum.Dir, "metrics.json")); err != nil {
		t.Error("no metrics.json after the resumed run finished")
	}
}

// A short training on generated data lowers the loss.
func TestTrainingLowersTheLoss(t *testing.T) {
	c := tinyConfig(t)
	c.Iters, c.Batch, c.AlphaLR, c.LR = 80, 4, 0.001, 0.05
	if _, err := (&Run{Cfg: c, Out: io.Discard, NoBar: true}).Train(); err != nil {
		t.Fatal(err)
	}
	l := losses(t, filepath.Join(c.Out, "run"))
	var early, late float64
	for i := 1; i <= 5; i++ {
		early += l[i]
		late += l[c.Iters-5+i]
	}
	t.Logf("loss over the first 5 iterations %.3f, over the last 5 %.3f", early/5, late/5)
	if !(late < 0.85*early) {
		t.Errorf("loss over the first 5 iterations %.3f, over the last 5 %.3f", early/5, late/5)
	}
}

func TestSchedule(t *testing.T) {
	c := Config{LR: 0.01, MinLR: 1e-4, Iters: 1000, PolyPower: 0.9, Warmup: 10}
	for _, tc := range []struct {
		it   int
		want float64
	}{{0, 0.001}, {9, 0.01}, {10, (0.01-1e-4)*math.Pow(0.99, 0.9) + 1e-4}, {500, (0.01-1e-4)*math.Pow(0.5, 0.9) + 1e-4}, {1000, 1e-4}} {
		if got := c.Schedule(tc.it); !numcheck.Close(got, tc.want, 1e-15) {
			t.Errorf("iteration %d: lr %v, want %v", tc.it, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	c := DemoConfig()
	c.Batch = 1
	var se SettingError
	if err := c.Validate(); !errors.As(err, &se) || !strings.Contains(err.Error(), "batch norm") {
		t.Errorf("batch 1: %v", err)
	}
	c = DemoConfig()
	c.Model = "w99" // found before the run starts, so a command line can say it is wrong
	if err := c.Validate(); !errors.As(err, &se) || !strings.Contains(err.Error(), "--model") || !strings.Contains(err.Error(), "w99") {
		t.Errorf("model w99: %v", err)
	}
	if err := DemoConfig().Validate(); err != nil {
		t.Errorf("the demo's settings: %v", err)
	}
}

// Checkpoints keep every tensor, the momentum and the state; broken or foreign files are refused.
func TestCheckpointRoundTrip(t *testing.T) {
	m, _ := hrnet.New("w18_small_v1", 3, hrnet.DynOPool)
	net := nn.NewNet(m, 1)
	if _, err := net.Graph(nn.Inference, tensor.Shape{1, 3, 32, 32}); err != nil {
		t.Fatal(err)
	}
	p := net.Params.Get("pools.stem.alpha")
	p.Data()[0], p.Velocity = 2.25, []float32{0.5, -0.5}
	st := State{Iter: 7, Epoch: 1, Batch: 2, BestMIoU: 0.5, BestIter: 6, Config: DemoConfig()}
	dir := t.TempDir()
	path := filepath.Join(dir, "ck.safetensors")
	if err := SaveCheckpoint(path, net.Params, st); err != nil {
		t.Fatal(err)
	}
	ck, err := LoadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	if ck.State.Iter != 7 || ck.State.Batch != 2 || ck.State.Config.Model != "w18_small_v1" {
		t.Errorf("state %+v", ck.State)
	}
	other := nn.NewNet(m, 2)
	other.Graph(nn.Inference, tensor.Shape{1, 3, 32, 32})
	if err := ck.Restore(other.Params); err != nil {
		t.Fatal(err)
	}
	q := other.Params.Get("pools.stem.alpha")
	if q.Data()[0] != 2.25 || q.Velocity[1] != -0.5 || other.Params.Get("conv1.weight").Data()[5] != net.Params.Get("conv1.weight").Data()[5] {
		t.Error("values did not come back")
	}
	raw, _ := os.ReadFile(path)
	cases := map[string][]byte{"truncated": raw[:len(raw)/2], "empty": nil, "junk": []byte("hello, not a checkpoint at all")}
	for name, data := range cases {
		bad := filepath.Join(dir, name+".safetensors")
		os.WriteFile(bad, data, 0o644)
		if _, err := LoadCheckpoint(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%s: %v", name, err)
		}
	}
	w, _ := hrnet.New("w18_small_v2", 3, hrnet.DynOPool)
	wrong := nn.NewNet(w, 1)
	wrong.Graph(nn.Inference, tensor.Shape{1, 3, 32, 32})
	if err := ck.Restore(wrong.Params); err == nil || !strings.Contains(err.Error(), "another model") && !strings.Contains(err.Error(), "shape") {
		t.Errorf("restoring into another model: %v", err)
	}
	// No temporary files are left behind.
	files, _ := filepath.Glob(filepath.Join(dir, ".tmp-*"))
	if len(files) > 0 {
		t.Errorf("left %v", files)
	}
}

// A folder dataset (images/, masks/, classes.txt, train.txt, val.txt) trains like the demo.
func TestFolderDataset(t *testing.T) {
	root := t.TempDir()
	d := voc.Demo{Seed: 2, N: 6, Size: 32}
	if err := d.WriteVOC(filepath.Join(root, "voc"), 2); err != nil {
		t.Fatal(err)
	}
	os.Rename(filepath.Join(root, "voc", "JPEGImages"), filepath.Join(root, "images"))
	os.Rename(filepath.Join(root, "voc", "SegmentationClass"), filepath.Join(root, "masks"))
	for _, split := range []string{"train", "val"} {
		os.Rename(filepath.Join(root, "voc", "ImageSets", "Segmentation", split+".txt"), filepath.Join(root, split+".txt"))
	}
	c := tinyConfig(t)
	c.Data, c.Iters = root, 2
	if _, _, err := OpenData(c); err == nil || !strings.Contains(err.Error(), "classes.txt") {
		t.Errorf("without classes.txt: %v", err)
	}
	os.WriteFile(filepath.Join(root, "classes.txt"), []byte(strings.Join(voc.DemoClasses, "\n")), 0o644)
	train, val, err := OpenData(c)
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 4 || val.Len() != 2 || len(train.Classes()) != 8 {
		t.Errorf("train %d, val %d, classes %d", train.Len(), val.Len(), len(train.Classes()))
	}
	if _, err := (&Run{Cfg: c, Out: io.Discard, NoBar: true}).Train(); err != nil {
		t.Fatal(err)
	}
}
