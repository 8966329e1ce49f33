package segmentation

import (
	"io"
	"path/filepath"
	"slices"
	"testing"

	"github.com/segkit/segkit/voc"
)

// trainedPredictor trains the tiny configuration and loads its best checkpoint.
func trainedPredictor(t *testing.T) *Predictor {
	t.Helper()
	c := tinyConfig(t)
	sum, err := (&Run{Cfg: c, Out: io.Discard, NoBar: true}).Train()
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPredictor(filepath.Join(sum.Dir, "best.safetensors"))
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
	whole, _ := p.Segment(img)
	p.Inference.Slide, p.Inference.Crop = true, 32
	slide, _ := p.Segment(img)
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
	o := Overlay(img, labels, 0)
	c := Colorize(labels, 5, 3)
	full := Overlay(img, labels, 1)
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
