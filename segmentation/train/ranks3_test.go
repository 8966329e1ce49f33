package train

import (
	"errors"
	"io"
	"path/filepath"
	"slices"
	"testing"

	"github.com/segkit/segkit/parallel"
	"github.com/segkit/segkit/segmentation/checkpoint"
)

// Three ranks × 2 images compute the steps of one process × 6 (fixed and DynOPool): with SyncBN
// the first two iterations' losses within 1e-6 and the weights after them within 2e-5 (the
// bounds TestRanksEqualOneProcess holds two ranks to), every rank's model the same bits; with --no-sync-bn every rank ends with
// rank 0's running statistics, which are not the whole batch's. The other multi-rank tests use
// two ranks, whose sums a+b = b+a cannot show a rank adding the values in its own order.
func TestThreeRanksEqualOneProcess(t *testing.T) {
	for _, resize := range []string{"fixed", "dynopool"} {
		t.Run(resize, func(t *testing.T) {
			c := equivConfig(t, resize)
			c.Batch, c.Iters = 6, 2
			if _, err := (&Run{Cfg: c, Out: io.Discard, NoBar: true}).Train(); err != nil {
				t.Fatal(err)
			}
			ref := filepath.Join(c.Out, "run")
			three := c
			three.Out = t.TempDir()
			synced := make([]*Run, 3)
			if _, errs := trainRanks(three, parallel.NewLocal(3, 0), "", func(r *Run) { synced[r.Comm.Rank()] = r }); errors.Join(errs...) != nil {
				t.Fatal(errors.Join(errs...))
			}
			for _, p := range synced[0].net.Params.All() {
				for r := 1; r < 3; r++ {
					if !slices.Equal(synced[r].net.Params.Get(p.Name).Data(), p.Data()) {
						t.Errorf("SyncBN: rank %d's %s differs from rank 0's", r, p.Name)
					}
				}
			}
			d := lossDiffs(t, filepath.Join(three.Out, "run"), ref, c.Iters)
			w2, _ := weightDiff(t, filepath.Join(three.Out, "run"), ref, 2)
			t.Logf("3 ranks × 2: losses' relative difference to 1 × 6 %.1g, weights after 2 iterations %.3g", d[1:], w2)
			if max(d[1], d[2]) > 1e-6 || w2 > 2e-5 {
				t.Errorf("SyncBN: iterations 1-2 differ from one process by %.3g and %.3g (want ≤ 1e-6), the weights by %.3g (want ≤ 2e-5)", d[1], d[2], w2)
			}
			noSync := c
			noSync.Out, noSync.NoSyncBN = t.TempDir(), true
			runs := make([]*Run, 3)
			if _, errs := trainRanks(noSync, parallel.NewLocal(3, 0), "", func(r *Run) { runs[r.Comm.Rank()] = r }); errors.Join(errs...) != nil {
				t.Fatal(errors.Join(errs...))
			}
			whole, err := checkpoint.LoadCheckpoint(filepath.Join(ref, "ckpt_iter_0000002.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			buffers := 0
			for _, p := range runs[0].net.Params.All() {
				if !p.Buffer {
					continue
				}
				buffers++
				for r := 1; r < 3; r++ {
					if !slices.Equal(runs[r].net.Params.Get(p.Name).Data(), p.Data()) {
						t.Errorf("--no-sync-bn: rank %d's %s is not rank 0's", r, p.Name)
					}
				}
				if w, ok := whole.Params[p.Name]; ok && slices.Equal(w, p.Data()) {
					t.Errorf("--no-sync-bn: %s equals the whole batch's: the shares' statistics were not used", p.Name)
				}
			}
			if buffers == 0 {
				t.Fatal("no running statistics")
			}
		})
	}
}
