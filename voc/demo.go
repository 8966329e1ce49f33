package voc

import (
	"fmt"
	"image"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

// DemoClasses are the classes of the built-in demo dataset (label = index; colours from the VOC
// palette).
var DemoClasses = []string{"background", "disc", "square", "triangle", "ring", "cross", "diamond", "bars"}

// Demo is the built-in demo dataset: textured shapes on cluttered backgrounds, generated
// deterministically from (Seed, index), no download. Some shapes are stretched vertically, so
// that DynOPool has an anisotropy to learn.
type Demo struct {
	Seed uint64
	N    int // samples
	Size int // images are Size×Size
}

func (d Demo) Len() int          { return d.N }
func (d Demo) ID(i int) string   { return fmt.Sprintf("demo_%05d", i) }
func (d Demo) Classes() []string { return DemoClasses }

// shapeAt reports whether (u, v), in the shape's unit frame ([-1, 1]²), is inside shape class c.
func shapeAt(c int, u, v float64) bool {
	au, av := math.Abs(u), math.Abs(v)
	switch c {
	case 1: // disc
		return u*u+v*v <= 1
	case 2: // square
		return au <= 0.85 && av <= 0.85
	case 3: // triangle, apex up
		return v >= -0.9 && v <= 0.9 && au <= (v+0.9)/1.8
	case 4: // ring
		r := u*u + v*v
		return r <= 1 && r >= 0.36
	case 5: // cross
		return (au <= 0.3 && av <= 1) || (av <= 0.3 && au <= 1)
	case 6: // diamond
		return au+av <= 1
	default: // bars: three vertical bars
		return av <= 0.95 && au <= 0.95 && math.Mod(u+0.95, 0.7) < 0.4
	}
}

func (d Demo) Load(i int) (Sample, error) {
	if i < 0 || i >= d.N {
		return Sample{}, fmt.Errorf("demo sample %d of %d", i, d.N)
	}
	rng := rand.New(rand.NewPCG(d.Seed, uint64(i)))
	n := d.Size
	img := RGB{W: n, H: n, Pix: make([]uint8, 3*n*n)}
	mask := Mask{W: n, H: n, Labels: make([]uint8, n*n)}
	// Clutter: a smooth colour gradient, a few soft blobs and pixel noise.
	var base [3]float64
	var grad [3][2]float64
	for c := range base {
		base[c] = 60 + 120*rng.Float64()
		grad[c] = [2]float64{60 * (rng.Float64() - 0.5), 60 * (rng.Float64() - 0.5)}
	}
	type blob struct{ x, y, r, amp float64 }
	blobs := make([]blob, 4)
	for k := range blobs {
		blobs[k] = blob{rng.Float64() * float64(n), rng.Float64() * float64(n), float64(n) * (0.05 + 0.15*rng.Float64()), 80 * (rng.Float64() - 0.5)}
	}
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			fx, fy := float64(x)/float64(n), float64(y)/float64(n)
			var clutter float64
			for _, b := range blobs {
				dx, dy := float64(x)-b.x, float64(y)-b.y
				clutter += b.amp * math.Exp(-(dx*dx+dy*dy)/(2*b.r*b.r))
			}
			for c := 0; c < 3; c++ {
				v := base[c] + grad[c][0]*fx + grad[c][1]*fy + clutter + 12*rng.NormFloat64()
				img.Pix[3*(y*n+x)+c] = uint8(min(max(v, 0), 255))
			}
		}
	}
	// Objects: 1–3 shapes, each with its class's texture: stripes at a class-specific angle
	// and period over a class-specific colour.
	for k := 1 + rng.IntN(3); k > 0; k-- {
		c := 1 + rng.IntN(len(DemoClasses)-1)
		r := float64(n) * (0.12 + 0.12*rng.Float64())
		rx, ry := r, r
		if rng.IntN(2) == 0 {
			ry *= 1.6 + 0.4*rng.Float64() // stretched vertically
		}
		cx, cy := rx+rng.Float64()*(float64(n)-2*rx), ry+rng.Float64()*(float64(n)-2*ry)
		angle := float64(c) * math.Pi / float64(len(DemoClasses))
		period := 3 + float64(c%4)
		col := Palette[c]
		cr, cg, cb, _ := col.RGBA()
		tint := [3]float64{float64(cr >> 8), float64(cg >> 8), float64(cb >> 8)}
		for y := max(0, int(cy-ry)); y < min(n, int(cy+ry)+1); y++ {
			for x := max(0, int(cx-rx)); x < min(n, int(cx+rx)+1); x++ {
				if !shapeAt(c, (float64(x)-cx)/rx, (float64(y)-cy)/ry) {
					continue
				}
				s := math.Sin(2 * math.Pi * (float64(x)*math.Cos(angle) + float64(y)*math.Sin(angle)) / period)
				for ch := 0; ch < 3; ch++ {
					v := 0.6*tint[ch] + 50 + 45*s + 10*rng.NormFloat64()
					img.Pix[3*(y*n+x)+ch] = uint8(min(max(v, 0), 255))
				}
				mask.Labels[y*n+x] = uint8(c)
			}
		}
	}
	return Sample{ID: d.ID(i), Image: img, Mask: mask}, nil
}

// WriteVOC writes the demo as a VOC root: JPEGImages, SegmentationClass (paletted) and the
// split lists, the first val samples being "val" and the rest "train".
func (d Demo) WriteVOC(root string, val int) error {
	for _, dir := range []string{"JPEGImages", "SegmentationClass", "ImageSets/Segmentation"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			return err
		}
	}
	var train, vals []string
	for i := 0; i < d.N; i++ {
		s, err := d.Load(i)
		if err != nil {
			return err
		}
		if err := writeJPEG(filepath.Join(root, "JPEGImages", s.ID+".jpg"), s.Image); err != nil {
			return err
		}
		png, err := EncodeMask(s.Mask)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(root, "SegmentationClass", s.ID+".png"), png, 0o644); err != nil {
			return err
		}
		if i < val {
			vals = append(vals, s.ID)
		} else {
			train = append(train, s.ID)
		}
	}
	for name, ids := range map[string][]string{"train": train, "val": vals, "trainval": append(append([]string{}, vals...), train...)} {
		list := strings.Join(ids, "\n") + "\n"
		if err := os.WriteFile(filepath.Join(root, "ImageSets/Segmentation", name+".txt"), []byte(list), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func writeJPEG(path string, img RGB) error {
	rgba := image.NewRGBA(image.Rect(0, 0, img.W, img.H))
	for i := 0; i < img.W*img.H; i++ {
		copy(rgba.Pix[4*i:4*i+3], img.Pix[3*i:3*i+3])
		rgba.Pix[4*i+3] = 255
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := jpeg.Encode(f, rgba, &jpeg.Options{Quality: 95}); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
