// Package infer segments images with a trained model: whole images or sliding windows, with
// test-time augmentation (Inference); a checkpoint ready to use (Predictor); the outputs drawn
// (Colorize, Overlay, Outputs); and evaluation, of a checkpoint on a dataset split or of saved
// masks against ground truth.
package infer

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"gorgonia.org/tensor"

	"github.com/segkit/segkit/dataset"
	"github.com/segkit/segkit/importer"
	"github.com/segkit/segkit/internal/kernels"
	"github.com/segkit/segkit/metrics"
	"github.com/segkit/segkit/nn"
	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/voc"
)

// Inference says how a sample is segmented: whole image or sliding windows of Crop (stride
// Stride), at the test scale times each of Scales, and mirrored too with Flip; the softmax
// probabilities of all of these are averaged.
type Inference struct {
	Aug    voc.Augment
	Slide  bool
	Crop   int
	Stride int
	Scales []float64 // 1 when empty
	Flip   bool
	// MMSeg follows mmsegmentation's test path, for models imported from it: logits go from
	// the network's 1/4 resolution to the network input, then to the image (two resizes), and
	// slide windows larger than the image are not padded (the network runs on the smaller patch).
	MMSeg bool
	// AlignCorners resizes the logits with align_corners=True (official models trained so).
	AlignCorners bool
}

// ForConfig is a run's test protocol: its evaluation mode (whole images, or slide windows
// of the crop with two-thirds overlap) at its test scale, and the conventions of an imported
// model.
func ForConfig(c segmentation.Config) Inference {
	return Inference{Aug: c.TestAugment(), Slide: c.EvalMode == segmentation.EvalSlide, Crop: c.Crop, Stride: max(1, c.Crop*2/3),
		MMSeg: c.Convention == importer.ConventionMMSeg, AlignCorners: c.AlignCorners}
}

// MultiScales are the test-time scales of "ms" (voc-miou.md).
var MultiScales = []float64{0.5, 0.75, 1.0, 1.25, 1.5, 1.75}

// SetOptions applies the command-line mode (whole or slide; "" keeps the run's) and TTA list
// (flip, ms).
func (inf *Inference) SetOptions(mode, tta string) error {
	switch mode {
	case "":
	case "whole":
		inf.Slide = false
	case "slide":
		inf.Slide = true
	default:
		return fmt.Errorf("--mode %q: whole or slide", mode)
	}
	for _, t := range strings.Split(tta, ",") {
		switch strings.TrimSpace(t) {
		case "":
		case "flip":
			inf.Flip = true
		case "ms":
			inf.Scales = MultiScales
		default:
			return fmt.Errorf("--tta %q: a list of flip and ms", tta)
		}
	}
	return nil
}

// logits runs the net on a normalised 3×h×w image and returns C×oh×ow logits, resized from the
// network's 1/4 resolution: at once, or (MMSeg) through the network input's size h×w.
func (inf Inference) logits(net *nn.Net, img []float32, h, w, oh, ow int) ([]float32, int, error) {
	l, c, err := inf.logitsBatch(net, [][]float32{img}, h, w, oh, ow)
	if err != nil {
		return nil, 0, err
	}
	return l[0], c, nil
}

// logitsBatch is logits for images of the same size, run through the net as one N×3×h×w batch.
func (inf Inference) logitsBatch(net *nn.Net, imgs [][]float32, h, w, oh, ow int) ([][]float32, int, error) {
	x := imgs[0]
	if len(imgs) > 1 {
		x = make([]float32, 0, len(imgs)*3*h*w)
		for _, img := range imgs {
			x = append(x, img...)
		}
	}
	out, err := net.Predict(tensor.New(tensor.WithShape(len(imgs), 3, h, w), tensor.WithBacking(x)))
	if err != nil {
		return nil, 0, err
	}
	s := out.Shape()
	c, all, lh, lw := s[1], out.Float32s(), s[2], s[3]
	res := make([][]float32, len(imgs))
	for i := range imgs {
		l, lh, lw := all[i*c*lh*lw:(i+1)*c*lh*lw], lh, lw
		if inf.MMSeg && (h != oh || w != ow) {
			l, lh, lw = inf.resize(l, c, lh, lw, h, w), h, w
		}
		res[i] = inf.resize(l, c, lh, lw, oh, ow)
	}
	return res, c, nil
}

// resize resizes c planes of h×w bilinearly to oh×ow.
func (inf Inference) resize(t []float32, c, h, w, oh, ow int) []float32 {
	out := make([]float32, c*oh*ow)
	kernels.Bilinear{Planes: c, H: h, W: w, OH: oh, OW: ow, AlignCorners: inf.AlignCorners}.Forward(t, out)
	return out
}

// slide runs crop×crop windows (the last ones shifted inside the image) and averages the logits
// where windows overlap. Where the image is smaller than a window, the window is padded with
// zeros (the normalised mean), or (MMSeg) cut to the image.
func (inf Inference) slide(net *nn.Net, img []float32, h, w int) ([]float32, int, error) {
	l, c, err := inf.slideBatch(net, [][]float32{img}, h, w)
	if err != nil {
		return nil, 0, err
	}
	return l[0], c, nil
}

// slideBatch is slide for images of the same size: each window position runs as one batch.
func (inf Inference) slideBatch(net *nn.Net, imgs [][]float32, h, w int) ([][]float32, int, error) {
	crop, stride := inf.Crop, max(inf.Stride, 1)
	starts := func(n int) []int {
		var s []int
		for p := 0; ; p += stride {
			if p+crop >= n {
				return append(s, max(n-crop, 0))
			}
			s = append(s, p)
		}
	}
	sums := make([][]float32, len(imgs))
	count := make([]float32, h*w)
	c := 0
	for _, y0 := range starts(h) {
		for _, x0 := range starts(w) {
			wh, ww := min(crop, h), min(crop, w)
			winH, winW := crop, crop
			if inf.MMSeg {
				winH, winW = wh, ww
			}
			wins := make([][]float32, len(imgs))
			for i, img := range imgs {
				win := make([]float32, 3*winH*winW)
				for ch := 0; ch < 3; ch++ {
					for y := 0; y < wh; y++ {
						copy(win[(ch*winH+y)*winW:(ch*winH+y)*winW+ww], img[(ch*h+y0+y)*w+x0:])
					}
				}
				wins[i] = win
			}
			ls, nc, err := inf.logitsBatch(net, wins, winH, winW, winH, winW)
			if err != nil {
				return nil, 0, err
			}
			c = nc
			for i, l := range ls {
				if sums[i] == nil {
					sums[i] = make([]float32, c*h*w)
				}
				sum := sums[i]
				for k := 0; k < c; k++ {
					for y := 0; y < wh; y++ {
						for x := 0; x < ww; x++ {
							sum[(k*h+y0+y)*w+x0+x] += l[(k*winH+y)*winW+x]
						}
					}
				}
			}
			for y := 0; y < wh; y++ {
				for x := 0; x < ww; x++ {
					count[(y0+y)*w+x0+x]++
				}
			}
		}
	}
	for _, sum := range sums {
		for k := 0; k < c; k++ {
			for i, n := range count {
				sum[k*h*w+i] /= n
			}
		}
	}
	return sums, c, nil
}

// Probabilities returns the class probabilities (C×H×W at the image's size) and C.
func (inf Inference) Probabilities(net *nn.Net, img voc.RGB) ([]float32, int, error) {
	p, c, err := inf.scores(net, []voc.RGB{img}, true)
	if err != nil {
		return nil, 0, err
	}
	return p[0], c, nil
}

// scores returns C×H×W class scores at the images' size (all the same): softmax probabilities
// averaged over the runs (scales, flips), or, for a single run with probs false, the logits
// themselves (same argmax). Each run of the images goes through the net as one batch.
func (inf Inference) scores(net *nn.Net, images []voc.RGB, probs bool) ([][]float32, int, error) {
	scales := inf.Scales
	if len(scales) == 0 {
		scales = []float64{1}
	}
	H, W := images[0].H, images[0].W
	for _, im := range images[1:] {
		if im.W != W || im.H != H {
			return nil, 0, fmt.Errorf("a batch of images of different sizes (%d×%d and %d×%d)", W, H, im.W, im.H)
		}
	}
	acc := make([][]float32, len(images))
	c, runs := 0, 0
	for _, sc := range scales {
		aug := inf.Aug
		aug.Scale = [2]int{int(float64(aug.Scale[0])*sc + 0.5), int(float64(aug.Scale[1])*sc + 0.5)}
		exs := make([]voc.Example, len(images))
		for i, im := range images {
			exs[i] = aug.Test(im) // same size in, same size out
		}
		eh, ew := exs[0].H, exs[0].W
		for _, flip := range []bool{false, true} {
			if flip && !inf.Flip {
				continue
			}
			imgs := make([][]float32, len(exs))
			for i, ex := range exs {
				imgs[i] = ex.Image
				if flip {
					imgs[i] = mirror(ex.Image, 3, eh, ew)
				}
			}
			var full [][]float32
			var err error
			if inf.Slide {
				var ls [][]float32
				if ls, c, err = inf.slideBatch(net, imgs, eh, ew); err == nil {
					full = make([][]float32, len(ls))
					for i, l := range ls {
						full[i] = inf.resize(l, c, eh, ew, H, W)
					}
				}
			} else {
				full, c, err = inf.logitsBatch(net, imgs, eh, ew, H, W)
			}
			if err != nil {
				return nil, 0, err
			}
			if !probs && len(scales) == 1 && !inf.Flip {
				return full, c, nil
			}
			for i, f := range full {
				if flip {
					f = mirror(f, c, H, W)
				}
				softmax(f, c, H*W)
				if acc[i] == nil {
					acc[i] = make([]float32, len(f))
				}
				for j, v := range f {
					acc[i][j] += v
				}
			}
			runs++
		}
	}
	for _, a := range acc {
		for i := range a {
			a[i] /= float32(runs)
		}
	}
	return acc, c, nil
}

// Predict returns the label of every pixel of img.
func (inf Inference) Predict(net *nn.Net, img voc.RGB) ([]uint8, error) {
	l, err := inf.PredictBatch(net, []voc.RGB{img})
	if err != nil {
		return nil, err
	}
	return l[0], nil
}

// PredictBatch returns the labels of every pixel of each image; the images must all have the
// same size, and every network run (each scale, flip and slide window) takes them as one batch.
func (inf Inference) PredictBatch(net *nn.Net, imgs []voc.RGB) ([][]uint8, error) {
	if len(imgs) == 0 {
		return nil, nil
	}
	ps, c, err := inf.scores(net, imgs, false)
	if err != nil {
		return nil, err
	}
	n := imgs[0].H * imgs[0].W
	idx := make([]int32, n)
	out := make([][]uint8, len(imgs))
	for i, p := range ps {
		kernels.Argmax(p, 1, c, n, idx)
		out[i] = make([]uint8, n)
		for j, v := range idx {
			out[i][j] = uint8(v)
		}
	}
	return out, nil
}

func mirror(t []float32, planes, h, w int) []float32 {
	out := make([]float32, len(t))
	for p := 0; p < planes*h; p++ {
		row, dst := t[p*w:(p+1)*w], out[p*w:(p+1)*w]
		for x, v := range row {
			dst[w-1-x] = v
		}
	}
	return out
}

// softmax normalises C×n scores per pixel in place.
func softmax(t []float32, c, n int) {
	for i := 0; i < n; i++ {
		m := t[i]
		for k := 1; k < c; k++ {
			m = max(m, t[k*n+i])
		}
		var z float64
		for k := 0; k < c; k++ {
			e := math.Exp(float64(t[k*n+i] - m))
			t[k*n+i] = float32(e)
			z += e
		}
		for k := 0; k < c; k++ {
			t[k*n+i] = float32(float64(t[k*n+i]) / z)
		}
	}
}

// Evaluate segments every sample of data and returns the confusion matrix over all of them;
// each is also passed to save when it is not nil. Memory does not grow with the number of images.
func (inf Inference) Evaluate(net *nn.Net, data dataset.Dataset, save func(id string, m voc.Mask) error) (*metrics.Confusion, error) {
	return inf.EvaluateWith(net, data, save, Hooks{})
}

// Hooks let a training run's evaluation stop on its interrupt and leave bad samples out.
type Hooks struct {
	Stop func(i int) bool       // when set, asked before sample i: true ends the evaluation with ErrStopped
	Skip func(i int, err error) // when set, a sample that fails to load goes here and is left out
}

// ErrStopped is returned by an evaluation that its Hooks.Stop stopped between two images.
var ErrStopped = errors.New("the evaluation was stopped")

// EvaluateWith is Evaluate with hooks.
func (inf Inference) EvaluateWith(net *nn.Net, data dataset.Dataset, save func(id string, m voc.Mask) error, h Hooks) (*metrics.Confusion, error) {
	conf := metrics.NewConfusion(len(data.Classes()), voc.Ignore)
	for i := 0; i < data.Len(); i++ {
		// Between images: an image takes a fraction of a second, the whole split minutes.
		if h.Stop != nil && h.Stop(i) {
			return nil, ErrStopped
		}
		s, err := data.Load(i)
		if err != nil && h.Skip != nil {
			h.Skip(i, err)
			continue
		}
		if err != nil {
			return nil, err
		}
		pred, err := inf.Predict(net, s.Image)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.ID, err)
		}
		if err := conf.Add(s.Mask.Labels, pred); err != nil {
			return nil, fmt.Errorf("%s: %w", s.ID, err)
		}
		if save != nil {
			if err := save(s.ID, voc.Mask{W: s.Image.W, H: s.Image.H, Labels: pred}); err != nil {
				return nil, err
			}
		}
	}
	return conf, nil
}
