package voc

import "image/color"

// ClassNames are the 21 Pascal VOC classes, index = label.
var ClassNames = []string{"background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
	"cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
	"sheep", "sofa", "train", "tvmonitor"}

// Ignore is the label of void pixels (object boundaries), skipped by the loss and the metrics.
const Ignore = 255

// Palette is the VOC colour map for labels 0–255: bits 0, 1, 2 of the label go to the top bits
// of R, G, B, the next three bits to the next ones, and so on; 255 is (224, 224, 192).
var Palette = func() color.Palette {
	p := make(color.Palette, 256)
	for c := range p {
		var r, g, b uint8
		for j, v := 0, c; j < 8; j, v = j+1, v>>3 {
			r |= uint8(v&1) << (7 - j)
			g |= uint8(v>>1&1) << (7 - j)
			b |= uint8(v>>2&1) << (7 - j)
		}
		p[c] = color.RGBA{r, g, b, 255}
	}
	return p
}()
