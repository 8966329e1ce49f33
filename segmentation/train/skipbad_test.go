package train

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/segkit/segkit/segmentation/internal/segtest"

	"github.com/segkit/segkit/dataset"
	"github.com/segkit/segkit/dataset/datasettest"
	"github.com/segkit/segkit/parallel"
	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/voc"
)

// With --skip-bad, 2 ranks list the bad samples of the batches trained on as one process
// does: each once, sorted, on rank 0, though each rank met only those of its shares.
func TestSkipBadRanksListAsOneProcess(t *testing.T) {
	root := t.TempDir()
	if err := (voc.Demo{Seed: 5, N: 14, Size: 40}).WriteVOC(root, 2); err != nil {
		t.Fatal(err)
	}
	ids, err := voc.ReadIDs(filepath.Join(root, "ImageSets", "Segmentation", "train.txt"))
	if err != nil {
		t.Fatal(err)
	}
	bad := []string{ids[1], ids[4], ids[6], ids[9]}
	for _, id := range bad {
		os.WriteFile(filepath.Join(root, "JPEGImages", id+".jpg"), []byte("broken"), 0o644)
	}
	c := segtest.TinyConfig(t)
	// 12 training images, 3 batches of 4 per epoch: 4 iterations reach into the second epoch,
	// whose bad samples are met again (listed once), and the stream loads a batch ahead.
	c.Data, c.Dataset, c.Batch, c.Iters, c.SkipBad, c.LogEvery = root, "voc", 4, 4, true, 0

	var out bytes.Buffer
	one, err := (&Run{Cfg: c, Out: &out, NoBar: true}).Train()
	if err != nil {
		t.Fatal(err)
	}
	if len(one.Skipped) != len(bad) {
		t.Fatalf("one process skipped %q, want the %d of %v", one.Skipped, len(bad), bad)
	}
	for i, id := range bad {
		if !strings.HasPrefix(one.Skipped[i], id+": ") {
			t.Errorf("one process skipped %q, want %v", one.Skipped, bad)
		}
	}
	if !strings.Contains(out.String(), "skipped 4 bad samples:\n  "+strings.Join(one.Skipped, "\n  ")) {
		t.Errorf("one process's output:\n%s", out.String())
	}

	two := c
	two.Out = t.TempDir()
	runs := make([]*Run, 2)
	var rank0 bytes.Buffer
	sum, errs := trainRanks(two, parallel.NewLocal(2, 0), "", func(r *Run) {
		runs[r.Comm.Rank()] = r
		if r.Comm.Rank() == 0 {
			r.Out = &rank0
		}
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sum.Skipped, one.Skipped) {
		t.Errorf("2 ranks skipped %q, one process %q", sum.Skipped, one.Skipped)
	}
	if n := strings.Count(rank0.String(), ids[4]+": "); n != 1 || !strings.Contains(rank0.String(), "skipped 4 bad samples") {
		t.Errorf("rank 0 lists %s %d times:\n%s", ids[4], n, rank0.String())
	}
	// Each rank met some of the bad files only: the list is a union.
	for _, r := range runs {
		if met := r.loader.SkippedBefore(r.state.Epoch, r.state.Batch); len(met) == 0 || len(met) == len(bad) {
			t.Errorf("rank %d met %d of the %d bad files: the test wants bad files in both ranks' shares only", r.Comm.Rank(), len(met), len(bad))
		}
	}
}

// badValMask writes the demo as a folder dataset whose evaluation split holds 3 images, the
// second with a mask that does not decode, and returns its root and that sample's id and mask.
func badValMask(t *testing.T) (root, id, mask string) {
	t.Helper()
	root = t.TempDir()
	files, err := datasettest.Tree{Demo: voc.Demo{Seed: 6, N: 11, Size: 40}, Val: 3}.Write(dataset.Folder, root)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(files[1].Mask, []byte("not a PNG"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, files[1].ID, files[1].Mask
}

// A validation mask that does not decode fails the first evaluation after that iteration's
// checkpoint, not before it: --resume continues from there, and with --skip-bad the run
// completes, leaving the sample out of the mIoU and listing it.
func TestBadValMaskKeepsCheckpoint(t *testing.T) {
	root, id, mask := badValMask(t)
	c := segtest.TinyConfig(t)
	c.Data, c.Dataset, c.Iters, c.EvalEvery, c.CkptEvery = root, dataset.Folder, 4, 2, 2
	sum, err := (&Run{Cfg: c, Out: io.Discard, NoBar: true}).Train()
	if err == nil || !strings.Contains(err.Error(), mask) {
		t.Fatalf("the bad mask: %v", err)
	}
	if _, err := os.Stat(filepath.Join(sum.Dir, "ckpt_iter_0000002.safetensors")); err != nil {
		t.Fatalf("no checkpoint of the iteration whose evaluation failed: %v", err)
	}
	flags := segmentation.DefaultConfig()
	flags.SkipBad = true
	var out bytes.Buffer
	sum, err = (&Run{Cfg: flags, Override: []string{"skip_bad"}, Out: &out, NoBar: true, Resume: sum.Dir}).Train()
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "resuming ") || !strings.Contains(out.String(), "at iteration 2") || sum.Iters != 4 {
		t.Errorf("resumed to iteration %d:\n%s", sum.Iters, out.String())
	}
	if len(sum.Skipped) != 1 || !strings.HasPrefix(sum.Skipped[0], id+": ") || !strings.Contains(sum.Skipped[0], mask) {
		t.Errorf("skipped %q, want %s", sum.Skipped, id)
	}
	if !strings.Contains(out.String(), "skipped 1 bad samples:\n  "+sum.Skipped[0]) {
		t.Errorf("the run's output does not list the sample:\n%s", out.String())
	}
	if sum.Final.Pixels != 2*40*39 { // the 2 good images, row 0 void
		t.Errorf("the final evaluation counted %d pixels, want %d", sum.Final.Pixels, 2*40*39)
	}
}
