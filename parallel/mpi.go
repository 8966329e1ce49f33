//go:build mpi

package parallel

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/segkit/segkit/internal/mpi"
)

func init() { openMPI = openOpenMPI }

func openOpenMPI(l Launch, o Options) (Comm, error) {
	w, err := mpi.Init()
	if err != nil {
		return nil, fmt.Errorf("started by %s as rank %d: %w", l.By, l.Rank, err)
	}
	w.Timeout = o.Timeout
	if (l.Size > 0 && w.Size() != l.Size) || w.Rank() != l.Rank {
		// e.g. Open MPI 5 under srun without PMIx: each task a world of its own.
		err := fmt.Errorf("%s started rank %d of %d, but MPI sees rank %d of %d: the processes are not wired into "+
			"one job (srun needs --mpi=pmix; mpirun and the program must use the same MPI)", l.By, l.Rank, l.Size, w.Rank(), w.Size())
		w.Abort(1)
		return nil, err
	}
	async, err := w.Dup()
	if err != nil {
		w.Abort(1)
		return nil, err
	}
	return &mpiComm{w: w, async: async}, nil
}

type mpiComm struct {
	w  *mpi.World
	mu sync.Mutex // one collective at a time: MPI orders them per communicator
	// scratch, grown as needed
	f32 [3][]float32
	f64 []float64
	i64 []int64

	async      *mpi.World // the asynchronous sums' communicator, one sum at a time (sums)
	sums       asyncSums
	asyncFloat [3][]float32
}

func (c *mpiComm) Rank() int { return c.w.Rank() }
func (c *mpiComm) Size() int { return c.w.Size() }

func grow[T any](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n)
	}
	return b[:n]
}

// gatherSum sums small vectors: every rank gathers all of them and adds them in rank order.
func gatherSum[T float32 | float64](w *mpi.World, x, recv []T) error {
	n := len(x)
	if err := mpi.Allgather(w, x, recv); err != nil {
		return err
	}
	parts := make([][]T, w.Size())
	for r := range parts {
		parts[r] = recv[r*n : (r+1)*n]
	}
	sumRanks(x, parts)
	return nil
}

func (c *mpiComm) SumFloat64(x []float64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.f64 = grow(c.f64, len(x)*c.Size())
	return gatherSum(c.w, x, c.f64)
}

// smallSum is the size (values over all ranks) up to which a sum gathers every vector.
const smallSum = 1 << 18

// SumFloat32 sums large vectors (gradients) in a fixed order at the cost of a ring all-reduce:
// an alltoall gives rank r chunk r of every rank, rank r adds its chunk in rank order, and an
// allgather returns the summed chunks to all.
func (c *mpiComm) SumFloat32(x []float32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return sumFloat32(c.w, x, &c.f32)
}

// SumFloat32Async runs SumFloat32's sum on the communicator of the asynchronous sums, from a
// goroutine of its own: its MPI calls run on the MPI thread, whose wait lets the other
// collectives through meanwhile.
func (c *mpiComm) SumFloat32Async(x []float32) func() error {
	return c.sums.start(func() error { return sumFloat32(c.async, x, &c.asyncFloat) })
}

func sumFloat32(w *mpi.World, x []float32, scratch *[3][]float32) error {
	n, size := len(x), w.Size()
	if n*size <= smallSum {
		scratch[0] = grow(scratch[0], n*size)
		return gatherSum(w, x, scratch[0])
	}
	chunk := (n + size - 1) / size
	send := grow(scratch[0], chunk*size)
	recv := grow(scratch[1], chunk*size)
	full := grow(scratch[2], chunk*size)
	scratch[0], scratch[1], scratch[2] = send, recv, full
	copy(send, x)
	clear(send[n:])
	if err := mpi.Alltoall(w, send, recv); err != nil {
		return err
	}
	parts := make([][]float32, size)
	for r := range parts {
		parts[r] = recv[r*chunk : (r+1)*chunk]
	}
	mine := send[:chunk] // free now
	sumRanks(mine, parts)
	if err := mpi.Allgather(w, mine, full); err != nil {
		return err
	}
	copy(x, full[:n])
	return nil
}

func (c *mpiComm) SumInt64(x []int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(x)
	c.i64 = grow(c.i64, n*c.Size())
	if err := mpi.Allgather(c.w, x, c.i64); err != nil {
		return err
	}
	parts := make([][]int64, c.Size())
	for r := range parts {
		parts[r] = c.i64[r*n : (r+1)*n]
	}
	sumRanksInt(x, parts)
	return nil
}

func (c *mpiComm) Broadcast(b []byte, root int) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := make([]byte, 8)
	binary.LittleEndian.PutUint64(n, uint64(len(b)))
	if err := mpi.Bcast(c.w, n, root); err != nil {
		return nil, err
	}
	out := b
	if c.Rank() != root {
		out = make([]byte, binary.LittleEndian.Uint64(n))
	}
	return out, mpi.Bcast(c.w, out, root)
}

func (c *mpiComm) BroadcastFloat32(x []float32, root int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return mpi.Bcast(c.w, x, root)
}

// Abort ends every rank; mpirun names this one as the rank that aborted.
func (c *mpiComm) Abort(error) { c.w.Abort(1) }

func (c *mpiComm) Close() error { return c.w.Finalize() }
