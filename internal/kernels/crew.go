package kernels

import (
	"context"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"
)

// crew keeps the goroutines of the parallel calls between calls. A network's ops run back to
// back, a few microseconds apart, and many take well under a millisecond at small crops; with
// goroutines started per call the other cores were asleep when a call began, and waking them
// cost as much as the call: on a 2-core VM two workers were slower than one on half of the
// convolutions of w18_small_v1 at 176² (inference 1.13× faster than one worker in all).
// The crew's members spin for spinFor after each job, so the next
// call starts on every core at once, then sleep until woken.
var crew team

// spinFor is how long an idle member, or a caller waiting for its members, spins before it
// sleeps: longer than the gaps between the ops of a forward or backward pass, short next to the
// gaps between training steps.
const spinFor = 200 * time.Microsecond

type team struct {
	mu      sync.Mutex // held by the call using the crew; a concurrent or nested call finds it busy
	members []*member  // member i runs goroutine i+1 of a job; the caller runs goroutine 0
}

type member struct {
	posted, done atomic.Uint64 // jobs posted to this member, jobs it finished
	job          func(goroutine int)
	// A member that spun out sleeps on wake; posts are made holding mu, so that none falls
	// between its last look and its sleep. (A flag and a wake-up channel, each side checking the
	// other's atomic in turn, lost a wake-up under qemu's arm64 emulation; the lock does not
	// depend on how the atomics are ordered.)
	mu   sync.Mutex
	wake *sync.Cond
}

// run runs share(g) for g in [0, goroutines), the caller taking g = 0, and reports false without
// running anything when the crew is busy.
func (t *team) run(goroutines int, share func(goroutine int)) bool {
	if !t.mu.TryLock() {
		return false
	}
	defer t.mu.Unlock()
	for len(t.members) < goroutines-1 {
		m := &member{}
		m.wake = sync.NewCond(&m.mu)
		t.members = append(t.members, m)
		go m.serve(len(t.members))
	}
	helpers := t.members[:goroutines-1]
	for _, m := range helpers {
		m.job = share
		m.mu.Lock()
		m.posted.Add(1) // publishes job
		m.mu.Unlock()
		m.wake.Signal()
	}
	share(0)
	for _, m := range helpers {
		want := m.posted.Load()
		for !waitUntil(func() bool { return m.done.Load() == want }) {
			time.Sleep(20 * time.Microsecond) // a long share (or an oversubscribed machine): poll
		}
	}
	return true
}

// LabelCrew gives the crew's goroutines the profiler labels of ctx (from pprof.Do), as goroutines
// started inside it would get: the crew outlives the calls that label their work.
func LabelCrew(ctx context.Context) {
	crew.mu.Lock()
	n := len(crew.members) + 1
	crew.mu.Unlock()
	spread(n, n, func(int, int) { pprof.SetGoroutineLabels(ctx) })
}

// serve runs the jobs posted to m as goroutine g.
func (m *member) serve(g int) {
	var seen uint64
	for {
		if !waitUntil(func() bool { return m.posted.Load() > seen }) { // spun out: sleep until a post
			m.mu.Lock()
			for m.posted.Load() == seen {
				m.wake.Wait()
			}
			m.mu.Unlock()
		}
		seen++
		m.job(g)
		m.done.Store(seen)
	}
}

// waitUntil spins on cond for up to spinFor and reports whether cond became true; callers that
// must not give up then sleep or poll. It does not yield on every turn: runtime.Gosched takes the
// scheduler's lock, and two spinning goroutines then spent their time contending for it.
func waitUntil(cond func() bool) bool {
	start := time.Now()
	for i := 1; !cond(); i++ {
		if i%64 == 0 {
			if time.Since(start) > spinFor {
				return cond()
			}
			if i%1024 == 0 {
				runtime.Gosched() // now and then, for goroutines waiting for this processor
			}
		}
	}
	return true
}
