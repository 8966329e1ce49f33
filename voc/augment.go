package voc

import (
	"image"
	"math"
	"math/rand/v2"

	"github.com/disintegration/imaging"
)

// Example is a sample ready for the network: the normalised image, channels first (3×H×W), and
// its labels (H×W, Ignore where padded).
type Example struct {
	ID     string
	H, W   int
	Image  []float32
	Labels []uint8
}

// Augment is mmsegmentation's recipe for VOC: random rescale (a ratio of Scale, keeping the
// aspect), random crop (retried so that no class covers more than CatMaxRatio of it), horizontal
// flip, photometric distortion, normalisation and padding to the crop (image 0, label Ignore).
// The test transform only rescales to fit Scale and normalises.
type Augment struct {
	Scale       [2]int     // (long, short) target of the rescale: (2048, 512)
	Ratio       [2]float64 // random ratio range of Scale: (0.5, 2.0)
	Crop        [2]int     // crop (h, w): (512, 512)
	CatMaxRatio float64    // 0.75
	FlipProb    float64    // 0.5
	Photometric bool
	Mean, Std   [3]float32 // RGB, on 0–255 values
}

// DefaultAugment is the mmseg VOC recipe with a crop×crop crop (scale kept in proportion to
// 512: a 512 crop gives (2048, 512)).
func DefaultAugment(crop int) Augment {
	return Augment{
		Scale: [2]int{4 * crop, crop}, Ratio: [2]float64{0.5, 2.0}, Crop: [2]int{crop, crop},
		CatMaxRatio: 0.75, FlipProb: 0.5, Photometric: true,
		Mean: [3]float32{123.675, 116.28, 103.53}, Std: [3]float32{58.395, 57.12, 57.375},
	}
}

// Train applies the training transform with randomness from rng.
func (a Augment) Train(s Sample, rng *rand.Rand) Example {
	ratio := a.Ratio[0] + (a.Ratio[1]-a.Ratio[0])*rng.Float64()
	img, mask := rescale(s.Image, s.Mask, float64(a.Scale[0])*ratio, float64(a.Scale[1])*ratio)
	img, mask = a.randomCrop(img, mask, rng)
	if rng.Float64() < a.FlipProb {
		flip(img, mask)
	}
	if a.Photometric {
		photometric(img, rng)
	}
	return a.finish(s.ID, img, mask, a.Crop[0], a.Crop[1])
}

// Test applies the evaluation transform to an image: rescale to fit Scale, normalise (no labels:
// predictions are compared at the image's own size).
func (a Augment) Test(img RGB) Example {
	w, h := a.TestSize(img.W, img.H)
	if w != img.W || h != img.H {
		img = resizeRGB(img, w, h)
	}
	return a.finish("", img, Mask{}, img.H, img.W)
}

// TestSize is the size (w, h) the test transform rescales a w×h image to.
func (a Augment) TestSize(w, h int) (int, int) {
	return fit(w, h, float64(a.Scale[0]), float64(a.Scale[1]))
}

// fit returns the size that makes the long side fit long and the short side fit short, keeping
// the aspect (mmcv's rescale with keep_ratio).
func fit(w, h int, long, short float64) (int, int) {
	s := min(long/float64(max(w, h)), short/float64(min(w, h)))
	return max(1, int(float64(w)*s+0.5)), max(1, int(float64(h)*s+0.5))
}

// rescale resizes an image and its mask to fit (long, short): the image bilinearly, the mask by
// nearest neighbour.
func rescale(img RGB, mask Mask, long, short float64) (RGB, Mask) {
	w, h := fit(img.W, img.H, long, short)
	if w == img.W && h == img.H {
		return img, mask
	}
	return resizeRGB(img, w, h), resizeNearest(mask, w, h)
}

func resizeRGB(img RGB, w, h int) RGB {
	src := image.NewNRGBA(image.Rect(0, 0, img.W, img.H))
	for i := 0; i < img.W*img.H; i++ {
		copy(src.Pix[4*i:4*i+3], img.Pix[3*i:3*i+3])
		src.Pix[4*i+3] = 255
	}
	dst := imaging.Resize(src, w, h, imaging.Linear)
	out := RGB{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	for i := 0; i < w*h; i++ {
		copy(out.Pix[3*i:3*i+3], dst.Pix[4*i:4*i+3])
	}
	return out
}

// resizeNearest resizes labels as OpenCV's INTER_NEAREST: source index ⌊dst·src/dst⌋.
func resizeNearest(m Mask, w, h int) Mask {
	out := Mask{W: w, H: h, Labels: make([]uint8, w*h)}
	sx, sy := float64(m.W)/float64(w), float64(m.H)/float64(h)
	for y := 0; y < h; y++ {
		yy := min(int(float64(y)*sy), m.H-1)
		for x := 0; x < w; x++ {
			out.Labels[y*w+x] = m.Labels[yy*m.W+min(int(float64(x)*sx), m.W-1)]
		}
	}
	return out
}

// randomCrop takes a crop at a random place, up to 10 tries for one where no class (Ignore
// aside) covers CatMaxRatio or more of the labelled pixels.
func (a Augment) randomCrop(img RGB, mask Mask, rng *rand.Rand) (RGB, Mask) {
	ch, cw := min(a.Crop[0], img.H), min(a.Crop[1], img.W)
	var y0, x0 int
	for try := 0; try < 10; try++ {
		y0, x0 = rng.IntN(img.H-ch+1), rng.IntN(img.W-cw+1)
		if a.CatMaxRatio >= 1 || balanced(mask, y0, x0, ch, cw, a.CatMaxRatio) {
			break
		}
	}
	out := RGB{W: cw, H: ch, Pix: make([]uint8, 3*cw*ch)}
	m := Mask{W: cw, H: ch, Labels: make([]uint8, cw*ch)}
	for y := 0; y < ch; y++ {
		copy(out.Pix[3*y*cw:3*(y+1)*cw], img.Pix[3*((y0+y)*img.W+x0):])
		copy(m.Labels[y*cw:(y+1)*cw], mask.Labels[(y0+y)*mask.W+x0:])
	}
	return out, m
}

// balanced reports whether the crop holds more than one class and none covers ratio or more.
func balanced(m Mask, y0, x0, h, w int, ratio float64) bool {
	var counts [256]int
	for y := y0; y < y0+h; y++ {
		for _, l := range m.Labels[y*m.W+x0 : y*m.W+x0+w] {
			counts[l]++
		}
	}
	counts[Ignore] = 0
	classes, total, most := 0, 0, 0
	for _, c := range counts {
		if c > 0 {
			classes++
			total += c
			most = max(most, c)
		}
	}
	return classes > 1 && float64(most) < ratio*float64(total)
}

func flip(img RGB, m Mask) {
	for y := 0; y < img.H; y++ {
		row, lab := img.Pix[3*y*img.W:3*(y+1)*img.W], m.Labels[y*m.W:(y+1)*m.W]
		for i, j := 0, img.W-1; i < j; i, j = i+1, j-1 {
			for c := 0; c < 3; c++ {
				row[3*i+c], row[3*j+c] = row[3*j+c], row[3*i+c]
			}
			lab[i], lab[j] = lab[j], lab[i]
		}
	}
}

// photometric is mmseg's PhotoMetricDistortion: brightness ±32, contrast 0.5–1.5 (before or
// after the colour changes), saturation 0.5–1.5 and hue ±18 (of 180) in HSV, each with
// probability ½.
func photometric(img RGB, rng *rand.Rand) {
	coin := func() bool { return rng.IntN(2) == 1 }
	var bright, contrast, sat, hue float64 = 0, 1, 1, 0
	if coin() {
		bright = -32 + 64*rng.Float64()
	}
	contrastFirst := coin()
	if coin() {
		contrast = 0.5 + rng.Float64()
	}
	if coin() {
		sat = 0.5 + rng.Float64()
	}
	if coin() {
		hue = float64(rng.IntN(37) - 18)
	}
	clip := func(v float64) float64 { return min(max(v, 0), 255) }
	for i := 0; i < img.W*img.H; i++ {
		p := img.Pix[3*i : 3*i+3]
		r, g, b := clip(float64(p[0])+bright), clip(float64(p[1])+bright), clip(float64(p[2])+bright)
		if contrastFirst {
			r, g, b = clip(r*contrast), clip(g*contrast), clip(b*contrast)
		}
		if sat != 1 || hue != 0 {
			h, s, v := rgbToHSV(r, g, b)
			s = min(s*sat, 1)
			h = math.Mod(h+2*hue+360, 360) // hue shifts are in OpenCV's half degrees
			r, g, b = hsvToRGB(h, s, v)
		}
		if !contrastFirst {
			r, g, b = clip(r*contrast), clip(g*contrast), clip(b*contrast)
		}
		p[0], p[1], p[2] = uint8(r+0.5), uint8(g+0.5), uint8(b+0.5)
	}
}

func rgbToHSV(r, g, b float64) (h, s, v float64) {
	v = max(r, g, b)
	d := v - min(r, g, b)
	if v > 0 {
		s = d / v
	}
	switch {
	case d == 0:
		h = 0
	case v == r:
		h = 60 * math.Mod((g-b)/d+6, 6)
	case v == g:
		h = 60 * ((b-r)/d + 2)
	default:
		h = 60 * ((r-g)/d + 4)
	}
	return h, s, v
}

func hsvToRGB(h, s, v float64) (r, g, b float64) {
	c := v * s
	x := c * (1 - math.Abs(math.Mod(h/60, 2)-1))
	m := v - c
	switch int(h/60) % 6 {
	case 0:
		r, g, b = c, x, 0
	case 1:
		r, g, b = x, c, 0
	case 2:
		r, g, b = 0, c, x
	case 3:
		r, g, b = 0, x, c
	case 4:
		r, g, b = x, 0, c
	default:
		r, g, b = c, 0, x
	}
	return r + m, g + m, b + m
}

// finish normalises into channels-first floats and pads to h×w (image 0, labels Ignore); an
// empty mask gives no labels.
func (a Augment) finish(id string, img RGB, mask Mask, h, w int) Example {
	h, w = max(h, img.H), max(w, img.W)
	ex := Example{ID: id, H: h, W: w, Image: make([]float32, 3*h*w)}
	if mask.Labels != nil {
		ex.Labels = make([]uint8, h*w)
		for i := range ex.Labels {
			ex.Labels[i] = Ignore
		}
	}
	for y := 0; y < img.H; y++ {
		for x := 0; x < img.W; x++ {
			p := img.Pix[3*(y*img.W+x):]
			for c := 0; c < 3; c++ {
				ex.Image[(c*h+y)*w+x] = (float32(p[c]) - a.Mean[c]) / a.Std[c]
			}
		}
		if ex.Labels != nil {
			copy(ex.Labels[y*w:y*w+img.W], mask.Labels[y*mask.W:(y+1)*mask.W])
		}
	}
	return ex
}
