package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/segkit/segkit/segmentation/internal/segtest"

	"github.com/segkit/segkit/internal/kernels"
	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/segmentation/checkpoint"
)

// logged reads one numeric field of every log entry that has it, by iteration.
func logged(t *testing.T, dir, field string) map[int]float64 {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "train.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[int]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if v, ok := e[field].(float64); ok {
			out[int(e["iter"].(float64))] = v
		}
	}
	return out
}

// A finished run resumed with more iterations continues from its checkpoint to the new end,
// with the poly schedule recomputed over the new total; the summary reports the run's crop.
func TestResumeExtendsIters(t *testing.T) {
	c := segtest.TinyConfig(t)
	if _, err := (&Run{Cfg: c, Out: io.Discard, NoBar: true}).Train(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(c.Out, "run")
	before := segtest.Losses(t, dir)
	flags := segmentation.DefaultConfig() // what a command line holds besides the flags the user set
	flags.Iters = 9
	sum, err := (&Run{Cfg: flags, Override: []string{"iters"}, Out: io.Discard, NoBar: true, Resume: dir}).Train()
	if err != nil {
		t.Fatal(err)
	}
	if sum.Iters != 9 || sum.Crop != c.Crop {
		t.Errorf("summary: %d iterations at the %d crop, want 9 at %d", sum.Iters, sum.Crop, c.Crop)
	}
	after, lr := segtest.Losses(t, dir), logged(t, dir, "lr")
	for it := 1; it <= 9; it++ {
		if it <= c.Iters && after[it] != before[it] || after[it] == 0 {
			t.Errorf("iteration %d: loss %v, before the resume %v", it, after[it], before[it])
		}
	}
	long := c
	long.Iters = 9
	for it := 7; it <= 9; it++ {
		if want := long.Schedule(it - 1); lr[it] != want {
			t.Errorf("iteration %d: lr %v, want %v (the poly schedule over 9 iterations)", it, lr[it], want)
		}
	}
	ck, err := checkpoint.LoadCheckpoint(filepath.Join(dir, "ckpt_iter_0000009.safetensors"))
	if err != nil || ck.State.Config.Iters != 9 || ck.State.Config.Crop != c.Crop {
		t.Errorf("checkpoint after the extension: %v, %+v", err, ck)
	}
}

// Settings that would change the training's arithmetic are refused on resume, naming the flag;
// so is an --iters below the iterations already done.
func TestResumeRefusesSettings(t *testing.T) {
	c := segtest.TinyConfig(t)
	c.Iters = 2
	if _, err := (&Run{Cfg: c, Out: io.Discard, NoBar: true}).Train(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(c.Out, "run")
	for _, tc := range []struct {
		key, flag string
		set       func(*segmentation.Config)
	}{
		{"lr", "--lr", func(c *segmentation.Config) { c.LR = 5 }},
		{"crop", "--crop", func(c *segmentation.Config) { c.Crop = 64 }},
		{"model", "--model", func(c *segmentation.Config) { c.Model = "w48" }},
		{"val_split", "--val-split", func(c *segmentation.Config) { c.ValSplit = "x" }},
		{"iters", "--iters 1", func(c *segmentation.Config) { c.Iters = 1 }},
		{"nonsense", "nonsense", func(*segmentation.Config) {}},
	} {
		cfg := c
		tc.set(&cfg)
		_, err := (&Run{Cfg: cfg, Override: []string{tc.key}, Out: io.Discard, NoBar: true, Resume: dir}).Train()
		var se segmentation.SettingError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("resume with %s: %v, want a segmentation.SettingError naming %s", tc.key, err, tc.flag)
		}
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "ckpt_iter_*.safetensors")); len(files) != 1 {
		t.Errorf("refused resumes wrote checkpoints: %v", files)
	}
}

// The kernels' parallel split decides the summation order: the checkpoint records the worker
// count, and a resume with another one says that the continuation is not bit-identical.
func TestResumeOnOtherWorkerCount(t *testing.T) {
	defer func(w int) { kernels.Workers = w }(kernels.Workers)
	kernels.Workers = 1
	c := segtest.TinyConfig(t)
	if _, err := (&Run{Cfg: c, Out: io.Discard, NoBar: true, StopAt: 2}).Train(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(c.Out, "run")
	ck, err := checkpoint.LoadCheckpoint(filepath.Join(dir, "ckpt_iter_0000002.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if ck.State.KernelWorkers != 1 || ck.State.GOMAXPROCS != runtime.GOMAXPROCS(0) {
		t.Errorf("checkpoint records %d kernel workers, GOMAXPROCS %d; want 1, %d", ck.State.KernelWorkers, ck.State.GOMAXPROCS, runtime.GOMAXPROCS(0))
	}
	resume := func(stop int) string {
		var out bytes.Buffer
		if _, err := (&Run{Out: &out, NoBar: true, Resume: dir, StopAt: stop}).Train(); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	kernels.Workers = 2
	if out := resume(3); !strings.Contains(out, "not bit-identical") || !strings.Contains(out, "1 kernel worker") || !strings.Contains(out, "GOMAXPROCS=1") {
		t.Errorf("resume on 2 workers from 1, no notice:\n%s", out)
	}
	if got := logged(t, dir, "kernel_workers"); got[2] != 2 {
		t.Errorf("the log does not record the resumed run's workers: %v", got)
	}
	if out := resume(4); strings.Contains(out, "bit-identical") {
		t.Errorf("resume on the checkpoint's worker count gave a notice:\n%s", out)
	}
}

// A run that stopped before its first checkpoint (here its first evaluation met a bad mask)
// leaves a run directory that --resume starts again from iteration 0 with its config.json, as
// mmsegmentation's resume does; a new run of the same name is refused, pointing to --resume.
func TestResumeWithoutCheckpoint(t *testing.T) {
	root, id, _ := badValMask(t)
	c := segtest.TinyConfig(t)
	c.Data, c.Dataset, c.Iters, c.EvalEvery, c.CkptEvery = root, "folder", 3, 1, 0
	sum, err := (&Run{Cfg: c, Out: io.Discard, NoBar: true}).Train()
	if err == nil {
		t.Fatal("the bad mask stopped nothing")
	}
	dir := filepath.Join(c.Out, "run")
	if files, _ := filepath.Glob(filepath.Join(dir, "ckpt_iter_*")); len(files) > 0 || sum.Iters != 1 {
		t.Fatalf("stopped at iteration %d with checkpoints %v; the test wants none", sum.Iters, files)
	}
	if _, err := (&Run{Cfg: c, Out: io.Discard, NoBar: true}).Train(); err == nil || !strings.Contains(err.Error(), "--resume "+dir+" starts it again") {
		t.Errorf("the same name again: %v", err)
	}
	flags := segmentation.DefaultConfig()
	flags.SkipBad = true
	var out bytes.Buffer
	sum, err = (&Run{Cfg: flags, Override: []string{"skip_bad"}, Out: &out, NoBar: true, Resume: dir}).Train()
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "has no checkpoint: starting it again from iteration 0") || sum.Iters != 3 || sum.Dir != dir ||
		len(sum.Skipped) != 1 || !strings.HasPrefix(sum.Skipped[0], id+": ") {
		t.Errorf("%d iterations in %s, skipped %q:\n%s", sum.Iters, sum.Dir, sum.Skipped, out.String())
	}
	// The log is the new run's alone: the stopped one's entries are gone.
	raw, _ := os.ReadFile(filepath.Join(dir, "train.jsonl"))
	if n, m := strings.Count(string(raw), `"kernel_workers"`), strings.Count(string(raw), `"loss"`); n != 1 || m != 3 {
		t.Errorf("train.jsonl has %d start entries and %d losses, want 1 and 3:\n%s", n, m, raw)
	}
	var saved segmentation.Config
	if raw, err := os.ReadFile(filepath.Join(dir, "config.json")); err != nil || json.Unmarshal(raw, &saved) != nil || !saved.SkipBad || saved.Iters != 3 {
		t.Errorf("config.json after the restart: %+v, %v", saved, err)
	}
	// Its settings are the directory's: the same losses as a run started with them.
	again := c
	again.SkipBad, again.Out = true, t.TempDir()
	if _, err := (&Run{Cfg: again, Out: io.Discard, NoBar: true}).Train(); err != nil {
		t.Fatal(err)
	}
	a, b := segtest.Losses(t, dir), segtest.Losses(t, filepath.Join(again.Out, "run"))
	for it := 1; it <= 3; it++ {
		if a[it] != b[it] {
			t.Errorf("iteration %d: loss %v after the restart, %v in a new run", it, a[it], b[it])
		}
	}
}
