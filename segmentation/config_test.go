package segmentation

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segkit/segkit/dataset"
	"github.com/segkit/segkit/dynopool"
	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/internal/numcheck"
)

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

func TestSchedule(t *testing.T) {
	c := Config{LR: 0.01, MinLR: 1e-4, Iters: 1000, PolyPower: 0.9, Warmup: 10}
	for _, tc := range []struct {
		it   int
		want float64
	}{{0, 0.001}, {9, 0.01}, {10, (0.01-1e-4)*math.Pow(0.99, 0.9) + 1e-4}, {500, (0.01-1e-4)*math.Pow(0.5, 0.9) + 1e-4}, {1000, 1e-4}} {
		if got := c.Schedule(tc.it); !numcheck.Close(got, tc.want, 1e-15) {
			t.Errorf("iteration %d: lr %v, want %v", tc.it, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	c := DemoConfig()
	c.Batch = 1
	var se SettingError
	if err := c.Validate(); !errors.As(err, &se) || !strings.Contains(err.Error(), "batch norm") {
		t.Errorf("batch 1: %v", err)
	}
	c = DemoConfig()
	c.Model = "w99" // found before the run starts, so a command line can say it is wrong
	if err := c.Validate(); !errors.As(err, &se) || !strings.Contains(err.Error(), "--model") || !strings.Contains(err.Error(), "w99") {
		t.Errorf("model w99: %v", err)
	}
	if err := DemoConfig().Validate(); err != nil {
		t.Errorf("the demo's settings: %v", err)
	}
}

// The DynOPool design settings reach the model ("" keeps the first design), bad names are setting
// errors naming the flag, and the alphas wait --alpha-start iterations.
func TestDynOPoolDesign(t *testing.T) {
	c := DemoConfig()
	c.Crop, c.DemoImages = 64, 4
	m, _, err := NewModel(c, 3)
	if err != nil || m.Down != hrnet.ResizeThenStride || m.Query != dynopool.Max || m.Up != dynopool.Centre {
		t.Errorf("default design: %v %q %v %v, want strided, max, centre", err, m.Down, m.Query, m.Up)
	}
	c.DynDown, c.DynQuery, c.DynUp = "", "", "" // a config written before the settings existed
	if m, _, err = NewModel(c, 3); err != nil || m.Down != hrnet.PoolThenConv || m.Query != dynopool.Max || m.Up != dynopool.Max {
		t.Errorf("empty settings: %v %q %v %v, want pool, max, max", err, m.Down, m.Query, m.Up)
	}
	c.DynDown, c.DynQuery, c.DynUp = "pool", "mean", "mean"
	if m, _, err = NewModel(c, 3); err != nil || m.Down != hrnet.PoolThenConv || m.Query != dynopool.Mean || m.Up != dynopool.Mean {
		t.Errorf("pool, mean, mean: %v %q %v %v", err, m.Down, m.Query, m.Up)
	}
	var se SettingError
	for flag, bad := range map[string]Config{
		"--dynopool-down":  {DynDown: "conv"},
		"--dynopool-query": {DynQuery: "centre"},
		"--dynopool-up":    {DynUp: "nearest"},
		"--alpha-start":    {AlphaStart: -1},
	} {
		c := DemoConfig()
		c.DynDown, c.DynQuery, c.DynUp, c.AlphaStart = bad.DynDown, bad.DynQuery, bad.DynUp, bad.AlphaStart
		if err := c.Validate(); !errors.As(err, &se) || !strings.Contains(err.Error(), flag) {
			t.Errorf("%+v: %v, want an error naming %s", bad, err, flag)
		}
	}
	c = Config{LR: 0.01, AlphaLR: 0.005, AlphaStart: 100}
	if g := c.AlphaGroup(99); g.LRMult != 0 || !g.NoDecay {
		t.Errorf("iteration 99 of --alpha-start 100: %+v", g)
	}
	if g := c.AlphaGroup(100); g.LRMult != 0.5 || !g.NoDecay {
		t.Errorf("iteration 100 of --alpha-start 100: %+v", g)
	}
}

// Whatever a config file holds, loading it is an error or settings, never a crash; unknown keys
// are errors.
func FuzzConfig(f *testing.F) {
	f.Add([]byte("model: w48\nresize: dynopool\ncrop: 512\n"))
	f.Add([]byte(`{"batch": 8, "lr": 0.02}`))
	f.Add([]byte("crop: [1, 2]\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Skip()
		}
		LoadConfig(path, DemoConfig())
	})
}

func TestConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("model: w48\nbatch: 4\n"), 0o644)
	c, err := LoadConfig(path, DemoConfig())
	if err != nil || c.Model != "w48" || c.Batch != 4 || c.Crop != DemoConfig().Crop {
		t.Errorf("%+v, %v", c, err)
	}
	os.WriteFile(path, []byte("modle: w48\n"), 0o644)
	if _, err := LoadConfig(path, DemoConfig()); err == nil || !strings.Contains(err.Error(), "modle") {
		t.Errorf("unknown key: %v", err)
	}
}
