package segmentation

import (
	"errors"
	"fmt"
	"slices"

	"github.com/segkit/segkit/dataset"
	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/importer"
	"github.com/segkit/segkit/voc"
)

// Evaluation modes (Config.EvalMode).
const (
	EvalWhole = "whole"
	EvalSlide = "slide"
)

// CropSize is the training crop (height, width).
func (c Config) CropSize() (h, w int) {
	if c.CropW > 0 {
		return c.Crop, c.CropW
	}
	return c.Crop, c.Crop
}

// WithDefaults returns c with its zero augmentation and test settings made explicit, as they
// were before they could be set: a 4·crop × crop rescale (of the crop's short side) with ratios
// 0.5–2, crops retried while a class covers 75%, photometric distortion, and whole-image
// evaluation at the training scale.
func (c Config) WithDefaults() Config {
	h, w := c.CropSize()
	c.CropW = w
	if c.Scale == [2]int{} {
		short := min(h, w)
		c.Scale = [2]int{4 * short, short}
	}
	if c.RatioRange == [2]float64{} {
		c.RatioRange = [2]float64{0.5, 2}
	}
	if c.CatMaxRatio == 0 {
		c.CatMaxRatio = 0.75
	}
	if c.TestScale == [2]int{} {
		c.TestScale = c.Scale
	}
	if c.EvalMode == "" {
		c.EvalMode = EvalWhole
	}
	return c
}

// ScaleCrop sets the crop to h×w and keeps the rescale and test scales in proportion to it (by
// the crop's short side), as a smaller crop of the same recipe: 512×1024 → 256×512 halves
// Cityscapes' 2048×1024 scale. Zero scales already follow the crop.
func (c Config) ScaleCrop(h, w int) Config {
	oh, ow := c.CropSize()
	f := float64(min(h, w)) / float64(min(oh, ow))
	for _, s := range []*[2]int{&c.Scale, &c.TestScale} {
		if *s != [2]int{} {
			*s = [2]int{max(1, int(float64(s[0])*f+0.5)), max(1, int(float64(s[1])*f+0.5))}
		}
	}
	c.Crop, c.CropW = h, 0
	if w != h {
		c.CropW = w
	}
	return c
}

// TrainAugment is the run's training transform.
func (c Config) TrainAugment() voc.Augment {
	c = c.WithDefaults()
	a := voc.DefaultAugment(c.Crop)
	a.Crop = [2]int{c.Crop, c.CropW}
	a.Scale, a.Ratio, a.CatMaxRatio, a.Photometric = c.Scale, c.RatioRange, c.CatMaxRatio, !c.NoPhotometric
	return a
}

// TestAugment is the run's test transform: rescale to fit TestScale, normalise.
func (c Config) TestAugment() voc.Augment {
	a := c.TrainAugment()
	a.Scale = c.WithDefaults().TestScale
	return a
}

// MaxSide bounds every side a setting gives (crops, scales, test scales): four times the
// largest of the recipes' (Cityscapes' 1024-pixel crop width), and it keeps a forged
// checkpoint's settings from sizing the model's buffers.
const MaxSide = 4096

// CheckCrop checks a crop of h×w (w 0: square), as --crop gives it: both sides 32–MaxSide.
func CheckCrop(h, w int) error { return errors.Join(cropErrors(h, w)...) }

func cropErrors(h, w int) []error {
	var errs []error
	if h < 32 {
		errs = append(errs, fmt.Errorf("--crop %d: at least 32", h))
	}
	if w != 0 && w < 32 {
		errs = append(errs, fmt.Errorf("--crop %dx%d: at least 32", h, w))
	}
	if h > MaxSide || w > MaxSide {
		errs = append(errs, fmt.Errorf("--crop %s: at most %d", size(h, w), MaxSide))
	}
	return errs
}

func size(h, w int) string {
	if w == 0 || w == h {
		return fmt.Sprint(h)
	}
	return fmt.Sprintf("%dx%d", h, w)
}

// CheckScale checks a rescale target LONGxSHORT given by flag (--scale, --test-scale): both
// 1–MaxSide; zero is the default.
func CheckScale(flag string, s [2]int) error {
	switch {
	case s == [2]int{}:
	case s[0] < 1 || s[1] < 1:
		return fmt.Errorf("%s %dx%d: LONGxSHORT, both positive", flag, s[0], s[1])
	case s[0] > MaxSide || s[1] > MaxSide:
		return fmt.Errorf("%s %dx%d: at most %d", flag, s[0], s[1], MaxSide)
	}
	return nil
}

// ModelErrors reports the settings that build a model and size its inputs (the HRNet, the
// resizing, the crop, the scales, the evaluation mode, the conventions) when they cannot work,
// naming their flags: the flags' checks, and a checkpoint's.
func (c Config) ModelErrors() []error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	errs = append(errs, cropErrors(c.Crop, c.CropW)...)
	for _, s := range []struct {
		flag  string
		scale [2]int
	}{{"--scale", c.Scale}, {"--test-scale", c.TestScale}} {
		if err := CheckScale(s.flag, s.scale); err != nil {
			errs = append(errs, err)
		}
	}
	check(slices.Contains([]string{"", EvalWhole, EvalSlide}, c.EvalMode), "--eval-mode %q: whole or slide", c.EvalMode)
	if h, w := c.CropSize(); c.EvalMode == EvalSlide && h != w {
		check(false, "--eval-mode slide: its windows are square crops, and the crop is %dx%d", h, w)
	}
	check(c.Resize == "fixed" || c.Resize == "dynopool", "--resize %q: fixed or dynopool", c.Resize)
	if err := c.ApplyDesign(&hrnet.Model{}); err != nil {
		check(false, "%v", err)
	}
	if _, err := hrnet.Lookup(c.Model); err != nil {
		check(false, "--model: %v", err)
	}
	check(c.Convention == "" || c.Convention == importer.ConventionMMSeg, "convention %q: empty (segkit's) or %q", c.Convention, importer.ConventionMMSeg)
	return errs
}

// dataErrors reports dataset and augmentation settings that cannot work, naming their flags.
func (c Config) dataErrors() []error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	if c.Dataset != "" {
		if _, err := dataset.Lookup(c.Dataset); err != nil {
			check(false, "--dataset: %v", err)
		}
		check(c.Data != "", "--dataset %s needs --data, the dataset's root", c.Dataset)
	}
	r := c.RatioRange
	check(r == [2]float64{} || r[0] > 0 && r[0] <= r[1], "--ratio-range %g,%g: MIN,MAX with 0 < MIN ≤ MAX", r[0], r[1])
	check(c.CatMaxRatio >= 0 && c.CatMaxRatio <= 1, "--cat-max-ratio %g: in (0, 1] (1: no retries)", c.CatMaxRatio)
	check(c.IgnoreIndex == nil || *c.IgnoreIndex >= 0 && *c.IgnoreIndex <= 255, "--ignore-index %d: a mask value, 0–255", deref(c.IgnoreIndex))
	return errs
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// Data is a run's dataset, opened.
type Data struct {
	Train, Val dataset.Dataset
	Title      string     // "Cityscapes", "the demo dataset"
	Found      string     // the files that gave the layout away, when it was recognised
	Notes      []string   // how it is read, when that needs saying
	Palette    [][3]uint8 // the classes' colours (nil: VOC's)
}

// OpenData returns the training and evaluation splits of c's dataset.
func OpenData(c Config) (train, val dataset.Dataset, err error) {
	d, _, err := c.Open()
	return d.Train, d.Val, err
}

// Open opens c's dataset: the demo (its first fifth for evaluation) when c.Data is empty,
// else the layout c.Dataset or, when that is empty, the one Data's files show. It returns c
// with the dataset and its label settings made explicit (they go into config.json and the
// checkpoints).
func (c Config) Open() (Data, Config, error) {
	if c.Data == "" {
		n := max(c.DemoImages, 10)
		size := c.DemoSize
		if size == 0 {
			size = c.Crop
		}
		d := voc.Demo{Seed: 1000 + c.Seed, N: n, Size: size}
		var tr, va []int
		for i := 0; i < n; i++ {
			if i < n/5 {
				va = append(va, i)
			} else {
				tr = append(tr, i)
			}
		}
		return Data{Train: Subset{d, tr}, Val: Subset{d, va}, Title: "the demo dataset"}, c, nil
	}
	var data Data
	if c.Dataset == "" {
		found := c.found // Resolve's look at the files, if it was of these
		if found == nil || found.data != c.Data {
			f, err := dataset.Detect(c.Data)
			if err != nil {
				return data, c, err
			}
			found = &recognised{data: c.Data, Found: f}
		}
		c.Dataset, data.Found = found.Name, found.By
	}
	info, err := dataset.Lookup(c.Dataset)
	if err != nil {
		return data, c, err
	}
	opt := dataset.Options{Void: c.IgnoreIndex, ReduceZero: c.ReduceZero}
	train, err := dataset.Open(c.Dataset, c.Data, c.Split, opt)
	if err != nil {
		return data, c, err
	}
	val, err := dataset.Open(c.Dataset, c.Data, c.ValSplit, opt)
	if err != nil {
		return data, c, err
	}
	data = Data{Train: train, Val: val, Title: info.Title, Found: data.Found}
	for _, note := range []string{train.Note, val.Note} {
		if note != "" && !slices.Contains(data.Notes, note) {
			data.Notes = append(data.Notes, note)
		}
	}
	if c.Dataset != dataset.VOC && c.Dataset != dataset.Folder {
		data.Palette = info.Colors()
	}
	void := train.Labels.Void
	c.IgnoreIndex, c.ReduceZero = &void, train.Labels.ReduceZero
	return data, c, nil
}

// Subset is some samples of a dataset: those of Idx, in that order.
type Subset struct {
	dataset.Dataset
	Idx []int
}

func (s Subset) Len() int                       { return len(s.Idx) }
func (s Subset) ID(i int) string                { return s.Dataset.ID(s.Idx[i]) }
func (s Subset) Load(i int) (voc.Sample, error) { return s.Dataset.Load(s.Idx[i]) }
