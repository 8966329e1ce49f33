package cli

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/segkit/segkit/dataset"
	"github.com/segkit/segkit/internal/kernels"
	"github.com/segkit/segkit/segmentation"
	"github.com/spf13/pflag"
)

// TrainFlags binds the training flags to a Config; only the flags a user sets override the
// defaults (the demo's or mmseg's) and the config file (segmentation.Resolve).
type TrainFlags struct {
	Cfg        segmentation.Config
	ConfigFile string
	Resume     string
	NoBar      bool
	Threads    int           // kernel threads of this process (0: all cores it may use)
	Timeout    time.Duration // a data-parallel rank's longest wait for the others
	fs         *pflag.FlagSet
	set        map[string]bool // the flags of settings
}

// AddTrainFlags adds the training flags to fs.
func AddTrainFlags(fs *pflag.FlagSet) *TrainFlags {
	t := &TrainFlags{Cfg: segmentation.DefaultConfig(), fs: fs, set: map[string]bool{}}
	c := &t.Cfg
	str := func(p *string, name, usage string) {
		fs.StringVar(p, name, *p, usage)
		t.set[name] = true
	}
	num := func(p *int, name, usage string) {
		fs.IntVar(p, name, *p, usage)
		t.set[name] = true
	}
	flt := func(p *float64, name, usage string) {
		fs.Float64Var(p, name, *p, usage)
		t.set[name] = true
	}
	str(&c.Data, "data", "dataset root, its layout recognised by its files: VOC 2012, Cityscapes, ADE20K, Pascal Context, CamVid (SegNet's) or a folder dataset (default: the built-in demo dataset)")
	str(&c.Dataset, "dataset", "the dataset's layout, instead of recognising it: "+strings.Join(dataset.Names(), ", ")+"; its recipe gives the defaults (segtrain recipe NAME)")
	str(&c.Split, "split", "training split")
	str(&c.ValSplit, "val-split", "evaluation split")
	str(&c.Model, "model", "HRNet config: w18_small_v1, w18_small_v2, w18, w32, w48")
	str(&c.Resize, "resize", "fixed or dynopool")
	custom := func(v pflag.Value, name, usage string) {
		fs.Var(v, name, usage)
		t.set[name] = true
	}
	custom(CropValue{C: c}, "crop", "training crop H or HxW (a crop other than the recipe's keeps its scales in proportion)")
	custom(ScaleValue{P: &c.Scale}, "scale", "rescale target LONGxSHORT (fit, keeping the aspect), times a random ratio")
	custom(RatioValue{P: &c.RatioRange}, "ratio-range", "random ratio range MIN,MAX of the scale")
	flt(&c.CatMaxRatio, "cat-max-ratio", "retry a crop (up to 10 times) while one class covers this share of it (1: no retries)")
	fs.BoolVar(&c.NoPhotometric, "no-photometric", false, "no photometric distortion (brightness, contrast, saturation, hue)")
	t.set["no-photometric"] = true
	custom(ScaleValue{P: &c.TestScale}, "test-scale", "evaluation rescale LONGxSHORT")
	str(&c.EvalMode, "eval-mode", "evaluation: whole (whole images) or slide (windows of the crop, 2/3 overlap)")
	custom(IgnoreValue{P: &c.IgnoreIndex}, "ignore-index", "mask value of void pixels (default: the dataset's: 255, CamVid 11)")
	fs.BoolVar(&c.ReduceZero, "reduce-zero-label", false, "mask value 0 is void and k is class k−1 (always for ADE20K and Pascal Context 59)")
	t.set["reduce-zero-label"] = true
	num(&c.Batch, "batch", "batch size (at least 2: batch norm)")
	num(&c.Iters, "iters", "training iterations")
	flt(&c.LR, "lr", "learning rate")
	flt(&c.Momentum, "momentum", "SGD momentum")
	flt(&c.WeightDec, "weight-decay", "weight decay (not on the alphas)")
	flt(&c.PolyPower, "poly-power", "poly schedule power")
	flt(&c.MinLR, "min-lr", "poly schedule's final learning rate")
	num(&c.Warmup, "warmup", "linear warm-up iterations")
	flt(&c.AlphaLR, "alpha-lr", "learning rate of the DynOPool alphas")
	flt(&c.GMACsW, "gmacs-weight", "weight of the GMACs loss (0: off)")
	flt(&c.GMACsB, "gmacs-budget", "GMACs budget as a fraction of the fixed model's (hinge); 0: the paper's plain loss")
	num(&c.EvalEvery, "eval-every", "evaluate every N iterations (and at the end)")
	num(&c.CkptEvery, "ckpt-every", "checkpoint every N iterations (and at the end)")
	num(&c.Keep, "keep", "checkpoints kept (besides the best)")
	str(&c.Out, "out", "directory of the runs")
	str(&c.Name, "name", "run name (default: date, model, resizing)")
	str(&c.Pretrained, "pretrained", "weights to start from (.pth or .safetensors; the head is skipped if its classes differ)")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "random seed (data order, augmentation, initialisation)")
	t.set["seed"] = true
	num(&c.Workers, "workers", "data loading goroutines")
	num(&c.LogEvery, "log-every", "log every N iterations")
	fs.BoolVar(&c.SkipBad, "skip-bad", false, "skip samples that fail to load (listed at the end)")
	t.set["skip-bad"] = true
	fs.BoolVar(&c.SkipNaN, "skip-nan", false, "skip a batch whose loss or gradients are NaN/Inf instead of stopping")
	t.set["skip-nan"] = true
	fs.StringVar(&t.ConfigFile, "config", "", "YAML or JSON file of settings (flags override it)")
	fs.StringVar(&t.Resume, "resume", "", "continue a run: its directory or a checkpoint")
	fs.BoolVar(&t.NoBar, "no-bar", false, "print log lines instead of a progress bar")
	fs.BoolVar(&c.NoSyncBN, "no-sync-bn", false, "under mpirun/srun with several ranks: batch norm over each rank's share, not the whole batch (SyncBN)")
	t.set["no-sync-bn"] = true
	fs.IntVar(&t.Threads, "threads", 0, "kernel threads of this process (default: every core it may run on)")
	fs.DurationVar(&t.Timeout, "timeout", 10*time.Minute, "under mpirun/srun: how long a rank waits for the others before ending the job with an error")
	return t
}

// Settings are the flags of settings that the command line set, by name: what
// segmentation.Resolve takes from it.
func (t *TrainFlags) Settings() []string {
	var set []string
	t.fs.Visit(func(f *pflag.Flag) {
		if t.set[f.Name] {
			set = append(set, f.Name)
		}
	})
	return set
}

// Forget makes name a flag of no setting (a command that reads it otherwise).
func (t *TrainFlags) Forget(name string) { delete(t.set, name) }

// Config returns a new run's settings (segmentation.Resolve) and the line saying whose recipe
// they follow; a setting that cannot work is a usage error.
func (t *TrainFlags) Config() (segmentation.Config, string, error) {
	cfg, said, err := segmentation.Resolve(segmentation.Sources{File: t.ConfigFile, Flags: t.Cfg, Set: t.Settings()})
	return cfg, said, Usage(err)
}

// ResumeOverrides returns the settings (Config keys) the command line set for a resumed run;
// any other flag but those of the process (--resume, --no-bar, --threads, --timeout) is refused
// with a usage error naming it.
func (t *TrainFlags) ResumeOverrides() ([]string, error) {
	var set []string
	t.fs.Visit(func(f *pflag.Flag) {
		switch f.Name {
		case "resume", "no-bar", "threads", "timeout":
		default:
			set = append(set, f.Name)
		}
	})
	keys, err := segmentation.ResumeOverrides(set)
	return keys, Usage(err)
}

// ShowDefaults makes the flags' defaults in the help those of the recipe that --data or
// --dataset selects, and says so; without either they are the VOC recipe's.
func (t *TrainFlags) ShowDefaults(w io.Writer) {
	data, name := "", ""
	if t.fs.Changed("data") {
		data = t.Cfg.Data
	}
	if t.fs.Changed("dataset") {
		name = t.Cfg.Dataset
	}
	base, said := segmentation.DefaultConfig(), ""
	if data != "" || name != "" {
		b, err := segmentation.Defaults(data, name)
		if err != nil {
			fmt.Fprintf(w, "segtrain: %v\n\n", err)
			return
		}
		base, said = b.Config, b.Recognised+b.Recipe+"The defaults below are that recipe's.\n\n"
	}
	t.Cfg = base.WithDefaults()
	t.fs.VisitAll(func(f *pflag.Flag) {
		if t.set[f.Name] && f.Name != "data" && f.Name != "dataset" {
			f.DefValue = f.Value.String()
		}
	})
	fmt.Fprint(w, said)
}

// ApplyThreads sets this process's kernel threads from --threads.
func (t *TrainFlags) ApplyThreads() error {
	if t.Threads < 0 {
		return UsageError{Err: fmt.Errorf("--threads %d: at least 1 (0: every core)", t.Threads)}
	}
	if t.Threads > 0 {
		runtime.GOMAXPROCS(t.Threads)
		kernels.Workers = t.Threads
	}
	return nil
}

// Interrupt sets stop on Ctrl-C, SIGTERM or SIGUSR1 (mpirun forwards it to every rank; Slurm's
// --signal sends it before the time limit), saying so on w; a second signal exits at once
// (status 130). The returned function stops listening.
func Interrupt(stop *atomic.Bool, w io.Writer, prog string) (release func()) {
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM, syscall.SIGUSR1)
	go func() {
		if _, ok := <-signals; !ok {
			return
		}
		stop.Store(true)
		fmt.Fprintf(w, "\n%s: stopping after this step (or skipping the evaluation under way) with a checkpoint (again to quit at once)\n", prog)
		if _, ok := <-signals; ok {
			fmt.Fprintf(w, "%s: quit without a checkpoint\n", prog)
			os.Exit(130)
		}
	}()
	return func() { signal.Stop(signals); close(signals) }
}

// WarnBound warns on w when a rank of a data-parallel job runs one thread on a machine of
// several cores: the launcher bound it to one core.
func WarnBound(w io.Writer, prog string, rank, ranks, threads int) {
	if cores := onlineCPUs(); runtime.GOMAXPROCS(0) == 1 && cores > 1 && threads == 0 {
		fmt.Fprintf(w, "%s: rank %d/%d runs 1 thread on a %d-core machine: the launcher bound it to one core "+
			"(mpirun: --bind-to none, or --map-by slot:PE=<cores per rank>)\n", prog, rank, ranks, cores)
	}
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
