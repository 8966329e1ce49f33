package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segkit/segkit/dataset"
	"github.com/segkit/segkit/dataset/datasettest"
	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/voc"
)

func TestRecipeCommand(t *testing.T) {
	out, err := run("recipe")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range dataset.Names() {
		if !strings.Contains(out, "\n"+name+" ") {
			t.Errorf("the list lacks %s:\n%s", name, out)
		}
	}
	out, err = run("recipe", "cityscapes")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Cityscapes (--dataset cityscapes)", "19 classes: road, sidewalk", "configs/hrnet/fcn_hr18_512x1024_40k_cityscapes.py",
		"--crop            512x1024", "--scale           2048x1024", "--batch           8", "--iters           40000", "--test-scale      2048x1024",
		"--eval-mode       whole", "labelIds 0–33 are mapped", "--iters 80000"} {
		if !strings.Contains(out, want) {
			t.Errorf("recipe cityscapes lacks %q:\n%s", want, out)
		}
	}
	out, _ = run("recipe", "pascal_context")
	if !strings.Contains(out, "--eval-mode       slide") || !strings.Contains(out, "slide windows 480x480, stride 320") {
		t.Errorf("Pascal Context's test protocol:\n%s", out)
	}
	if _, err := run("recipe", "coco"); !isUsage(err) || !strings.Contains(err.Error(), "known: voc, cityscapes") {
		t.Errorf("unknown dataset: %v", err)
	}
}

// --help shows the recipe of --dataset (or of the layout --data holds) as the flags' defaults,
// and VOC's without either.
func TestDatasetHelp(t *testing.T) {
	out, err := run("--dataset", "ade20k", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"recipe of ade20k: configs/hrnet/fcn_hr18_512x512_80k_ade20k.py", "The defaults below are that recipe's",
		"(default 512)", "(default 2048x512)", "(default 80000)", "(default 8000)"} {
		if !strings.Contains(out, want) {
			t.Errorf("--dataset ade20k --help lacks %q", want)
		}
	}
	root := t.TempDir()
	if _, err := (datasettest.Tree{Demo: voc.Demo{Seed: 1, N: 3, Size: 24}, Val: 1}).Write(dataset.CamVid, root); err != nil {
		t.Fatal(err)
	}
	out, _ = run("--data", root, "--help")
	for _, want := range []string{"--data " + root + ": camvid recognised by train/, trainannot/", "(default 360x480)", "(default 480x360)"} {
		if !strings.Contains(out, want) {
			t.Errorf("--data CamVid --help lacks %q", want)
		}
	}
	out, _ = run("--help")
	if !strings.Contains(out, "H[xW]              training crop H or HxW") || !strings.Contains(out, "(default 20000)") || strings.Contains(out, "recipe of") {
		t.Errorf("plain --help:\n%s", out)
	}
}

// A CamVid tree as SegNet ships it (void 11) trains from the command line with no
// preprocessing, with CamVid's recipe scaled to the crop, and eval reports CamVid's classes.
func TestTrainCamVid(t *testing.T) {
	root, runs := t.TempDir(), t.TempDir()
	if _, err := (datasettest.Tree{Demo: voc.Demo{Seed: 1, N: 4, Size: 40}, Val: 2}).Write(dataset.CamVid, root); err != nil {
		t.Fatal(err)
	}
	out, err := run("--data", root, "--crop", "32", "--batch", "2", "--iters", "1", "--model", "w18_small_v1", "--resize", "fixed",
		"--eval-every", "0", "--out", runs, "--name", "cam", "--no-bar")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"recipe of camvid", "data: CamVid (recognised by train/, trainannot/ in " + root + ")",
		"crops 32x32 of images rescaled to 43x32", "11 classes"} {
		if !strings.Contains(out, want) {
			t.Errorf("training output lacks %q:\n%s", want, out)
		}
	}
	var cfg segmentation.Config
	raw, _ := os.ReadFile(filepath.Join(runs, "cam", "config.json"))
	if err := json.Unmarshal(raw, &cfg); err != nil || cfg.Dataset != dataset.CamVid || *cfg.IgnoreIndex != 11 || cfg.TestScale != [2]int{43, 32} {
		t.Errorf("config.json %s (%v)", raw, err)
	}
	out, err = run("eval", "--checkpoint", filepath.Join(runs, "cam", "best.safetensors"))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "2 images") || !strings.Contains(out, "Bicyclist") || !strings.Contains(out, "SignSymbol") {
		t.Errorf("eval does not report CamVid's classes:\n%s", out)
	}
}

// Wrong data flags are usage errors naming the flag; a root that is no layout lists what was
// looked for.
func TestDataFlagErrors(t *testing.T) {
	empty := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--data", empty}, "--data: " + empty + ": no dataset layout recognised; looked for images/, masks/ and classes.txt (folder)"},
		{[]string{"--dataset", "cityscapes"}, "--dataset cityscapes needs --data"},
		{[]string{"--data", empty, "--dataset", "coco"}, `unknown dataset "coco"`},
		{[]string{"--scale", "12"}, "LONGxSHORT"},
		{[]string{"--test-scale", "0x5"}, "LONGxSHORT"},
		{[]string{"--ratio-range", "2,1"}, "MIN,MAX"},
		{[]string{"--crop", "32x"}, "H or HxW"},
		{[]string{"--crop", "64x16"}, "--crop 64x16: at least 32"},
		{[]string{"--eval-mode", "tiles"}, `--eval-mode "tiles"`},
		{[]string{"--ignore-index", "300"}, "a mask value, 0–255"},
		{[]string{"--cat-max-ratio", "2"}, "--cat-max-ratio 2"},
	} {
		out, err := run(append(c.args, "--out", t.TempDir(), "--no-bar")...)
		if !isUsage(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want a usage error with %q\n%s", c.args, err, c.want, out)
		}
	}
}

func TestDataCityscapes(t *testing.T) {
	root := t.TempDir()
	files, err := (datasettest.Tree{Demo: voc.Demo{Seed: 1, N: 3, Size: 16}, Val: 1}).Write(dataset.Cityscapes, root)
	if err != nil {
		t.Fatal(err)
	}
	out, err := run("data", "cityscapes", root)
	if err != nil || !strings.Contains(out, "wrote 3 *_gtFine_labelTrainIds.png masks") {
		t.Errorf("%v\n%s", err, out)
	}
	if _, err := os.Stat(strings.Replace(files[0].Mask, "labelIds", "labelTrainIds", 1)); err != nil {
		t.Error(err)
	}
	if _, err := run("data", "cityscapes", root, "--workers", "0"); !isUsage(err) {
		t.Errorf("--workers 0: %v", err)
	}
}
