package segmentation

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/segkit/segkit/dataset"
	"github.com/segkit/segkit/dataset/datasettest"
	"github.com/segkit/segkit/voc"
)

// Every layout, as downloaded, trains an iteration with its recipe (the crop scaled down to 32,
// the scales with it) and evaluates, its layout recognised by its files; config.json and the
// checkpoint hold the dataset, its labels and the test protocol, and eval's data opening
// (OpenData on the checkpoint's settings) gives the dataset's classes.
func TestLayoutsTrain(t *testing.T) {
	tree := datasettest.Tree{Demo: voc.Demo{Seed: 4, N: 5, Size: 40}, Val: 2}
	for _, name := range []string{dataset.CamVid, dataset.Cityscapes, dataset.ADE20K, dataset.PascalContext59, dataset.Folder, dataset.VOC} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			if _, err := tree.Write(name, root); err != nil {
				t.Fatal(err)
			}
			r, err := RecipeFor(name)
			if err != nil {
				t.Fatal(err)
			}
			cropW, resize := 32, "fixed"
			if name == dataset.CamVid { // CamVid's crops are not square: 32×48, with DynOPool's per-axis sizes
				cropW, resize = 48, "dynopool"
			}
			c := r.Config.ScaleCrop(32, cropW)
			c.Dataset, c.Data = "", root // recognised by its files
			c.Model, c.Resize, c.Batch, c.Iters, c.EvalEvery, c.CkptEvery = "w18_small_v1", resize, 2, 1, 0, 0
			c.Split, c.ValSplit = datasettest.Splits[name][0], datasettest.Splits[name][1]
			c.Out, c.Name = t.TempDir(), "run"
			var out bytes.Buffer
			sum, err := (&Run{Cfg: c, Out: &out, NoBar: true}).Train()
			if err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			info, _ := dataset.Lookup(name)
			if !strings.Contains(out.String(), "data: "+info.Title+" (recognised by ") {
				t.Errorf("the run does not say what it found:\n%s", out.String())
			}
			classes := info.Classes
			if name == dataset.Folder {
				classes = voc.DemoClasses
			}
			if len(sum.Final.PerClass) != len(classes) || sum.Final.PerClass[0].Name != classes[0] || sum.Final.Pixels != 2*40*39 {
				t.Errorf("evaluated %d classes, first %q, %d pixels; want %d, %q, %d", len(sum.Final.PerClass), sum.Final.PerClass[0].Name,
					sum.Final.Pixels, len(classes), classes[0], 2*40*39)
			}
			raw, err := os.ReadFile(filepath.Join(sum.Dir, "config.json"))
			if err != nil {
				t.Fatal(err)
			}
			var saved Config
			if err := json.Unmarshal(raw, &saved); err != nil {
				t.Fatal(err)
			}
			want := r.Config.ScaleCrop(32, cropW).WithDefaults()
			if sum.Crop != 32 || sum.CropW != cropW || name == dataset.CamVid && sum.Sizes[0] != [2]int{8, 12} {
				t.Errorf("crop %dx%d, branch sizes %v", sum.Crop, sum.CropW, sum.Sizes)
			}
			if saved.Dataset != name || saved.IgnoreIndex == nil || *saved.IgnoreIndex != info.Void || saved.ReduceZero != info.ReduceZero ||
				saved.Scale != want.Scale || saved.TestScale != want.TestScale || saved.EvalMode != want.EvalMode || saved.RatioRange != [2]float64{0.5, 2} {
				t.Errorf("config.json: %s", raw)
			}
			ck, err := LoadCheckpoint(filepath.Join(sum.Dir, "best.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			if ck.State.Config.Dataset != name || !slices.Equal(ck.State.Classes, classes) {
				t.Errorf("checkpoint: dataset %q, classes %v", ck.State.Config.Dataset, ck.State.Classes)
			}
			if wantPalette := name != dataset.VOC && name != dataset.Folder; (ck.State.Palette != nil) != wantPalette ||
				wantPalette && !slices.Equal(ck.State.Palette, info.Colors()) {
				t.Errorf("checkpoint palette %v", ck.State.Palette)
			}
			inf := ck.State.Config.TestInference()
			if inf.Slide != (want.EvalMode == EvalSlide) || inf.Aug.Scale != want.TestScale || inf.Crop != 32 {
				t.Errorf("test protocol %+v", inf)
			}
			_, val, err := OpenData(ck.State.Config)
			if err != nil || val.Len() != 2 || !slices.Equal(val.Classes(), classes) {
				t.Errorf("the checkpoint's data: %v", err)
			}
		})
	}
}

// Settings written before the recipes existed (no dataset, scale, ratio, ... in config.json)
// keep the earlier behaviour: VOC's recipe at 4·crop × crop, whole-image evaluation.
func TestOldConfig(t *testing.T) {
	var c Config
	if err := json.Unmarshal([]byte(`{"data": "", "model": "w18_small_v1", "resize": "dynopool", "crop": 96, "batch": 8}`), &c); err != nil {
		t.Fatal(err)
	}
	a := c.TrainAugment()
	if want := voc.DefaultAugment(96); a != want {
		t.Errorf("training transform %+v, want %+v", a, want)
	}
	inf := c.TestInference()
	if inf.Slide || inf.Aug.Scale != [2]int{384, 96} || inf.Crop != 96 || inf.Stride != 64 {
		t.Errorf("test protocol %+v", inf)
	}
	if h, w := c.CropSize(); h != 96 || w != 96 {
		t.Errorf("crop %dx%d", h, w)
	}
}

// The recipes are mmseg's configs.
func TestRecipes(t *testing.T) {
	for name, want := range map[string]struct {
		crop, scale, test [2]int
		batch, iters      int
		lr, wd            float64
		mode              string
	}{
		dataset.VOC:             {[2]int{512, 512}, [2]int{2048, 512}, [2]int{2048, 512}, 16, 20000, 0.01, 5e-4, EvalWhole},
		dataset.Cityscapes:      {[2]int{512, 1024}, [2]int{2048, 1024}, [2]int{2048, 1024}, 8, 40000, 0.01, 5e-4, EvalWhole},
		dataset.ADE20K:          {[2]int{512, 512}, [2]int{2048, 512}, [2]int{2048, 512}, 16, 80000, 0.01, 5e-4, EvalWhole},
		dataset.PascalContext:   {[2]int{480, 480}, [2]int{520, 520}, [2]int{520, 520}, 16, 40000, 0.004, 1e-4, EvalSlide},
		dataset.PascalContext59: {[2]int{480, 480}, [2]int{520, 520}, [2]int{520, 520}, 16, 40000, 0.004, 1e-4, EvalSlide},
		dataset.CamVid:          {[2]int{360, 480}, [2]int{480, 360}, [2]int{480, 360}, 8, 10000, 0.01, 5e-4, EvalWhole},
	} {
		r, err := RecipeFor(name)
		if err != nil {
			t.Fatal(err)
		}
		c := r.Config.WithDefaults()
		h, w := c.CropSize()
		got := struct {
			crop, scale, test [2]int
			batch, iters      int
			lr, wd            float64
			mode              string
		}{[2]int{h, w}, c.Scale, c.TestScale, c.Batch, c.Iters, c.LR, c.WeightDec, c.EvalMode}
		if got != want || c.RatioRange != [2]float64{0.5, 2} || c.CatMaxRatio != 0.75 || c.NoPhotometric || c.Dataset != name {
			t.Errorf("%s: %+v, want %+v", name, got, want)
		}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "needs --data") {
			t.Errorf("%s without --data: %v", name, err)
		}
	}
	if _, err := RecipeFor("coco"); err == nil || !strings.Contains(err.Error(), `unknown dataset "coco"`) {
		t.Errorf("unknown dataset: %v", err)
	}
}

// A smaller crop keeps the recipe's scales in proportion; a scale that follows the crop stays so.
func TestScaleCrop(t *testing.T) {
	r, _ := RecipeFor(dataset.Cityscapes)
	c := r.Config.ScaleCrop(256, 512)
	if h, w := c.CropSize(); h != 256 || w != 512 || c.Scale != [2]int{1024, 512} || c.TestScale != ([2]int{}) {
		t.Errorf("crop %dx%d, scale %v, test scale %v", h, w, c.Scale, c.TestScale)
	}
	if c = c.ScaleCrop(300, 300); c.CropW != 0 || c.Scale != [2]int{1200, 600} {
		t.Errorf("square crop: width %d, scale %v", c.CropW, c.Scale)
	}
	v := DefaultConfig().ScaleCrop(256, 256)
	if v.Scale != ([2]int{}) || v.TrainAugment().Scale != [2]int{1024, 256} {
		t.Errorf("VOC at 256: %v", v.TrainAugment().Scale)
	}
}

// Settings that cannot work are errors naming their flag.
func TestDataSettings(t *testing.T) {
	big := 300
	for want, set := range map[string]func(*Config){
		`--dataset: unknown dataset "coco"`:                                       func(c *Config) { c.Dataset, c.Data = "coco", "x" },
		"--crop 512x16: at least 32":                                              func(c *Config) { c.Crop, c.CropW = 512, 16 },
		"--scale 0x512: LONGxSHORT, both positive":                                func(c *Config) { c.Scale = [2]int{0, 512} },
		"--test-scale -1x5":                                                       func(c *Config) { c.TestScale = [2]int{-1, 5} },
		"--ratio-range 2,1: MIN,MAX with 0 < MIN ≤ MAX":                           func(c *Config) { c.RatioRange = [2]float64{2, 1} },
		"--cat-max-ratio 1.5":                                                     func(c *Config) { c.CatMaxRatio = 1.5 },
		"--ignore-index 300: a mask value, 0–255":                                 func(c *Config) { c.IgnoreIndex = &big },
		`--eval-mode "tiles": whole or slide`:                                     func(c *Config) { c.EvalMode = "tiles" },
		"--eval-mode slide: its windows are square crops, and the crop is 64x128": func(c *Config) { c.Crop, c.CropW, c.EvalMode = 64, 128, EvalSlide },
	} {
		c := DemoConfig()
		set(&c)
		var se SettingError
		if err := c.Validate(); !errors.As(err, &se) || !strings.Contains(err.Error(), want) {
			t.Errorf("%v, want %q", err, want)
		}
	}
}

// A YAML config file sets the new settings as mmseg's configs write them.
func TestRecipeConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("dataset: camvid\ncrop_w: 480\nscale: [960, 720]\nratio_range: [0.75, 1.5]\nignore_index: 0\neval_mode: slide\n"), 0o644)
	c, err := LoadConfig(path, DemoConfig())
	if err != nil {
		t.Fatal(err)
	}
	if c.Dataset != dataset.CamVid || c.CropW != 480 || c.Scale != [2]int{960, 720} || c.RatioRange != [2]float64{0.75, 1.5} ||
		c.IgnoreIndex == nil || *c.IgnoreIndex != 0 || c.EvalMode != EvalSlide {
		t.Errorf("%+v", c)
	}
}

// eval and segpredict leave the run's evaluation mode alone unless --mode names one.
func TestModeDefault(t *testing.T) {
	inf := Inference{Slide: true}
	if err := inf.SetOptions("", ""); err != nil || !inf.Slide {
		t.Errorf("no --mode: slide %v (%v)", inf.Slide, err)
	}
	if err := inf.SetOptions("whole", ""); err != nil || inf.Slide {
		t.Errorf("--mode whole: slide %v (%v)", inf.Slide, err)
	}
}
