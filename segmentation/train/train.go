// Package train runs a training: its setup, its loop and step, its ranks (data-parallel
// processes, and how each ends), its log, plots and checkpoints.
package train

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/segkit/segkit/dataset"
	"github.com/segkit/segkit/dynopool"
	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/internal/atomicfile"
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

	// Setup's (setup.go): the ranks, the run directory, the data, the model, the optimiser and
	// the state a checkpoint records; the loop and the step (train.go) use them.
	ranks   Ranks
	resumed bool // continuing a checkpoint (which rank 0 read)
	dir     string
	data    segmentation.Data
	classes []string
	train   dataset.Dataset
	val     dataset.Dataset
	loader  *dataset.Loader
	stream  *dataset.Stream
	model   *hrnet.Model
	net     *nn.Net
	opt     *nn.SGD
	state   checkpoint.State

	// The hooks after each step, in the order loop states. Report (output.go):
	logFile  *os.File
	progress *progressbar.ProgressBar
	meter    meter
	tracker  dynopool.Tracker // the sizes' changes
	// Checkpoint (output.go):
	written int // the iteration of the last checkpoint this run wrote (rank 0)
	// Evaluate (evaluate.go):
	last       *metrics.Result // the latest evaluation
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

// loop trains up to the end (or StopAt). After each step come, in this order (the one place
// it is said):
//
//  1. report: the sizes' changes (observeSizes), the progress bar, and every LogEvery
//     iterations a log line;
//  2. checkpoint, when scheduled (every CkptEvery, the last iteration, StopAt): before the
//     evaluation, so that an evaluation that fails (a bad file) or is interrupted loses none of
//     the training (evaluating reads the weights only, so the order changes no number);
//  3. evaluate, when scheduled (every EvalEvery, the last iteration): the table, the plots and
//     the best checkpoint;
//  4. interrupt: any rank's Interrupt ends the run here, with a checkpoint (step 2's, or one
//     written now) and ErrInterrupted; one during the evaluation skips it.
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
	r.opt.Groups[dynopool.Group] = c.AlphaGroup(it)
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
