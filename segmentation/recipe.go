package segmentation

import (
	"fmt"
	"strings"

	"github.com/segkit/segkit/dataset"
)

// Recipe is the training recipe of a dataset: mmseg's HRNet config for it, as settings.
type Recipe struct {
	Dataset string
	Source  string // the mmseg config it follows
	Longer  string // how to run mmseg's longer schedules
	Config  Config
}

// Recipes are the datasets' recipes, from mmseg's configs/hrnet/fcn_hr18_* and the
// configs/_base_ files they use (the batch is mmseg's total over its 4 GPUs). The model stays
// segkit's default (w48); the recipes set the data, augmentation, schedule and test protocol.
func Recipes() []Recipe {
	voc := DefaultConfig() // its scale is 4·crop × crop: (2048, 512) for the 512 crop
	voc.Dataset = dataset.VOC
	schedule := func(c Config, iters int) Config {
		c.Iters, c.EvalEvery, c.CkptEvery = iters, iters/10, iters/10
		return c
	}
	city := schedule(DefaultConfig(), 40000)
	city.Dataset, city.Crop, city.CropW, city.Scale, city.Batch = dataset.Cityscapes, 512, 1024, [2]int{2048, 1024}, 8
	ade := schedule(DefaultConfig(), 80000)
	ade.Dataset, ade.Scale, ade.ValSplit = dataset.ADE20K, [2]int{2048, 512}, "val"
	context := func(name string) Config {
		c := schedule(DefaultConfig(), 40000)
		c.Dataset, c.Crop, c.Scale, c.LR, c.WeightDec, c.EvalMode = name, 480, [2]int{520, 520}, 0.004, 1e-4, EvalSlide
		return c
	}
	cam := schedule(DefaultConfig(), 10000)
	cam.Dataset, cam.Crop, cam.CropW, cam.Scale, cam.Batch = dataset.CamVid, 360, 480, [2]int{480, 360}, 8
	folder := DefaultConfig()
	folder.Dataset = dataset.Folder
	return []Recipe{
		{dataset.VOC, "configs/hrnet/fcn_hr18_512x512_20k_voc12aug.py (train on --split trainaug for it)",
			"--iters 40000 --eval-every 4000 --ckpt-every 4000 (fcn_hr18_512x512_40k_voc12aug)", voc},
		{dataset.Cityscapes, "configs/hrnet/fcn_hr18_512x1024_40k_cityscapes.py",
			"--iters 80000 --eval-every 8000 --ckpt-every 8000, or 160000 and 16000 (the _80k_ and _160k_ configs)", city},
		{dataset.ADE20K, "configs/hrnet/fcn_hr18_512x512_80k_ade20k.py",
			"--iters 160000 --eval-every 16000 --ckpt-every 16000 (fcn_hr18_512x512_160k_ade20k)", ade},
		{dataset.PascalContext, "configs/hrnet/fcn_hr18_480x480_40k_pascal_context.py",
			"--iters 80000 --eval-every 8000 --ckpt-every 8000 (fcn_hr18_480x480_80k_pascal_context)", context(dataset.PascalContext)},
		{dataset.PascalContext59, "configs/hrnet/fcn_hr18_480x480_40k_pascal_context_59.py",
			"--iters 80000 --eval-every 8000 --ckpt-every 8000 (fcn_hr18_480x480_80k_pascal_context_59)", context(dataset.PascalContext59)},
		{dataset.CamVid, "none (mmseg has no CamVid config): segkit's, with mmseg's pipeline at SegNet's 480×360 (about 220 epochs of its 367 images)",
			"--iters 20000 --eval-every 2000 --ckpt-every 2000", cam},
		{dataset.Folder, "mmseg's VOC recipe (configs/hrnet/fcn_hr18_512x512_20k_voc12aug.py), as a start", "", folder},
	}
}

// RecipeFor returns the recipe of a dataset.
func RecipeFor(name string) (Recipe, error) {
	for _, r := range Recipes() {
		if r.Dataset == name {
			return r, nil
		}
	}
	_, err := dataset.Lookup(name)
	return Recipe{}, err
}

// Settings lists the recipe's settings as flags with their values, one per line.
func (r Recipe) Settings() string {
	c := r.Config.WithDefaults()
	size := func(s [2]int) string { return fmt.Sprintf("%dx%d", s[0], s[1]) }
	lines := [][2]string{
		{"--crop", fmt.Sprintf("%dx%d", c.Crop, c.CropW)},
		{"--scale", size(c.Scale)},
		{"--ratio-range", fmt.Sprintf("%g,%g", c.RatioRange[0], c.RatioRange[1])},
		{"--cat-max-ratio", fmt.Sprint(c.CatMaxRatio)},
		{"--no-photometric", fmt.Sprint(c.NoPhotometric)},
		{"--batch", fmt.Sprint(c.Batch)},
		{"--iters", fmt.Sprint(c.Iters)},
		{"--lr", fmt.Sprint(c.LR)},
		{"--momentum", fmt.Sprint(c.Momentum)},
		{"--weight-decay", fmt.Sprint(c.WeightDec)},
		{"--poly-power", fmt.Sprint(c.PolyPower)},
		{"--min-lr", fmt.Sprint(c.MinLR)},
		{"--eval-every", fmt.Sprint(c.EvalEvery)},
		{"--ckpt-every", fmt.Sprint(c.CkptEvery)},
		{"--split", c.Split},
		{"--val-split", c.ValSplit},
		{"--test-scale", size(c.TestScale)},
		{"--eval-mode", c.EvalMode},
	}
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "  %-17s %s\n", l[0], l[1])
	}
	if c.EvalMode == EvalSlide {
		fmt.Fprintf(&b, "  (slide windows %dx%d, stride %d)\n", c.Crop, c.Crop, max(1, c.Crop*2/3))
	}
	return b.String()
}
