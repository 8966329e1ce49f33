package infer

import (
	"encoding/json"
	"testing"

	"github.com/segkit/segkit/segmentation/internal/segtest"

	"github.com/segkit/segkit/internal/numcheck"
	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/segmentation/checkpoint"
	"github.com/segkit/segkit/voc"
)

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

// An mmseg model's test path as mmseg's: the logits go 1/4 → network input (75×100) → image
// (45×60), and slide windows larger than the image (80×80 on 75 rows) are not padded.
func TestMMSegTestPath(t *testing.T) {
	g := segtest.ReadImportGoldens(t)
	im, err := checkpoint.ImportModel(segtest.MMSegFixture, checkpoint.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	inf := ForConfig(im.State.Config)
	if !inf.MMSeg || inf.AlignCorners {
		t.Fatalf("test inference of an mmseg model: MMSeg %v, AlignCorners %v", inf.MMSeg, inf.AlignCorners)
	}
	x := g.Input.Dense(t).Float32s()
	full, _, err := inf.logits(im.Net, x, 75, 100, 45, 60)
	if err != nil {
		t.Fatal(err)
	}
	if e := numcheck.RelErr(full, g.MMSegOri.Data); !(e <= 1e-4) {
		t.Errorf("logits at the image's size: relative error %.3g", e)
	}
	inf.Crop, inf.Stride = 80, 40
	slide, _, err := inf.slide(im.Net, x, 75, 100)
	if err != nil {
		t.Fatal(err)
	}
	want := g.Slide
	if got := numcheck.Projection(slide); !numcheck.Close(got, want.Proj, 1e-5*want.Norm) {
		t.Errorf("slide logits: projection %.7g, want %.7g", got, want.Proj)
	}
	every7 := make([]float32, 0, len(want.Every7.Data))
	for i := 0; i < len(slide); i += 7 {
		every7 = append(every7, slide[i])
	}
	if e := numcheck.RelErr(every7, want.Every7.Data); !(e <= 1e-4) {
		t.Errorf("slide logits: relative error %.3g", e)
	}
	hw := 75 * 100
	wrong := 0
	for i := 0; i < hw; i++ {
		best := 0
		for k := 1; k < 8; k++ {
			if slide[k*hw+i] > slide[best*hw+i] {
				best = k
			}
		}
		if best != want.Argmax[i] {
			wrong++
		}
	}
	if wrong > hw/1000 { // near-ties may flip
		t.Errorf("slide argmax differs from mmseg's at %d of %d pixels", wrong, hw)
	}
	inf.MMSeg = false // segkit pads the windows: other logits
	padded, _, err := inf.slide(im.Net, x, 75, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got := numcheck.Projection(padded); numcheck.Close(got, want.Proj, 1e-3*want.Norm) {
		t.Error("padded windows give mmseg's slide logits: the test cannot tell them apart")
	}
}

// Settings written before the recipes existed (no dataset, scale, ratio, ... in config.json)
// keep the earlier behaviour: VOC's recipe at 4·crop × crop, whole-image evaluation.
func TestOldConfig(t *testing.T) {
	var c segmentation.Config
	if err := json.Unmarshal([]byte(`{"data": "", "model": "w18_small_v1", "resize": "dynopool", "crop": 96, "batch": 8}`), &c); err != nil {
		t.Fatal(err)
	}
	a := c.TrainAugment()
	if want := voc.DefaultAugment(96); a != want {
		t.Errorf("training transform %+v, want %+v", a, want)
	}
	inf := ForConfig(c)
	if inf.Slide || inf.Aug.Scale != [2]int{384, 96} || inf.Crop != 96 || inf.Stride != 64 {
		t.Errorf("test protocol %+v", inf)
	}
	if h, w := c.CropSize(); h != 96 || w != 96 {
		t.Errorf("crop %dx%d", h, w)
	}
}
