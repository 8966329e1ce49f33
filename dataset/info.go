package dataset

import (
	"fmt"
	"image/color"
	"strings"

	"github.com/segkit/segkit/voc"
)

// Dataset names (--dataset, Config.Dataset).
const (
	VOC             = "voc"
	Cityscapes      = "cityscapes"
	ADE20K          = "ade20k"
	PascalContext   = "pascal_context"
	PascalContext59 = "pascal_context_59"
	CamVid          = "camvid"
	Folder          = "folder"
)

// Info describes a dataset: its classes and colours, how its masks store labels, and its files.
type Info struct {
	Name, Title string
	Classes     []string // nil for the folder layout: its classes.txt names them
	Palette     color.Palette
	Void        int  // the value on disk of void pixels (the default ignore index)
	ReduceZero  bool // mmseg's reduce_zero_label: 0 is void, k is class k−1
	Layout      string
	Splits      string // the splits it has
}

// palette extends a dataset's class colours to 256 entries with the VOC palette's, so that any
// label (255 included) has a colour in a paletted PNG.
func palette(colors [][3]uint8) color.Palette {
	p := append(color.Palette(nil), voc.Palette...)
	for i, c := range colors {
		p[i] = color.RGBA{c[0], c[1], c[2], 255}
	}
	return p
}

var infos = []Info{
	{Name: VOC, Title: "VOC 2012", Classes: voc.ClassNames, Palette: voc.Palette, Void: voc.Ignore,
		Layout: "JPEGImages/<id>.jpg, SegmentationClass[Aug]/<id>.png, ImageSets/Segmentation/<split>.txt (a VOCdevkit above is accepted)",
		Splits: "train, val, trainval; trainaug and aug after 'segtrain data sbd'"},
	{Name: Cityscapes, Title: "Cityscapes", Classes: CityscapesClasses, Palette: palette(cityscapesColors), Void: voc.Ignore,
		Layout: "leftImg8bit/<split>/<city>/*_leftImg8bit.png with gtFine/<split>/<city>/*_gtFine_labelTrainIds.png, or *_gtFine_labelIds.png mapped to the 19 train ids on load",
		Splits: "train, val (test has no public labels)"},
	{Name: ADE20K, Title: "ADE20K", Classes: ADE20KClasses, Palette: palette(ade20kColors), Void: voc.Ignore, ReduceZero: true,
		Layout: "[ADEChallengeData2016/]images/<split>/*.jpg with annotations/<split>/*.png",
		Splits: "training (or train), validation (or val)"},
	{Name: PascalContext, Title: "Pascal Context", Classes: PascalContextClasses, Palette: palette(pascalContextColors), Void: voc.Ignore,
		Layout: "[VOCdevkit/]VOC2010: JPEGImages/<id>.jpg, SegmentationClassContext/<id>.png (mmseg's converter), ImageSets/SegmentationContext/<split>.txt",
		Splits: "train, val"},
	{Name: PascalContext59, Title: "Pascal Context 59", Classes: PascalContextClasses[1:], Palette: palette(pascalContextColors[1:]),
		Void: voc.Ignore, ReduceZero: true, Layout: "as pascal_context; background (0) is void", Splits: "train, val"},
	{Name: CamVid, Title: "CamVid", Classes: CamVidClasses, Palette: palette(camVidColors), Void: 11,
		Layout: "SegNet's: [CamVid/]<split>/*.png with <split>annot/*.png (value 11 is void)",
		Splits: "train, val, test"},
	{Name: Folder, Title: "folder dataset", Palette: voc.Palette, Void: voc.Ignore,
		Layout: "images/<id>.jpg|png, masks/<id>.png, classes.txt (one name per line), <split>.txt (ids)",
		Splits: "those with a <split>.txt"},
}

// Names lists the dataset names.
func Names() []string {
	out := make([]string, len(infos))
	for i, in := range infos {
		out[i] = in.Name
	}
	return out
}

// Lookup returns the description of a dataset by name.
func Lookup(name string) (Info, error) {
	for _, in := range infos {
		if in.Name == name {
			return in, nil
		}
	}
	return Info{}, fmt.Errorf("unknown dataset %q (known: %s)", name, strings.Join(Names(), ", "))
}

// Labels returns the label mapping of the dataset: its own, with void replaced by *void when
// given, and reduce-zero-label added when reduceZero.
func (in Info) Labels(void *int, reduceZero bool) Labels {
	l := Labels{Dataset: in.Title, Classes: len(in.Classes), Void: in.Void, ReduceZero: in.ReduceZero || reduceZero}
	if void != nil {
		l.Void = *void
	}
	return l
}

// Colors are the classes' colours, label order.
func (in Info) Colors() [][3]uint8 {
	out := make([][3]uint8, len(in.Classes))
	for i := range out {
		r, g, b, _ := in.Palette[i].RGBA()
		out[i] = [3]uint8{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8)}
	}
	return out
}
