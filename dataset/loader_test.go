package dataset_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/segkit/segkit/dataset"
	"github.com/segkit/segkit/voc"
)

// Batches depend on the seed, epoch and position only: not on the number of workers, and a
// stream started at batch 2 gives what a stream from the start gives third.
func TestLoaderDeterminism(t *testing.T) {
	d := voc.Demo{Seed: 7, N: 12, Size: 40}
	mk := func(workers int) *dataset.Loader {
		return &dataset.Loader{Data: d, Aug: voc.DefaultAugment(32), Batch: 4, Seed: 9, Workers: workers}
	}
	a, b := mk(1).Stream(0, 0), mk(3).Stream(0, 2)
	defer a.Close()
	defer b.Close()
	var third dataset.Batch
	for i := 0; i < 3; i++ {
		x, err := a.Next()
		if err != nil {
			t.Fatal(err)
		}
		third = x
	}
	got, err := b.Next()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.X.Float32s(), third.X.Float32s()) || !slices.Equal(got.Labels.Data().([]int32), third.Labels.Data().([]int32)) ||
		got.Epoch != 0 || got.Index != 2 || !got.X.Shape().Eq(third.X.Shape()) {
		t.Errorf("batch (0, 2) differs between the streams")
	}
	next, _ := b.Next() // wraps into epoch 1
	if next.Epoch != 1 || next.Index != 0 {
		t.Errorf("after the last batch of epoch 0 came (%d, %d)", next.Epoch, next.Index)
	}
}

func TestLoaderSkipBad(t *testing.T) {
	root := t.TempDir()
	if err := (voc.Demo{Seed: 3, N: 6, Size: 40}).WriteVOC(root, 2); err != nil {
		t.Fatal(err)
	}
	jpg := filepath.Join(root, "JPEGImages", "demo_00003.jpg")
	os.WriteFile(jpg, []byte("broken"), 0o644)
	v, err := dataset.Open(dataset.VOC, root, "train", dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l := &dataset.Loader{Data: v, Aug: voc.DefaultAugment(32), Batch: 4, Seed: 1}
	s := l.Stream(0, 0)
	if _, err := s.Next(); err == nil || !strings.Contains(err.Error(), jpg) {
		t.Errorf("without SkipBad: %v", err)
	}
	s.Close()
	// Three epochs (one batch each) meet the bad file three times, and the stream's prefetcher
	// may already have met it a fourth: it is still listed once.
	l.SkipBad = true
	s = l.Stream(0, 0)
	defer s.Close()
	if l.BatchesPerEpoch() != 1 {
		t.Fatalf("%d batches per epoch, the test wants 1", l.BatchesPerEpoch())
	}
	for i := 0; i < 3; i++ {
		if _, err := s.Next(); err != nil {
			t.Fatal(err)
		}
	}
	if sk := l.Skipped(); len(sk) != 1 || !strings.Contains(sk[0], "demo_00003") || !strings.Contains(sk[0], jpg) {
		t.Errorf("skipped %q, want demo_00003 once", sk)
	}
}

// The shares of a batch, concatenated in rank order, are the batch, bit for bit, for 1, 2 and
// 4 shares, over an epoch boundary; a batch that does not divide is an error.
func TestLoaderShards(t *testing.T) {
	d := voc.Demo{Seed: 7, N: 10, Size: 40}
	mk := func(shard, shards int) *dataset.Stream {
		l := &dataset.Loader{Data: d, Aug: voc.DefaultAugment(32), Batch: 4, Seed: 9, Shard: shard, Shards: shards}
		return l.Stream(0, 1)
	}
	whole := mk(0, 0)
	defer whole.Close()
	var want []dataset.Batch
	for range 3 { // batches (0,1), (1,0), (1,1)
		b, err := whole.Next()
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, b)
	}
	for _, shards := range []int{1, 2, 4} {
		var x []float32
		var labels []int32
		var ids []string
		streams := make([]*dataset.Stream, shards)
		for r := range streams {
			streams[r] = mk(r, shards)
			defer streams[r].Close()
		}
		for i, w := range want {
			x, labels, ids = x[:0], labels[:0], ids[:0]
			for r, s := range streams {
				b, err := s.Next()
				if err != nil {
					t.Fatal(err)
				}
				if b.X.Shape()[0] != 4/shards || b.Epoch != w.Epoch || b.Index != w.Index {
					t.Fatalf("%d shares: share %d of batch %d is %v at (%d, %d)", shards, r, i, b.X.Shape(), b.Epoch, b.Index)
				}
				x = append(x, b.X.Float32s()...)
				labels = append(labels, b.Labels.Data().([]int32)...)
				ids = append(ids, b.IDs...)
			}
			if !slices.Equal(x, w.X.Float32s()) || !slices.Equal(labels, w.Labels.Data().([]int32)) || !slices.Equal(ids, w.IDs) {
				t.Errorf("%d shares: batch %d (%v) is not the shares' concatenation (%v)", shards, i, w.IDs, ids)
			}
		}
	}
	bad := (&dataset.Loader{Data: d, Aug: voc.DefaultAugment(32), Batch: 4, Seed: 9, Shard: 0, Shards: 3}).Stream(0, 0)
	defer bad.Close()
	if _, err := bad.Next(); err == nil || !strings.Contains(err.Error(), "must divide") {
		t.Errorf("3 shares of 4: %v", err)
	}
}
