package memcheck

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// selfPeak is this process's peak resident memory, VmHWM. (Not the child's ru_maxrss, seen
// from the parent: Linux carries the parent's peak at the fork over into it.)
func selfPeak() int64 { return statusKB(os.Getpid(), "VmHWM:") }

// watch polls the child's resident memory and kills it past stop bytes or after limit; the
// function it returns (called after the child has exited) says why it was killed.
func watch(pid int, stop int64, limit time.Duration, kill func()) func() string {
	done := make(chan struct{})
	var why string
	var mu sync.Mutex
	go func() {
		start := time.Now()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			rss := rssOf(pid)
			mu.Lock()
			switch {
			case rss > stop:
				why = fmt.Sprintf("stopped at %d MB resident after %v", rss>>20, time.Since(start).Round(time.Millisecond))
			case time.Since(start) > limit:
				why = fmt.Sprintf("stopped after %v (%d MB resident)", limit, rss>>20)
			}
			stopNow := why != ""
			mu.Unlock()
			if stopNow {
				kill()
				return
			}
		}
	}()
	return func() string {
		close(done)
		mu.Lock()
		defer mu.Unlock()
		return why
	}
}

// rssOf reads a process's resident memory from /proc (0 once it is gone).
func rssOf(pid int) int64 { return max(statusKB(pid, "VmRSS:"), 0) }

// statusKB reads a size field of /proc/<pid>/status, in bytes (-1 when it is not there).
func statusKB(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return -1
}
