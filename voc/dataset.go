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

// Dataset is a list of samples read on demand.
type Dataset interface {
	Len() int
	ID(i int) string
	// Load reads sample i; errors name the file and the problem.
	Load(i int) (Sample, error)
	// Classes names the classes; labels are indices into it (Ignore aside).
	Classes() []string
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
func DecodeImage(data []byte) (RGB, error) {
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return RGB{}, fmt.Errorf("not a readable image: %w", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width*cfg.Height > 1<<27 {
		return RGB{}, fmt.Errorf("image of %d×%d is not usable", cfg.Width, cfg.Height)
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

// loadPair reads an image and its mask and checks them against each other and the classes.
// Labels equal to ignore (when it is not Ignore already) become Ignore.
func loadPair(id, imagePath, maskPath string, classes, ignore int) (Sample, error) {
	img, err := ReadImage(imagePath)
	if err != nil {
		return Sample{}, err
	}
	m, err := ReadMask(maskPath)
	if err != nil {
		return Sample{}, err
	}
	if m.W != img.W || m.H != img.H {
		return Sample{}, fmt.Errorf("%s is %d×%d but its image %s is %d×%d", maskPath, m.W, m.H, imagePath, img.W, img.H)
	}
	for i, l := range m.Labels {
		if int(l) == ignore {
			m.Labels[i] = Ignore
			continue
		}
		if int(l) >= classes && l != Ignore {
			return Sample{}, fmt.Errorf("%s: label %d at (%d, %d), but there are %d classes (0–%d, and %d ignored)",
				maskPath, l, i%m.W, i/m.W, classes, classes-1, Ignore)
		}
	}
	return Sample{ID: id, Image: img, Mask: m}, nil
}

// readIDs reads a list file: one id per line (the first field; blank lines skipped).
func readIDs(path string) ([]string, error) {
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

// VOC is a Pascal VOC 2012 split: JPEGImages/<id>.jpg with SegmentationClass/<id>.png, or
// SegmentationClassAug/<id>.png for the SBD-augmented splits (trainaug, aug).
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
	ids, err := readIDs(filepath.Join(root, rel))
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

func (v *VOC) Len() int          { return len(v.ids) }
func (v *VOC) ID(i int) string   { return v.ids[i] }
func (v *VOC) Classes() []string { return ClassNames }

func (v *VOC) Load(i int) (Sample, error) {
	id := v.ids[i]
	return loadPair(id, filepath.Join(v.Root, "JPEGImages", id+".jpg"), filepath.Join(v.Root, v.maskDir, id+".png"), len(ClassNames), Ignore)
}

// Folder is a dataset of one's own: Images/<id>.<jpg|jpeg|png> with Masks/<id>.png, all pairs
// or those of a list file.
type Folder struct {
	Images, Masks string
	// IgnoreIndex is the masks' label for pixels to ignore, mapped to Ignore (255) on load.
	IgnoreIndex int
	ids         []string
	images      map[string]string
	classes     []string
}

// ReadClassNames reads a class-names file: one name per line, in label order.
func ReadClassNames(path string) ([]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(string(raw), "\n") {
		if name := strings.TrimSpace(line); name != "" {
			names = append(names, name)
		}
	}
	if len(names) == 0 || len(names) > 255 {
		return nil, fmt.Errorf("%s: %d class names (want 1–255, one per line)", path, len(names))
	}
	return names, nil
}

// OpenFolder pairs the images of imagesDir with the masks of masksDir (by file name without
// extension), restricted to the ids of listFile when given. classNames names the classes; when
// empty, classes ("class 0", …) are numbered.
func OpenFolder(imagesDir, masksDir, listFile string, classNames []string, classes int) (*Folder, error) {
	if len(classNames) == 0 {
		if classes < 1 || classes > 255 {
			return nil, fmt.Errorf("a folder dataset needs its classes: give their names or a count of 1–255 (got %d)", classes)
		}
		for c := 0; c < classes; c++ {
			classNames = append(classNames, fmt.Sprintf("class %d", c))
		}
	}
	entries, err := os.ReadDir(imagesDir)
	if err != nil {
		return nil, err
	}
	f := &Folder{Images: imagesDir, Masks: masksDir, IgnoreIndex: Ignore, images: map[string]string{}, classes: classNames}
	for _, e := range entries {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if e.IsDir() || (ext != ".jpg" && ext != ".jpeg" && ext != ".png") {
			continue
		}
		f.images[strings.TrimSuffix(e.Name(), filepath.Ext(e.Name()))] = e.Name()
	}
	if listFile != "" {
		if f.ids, err = readIDs(listFile); err != nil {
			return nil, err
		}
		for _, id := range f.ids {
			if _, ok := f.images[id]; !ok {
				return nil, fmt.Errorf("%s lists %q, but %s has no image of that name", listFile, id, imagesDir)
			}
		}
	} else {
		for id := range f.images {
			f.ids = append(f.ids, id)
		}
		slices.Sort(f.ids)
	}
	if len(f.ids) == 0 {
		return nil, fmt.Errorf("%s: no images (.jpg, .jpeg, .png)", imagesDir)
	}
	return f, nil
}

func (f *Folder) Len() int          { return len(f.ids) }
func (f *Folder) ID(i int) string   { return f.ids[i] }
func (f *Folder) Classes() []string { return f.classes }

func (f *Folder) Load(i int) (Sample, error) {
	id := f.ids[i]
	return loadPair(id, filepath.Join(f.Images, f.images[id]), filepath.Join(f.Masks, id+".png"), len(f.classes), f.IgnoreIndex)
}
