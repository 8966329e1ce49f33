package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/term"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/segkit/segkit/dataset"
	"github.com/segkit/segkit/segmentation"
)

// trainFlags binds the training flags to a Config; only the flags a user sets override the
// defaults (the demo's or mmseg's) and the config file.
type trainFlags struct {
	cfg        segmentation.Config
	configFile string
	resume     string
	noBar      bool
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
	custom(cropValue{c}, "crop", "training crop H or HxW (a crop other than the recipe's keeps its scales in proportion)", func(dst, src *segmentation.Config) {
		dst.Crop, dst.CropW = src.Crop, src.CropW
	})
	custom(scaleValue{&c.Scale}, "scale", "rescale target LONGxSHORT (fit, keeping the aspect), times a random ratio", func(dst, src *segmentation.Config) { dst.Scale = src.Scale })
	custom(ratioValue{&c.RatioRange}, "ratio-range", "random ratio range MIN,MAX of the scale", func(dst, src *segmentation.Config) { dst.RatioRange = src.RatioRange })
	flt(&c.CatMaxRatio, "cat-max-ratio", "retry a crop (up to 10 times) while one class covers this share of it (1: no retries)", func(c *segmentation.Config) *float64 { return &c.CatMaxRatio })
	fs.BoolVar(&c.NoPhotometric, "no-photometric", false, "no photometric distortion (brightness, contrast, saturation, hue)")
	t.set["no-photometric"] = func(dst, src *segmentation.Config) { dst.NoPhotometric = src.NoPhotometric }
	custom(scaleValue{&c.TestScale}, "test-scale", "evaluation rescale LONGxSHORT", func(dst, src *segmentation.Config) { dst.TestScale = src.TestScale })
	str(&c.EvalMode, "eval-mode", "evaluation: whole (whole images) or slide (windows of the crop, 2/3 overlap)", func(c *segmentation.Config) *string { return &c.EvalMode })
	custom(ignoreValue{&c.IgnoreIndex}, "ignore-index", "mask value of void pixels (default: the dataset's: 255, CamVid 11)", func(dst, src *segmentation.Config) { dst.IgnoreIndex = src.IgnoreIndex })
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
			return file, "", usageError{fmt.Errorf("--config: %w", err)}
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
			return cfg, "", usageError{fmt.Errorf("--config: %w", err)}
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
		return cfg, "", usageError{err}
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
			return cfg, "", "", usageError{fmt.Errorf("--data: %w", err)}
		}
		name, recognised = found.Name, fmt.Sprintf("--data %s: %s recognised by %s\n", data, found.Name, found.By)
	}
	r, err := segmentation.RecipeFor(name)
	if err != nil {
		return cfg, "", "", usageError{fmt.Errorf("--dataset: %w", err)}
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
		case f.Name == "resume" || f.Name == "no-bar":
		case t.set[f.Name] != nil && slices.Contains(segmentation.ResumeSettings, key):
			keys = append(keys, key)
		default:
			refused = append(refused, "--"+f.Name)
		}
	})
	if len(refused) > 0 {
		return nil, usageError{fmt.Errorf("%s cannot change when resuming: the run keeps its checkpoint's settings (with --resume only %s may be given)",
			strings.Join(refused, ", "), segmentation.ResumeFlags())}
	}
	return keys, nil
}

func runTraining(cmd *cobra.Command, t *trainFlags) error {
	run := &segmentation.Run{Out: cmd.OutOrStdout(), Resume: t.resume, NoBar: t.noBar || !isTerminal(cmd.OutOrStdout()),
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
	// Ctrl-C (or SIGTERM): finish the step, write a checkpoint, exit; a second one exits at once.
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer func() { signal.Stop(signals); close(signals) }()
	go func() {
		if _, ok := <-signals; !ok {
			return
		}
		run.Interrupt.Store(true)
		fmt.Fprintln(cmd.ErrOrStderr(), "\nsegtrain: stopping after this step with a checkpoint (again to quit at once)")
		if _, ok := <-signals; ok {
			fmt.Fprintln(cmd.ErrOrStderr(), "segtrain: quit without a checkpoint")
			os.Exit(130)
		}
	}()
	sum, err := run.Train()
	if se := (segmentation.SettingError{}); errors.As(err, &se) {
		return usageError{err}
	}
	if err != nil {
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

// isTerminal reports whether w is a terminal (a progress bar only makes sense there).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
