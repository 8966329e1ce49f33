package train

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segkit/segkit/segmentation/internal/segtest"

	"github.com/segkit/segkit/parallel"
	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/segmentation/checkpoint"
)

// trainRanks runs c as a data-parallel run of comms' ranks inside this process (goroutines)
// and returns rank 0's summary and every rank's error. setup adjusts each rank's Run.
func trainRanks(c segmentation.Config, comms []parallel.Comm, resume string, setup func(r *Run)) (Summary, []error) {
	errs := make([]error, len(comms))
	var sum Summary
	var wg sync.WaitGroup
	for i, comm := range comms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run := &Run{Cfg: c, Out: io.Discard, NoBar: true, Comm: comm, Resume: resume}
			if setup != nil {
				setup(run)
			}
			s, err := run.Train()
			var shared SharedError
			if err != nil && !errors.Is(err, ErrOtherRank) && !errors.As(err, &shared) {
				comm.Abort(err) // as segtrain does: the other ranks' collectives fail
			}
			errs[i] = err
			if i == 0 {
				sum = s
			}
		}()
	}
	wg.Wait()
	return sum, errs
}

// lossDiffs returns the relative difference of two runs' logged losses at every iteration.
func lossDiffs(t *testing.T, a, b string, iters int) []float64 {
	t.Helper()
	la, lb := segtest.Losses(t, a), segtest.Losses(t, b)
	d := make([]float64, iters+1)
	for it := 1; it <= iters; it++ {
		if la[it] == 0 || lb[it] == 0 {
			t.Fatalf("iteration %d: losses %v and %v", it, la[it], lb[it])
		}
		d[it] = math.Abs(la[it]-lb[it]) / math.Abs(lb[it])
	}
	return d
}

// weightDiff returns ‖a − b‖/‖b‖ over all the weights of two runs' checkpoints at iteration it
// (per tensor would let the biases before a batch norm, whose gradient is rounding noise around
// zero, dominate), and whether they are identical bit for bit.
func weightDiff(t *testing.T, a, b string, it int) (float64, bool) {
	t.Helper()
	name := fmt.Sprintf("ckpt_iter_%07d.safetensors", it)
	ca, err := checkpoint.LoadCheckpoint(filepath.Join(a, name))
	if err != nil {
		t.Fatal(err)
	}
	cb, err := checkpoint.LoadCheckpoint(filepath.Join(b, name))
	if err != nil {
		t.Fatal(err)
	}
	var diff, norm float64
	same := true
	for n, v := range cb.Params {
		for i, x := range v {
			d := float64(ca.Params[n][i]) - float64(x)
			diff += d * d
			norm += float64(x) * float64(x)
			same = same && ca.Params[n][i] == x
		}
	}
	return math.Sqrt(diff / norm), same
}

// equivConfig is a small run for comparing splits of the batch: 64² crops (at 32 the lowest
// branch is 1×1 and the training chaotic from the second iteration), mmseg's learning rate,
// checkpoints every 2 iterations.
func equivConfig(t *testing.T, resize string) segmentation.Config {
	c := segtest.TinyConfig(t)
	c.Resize, c.Crop, c.Batch, c.Iters, c.CkptEvery, c.Keep, c.LR, c.AlphaLR = resize, 64, 4, 10, 2, 10, 0.01, 0.01
	return c
}

// Two ranks × 2 images with SyncBN compute the steps of one process × 4 (fixed and DynOPool):
// the first two iterations' losses within 1e-6, every rank the same; one rank is a plain run bit
// for bit, and two 2-rank runs are identical bit for bit.
//
// SyncBN's steps run each path's own batch-norm arithmetic, so what is left between the splits
// of the batch is the order of sums across the ranks (float64 for batch norm's statistics,
// float32 for the gradients). That still grows fast: HRNet's lowest branch has 2×2 pixels, and
// the backward through batch norm over 16 values per channel makes the stem's gradient
// rounding-sensitive (the AVX-512 and portable kernels of one process already differ by 9e-4
// in conv1's first gradient, and their losses by 1e-1 at iteration 10; the 2-rank losses by 1e-5
// at iteration 3). So the weights after 2 iterations are held to 2e-5 (measured on every path:
// 1.4e-8 to 1.7e-8 fixed, 1.0e-6 to 2.7e-6 DynOPool; with SyncBN on the portable arithmetic
// under the AVX kernels it was 8e-5 to 4e-4, and iteration 2's loss 5e-6 off), and SyncBN's
// effect is checked against the run without it, which must be at least 100 times further off.
// scripts/test.sh runs this on every path the CPU has (SEGKIT_ISA).
func TestRanksEqualOneProcess(t *testing.T) {
	for _, resize := range []string{"fixed", "dynopool"} {
		t.Run(resize, func(t *testing.T) {
			c := equivConfig(t, resize)
			if _, err := (&Run{Cfg: c, Out: io.Discard, NoBar: true}).Train(); err != nil {
				t.Fatal(err)
			}
			ref := filepath.Join(c.Out, "run")
			one := c
			one.Out = t.TempDir()
			if _, errs := trainRanks(one, parallel.NewLocal(1, 0), "", nil); errs[0] != nil {
				t.Fatal(errs[0])
			}
			if d, same := weightDiff(t, filepath.Join(one.Out, "run"), ref, c.Iters); !same || slices.Max(lossDiffs(t, filepath.Join(one.Out, "run"), ref, c.Iters)) != 0 {
				t.Errorf("one rank: differs from a plain run (weights by %.3g)", d)
			}
			var runs []string
			var syncW2 float64
			for _, noSync := range []bool{false, false, true} {
				two := c
				two.Out, two.NoSyncBN = t.TempDir(), noSync
				if _, errs := trainRanks(two, parallel.NewLocal(2, 0), "", nil); errors.Join(errs...) != nil {
					t.Fatal(errors.Join(errs...))
				}
				dir := filepath.Join(two.Out, "run")
				runs = append(runs, dir)
				d := lossDiffs(t, dir, ref, c.Iters)
				w2, _ := weightDiff(t, dir, ref, 2)
				t.Logf("2 ranks × 2, no-sync-bn=%t: losses' relative difference to 1 × 4 by iteration %.1g; weights after 2 iterations %.3g", noSync, d[1:], w2)
				if !noSync {
					syncW2 = w2
					if max(d[1], d[2]) > 1e-6 || w2 > 2e-5 {
						t.Errorf("SyncBN: iterations 1-2 differ from one process by %.3g and %.3g (want ≤ 1e-6), the weights after them by %.3g (want ≤ 2e-5)", d[1], d[2], w2)
					}
					continue
				}
				if d[1] < 1e-4 || w2 < 100*syncW2 {
					t.Errorf("without SyncBN: iteration 1 differs from one process by only %.3g, the weights after 2 iterations by %.3g (SyncBN: %.3g)", d[1], w2, syncW2)
				}
			}
			if d, same := weightDiff(t, runs[0], runs[1], c.Iters); !same || slices.Max(lossDiffs(t, runs[0], runs[1], c.Iters)) != 0 {
				t.Errorf("two 2-rank runs differ (weights by %.3g)", d)
			}
		})
	}
}

// A rank that fails at iteration 3 stops every rank with its error, never a hang; the
// checkpoint of iteration 2 is whole, and resuming it with 2 ranks reproduces the uninterrupted
// 2-rank losses bit for bit, with 1 rank to float rounding.
func TestRankFailureAndResume(t *testing.T) {
	c := segtest.TinyConfig(t)
	c.Batch, c.Iters, c.CkptEvery = 4, 6, 2
	whole := c
	whole.Out = t.TempDir()
	if _, errs := trainRanks(whole, parallel.NewLocal(2, 0), "", nil); errors.Join(errs...) != nil {
		t.Fatal(errors.Join(errs...))
	}
	start := time.Now()
	_, errs := trainRanks(c, parallel.NewLocal(2, time.Minute), "", func(r *Run) {
		if r.Comm.Rank() == 1 {
			r.BeforeStep = func(it int) {
				if it == 3 {
					r.Comm.Abort(errors.New("injected failure")) // what a dying rank's mpirun does to the others
				}
			}
		}
	})
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("the ranks took %v to stop", took)
	}
	if errs[0] == nil || !strings.Contains(errs[0].Error(), "rank 1/2 failed: injected failure") {
		t.Errorf("rank 0: %v, want the failure of rank 1 named", errs[0])
	}
	dir := filepath.Join(c.Out, "run")
	files, _ := filepath.Glob(filepath.Join(dir, "ckpt_iter_*"))
	tmp, _ := filepath.Glob(filepath.Join(dir, ".tmp-*"))
	if len(files) != 1 || filepath.Base(files[0]) != "ckpt_iter_0000002.safetensors" || len(tmp) > 0 {
		t.Fatalf("checkpoints %v, temporary files %v", files, tmp)
	}
	other := t.TempDir() // to resume with one rank
	if err := os.CopyFS(other, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	if _, errs := trainRanks(segmentation.Config{}, parallel.NewLocal(2, 0), dir, nil); errors.Join(errs...) != nil {
		t.Fatal(errors.Join(errs...))
	}
	if d := lossDiffs(t, dir, filepath.Join(whole.Out, "run"), c.Iters); slices.Max(d) != 0 {
		t.Errorf("resumed with 2 ranks: losses differ from the uninterrupted run by %.3g", d[1:])
	}
	// Resuming with another number of ranks continues the same training.
	if _, err := (&Run{Out: io.Discard, NoBar: true, Resume: other}).Train(); err != nil {
		t.Fatal(err)
	}
	if ck, err := checkpoint.LoadCheckpoint(filepath.Join(other, "ckpt_iter_0000006.safetensors")); err != nil || ck.State.Ranks != 1 {
		t.Errorf("resumed with one rank: %v", err)
	}
}

// With 2 ranks, --skip-bad leaves out a bad evaluation sample that only rank 1 evaluates and
// lists it once on rank 0, as one process does; and Ctrl-C on rank 0 alone in the middle of
// an evaluation stops both ranks there (no hang), with the iteration's checkpoint.
func TestRanksEvaluationSkipAndInterrupt(t *testing.T) {
	root, id, _ := badValMask(t) // the bad one is evaluation image 1: rank 1's
	c := segtest.TinyConfig(t)
	c.Data, c.Dataset, c.Batch, c.Iters, c.EvalEvery, c.CkptEvery, c.SkipBad = root, "folder", 4, 2, 1, 1, true
	one, err := (&Run{Cfg: c, Out: io.Discard, NoBar: true}).Train()
	if err != nil {
		t.Fatal(err)
	}
	two := c
	two.Out = t.TempDir()
	sum, errs := trainRanks(two, parallel.NewLocal(2, time.Minute), "", nil)
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if len(sum.Skipped) != 1 || !strings.HasPrefix(sum.Skipped[0], id+": ") || !slices.Equal(sum.Skipped, one.Skipped) {
		t.Errorf("2 ranks skipped %q, one process %q", sum.Skipped, one.Skipped)
	}
	if sum.Final.Pixels != one.Final.Pixels || sum.Final.MIoU != one.Final.MIoU {
		t.Errorf("2 ranks: mIoU %v over %d pixels, one process %v over %d", sum.Final.MIoU, sum.Final.Pixels, one.Final.MIoU, one.Final.Pixels)
	}

	intr := c
	intr.Out = t.TempDir()
	start := time.Now()
	_, errs = trainRanks(intr, parallel.NewLocal(2, time.Minute), "", func(r *Run) {
		r.Interrupt = &atomic.Bool{}
		if r.Comm.Rank() == 0 {
			r.evalImage = func(int) { r.Interrupt.Store(true) }
		}
	})
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("the ranks took %v to stop", took)
	}
	if !errors.Is(errs[0], ErrInterrupted) || !strings.Contains(errs[0].Error(), "iteration 1, its evaluation skipped") || !errors.Is(errs[1], ErrOtherRank) {
		t.Errorf("rank 0: %v; rank 1: %v", errs[0], errs[1])
	}
	if _, err := os.Stat(filepath.Join(intr.Out, "run", "ckpt_iter_0000001.safetensors")); err != nil {
		t.Error(err)
	}
}
