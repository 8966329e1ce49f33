//go:build mpi

package mpi

/*
#cgo pkg-config: ompi
#include <stdlib.h>
#include <mpi.h>

// Open MPI's handles are macros taking addresses of its globals: functions make them usable from Go.
static MPI_Comm world(void) { return MPI_COMM_WORLD; }
static MPI_Datatype dt_byte(void) { return MPI_BYTE; }
static MPI_Datatype dt_float(void) { return MPI_FLOAT; }
static MPI_Datatype dt_double(void) { return MPI_DOUBLE; }
static MPI_Datatype dt_int64(void) { return MPI_INT64_T; }
static MPI_Request req_null(void) { return MPI_REQUEST_NULL; }

static int init_funneled(int *provided) {
	int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, provided);
	if (rc != MPI_SUCCESS) return rc;
	return MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}
static int dup(MPI_Comm c, MPI_Comm *out) {
	int rc = MPI_Comm_dup(c, out);
	if (rc != MPI_SUCCESS) return rc;
	return MPI_Comm_set_errhandler(*out, MPI_ERRORS_RETURN);
}
static int test(MPI_Request *r, int *done) { return MPI_Test(r, done, MPI_STATUS_IGNORE); }
static int error_string(int code, char *buf) {
	int n = 0;
	MPI_Error_string(code, buf, &n);
	return n;
}
static int max_error_string(void) { return MPI_MAX_ERROR_STRING; }
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"time"
	"unsafe"
)

// World is a communicator of this process (MPI_COMM_WORLD, or a duplicate of it), served by
// its MPI goroutine.
type World struct {
	rank, size int
	// Timeout bounds every wait for the other ranks (0: no bound).
	Timeout time.Duration
	comm    C.MPI_Comm
	*thread
}

// thread is the MPI goroutine: every MPI call of the process runs on it.
type thread struct {
	calls  chan func()
	closed bool
}

// Init initialises MPI on a new goroutine locked to its OS thread; every later call of the
// World runs there.
func Init() (*World, error) {
	w := &World{thread: &thread{calls: make(chan func())}}
	ready := make(chan error)
	go w.serve(ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	return w, nil
}

// Dup returns a communicator of the same ranks whose collectives are ordered apart from w's:
// one in flight on either does not hold up the other's (every rank calls Dup at the same point).
func (w *World) Dup() (*World, error) {
	d := &World{rank: w.rank, size: w.size, Timeout: w.Timeout, thread: w.thread}
	err := w.do(func() error {
		if rc := C.dup(w.comm, &d.comm); rc != 0 {
			return fmt.Errorf("MPI_Comm_dup: %s", errorString(rc))
		}
		return nil
	})
	return d, err
}

// serve initialises MPI and runs calls until Finalize. The thread stays locked for the life of
// MPI: FUNNELED allows MPI calls only from the thread that initialised it.
func (w *World) serve(ready chan<- error) {
	runtime.LockOSThread()
	var provided C.int
	if rc := C.init_funneled(&provided); rc != 0 {
		ready <- fmt.Errorf("MPI_Init_thread: %s", errorString(rc))
		return
	}
	if provided < C.MPI_THREAD_FUNNELED {
		ready <- fmt.Errorf("MPI_Init_thread: the library gives thread level %d, segkit needs FUNNELED", int(provided))
		return
	}
	w.comm = C.world()
	var r, s C.int
	C.MPI_Comm_rank(w.comm, &r)
	C.MPI_Comm_size(w.comm, &s)
	w.rank, w.size = int(r), int(s)
	ready <- nil
	for f := range w.calls {
		f()
	}
}

// do runs f on the MPI thread and returns its error.
func (w *World) do(f func() error) error {
	if w.closed {
		return errors.New("MPI is finalized")
	}
	done := make(chan error, 1)
	w.calls <- func() { done <- f() }
	return <-done
}

// Rank is this process's rank in the world.
func (w *World) Rank() int { return w.rank }

// Size is the number of ranks.
func (w *World) Size() int { return w.size }

func errorString(rc C.int) string {
	buf := (*C.char)(C.malloc(C.size_t(C.max_error_string())))
	defer C.free(unsafe.Pointer(buf))
	n := C.error_string(rc, buf)
	return fmt.Sprintf("%s (MPI error %d)", C.GoStringN(buf, n), int(rc))
}

// wait completes a non-blocking collective: MPI_Test, first at once, then with sleeps growing
// from 20 µs to 1 ms, so that a short wait costs little latency and a long one almost no CPU.
// A call another goroutine makes meanwhile runs at once, inside the wait: a collective of
// another communicator must not queue behind this one (a gradient sum in flight while the
// backward pass needs a SyncBN sum), and its own MPI_Test calls progress this request too.
// It runs on the MPI thread; what names the collective in a timeout error.
func (w *World) wait(req *C.MPI_Request, what string) error {
	start := time.Now()
	nap := 20 * time.Microsecond
	var timer *time.Timer
	calls := w.calls
	for spins := 0; ; spins++ {
		var done C.int
		if rc := C.test(req, &done); rc != 0 {
			return fmt.Errorf("%s: %s", what, errorString(rc))
		}
		if done != 0 {
			return nil
		}
		if w.Timeout > 0 && time.Since(start) > w.Timeout {
			// The request stays pending: the caller ends the job (Abort), which frees it.
			return &TimeoutError{Rank: w.rank, Size: w.size, What: what, After: w.Timeout}
		}
		if spins < 50 { // a peer a few microseconds behind: stay on the core
			continue
		}
		if timer == nil {
			timer = time.NewTimer(nap)
			defer timer.Stop()
		} else {
			timer.Reset(nap)
		}
		select {
		case f, ok := <-calls:
			if !ok {
				calls = nil // finalized: nothing more comes
				continue
			}
			f()
		case <-timer.C:
		}
		nap = min(2*nap, time.Millisecond)
	}
}

// TimeoutError says that a rank waited longer than the World's timeout for the others.
type TimeoutError struct {
	Rank, Size int
	What       string
	After      time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("rank %d/%d waited %v in %s for the other ranks: one of them is stuck, gone or far behind", e.Rank, e.Size, e.After, e.What)
}

// count checks that n elements fit MPI's int counts.
func count(n int, what string) (C.int, error) {
	if n > math.MaxInt32 {
		return 0, fmt.Errorf("%s of %d elements: more than MPI's int count allows", what, n)
	}
	return C.int(n), nil
}

// pinned runs f with the slice's memory pinned: non-blocking MPI calls keep the pointer after
// they return, which cgo allows only for pinned memory.
func pinned[T any](bufs [][]T, f func() error) error {
	var p runtime.Pinner
	defer p.Unpin()
	for _, b := range bufs {
		if len(b) > 0 {
			p.Pin(&b[0])
		}
	}
	return f()
}

func ptr[T any](b []T) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

// Allgather gathers n = len(send) values from every rank into recv (Size·n values, rank r's at
// r·n), on every rank.
func Allgather[T float32 | float64 | int64 | byte](w *World, send, recv []T) error {
	if len(recv) != len(send)*w.size {
		return fmt.Errorf("allgather: %d values to receive for %d from each of %d ranks", len(recv), len(send), w.size)
	}
	n, err := count(len(send), "allgather")
	if err != nil {
		return err
	}
	return w.do(func() error {
		return pinned([][]T{send, recv}, func() error {
			req := C.req_null()
			dt := datatype[T]()
			if rc := C.MPI_Iallgather(ptr(send), n, dt, ptr(recv), n, dt, w.comm, &req); rc != 0 {
				return fmt.Errorf("allgather: %s", errorString(rc))
			}
			return w.wait(&req, "an allgather")
		})
	})
}

// Alltoall sends chunk r of send (len(send)/Size values each) to rank r and receives into
// chunk r of recv what rank r sent this one.
func Alltoall[T float32 | float64 | int64 | byte](w *World, send, recv []T) error {
	if len(send) != len(recv) || len(send)%w.size != 0 {
		return fmt.Errorf("alltoall: %d values to send and %d to receive over %d ranks", len(send), len(recv), w.size)
	}
	n, err := count(len(send)/w.size, "alltoall")
	if err != nil {
		return err
	}
	return w.do(func() error {
		return pinned([][]T{send, recv}, func() error {
			req := C.req_null()
			dt := datatype[T]()
			if rc := C.MPI_Ialltoall(ptr(send), n, dt, ptr(recv), n, dt, w.comm, &req); rc != 0 {
				return fmt.Errorf("alltoall: %s", errorString(rc))
			}
			return w.wait(&req, "an alltoall")
		})
	})
}

// Bcast copies root's buf into every rank's buf (all of the same length).
func Bcast[T float32 | float64 | int64 | byte](w *World, buf []T, root int) error {
	n, err := count(len(buf), "broadcast")
	if err != nil {
		return err
	}
	return w.do(func() error {
		return pinned([][]T{buf}, func() error {
			req := C.req_null()
			if rc := C.MPI_Ibcast(ptr(buf), n, datatype[T](), C.int(root), w.comm, &req); rc != 0 {
				return fmt.Errorf("broadcast: %s", errorString(rc))
			}
			return w.wait(&req, "a broadcast")
		})
	})
}

func datatype[T float32 | float64 | int64 | byte]() C.MPI_Datatype {
	var z T
	switch any(z).(type) {
	case float32:
		return C.dt_float()
	case float64:
		return C.dt_double()
	case int64:
		return C.dt_int64()
	default:
		return C.dt_byte()
	}
}

// Abort ends every rank of the job with code (mpirun reports this rank as the one that
// aborted). It does not return. It runs on the MPI thread when that is free within a second,
// else on the calling one: MPI_Abort is the call that must get through.
func (w *World) Abort(code int) {
	abort := func() { C.MPI_Abort(C.world(), C.int(code)) }
	if !w.closed {
		select {
		case w.calls <- abort:
			select {} // MPI_Abort does not return
		case <-time.After(time.Second):
		}
	}
	abort()
	select {}
}

// Finalize ends MPI on this rank (after every rank's last collective).
func (w *World) Finalize() error {
	err := w.do(func() error {
		if rc := C.MPI_Finalize(); rc != 0 {
			return fmt.Errorf("MPI_Finalize: %s", errorString(rc))
		}
		return nil
	})
	w.closed = true
	close(w.calls)
	return err
}
