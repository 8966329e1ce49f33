package segmentation

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gorgonia.org/tensor"

	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/nn"
)

// A blow-up stops the run at its step, naming the first layer whose gradient is not finite; with
// SkipNaN the batches are skipped and the run goes on.
func TestNaNStopsTheRun(t *testing.T) {
	c := tinyConfig(t)
	c.LR, c.Warmup, c.Iters = 1e12, 0, 4
	_, err := (&Run{Cfg: c, Out: io.Discard, NoBar: true}).Train()
	if err == nil || !strings.Contains(err.Error(), "iteration ") || !strings.Contains(err.Error(), "the gradient of ") {
		t.Fatalf("error %v", err)
	}
	c.Out, c.SkipNaN = t.TempDir(), true
	if _, err := (&Run{Cfg: c, Out: io.Discard, NoBar: true}).Train(); err != nil {
		t.Fatalf("with SkipNaN: %v", err)
	}
}

// An interrupted run stops after the step with a checkpoint and resumes to the end.
func TestInterrupt(t *testing.T) {
	c := tinyConfig(t)
	stop := &atomic.Bool{}
	stop.Store(true)
	sum, err := (&Run{Cfg: c, Out: io.Discard, NoBar: true, Interrupt: stop}).Train()
	if !errors.Is(err, ErrInterrupted) || sum.Iters != 1 {
		t.Fatalf("interrupted run: %d iterations, %v", sum.Iters, err)
	}
	if _, err := os.Stat(filepath.Join(sum.Dir, "ckpt_iter_0000001.safetensors")); err != nil {
		t.Fatal(err)
	}
	if _, err := (&Run{Out: io.Discard, NoBar: true, Resume: sum.Dir}).Train(); err != nil {
		t.Fatal(err)
	}
}

// A checkpoint that cannot be written is an error naming it; the previous one stays whole.
func TestCheckpointWriteFailure(t *testing.T) {
	m, _ := hrnet.New("w18_small_v1", 3, hrnet.Fixed)
	net := nn.NewNet(m, 1)
	net.Graph(nn.Inference, tensor.Shape{1, 3, 32, 32})
	dir := t.TempDir()
	good := filepath.Join(dir, "ckpt.safetensors")
	if err := SaveCheckpoint(good, net.Params, State{Iter: 1}); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "gone", "ckpt.safetensors")
	if err := SaveCheckpoint(bad, net.Params, State{Iter: 2}); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("writing into a missing directory: %v", err)
	}
	if ck, err := LoadCheckpoint(good); err != nil || ck.State.Iter != 1 {
		t.Errorf("the previous checkpoint: %v", err)
	}
}

func FuzzCheckpoint(f *testing.F) {
	params := nn.NewParams(0)
	b := nn.NewBuilder(params, false)
	b.Param("w", []int{2, 3}, "", nn.Constant(1))
	path := filepath.Join(f.TempDir(), "c.safetensors")
	if err := SaveCheckpoint(path, params, State{Iter: 3, Config: DemoConfig()}); err != nil {
		f.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	f.Add(raw)
	f.Add([]byte("\xff\xff\xff\xff\xff\xff\xff\x7f{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		decodeCheckpoint(data) // must not panic, whatever the bytes
	})
}

// kill -9 at random moments, resume each time: the run finishes with the losses of an
// uninterrupted one, and no checkpoint is ever half-written.
func TestKillAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("builds segtrain and runs it many times")
	}
	bin := filepath.Join(t.TempDir(), "segtrain")
	build := exec.Command("go", "build", "-o", bin, "github.com/segkit/segkit/cmd/segtrain")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	args := func(out string) []string {
		return []string{"--crop", "32", "--batch", "2", "--iters", "60", "--ckpt-every", "3", "--eval-every", "0",
			"--log-every", "1", "--alpha-lr", "0.05", "--no-bar", "--out", out, "--name", "run"}
	}
	ref := t.TempDir()
	if out, err := exec.Command(bin, args(ref)...).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}
	out := t.TempDir()
	dir := filepath.Join(out, "run")
	kills, finished := 0, false
	for attempt := 0; attempt < 40 && !finished; attempt++ {
		files, _ := filepath.Glob(filepath.Join(dir, "ckpt_iter_*.safetensors"))
		cmd := exec.Command(bin, "--resume", dir, "--no-bar")
		if len(files) == 0 { // killed before the first checkpoint: start over
			os.RemoveAll(dir)
			cmd = exec.Command(bin, args(out)...)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("attempt %d: %v", attempt, err)
			}
			finished = true
		case <-time.After(time.Duration(400+150*attempt+(97*attempt)%300) * time.Millisecond):
			cmd.Process.Kill() // SIGKILL: no chance to clean up
			<-done
			kills++
			files, _ := filepath.Glob(filepath.Join(dir, "ckpt_iter_*.safetensors"))
			for _, f := range files {
				if _, err := LoadCheckpoint(f); err != nil {
					t.Fatalf("after kill %d: %v", kills, err)
				}
			}
		}
	}
	if !finished {
		t.Fatal("the run does not finish")
	}
	if kills == 0 { // else this tested a plain run
		t.Fatal("the run finished before the first kill")
	}
	a, b := losses(t, filepath.Join(ref, "run")), losses(t, dir)
	if len(a) != 60 || len(b) != 60 { // else the comparison below compares nothing
		t.Fatalf("%d logged losses uninterrupted, %d after kills; want 60 each", len(a), len(b))
	}
	// Ctrl-C: the run stops after its step with a checkpoint and says how to resume.
	intr := t.TempDir()
	cmd := exec.Command(bin, append(args(intr), "--iters", "100000")...)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	ckpts, _ := filepath.Glob(filepath.Join(intr, "run", "ckpt_iter_*.safetensors"))
	if err == nil || len(ckpts) == 0 || !strings.Contains(log.String(), "interrupted at iteration") || !strings.Contains(log.String(), "--resume") {
		t.Errorf("Ctrl-C: %v, %d checkpoints, output:\n%s", err, len(ckpts), log.String())
	}
	for it := 1; it <= 60; it++ {
		if a[it] != b[it] {
			t.Errorf("iteration %d: loss %v uninterrupted, %v after %d kills", it, a[it], b[it], kills)
		}
	}
	t.Logf("%d kills", kills)
}

// Whatever a config file holds, loading it is an error or settings, never a crash; unknown keys
// are errors.
func FuzzConfig(f *testing.F) {
	f.Add([]byte("model: w48\nresize: dynopool\ncrop: 512\n"))
	f.Add([]byte(`{"batch": 8, "lr": 0.02}`))
	f.Add([]byte("crop: [1, 2]\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Skip()
		}
		LoadConfig(path, DemoConfig())
	})
}

func TestConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("model: w48\nbatch: 4\n"), 0o644)
	c, err := LoadConfig(path, DemoConfig())
	if err != nil || c.Model != "w48" || c.Batch != 4 || c.Crop != DemoConfig().Crop {
		t.Errorf("%+v, %v", c, err)
	}
	os.WriteFile(path, []byte("modle: w48\n"), 0o644)
	if _, err := LoadConfig(path, DemoConfig()); err == nil || !strings.Contains(err.Error(), "modle") {
		t.Errorf("unknown key: %v", err)
	}
}
