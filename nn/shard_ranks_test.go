package nn

import (
	"math/rand/v2"
	"slices"
	"testing"

	"gorgonia.org/tensor"
)

// shardBatches returns steps batches of n random 3-channel 12×10 images and their labels.
func shardBatches(seed uint64, steps, n int) (xs, labels []*tensor.Dense) {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	for range steps {
		xs = append(xs, randTensor(rng, 1, n, 3, 12, 10))
		labels = append(labels, randLabels(rng, 3, n, 12, 10))
	}
	return xs, labels
}

// Three ranks × 2 images with SyncBN step as one net × 6 (three-way sums, where the order of
// the ranks' values matters, unlike two ranks' a+b = b+a): losses, weights and running
// statistics within 1e-5, and the three ranks identical bit for bit.
func TestShardThreeRanksEqualWholeBatch(t *testing.T) {
	xs, labels := shardBatches(21, 4, 6)
	model := termModel{tinyModel{classes: 3}}
	whole, ref := trainShards(t, model, 1, false, xs, labels)
	got, nets := trainShards(t, model, 3, true, xs, labels)
	worst := 0.0
	for i := range xs {
		for r := 1; r < 3; r++ {
			if got[r][i] != got[0][i] {
				t.Errorf("step %d: rank %d's losses %+v, rank 0's %+v", i, r, got[r][i], got[0][i])
			}
		}
		a, b := whole[0][i], got[0][i]
		worst = max(worst, relDiff([]float32{a.Total, a.CE}, []float32{b.Total, b.CE}))
	}
	for _, p := range ref[0].Params.All() {
		for r := range 3 {
			q := nets[r].Params.Get(p.Name)
			worst = max(worst, relDiff(q.Data(), p.Data()))
			if !slices.Equal(q.Data(), nets[0].Params.Get(p.Name).Data()) {
				t.Errorf("%s: rank %d differs from rank 0", p.Name, r)
			}
		}
	}
	t.Logf("3 ranks × 2 with SyncBN: largest relative difference to one net × 6: %.3g", worst)
	if worst > 1e-5 {
		t.Errorf("relative difference %.3g to one net × 6, want ≤ 1e-5", worst)
	}
}

// Without SyncBN each rank normalises its own share, and after every step every rank holds rank
// 0's running statistics (as PyTorch's DDP broadcasts them): after step n, those a lone net
// gets from one step on rank 0's share, starting from the ranks' weights and statistics after
// step n−1. 3 ranks, so that rank 0's statistics differ from the last rank's and from a mean.
func TestNoSyncBNRunningStatsFromRankZero(t *testing.T) {
	const ranks, steps = 3, 3
	xs, labels := shardBatches(23, steps, 2*ranks)
	model := termModel{tinyModel{classes: 3}}
	share := func(x *tensor.Dense, r int) *tensor.Dense { return half(x, 2*r, 2*r+2) }
	buffers := func(n *Net) map[string][]float32 {
		m := map[string][]float32{}
		for _, p := range n.Params.All() {
			if p.Buffer {
				m[p.Name] = slices.Clone(p.Data())
			}
		}
		return m
	}
	for n := 1; n <= steps; n++ {
		_, nets := trainShards(t, model, ranks, false, xs[:n], labels[:n])
		// The weights and statistics before step n: the same ranks stopped a step earlier
		// (every run is deterministic), or the initial ones.
		var before *Net
		if n == 1 {
			before = NewNet(model, 1)
			if _, err := before.Graph(Training, share(xs[0], 0).Shape()); err != nil {
				t.Fatal(err)
			}
		} else {
			_, prev := trainShards(t, model, ranks, false, xs[:n-1], labels[:n-1])
			before = prev[0]
		}
		want := make([]map[string][]float32, ranks) // a lone net's step on each rank's share
		for r := range ranks {
			lone := NewNet(model, 1)
			x := share(xs[n-1], r)
			if _, err := lone.Graph(Training, x.Shape()); err != nil { // creates the parameters
				t.Fatal(err)
			}
			for _, p := range lone.Params.All() {
				copy(p.Data(), before.Params.Get(p.Name).Data())
			}
			if _, err := lone.TrainStep(x, share(labels[n-1], r)); err != nil {
				t.Fatal(err)
			}
			want[r] = buffers(lone)
		}
		if len(want[0]) == 0 {
			t.Fatal("the model has no running statistics")
		}
		for name, w := range want[0] {
			if slices.Equal(w, want[ranks-1][name]) {
				t.Fatalf("step %d: %s is the same on rank 0's share and rank %d's: the test cannot tell them apart", n, name, ranks-1)
			}
			for r := range ranks {
				if got := buffers(nets[r])[name]; !slices.Equal(got, w) {
					t.Errorf("step %d: rank %d's %s is not rank 0's (%.6g…, rank 0's share gives %.6g…)", n, r, name, got[0], w[0])
				}
			}
		}
	}
}
