package infer_test

import (
	"io"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/segkit/segkit/segmentation/internal/segtest"

	"github.com/segkit/segkit/segmentation/checkpoint"
	"github.com/segkit/segkit/segmentation/infer"
	"github.com/segkit/segkit/segmentation/train"
	"github.com/segkit/segkit/voc"
)

// trainedPredictor trains the tiny configuration and loads its best checkpoint.
func trainedPredictor(t *testing.T) *infer.Predictor {
	t.Helper()
	c := segtest.TinyConfig(t)
	sum, err := (&train.Run{Cfg: c, Out: io.Discard, NoBar: true}).Train()
	if err != nil {
		t.Fatal(err)
	}
	p, err := infer.NewPredictor(filepath.Join(sum.Dir, "best.safetensors"), checkpoint.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func testImage(w, h int, symmetric bool) voc.RGB {
	img := voc.RGB{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			xx := x
			if symmetric && x >= w/2 {
				xx = w - 1 - x
			}
			for c := 0; c < 3; c++ {
				img.Pix[3*(y*w+x)+c] = uint8((xx*37 + y*11*(c+1) + xx*y) % 256)
			}
		}
	}
	return img
}

func TestPredictions(t *testing.T) {
	p := trainedPredictor(t)
	// Labels at the image's own size, odd and portrait sizes included.
	for _, s := range [][2]int{{37, 53}, {61, 29}, {32, 32}} {
		labels, err := p.Segment(testImage(s[0], s[1], false))
		if err != nil {
			t.Fatal(err)
		}
		if len(labels) != s[0]*s[1] {
			t.Errorf("%d×%d image: %d labels", s[0], s[1], len(labels))
		}
	}
	// Sliding windows equal the whole image when one window is exactly the image (the run's
	// 32 crop; 32×32 images stay 32×32 under the test transform).
	img := testImage(32, 32, false)
	whole, err := p.Segment(img)
	if err != nil {
		t.Fatal(err)
	}
	p.Inference.Slide, p.Inference.Crop = true, 32
	slide, err := p.Segment(img)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(whole, slide) {
		t.Error("slide mode with one window differs from whole mode")
	}
	p.Inference.Slide = false
	// Flip TTA on a mirror-symmetric image gives a mirror-symmetric prediction.
	p.Inference.Flip = true
	sym := testImage(40, 24, true)
	labels, err := p.Segment(sym)
	if err != nil {
		t.Fatal(err)
	}
	for y := 0; y < 24; y++ {
		for x := 0; x < 40; x++ {
			if labels[y*40+x] != labels[y*40+39-x] {
				t.Fatalf("flip TTA on a symmetric image: (%d, %d) and its mirror differ", y, x)
			}
		}
	}
}

func TestOverlay(t *testing.T) {
	img := testImage(5, 3, false)
	labels := []uint8{0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6}
	o := infer.Overlay(img, labels, 0, nil)
	c := infer.Colorize(labels, 5, 3, nil)
	full := infer.Overlay(img, labels, 1, nil)
	for i := 0; i < 15; i++ {
		for ch := 0; ch < 3; ch++ {
			if o.Pix[4*i+ch] != img.Pix[3*i+ch] {
				t.Fatalf("opacity 0 pixel %d differs from the image", i)
			}
			if full.Pix[4*i+ch] != c.Pix[4*i+ch] {
				t.Fatalf("opacity 1 pixel %d differs from the colours", i)
			}
		}
	}
}

// A checkpoint's palette colours its classes; classes past its end keep VOC's colours.
func TestPalette(t *testing.T) {
	pal := infer.Palette{{10, 20, 30}, {40, 50, 60}}
	c := infer.Colorize([]uint8{1, 0, 2}, 3, 1, pal)
	r, g, b, _ := voc.Palette[2].RGBA()
	want := []uint8{40, 50, 60, 255, 10, 20, 30, 255, uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), 255}
	if !slices.Equal(c.Pix, want) {
		t.Errorf("colours %v, want %v", c.Pix, want)
	}
}

// mirrorRGB flips an image left to right.
func mirrorRGB(img voc.RGB) voc.RGB {
	out := voc.RGB{W: img.W, H: img.H, Pix: make([]uint8, len(img.Pix))}
	for y := 0; y < img.H; y++ {
		for x := 0; x < img.W; x++ {
			copy(out.Pix[3*(y*img.W+img.W-1-x):][:3], img.Pix[3*(y*img.W+x):])
		}
	}
	return out
}

// maxDiff is the largest absolute difference of two score maps.
func maxDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// TTA averages the softmax of its runs: multi-scale gives the mean of the single-scale
// probabilities, flip the mean of the image's and the mirrored prediction of the mirrored image
// (a 32×32 image is not resized at scale 1, so the mirror commutes with the test transform);
// Predict takes the argmax of that mean, and scales {1} are the plain prediction.
func TestTTAValues(t *testing.T) {
	p := trainedPredictor(t)
	base := p.Inference
	img := testImage(32, 32, false)
	probs := func(inf infer.Inference, im voc.RGB) []float32 {
		t.Helper()
		v, c, err := inf.Probabilities(p.Net, im)
		if err != nil {
			t.Fatal(err)
		}
		if c != len(p.Classes) || len(v) != c*im.W*im.H {
			t.Fatalf("%d classes, %d scores for a %d×%d image", c, len(v), im.W, im.H)
		}
		return v
	}
	labels := func(inf infer.Inference) []uint8 {
		t.Helper()
		l, err := inf.Predict(p.Net, img)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	argmax := func(v []float32) []uint8 {
		n := img.W * img.H
		out := make([]uint8, n)
		for i := range out {
			for k := 1; k < len(p.Classes); k++ {
				if v[k*n+i] > v[int(out[i])*n+i] {
					out[i] = uint8(k)
				}
			}
		}
		return out
	}
	check := func(name string, inf infer.Inference, parts ...[]float32) {
		t.Helper()
		if maxDiff(parts[0], parts[1]) < 1e-3 {
			t.Fatalf("%s: the runs agree to %g, the check would prove nothing", name, maxDiff(parts[0], parts[1]))
		}
		want := make([]float32, len(parts[0]))
		for i := range want {
			want[i] = (parts[0][i] + parts[1][i]) / 2
		}
		if d := maxDiff(probs(inf, img), want); d > 1e-6 {
			t.Errorf("%s: probabilities differ from the mean of the runs by %g", name, d)
		}
		if got := labels(inf); !slices.Equal(got, argmax(want)) {
			t.Errorf("%s: labels are not the argmax of the mean of the runs", name)
		}
	}
	at := func(scales ...float64) infer.Inference {
		inf := base
		inf.Scales = scales
		return inf
	}
	check("scales 0.75 and 1.25", at(0.75, 1.25), probs(at(0.75), img), probs(at(1.25), img))
	flip := base
	flip.Flip = true
	mirrored := probs(base, mirrorRGB(img))
	check("flip", flip, probs(base, img), infer.Mirror(mirrored, len(p.Classes), img.H, img.W))
	if !slices.Equal(labels(at(1)), labels(base)) || maxDiff(probs(at(1), img), probs(base, img)) != 0 {
		t.Error("scales {1} differ from the plain prediction")
	}
}

// A batch gives each image the labels, and the logits, of running it alone, bit for bit:
// whole images, slide windows and TTA (batch 5 of 37×53 makes the 1/4-resolution convolutions
// take Winograd where one image does not, hence the per-image Winograd decision).
func TestSegmentBatch(t *testing.T) {
	p := trainedPredictor(t)
	imgs := make([]voc.RGB, 5)
	for i := range imgs {
		imgs[i] = testImage(37, 53, false)
		for j := range imgs[i].Pix {
			imgs[i].Pix[j] += uint8(j*i) % 31
		}
	}
	for _, mode := range []struct {
		name string
		set  func(*infer.Inference)
	}{
		{"whole", func(*infer.Inference) {}},
		{"whole at 96×96", func(inf *infer.Inference) { inf.Aug.Scale = [2]int{512, 96} }},
		{"slide", func(inf *infer.Inference) { inf.Slide, inf.Crop, inf.Stride = true, 32, 16 }},
		{"flip+ms", func(inf *infer.Inference) { inf.Flip, inf.Scales = true, []float64{0.75, 1.25} }},
	} {
		inf := p.Inference
		mode.set(&inf)
		batch, c, err := infer.Scores(inf, p.Net, imgs, true)
		if err != nil {
			t.Fatal(err)
		}
		labels, err := inf.PredictBatch(p.Net, imgs)
		if err != nil {
			t.Fatal(err)
		}
		for i, img := range imgs {
			one, c1, err := infer.Scores(inf, p.Net, []voc.RGB{img}, true)
			if err != nil {
				t.Fatal(err)
			}
			if c1 != c || !slices.Equal(one[0], batch[i]) {
				t.Errorf("%s: image %d's scores differ in a batch of %d", mode.name, i, len(imgs))
			}
			l, err := inf.Predict(p.Net, img)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(l, labels[i]) {
				t.Errorf("%s: image %d's labels differ in a batch of %d", mode.name, i, len(imgs))
			}
		}
	}
	if _, err := p.SegmentBatch([]voc.RGB{testImage(37, 53, false), testImage(53, 37, false)}); err == nil {
		t.Error("a batch of two sizes was accepted")
	}
}
