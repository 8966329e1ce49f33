package segmentation

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/segkit/segkit/nn"
)

// Config is every setting of a training run; flags and a config file fill it. A field is a
// setting of config.json, the checkpoints and config files by its json and yaml key, and, with
// a help tag, a flag of segtrain named after the key ("eval_every" is --eval-every).
type Config struct {
	// dataset root; "" is the built-in demo
	Data     string `json:"data" yaml:"data" help:"dataset root, its layout recognised by its files: VOC 2012, Cityscapes, ADE20K, Pascal Context, CamVid (SegNet's) or a folder dataset (default: the built-in demo dataset)"`
	Split    string `json:"split" yaml:"split" help:"training split"`
	ValSplit string `json:"val_split" yaml:"val_split" help:"evaluation split"`
	Model    string `json:"model" yaml:"model" help:"HRNet config: w18_small_v1, w18_small_v2, w18, w32, w48"`
	Resize   string `json:"resize" yaml:"resize" help:"fixed or dynopool"`
	// training crop height (and width, but for CropW)
	Crop      int     `json:"crop" yaml:"crop" help:"training crop H or HxW (a crop other than the recipe's keeps its scales in proportion)"`
	Batch     int     `json:"batch" yaml:"batch" help:"batch size (at least 2: batch norm)"`
	Iters     int     `json:"iters" yaml:"iters" help:"training iterations"`
	LR        float64 `json:"lr" yaml:"lr" help:"learning rate"`
	Momentum  float64 `json:"momentum" yaml:"momentum" help:"SGD momentum"`
	WeightDec float64 `json:"weight_decay" yaml:"weight_decay" help:"weight decay (not on the alphas)"`
	PolyPower float64 `json:"poly_power" yaml:"poly_power" help:"poly schedule power"`
	MinLR     float64 `json:"min_lr" yaml:"min_lr" help:"poly schedule's final learning rate"`
	Warmup    int     `json:"warmup" yaml:"warmup" help:"linear warm-up iterations"`
	AlphaLR   float64 `json:"alpha_lr" yaml:"alpha_lr" help:"learning rate of the DynOPool alphas"`
	// DynOPool's design (hrnet.Model.Down, Query, Up); "" is the first design (pool, max, max),
	// which configs written before these settings existed mean.
	DynDown    string  `json:"dynopool_down,omitempty" yaml:"dynopool_down,omitempty" help:"DynOPool: how a level is entered from above: pool (the sampling op, then the conv at stride 1: the paper's placement) or strided (a bilinear resize to twice the level's size, then the conv at stride 2: the fixed model at alpha 2)"`
	DynQuery   string  `json:"dynopool_query,omitempty" yaml:"dynopool_query,omitempty" help:"DynOPool with --dynopool-down pool: max or mean of each cell's four queries"`
	DynUp      string  `json:"dynopool_up,omitempty" yaml:"dynopool_up,omitempty" help:"DynOPool: how up-sampling reads each cell: max or mean of four queries, or centre (bilinear)"`
	AlphaStart int     `json:"alpha_start,omitempty" yaml:"alpha_start,omitempty" help:"DynOPool: iterations before the alphas start to learn (the weights settle first)"`
	GMACsW     float64 `json:"gmacs_weight" yaml:"gmacs_weight" help:"weight of the GMACs loss (0: off)"`
	// hinge at this fraction of the fixed model's GMACs; 0: plain loss
	GMACsB     float64 `json:"gmacs_budget" yaml:"gmacs_budget" help:"GMACs budget as a fraction of the fixed model's (hinge); 0: the paper's plain loss"`
	EvalEvery  int     `json:"eval_every" yaml:"eval_every" help:"evaluate every N iterations (and at the end)"`
	CkptEvery  int     `json:"ckpt_every" yaml:"ckpt_every" help:"checkpoint every N iterations (and at the end)"`
	Keep       int     `json:"keep" yaml:"keep" help:"checkpoints kept (besides the best)"`
	Out        string  `json:"out" yaml:"out" help:"directory of the runs"`
	Name       string  `json:"name" yaml:"name" help:"run name (default: date, model, resizing)"`
	Pretrained string  `json:"pretrained" yaml:"pretrained" help:"weights to start from (.pth or .safetensors; the head is skipped if its classes differ)"`
	Seed       uint64  `json:"seed" yaml:"seed" help:"random seed (data order, augmentation, initialisation)"`
	Workers    int     `json:"workers" yaml:"workers" help:"data loading goroutines"`
	LogEvery   int     `json:"log_every" yaml:"log_every" help:"log every N iterations"`
	DemoImages int     `json:"demo_images" yaml:"demo_images"`                 // demo dataset size (train + val)
	DemoSize   int     `json:"demo_size,omitempty" yaml:"demo_size,omitempty"` // demo images' side; 0: the crop
	SkipBad    bool    `json:"skip_bad" yaml:"skip_bad" help:"skip samples that fail to load (listed at the end)"`
	SkipNaN    bool    `json:"skip_nan" yaml:"skip_nan" help:"skip a batch whose loss or gradients are NaN/Inf instead of stopping"`
	// Forward conventions of a model imported from PyTorch (segtrain import): align_corners in
	// every bilinear resize, and "mmseg" for mmsegmentation's two-step resizes (importer package).
	AlignCorners bool   `json:"align_corners,omitempty" yaml:"align_corners,omitempty"`
	Convention   string `json:"convention,omitempty" yaml:"convention,omitempty"`

	// The dataset, its labels, and the augmentation and test protocol of its recipe (recipe.go).
	// A zero value (a config written before these existed) keeps the earlier behaviour.
	// Dataset is a dataset.Names layout; "": recognised by Data's files.
	Dataset string `json:"dataset,omitempty" yaml:"dataset,omitempty" help:"the dataset's layout, instead of recognising it: {datasets}; its recipe gives the defaults (segtrain recipe NAME)"`
	// mask value of void pixels; nil: the dataset's
	IgnoreIndex *int `json:"ignore_index,omitempty" yaml:"ignore_index,omitempty" help:"mask value of void pixels (default: the dataset's: 255, CamVid 11)"`
	ReduceZero  bool `json:"reduce_zero_label,omitempty" yaml:"reduce_zero_label,omitempty" help:"mask value 0 is void and k is class k−1 (always for ADE20K and Pascal Context 59)"`
	CropW       int  `json:"crop_w,omitempty" yaml:"crop_w,omitempty"` // crop width; 0: Crop
	// rescale target (long, short); zero: 4·Crop × Crop
	Scale [2]int `json:"scale,omitempty" yaml:"scale,omitempty" help:"rescale target LONGxSHORT (fit, keeping the aspect), times a random ratio"`
	// random ratio of Scale; zero: 0.5–2
	RatioRange [2]float64 `json:"ratio_range,omitempty" yaml:"ratio_range,omitempty" help:"random ratio range MIN,MAX of the scale"`
	// 0: 0.75; 1: no retries
	CatMaxRatio   float64 `json:"cat_max_ratio,omitempty" yaml:"cat_max_ratio,omitempty" help:"retry a crop (up to 10 times) while one class covers this share of it (1: no retries)"`
	NoPhotometric bool    `json:"no_photometric,omitempty" yaml:"no_photometric,omitempty" help:"no photometric distortion (brightness, contrast, saturation, hue)"`
	// evaluation rescale (long, short); zero: Scale
	TestScale [2]int `json:"test_scale,omitempty" yaml:"test_scale,omitempty" help:"evaluation rescale LONGxSHORT"`
	// whole or slide (windows of the crop); "": whole
	EvalMode string `json:"eval_mode,omitempty" yaml:"eval_mode,omitempty" help:"evaluation: whole (whole images) or slide (windows of the crop, 2/3 overlap)"`

	// NoSyncBN: in a data-parallel run (several ranks), batch norm normalises each rank's share
	// with the share's statistics, instead of the whole batch's (SyncBN, the default): another
	// training than one process's, as in mmseg without SyncBN.
	NoSyncBN bool `json:"no_sync_bn,omitempty" yaml:"no_sync_bn,omitempty" help:"under mpirun/srun with several ranks: batch norm over each rank's share, not the whole batch (SyncBN)"`

	found *recognised // the layout Resolve recognised Data as, so that Open need not look again
}

// DefaultConfig is mmseg's VOC recipe with HRNet-W48, fixed resizing.
func DefaultConfig() Config {
	return Config{Split: "train", ValSplit: "val", Model: "w48", Resize: "fixed", Crop: 512, Batch: 16,
		Iters: 20000, LR: 0.01, Momentum: 0.9, WeightDec: 5e-4, PolyPower: 0.9, MinLR: 1e-4,
		AlphaLR: 0.001, GMACsW: 0.1, GMACsB: 1.0, EvalEvery: 2000, CkptEvery: 2000, Keep: 2,
		Out: "runs", Seed: 0, Workers: 2, LogEvery: 10,
		// DynOPool as the fixed model at alpha 2, the sizes learned from there (docs/dynopool.md).
		DynDown: "strided", DynUp: "centre"}
}

// DemoConfig is the no-flags run: the demo dataset, a small HRNet with DynOPool, minutes on 2 cores.
func DemoConfig() Config {
	c := DefaultConfig()
	c.Model, c.Resize, c.Crop, c.Batch, c.Iters = "w18_small_v1", "dynopool", 96, 8, 1600
	c.LR, c.MinLR, c.Warmup, c.AlphaLR, c.AlphaStart = 0.05, 1e-4, 50, 0.005, 800
	c.EvalEvery, c.CkptEvery, c.DemoImages = 400, 400, 400
	return c
}

// LoadConfig overlays a YAML or JSON file on c.
func LoadConfig(path string, c Config) (Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// SettingError is a setting that cannot work or cannot apply (a usage error on a command line);
// its message names the setting as its flag.
type SettingError struct{ Err error }

func (e SettingError) Error() string { return e.Err.Error() }
func (e SettingError) Unwrap() error { return e.Err }

// ResumeSettings are the settings (Config's JSON keys) that a resumed run may change: the
// length (the poly schedule is then recomputed over the new total) and those that do not touch
// the training's arithmetic. Any other would silently make the run a different one.
var ResumeSettings = []string{"iters", "eval_every", "ckpt_every", "keep", "log_every", "workers", "skip_bad", "skip_nan"}

// Flag is the command-line flag of a setting (JSON key): "eval_every" is --eval-every.
func Flag(key string) string { return "--" + strings.ReplaceAll(key, "_", "-") }

// Override copies the settings keys of src into c; only ResumeSettings may be overridden.
func (c *Config) Override(src Config, keys []string) error {
	for _, key := range keys {
		if !slices.Contains(ResumeSettings, key) {
			return SettingError{fmt.Errorf("%s cannot change when resuming: the run keeps its checkpoint's settings (a resume may set %s)",
				Flag(key), ResumeFlags())}
		}
		c.copyKey(src, key)
	}
	return nil
}

// ResumeFlags lists the flags of ResumeSettings.
func ResumeFlags() string {
	flags := make([]string, len(ResumeSettings))
	for i, k := range ResumeSettings {
		flags[i] = Flag(k)
	}
	return strings.Join(flags, ", ")
}

// Validate reports settings that cannot work, naming the setting (a SettingError).
func (c Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.Batch >= 2, "--batch %d: batch norm in training mode needs batches of at least 2", c.Batch)
	errs = append(errs, c.ModelErrors()...)
	errs = append(errs, c.dataErrors()...)
	check(c.Iters >= 1, "--iters %d: at least 1", c.Iters)
	check(c.LR > 0, "--lr %g: must be positive", c.LR)
	check(c.EvalEvery >= 0 && c.CkptEvery >= 0 && c.Keep >= 0 && c.Warmup >= 0, "--eval-every, --ckpt-every, --keep and --warmup must not be negative")
	check(c.GMACsB >= 0 && c.GMACsW >= 0 && c.AlphaLR >= 0 && c.AlphaStart >= 0, "--gmacs-weight, --gmacs-budget, --alpha-lr and --alpha-start must not be negative")
	if len(errs) > 0 {
		return SettingError{errors.Join(errs...)}
	}
	return nil
}

// Schedule returns the learning rate of iteration it: linear warm-up, then mmseg's poly decay.
func (c Config) Schedule(it int) float64 {
	if it < c.Warmup {
		return c.LR * float64(it+1) / float64(c.Warmup)
	}
	return nn.PolyLR(c.LR, c.MinLR, it, c.Iters, c.PolyPower)
}

// AlphaGroup is the optimizer group of the DynOPool alphas at iteration it: their learning rate
// as a multiple of the weights' (so it follows their schedule), nothing before AlphaStart, and
// no weight decay.
func (c Config) AlphaGroup(it int) nn.Group {
	g := nn.Group{LRMult: c.AlphaLR / c.LR, NoDecay: true}
	if it < c.AlphaStart {
		g.LRMult = 0
	}
	return g
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
