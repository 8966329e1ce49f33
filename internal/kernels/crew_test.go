package kernels

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSpreadRunsEveryItemOnce runs parallel calls back to back (the crew spinning), after a
// pause (its members asleep), nested, and from several goroutines at once (the crew busy): every
// item runs exactly once, on goroutine item % goroutines.
func TestSpreadRunsEveryItemOnce(t *testing.T) {
	check := func(goroutines, items int) {
		counts := make([]atomic.Int32, items)
		spread(goroutines, items, func(g, i int) {
			if g != i%goroutines {
				t.Errorf("item %d ran on goroutine %d of %d", i, g, goroutines)
			}
			counts[i].Add(1)
		})
		for i := range counts {
			if n := counts[i].Load(); n != 1 {
				t.Fatalf("%d goroutines: item %d ran %d times", goroutines, i, n)
			}
		}
	}
	for round := 0; round < 50; round++ {
		check(1+round%5, round*3)
	}
	time.Sleep(3 * spinFor) // members asleep: the next call must wake them
	check(4, 40)
	spread(3, 6, func(_, _ int) { check(2, 10) }) // nested: the inner calls find the crew busy
	var wg sync.WaitGroup
	for c := 0; c < 4; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; round < 20; round++ {
				check(3, 17)
			}
		}()
	}
	wg.Wait()
}
