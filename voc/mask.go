package voc

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
)

// Mask is a label image: one class index per pixel, row-major.
type Mask struct {
	W, H   int
	Labels []uint8
}

// ReadMask reads a label PNG: paletted (the pixel's palette index is the label, as VOC's masks),
// 8-bit grey (the value is the label, as SBD conversions), or RGB(A) in the VOC palette's
// colours (mapped back; any other colour is an error). Errors name the file.
func ReadMask(path string) (Mask, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Mask{}, err
	}
	m, err := DecodeMask(raw)
	if err != nil {
		return Mask{}, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// DecodeMask decodes a label PNG (see ReadMask).
func DecodeMask(data []byte) (m Mask, err error) {
	cfg, err := png.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return Mask{}, fmt.Errorf("not a readable PNG: %w", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width*cfg.Height > 1<<28 {
		return Mask{}, fmt.Errorf("PNG of %d×%d is not a usable mask", cfg.Width, cfg.Height)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return Mask{}, fmt.Errorf("not a readable PNG: %w", err)
	}
	b := img.Bounds()
	m = Mask{W: b.Dx(), H: b.Dy(), Labels: make([]uint8, b.Dx()*b.Dy())}
	switch im := img.(type) {
	case *image.Paletted:
		for y := 0; y < m.H; y++ {
			copy(m.Labels[y*m.W:(y+1)*m.W], im.Pix[y*im.Stride:y*im.Stride+m.W])
		}
	case *image.Gray:
		for y := 0; y < m.H; y++ {
			copy(m.Labels[y*m.W:(y+1)*m.W], im.Pix[y*im.Stride:y*im.Stride+m.W])
		}
	case *image.Gray16:
		return Mask{}, fmt.Errorf("16-bit grey PNG: label masks must be 8-bit (paletted or grey)")
	default:
		// Colour masks: map each colour back to its label through the VOC palette.
		index := map[color.RGBA]uint8{}
		for i, c := range Palette {
			index[c.(color.RGBA)] = uint8(i)
		}
		for y := 0; y < m.H; y++ {
			for x := 0; x < m.W; x++ {
				r, g, bl, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
				c := color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8), 255}
				l, ok := index[c]
				if !ok {
					return Mask{}, fmt.Errorf("colour mask: pixel (%d, %d) has colour (%d, %d, %d), which is not in the VOC palette; save masks as paletted or grey index PNGs",
						x, y, c.R, c.G, c.B)
				}
				m.Labels[y*m.W+x] = l
			}
		}
	}
	return m, nil
}

// EncodeMask writes a mask as a paletted PNG in the VOC palette (what VOC tools expect).
func EncodeMask(m Mask) ([]byte, error) {
	img := image.NewPaletted(image.Rect(0, 0, m.W, m.H), Palette)
	copy(img.Pix, m.Labels)
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
