package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/segmentation/train"
)

// tinyRun trains 2 iterations of a 32-crop demo run and returns its directory.
func tinyRun(t *testing.T) string {
	t.Helper()
	c := segmentation.DemoConfig()
	c.Crop, c.Batch, c.Iters, c.DemoImages, c.EvalEvery, c.CkptEvery = 32, 2, 2, 20, 0, 0
	c.Out, c.Name = t.TempDir(), "run"
	sum, err := (&train.Run{Cfg: c, Out: io.Discard, NoBar: true}).Train()
	if err != nil {
		t.Fatal(err)
	}
	return sum.Dir
}

func isUsage(err error) bool {
	var u usageError
	return errors.As(err, &u)
}

// --resume lengthens a run with --iters and reports the run's crop; flags that would change
// the run are refused, naming them, with a usage error (exit status 2), and nothing runs.
func TestResumeFlags(t *testing.T) {
	dir := tinyRun(t)
	out, err := run("--resume", dir, "--iters", "4", "--no-bar")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "done in") || !strings.Contains(out, ": 4 iterations") || !strings.Contains(out, "at the 32 crop") {
		t.Errorf("resumed to 4 iterations at the run's 32 crop:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "ckpt_iter_0000004.safetensors")); err != nil {
		t.Error(err)
	}
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfg, []byte("lr: 0.5\n"), 0o644)
	for _, args := range [][]string{{"--lr", "5"}, {"--crop", "64"}, {"--model", "w48"}, {"--batch", "4"}, {"--resize", "fixed"},
		{"--data", "somewhere"}, {"--seed", "3"}, {"--out", "elsewhere"}, {"--name", "other"}, {"--pretrained", "w.pth"},
		{"--config", cfg}, {"--iters", "3"}, {"--iters", "12", "--lr", "5"}} {
		out, err := run(append([]string{"--resume", dir, "--no-bar"}, args...)...)
		if !isUsage(err) || !strings.Contains(err.Error(), args[len(args)-2]) {
			t.Errorf("%v on --resume: %v (want a usage error naming %s)\n%s", args, err, args[len(args)-2], out)
		}
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "ckpt_iter_*.safetensors")); filepath.Base(files[len(files)-1]) != "ckpt_iter_0000004.safetensors" {
		t.Errorf("refused resumes trained: %v", files)
	}
}

// Every wrong command line is a usage error (exit status 2), found before any work.
func TestTrainUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"--model", "w99"}, {"--resize", "bilinear"}, {"--batch", "1"}, {"--crop", "8"},
		{"--iters", "0"}, {"--lr", "-1"}, {"--config", "/nonexistent/c.yaml"}, {"--bogus"}, {"extra-arg"}} {
		if _, err := run(append(args, "--out", t.TempDir(), "--no-bar")...); !isUsage(err) {
			t.Errorf("%v: %v is not a usage error (exit status 2)", args, err)
		}
	}
}

// The help's account of the demo is the demo's settings.
func TestDemoHelp(t *testing.T) {
	root := newRootCmd()
	d := segmentation.DemoConfig()
	for _, want := range []string{fmt.Sprintf("a %d crop", d.Crop), fmt.Sprintf("%d iterations", d.Iters)} {
		if !strings.Contains(root.Long, want) {
			t.Errorf("help says %q, not %q", root.Long, want)
		}
	}
}
