// Package sweep trains DynOPool at several GMACs budgets against the fixed model at several
// input scales, measures every run and reports the accuracy–compute frontier.
package sweep

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"

	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/internal/atomicfile"
	"github.com/segkit/segkit/internal/kernels"
	"github.com/segkit/segkit/parallel"
	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/segmentation/checkpoint"
	"github.com/segkit/segkit/segmentation/train"
)

// Sweep trains DynOPool at several GMACs budgets and the fixed model at several input scales,
// each over several seeds, to show the accuracy–compute trade-off: mIoU against the GMACs per
// image at the evaluation size (sweep.go's Report, frontier.png).
type Sweep struct {
	Base     segmentation.Config // the settings of every run (its Resize and GMACsB are each run's own)
	Budgets  []float64           // DynOPool GMACs budgets, fractions of the fixed model's
	Scales   []float64           // the fixed baselines' input scales (images resized for training and evaluation)
	Seeds    int                 // runs per budget and scale: seeds Base.Seed, Base.Seed+1, …
	Parallel int                 // runs at once (the kernels' threads split between them); 0 or 1: one after another
	Dir      string              // the sweep's directory: sweep.json and a directory per run
	Out      io.Writer           // one line per run started and finished
	// Comm makes every run data-parallel over the job's ranks (mpirun, srun); rank 0 decides
	// what to run, writes and measures. Nil: a single process.
	Comm parallel.Comm
}

// SweepRun is one training of a sweep.
type SweepRun struct {
	Name   string              `json:"name"`
	Kind   string              `json:"kind"`   // dynopool or fixed
	Value  float64             `json:"value"`  // the budget (dynopool) or the input scale (fixed)
	Seed   uint64              `json:"seed"`   //
	Config segmentation.Config `json:"config"` // the run's settings
}

// sweepFile is sweep.json: what the sweep is, so that --report and a resumed sweep need no flags.
type sweepFile struct {
	Base    segmentation.Config `json:"base"`
	Budgets []float64           `json:"budgets"`
	Scales  []float64           `json:"scales"`
	Seeds   int                 `json:"seeds"`
	Runs    []SweepRun          `json:"runs"`
}

// Plan lists the runs: DynOPool per budget, then fixed per scale, each per seed.
func (s *Sweep) Plan() []SweepRun {
	var runs []SweepRun
	for _, b := range s.Budgets {
		for k := 0; k < s.Seeds; k++ {
			c := s.Base
			c.Resize, c.GMACsB, c.Seed = string(hrnet.DynOPool), b, s.Base.Seed+uint64(k)
			runs = append(runs, SweepRun{Kind: c.Resize, Value: b, Seed: c.Seed, Config: c})
		}
	}
	for _, sc := range s.Scales {
		for k := 0; k < s.Seeds; k++ {
			c := s.Base.InputScaled(sc)
			c.Resize, c.Seed = string(hrnet.Fixed), s.Base.Seed+uint64(k)
			runs = append(runs, SweepRun{Kind: c.Resize, Value: sc, Seed: c.Seed, Config: c})
		}
	}
	for i := range runs {
		r := &runs[i]
		what := "budget"
		if r.Kind == string(hrnet.Fixed) {
			what = "scale"
		}
		r.Name = fmt.Sprintf("%s_%s%s_seed%d", r.Kind, what, strconv.FormatFloat(r.Value, 'f', -1, 64), r.Seed)
		r.Config.Out, r.Config.Name = s.Dir, r.Name
	}
	return runs
}

// Validate reports what cannot make a sweep (a SettingError naming the flag).
func (s *Sweep) Validate() error {
	var errs []error
	if len(s.Budgets) == 0 && len(s.Scales) == 0 {
		errs = append(errs, errors.New("--gmacs-budget, --baseline-scales: give at least one budget or scale"))
	}
	for _, b := range s.Budgets {
		if !(b > 0 && b <= 4) {
			errs = append(errs, fmt.Errorf("--gmacs-budget %g: a fraction of the fixed model's GMACs, in (0, 4]", b))
		}
	}
	for _, sc := range s.Scales {
		if !(sc > 0 && sc <= 4) {
			errs = append(errs, fmt.Errorf("--baseline-scales %g: an input scale in (0, 4]", sc))
		}
	}
	if s.Seeds < 1 {
		errs = append(errs, fmt.Errorf("--seeds %d: at least 1", s.Seeds))
	}
	if s.Parallel < 0 {
		errs = append(errs, fmt.Errorf("--parallel %d: must not be negative", s.Parallel))
	}
	if s.Comm != nil && s.Comm.Size() > 1 && s.Parallel > 1 {
		errs = append(errs, fmt.Errorf("--parallel %d: under mpirun each run is already data-parallel over the ranks", s.Parallel))
	}
	if len(errs) > 0 {
		return segmentation.SettingError{Err: errors.Join(errs...)}
	}
	return nil
}

// Run trains every run of the plan that has not finished: a finished one (a valid metrics.json) is
// skipped, an interrupted one resumed from its checkpoint, one without a checkpoint started
// again. Then it writes the report. A sweep directory holds one sweep: a different plan there
// is an error.
func (s *Sweep) Run() (*SweepReport, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if s.Comm == nil {
		s.Comm = parallel.Single{}
	}
	if s.Comm.Size() > 1 {
		return s.runRanks()
	}
	if err := s.begin(); err != nil {
		return nil, err
	}
	runs := s.Plan()
	parallel := max(1, s.Parallel)
	if parallel > 1 { // the kernels' threads, split between the runs
		defer func(w int) { kernels.Workers = w }(kernels.Workers)
		kernels.Workers = max(1, runtime.GOMAXPROCS(0)/parallel)
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		next = make(chan SweepRun)
	)
	for w := 0; w < parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for run := range next {
				if err := s.train(run, &mu); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("%s: %w", run.Name, err))
					mu.Unlock()
				}
			}
		}()
	}
	for _, run := range runs {
		next <- run
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return ReportSweep(s.Dir)
}

// begin writes sweep.json, or checks that the directory's is this sweep's.
func (s *Sweep) begin() error {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return err
	}
	plan := sweepFile{Base: s.Base, Budgets: s.Budgets, Scales: s.Scales, Seeds: s.Seeds, Runs: s.Plan()}
	path := filepath.Join(s.Dir, "sweep.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return atomicfile.WriteJSON(path, plan)
	}
	var old sweepFile
	if err := json.Unmarshal(raw, &old); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	now, _ := json.Marshal(plan)
	was, _ := json.Marshal(old)
	if string(now) != string(was) {
		return segmentation.SettingError{Err: fmt.Errorf("%s holds another sweep (other settings, budgets, scales or seeds): give another --name, or the same flags to continue it", s.Dir)}
	}
	return nil
}

// runRanks is Run for one rank of a data-parallel job: the runs one after another, each over
// every rank; rank 0 says what each run is (skipped, resumed, started) so that every rank
// does the same whatever files it sees, and alone writes, measures and reports.
func (s *Sweep) runRanks() (*SweepReport, error) {
	lead := s.Comm.Rank() == 0
	var err error
	if lead {
		err = s.begin()
	}
	if err := agree(s.Comm, err); err != nil {
		return nil, err
	}
	var mu sync.Mutex
	for _, run := range s.Plan() {
		var act action
		if lead {
			if act, err = s.prepare(run, &mu); err != nil {
				act = failedRun
			}
		}
		b, berr := s.Comm.Broadcast([]byte{byte(act)}, 0)
		if berr != nil {
			return nil, berr
		}
		if act = action(b[0]); act == failedRun {
			if err == nil {
				err = fmt.Errorf("%s: rank 0 could not prepare it", run.Name)
			}
			return nil, err
		}
		if act == skipRun {
			continue
		}
		r := &train.Run{Cfg: run.Config, NoBar: true, Comm: s.Comm, Out: io.Discard}
		if act == resumeRun {
			r.Resume = filepath.Join(s.Dir, run.Name)
		}
		if err := s.trainRun(r, run, &mu); err != nil {
			return nil, err
		}
	}
	if !lead {
		return &SweepReport{}, nil
	}
	return ReportSweep(s.Dir)
}

// agree makes rank 0's error every rank's.
func agree(c parallel.Comm, err error) error {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	b, berr := c.Broadcast([]byte(msg), 0)
	if berr != nil {
		return berr
	}
	if c.Rank() == 0 {
		return err
	}
	if len(b) > 0 {
		return errors.New(string(b))
	}
	return nil
}

// action is what a sweep does with one of its runs.
type action byte

const (
	startRun action = iota
	resumeRun
	skipRun
	failedRun
)

// train runs (or resumes, or skips) one run, its output to its log file, and measures it.
func (s *Sweep) train(run SweepRun, mu *sync.Mutex) error {
	act, err := s.prepare(run, mu)
	if err != nil || act == skipRun {
		return err
	}
	r := &train.Run{Cfg: run.Config, NoBar: true}
	if act == resumeRun {
		r.Resume = filepath.Join(s.Dir, run.Name)
	}
	return s.trainRun(r, run, mu)
}

// prepare decides what to do with a run: skip it when finished (measuring it if it was not),
// resume it from its checkpoint, or start it (clearing a directory left without a checkpoint).
func (s *Sweep) prepare(run SweepRun, mu *sync.Mutex) (action, error) {
	dir := filepath.Join(s.Dir, run.Name)
	err := finished(dir)
	if err == nil {
		s.say(mu, "%s: finished before, skipped\n", run.Name)
		return skipRun, measureOnce(dir)
	}
	if !errors.Is(err, os.ErrNotExist) { // an empty metrics.json (a full disk, a kill) finishes nothing
		s.say(mu, "%s: %v: not finished\n", run.Name, err)
	}
	if _, err := checkpoint.Latest(dir); err == nil {
		s.say(mu, "%s: resuming\n", run.Name)
		return resumeRun, nil
	}
	if _, err := os.Stat(dir); err == nil {
		if err := os.RemoveAll(dir); err != nil { // stopped before its first checkpoint
			return startRun, err
		}
	}
	s.say(mu, "%s: training\n", run.Name)
	return startRun, nil
}

// trainRun trains r (rank 0: with its output in the run's log file), then measures it.
func (s *Sweep) trainRun(r *train.Run, run SweepRun, mu *sync.Mutex) error {
	lead := r.Comm == nil || r.Comm.Rank() == 0
	if lead {
		logf, err := os.OpenFile(filepath.Join(s.Dir, run.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer logf.Close()
		r.Out = logf
	}
	sum, err := r.Train()
	if err != nil || !lead {
		return err
	}
	s.say(mu, "%s: mIoU %.2f, %.3f GMACs at the crop, sizes %v (%.0f s)\n", run.Name, 100*sum.Final.MIoU, sum.GMACs, sum.Sizes, sum.Seconds)
	return measureOnce(filepath.Join(s.Dir, run.Name))
}

func (s *Sweep) say(mu *sync.Mutex, format string, args ...any) {
	mu.Lock()
	defer mu.Unlock()
	fmt.Fprintf(s.Out, format, args...)
}
