package train

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"slices"

	"github.com/segkit/segkit/dataset"
	"github.com/segkit/segkit/parallel"
	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/segmentation/checkpoint"
)

// ErrOtherRank is returned by the ranks of a data-parallel run that stop because another rank
// failed where all of them learn of it (that rank returns, and reports, the cause).
var ErrOtherRank = errors.New("stopped: another rank failed")

// SharedError is an error that every rank of a data-parallel run meets at the same iteration
// (an interrupt, a non-finite loss, a setting): the ranks end together, and rank 0 reports it.
type SharedError struct{ Err error }

func (e SharedError) Error() string { return e.Err.Error() }
func (e SharedError) Unwrap() error { return e.Err }

// Ranks are the processes of a job (one, or the ranks of mpirun or srun): how their errors are
// shared while they work, and how each ends. With one rank every collective is a no-op.
type Ranks struct{ Comm parallel.Comm }

// lead reports whether this process is rank 0, the one that reads, writes and prints.
func (k Ranks) lead() bool { return k.Comm.Rank() == 0 }

// shared marks err as met by every rank at the same point: rank 0 reports it, and the others
// stop quietly (ErrOtherRank). A single process keeps err as it is.
func (k Ranks) shared(err error) error {
	if k.Comm.Size() <= 1 {
		return err
	}
	if !k.lead() {
		return fmt.Errorf("%w (%v)", ErrOtherRank, err)
	}
	return SharedError{err}
}

// same is shared for errors every rank meets by itself (settings all ranks read alike).
func (k Ranks) same(err error) error {
	if err == nil {
		return nil
	}
	return k.shared(err)
}

// agree lets every rank learn whether any failed: a failed rank returns its error (marked
// shared, so that its rank reports it and every rank ends without killing the others), the
// others ErrOtherRank.
func (k Ranks) agree(err error) error {
	if k.Comm.Size() <= 1 {
		return err
	}
	failed := []int64{0}
	if err != nil {
		failed[0] = 1
	}
	if e := k.Comm.SumInt64(failed); e != nil {
		return e
	}
	switch {
	case err != nil:
		return SharedError{err}
	case failed[0] > 0:
		return ErrOtherRank
	}
	return nil
}

// anyRank reports whether b holds on any rank (a collective).
func (k Ranks) anyRank(b bool) (bool, error) {
	if k.Comm.Size() <= 1 {
		return b, nil
	}
	v := []int64{0}
	if b {
		v[0] = 1
	}
	if err := k.Comm.SumInt64(v); err != nil {
		return false, err
	}
	return v[0] > 0, nil
}

// RankExit is the end of a rank other than 0, which has said what it had to: the process
// exits with Code and prints nothing more (rank 0 reports the job).
type RankExit struct{ Code int }

func (e RankExit) Error() string { return fmt.Sprintf("rank exits with status %d", e.Code) }

// ExitCode is the process's exit status; a command exits with it and prints nothing more.
func (e RankExit) ExitCode() int { return e.Code }

// End ends this process's part of the job after its work returned err, and returns what the
// command reports. One process: the communicator is closed (MPI finalized) and err returned.
// Several ranks: an error every rank met together (an interrupt, a NaN, a setting) or a stop
// because another rank failed ends every rank normally, rank 0 returning it; any other error
// is this rank's alone: it is reported on stderr, naming the rank, and the job is aborted
// (mpirun then ends every rank and exits non-zero). Ranks other than 0 return a RankExit.
func (k Ranks) End(err error, stderr io.Writer, prog string) error {
	if k.Comm.Size() <= 1 {
		if closeErr := k.Comm.Close(); err == nil {
			err = closeErr
		}
		return err
	}
	var shared SharedError
	together := err == nil || errors.As(err, &shared) || errors.Is(err, ErrOtherRank)
	if !together {
		fmt.Fprintf(stderr, "%s: rank %d/%d: %v\n", prog, k.Comm.Rank(), k.Comm.Size(), err)
		k.Comm.Abort(err) // does not return
	}
	if closeErr := k.Comm.Close(); err == nil {
		err = closeErr
	}
	if k.lead() {
		return err
	}
	code := ExitCode(err)
	if code == 1 && errors.As(err, &shared) { // this rank's own share of the failure
		fmt.Fprintf(stderr, "%s: rank %d/%d: %v\n", prog, k.Comm.Rank(), k.Comm.Size(), err)
	}
	return RankExit{code}
}

// ExitCode is the exit status of a process whose work returned err: 0 without an error, a
// RankExit's own, 2 for a setting that cannot work (the command line is wrong), else 1.
func ExitCode(err error) int {
	var exit RankExit
	var setting segmentation.SettingError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.Code
	case errors.As(err, &setting):
		return 2
	}
	return 1
}

// start is what rank 0 tells the other ranks before they build the model: the settings and
// state (a resumed run's, from the checkpoint only rank 0 reads), or why it cannot start.
type start struct {
	Err     string              `json:"err,omitempty"`
	Setting bool                `json:"setting,omitempty"`
	Resumed bool                `json:"resumed"`
	Cfg     segmentation.Config `json:"cfg"`
	State   checkpoint.State    `json:"state"`
}

// shareStart sends rank 0's settings (and its error, if resuming failed) to every rank.
func (r *Run) shareStart(err error) error {
	if r.Comm.Size() <= 1 {
		return err
	}
	var msg []byte
	if r.ranks.lead() {
		st := start{Resumed: r.resumed, Cfg: r.Cfg, State: r.state}
		if err != nil {
			st.Err = err.Error()
			_, st.Setting = err.(segmentation.SettingError)
		}
		if msg, err = json.Marshal(st); err != nil {
			return err
		}
	}
	msg, e := r.Comm.Broadcast(msg, 0)
	if e != nil {
		return e
	}
	if r.ranks.lead() {
		if err != nil {
			return SharedError{err}
		}
		return nil
	}
	var st start
	if e := json.Unmarshal(msg, &st); e != nil {
		return fmt.Errorf("the run's settings from rank 0: %w", e)
	}
	if st.Err != "" {
		return fmt.Errorf("%w (rank 0: %s)", ErrOtherRank, st.Err)
	}
	r.Cfg, r.state, r.resumed = st.Cfg, st.State, st.Resumed
	return nil
}

// shareModel gives every rank rank 0's parameters, buffers and momentum: the seed's, the
// pretrained file's or the checkpoint's, which only rank 0 reads.
func (r *Run) shareModel() error {
	if r.Comm.Size() <= 1 {
		return nil
	}
	params := r.net.Params.All()
	velocity := make([]byte, len(params))
	for i, p := range params {
		if p.Velocity != nil {
			velocity[i] = 1
		}
	}
	velocity, err := r.Comm.Broadcast(velocity, 0)
	if err != nil {
		return err
	}
	if len(velocity) != len(params) {
		return fmt.Errorf("rank 0's model has %d parameters, this rank's %d", len(velocity), len(params))
	}
	for i, p := range params {
		if err := r.Comm.BroadcastFloat32(p.Data(), 0); err != nil {
			return fmt.Errorf("parameter %s from rank 0: %w", p.Name, err)
		}
		if velocity[i] == 0 {
			p.Velocity = nil
			continue
		}
		if p.Velocity == nil {
			p.Velocity = make([]float32, len(p.Data()))
		}
		if err := r.Comm.BroadcastFloat32(p.Velocity, 0); err != nil {
			return fmt.Errorf("momentum of %s from rank 0: %w", p.Name, err)
		}
	}
	return nil
}

// stopRequested reports whether the run stops here: this rank's Interrupt, or any rank's.
func (r *Run) stopRequested() (bool, error) {
	return r.ranks.anyRank(r.Interrupt != nil && r.Interrupt.Load())
}

// weightsAgree checks, before rank 0 writes a checkpoint, that every rank holds rank 0's
// weights, buffers and momentum (a hash of their bits): ranks that drifted apart would make a
// checkpoint of a model no rank trains.
func (r *Run) weightsAgree() error {
	if r.Comm.Size() <= 1 {
		return nil
	}
	h := fnv.New64a()
	var word [4]byte
	add := func(v []float32) {
		for _, x := range v {
			binary.LittleEndian.PutUint32(word[:], math.Float32bits(x))
			h.Write(word[:])
		}
	}
	for _, p := range r.net.Params.All() {
		add(p.Data())
		add(p.Velocity)
	}
	mine := h.Sum(nil)
	lead, err := r.Comm.Broadcast(mine, 0)
	if err != nil {
		return err
	}
	differ := []int64{0}
	if string(lead) != string(mine) {
		differ[0] = 1
	}
	if err := r.Comm.SumInt64(differ); err != nil {
		return err
	}
	if differ[0] == 0 {
		return nil
	}
	err = fmt.Errorf("iteration %d: %d rank(s) hold weights that differ from rank 0's: the ranks diverged, no checkpoint written", r.state.Iter, differ[0])
	if string(lead) != string(mine) {
		err = fmt.Errorf("iteration %d: this rank's weights differ from rank 0's: the ranks diverged, no checkpoint written", r.state.Iter)
	}
	return SharedError{err}
}

// skipped is what --skip-bad left out on one rank: training samples (indices in the training
// split) and evaluation samples (indices in the evaluation split).
type skipped struct {
	Train []dataset.Skip `json:"train"`
	Val   []dataset.Skip `json:"val"`
}

// skippedSamples lists the samples --skip-bad left out in the batches trained on and in the
// evaluations ("id: problem"), sorted, each once: with several ranks, the union of what each
// rank met loading its shares, which is what one process loading whole batches lists. Every
// rank must call it.
func (r *Run) skippedSamples() ([]string, error) {
	if !r.Cfg.SkipBad {
		return nil, nil
	}
	mine := skipped{Train: r.loader.SkippedBefore(r.state.Epoch, r.state.Batch), Val: r.valSkipped}
	all := []skipped{mine}
	if r.Comm.Size() > 1 {
		msg, err := json.Marshal(mine)
		if err != nil {
			return nil, err
		}
		all = nil
		for rank := 0; rank < r.Comm.Size(); rank++ { // a gather: each rank's list to every rank
			b, err := r.Comm.Broadcast(msg, rank)
			if err != nil {
				return nil, err
			}
			var theirs skipped
			if err := json.Unmarshal(b, &theirs); err != nil {
				return nil, fmt.Errorf("the samples rank %d skipped: %w", rank, err)
			}
			all = append(all, theirs)
		}
	}
	// A file two ranks met is the same sample: listed once, as the lowest rank met it.
	var out []string
	once := func(list func(skipped) []dataset.Skip) {
		seen := map[int]bool{}
		for _, rank := range all {
			for _, s := range list(rank) {
				if !seen[s.Index] {
					seen[s.Index] = true
					out = append(out, s.What)
				}
			}
		}
	}
	once(func(s skipped) []dataset.Skip { return s.Train })
	once(func(s skipped) []dataset.Skip { return s.Val })
	slices.Sort(out)
	return out, nil
}
