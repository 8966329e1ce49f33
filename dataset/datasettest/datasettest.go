// Package datasettest writes the demo dataset in each dataset layout, storing its labels as
// that dataset stores them (Cityscapes label ids, ADE20K's shifted classes, CamVid's void 11,
// ...), for tests of detection, label mapping and training on every layout.
package datasettest

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"

	"github.com/segkit/segkit/dataset"
	"github.com/segkit/segkit/voc"
)

// Tree is the demo written in a layout: samples 0..Val-1 in the evaluation split, the rest in
// the training split. Row 0 of every mask is stored as void.
type Tree struct {
	Demo voc.Demo
	Val  int
}

// Splits are the split names each layout uses: (training, evaluation).
var Splits = map[string][2]string{
	dataset.VOC: {"train", "val"}, dataset.Cityscapes: {"train", "val"}, dataset.ADE20K: {"training", "validation"},
	dataset.PascalContext: {"train", "val"}, dataset.PascalContext59: {"train", "val"}, dataset.CamVid: {"train", "val"},
	dataset.Folder: {"train", "val"},
}

// cityscapesIDs are label ids whose train ids are 0–7 (the demo's classes).
var cityscapesIDs = []uint8{7, 8, 11, 12, 13, 17, 19, 20}

// Stored returns the value that layout name stores for label k (voc.Ignore: void).
func Stored(name string, k uint8) uint8 {
	switch name {
	case dataset.Cityscapes:
		if k == voc.Ignore {
			return 0 // "unlabeled", whose train id is void
		}
		return cityscapesIDs[k]
	case dataset.ADE20K, dataset.PascalContext59:
		if k == voc.Ignore {
			return 0
		}
		return k + 1
	case dataset.CamVid:
		if k == voc.Ignore {
			return 11
		}
	}
	return k
}

// Expected is the mask that sample i should load as: the demo's labels with row 0 void.
func (t Tree) Expected(i int) voc.Mask {
	s, _ := t.Demo.Load(i)
	for x := 0; x < s.Mask.W; x++ {
		s.Mask.Labels[x] = voc.Ignore
	}
	return s.Mask
}

// File is where sample Index of the demo went.
type File struct {
	Index       int
	ID, Split   string
	Image, Mask string
}

// Write writes the tree at root in layout name and returns where each sample went.
func (t Tree) Write(name, root string) ([]File, error) {
	splits := Splits[name]
	files := make([]File, t.Demo.N)
	lists := map[string][]string{}
	for i := 0; i < t.Demo.N; i++ {
		split := splits[0]
		if i < t.Val {
			split = splits[1]
		}
		id := t.Demo.ID(i)
		var img, mask string
		switch name {
		case dataset.VOC:
			img, mask = filepath.Join(root, "JPEGImages", id+".jpg"), filepath.Join(root, "SegmentationClass", id+".png")
		case dataset.Cityscapes:
			city := []string{"aachen", "bonn"}[i%2]
			id = fmt.Sprintf("%s_%06d_000019", city, i)
			img = filepath.Join(root, "leftImg8bit", split, city, id+"_leftImg8bit.png")
			mask = filepath.Join(root, "gtFine", split, city, id+"_gtFine_labelIds.png")
		case dataset.ADE20K:
			img = filepath.Join(root, "ADEChallengeData2016", "images", split, id+".jpg")
			mask = filepath.Join(root, "ADEChallengeData2016", "annotations", split, id+".png")
		case dataset.PascalContext, dataset.PascalContext59:
			img, mask = filepath.Join(root, "JPEGImages", id+".jpg"), filepath.Join(root, "SegmentationClassContext", id+".png")
		case dataset.CamVid:
			img, mask = filepath.Join(root, split, id+".png"), filepath.Join(root, split+"annot", id+".png")
		case dataset.Folder:
			img, mask = filepath.Join(root, "images", id+".jpg"), filepath.Join(root, "masks", id+".png")
		default:
			return nil, fmt.Errorf("no layout %q", name)
		}
		lists[split] = append(lists[split], id)
		s, _ := t.Demo.Load(i)
		m := t.Expected(i)
		for p, l := range m.Labels {
			m.Labels[p] = Stored(name, l)
		}
		if err := writeImage(img, s.Image); err != nil {
			return nil, err
		}
		if err := writeMask(mask, m, name == dataset.VOC); err != nil {
			return nil, err
		}
		files[i] = File{Index: i, ID: id, Split: split, Image: img, Mask: mask}
	}
	listDir := map[string]string{dataset.VOC: "ImageSets/Segmentation", dataset.PascalContext: "ImageSets/SegmentationContext",
		dataset.PascalContext59: "ImageSets/SegmentationContext", dataset.Folder: "."}[name]
	if listDir != "" {
		for split, ids := range lists {
			if err := writeFile(filepath.Join(root, listDir, split+".txt"), []byte(strings.Join(ids, "\n")+"\n")); err != nil {
				return nil, err
			}
		}
	}
	if name == dataset.Folder {
		if err := writeFile(filepath.Join(root, "classes.txt"), []byte(strings.Join(voc.DemoClasses, "\n")+"\n")); err != nil {
			return nil, err
		}
	}
	return files, nil
}

func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// writeImage writes img as a JPEG or PNG, by the extension.
func writeImage(path string, img voc.RGB) error {
	rgba := image.NewRGBA(image.Rect(0, 0, img.W, img.H))
	for i := 0; i < img.W*img.H; i++ {
		copy(rgba.Pix[4*i:4*i+3], img.Pix[3*i:3*i+3])
		rgba.Pix[4*i+3] = 255
	}
	var buf bytes.Buffer
	var err error
	if strings.HasSuffix(path, ".png") {
		err = png.Encode(&buf, rgba)
	} else {
		err = jpeg.Encode(&buf, rgba, &jpeg.Options{Quality: 95})
	}
	if err != nil {
		return err
	}
	return writeFile(path, buf.Bytes())
}

// writeMask writes stored values as a paletted PNG (VOC) or an 8-bit grey PNG (the others).
func writeMask(path string, m voc.Mask, paletted bool) error {
	if paletted {
		data, err := voc.EncodeMask(m)
		if err != nil {
			return err
		}
		return writeFile(path, data)
	}
	return WriteGrey(path, m)
}

// WriteGrey writes m's values as an 8-bit grey PNG.
func WriteGrey(path string, m voc.Mask) error {
	img := image.NewGray(image.Rect(0, 0, m.W, m.H))
	copy(img.Pix, m.Labels)
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return err
	}
	return writeFile(path, buf.Bytes())
}
