package kernels

import (
	"sync"
	"time"
)

// The work-split model: how evenly the kernels' parallel calls would keep W cores busy, measured
// on a machine with fewer. With Workers set to W, the code splits its work exactly as it would on
// W cores (block sizes, chunk counts and the goroutine each item runs on all follow Workers);
// RecordSplit then runs each call's items one after another on the calling goroutine and times
// them, so an item's time is its own even where the machine has fewer cores than goroutines.

// SplitCall is one parallel kernel call as the code split it.
type SplitCall struct {
	Op         string          // what called the kernel (RecordSplit's label)
	Goroutines int             // item i runs on goroutine i % Goroutines
	Items      []time.Duration // the time of each work item (block or chunk), run alone
}

// Work is the time of the call on one core: the sum of its items.
func (c SplitCall) Work() time.Duration {
	var sum time.Duration
	for _, d := range c.Items {
		sum += d
	}
	return sum
}

// Makespan is the time of the call when each goroutine has a core of its own: the share of the
// busiest goroutine, as the code assigns items (statically, item i to goroutine i % Goroutines).
func (c SplitCall) Makespan() time.Duration {
	loads := make([]time.Duration, c.Goroutines)
	for i, d := range c.Items {
		loads[i%c.Goroutines] += d
	}
	var most time.Duration
	for _, l := range loads {
		most = max(most, l)
	}
	return most
}

// SplitRecord is what RecordSplit measured of one run of a step.
type SplitRecord struct {
	Workers int
	Calls   []SplitCall
	Step    time.Duration // the whole step, its items run one by one
	InCalls time.Duration // of which inside the parallel calls (items and the recording's own cost)
}

// Serial is the step's time outside the parallel calls (small kernels that run on the calling
// goroutine, the Go code between kernels): on W cores it still takes this long.
func (r SplitRecord) Serial() time.Duration { return r.Step - r.InCalls }

// Balance sums calls: Work / (Workers × Makespan) is their load balance on Workers cores.
type Balance struct {
	Calls, Items   int
	Work, Makespan time.Duration
}

// Add counts c in b.
func (b *Balance) Add(c SplitCall) {
	b.Calls++
	b.Items += len(c.Items)
	b.Work += c.Work()
	b.Makespan += c.Makespan()
}

// Efficiency is the expected parallel efficiency of b's calls on workers cores: their time on
// one core over workers × their time on workers cores (1: a perfect split).
func (b Balance) Efficiency(workers int) float64 {
	if b.Makespan == 0 {
		return 1
	}
	return float64(b.Work) / (float64(workers) * float64(b.Makespan))
}

// ByOp sums the calls of each op, and all of them.
func (r SplitRecord) ByOp() (byOp map[string]*Balance, all Balance) {
	byOp = map[string]*Balance{}
	for _, c := range r.Calls {
		b := byOp[c.Op]
		if b == nil {
			b = &Balance{}
			byOp[c.Op] = b
		}
		b.Add(c)
		all.Add(c)
	}
	return byOp, all
}

// Overall is the expected parallel efficiency of the whole step on Workers cores, the serial
// part included: its time on one core over Workers × (serial part + the calls' makespans).
func (r SplitRecord) Overall() float64 {
	_, all := r.ByOp()
	serial := max(r.Serial(), 0)
	one := float64(all.Work + serial)
	if one == 0 {
		return 1
	}
	return one / (float64(r.Workers) * float64(all.Makespan+serial))
}

// splitMu serialises RecordSplit: the hook and Workers are process-wide.
var splitMu sync.Mutex

// RecordSplit runs step with Workers = workers and every parallel call's items run one by one
// and timed; label names the caller of each call (it runs inside the kernel, so it can read the
// stack). Kernels must not run concurrently elsewhere meanwhile. Workers is restored after.
func RecordSplit(workers int, label func() string, step func() error) (SplitRecord, error) {
	splitMu.Lock()
	defer splitMu.Unlock()
	defer func(w int) { Workers, recordSplit = w, nil }(Workers)
	Workers = workers
	rec := SplitRecord{Workers: workers}
	inside := false
	recordSplit = func(goroutines, items int, run func(goroutine, item int)) {
		if inside { // a call within an item: its work is the item's
			for i := 0; i < items; i++ {
				run(i%goroutines, i)
			}
			return
		}
		inside = true
		defer func() { inside = false }()
		enter := time.Now()
		call := SplitCall{Op: label(), Goroutines: goroutines, Items: make([]time.Duration, items)}
		for i := range call.Items {
			start := time.Now()
			run(i%goroutines, i)
			call.Items[i] = time.Since(start)
		}
		rec.Calls = append(rec.Calls, call)
		rec.InCalls += time.Since(enter)
	}
	start := time.Now()
	err := step()
	rec.Step = time.Since(start)
	return rec, err
}
