package dataset

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"

	"gorgonia.org/tensor"

	"github.com/segkit/segkit/voc"
)

// Batch is what a training step takes: images N×3×H×W and labels N×H×W (int32).
type Batch struct {
	X, Labels    *tensor.Dense
	IDs          []string
	Epoch, Index int // position in the run: batch Index of epoch Epoch
}

// Loader draws training batches. An epoch's order is a permutation drawn from (Seed, epoch) and
// every sample's augmentation from (Seed, epoch, position): batches do not depend on the number
// of workers, and a run can resume at any batch. Samples load and augment on Workers goroutines,
// a batch ahead of the one being trained on.
type Loader struct {
	Data    Dataset
	Aug     voc.Augment
	Batch   int
	Seed    uint64
	Workers int  // 0 means 2
	SkipBad bool // replace samples that fail to load by the next one (reported in Skipped)
	// Shard of Shards (0 of 0 or 1: everything) is the share of every batch this process loads,
	// a rank of a data-parallel run: Batch/Shards samples, those at positions Shard·Batch/Shards
	// onward of the batch. The shares, in rank order, are the batch one process would load.
	Shard, Shards int

	mu      sync.Mutex
	skipped []Skip
	seen    map[int]bool // dataset indices already in skipped: a bad file fails every epoch
}

// Skip is a sample that SkipBad left out: its dataset index, "id: problem", and the batch in
// which it was first met.
type Skip struct {
	Index int    `json:"index"`
	What  string `json:"what"`
	Epoch int    `json:"epoch"`
	Batch int    `json:"batch"`
}

// BatchesPerEpoch is the number of full batches in an epoch (the rest is dropped).
func (l *Loader) BatchesPerEpoch() int { return l.Data.Len() / l.Batch }

// Order is the sample order of an epoch.
func (l *Loader) Order(epoch int) []int {
	return rand.New(rand.NewPCG(l.Seed, uint64(epoch))).Perm(l.Data.Len())
}

// Skipped lists the samples left out so far ("id: problem"), each once, sorted (the order in
// which the workers met them is not deterministic).
func (l *Loader) Skipped() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, len(l.skipped))
	for i, s := range l.skipped {
		out[i] = s.What
	}
	slices.Sort(out)
	return out
}

// SkippedBefore lists the samples left out in the batches before batch index of epoch: those
// a run trained on, not the batch the stream loaded ahead (met or not depending on timing).
// Each sample once, in no particular order.
func (l *Loader) SkippedBefore(epoch, index int) []Skip {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Skip
	for _, s := range l.skipped {
		if s.Epoch < epoch || s.Epoch == epoch && s.Batch < index {
			out = append(out, s)
		}
	}
	return out
}

// example loads and augments the sample at position pos of the epoch's order.
func (l *Loader) example(order []int, epoch, pos int) (voc.Example, error) {
	for k := 0; k < len(order); k++ {
		i := order[(pos+k)%len(order)]
		s, err := l.Data.Load(i)
		if err == nil {
			rng := rand.New(rand.NewPCG(l.Seed^0x9e3779b97f4a7c15, uint64(epoch)<<32|uint64(pos)))
			return l.Aug.Train(s, rng), nil
		}
		if !l.SkipBad {
			return voc.Example{}, err
		}
		l.mu.Lock()
		if !l.seen[i] {
			if l.seen == nil {
				l.seen = map[int]bool{}
			}
			l.seen[i] = true
			// Batches load one after another: the first meeting is in the earliest batch.
			l.skipped = append(l.skipped, Skip{Index: i, What: fmt.Sprintf("%s: %v", l.Data.ID(i), err), Epoch: epoch, Batch: pos / l.Batch})
		}
		l.mu.Unlock()
	}
	return voc.Example{}, fmt.Errorf("no sample of the dataset could be read")
}

// share returns the number of samples this process loads per batch and the first one's offset.
func (l *Loader) share() (n, first int) {
	if l.Shards <= 1 {
		return l.Batch, 0
	}
	n = l.Batch / l.Shards
	return n, l.Shard * n
}

// load builds (this process's share of) batch index of epoch.
func (l *Loader) load(order []int, epoch, index int) (Batch, error) {
	n, first := l.share()
	examples := make([]voc.Example, n)
	errs := make([]error, n)
	workers := l.Workers
	if workers <= 0 {
		workers = 2
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for k := w; k < n; k += workers {
				examples[k], errs[k] = l.example(order, epoch, index*l.Batch+first+k)
			}
		}(w)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return Batch{}, err
		}
	}
	h, w := examples[0].H, examples[0].W
	x := make([]float32, n*3*h*w)
	labels := make([]int32, n*h*w)
	b := Batch{Epoch: epoch, Index: index}
	for k, ex := range examples {
		if ex.H != h || ex.W != w {
			return Batch{}, fmt.Errorf("sample %s is %d×%d after augmentation, the batch %d×%d", ex.ID, ex.H, ex.W, h, w)
		}
		copy(x[k*3*h*w:], ex.Image)
		for i, v := range ex.Labels {
			labels[k*h*w+i] = int32(v)
		}
		b.IDs = append(b.IDs, ex.ID)
	}
	b.X = tensor.New(tensor.WithShape(n, 3, h, w), tensor.WithBacking(x))
	b.Labels = tensor.New(tensor.WithShape(n, h, w), tensor.WithBacking(labels))
	return b, nil
}

// Stream yields batches in order from batch from of epoch epoch on, loading one ahead.
type Stream struct {
	out  chan result
	stop chan struct{}
	once sync.Once
}

type result struct {
	b   Batch
	err error
}

// Stream starts loading at (epoch, from).
func (l *Loader) Stream(epoch, from int) *Stream {
	s := &Stream{out: make(chan result, 1), stop: make(chan struct{})}
	go func() {
		defer close(s.out)
		per := l.BatchesPerEpoch()
		if per == 0 {
			s.out <- result{err: fmt.Errorf("%d samples make no batch of %d", l.Data.Len(), l.Batch)}
			return
		}
		if l.Shards > 1 && (l.Batch%l.Shards != 0 || l.Shard < 0 || l.Shard >= l.Shards) {
			s.out <- result{err: fmt.Errorf("share %d of %d of a batch of %d: the batch must divide into the shares", l.Shard, l.Shards, l.Batch)}
			return
		}
		for e, i := epoch, from; ; i++ {
			if i >= per {
				e, i = e+1, 0
			}
			b, err := l.load(l.Order(e), e, i)
			select {
			case s.out <- result{b, err}:
			case <-s.stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return s
}

// Next returns the next batch.
func (s *Stream) Next() (Batch, error) {
	r, ok := <-s.out
	if !ok {
		return Batch{}, fmt.Errorf("the batch stream is closed")
	}
	return r.b, r.err
}

// Close stops loading.
func (s *Stream) Close() { s.once.Do(func() { close(s.stop) }) }
