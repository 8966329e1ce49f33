package segmentation

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/segkit/segkit/dist"
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
	c := tinyConfig(t)
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
	sum, errs := trainRanks(two, dist.NewLocal(2, 0), "", func(r *Run) {
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
