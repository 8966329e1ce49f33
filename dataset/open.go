package dataset

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Options change how a dataset's masks are read.
type Options struct {
	// Void, when set, replaces the dataset's void value on disk (--ignore-index).
	Void *int
	// ReduceZero applies reduce-zero-label to a dataset that does not already (--reduce-zero-label).
	ReduceZero bool
}

// Open opens split of the dataset name at root.
func Open(name, root, split string, o Options) (*Pairs, error) {
	info, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	if o.Void != nil && (*o.Void < 0 || *o.Void > 255) {
		return nil, fmt.Errorf("ignore index %d: a mask value, 0–255", *o.Void)
	}
	l := info.Labels(o.Void, o.ReduceZero)
	switch name {
	case VOC:
		return openVOC(root, split, l)
	case Cityscapes:
		return openCityscapes(root, split, l)
	case ADE20K:
		return openADE20K(root, split, l)
	case PascalContext, PascalContext59:
		return openPascalContext(info, root, split, l)
	case CamVid:
		return openCamVid(root, split, l)
	default:
		return openFolder(root, split, l)
	}
}

// Found is a layout recognised by Detect.
type Found struct {
	Name string
	By   string // the files that gave it away
}

// layoutCheck recognises one layout: by returns what matched ("" when it does not).
type layoutCheck struct {
	name, lookedFor string
	by              func(root string) string
}

// The checks in order: Pascal Context before VOC, since a VOC2010 root holds both.
var layoutChecks = []layoutCheck{
	{Folder, "images/, masks/ and classes.txt (folder)", func(r string) string {
		return allOf(r, "images/", "masks/", "classes.txt")
	}},
	{Cityscapes, "leftImg8bit/ and gtFine/ (Cityscapes)", func(r string) string {
		return allOf(r, "leftImg8bit/", "gtFine/")
	}},
	{ADE20K, "[ADEChallengeData2016/]images/training/ and annotations/training/ (ADE20K)", func(r string) string {
		return allOf(adeRoot(r), "images/training/", "annotations/training/")
	}},
	{PascalContext59, "[VOC2010/]JPEGImages/ and SegmentationClassContext/ (Pascal Context)", func(r string) string {
		return allOf(contextRoot(r), "JPEGImages/", "SegmentationClassContext/")
	}},
	{VOC, "[VOC2012/]JPEGImages/ and ImageSets/Segmentation/ (VOC 2012)", func(r string) string {
		if isDir(filepath.Join(r, "VOC2012", "JPEGImages")) {
			r = filepath.Join(r, "VOC2012")
		}
		return allOf(r, "JPEGImages/", "ImageSets/Segmentation/")
	}},
	{CamVid, "[CamVid/]train/ and trainannot/ (CamVid, SegNet's layout)", func(r string) string {
		return allOf(camVidRoot(r), "train/", "trainannot/")
	}},
}

// allOf returns the names (relative to root, or with root's last elements when it was a
// sub-directory) when all exist under root, and "" otherwise; a trailing / asks for a directory.
func allOf(root string, names ...string) string {
	for _, n := range names {
		path := filepath.Join(root, n)
		if strings.HasSuffix(n, "/") && !isDir(path) || !strings.HasSuffix(n, "/") && !isFile(path) {
			return ""
		}
	}
	return strings.Join(names, ", ") + " in " + root
}

// Detect recognises the layout of the dataset at root by its files. Pascal Context is taken as
// its 59-class version (mmseg's and HRNet's usual one; --dataset pascal_context for 60). A root
// that matches nothing is an error listing what was looked for.
func Detect(root string) (Found, error) {
	st, err := os.Stat(root)
	if err != nil {
		return Found{}, err
	}
	if !st.IsDir() {
		return Found{}, fmt.Errorf("%s is not a directory: --data takes a dataset's root directory", root)
	}
	var looked []string
	for _, c := range layoutChecks {
		if by := c.by(root); by != "" {
			return Found{Name: c.name, By: by}, nil
		}
		looked = append(looked, c.lookedFor)
	}
	return Found{}, fmt.Errorf("%s: no dataset layout recognised; looked for %s (or name the layout with --dataset)",
		root, strings.Join(looked, "; "))
}

// pairUp matches images with masks by id; an image without a mask, or a mask without an
// image, is an error naming the first (and counting the others). images and masks map ids to
// paths; maskFor and imageFor name the file that was looked for.
func pairUp(p *Pairs, images, masks map[string]string, maskFor, imageFor func(id string) string) error {
	var ids, noMask, noImage []string
	for id := range images {
		if _, ok := masks[id]; ok {
			ids = append(ids, id)
		} else {
			noMask = append(noMask, id)
		}
	}
	for id := range masks {
		if _, ok := images[id]; !ok {
			noImage = append(noImage, id)
		}
	}
	var errs []error
	more := func(n int, what string) string {
		if n > 1 {
			return fmt.Sprintf(" (and %d other %s)", n-1, what)
		}
		return ""
	}
	if len(noMask) > 0 {
		slices.Sort(noMask)
		errs = append(errs, fmt.Errorf("%s: image %s has no mask: no %s%s", p.Title, images[noMask[0]], maskFor(noMask[0]),
			more(len(noMask), "images lack theirs")))
	}
	if len(noImage) > 0 {
		slices.Sort(noImage)
		errs = append(errs, fmt.Errorf("%s: mask %s has no image: no %s%s", p.Title, masks[noImage[0]], imageFor(noImage[0]),
			more(len(noImage), "masks lack theirs")))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if len(ids) == 0 {
		return fmt.Errorf("%s: no images", p.Title)
	}
	slices.Sort(ids)
	for _, id := range ids {
		p.IDs, p.Images, p.Masks = append(p.IDs, id), append(p.Images, images[id]), append(p.Masks, masks[id])
	}
	return nil
}

// noSplit is the error for a split that root does not have, listing those it has.
func noSplit(title, root, split, where string, have []string) error {
	if len(have) == 0 {
		return fmt.Errorf("%s %s: no split %q (%s)", title, root, split, where)
	}
	return fmt.Errorf("%s %s: no split %q (%s); it has: %s", title, root, split, where, strings.Join(have, ", "))
}
