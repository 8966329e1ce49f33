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

// Open opens split of the dataset name at root, checking that each of its files is there.
func Open(name, root, split string, o Options) (*Pairs, error) {
	p, err := open(name, root, split, o)
	if err != nil {
		return p, err
	}
	return p, p.checkFiles()
}

func open(name, root, split string, o Options) (*Pairs, error) {
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

// layoutCheck recognises a layout by files in its directory: root or one in it.
type layoutCheck struct {
	name, lookedFor string
	dir             func(root string) string
	files           []string // a trailing / asks for a directory
}

var layoutChecks = []layoutCheck{
	{Folder, "images/, masks/ and classes.txt (folder)", same, []string{"images/", "masks/", "classes.txt"}},
	{Cityscapes, "leftImg8bit/ and gtFine/ (Cityscapes)", same, []string{"leftImg8bit/", "gtFine/"}},
	{ADE20K, "[ADEChallengeData2016/]images/training/ and annotations/training/ (ADE20K)", adeRoot,
		[]string{"images/training/", "annotations/training/"}},
	{PascalContext59, "[VOC2010/]JPEGImages/ and SegmentationClassContext/ (Pascal Context)", contextRoot,
		[]string{"JPEGImages/", "SegmentationClassContext/"}},
	{VOC, "[VOC2012/]JPEGImages/ and ImageSets/Segmentation/ (VOC 2012)", vocRoot, []string{"JPEGImages/", "ImageSets/Segmentation/"}},
	{CamVid, "[CamVid/]train/ and trainannot/ (CamVid, SegNet's layout)", camVidRoot, []string{"train/", "trainannot/"}},
}

func same(root string) string { return root }

// vocRoot is the VOC2012 directory of a VOC root: root or the one in it.
func vocRoot(root string) string {
	if sub := filepath.Join(root, "VOC2012"); isDir(filepath.Join(sub, "JPEGImages")) {
		return sub
	}
	return root
}

// allOf reports whether all the names exist in dir.
func allOf(dir string, names []string) bool {
	for _, n := range names {
		path := filepath.Join(dir, n)
		if strings.HasSuffix(n, "/") && !isDir(path) || !strings.HasSuffix(n, "/") && !isFile(path) {
			return false
		}
	}
	return true
}

// Detect recognises the layout of the dataset at root by its files. Pascal Context is taken as
// its 59-class version (mmseg's and HRNet's usual one; --dataset pascal_context for 60). A root
// that matches nothing is an error listing what was looked for; one that holds two datasets
// (a VOCdevkit with VOC2012 and VOC2010) is an error naming both.
func Detect(root string) (Found, error) {
	st, err := os.Stat(root)
	if err != nil {
		return Found{}, err
	}
	if !st.IsDir() {
		return Found{}, fmt.Errorf("%s is not a directory: --data takes a dataset's root directory", root)
	}
	var looked, names []string
	var found []Found
	dirs := map[string]string{}
	for _, c := range layoutChecks {
		looked = append(looked, c.lookedFor)
		dir := c.dir(root)
		// A VOC2010 directory with Pascal Context's masks holds VOC's files too: it is Pascal Context.
		if !allOf(dir, c.files) || c.name == VOC && dirs[PascalContext59] == dir {
			continue
		}
		dirs[c.name] = dir
		found = append(found, Found{Name: c.name, By: strings.Join(c.files, ", ") + " in " + dir})
		names = append(names, c.name+" ("+found[len(found)-1].By+")")
	}
	switch len(found) {
	case 0:
		return Found{}, fmt.Errorf("%s: no dataset layout recognised; looked for %s (or name the layout with --dataset)",
			root, strings.Join(looked, "; "))
	case 1:
		return found[0], nil
	}
	return Found{}, fmt.Errorf("%s holds more than one dataset: %s; give the root of one, or name the layout with --dataset",
		root, strings.Join(names, ", "))
}

// checkFiles reports the listed images and masks that are not there, naming the first ones:
// a missing file stops a run when it starts, not at the evaluation hours in. It stats the
// files (cheap); whether they decode is learnt when they load.
func (p *Pairs) checkFiles() error {
	var missing []string
	for i := range p.IDs {
		for _, f := range []string{p.Images[i], p.Masks[i]} {
			if _, err := os.Stat(f); err != nil {
				missing = append(missing, f)
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	const named = 3
	list := strings.Join(missing[:min(named, len(missing))], ", ")
	if len(missing) > named {
		list += fmt.Sprintf(" and %d more", len(missing)-named)
	}
	return fmt.Errorf("%s: %d of its %d files are missing: %s", p.Title, len(missing), 2*len(p.IDs), list)
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
