package parallel

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// NewLocal returns the n ranks of a job inside this process, to be used by n goroutines: the
// same collectives as MPI's, with the same sums, so that code for several ranks runs in
// ordinary tests. A rank that Aborts or Closes makes the others' collectives fail naming it;
// a wait longer than timeout (0: a minute) fails too.
func NewLocal(n int, timeout time.Duration) []Comm {
	if timeout <= 0 {
		timeout = time.Minute
	}
	job := func() *localJob {
		j := &localJob{n: n, in: make([]any, n), timeout: timeout}
		j.cond = sync.NewCond(&j.mu)
		return j
	}
	j, async := job(), job()
	ranks := make([]Comm, n)
	for r := range ranks {
		ranks[r] = &localRank{job: j, async: async, rank: r}
	}
	return ranks
}

type localJob struct {
	mu      sync.Mutex
	cond    *sync.Cond
	n       int
	timeout time.Duration
	in      []any // this round's contributions, by rank
	count   int   // contributions so far
	gen     int   // rounds completed
	out     []any // the last completed round's contributions
	left    int   // ranks yet to read out
	failed  error // set once: a rank aborted or ended
}

type localRank struct {
	job   *localJob
	async *localJob // the asynchronous sums' rounds, apart from the other collectives'
	sums  asyncSums
	rank  int
}

// exchange deposits v and returns every rank's contribution to this round.
func (j *localJob) exchange(rank int, v any) ([]any, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	deadline := time.Now().Add(j.timeout)
	wake := time.AfterFunc(j.timeout, func() { j.mu.Lock(); j.cond.Broadcast(); j.mu.Unlock() })
	defer wake.Stop()
	timedOut := func() error {
		if time.Now().After(deadline) {
			return fmt.Errorf("rank %d/%d waited %v in a collective for the other ranks", rank, j.n, j.timeout)
		}
		return nil
	}
	for j.left > 0 && j.failed == nil { // the previous round is still being read
		if err := timedOut(); err != nil {
			return nil, err
		}
		j.cond.Wait()
	}
	if j.failed != nil {
		return nil, j.failed
	}
	j.in[rank] = v
	j.count++
	mine := j.gen
	if j.count == j.n {
		j.out, j.left, j.count = slices.Clone(j.in), j.n, 0
		clear(j.in)
		j.gen++
		j.cond.Broadcast()
	}
	for j.gen == mine && j.failed == nil {
		if err := timedOut(); err != nil {
			return nil, err
		}
		j.cond.Wait()
	}
	if j.gen == mine {
		return nil, j.failed
	}
	out := j.out
	if j.left--; j.left == 0 {
		j.cond.Broadcast()
	}
	return out, nil
}

func (r *localRank) Rank() int { return r.rank }
func (r *localRank) Size() int { return r.job.n }

func localSum[T float32 | float64](r *localRank, j *localJob, x []T) error {
	all, err := j.exchange(r.rank, slices.Clone(x))
	if err != nil {
		return err
	}
	parts := make([][]T, len(all))
	for i, a := range all {
		if parts[i] = a.([]T); len(parts[i]) != len(x) {
			return fmt.Errorf("sum of %d values: rank %d gave %d", len(x), i, len(parts[i]))
		}
	}
	sumRanks(x, parts)
	return nil
}

func (r *localRank) SumFloat64(x []float64) error { return localSum(r, r.job, x) }
func (r *localRank) SumFloat32(x []float32) error { return localSum(r, r.job, x) }

func (r *localRank) SumFloat32Async(x []float32) func() error {
	return r.sums.start(func() error { return localSum(r, r.async, x) })
}

func (r *localRank) SumInt64(x []int64) error {
	all, err := r.job.exchange(r.rank, slices.Clone(x))
	if err != nil {
		return err
	}
	parts := make([][]int64, len(all))
	for i, a := range all {
		if parts[i] = a.([]int64); len(parts[i]) != len(x) {
			return fmt.Errorf("sum of %d values: rank %d gave %d", len(x), i, len(parts[i]))
		}
	}
	sumRanksInt(x, parts)
	return nil
}

func (r *localRank) Broadcast(b []byte, root int) ([]byte, error) {
	all, err := r.job.exchange(r.rank, slices.Clone(b))
	if err != nil {
		return nil, err
	}
	return all[root].([]byte), nil
}

func (r *localRank) BroadcastFloat32(x []float32, root int) error {
	all, err := r.job.exchange(r.rank, slices.Clone(x))
	if err != nil {
		return err
	}
	src := all[root].([]float32)
	if len(src) != len(x) {
		return fmt.Errorf("broadcast of %d values into %d", len(src), len(x))
	}
	copy(x, src)
	return nil
}

func (r *localRank) fail(err error) {
	for _, j := range []*localJob{r.job, r.async} {
		j.mu.Lock()
		if j.failed == nil {
			j.failed = err
		}
		j.cond.Broadcast()
		j.mu.Unlock()
	}
}

func (r *localRank) Abort(err error) {
	r.fail(fmt.Errorf("rank %d/%d failed: %w", r.rank, r.job.n, err))
}

func (r *localRank) Close() error {
	r.fail(fmt.Errorf("rank %d/%d has ended", r.rank, r.job.n))
	return nil
}
