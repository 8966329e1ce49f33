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

// Config is every setting of a training run; flags and a config file fill it.
type Config struct {
	Data       string  `json:"data" yaml:"data"`           // dataset root; "" is the built-in demo
	Split      string  `json:"split" yaml:"split"`         // training split
	ValSplit   string  `json:"val_split" yaml:"val_split"` // evaluation split
	Model      string  `json:"model" yaml:"model"`         // HRNet config
	Resize     string  `json:"resize" yaml:"resize"`       // fixed or dynopool
	Crop       int     `json:"crop" yaml:"crop"`           // training crop height (and width, but for CropW)
	Batch      int     `json:"batch" yaml:"batch"`         //
	Iters      int     `json:"iters" yaml:"iters"`         //
	LR         float64 `json:"lr" yaml:"lr"`               //
	Momentum   float64 `json:"momentum" yaml:"momentum"`   //
	WeightDec  float64 `json:"weight_decay" yaml:"weight_decay"`
	PolyPower  float64 `json:"poly_power" yaml:"poly_power"` //
	MinLR      float64 `json:"min_lr" yaml:"min_lr"`         //
	Warmup     int     `json:"warmup" yaml:"warmup"`         // linear warm-up iterations
	AlphaLR    float64 `json:"alpha_lr" yaml:"alpha_lr"`     // DynOPool alphas' learning rate
	GMACsW     float64 `json:"gmacs_weight" yaml:"gmacs_weight"`
	GMACsB     float64 `json:"gmacs_budget" yaml:"gmacs_budget"` // hinge at this fraction of the fixed model's GMACs; 0: plain loss
	EvalEvery  int     `json:"eval_every" yaml:"eval_every"`
	CkptEvery  int     `json:"ckpt_every" yaml:"ckpt_every"`
	Keep       int     `json:"keep" yaml:"keep"` // checkpoints kept besides the best
	Out        string  `json:"out" yaml:"out"`   // runs directory
	Name       string  `json:"name" yaml:"name"` // run name (default: time and model)
	Pretrained string  `json:"pretrained" yaml:"pretrained"`
	Seed       uint64  `json:"seed" yaml:"seed"`
	Workers    int     `json:"workers" yaml:"workers"`
	LogEvery   int     `json:"log_every" yaml:"log_every"`
	DemoImages int     `json:"demo_images" yaml:"demo_images"`                 // demo dataset size (train + val)
	DemoSize   int     `json:"demo_size,omitempty" yaml:"demo_size,omitempty"` // demo images' side; 0: the crop
	SkipBad    bool    `json:"skip_bad" yaml:"skip_bad"`
	SkipNaN    bool    `json:"skip_nan" yaml:"skip_nan"` // skip a batch whose loss or gradients are not finite
	// Forward conventions of a model imported from PyTorch (segtrain import): align_corners in
	// every bilinear resize, and "mmseg" for mmsegmentation's two-step resizes (importer package).
	AlignCorners bool   `json:"align_corners,omitempty" yaml:"align_corners,omitempty"`
	Convention   string `json:"convention,omitempty" yaml:"convention,omitempty"`

	// The dataset, its labels, and the augmentation and test protocol of its recipe (recipe.go).
	// A zero value (a config written before these existed) keeps the earlier behaviour.
	Dataset       string     `json:"dataset,omitempty" yaml:"dataset,omitempty"`           // a dataset.Names layout; "": recognised by Data's files
	IgnoreIndex   *int       `json:"ignore_index,omitempty" yaml:"ignore_index,omitempty"` // mask value of void pixels; nil: the dataset's
	ReduceZero    bool       `json:"reduce_zero_label,omitempty" yaml:"reduce_zero_label,omitempty"`
	CropW         int        `json:"crop_w,omitempty" yaml:"crop_w,omitempty"`               // crop width; 0: Crop
	Scale         [2]int     `json:"scale,omitempty" yaml:"scale,omitempty"`                 // rescale target (long, short); zero: 4·Crop × Crop
	RatioRange    [2]float64 `json:"ratio_range,omitempty" yaml:"ratio_range,omitempty"`     // random ratio of Scale; zero: 0.5–2
	CatMaxRatio   float64    `json:"cat_max_ratio,omitempty" yaml:"cat_max_ratio,omitempty"` // 0: 0.75; 1: no retries
	NoPhotometric bool       `json:"no_photometric,omitempty" yaml:"no_photometric,omitempty"`
	TestScale     [2]int     `json:"test_scale,omitempty" yaml:"test_scale,omitempty"` // evaluation rescale (long, short); zero: Scale
	EvalMode      string     `json:"eval_mode,omitempty" yaml:"eval_mode,omitempty"`   // whole or slide (windows of the crop); "": whole

	// NoSyncBN: in a data-parallel run (several ranks), batch norm normalises each rank's share
	// with the share's statistics, instead of the whole batch's (SyncBN, the default): another
	// training than one process's, as in mmseg without SyncBN.
	NoSyncBN bool `json:"no_sync_bn,omitempty" yaml:"no_sync_bn,omitempty"`

	found *recognised // the layout Resolve recognised Data as, so that Open need not look again
}

// DefaultConfig is mmseg's VOC recipe with HRNet-W48, fixed resizing.
func DefaultConfig() Config {
	return Config{Split: "train", ValSplit: "val", Model: "w48", Resize: "fixed", Crop: 512, Batch: 16,
		Iters: 20000, LR: 0.01, Momentum: 0.9, WeightDec: 5e-4, PolyPower: 0.9, MinLR: 1e-4,
		AlphaLR: 0.001, GMACsW: 0.1, GMACsB: 1.0, EvalEvery: 2000, CkptEvery: 2000, Keep: 2,
		Out: "runs", Seed: 0, Workers: 2, LogEvery: 10}
}

// DemoConfig is the no-flags run: the demo dataset, a small HRNet with DynOPool, minutes on 2 cores.
func DemoConfig() Config {
	c := DefaultConfig()
	c.Model, c.Resize, c.Crop, c.Batch, c.Iters = "w18_small_v1", "dynopool", 96, 8, 1600
	c.LR, c.MinLR, c.Warmup, c.AlphaLR = 0.05, 1e-4, 50, 0.005
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
	check(c.GMACsB >= 0 && c.GMACsW >= 0 && c.AlphaLR >= 0, "--gmacs-weight, --gmacs-budget and --alpha-lr must not be negative")
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
