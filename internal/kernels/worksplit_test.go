package kernels

import (
	"math"
	"testing"
	"time"
)

// The load balance of hand-made calls, computed by hand.
func TestSplitBalance(t *testing.T) {
	ms := time.Millisecond
	// Goroutine 0 runs items 0 and 3 (6 ms), 1 runs items 1 and 4 (3 ms), 2 runs item 2 (1 ms).
	blocks := SplitCall{Op: "conv", Goroutines: 3, Items: []time.Duration{4 * ms, 1 * ms, 1 * ms, 2 * ms, 2 * ms}}
	if w, m := blocks.Work(), blocks.Makespan(); w != 10*ms || m != 6*ms {
		t.Errorf("work %v, makespan %v; want 10ms, 6ms", w, m)
	}
	// Two chunks of 3 and 1 ms, one per goroutine.
	chunks := SplitCall{Op: "bn", Goroutines: 2, Items: []time.Duration{3 * ms, 1 * ms}}
	r := SplitRecord{Workers: 4, Calls: []SplitCall{blocks, chunks, blocks}, Step: 40 * ms, InCalls: 25 * ms}
	byOp, all := r.ByOp()
	if c := byOp["conv"]; c.Calls != 2 || c.Items != 10 || c.Work != 20*ms || c.Makespan != 12*ms {
		t.Errorf("conv: %+v", *c)
	}
	near := func(what string, got, want float64) {
		if math.Abs(got-want) > 1e-12 {
			t.Errorf("%s: %.6f, want %.6f", what, got, want)
		}
	}
	near("conv on 4 cores", byOp["conv"].Efficiency(4), 20.0/(4*12))
	near("bn on 4 cores", byOp["bn"].Efficiency(4), 4.0/(4*3))
	near("all calls on 4 cores", all.Efficiency(4), 24.0/(4*15))
	// 15 ms outside the calls run serially: (24 + 15) / (4 × (15 + 15)).
	near("the step on 4 cores", r.Overall(), 39.0/(4*30))
}

// With Workers set to 16 on any machine, the calls split as the code does on 16 cores, every
// item runs once per repeat, and Workers comes back.
func TestRecordSplit(t *testing.T) {
	was := Workers
	covered := make([]int, 100)
	blocks := 0
	rec, err := RecordSplit(16, 2, func() string { return "test" }, func() error {
		// 100 items: chunks of ceil(100/16) = 7, so 15 goroutines, the last with 2 items.
		parallelFor(100, 1<<10, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				covered[i]++
			}
		})
		parallelBlocks(5, func(w, b int) {
			if w != b%5 {
				t.Errorf("block %d on goroutine %d", b, w)
			}
			blocks++
		})
		parallelFor(10, 1, func(lo, hi int) {}) // small: on the calling goroutine, not a parallel call
		return nil
	})
	if err != nil || Workers != was || recordSplit != nil {
		t.Fatalf("err %v, Workers %d (was %d), hook left set %t", err, Workers, was, recordSplit != nil)
	}
	for i, n := range covered { // once per repeat
		if n != 2 {
			t.Fatalf("item %d ran %d times", i, n)
		}
	}
	if len(rec.Calls) != 2 || blocks != 10 {
		t.Fatalf("%d calls recorded, %d blocks run; want 2, 10", len(rec.Calls), blocks)
	}
	if c := rec.Calls[0]; c.Op != "test" || c.Goroutines != 15 || len(c.Items) != 15 {
		t.Errorf("parallelFor: %d goroutines, %d items; want 15, 15", c.Goroutines, len(c.Items))
	}
	if c := rec.Calls[1]; c.Goroutines != 5 || len(c.Items) != 5 {
		t.Errorf("parallelBlocks: %d goroutines, %d items; want 5, 5", c.Goroutines, len(c.Items))
	}
	if rec.Step < rec.InCalls || rec.Serial() < 0 {
		t.Errorf("step %v, in calls %v", rec.Step, rec.InCalls)
	}
}
