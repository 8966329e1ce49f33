package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/segkit/segkit/dataset"
	"github.com/segkit/segkit/dynopool"
	"github.com/segkit/segkit/internal/atomicfile"
	"github.com/segkit/segkit/internal/kernels"
	"github.com/segkit/segkit/nn"
	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/segmentation/checkpoint"
)

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
		Groups: map[string]nn.Group{dynopool.Group: c.AlphaGroup(r.state.Iter)}}
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

// close releases what setup opened.
func (r *Run) close() {
	if r.stream != nil {
		r.stream.Close()
	}
	if r.logFile != nil {
		r.logFile.Close()
	}
}
