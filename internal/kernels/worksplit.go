package kernels

/*
#include <time.h>

// The CPU time of the calling thread: what it ran, not the time other processes took the core.
static long long segkit_thread_ns(void) {
	struct timespec t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}
*/
import "C"

import (
	"fmt"
	"runtime"
	"sync"
	"time"
)

// The work-split model: how evenly the kernels' parallel calls would keep W cores busy, measured
// on a machine with fewer. With Workers set to W, the code splits its work exactly as it would on
// W cores (block sizes, chunk counts and the goroutine each item runs on all follow Workers);
// RecordSplit then runs each call's items one after another on the calling goroutine and times
// them, so an item's time is its own even where the machine has fewer cores than goroutines.
// Times are the thread's CPU time: on a loaded machine, the time slices other processes take
// would otherwise land on random items and make the busiest goroutine look busier.

// SplitCall is one parallel kernel call as the code split it.
type SplitCall struct {
	Op         string          // what called the kernel (RecordSplit's label)
	Goroutines int             // item i runs on goroutine i % Goroutines
	Items      []time.Duration // the CPU time of each work item (block or chunk), run alone
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
	Step    time.Duration // CPU time of the whole step, its items run one by one
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

// RecordSplit runs step repeats times with Workers = workers and every parallel call's items
// run one by one and timed, and keeps each item's least time over the repeats (what remains of
// an item that an interrupt or a cold cache once slowed); label names the caller of each call
// (it runs inside the kernel, so it can read the stack). Every repeat must make the same calls.
// Kernels must not run concurrently elsewhere meanwhile. Workers is restored after.
func RecordSplit(workers, repeats int, label func() string, step func() error) (SplitRecord, error) {
	var best SplitRecord
	for r := 0; r < max(repeats, 1); r++ {
		rec, err := recordOnce(workers, label, step)
		if err != nil {
			return rec, err
		}
		if r == 0 {
			best = rec
			continue
		}
		if len(rec.Calls) != len(best.Calls) {
			return rec, fmt.Errorf("work split: a step made %d parallel calls, the one before %d", len(rec.Calls), len(best.Calls))
		}
		for i, c := range rec.Calls {
			b := best.Calls[i]
			if c.Op != b.Op || c.Goroutines != b.Goroutines || len(c.Items) != len(b.Items) {
				return rec, fmt.Errorf("work split: call %d is %s on %d goroutines, %d items; before it was %s on %d, %d",
					i, c.Op, c.Goroutines, len(c.Items), b.Op, b.Goroutines, len(b.Items))
			}
			for k, d := range c.Items {
				b.Items[k] = min(b.Items[k], d)
			}
		}
		if rec.Step < best.Step {
			best.Step, best.InCalls = rec.Step, rec.InCalls
		}
	}
	return best, nil
}

// recordOnce is one recorded run of step.
func recordOnce(workers int, label func() string, step func() error) (SplitRecord, error) {
	splitMu.Lock()
	defer splitMu.Unlock()
	defer func(w int) { Workers, recordSplit = w, nil }(Workers)
	Workers = workers
	runtime.LockOSThread() // one thread, whose CPU clock times everything
	defer runtime.UnlockOSThread()
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
		enter := threadTime()
		call := SplitCall{Op: label(), Goroutines: goroutines, Items: make([]time.Duration, items)}
		for i := range call.Items {
			start := threadTime()
			run(i%goroutines, i)
			call.Items[i] = threadTime() - start
		}
		rec.Calls = append(rec.Calls, call)
		rec.InCalls += threadTime() - enter
	}
	start := threadTime()
	err := step()
	rec.Step = threadTime() - start
	return rec, err
}

func threadTime() time.Duration { return time.Duration(C.segkit_thread_ns()) }
