package train

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segkit/segkit/segmentation/internal/segtest"

	"github.com/segkit/segkit/segmentation/checkpoint"
)

// A blow-up stops the run at its step, naming the first layer whose gradient is not finite; with
// SkipNaN the batches are skipped and the run goes on.
func TestNaNStopsTheRun(t *testing.T) {
	c := segtest.TinyConfig(t)
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
	c := segtest.TinyConfig(t)
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
				if _, err := checkpoint.LoadCheckpoint(f); err != nil {
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
	a, b := segtest.Losses(t, filepath.Join(ref, "run")), segtest.Losses(t, dir)
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

// Ctrl-C during an evaluation stops it at the next image, not at its end: the run returns
// ErrInterrupted with the iteration's checkpoint (written before the evaluation), says which
// evaluation it skipped, and resumes to the losses and final mIoU of an uninterrupted run.
func TestInterruptDuringEvaluation(t *testing.T) {
	c := segtest.TinyConfig(t)
	c.DemoImages, c.Iters, c.EvalEvery, c.CkptEvery = 40, 4, 2, 2 // 8 evaluation images
	stop := &atomic.Bool{}
	images := 0
	var out strings.Builder
	r := &Run{Cfg: c, Out: &out, NoBar: true, Interrupt: stop}
	r.evalImage = func(int) {
		if images++; images == 3 { // Ctrl-C while the third image is under way
			stop.Store(true)
		}
	}
	sum, err := r.Train()
	if !errors.Is(err, ErrInterrupted) || sum.Iters != 2 {
		t.Fatalf("interrupted run: %d iterations, %v", sum.Iters, err)
	}
	if images != 3 {
		t.Errorf("the evaluation went on to image %d of 8 after the interrupt at image 3", images)
	}
	if !strings.Contains(out.String(), "interrupted at iteration 2: its evaluation skipped; checkpoint saved") ||
		!strings.Contains(err.Error(), "its evaluation skipped") {
		t.Errorf("error %v, output:\n%s", err, out.String())
	}
	if _, err := os.Stat(filepath.Join(sum.Dir, "ckpt_iter_0000002.safetensors")); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(sum.Dir, "best.safetensors")); err == nil {
		t.Error("the skipped evaluation made a best checkpoint")
	}
	resumed, err := (&Run{Out: io.Discard, NoBar: true, Resume: sum.Dir}).Train()
	if err != nil {
		t.Fatal(err)
	}
	c.Out = t.TempDir()
	whole, err := (&Run{Cfg: c, Out: io.Discard, NoBar: true}).Train()
	if err != nil {
		t.Fatal(err)
	}
	a, b := segtest.Losses(t, sum.Dir), segtest.Losses(t, whole.Dir)
	for it := 1; it <= 4; it++ {
		if a[it] != b[it] {
			t.Errorf("iteration %d: loss %v after the interrupt, %v uninterrupted", it, a[it], b[it])
		}
	}
	if resumed.Final.MIoU != whole.Final.MIoU || resumed.BestIter != 4 || whole.BestIter == 0 {
		t.Errorf("final mIoU %v after the interrupt (best at %d), %v uninterrupted (best at %d)",
			resumed.Final.MIoU, resumed.BestIter, whole.Final.MIoU, whole.BestIter)
	}
}

// The checkpoint of an iteration is written before its evaluation; when the evaluation finds a
// new best, best.safetensors and that checkpoint both record it, so a resume from the
// checkpoint does not take a worse model for the best.
func TestBestAfterCheckpoint(t *testing.T) {
	c := segtest.TinyConfig(t)
	c.Iters, c.EvalEvery, c.CkptEvery, c.Keep = 4, 2, 2, 2
	sum, err := (&Run{Cfg: c, Out: io.Discard, NoBar: true}).Train()
	if err != nil {
		t.Fatal(err)
	}
	miou := logged(t, sum.Dir, "val_miou")
	best, err := checkpoint.LoadCheckpoint(filepath.Join(sum.Dir, "best.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if best.State.BestIter != sum.BestIter || best.State.BestMIoU != miou[sum.BestIter] || best.State.Iter != sum.BestIter {
		t.Errorf("best.safetensors: iteration %d, best %v at %d; the run's best %v at %d", best.State.Iter, best.State.BestMIoU,
			best.State.BestIter, miou[sum.BestIter], sum.BestIter)
	}
	for _, it := range []int{2, 4} {
		ck, err := checkpoint.LoadCheckpoint(filepath.Join(sum.Dir, fmt.Sprintf("ckpt_iter_%07d.safetensors", it)))
		if err != nil {
			t.Fatal(err)
		}
		wantIter := sum.BestIter // the evaluation at 2 is the best so far at 2
		if it == 2 {
			wantIter = 2
		}
		if ck.State.BestIter != wantIter || ck.State.BestMIoU != miou[wantIter] {
			t.Errorf("checkpoint %d records the best %v at %d; the evaluations %v", it, ck.State.BestMIoU, ck.State.BestIter, miou)
		}
		if it == sum.BestIter && !reflect.DeepEqual(ck.Params, best.Params) {
			t.Errorf("best.safetensors holds other weights than checkpoint %d", it)
		}
	}
}
