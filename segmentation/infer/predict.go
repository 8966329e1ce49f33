package infer

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/internal/atomicfile"
	"github.com/segkit/segkit/nn"
	"github.com/segkit/segkit/segmentation/checkpoint"
	"github.com/segkit/segkit/voc"
)

// Predictor segments images with a trained model.
type Predictor struct {
	Net       *nn.Net
	Model     *hrnet.Model
	Classes   []string
	Palette   Palette // nil: VOC's
	Inference Inference
	State     checkpoint.State // the checkpoint's (imported models: as converted)
}

// NewPredictor loads a checkpoint (or a PyTorch model, imported: checkpoint.OpenCheckpoint); inference
// defaults to the run's test transform.
func NewPredictor(path string, imp checkpoint.ImportOptions) (*Predictor, error) {
	ck, err := checkpoint.OpenCheckpoint(path, imp)
	if err != nil {
		return nil, err
	}
	if len(ck.State.Classes) == 0 {
		return nil, fmt.Errorf("%s: the checkpoint does not name its classes", path)
	}
	m, net, err := checkpoint.LoadModel(ck, len(ck.State.Classes))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	net.PerImage = true // SegmentBatch: each image as alone
	return &Predictor{Net: net, Model: m, Classes: ck.State.Classes, Palette: ck.State.Palette,
		Inference: ForConfig(ck.State.Config), State: ck.State}, nil
}

// LatestCheckpoint is the best checkpoint of runs/latest, with a hint when there is none.
func LatestCheckpoint(runs string) (string, error) {
	path := filepath.Join(runs, "latest", "best.safetensors")
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("no checkpoint at %s: train one with 'segtrain' (the demo needs no data) or pass --checkpoint FILE", path)
	}
	return path, nil
}

// Segment returns the label of every pixel of img.
func (p *Predictor) Segment(img voc.RGB) ([]uint8, error) {
	return p.Inference.Predict(p.Net, img)
}

// SegmentBatch returns the labels of each image, all of one size, run through the network
// together (Inference.PredictBatch): the same labels as Segment one by one, faster per image.
func (p *Predictor) SegmentBatch(imgs []voc.RGB) ([][]uint8, error) {
	return p.Inference.PredictBatch(p.Net, imgs)
}

// RGB is the colour of class l: the palette's, or VOC's past its end.
func (p Palette) RGB(l uint8) [3]uint8 { return p.rgb(l) }

// Palette is a colour per class; classes past its end take VOC's colours.
type Palette [][3]uint8

func (p Palette) rgb(l uint8) [3]uint8 {
	if int(l) < len(p) {
		return p[l]
	}
	r, g, b, _ := voc.Palette[l].RGBA()
	return [3]uint8{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8)}
}

// Colorize paints labels with the palette.
func Colorize(labels []uint8, w, h int, pal Palette) *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	for i, l := range labels {
		c := pal.rgb(l)
		out.Pix[4*i], out.Pix[4*i+1], out.Pix[4*i+2], out.Pix[4*i+3] = c[0], c[1], c[2], 255
	}
	return out
}

// Overlay blends the colours of labels over img: opacity 0 is the image, 1 the colours.
func Overlay(img voc.RGB, labels []uint8, opacity float64, pal Palette) *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, img.W, img.H))
	for i, l := range labels {
		c := pal.rgb(l)
		col := [3]float64{float64(c[0]), float64(c[1]), float64(c[2])}
		for c := 0; c < 3; c++ {
			out.Pix[4*i+c] = uint8((1-opacity)*float64(img.Pix[3*i+c]) + opacity*col[c] + 0.5)
		}
		out.Pix[4*i+3] = 255
	}
	return out
}

// Outputs are the files written per image.
type Outputs struct {
	Index, Color, Overlay bool
	Opacity               float64
	Palette               Palette // the colour and overlay files' (nil: VOC's)
}

// ParseFormat reads a list of index, color, overlay.
func ParseFormat(s string) (Outputs, error) {
	var o Outputs
	for _, f := range strings.Split(s, ",") {
		switch strings.TrimSpace(f) {
		case "index":
			o.Index = true
		case "color":
			o.Color = true
		case "overlay":
			o.Overlay = true
		default:
			return o, fmt.Errorf("--format %q: a list of index, color, overlay", s)
		}
	}
	return o, nil
}

// Encode returns one output of an image as its file holds it: "index" (PNG, class indices in
// the VOC palette), "color" (PNG) or "overlay" (JPEG at the outputs' opacity).
func (o Outputs) Encode(kind string, img voc.RGB, labels []uint8) ([]byte, error) {
	var buf bytes.Buffer
	var err error
	switch kind {
	case "index":
		return voc.EncodeMask(voc.Mask{W: img.W, H: img.H, Labels: labels})
	case "color":
		err = png.Encode(&buf, Colorize(labels, img.W, img.H, o.Palette))
	case "overlay":
		err = jpeg.Encode(&buf, Overlay(img, labels, o.Opacity, o.Palette), &jpeg.Options{Quality: 92})
	default:
		return nil, fmt.Errorf("unknown output %q (index, color, overlay)", kind)
	}
	return buf.Bytes(), err
}

// Write saves the outputs of one image as <out>/<name>.png, <name>_color.png, <name>_overlay.jpg.
func (o Outputs) Write(out, name string, img voc.RGB, labels []uint8) error {
	var errs []error
	for _, f := range []struct {
		on         bool
		kind, file string
	}{{o.Index, "index", name + ".png"}, {o.Color, "color", name + "_color.png"}, {o.Overlay, "overlay", name + "_overlay.jpg"}} {
		if !f.on {
			continue
		}
		data, err := o.Encode(f.kind, img, labels)
		if err == nil {
			err = atomicfile.WriteFile(filepath.Join(out, f.file), data, 0o644)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Share is one class's part of an image's pixels.
type Share struct {
	Class  uint8   `json:"class"`
	Name   string  `json:"name"`
	Pixels int     `json:"pixels"`
	Share  float64 `json:"share"` // 0–1
}

// ClassShares returns the classes present with their shares, largest first (ties: lower class
// first).
func ClassShares(labels []uint8, classes []string) []Share {
	var counts [256]int
	for _, l := range labels {
		counts[l]++
	}
	var out []Share
	for k, n := range counts {
		if n == 0 {
			continue
		}
		name := fmt.Sprintf("class %d", k)
		if k < len(classes) {
			name = classes[k]
		}
		out = append(out, Share{Class: uint8(k), Name: name, Pixels: n, Share: float64(n) / float64(len(labels))})
	}
	slices.SortStableFunc(out, func(a, b Share) int { return b.Pixels - a.Pixels })
	return out
}

// Shares returns "class 12.3%" for every class present, largest first.
func Shares(labels []uint8, classes []string) []string {
	var out []string
	for _, sh := range ClassShares(labels, classes) {
		out = append(out, fmt.Sprintf("%s %.1f%%", sh.Name, 100*sh.Share))
	}
	return out
}
