package segmentation

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/internal/atomicfile"
	"github.com/segkit/segkit/internal/kernels"
	"github.com/segkit/segkit/parallel"
)

// Sweep trains DynOPool at several GMACs budgets and the fixed model at several input scales,
// each over several seeds, to show the accuracy–compute trade-off: mIoU against the GMACs per
// image at the evaluation size (sweep.go's Report, frontier.png).
type Sweep struct {
	Base     Config    // the settings of every run (its Resize and GMACsB are each run's own)
	Budgets  []float64 // DynOPool GMACs budgets, fractions of the fixed model's
	Scales   []float64 // the fixed baselines' input scales (images resized for training and evaluation)
	Seeds    int       // runs per budget and scale: seeds Base.Seed, Base.Seed+1, …
	Parallel int       // runs at once (the kernels' threads split between them); 0 or 1: one after another
	Dir      string    // the sweep's directory: sweep.json and a directory per run
	Out      io.Writer // one line per run started and finished
	// Comm makes every run data-parallel over the job's ranks (mpirun, srun); rank 0 decides
	// what to run, writes and measures. Nil: a single process.
	Comm parallel.Comm
}

// SweepRun is one training of a sweep.
type SweepRun struct {
	Name   string  `json:"name"`
	Kind   string  `json:"kind"`   // dynopool or fixed
	Value  float64 `json:"value"`  // the budget (dynopool) or the input scale (fixed)
	Seed   uint64  `json:"seed"`   //
	Config Config  `json:"config"` // the run's settings
}

// sweepFile is sweep.json: what the sweep is, so that --report and a resumed sweep need no flags.
type sweepFile struct {
	Base    Config     `json:"base"`
	Budgets []float64  `json:"budgets"`
	Scales  []float64  `json:"scales"`
	Seeds   int        `json:"seeds"`
	Runs    []SweepRun `json:"runs"`
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

// InputScaled returns c for images resized by s, for training and evaluation: the crop, the
// rescale and the test scale times s (the demo dataset's images keep their size).
func (c Config) InputScaled(s float64) Config {
	d := c.WithDefaults()
	if d.Data == "" && d.DemoSize == 0 {
		d.DemoSize = d.Crop
	}
	mul := func(v int) int { return max(1, int(float64(v)*s+0.5)) }
	d.Scale = [2]int{mul(d.Scale[0]), mul(d.Scale[1])}
	d.TestScale = [2]int{mul(d.TestScale[0]), mul(d.TestScale[1])}
	d.Crop, d.CropW = max(32, mul(d.Crop)), max(32, mul(d.CropW))
	if d.CropW == d.Crop {
		d.CropW = 0
	}
	return d
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
		return SettingError{errors.Join(errs...)}
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
		return writeJSON(path, plan)
	}
	var old sweepFile
	if err := json.Unmarshal(raw, &old); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	now, _ := json.Marshal(plan)
	was, _ := json.Marshal(old)
	if string(now) != string(was) {
		return SettingError{fmt.Errorf("%s holds another sweep (other settings, budgets, scales or seeds): give another --name, or the same flags to continue it", s.Dir)}
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
		r := &Run{Cfg: run.Config, NoBar: true, Comm: s.Comm, Out: io.Discard}
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
	r := &Run{Cfg: run.Config, NoBar: true}
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
	if _, err := latestCheckpoint(dir); err == nil {
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
func (s *Sweep) trainRun(r *Run, run SweepRun, mu *sync.Mutex) error {
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

// finished returns nil when the run at dir has finished: its metrics.json holds an mIoU. A
// file that is missing (os.ErrNotExist), empty or invalid is an error saying so.
func finished(dir string) error {
	path := filepath.Join(dir, "metrics.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var m struct {
		MIoU *float64 `json:"mIoU"`
	}
	if err := json.Unmarshal(raw, &m); err != nil || m.MIoU == nil {
		return fmt.Errorf("%s is empty or invalid (%d bytes)", path, len(raw))
	}
	return nil
}

// readMeasured reads the run's measurements; a missing, empty or invalid file is an error.
func readMeasured(dir string) (Measured, error) {
	var m Measured
	raw, err := os.ReadFile(filepath.Join(dir, measureFile))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(raw, &m); err != nil || m.Images == 0 {
		return m, fmt.Errorf("%s is empty or invalid (%d bytes)", filepath.Join(dir, measureFile), len(raw))
	}
	return m, nil
}

// measureOnce writes the run's evaluation measurements unless they are there, whole.
func measureOnce(dir string) error {
	if _, err := readMeasured(dir); err == nil {
		return nil
	}
	m, err := MeasureRun(dir)
	if err != nil {
		return err
	}
	return writeJSON(filepath.Join(dir, measureFile), m)
}

const measureFile = "sweep_eval.json"

// Measured is a finished run's cost at the evaluation size, for the sweep.
type Measured struct {
	MIoU        float64  `json:"miou"`          // the final mIoU (metrics.json)
	GMACs       float64  `json:"gmacs"`         // conv GMACs per image at its test size, mean over the measured images
	ImagesPerS  float64  `json:"images_per_s"`  // whole-image inference on the measured images
	Images      int      `json:"images"`        // how many were measured
	BranchSizes [][2]int `json:"branch_sizes"`  // the branches' sizes at the first measured image's test size
	TestSize    [2]int   `json:"test_size"`     // that image's size after the test rescale
	Seconds     float64  `json:"train_seconds"` //
}

// measuredImages bounds the cost of measuring a run (its first validation images).
const measuredImages = 20

// MeasureRun loads a finished run's last checkpoint and measures, on its first validation
// images at the test scale, the conv GMACs per image and the inference speed.
func MeasureRun(dir string) (Measured, error) {
	var m Measured
	var metrics struct {
		MIoU float64 `json:"mIoU"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, "metrics.json"))
	if err != nil {
		return m, fmt.Errorf("%s: not finished (%w)", dir, err)
	}
	if err := json.Unmarshal(raw, &metrics); err != nil {
		return m, fmt.Errorf("%s: %w", filepath.Join(dir, "metrics.json"), err)
	}
	m.MIoU = metrics.MIoU
	path, err := latestCheckpoint(dir)
	if err != nil {
		return m, err
	}
	ck, err := LoadCheckpoint(path)
	if err != nil {
		return m, err
	}
	cfg := ck.State.Config
	_, val, err := OpenData(cfg)
	if err != nil {
		return m, err
	}
	model, net, err := LoadModel(ck, len(ck.State.Classes))
	if err != nil {
		return m, err
	}
	inf := cfg.TestInference()
	inf.Slide = false
	n := min(val.Len(), measuredImages)
	var macs float64
	var busy time.Duration
	for i := 0; i < n; i++ {
		s, err := val.Load(i)
		if err != nil {
			return m, err
		}
		ex := inf.Aug.Test(s.Image)
		start := time.Now()
		if _, err := inf.Predict(net, s.Image); err != nil {
			return m, err
		}
		busy += time.Since(start)
		macs += float64(model.MACs(net.Params, ex.H, ex.W))
		if i == 0 {
			sizes := model.LevelSizes(net.Params, ex.H, ex.W)
			m.BranchSizes, m.TestSize = [][2]int{sizes[2], sizes[3], sizes[4], sizes[5]}, [2]int{ex.H, ex.W}
		}
	}
	if n == 0 {
		return m, fmt.Errorf("%s: no validation images to measure on", dir)
	}
	m.Images, m.GMACs, m.ImagesPerS = n, macs/float64(n)/1e9, float64(n)/busy.Seconds()
	return m, nil
}

// SweepReport is the sweep's summary: a row per budget or scale, over the seeds.
type SweepReport struct {
	Rows       []SweepRow `json:"rows"`
	Unfinished []string   `json:"unfinished,omitempty"` // runs of the plan left out: no valid metrics.json
}

// SweepRow summarises the seeds of one budget (DynOPool) or input scale (fixed).
type SweepRow struct {
	Kind       string     `json:"kind"`
	Value      float64    `json:"value"`
	Seeds      int        `json:"seeds"`
	MIoU       float64    `json:"miou_mean"`
	MIoUStd    float64    `json:"miou_std"` // sample standard deviation over the seeds (0 for one)
	GMACs      float64    `json:"gmacs_mean"`
	ImagesPerS float64    `json:"images_per_s_mean"`
	Sizes      [][][2]int `json:"branch_sizes"` // per seed: every branch's h×w at the first image's test size
	Pareto     bool       `json:"pareto"`       // no other row has at most its GMACs and at least its mIoU (one strictly)
}

// ReportSweep summarises a sweep directory's finished runs (measuring those not yet measured)
// and writes summary.json, summary.csv and frontier.png there.
func ReportSweep(dir string) (*SweepReport, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "sweep.json"))
	if err != nil {
		return nil, fmt.Errorf("%s is not a sweep directory: %w", dir, err)
	}
	var plan sweepFile
	if err := json.Unmarshal(raw, &plan); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "sweep.json"), err)
	}
	type key struct {
		kind  string
		value float64
	}
	var order []key
	var unfinished []string
	groups := map[key][]Measured{}
	for _, run := range plan.Runs {
		k := key{run.Kind, run.Value}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
			groups[k] = nil
		}
		rdir := filepath.Join(dir, run.Name)
		if finished(rdir) != nil {
			unfinished = append(unfinished, run.Name) // left out, and said
			continue
		}
		if err := measureOnce(rdir); err != nil {
			return nil, err
		}
		m, err := readMeasured(rdir)
		if err != nil {
			return nil, err
		}
		groups[k] = append(groups[k], m)
	}
	rep := &SweepReport{Unfinished: unfinished}
	for _, k := range order {
		ms := groups[k]
		if len(ms) == 0 {
			continue
		}
		row := SweepRow{Kind: k.kind, Value: k.value, Seeds: len(ms)}
		for _, m := range ms {
			row.MIoU += m.MIoU / float64(len(ms))
			row.GMACs += m.GMACs / float64(len(ms))
			row.ImagesPerS += m.ImagesPerS / float64(len(ms))
			row.Sizes = append(row.Sizes, m.BranchSizes)
		}
		if len(ms) > 1 {
			var ss float64
			for _, m := range ms {
				ss += (m.MIoU - row.MIoU) * (m.MIoU - row.MIoU)
			}
			row.MIoUStd = math.Sqrt(ss / float64(len(ms)-1))
		}
		rep.Rows = append(rep.Rows, row)
	}
	if len(rep.Rows) == 0 {
		return nil, fmt.Errorf("%s: no finished runs to report (unfinished: %s)", dir, strings.Join(unfinished, ", "))
	}
	for i := range rep.Rows {
		a := &rep.Rows[i]
		a.Pareto = !slices.ContainsFunc(rep.Rows, func(b SweepRow) bool {
			return b.GMACs <= a.GMACs && b.MIoU >= a.MIoU && (b.GMACs < a.GMACs || b.MIoU > a.MIoU)
		})
	}
	if err := writeJSON(filepath.Join(dir, "summary.json"), rep); err != nil {
		return nil, err
	}
	if err := rep.writeCSV(filepath.Join(dir, "summary.csv")); err != nil {
		return nil, err
	}
	if err := rep.plotFrontier(filepath.Join(dir, "frontier.png")); err != nil {
		return nil, err
	}
	return rep, nil
}

func (rep *SweepReport) writeCSV(path string) error {
	return atomicfile.Write(path, 0o666, func(f io.Writer) error { return rep.csv(f) })
}

func (rep *SweepReport) csv(f io.Writer) error {
	w := csv.NewWriter(f)
	w.Write([]string{"kind", "value", "seeds", "miou_mean", "miou_std", "gmacs_mean", "images_per_s_mean", "pareto", "branch_sizes"})
	for _, r := range rep.Rows {
		w.Write([]string{r.Kind, fmt.Sprint(r.Value), fmt.Sprint(r.Seeds), fmt.Sprintf("%.6f", r.MIoU), fmt.Sprintf("%.6f", r.MIoUStd),
			fmt.Sprintf("%.6f", r.GMACs), fmt.Sprintf("%.3f", r.ImagesPerS), fmt.Sprint(r.Pareto), sizesText(r.Sizes)})
	}
	w.Flush()
	return w.Error()
}

// sizesText writes the branches' sizes per seed: "16x21 8x11 4x6 2x3; …".
func sizesText(sizes [][][2]int) string {
	seeds := make([]string, len(sizes))
	for i, s := range sizes {
		b := make([]string, len(s))
		for j, hw := range s {
			b[j] = fmt.Sprintf("%dx%d", hw[0], hw[1])
		}
		seeds[i] = strings.Join(b, " ")
	}
	return strings.Join(seeds, "; ")
}

// Table is the report as text: a row per budget and scale.
func (rep *SweepReport) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-9s %6s %5s %15s %8s %8s %6s  %s\n", "kind", "value", "seeds", "mIoU (%)", "GMACs", "img/s", "pareto", "branch sizes per seed (h×w)")
	for _, r := range rep.Rows {
		mark := ""
		if r.Pareto {
			mark = "*"
		}
		fmt.Fprintf(&b, "%-9s %6g %5d %8.2f ± %4.2f %8.3f %8.1f %6s  %s\n", r.Kind, r.Value, r.Seeds, 100*r.MIoU, 100*r.MIoUStd,
			r.GMACs, r.ImagesPerS, mark, sizesText(r.Sizes))
	}
	if len(rep.Unfinished) > 0 {
		fmt.Fprintf(&b, "unfinished, left out (run the sweep again to finish them): %s\n", strings.Join(rep.Unfinished, ", "))
	}
	return b.String()
}
