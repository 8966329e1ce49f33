package voc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/draw"
	_ "image/jpeg" // JPEGImages
	_ "image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/disintegration/imaging"
)

// RGB is an 8-bit colour image, row-major, 3 bytes a pixel.
type RGB struct {
	W, H int
	Pix  []uint8
}

// Sample is one image with its label mask (same size).
type Sample struct {
	ID    string
	Image RGB
	Mask  Mask
}

// ReadImage reads a JPEG or PNG as RGB, turned upright by its EXIF orientation.
func ReadImage(path string) (RGB, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return RGB{}, err
	}
	img, err := DecodeImage(raw)
	if err != nil {
		return RGB{}, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

// DecodeImage decodes a JPEG or PNG as RGB, upright by its EXIF orientation (as OpenCV reads
// them for mmseg); the size is checked before the pixels are read.
func DecodeImage(data []byte) (RGB, error) { return DecodeImageLimit(data, MaxPixels) }

// ErrTooManyPixels is the error of an image whose header declares more pixels than the limit.
var ErrTooManyPixels = errors.New("too many pixels")

// MaxPixels is DecodeImage's limit on an image's pixel count (128 Mi: a 4 GB decode at most).
const MaxPixels = 1 << 27

// DecodeImageLimit is DecodeImage with another limit on the pixel count (at most MaxPixels),
// checked on the header before any pixel is allocated.
func DecodeImageLimit(data []byte, maxPixels int) (RGB, error) {
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return RGB{}, fmt.Errorf("not a readable image: %w", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return RGB{}, fmt.Errorf("image of %d×%d is not usable", cfg.Width, cfg.Height)
	}
	if n := int64(cfg.Width) * int64(cfg.Height); n > int64(min(maxPixels, MaxPixels)) {
		return RGB{}, fmt.Errorf("image of %d×%d is not usable: %w (%d, more than %d)", cfg.Width, cfg.Height,
			ErrTooManyPixels, n, min(maxPixels, MaxPixels))
	}
	img, err := imaging.Decode(bytes.NewReader(data), imaging.AutoOrientation(true))
	if err != nil {
		return RGB{}, fmt.Errorf("not a readable image: %w", err)
	}
	return toRGB(img), nil
}

func toRGB(img image.Image) RGB {
	b := img.Bounds()
	rgba := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(rgba, rgba.Bounds(), img, b.Min, draw.Src)
	out := RGB{W: b.Dx(), H: b.Dy(), Pix: make([]uint8, 3*b.Dx()*b.Dy())}
	for i := 0; i < out.W*out.H; i++ {
		copy(out.Pix[3*i:3*i+3], rgba.Pix[4*i:4*i+3])
	}
	return out
}

// ReadPair reads an image and its label mask and checks that they are the same size; errors
// name the file. The labels are as stored: mapping them is the dataset's business.
func ReadPair(imagePath, maskPath string) (RGB, Mask, error) {
	img, err := ReadImage(imagePath)
	if err != nil {
		return RGB{}, Mask{}, err
	}
	m, err := ReadMask(maskPath)
	if err != nil {
		return RGB{}, Mask{}, err
	}
	if m.W != img.W || m.H != img.H {
		return RGB{}, Mask{}, fmt.Errorf("%s is %d×%d but its image %s is %d×%d", maskPath, m.W, m.H, imagePath, img.W, img.H)
	}
	return img, m, nil
}

// ReadIDs reads a list file: one id per line (the first field; blank lines skipped).
func ReadIDs(path string) ([]string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	var ids []string
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 0 {
			ids = append(ids, f[0])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%s: the list is empty", path)
	}
	return ids, nil
}

// VOC is the file list of a Pascal VOC 2012 split: JPEGImages/<id>.jpg with
// SegmentationClass/<id>.png, or SegmentationClassAug/<id>.png for the SBD-augmented splits
// (trainaug, aug). Package dataset loads it with VOC's labels (ClassNames, 255 void).
type VOC struct {
	Root, Split string
	ids         []string
	maskDir     string
}

// OpenVOC opens split of the VOC 2012 root (the directory holding JPEGImages; a VOCdevkit
// directory is accepted too).
func OpenVOC(root, split string) (*VOC, error) {
	if _, err := os.Stat(filepath.Join(root, "VOC2012", "JPEGImages")); err == nil {
		root = filepath.Join(root, "VOC2012")
	}
	if _, err := os.Stat(filepath.Join(root, "JPEGImages")); err != nil {
		return nil, fmt.Errorf("%s is not a VOC 2012 root: no JPEGImages directory", root)
	}
	lists := map[string]string{
		"train": "ImageSets/Segmentation/train.txt", "val": "ImageSets/Segmentation/val.txt",
		"trainval": "ImageSets/Segmentation/trainval.txt", "trainaug": "ImageSets/Segmentation/trainaug.txt",
		"aug": "ImageSets/Segmentation/aug.txt",
	}
	rel, ok := lists[split]
	if !ok {
		var have []string
		for s, r := range lists {
			if _, err := os.Stat(filepath.Join(root, r)); err == nil {
				have = append(have, s)
			}
		}
		slices.Sort(have)
		return nil, fmt.Errorf("unknown VOC split %q (this root has: %s)", split, strings.Join(have, ", "))
	}
	ids, err := ReadIDs(filepath.Join(root, rel))
	if errors.Is(err, os.ErrNotExist) && (split == "trainaug" || split == "aug") {
		return nil, fmt.Errorf("%s: split %q needs the SBD masks: convert them with 'segtrain data sbd'", root, split)
	}
	if err != nil {
		return nil, err
	}
	maskDir := "SegmentationClass"
	if split == "trainaug" || split == "aug" {
		maskDir = "SegmentationClassAug"
	}
	return &VOC{Root: root, Split: split, ids: ids, maskDir: maskDir}, nil
}

func (v *VOC) Len() int        { return len(v.ids) }
func (v *VOC) ID(i int) string { return v.ids[i] }

// ImagePath and MaskPath are the files of sample i.
func (v *VOC) ImagePath(i int) string { return filepath.Join(v.Root, "JPEGImages", v.ids[i]+".jpg") }
func (v *VOC) MaskPath(i int) string  { return filepath.Join(v.Root, v.maskDir, v.ids[i]+".png") }
