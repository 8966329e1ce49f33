// Package parallel is how segkit's processes train one model together (data parallel): the Comm
// interface every backend implements, the launcher detection that decides whether a process is
// one of several, and two backends: Local (ranks as goroutines of one process, for tests and
// tools) and, in builds with the mpi tag, Open MPI (internal/mpi) for processes started by
// mpirun or srun. A process that no launcher started is a single rank that never communicates.
package parallel

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

// Comm connects the ranks of one job. Collectives must be called by every rank in the same
// order; each returns an error naming the cause (a rank that failed, a timeout), never hangs
// past the backend's timeout.
type Comm interface {
	Rank() int
	Size() int
	// SumFloat64, SumFloat32 and SumInt64 replace x, on every rank, by the elementwise sum of
	// every rank's x, added in rank order: the same bits on every rank and in every run.
	SumFloat64(x []float64) error
	SumFloat32(x []float32) error
	SumInt64(x []int64) error
	// SumFloat32Async starts SumFloat32(x) and returns at once; wait returns its error once x
	// holds the sum (x must not be touched before). These sums are paired between the ranks by
	// the order they are started in, apart from the other collectives, which may be called
	// while one is in flight: gradient buckets are summed while the backward pass goes on.
	SumFloat32Async(x []float32) (wait func() error)
	// Broadcast returns root's b on every rank (the other ranks' b are ignored, any length).
	Broadcast(b []byte, root int) ([]byte, error)
	// BroadcastFloat32 copies root's x into every rank's x (all of the same length).
	BroadcastFloat32(x []float32, root int) error
	// Abort ends the job because this rank failed with err: MPI ends every process (it does not
	// return); Local makes the other ranks' collectives fail naming this rank.
	Abort(err error)
	// Close ends this rank's part after its last collective.
	Close() error
}

// Launch says how this process was started.
type Launch struct {
	By         string // the launcher, as said in messages ("" when none: a plain process)
	Rank, Size int
}

// Detect reads the launcher's environment: Open MPI's mpirun (OMPI_COMM_WORLD_*), a PMIx
// server (srun --mpi=pmix, prterun: PMIX_RANK) or PMI (PMI_RANK, PMI_SIZE). An srun step of
// several tasks without either is an error: the tasks would train as separate single runs.
func Detect(getenv func(string) string) (Launch, error) {
	num := func(name string) (int, bool, error) {
		v := getenv(name)
		if v == "" {
			return 0, false, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, true, fmt.Errorf("%s=%q is not a rank or size", name, v)
		}
		return n, true, nil
	}
	type source struct{ by, rank, size string }
	for _, s := range []source{
		{"mpirun (Open MPI)", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
		{"PMIx (srun --mpi=pmix)", "PMIX_RANK", "SLURM_STEP_NUM_TASKS"},
		{"PMI", "PMI_RANK", "PMI_SIZE"},
	} {
		rank, ok, err := num(s.rank)
		if err != nil {
			return Launch{}, err
		}
		if !ok {
			continue
		}
		size, ok, err := num(s.size)
		if err != nil {
			return Launch{}, err
		}
		if !ok {
			size = 0 // PMIx outside Slurm: MPI says the size
		}
		if ok && rank >= size {
			return Launch{}, fmt.Errorf("%s: rank %d of %d", s.by, rank, size)
		}
		return Launch{By: s.by, Rank: rank, Size: size}, nil
	}
	if n, ok, _ := num("SLURM_STEP_NUM_TASKS"); ok && n > 1 {
		return Launch{}, fmt.Errorf("srun started %d tasks without MPI wiring (no PMIx or PMI in the environment): "+
			"launch with srun --mpi=pmix, else each task would train alone", n)
	}
	return Launch{}, nil
}

// Options of Open.
type Options struct {
	// Timeout bounds every wait for the other ranks: a rank stuck or gone makes the others fail
	// with an error after it instead of hanging (0: 10 minutes).
	Timeout time.Duration
}

// openMPI connects to the launcher's MPI job; set by the build with the mpi tag.
var openMPI func(l Launch, o Options) (Comm, error)

// Open returns this process's Comm: Single when no launcher started it, else the MPI job's
// (which needs a build with the mpi tag).
func Open(o Options) (Comm, error) {
	l, err := Detect(os.Getenv)
	if err != nil || l.By == "" {
		return Single{}, err
	}
	if openMPI == nil {
		return nil, fmt.Errorf("started by %s as rank %d of %d, but this program was built without MPI: build it with "+
			"'go build -tags mpi' (Open MPI's libopenmpi-dev installed)", l.By, l.Rank, l.Size)
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	return openMPI(l, o)
}

// Single is the one rank of a job of one: collectives leave their arguments as they are.
type Single struct{}

func (Single) Rank() int                                 { return 0 }
func (Single) Size() int                                 { return 1 }
func (Single) SumFloat64([]float64) error                { return nil }
func (Single) SumFloat32([]float32) error                { return nil }
func (Single) SumInt64([]int64) error                    { return nil }
func (Single) SumFloat32Async([]float32) func() error    { return func() error { return nil } }
func (Single) Broadcast(b []byte, _ int) ([]byte, error) { return b, nil }
func (Single) BroadcastFloat32([]float32, int) error     { return nil }
func (Single) Abort(error)                               {}
func (Single) Close() error                              { return nil }

// sumRanks adds the ranks' vectors (parts[r] is rank r's) into out in rank order, in float64:
// every backend sums so, hence the same bits whichever ran. For two ranks this is the correctly
// rounded a+b, as any MPI reduction would give.
func sumRanks[T float32 | float64](out []T, parts [][]T) {
	for i := range out {
		var s float64
		for _, p := range parts {
			s += float64(p[i])
		}
		out[i] = T(s)
	}
}

func sumRanksInt(out []int64, parts [][]int64) {
	for i := range out {
		var s int64
		for _, p := range parts {
			s += p[i]
		}
		out[i] = s
	}
}

// Errorf prefixes an error with this rank ("rank 1/2: ..."), for messages of a job of several.
func Errorf(c Comm, err error) error {
	if c == nil || c.Size() <= 1 || err == nil {
		return err
	}
	return &RankError{Rank: c.Rank(), Size: c.Size(), Err: err}
}

// RankError is an error of one rank of a job.
type RankError struct {
	Rank, Size int
	Err        error
}

func (e *RankError) Error() string { return fmt.Sprintf("rank %d/%d: %v", e.Rank, e.Size, e.Err) }
func (e *RankError) Unwrap() error { return e.Err }
