package infer_test

import (
	"fmt"
	"image/png"
	"log"
	"os"

	"github.com/segkit/segkit/segmentation/checkpoint"
	"github.com/segkit/segkit/segmentation/infer"
	"github.com/segkit/segkit/voc"
)

// A Go program segments an image with a trained model (a segkit checkpoint, or an mmseg or
// official HRNet .pth, imported as it is read) and draws the classes in colour.
func Example() {
	p, err := infer.NewPredictor("../../importer/testdata/mmseg_0x.pth", checkpoint.ImportOptions{})
	if err != nil {
		log.Fatal(err)
	}
	img, err := voc.ReadImage("../../voc/testdata/2011_000003.png")
	if err != nil {
		log.Fatal(err)
	}
	labels, err := p.Segment(img) // a class index per pixel, at the image's size
	if err != nil {
		log.Fatal(err)
	}
	out, err := os.CreateTemp("", "color-*.png")
	if err != nil {
		log.Fatal(err)
	}
	defer os.Remove(out.Name())
	if err := png.Encode(out, infer.Colorize(labels, img.W, img.H, p.Palette)); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d×%d image, %d labels, %d classes\n", img.W, img.H, len(labels), len(p.Classes))
	// Output: 500×338 image, 169000 labels, 8 classes
}
