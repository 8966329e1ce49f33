package train

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/segkit/segkit/segmentation/internal/segtest"

	"github.com/segkit/segkit/dataset"
	"github.com/segkit/segkit/dataset/datasettest"
	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/segmentation/checkpoint"
	"github.com/segkit/segkit/segmentation/infer"
	"github.com/segkit/segkit/voc"
)

// A run stopped at iteration 3 and resumed gives the same losses, bit for bit, and the same
// final weights as an uninterrupted run: weights, momentum, BN statistics, alphas and the data
// position all come back.
func TestResumeEqualsUninterrupted(t *testing.T) {
	c := segtest.TinyConfig(t)
	whole := &Run{Cfg: c, Out: io.Discard, NoBar: true}
	if _, err := whole.Train(); err != nil {
		t.Fatal(err)
	}
	c2 := c
	c2.Out = t.TempDir()
	first := &Run{Cfg: c2, Out: io.Discard, NoBar: true, StopAt: 3}
	if _, err := first.Train(); err != nil {
		t.Fatal(err)
	}
	second := &Run{Out: io.Discard, NoBar: true, Resume: filepath.Join(c2.Out, "run")}
	sum, err := second.Train()
	if err != nil {
		t.Fatal(err)
	}
	a, b := segtest.Losses(t, filepath.Join(c.Out, "run")), segtest.Losses(t, sum.Dir)
	for it := 1; it <= c.Iters; it++ {
		if a[it] != b[it] || a[it] == 0 {
			t.Errorf("iteration %d: loss %v uninterrupted, %v resumed", it, a[it], b[it])
		}
	}
	for _, p := range whole.net.Params.All() {
		q := second.net.Params.Get(p.Name)
		for i, v := range p.Data() {
			if q.Data()[i] != v {
				t.Fatalf("%s[%d] = %v resumed, %v uninterrupted", p.Name, i, q.Data()[i], v)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(sum.Dir, "metrics.json")); err != nil {
		t.Error("no metrics.json after the resumed run finished")
	}
}

// A short training on generated data lowers the loss.
func TestTrainingLowersTheLoss(t *testing.T) {
	c := segtest.TinyConfig(t)
	c.Iters, c.Batch, c.AlphaLR, c.LR = 80, 4, 0.001, 0.05
	if _, err := (&Run{Cfg: c, Out: io.Discard, NoBar: true}).Train(); err != nil {
		t.Fatal(err)
	}
	l := segtest.Losses(t, filepath.Join(c.Out, "run"))
	var early, late float64
	for i := 1; i <= 5; i++ {
		early += l[i]
		late += l[c.Iters-5+i]
	}
	t.Logf("loss over the first 5 iterations %.3f, over the last 5 %.3f", early/5, late/5)
	if !(late < 0.85*early) {
		t.Errorf("loss over the first 5 iterations %.3f, over the last 5 %.3f", early/5, late/5)
	}
}

// A folder dataset (images/, masks/, classes.txt, train.txt, val.txt) trains like the demo.
func TestFolderDataset(t *testing.T) {
	root := t.TempDir()
	d := voc.Demo{Seed: 2, N: 6, Size: 32}
	if err := d.WriteVOC(filepath.Join(root, "voc"), 2); err != nil {
		t.Fatal(err)
	}
	os.Rename(filepath.Join(root, "voc", "JPEGImages"), filepath.Join(root, "images"))
	os.Rename(filepath.Join(root, "voc", "SegmentationClass"), filepath.Join(root, "masks"))
	for _, split := range []string{"train", "val"} {
		os.Rename(filepath.Join(root, "voc", "ImageSets", "Segmentation", split+".txt"), filepath.Join(root, split+".txt"))
	}
	c := segtest.TinyConfig(t)
	c.Data, c.Iters = root, 2
	if _, _, err := segmentation.OpenData(c); err == nil || !strings.Contains(err.Error(), "classes.txt") {
		t.Errorf("without classes.txt: %v", err)
	}
	os.WriteFile(filepath.Join(root, "classes.txt"), []byte(strings.Join(voc.DemoClasses, "\n")), 0o644)
	train, val, err := segmentation.OpenData(c)
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 4 || val.Len() != 2 || len(train.Classes()) != 8 {
		t.Errorf("train %d, val %d, classes %d", train.Len(), val.Len(), len(train.Classes()))
	}
	if _, err := (&Run{Cfg: c, Out: io.Discard, NoBar: true}).Train(); err != nil {
		t.Fatal(err)
	}
}

// Every layout, as downloaded, trains an iteration with its recipe (the crop scaled down to 32,
// the scales with it) and evaluates, its layout recognised by its files; config.json and the
// checkpoint hold the dataset, its labels and the test protocol, and eval's data opening
// (segmentation.OpenData on the checkpoint's settings) gives the dataset's classes.
func TestLayoutsTrain(t *testing.T) {
	tree := datasettest.Tree{Demo: voc.Demo{Seed: 4, N: 5, Size: 40}, Val: 2}
	for _, name := range []string{dataset.CamVid, dataset.Cityscapes, dataset.ADE20K, dataset.PascalContext59, dataset.Folder, dataset.VOC} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			if _, err := tree.Write(name, root); err != nil {
				t.Fatal(err)
			}
			r, err := segmentation.RecipeFor(name)
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
			var saved segmentation.Config
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
			ck, err := checkpoint.LoadCheckpoint(filepath.Join(sum.Dir, "best.safetensors"))
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
			inf := infer.ForConfig(ck.State.Config)
			if inf.Slide != (want.EvalMode == segmentation.EvalSlide) || inf.Aug.Scale != want.TestScale || inf.Crop != 32 {
				t.Errorf("test protocol %+v", inf)
			}
			_, val, err := segmentation.OpenData(ck.State.Config)
			if err != nil || val.Len() != 2 || !slices.Equal(val.Classes(), classes) {
				t.Errorf("the checkpoint's data: %v", err)
			}
		})
	}
}

// A model trained with fixed resizing (here mmseg's) starts a DynOPool run: every weight loads by
// name (a stride-2 conv becomes a pool and a stride-1 conv with the same weights); only the
// alphas are the run's own.
func TestPretrainedIntoDynOPool(t *testing.T) {
	c := segtest.TinyConfig(t)
	c.Resize, c.Pretrained, c.Iters = "dynopool", segtest.MMSegFixture, 1
	var out strings.Builder
	r := &Run{Cfg: c, Out: &out, NoBar: true}
	if _, err := r.Train(); err != nil {
		t.Fatal(err)
	}
	log := out.String()
	for _, want := range []string{"mmseg HRNetV2-w18_small_v1", "skipped: pools.stem.alpha, pools.transition1.alpha, pools.transition2.alpha, pools.transition3.alpha"} {
		if !strings.Contains(log, want) {
			t.Errorf("the run's output lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "missing") || strings.Contains(log, "mismatched") {
		t.Errorf("not every weight loaded:\n%s", log)
	}
	c.Model = "w18_small_v2"
	c.Name = "v2"
	if _, err := (&Run{Cfg: c, Out: io.Discard, NoBar: true}).Train(); err == nil || !strings.Contains(err.Error(), "--model w18_small_v1") {
		t.Errorf("an HRNetV2-w18_small_v1 file into a w18_small_v2 run: %v", err)
	}
}
