package nn

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/segkit/segkit/parallel"
)

// termModel is tinyModel with an extra loss term on a weight (as DynOPool's GMACs loss is on
// the alphas): a shard must count it once.
type termModel struct{ tinyModel }

func (m termModel) Forward(b *Builder, x *G.Node) *G.Node {
	out := m.tinyModel.Forward(b, x)
	if b.Train() && b.Err() == nil {
		w := b.ParamNode("cls.weight")
		b.AddLoss(G.Must(G.Mul(G.Must(G.Sum(G.Must(G.Square(w)))), G.NewConstant(float32(0.05)))))
	}
	return out
}

// half returns images [lo, hi) of an N×… tensor.
func half(t *tensor.Dense, lo, hi int) *tensor.Dense {
	s := t.Shape().Clone()
	per := s.TotalSize() / s[0]
	s[0] = hi - lo
	switch d := t.Data().(type) {
	case []float32:
		return tensor.New(tensor.WithShape(s...), tensor.WithBacking(append([]float32(nil), d[lo*per:hi*per]...)))
	default:
		return tensor.New(tensor.WithShape(s...), tensor.WithBacking(append([]int32(nil), t.Data().([]int32)[lo*per:hi*per]...)))
	}
}

func relDiff(a, b []float32) float64 {
	var d, m float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
		m = max(m, math.Abs(float64(b[i])))
	}
	return d / max(m, 1e-30)
}

// trainShards trains ranks nets on their halves of the same batches for steps steps, returning
// each rank's losses (by step) and the nets.
func trainShards(t *testing.T, model Model, ranks int, syncBN bool, xs, labels []*tensor.Dense) ([][]Losses, []*Net) {
	return trainBuckets(t, model, ranks, syncBN, 0, xs, labels)
}

// trainBuckets is trainShards with gradient buckets of bucketBytes (0: the default).
func trainBuckets(t *testing.T, model Model, ranks int, syncBN bool, bucketBytes int, xs, labels []*tensor.Dense) ([][]Losses, []*Net) {
	t.Helper()
	comms := parallel.NewLocal(ranks, 0)
	nets := make([]*Net, ranks)
	losses := make([][]Losses, ranks)
	errs := make([]error, ranks)
	var wg sync.WaitGroup
	for r := range ranks {
		nets[r] = NewNet(model, 1)
		if ranks > 1 {
			nets[r].Shard = &Shard{Comm: comms[r], SyncBN: syncBN, BucketBytes: bucketBytes}
		}
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			opt := &SGD{LR: 0.1, Momentum: 0.9, WeightDecay: 1e-3}
			for i := range xs {
				per := xs[i].Shape()[0] / ranks
				l, err := nets[r].TrainStep(half(xs[i], r*per, (r+1)*per), half(labels[i], r*per, (r+1)*per))
				if err != nil {
					errs[r] = err
					comms[r].Abort(err)
					return
				}
				opt.Step(nets[r].Params)
				losses[r] = append(losses[r], l)
			}
		}(r)
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	return losses, nets
}

// Two ranks × 2 images with SyncBN step as one net × 4 images: losses, weights and running
// statistics within 1e-5 (the sums are only added in another order); without SyncBN they do not.
func TestShardEqualsWholeBatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var xs, labels []*tensor.Dense
	for range 4 {
		xs = append(xs, randTensor(rng, 1, 4, 3, 12, 10))
		labels = append(labels, randLabels(rng, 3, 4, 12, 10))
	}
	model := termModel{tinyModel{classes: 3}}
	whole, ref := trainShards(t, model, 1, false, xs, labels)
	for _, syncBN := range []bool{true, false} {
		got, nets := trainShards(t, model, 2, syncBN, xs, labels)
		worst := 0.0
		for i := range xs {
			for r := range 2 {
				if got[r][i] != got[0][i] {
					t.Errorf("syncbn=%t step %d: rank %d's losses %+v, rank 0's %+v", syncBN, i, r, got[r][i], got[0][i])
				}
			}
			a, b := whole[0][i], got[0][i]
			worst = max(worst, relDiff([]float32{a.Total, a.CE}, []float32{b.Total, b.CE}))
		}
		for _, p := range ref[0].Params.All() {
			for r := range 2 {
				q := nets[r].Params.Get(p.Name)
				worst = max(worst, relDiff(q.Data(), p.Data()))
				if r == 1 && relDiff(q.Data(), nets[0].Params.Get(p.Name).Data()) != 0 {
					t.Errorf("syncbn=%t: %s differs between the ranks", syncBN, p.Name)
				}
			}
		}
		t.Logf("syncbn=%t: largest relative difference to one net × 4: %.3g", syncBN, worst)
		if syncBN && worst > 1e-5 {
			t.Errorf("with SyncBN: relative difference %.3g, want ≤ 1e-5", worst)
		}
		if !syncBN && worst < 1e-3 {
			t.Errorf("without SyncBN: relative difference %.3g: the statistics of 2 images should change the training", worst)
		}
	}
}

// A shard of one rank is the net itself, bit for bit.
func TestShardOfOne(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	x, labels := randTensor(rng, 1, 2, 3, 8, 8), randLabels(rng, 3, 2, 8, 8)
	a, b := NewNet(tinyModel{3}, 1), NewNet(tinyModel{3}, 1)
	b.Shard = &Shard{Comm: parallel.Single{}, SyncBN: true}
	la, err := a.TrainStep(x, labels)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := b.TrainStep(x, labels)
	if err != nil || la != lb {
		t.Fatalf("losses %+v and %+v, %v", la, lb, err)
	}
	for _, p := range a.Params.All() {
		if q := b.Params.Get(p.Name); relDiff(q.Grad, p.Grad) != 0 {
			t.Errorf("%s: gradients differ", p.Name)
		}
	}
}

// A rank that fails makes the others' collectives fail naming it, not hang.
func TestShardRankFails(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	x, labels := randTensor(rng, 1, 2, 3, 8, 8), randLabels(rng, 3, 2, 8, 8)
	comms := parallel.NewLocal(2, 0)
	net := NewNet(tinyModel{3}, 1)
	net.Shard = &Shard{Comm: comms[0], SyncBN: true}
	go comms[1].Abort(errors.New("bad data"))
	_, err := net.TrainStep(x, labels)
	if err == nil || !strings.Contains(err.Error(), "rank 1/2 failed: bad data") {
		t.Fatalf("error %v", err)
	}
}

// Gradients summed in many buckets, each started during the backward pass, give the bits of
// one sum of all of them after it (the sums are elementwise, in rank order): losses and
// weights equal over 4 steps, with and without SyncBN (whose sums run between the buckets').
func TestShardBucketsSumAsOne(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	var xs, labels []*tensor.Dense
	for range 4 {
		xs = append(xs, randTensor(rng, 1, 4, 3, 12, 10))
		labels = append(labels, randLabels(rng, 3, 4, 12, 10))
	}
	model := termModel{tinyModel{classes: 3}}
	for _, syncBN := range []bool{true, false} {
		oneLosses, one := trainBuckets(t, model, 2, syncBN, math.MaxInt, xs, labels)
		manyLosses, many := trainBuckets(t, model, 2, syncBN, 1, xs, labels)
		for r := range 2 {
			gr := many[r].graphs[0]
			buckets, last := gr.shard.buckets, len(gr.prog.nodes)-1
			if len(buckets) != len(gr.params) || buckets[0].startAfter >= last {
				t.Fatalf("rank %d: %d buckets for %d parameters, the first starting after node %d of %d: "+
					"want one each, the first before the end", r, len(buckets), len(gr.params), buckets[0].startAfter, last)
			}
			if n := len(one[r].graphs[0].shard.buckets); n != 1 {
				t.Fatalf("rank %d: %d buckets of unbounded size", r, n)
			}
			for i := range xs {
				if manyLosses[r][i] != oneLosses[r][i] {
					t.Errorf("syncbn=%t rank %d step %d: losses %+v in buckets, %+v in one sum", syncBN, r, i, manyLosses[r][i], oneLosses[r][i])
				}
			}
			for _, p := range one[r].Params.All() {
				if q := many[r].Params.Get(p.Name); relDiff(q.Data(), p.Data()) != 0 || relDiff(q.Grad, p.Grad) != 0 {
					t.Errorf("syncbn=%t rank %d: %s differs between buckets and one sum", syncBN, r, p.Name)
				}
			}
		}
	}
}

// The executor's done hook sees every gradient with its final value: a bucket's sum may start
// there. A snapshot of each gradient taken in the hook equals its value after the run.
func TestGradientFinalWhenDone(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	x, labels := randTensor(rng, 1, 2, 3, 12, 10), randLabels(rng, 3, 2, 12, 10)
	net := NewNet(termModel{tinyModel{classes: 3}}, 1)
	gr, err := net.graph(Training, x.Shape(), labels.Shape())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int][]float32{}
	gr.prog.done = func(i int) {
		for k, g := range gr.grads {
			if gr.prog.index[g] == i {
				seen[k] = slices.Clone(Floats(gr.prog.value(g)))
			}
		}
	}
	for range 2 { // the second run overwrites the first's memory
		clear(seen)
		if _, err := gr.Step(x, labels); err != nil {
			t.Fatal(err)
		}
		for k, p := range gr.params {
			if got, ok := seen[k]; !ok || relDiff(got, p.Grad) != 0 {
				t.Errorf("%s: gradient when done %v, after the run %v", p.Name, got, p.Grad)
			}
		}
	}
}

// A rank that fails while gradient sums are in flight makes them fail naming it.
func TestShardRankFailsInBuckets(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	x, labels := randTensor(rng, 1, 2, 3, 8, 8), randLabels(rng, 3, 2, 8, 8)
	comms := parallel.NewLocal(2, 0)
	net := NewNet(tinyModel{3}, 1)
	net.Shard = &Shard{Comm: comms[0], BucketBytes: 1} // no SyncBN: only the buckets communicate
	go func() {
		comms[1].SumFloat64([]float64{0}) // the count of labelled pixels
		comms[1].Abort(errors.New("out of memory"))
	}()
	_, err := net.TrainStep(x, labels)
	if err == nil || !strings.Contains(err.Error(), "rank 1/2 failed: out of memory") {
		t.Fatalf("error %v", err)
	}
}
