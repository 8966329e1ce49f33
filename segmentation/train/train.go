// Package train runs a training: its setup, its loop and step, its ranks (data-parallel
// processes, and how each ends), its log, plots and checkpoints.
package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/segkit/segkit/dataset"
	"github.com/segkit/segkit/dynopool"
	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/internal/atomicfile"
	"github.com/segkit/segkit/internal/kernels"
	"github.com/segkit/segkit/metrics"
	"github.com/segkit/segkit/nn"
	"github.com/segkit/segkit/parallel"
	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/segmentation/checkpoint"
	"github.com/segkit/segkit/segmentation/infer"
)

// ErrInterrupted is returned by a run stopped through Run.Interrupt.
var ErrInterrupted = errors.New("training interrupted")

// Summary is what a finished run reports.
type Summary struct {
	Dir      string         `json:"dir"`
	Iters    int            `json:"iters"`
	Crop     int            `json:"crop"` // the run's (a resumed run's is its checkpoint's)
	CropW    int            `json:"crop_w"`
	Final    metrics.Result `json:"final"`
	BestMIoU float64        `json:"best_miou"`
	BestIter int            `json:"best_iter"`
	Sizes    [][2]int       `json:"branch_sizes"`
	GMACs    float64        `json:"gmacs"`
	Seconds  float64        `json:"seconds"`
	Skipped  []string       `json:"skipped,omitempty"` // samples --skip-bad left out ("id: problem"), over every rank
}

// Run is one training run.
type Run struct {
	Cfg    segmentation.Config
	Out    io.Writer // progress, tables and messages
	Resume string    // a run directory or checkpoint to continue
	// Override names the settings of Cfg (JSON keys) that replace the checkpoint's on Resume,
	// e.g. "iters" to lengthen the run; only ResumeSettings may (others are a SettingError).
	Override []string
	NoBar    bool // plain log lines instead of a progress bar
	StopAt   int  // stop (with a checkpoint) after this many iterations in total; 0: at Cfg.Iters
	// Interrupt, when set (e.g. on Ctrl-C), stops the run after the current step with a checkpoint,
	// or during an evaluation (checked between images; the evaluation is skipped, the checkpoint
	// already written); Train then returns ErrInterrupted.
	Interrupt *atomic.Bool
	// Comm makes this process one rank of a data-parallel run when it has several ranks
	// (package parallel; nil: a single process). Every rank trains on its share of each batch and
	// evaluates its share of the evaluation images; rank 0 alone reads the checkpoint to resume,
	// writes the run directory, logs, plots and checkpoints, and prints.
	Comm parallel.Comm
	// BeforeStep, when set, is called with each iteration (counted from 1) before it runs; tests
	// make a rank fail at a given iteration with it.
	BeforeStep func(iter int)
	ranks      Ranks
	resumed    bool // continuing a checkpoint (which rank 0 read)
	dir        string
	data       segmentation.Data
	model      *hrnet.Model
	net        *nn.Net
	opt        *nn.SGD
	state      checkpoint.State
	classes    []string
	train      dataset.Dataset
	val        dataset.Dataset
	loader     *dataset.Loader
	stream     *dataset.Stream
	tracker    dynopool.Tracker
	logFile    *os.File
	progress   *progressbar.ProgressBar
	meter      meter
	last       *metrics.Result // the latest evaluation
	written    int             // the iteration of the last checkpoint this run wrote (rank 0)
	valSkipped []dataset.Skip  // evaluation samples SkipBad left out (Index: in the whole split)
	valSeen    map[int]bool
	evalImage  func(i int) // when set, called before each evaluation image (tests interrupt there)
}

// meter accumulates what the next log line reports.
type meter struct {
	start     time.Time // of the step loop
	startIter int
	lastLog   time.Time
	images    int // since the last log line
	lossSum   float64
	lossN     int
}

func (r *Run) printf(format string, args ...any) {
	if r.progress != nil {
		r.progress.Clear()
	}
	fmt.Fprintf(r.Out, format, args...)
}

// Train runs (or resumes) the training and returns its summary.
func (r *Run) Train() (Summary, error) {
	start := time.Now()
	defer r.close()
	if r.Comm == nil {
		r.Comm = parallel.Single{}
	}
	r.ranks = Ranks{r.Comm}
	if !r.ranks.lead() { // rank 0 speaks for the run
		r.Out, r.NoBar = io.Discard, true
	}
	var ck *checkpoint.Checkpoint
	var err error
	if r.ranks.lead() {
		ck, err = r.resume()
	}
	if err := r.shareStart(err); err != nil {
		return Summary{}, err
	}
	if err := r.setup(ck); err != nil {
		return Summary{}, err
	}
	if err := r.loop(); err != nil {
		return Summary{Dir: r.dir, Iters: r.state.Iter, Crop: r.Cfg.Crop, CropW: r.Cfg.CropW}, err
	}
	return r.finish(start)
}

// resume loads the checkpoint to continue from (nil without Resume): its state and settings,
// with those of Override taken from Cfg.
func (r *Run) resume() (*checkpoint.Checkpoint, error) {
	if r.Resume == "" {
		return nil, nil
	}
	path, err := checkpoint.Latest(r.Resume)
	if errors.Is(err, checkpoint.ErrNoCheckpoint) {
		return nil, r.restart(r.Resume)
	}
	if err != nil {
		return nil, err
	}
	ck, err := checkpoint.LoadCheckpoint(path)
	if err != nil {
		return nil, err
	}
	was := ck.State.Config
	cfg := was
	if err := cfg.Override(r.Cfg, r.Override); err != nil {
		return nil, err
	}
	if cfg.Iters < ck.State.Iter {
		return nil, segmentation.SettingError{Err: fmt.Errorf("--iters %d: the run is already at iteration %d", cfg.Iters, ck.State.Iter)}
	}
	r.Cfg, r.state, r.resumed = cfg, ck.State, true
	r.state.Config = cfg
	r.dir = filepath.Dir(path)
	// A write cut short (killed process) leaves only a temporary file: remove it.
	stale, _ := filepath.Glob(filepath.Join(r.dir, atomicfile.TempPrefix+"*"))
	for _, f := range stale {
		os.Remove(f)
	}
	r.printf("resuming %s at iteration %d\n", path, r.state.Iter)
	if cfg.Iters != was.Iters {
		r.printf("the run now ends at iteration %d (was %d): the poly schedule is recomputed over %d iterations\n", cfg.Iters, was.Iters, cfg.Iters)
	}
	if w := ck.State.KernelWorkers; w > 0 && w != kernels.Workers {
		r.printf("note: the checkpoint was written with %d kernel worker(s) (GOMAXPROCS %d), this process has %d: the kernels "+
			"split their sums differently, so the continuation is not bit-identical to an uninterrupted run on %d "+
			"(resume with GOMAXPROCS=%d for that)\n", w, ck.State.GOMAXPROCS, kernels.Workers, w, w)
	}
	if was, now := max(ck.State.Ranks, 1), r.Comm.Size(); was != now {
		r.printf("note: the checkpoint was written by %d rank(s), this run has %d: the same global batch of %d, split "+
			"otherwise, so the continuation agrees with the run to float rounding, not bit for bit\n", was, now, cfg.Batch)
	}
	return ck, nil
}

// restart readies a run directory without a checkpoint (its run stopped before the first one)
// to train again from iteration 0 with the settings of its config.json (and Override), as
// mmsegmentation's resume starts over when it finds no checkpoint.
func (r *Run) restart(dir string) error {
	path := filepath.Join(dir, "config.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s: %w, nor a config.json to start it again from", dir, checkpoint.ErrNoCheckpoint)
	}
	var cfg segmentation.Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := cfg.Override(r.Cfg, r.Override); err != nil {
		return err
	}
	r.Cfg, r.dir = cfg, dir
	// A best model of the stopped run would pass for this one's.
	leftovers, _ := filepath.Glob(filepath.Join(dir, atomicfile.TempPrefix+"*"))
	for _, f := range append(leftovers, filepath.Join(dir, "best.safetensors")) {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	r.printf("%s has no checkpoint: starting it again from iteration 0 with its config.json\n", dir)
	return nil
}

// setup opens the data, builds the model (from the checkpoint, or in a new run directory), the
// log, the loader, the optimiser and the progress display.
func (r *Run) setup(ck *checkpoint.Checkpoint) error {
	if err := r.Cfg.Validate(); err != nil {
		return r.ranks.same(err)
	}
	if n := r.Comm.Size(); r.Cfg.Batch%n != 0 {
		return r.ranks.same(segmentation.SettingError{Err: fmt.Errorf("--batch %d: the global batch must divide among the %d ranks", r.Cfg.Batch, n)})
	}
	if err := r.ranks.agree(r.build(ck)); err != nil {
		return err
	}
	if err := r.shareModel(); err != nil {
		return err
	}
	c := r.Cfg
	r.state.KernelWorkers, r.state.GOMAXPROCS, r.state.Ranks = kernels.Workers, runtime.GOMAXPROCS(0), r.Comm.Size()
	if r.ranks.lead() {
		if err := r.openLog(); err != nil {
			return err
		}
	}
	r.writeLog(map[string]any{"iter": r.state.Iter, "kernel_workers": r.state.KernelWorkers, "gomaxprocs": r.state.GOMAXPROCS, "ranks": r.state.Ranks})
	r.loader = &dataset.Loader{Data: r.train, Aug: c.TrainAugment(), Batch: c.Batch, Seed: c.Seed, Workers: c.Workers, SkipBad: c.SkipBad,
		Shard: r.Comm.Rank(), Shards: r.Comm.Size()}
	r.stream = r.loader.Stream(r.state.Epoch, r.state.Batch)
	if r.Comm.Size() > 1 {
		r.net.Shard = &nn.Shard{Comm: r.Comm, SyncBN: !c.NoSyncBN}
	}
	r.opt = &nn.SGD{LR: c.LR, Momentum: c.Momentum, WeightDecay: c.WeightDec,
		Groups: map[string]nn.Group{dynopool.Group: {LRMult: c.AlphaLR / c.LR, NoDecay: true}}}
	r.net.OnBuild = func(key string, took time.Duration) {
		if took > 2*time.Second {
			r.printf("graph for %s built in %v\n", key, took.Round(time.Millisecond))
		}
	}
	if !r.NoBar {
		r.progress = progressbar.NewOptions(c.Iters, progressbar.OptionSetWriter(r.Out), progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionShowIts(), progressbar.OptionSetItsString("it"), progressbar.OptionFullWidth())
		r.progress.Set(r.state.Iter)
	}
	r.printData(r.data)
	if n := r.Comm.Size(); n > 1 {
		bn := "SyncBN: batch norm over the whole batch"
		if c.NoSyncBN {
			bn = "batch norm over each rank's share (--no-sync-bn)"
		}
		r.printf("data parallel: %d ranks × %d images = batch %d; %s\n", n, c.Batch/n, c.Batch, bn)
	}
	r.printf("run %s: HRNetV2-%s (%s), %d classes, %d training / %d evaluation images, %d iterations\n",
		r.dir, c.Model, c.Resize, len(r.classes), r.train.Len(), r.val.Len(), c.Iters)
	r.tracker.Log = func(msg string) { r.writeLog(map[string]any{"iter": r.state.Iter, "size_change": msg}) }
	r.observeSizes()
	return nil
}

// build opens the data and builds the model: from the checkpoint (rank 0) or, for a new run,
// in a new run directory (rank 0) from the seed or the pretrained weights. Other ranks get the
// weights from rank 0 (shareModel).
func (r *Run) build(ck *checkpoint.Checkpoint) error {
	data, c, err := r.Cfg.Open()
	if err != nil {
		return err
	}
	// Every setting the run uses is explicit in config.json and the checkpoints, so that eval
	// and segpredict reuse the dataset's test protocol.
	c = c.WithDefaults()
	r.Cfg, r.state.Config = c, c
	train, val := data.Train, data.Val
	r.train, r.val, r.classes = train, val, train.Classes()
	if r.model, r.net, err = segmentation.NewModel(c, len(r.classes)); err != nil {
		return err
	}
	switch {
	case !r.ranks.lead() && r.resumed: // rank 0 restored the checkpoint
	case !r.ranks.lead():
		r.state = checkpoint.State{BestMIoU: -1, Config: c, Classes: r.classes, Palette: data.Palette}
	case ck != nil:
		if err := ck.Restore(r.net.Params); err != nil {
			return err
		}
		if len(r.Override) > 0 { // config.json says what the run now is
			if err := atomicfile.WriteJSON(filepath.Join(r.dir, "config.json"), c); err != nil {
				return err
			}
		}
	default:
		r.state = checkpoint.State{BestMIoU: -1, Config: c, Classes: r.classes, Palette: data.Palette}
		if r.dir != "" { // started again (restart): config.json says what the run now is
			if err := atomicfile.WriteJSON(filepath.Join(r.dir, "config.json"), c); err != nil {
				return err
			}
		} else if err := r.newRunDir(); err != nil {
			return err
		}
		if c.Pretrained != "" {
			if err := r.loadPretrained(c.Pretrained); err != nil {
				return err
			}
		}
	}
	if r.state.Palette == nil {
		r.state.Palette = data.Palette
	}
	r.data = data
	return nil
}

// printData says which dataset the run reads and how.
func (r *Run) printData(d segmentation.Data) {
	c := r.Cfg
	if c.Data == "" {
		return
	}
	how := "--dataset " + c.Dataset
	if d.Found != "" {
		how = "recognised by " + d.Found
	}
	r.printf("data: %s (%s)\n", d.Title, how)
	for _, n := range d.Notes {
		r.printf("  %s\n", n)
	}
	h, w := c.CropSize()
	r.printf("  crops %dx%d of images rescaled to %dx%d × %g–%g; evaluation: %s at %dx%d\n",
		h, w, c.Scale[0], c.Scale[1], c.RatioRange[0], c.RatioRange[1], c.EvalMode, c.TestScale[0], c.TestScale[1])
}

// close releases what setup opened.
func (r *Run) close() {
	if r.stream != nil {
		r.stream.Close()
	}
	if r.logFile != nil {
		r.logFile.Close()
	}
}

// loop trains up to the end (or StopAt), checkpointing and evaluating on schedule; an
// interrupt ends it after the step (or in the evaluation, which is then skipped) with a
// checkpoint and ErrInterrupted.
func (r *Run) loop() error {
	c := r.Cfg
	stop := c.Iters
	if r.StopAt > 0 {
		stop = min(stop, r.StopAt)
	}
	r.meter = meter{start: time.Now(), startIter: r.state.Iter}
	for r.state.Iter < stop {
		losses, err := r.step()
		if err != nil {
			return err
		}
		r.report(losses)
		last := r.state.Iter == c.Iters
		// The checkpoint comes before the evaluation: an evaluation that fails (a bad file) or is
		// interrupted loses none of the training. Evaluating reads the weights only, so the order
		// changes no number.
		scheduled := (c.CkptEvery > 0 && r.state.Iter%c.CkptEvery == 0) || last || r.state.Iter == stop
		if scheduled {
			if err := r.checkpoint(); err != nil {
				return err
			}
		}
		evalSkipped := false
		if (c.EvalEvery > 0 && r.state.Iter%c.EvalEvery == 0) || last {
			_, err := r.evaluate()
			if evalSkipped = errors.Is(err, infer.ErrStopped); err != nil && !evalSkipped {
				return err
			}
		}
		// After the scheduled checkpoint: a rank that fails later finds it whole.
		interrupted, err := r.stopRequested()
		if err != nil {
			return err
		}
		if interrupted && !scheduled {
			if err := r.checkpoint(); err != nil {
				return err
			}
		}
		if interrupted && (!last || evalSkipped) {
			if evalSkipped {
				r.printf("\ninterrupted at iteration %d: its evaluation skipped; checkpoint saved\n", r.state.Iter)
				return r.ranks.shared(fmt.Errorf("%w at iteration %d, its evaluation skipped: continue with --resume %s", ErrInterrupted, r.state.Iter, r.dir))
			}
			r.printf("\ninterrupted at iteration %d; checkpoint saved\n", r.state.Iter)
			return r.ranks.shared(fmt.Errorf("%w at iteration %d: continue with --resume %s", ErrInterrupted, r.state.Iter, r.dir))
		}
	}
	return nil
}

// step trains on the next batch at the scheduled learning rate: forward, backward, the SGD
// step and the alphas' clamp (a non-finite batch stops the run, or with SkipNaN leaves the
// weights as they are), then advances the iteration and the data position.
func (r *Run) step() (nn.Losses, error) {
	c, it := r.Cfg, r.state.Iter
	h, w := c.CropSize()
	r.opt.LR = c.Schedule(it)
	if r.BeforeStep != nil {
		r.BeforeStep(it + 1)
	}
	b, err := r.stream.Next()
	if err != nil {
		return nn.Losses{}, err
	}
	losses, bad, err := Step{Net: r.net, Model: r.model, Opt: r.opt, H: h, W: w}.Train(b.X, b.Labels)
	if err != nil {
		return losses, fmt.Errorf("iteration %d: %w", it+1, err)
	}
	switch {
	case bad == "":
	case c.SkipNaN: // the iteration counts, the weights stay
		r.printf("iteration %d: %s; batch skipped\n", it+1, bad)
		r.writeLog(map[string]any{"iter": it + 1, "skipped_batch": bad})
	default:
		// The ranks sum the gradients first: every rank stops here.
		return losses, r.ranks.shared(fmt.Errorf("iteration %d: %s; stopped, the last checkpoint is kept (lower --lr, or --skip-nan)", it+1, bad))
	}
	r.state.Iter++
	r.state.Epoch, r.state.Batch = b.Epoch, b.Index+1
	return losses, nil
}

// report logs the sizes' changes, moves the progress bar and, every LogEvery iterations,
// writes a log entry with the mean loss since the previous one.
func (r *Run) report(losses nn.Losses) {
	c, m := r.Cfg, &r.meter
	m.images += c.Batch
	m.lossSum += float64(losses.Total)
	m.lossN++
	r.observeSizes()
	if r.progress != nil {
		desc := fmt.Sprintf("loss %.3f lr %.2g %.0f img/s", losses.Total, r.opt.LR, float64(c.Batch*(r.state.Iter-m.startIter))/time.Since(m.start).Seconds())
		if r.model.Resize == hrnet.DynOPool {
			desc += fmt.Sprintf(" GMACs %.3f sizes %v", r.gmacs(), r.branchSizes())
		}
		r.progress.Describe(desc)
		r.progress.Set(r.state.Iter)
	}
	if r.state.Iter%max(c.LogEvery, 1) != 0 {
		return
	}
	now := time.Now()
	ips := 0.0
	if !m.lastLog.IsZero() {
		ips = float64(m.images) / now.Sub(m.lastLog).Seconds()
	}
	m.lastLog, m.images = now, 0
	entry := map[string]any{"iter": r.state.Iter, "loss": m.lossSum / float64(m.lossN), "ce": losses.CE, "lr": r.opt.LR,
		"images_per_s": math.Round(ips*100) / 100, "gmacs": r.gmacs(), "branch_sizes": r.branchSizes()}
	m.lossSum, m.lossN = 0, 0
	r.writeLog(entry)
	if r.NoBar {
		r.printf("iter %d/%d loss %.4f lr %.3g %.1f img/s GMACs %.3f sizes %v\n", r.state.Iter, c.Iters,
			entry["loss"], r.opt.LR, ips, entry["gmacs"], entry["branch_sizes"])
	}
}

// finish closes the progress bar, writes metrics.json when the run reached its end, lists the
// skipped samples and returns the summary.
func (r *Run) finish(start time.Time) (Summary, error) {
	if r.progress != nil {
		r.progress.Finish()
		fmt.Fprintln(r.Out)
	}
	sum := Summary{Dir: r.dir, Iters: r.state.Iter, Crop: r.Cfg.Crop, CropW: r.Cfg.CropW, BestMIoU: r.state.BestMIoU, BestIter: r.state.BestIter,
		Sizes: r.branchSizes(), GMACs: r.gmacs(), Seconds: time.Since(start).Seconds()}
	done := r.state.Iter == r.Cfg.Iters
	if done {
		res, err := r.finalResult()
		if errors.Is(err, infer.ErrStopped) {
			r.printf("\ninterrupted during the evaluation at iteration %d: skipped\n", r.state.Iter)
			return sum, r.ranks.shared(fmt.Errorf("%w during the evaluation at iteration %d (skipped): continue with --resume %s", ErrInterrupted, r.state.Iter, r.dir))
		}
		if err != nil {
			return sum, err
		}
		sum.Final = res
	}
	// A collective: here, after the final evaluation (whose bad samples it lists), before
	// anything that may end one rank early.
	skipped, err := r.skippedSamples()
	if err != nil {
		return sum, err
	}
	sum.Skipped = skipped
	if done {
		res := sum.Final
		if r.ranks.lead() {
			if err := atomicfile.WriteJSON(filepath.Join(r.dir, "metrics.json"), map[string]any{
				"mIoU": res.MIoU, "aAcc": res.AAcc, "mAcc": res.MAcc, "metrics": res, "best_miou": sum.BestMIoU,
				"best_iter": sum.BestIter, "iters": sum.Iters, "gmacs": sum.GMACs, "branch_sizes": sum.Sizes,
			}); err != nil {
				return sum, err
			}
		}
	}
	if len(skipped) > 0 {
		r.printf("skipped %d bad samples:\n  %s\n", len(skipped), strings.Join(skipped, "\n  "))
	}
	return sum, nil
}

func (r *Run) newRunDir() error {
	c := r.Cfg
	name := c.Name
	if name == "" {
		name = fmt.Sprintf("%s_%s_%s", time.Now().Format("20060102-150405"), c.Model, c.Resize)
	}
	r.dir = filepath.Join(c.Out, name)
	if _, err := os.Stat(r.dir); err == nil {
		if _, err := checkpoint.Latest(r.dir); errors.Is(err, checkpoint.ErrNoCheckpoint) {
			return fmt.Errorf("run directory %s exists, without a checkpoint: --resume %s starts it again from iteration 0 with its settings; or pick another --name", r.dir, r.dir)
		}
		return fmt.Errorf("run directory %s exists: pick another --name, or --resume it", r.dir)
	}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return err
	}
	if err := atomicfile.WriteJSON(filepath.Join(r.dir, "config.json"), c); err != nil {
		return err
	}
	latest := filepath.Join(c.Out, "latest")
	os.Remove(latest)
	return os.Symlink(name, latest)
}

func (r *Run) loadPretrained(path string) error {
	return checkpoint.LoadPretrained(r.net.Params, path, r.Cfg.Model, r.printf)
}

// openLog opens train.jsonl for appending, first dropping entries past the checkpoint (left by
// an interrupted run), so a resumed log reads like an uninterrupted one; a run started again
// from iteration 0 keeps none.
func (r *Run) openLog() error {
	path := filepath.Join(r.dir, "train.jsonl")
	var keep []string
	if raw, err := os.ReadFile(path); err == nil && r.state.Iter > 0 {
		for _, line := range strings.Split(string(raw), "\n") {
			var e struct{ Iter int }
			if json.Unmarshal([]byte(line), &e) == nil && e.Iter <= r.state.Iter && line != "" {
				keep = append(keep, line)
			}
		}
	}
	content := strings.Join(keep, "\n")
	if content != "" {
		content += "\n"
	}
	if err := atomicfile.WriteFile(path, []byte(content), 0o644); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o644)
	r.logFile = f
	return err
}

func (r *Run) writeLog(entry map[string]any) {
	if r.logFile == nil { // not rank 0
		return
	}
	b, _ := json.Marshal(entry)
	r.logFile.Write(append(b, '\n'))
}

func (r *Run) gmacs() float64 {
	h, w := r.Cfg.CropSize()
	return math.Round(float64(r.model.MACs(r.net.Params, h, w))/1e6) / 1e3
}

func (r *Run) branchSizes() [][2]int {
	h, w := r.Cfg.CropSize()
	s := r.model.LevelSizes(r.net.Params, h, w)
	return [][2]int{s[2], s[3], s[4], s[5]}
}

// observeSizes logs every DynOPool size change.
func (r *Run) observeSizes() {
	if r.model.Resize != hrnet.DynOPool {
		return
	}
	h, w := r.Cfg.CropSize()
	s := r.model.LevelSizes(r.net.Params, h, w)
	for l := 1; l < len(s); l++ {
		r.tracker.Observe("level "+hrnet.LevelNames[l], s[l][0], s[l][1])
	}
}

// evaluate runs the evaluation split, prints the table and keeps the best checkpoint. The
// Interrupt stops it between images (infer.ErrStopped on every rank); with SkipBad, samples that
// fail to load are left out and listed.
func (r *Run) evaluate() (metrics.Result, error) {
	val, index := r.val, func(i int) int { return i }
	if n := r.Comm.Size(); n > 1 { // image i on rank i mod n; the confusion counts are summed
		var idx []int
		for i := r.Comm.Rank(); i < r.val.Len(); i += n {
			idx = append(idx, i)
		}
		val, index = segmentation.Subset{Dataset: r.val, Idx: idx}, func(i int) int { return idx[i] }
	}
	hooks := infer.Hooks{Stop: func(i int) bool {
		if r.evalImage != nil {
			r.evalImage(i)
		}
		return r.Interrupt != nil && r.Interrupt.Load()
	}}
	if r.Cfg.SkipBad {
		hooks.Skip = func(i int, err error) { r.skipVal(index(i), err) }
	}
	conf, err := infer.ForConfig(r.Cfg).EvaluateWith(r.net, val, nil, hooks)
	stopped := errors.Is(err, infer.ErrStopped)
	if err != nil && !stopped {
		return metrics.Result{}, err
	}
	// One rank stopped (its Ctrl-C came first): every rank drops this evaluation.
	if stopped, err = r.ranks.anyRank(stopped); err != nil {
		return metrics.Result{}, err
	}
	if stopped {
		return metrics.Result{}, infer.ErrStopped
	}
	if err := r.Comm.SumInt64(conf.Counts()); err != nil {
		return metrics.Result{}, err
	}
	res := conf.Result(r.classes)
	r.printf("\niteration %d: mIoU %.2f aAcc %.2f mAcc %.2f, GMACs %.3f, branch sizes %v\n%s", r.state.Iter,
		100*res.MIoU, 100*res.AAcc, 100*res.MAcc, r.gmacs(), r.branchSizes(), res.Table())
	r.writeLog(map[string]any{"iter": r.state.Iter, "val_miou": res.MIoU, "val_aacc": res.AAcc, "val_macc": res.MAcc, "gmacs": r.gmacs()})
	if r.ranks.lead() {
		if err := WritePlots(r.dir, r.model.Resize == hrnet.DynOPool); err != nil {
			r.printf("plots: %v\n", err) // a plot is not worth stopping a run for
		}
	}
	if res.MIoU > r.state.BestMIoU {
		r.state.BestMIoU, r.state.BestIter = res.MIoU, r.state.Iter
		if !r.ranks.lead() {
			r.last = &res
			return res, nil
		}
		if err := checkpoint.SaveCheckpoint(filepath.Join(r.dir, "best.safetensors"), r.net.Params, r.state); err != nil {
			return res, err
		}
		// This iteration's checkpoint, written before the evaluation, gets the new best too: a
		// resume from it must not take a worse model for the best (one more write, only when
		// the best improves).
		if r.written == r.state.Iter {
			if err := checkpoint.SaveCheckpoint(r.checkpointPath(), r.net.Params, r.state); err != nil {
				return res, err
			}
		}
	}
	r.last = &res
	return res, nil
}

// skipVal leaves evaluation sample i (of the whole split) out, saying so the first time.
func (r *Run) skipVal(i int, err error) {
	if r.valSeen[i] {
		return
	}
	if r.valSeen == nil {
		r.valSeen = map[int]bool{}
	}
	r.valSeen[i] = true
	s := dataset.Skip{Index: i, What: fmt.Sprintf("%s: %v (evaluation)", r.val.ID(i), err)}
	r.valSkipped = append(r.valSkipped, s)
	r.printf("skipped %s\n", s.What)
}

// finalResult is the evaluation at the last iteration (done by the loop).
func (r *Run) finalResult() (metrics.Result, error) {
	if r.last != nil {
		return *r.last, nil
	}
	return r.evaluate()
}

// checkpoint writes ckpt_iter_<n>.safetensors and keeps the newest Keep of them.
func (r *Run) checkpoint() error {
	if err := r.weightsAgree(); err != nil || !r.ranks.lead() {
		return err
	}
	if err := checkpoint.SaveCheckpoint(r.checkpointPath(), r.net.Params, r.state); err != nil {
		return err
	}
	r.written = r.state.Iter
	files, _ := filepath.Glob(filepath.Join(r.dir, "ckpt_iter_*.safetensors"))
	slices.Sort(files)
	for len(files) > max(r.Cfg.Keep, 1) {
		if err := os.Remove(files[0]); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		files = files[1:]
	}
	return nil
}

// checkpointPath is the checkpoint of the current iteration.
func (r *Run) checkpointPath() string {
	return filepath.Join(r.dir, fmt.Sprintf("ckpt_iter_%07d.safetensors", r.state.Iter))
}
