package parallel

import "sync"

// asyncSums runs a rank's asynchronous sums one after another, each on a goroutine of its own,
// in the order they were started: every rank starts them in the same order, and that order is
// what pairs one rank's sum with the others'. They are ordered apart from the other
// collectives (a communicator of their own), which may run while a sum is in flight.
type asyncSums struct {
	mu   sync.Mutex
	last *asyncSum // the latest started (nil: none yet)
}

type asyncSum struct {
	done chan struct{} // closed when the sum has finished
	err  error
}

// start runs sum after the sums started before it and returns the wait for its result. After
// a failed sum every later one fails with its error without running: the ranks no longer agree
// on which sum is which.
func (q *asyncSums) start(sum func() error) (wait func() error) {
	s := &asyncSum{done: make(chan struct{})}
	q.mu.Lock()
	prev := q.last
	q.last = s
	q.mu.Unlock()
	go func() {
		defer close(s.done)
		if prev != nil {
			if <-prev.done; prev.err != nil {
				s.err = prev.err
				return
			}
		}
		s.err = sum()
	}()
	return func() error {
		<-s.done
		return s.err
	}
}
