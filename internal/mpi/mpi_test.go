//go:build mpi

package mpi

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segkit/segkit/internal/mpi/mpirun"
)

// The tests start this test binary under mpirun; SEGKIT_MPI_SCENARIO makes it a rank.
func TestMain(m *testing.M) {
	if s := os.Getenv("SEGKIT_MPI_SCENARIO"); s != "" {
		if err := rank(s); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// rank runs one scenario as a rank, printing "rank R: ..." lines for the test to check.
func rank(scenario string) error {
	w, err := Init()
	if err != nil {
		return err
	}
	r := w.Rank()
	say := func(format string, a ...any) { fmt.Printf("rank %d: %s\n", r, fmt.Sprintf(format, a...)) }
	switch scenario {
	case "collectives":
		recv := make([]float64, 2*w.Size())
		if err := Allgather(w, []float64{float64(r), 10 + float64(r)}, recv); err != nil {
			return err
		}
		say("allgather %v", recv)
		send := []int64{int64(10*r + 0), int64(10*r + 1)}
		got := make([]int64, 2)
		if err := Alltoall(w, send, got); err != nil {
			return err
		}
		say("alltoall %v", got)
		b := []byte("......")
		if r == 1 {
			copy(b, "hello!")
		}
		if err := Bcast(w, b, 1); err != nil {
			return err
		}
		say("bcast %s", b)
	case "dup":
		// Rank 0 starts an allgather on a duplicate and, while it is in flight, one on the
		// world; rank 1 joins the world's first. Queued behind the first, the second would never
		// start: both ranks would wait for each other.
		d, err := w.Dup()
		if err != nil {
			return err
		}
		w.Timeout, d.Timeout = 10*time.Second, 10*time.Second
		inDup := make([]float64, w.Size())
		dup := make(chan error, 1)
		startDup := func() { go func() { dup <- Allgather(d, []float64{100 + float64(r)}, inDup) }() }
		if r == 0 {
			startDup()
			time.Sleep(100 * time.Millisecond) // in flight
		}
		inWorld := make([]float64, w.Size())
		if err := Allgather(w, []float64{float64(r)}, inWorld); err != nil {
			return err
		}
		say("world %v", inWorld)
		if r == 1 {
			startDup()
		}
		if err := <-dup; err != nil {
			return err
		}
		say("dup %v", inDup)
	case "idle":
		// Rank 0 waits a second for rank 1 in an allgather: its CPU time shows whether it spins.
		if r == 1 {
			time.Sleep(time.Second)
		}
		var before, after syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &before)
		start := time.Now()
		if err := Allgather(w, []byte{1}, make([]byte, w.Size())); err != nil {
			return err
		}
		syscall.Getrusage(syscall.RUSAGE_SELF, &after)
		cpu := time.Duration(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) * time.Nanosecond
		say("waited %v cpu %v", time.Since(start).Round(time.Millisecond), cpu.Round(time.Millisecond))
	case "timeout":
		// Rank 1 never joins; rank 0 gives up after its timeout and ends the job.
		if r == 1 {
			time.Sleep(time.Minute)
		}
		w.Timeout = 300 * time.Millisecond
		err := Allgather(w, []byte{1}, make([]byte, w.Size())) // a broadcast's root would not wait
		say("error: %v", err)
		w.Abort(3)
	}
	return w.Finalize()
}

func run(t *testing.T, scenario string) (string, error) {
	t.Helper()
	prog, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := mpirun.Command(context.Background(), mpirun.Find(t), 2, time.Minute, []string{"SEGKIT_MPI_SCENARIO=" + scenario}, prog)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestCollectives(t *testing.T) {
	out, err := run(t, "collectives")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		"rank 0: allgather [0 10 1 11]", "rank 1: allgather [0 10 1 11]",
		"rank 0: alltoall [0 10]", "rank 1: alltoall [1 11]",
		"rank 0: bcast hello!", "rank 1: bcast hello!",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
}

// A collective on the world runs while one on a duplicate is in flight: the MPI thread's wait
// serves it.
func TestDup(t *testing.T) {
	out, err := run(t, "dup")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"rank 0: world [0 1]", "rank 1: world [0 1]", "rank 0: dup [100 101]", "rank 1: dup [100 101]"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
}

// A rank waiting for another sleeps: Open MPI's blocking calls would spin a core for the second.
func TestWaitDoesNotSpin(t *testing.T) {
	out, err := run(t, "idle")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var waited, cpu time.Duration
	for _, line := range strings.Split(out, "\n") {
		var w, c string
		if _, err := fmt.Sscanf(line, "rank 0: waited %s cpu %s", &w, &c); err == nil {
			waited, _ = time.ParseDuration(w)
			cpu, _ = time.ParseDuration(c)
		}
	}
	if waited < 800*time.Millisecond || cpu > waited/5 {
		t.Errorf("rank 0 waited %v using %v of CPU (want under a fifth)\n%s", waited, cpu, out)
	}
	t.Logf("waited %v, CPU %v", waited, cpu)
}

// A rank that does not come ends the job after the timeout, not never: the waiting rank's error
// names it and the collective, and its abort code is mpirun's exit status.
func TestTimeout(t *testing.T) {
	start := time.Now()
	out, err := run(t, "timeout")
	var exit *exec.ExitError
	if !errorsAs(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("exit %v, want status 3\n%s", err, out)
	}
	if !strings.Contains(out, "rank 0: error: rank 0/2 waited 300ms in an allgather for the other ranks") {
		t.Errorf("output:\n%s", out)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("the job took %v to end", took)
	}
}

func errorsAs(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*target = e
	}
	return ok
}
