package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/segkit/segkit/cmd/internal/cli"
	"github.com/segkit/segkit/dataset"
	"github.com/segkit/segkit/internal/kernels"
	"github.com/segkit/segkit/parallel"
	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/segmentation/train"
)

// trainFlags binds the training flags to a Config; only the flags a user sets override the
// defaults (the demo's or mmseg's) and the config file.
type trainFlags struct {
	cfg        segmentation.Config
	configFile string
	resume     string
	noBar      bool
	threads    int           // kernel threads of this process (0: all cores it may use)
	timeout    time.Duration // a data-parallel rank's longest wait for the others
	set        map[string]func(dst, src *segmentation.Config)
}

func addTrainFlags(fs *pflag.FlagSet) *trainFlags {
	t := &trainFlags{cfg: segmentation.DefaultConfig(), set: map[string]func(dst, src *segmentation.Config){}}
	c := &t.cfg
	str := func(p *string, name, usage string, field func(*segmentation.Config) *string) {
		fs.StringVar(p, name, *p, usage)
		t.set[name] = func(dst, src *segmentation.Config) { *field(dst) = *field(src) }
	}
	num := func(p *int, name, usage string, field func(*segmentation.Config) *int) {
		fs.IntVar(p, name, *p, usage)
		t.set[name] = func(dst, src *segmentation.Config) { *field(dst) = *field(src) }
	}
	flt := func(p *float64, name, usage string, field func(*segmentation.Config) *float64) {
		fs.Float64Var(p, name, *p, usage)
		t.set[name] = func(dst, src *segmentation.Config) { *field(dst) = *field(src) }
	}
	str(&c.Data, "data", "dataset root, its layout recognised by its files: VOC 2012, Cityscapes, ADE20K, Pascal Context, CamVid (SegNet's) or a folder dataset (default: the built-in demo dataset)", func(c *segmentation.Config) *string { return &c.Data })
	str(&c.Dataset, "dataset", "the dataset's layout, instead of recognising it: "+strings.Join(dataset.Names(), ", ")+"; its recipe gives the defaults (segtrain recipe NAME)", func(c *segmentation.Config) *string { return &c.Dataset })
	str(&c.Split, "split", "training split", func(c *segmentation.Config) *string { return &c.Split })
	str(&c.ValSplit, "val-split", "evaluation split", func(c *segmentation.Config) *string { return &c.ValSplit })
	str(&c.Model, "model", "HRNet config: w18_small_v1, w18_small_v2, w18, w32, w48", func(c *segmentation.Config) *string { return &c.Model })
	str(&c.Resize, "resize", "fixed or dynopool", func(c *segmentation.Config) *string { return &c.Resize })
	custom := func(v pflag.Value, name, usage string, fields func(dst, src *segmentation.Config)) {
		fs.Var(v, name, usage)
		t.set[name] = fields
	}
	custom(cli.CropValue{C: c}, "crop", "training crop H or HxW (a crop other than the recipe's keeps its scales in proportion)", func(dst, src *segmentation.Config) {
		dst.Crop, dst.CropW = src.Crop, src.CropW
	})
	custom(cli.ScaleValue{P: &c.Scale}, "scale", "rescale target LONGxSHORT (fit, keeping the aspect), times a random ratio", func(dst, src *segmentation.Config) { dst.Scale = src.Scale })
	custom(cli.RatioValue{P: &c.RatioRange}, "ratio-range", "random ratio range MIN,MAX of the scale", func(dst, src *segmentation.Config) { dst.RatioRange = src.RatioRange })
	flt(&c.CatMaxRatio, "cat-max-ratio", "retry a crop (up to 10 times) while one class covers this share of it (1: no retries)", func(c *segmentation.Config) *float64 { return &c.CatMaxRatio })
	fs.BoolVar(&c.NoPhotometric, "no-photometric", false, "no photometric distortion (brightness, contrast, saturation, hue)")
	t.set["no-photometric"] = func(dst, src *segmentation.Config) { dst.NoPhotometric = src.NoPhotometric }
	custom(cli.ScaleValue{P: &c.TestScale}, "test-scale", "evaluation rescale LONGxSHORT", func(dst, src *segmentation.Config) { dst.TestScale = src.TestScale })
	str(&c.EvalMode, "eval-mode", "evaluation: whole (whole images) or slide (windows of the crop, 2/3 overlap)", func(c *segmentation.Config) *string { return &c.EvalMode })
	custom(cli.IgnoreValue{P: &c.IgnoreIndex}, "ignore-index", "mask value of void pixels (default: the dataset's: 255, CamVid 11)", func(dst, src *segmentation.Config) { dst.IgnoreIndex = src.IgnoreIndex })
	fs.BoolVar(&c.ReduceZero, "reduce-zero-label", false, "mask value 0 is void and k is class k−1 (always for ADE20K and Pascal Context 59)")
	t.set["reduce-zero-label"] = func(dst, src *segmentation.Config) { dst.ReduceZero = src.ReduceZero }
	num(&c.Batch, "batch", "batch size (at least 2: batch norm)", func(c *segmentation.Config) *int { return &c.Batch })
	num(&c.Iters, "iters", "training iterations", func(c *segmentation.Config) *int { return &c.Iters })
	flt(&c.LR, "lr", "learning rate", func(c *segmentation.Config) *float64 { return &c.LR })
	flt(&c.Momentum, "momentum", "SGD momentum", func(c *segmentation.Config) *float64 { return &c.Momentum })
	flt(&c.WeightDec, "weight-decay", "weight decay (not on the alphas)", func(c *segmentation.Config) *float64 { return &c.WeightDec })
	flt(&c.PolyPower, "poly-power", "poly schedule power", func(c *segmentation.Config) *float64 { return &c.PolyPower })
	flt(&c.MinLR, "min-lr", "poly schedule's final learning rate", func(c *segmentation.Config) *float64 { return &c.MinLR })
	num(&c.Warmup, "warmup", "linear warm-up iterations", func(c *segmentation.Config) *int { return &c.Warmup })
	flt(&c.AlphaLR, "alpha-lr", "learning rate of the DynOPool alphas", func(c *segmentation.Config) *float64 { return &c.AlphaLR })
	flt(&c.GMACsW, "gmacs-weight", "weight of the GMACs loss (0: off)", func(c *segmentation.Config) *float64 { return &c.GMACsW })
	flt(&c.GMACsB, "gmacs-budget", "GMACs budget as a fraction of the fixed model's (hinge); 0: the paper's plain loss", func(c *segmentation.Config) *float64 { return &c.GMACsB })
	num(&c.EvalEvery, "eval-every", "evaluate every N iterations (and at the end)", func(c *segmentation.Config) *int { return &c.EvalEvery })
	num(&c.CkptEvery, "ckpt-every", "checkpoint every N iterations (and at the end)", func(c *segmentation.Config) *int { return &c.CkptEvery })
	num(&c.Keep, "keep", "checkpoints kept (besides the best)", func(c *segmentation.Config) *int { return &c.Keep })
	str(&c.Out, "out", "directory of the runs", func(c *segmentation.Config) *string { return &c.Out })
	str(&c.Name, "name", "run name (default: date, model, resizing)", func(c *segmentation.Config) *string { return &c.Name })
	str(&c.Pretrained, "pretrained", "weights to start from (.pth or .safetensors; the head is skipped if its classes differ)", func(c *segmentation.Config) *string { return &c.Pretrained })
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "random seed (data order, augmentation, initialisation)")
	t.set["seed"] = func(dst, src *segmentation.Config) { dst.Seed = src.Seed }
	num(&c.Workers, "workers", "data loading goroutines", func(c *segmentation.Config) *int { return &c.Workers })
	num(&c.LogEvery, "log-every", "log every N iterations", func(c *segmentation.Config) *int { return &c.LogEvery })
	fs.BoolVar(&c.SkipBad, "skip-bad", false, "skip samples that fail to load (listed at the end)")
	t.set["skip-bad"] = func(dst, src *segmentation.Config) { dst.SkipBad = src.SkipBad }
	fs.BoolVar(&c.SkipNaN, "skip-nan", false, "skip a batch whose loss or gradients are NaN/Inf instead of stopping")
	t.set["skip-nan"] = func(dst, src *segmentation.Config) { dst.SkipNaN = src.SkipNaN }
	fs.StringVar(&t.configFile, "config", "", "YAML or JSON file of settings (flags override it)")
	fs.StringVar(&t.resume, "resume", "", "continue a run: its directory or a checkpoint")
	fs.BoolVar(&t.noBar, "no-bar", false, "print log lines instead of a progress bar")
	fs.BoolVar(&c.NoSyncBN, "no-sync-bn", false, "under mpirun/srun with several ranks: batch norm over each rank's share, not the whole batch (SyncBN)")
	t.set["no-sync-bn"] = func(dst, src *segmentation.Config) { dst.NoSyncBN = src.NoSyncBN }
	fs.IntVar(&t.threads, "threads", 0, "kernel threads of this process (default: every core it may run on)")
	fs.DurationVar(&t.timeout, "timeout", 10*time.Minute, "under mpirun/srun: how long a rank waits for the others before ending the job with an error")
	return t
}

// config returns the settings: the demo's, or with a dataset (from --data, --dataset or the
// config file) its recipe; then the config file, then the flags the user set. A crop other than
// the recipe's keeps the recipe's scales in proportion unless they are given. The string says
// which layout --data was recognised as and whose recipe applies.
func (t *trainFlags) config(fs *pflag.FlagSet) (segmentation.Config, string, error) {
	var file segmentation.Config
	if t.configFile != "" {
		var err error
		if file, err = segmentation.LoadConfig(t.configFile, segmentation.Config{}); err != nil {
			return file, "", usageError{Err: fmt.Errorf("--config: %w", err)}
		}
	}
	data, name := file.Data, file.Dataset
	if fs.Changed("data") {
		data = t.cfg.Data
	}
	if fs.Changed("dataset") {
		name = t.cfg.Dataset
	}
	base, _, said, err := recipeBase(data, name)
	if err != nil {
		return base, "", err
	}
	cfg := base
	if t.configFile != "" {
		if cfg, err = segmentation.LoadConfig(t.configFile, cfg); err != nil {
			return cfg, "", usageError{Err: fmt.Errorf("--config: %w", err)}
		}
	}
	fs.Visit(func(f *pflag.Flag) {
		if set, ok := t.set[f.Name]; ok {
			set(&cfg, &t.cfg)
		}
	})
	scaled := base.ScaleCrop(cfg.CropSize())
	if !fs.Changed("scale") && file.Scale == [2]int{} {
		cfg.Scale = scaled.Scale
	}
	if !fs.Changed("test-scale") && file.TestScale == [2]int{} {
		cfg.TestScale = scaled.TestScale
	}
	if err := cfg.Validate(); err != nil {
		return cfg, "", usageError{Err: err}
	}
	return cfg, said, nil
}

// recipeBase returns the defaults for a dataset root and layout name: the demo's without
// either, else the layout's recipe (the layout recognised by data's files when name is empty:
// the recipe then leaves the dataset for the run to recognise and say), with lines saying
// which layout was recognised and whose recipe it is.
func recipeBase(data, name string) (cfg segmentation.Config, recognised, recipe string, err error) {
	if data == "" && name == "" {
		return segmentation.DemoConfig(), "", "", nil
	}
	detected := name == ""
	if detected {
		found, err := dataset.Detect(data)
		if err != nil {
			return cfg, "", "", usageError{Err: fmt.Errorf("--data: %w", err)}
		}
		name, recognised = found.Name, fmt.Sprintf("--data %s: %s recognised by %s\n", data, found.Name, found.By)
	}
	r, err := segmentation.RecipeFor(name)
	if err != nil {
		return cfg, "", "", usageError{Err: fmt.Errorf("--dataset: %w", err)}
	}
	cfg = r.Config
	if detected {
		cfg.Dataset = ""
	}
	return cfg, recognised, fmt.Sprintf("recipe of %s: %s ('segtrain recipe %s' shows it)\n", name, r.Source, name), nil
}

// resumeOverrides returns the settings (Config keys) the user set for a resumed run; a flag
// that would change the run is refused, naming it, not silently dropped.
func (t *trainFlags) resumeOverrides(fs *pflag.FlagSet) ([]string, error) {
	var keys, refused []string
	fs.Visit(func(f *pflag.Flag) {
		key := strings.ReplaceAll(f.Name, "-", "_")
		switch {
		case f.Name == "resume" || f.Name == "no-bar" || f.Name == "threads" || f.Name == "timeout":
		case t.set[f.Name] != nil && slices.Contains(segmentation.ResumeSettings, key):
			keys = append(keys, key)
		default:
			refused = append(refused, "--"+f.Name)
		}
	})
	if len(refused) > 0 {
		return nil, usageError{Err: fmt.Errorf("%s cannot change when resuming: the run keeps its checkpoint's settings (with --resume only %s may be given)",
			strings.Join(refused, ", "), segmentation.ResumeFlags())}
	}
	return keys, nil
}

// applyThreads sets this process's kernel threads from --threads.
func (t *trainFlags) applyThreads() error {
	if t.threads < 0 {
		return usageError{Err: fmt.Errorf("--threads %d: at least 1 (0: every core)", t.threads)}
	}
	if t.threads > 0 {
		runtime.GOMAXPROCS(t.threads)
		kernels.Workers = t.threads
	}
	return nil
}

// beforeTrain, when set (by tests), readies each run before it trains: the MPI test injects
// its faults there (Run.BeforeStep); the product has no fault hook.
var beforeTrain func(*train.Run)

func runTraining(cmd *cobra.Command, t *trainFlags) error {
	if err := t.applyThreads(); err != nil {
		return err
	}
	run := &train.Run{Out: cmd.OutOrStdout(), Resume: t.resume, NoBar: t.noBar || !cli.IsTerminal(cmd.OutOrStdout()),
		Interrupt: &atomic.Bool{}}
	var err error
	if t.resume != "" {
		// The checkpoint holds the settings; Cfg only carries the flags that may override them.
		run.Cfg = t.cfg
		if run.Override, err = t.resumeOverrides(cmd.Flags()); err != nil {
			return err
		}
	} else {
		var said string
		if run.Cfg, said, err = t.config(cmd.Flags()); err != nil {
			return err
		}
		fmt.Fprint(cmd.OutOrStdout(), said)
	}
	// Several ranks (mpirun, srun): this process trains its share; without a launcher, alone.
	comm, err := parallel.Open(parallel.Options{Timeout: t.timeout})
	if err != nil {
		return err
	}
	run.Comm = comm
	if comm.Size() > 1 {
		if cores := onlineCPUs(); runtime.GOMAXPROCS(0) == 1 && cores > 1 && t.threads == 0 {
			fmt.Fprintf(cmd.ErrOrStderr(), "segtrain: rank %d/%d runs 1 thread on a %d-core machine: the launcher bound it to one core "+
				"(mpirun: --bind-to none, or --map-by slot:PE=<cores per rank>)\n", comm.Rank(), comm.Size(), cores)
		}
	}
	if beforeTrain != nil {
		beforeTrain(run)
	}
	// Ctrl-C, SIGTERM or SIGUSR1 (mpirun forwards it to every rank; Slurm's --signal sends it
	// before the time limit): finish the step, write a checkpoint, exit; a second one exits at once.
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM, syscall.SIGUSR1)
	defer func() { signal.Stop(signals); close(signals) }()
	go func() {
		if _, ok := <-signals; !ok {
			return
		}
		run.Interrupt.Store(true)
		fmt.Fprintln(cmd.ErrOrStderr(), "\nsegtrain: stopping after this step (or skipping the evaluation under way) with a checkpoint (again to quit at once)")
		if _, ok := <-signals; ok {
			fmt.Fprintln(cmd.ErrOrStderr(), "segtrain: quit without a checkpoint")
			os.Exit(130)
		}
	}()
	sum, err := run.Train()
	if err := cli.Usage(train.Ranks{Comm: comm}.End(err, cmd.ErrOrStderr(), "segtrain")); err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "\ndone in %.0f s: %d iterations, final mIoU %.2f (aAcc %.2f, mAcc %.2f), best %.2f at iteration %d\n",
		sum.Seconds, sum.Iters, 100*sum.Final.MIoU, 100*sum.Final.AAcc, 100*sum.Final.MAcc, 100*sum.BestMIoU, sum.BestIter)
	crop := fmt.Sprint(sum.Crop)
	if sum.CropW != 0 && sum.CropW != sum.Crop {
		crop = fmt.Sprintf("%dx%d", sum.Crop, sum.CropW)
	}
	fmt.Fprintf(out, "branch sizes at the %s crop: %v, %.3f GMACs per image\nrun directory: %s\n", crop, sum.Sizes, sum.GMACs, sum.Dir)
	return nil
}

// onlineCPUs is the machine's number of cores (runtime.NumCPU is the cores this process may
// use, which a launcher's binding narrows).
func onlineCPUs() int {
	raw, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return runtime.NumCPU()
	}
	n := 0
	for _, part := range strings.Split(strings.TrimSpace(string(raw)), ",") {
		lo, hi, found := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(lo)
		b := a
		var err2 error
		if found {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil {
			return runtime.NumCPU()
		}
		n += b - a + 1
	}
	return n
}
