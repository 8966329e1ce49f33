package dataset_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/segkit/segkit/dataset"
	"github.com/segkit/segkit/dataset/datasettest"
	"github.com/segkit/segkit/voc"
)

// tree is the small demo every layout test writes: 5 samples of 24×24, 2 of them for evaluation.
var tree = datasettest.Tree{Demo: voc.Demo{Seed: 3, N: 5, Size: 24}, Val: 2}

func write(t *testing.T, name string) (string, []datasettest.File) {
	t.Helper()
	root := t.TempDir()
	files, err := tree.Write(name, root)
	if err != nil {
		t.Fatal(err)
	}
	return root, files
}

// Each layout is recognised by its files, names mmseg's classes, and loads every mask as the
// demo's labels (row 0 void) from the values that dataset stores.
func TestLayouts(t *testing.T) {
	for _, c := range []struct {
		name, detected string
		classes        int
		class          int // a class to check by name
		className      string
	}{
		{dataset.VOC, dataset.VOC, 21, 15, "person"},
		{dataset.Cityscapes, dataset.Cityscapes, 19, 13, "car"},
		{dataset.ADE20K, dataset.ADE20K, 150, 0, "wall"},
		{dataset.PascalContext, dataset.PascalContext59, 60, 0, "background"}, // the same files: detected as 59
		{dataset.PascalContext59, dataset.PascalContext59, 59, 0, "aeroplane"},
		{dataset.CamVid, dataset.CamVid, 11, 10, "Bicyclist"},
		{dataset.Folder, dataset.Folder, 8, 3, "triangle"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root, files := write(t, c.name)
			found, err := dataset.Detect(root)
			if err != nil || found.Name != c.detected || found.By == "" {
				t.Fatalf("detected %+v, %v; want %s", found, err, c.detected)
			}
			splits := datasettest.Splits[c.name]
			for k, split := range splits {
				d, err := dataset.Open(c.name, root, split, dataset.Options{})
				if err != nil {
					t.Fatal(err)
				}
				want := []int{3, 2}[k]
				if d.Len() != want {
					t.Fatalf("split %s: %d samples, want %d", split, d.Len(), want)
				}
				if cl := d.Classes(); len(cl) != c.classes || cl[c.class] != c.className {
					t.Errorf("%d classes, class %d %q; want %d, %q", len(cl), c.class, cl[c.class], c.classes, c.className)
				}
				for i := 0; i < d.Len(); i++ {
					s, err := d.Load(i)
					if err != nil {
						t.Fatal(err)
					}
					f := files[slices.IndexFunc(files, func(f datasettest.File) bool { return f.ID == s.ID })]
					if f.Split != split {
						t.Errorf("%s is in %s, loaded from %s", s.ID, f.Split, split)
					}
					exp := tree.Expected(f.Index)
					if !bytes.Equal(s.Mask.Labels, exp.Labels) || s.Image.W != 24 {
						t.Errorf("%s: labels differ from the demo's", s.ID)
					}
					if s.Mask.Labels[0] != voc.Ignore || !slices.Contains(s.Mask.Labels, 0) {
						t.Errorf("%s: no void row or no class 0", s.ID)
					}
				}
			}
		})
	}
}

func TestSplitAliases(t *testing.T) {
	root, _ := write(t, dataset.ADE20K)
	for split, n := range map[string]int{"train": 3, "val": 2} {
		if d, err := dataset.Open(dataset.ADE20K, root, split, dataset.Options{}); err != nil || d.Len() != n {
			t.Errorf("ADE20K %s: %v", split, err)
		}
	}
}

// Unknown splits list those the root has.
func TestUnknownSplit(t *testing.T) {
	for name, want := range map[string]string{
		dataset.Cityscapes:      `no split "test" (leftImg8bit/test); it has: train, val`,
		dataset.ADE20K:          `no split "test" (images/test); it has: training, validation`,
		dataset.CamVid:          `no split "test" (test/ and testannot/); it has: train, val`,
		dataset.PascalContext59: `no split "test" (ImageSets/SegmentationContext/test.txt); it has: train, val`,
		dataset.Folder:          `no split "test" (test.txt); it has: classes, train, val`,
		dataset.VOC:             `unknown VOC split "test" (this root has: train, val)`,
	} {
		root, _ := write(t, name)
		if _, err := dataset.Open(name, root, "test", dataset.Options{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", name, err, want)
		}
	}
}

func TestDetectNothing(t *testing.T) {
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "images"), 0o755) // half a folder dataset is none
	_, err := dataset.Detect(root)
	if err == nil {
		t.Fatal("an empty directory was recognised")
	}
	for _, want := range []string{root + ": no dataset layout recognised", "images/, masks/ and classes.txt", "leftImg8bit/ and gtFine/",
		"ADEChallengeData2016", "SegmentationClassContext/", "ImageSets/Segmentation/", "train/ and trainannot/", "--dataset"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v\nlacks %q", err, want)
		}
	}
	file := filepath.Join(root, "x.png")
	os.WriteFile(file, nil, 0o644)
	if _, err := dataset.Detect(file); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a file: %v", err)
	}
}

// Each mapping: stored values to labels, and one error for a value that is no label, naming the
// file, the pixel and the void values.
func TestLabels(t *testing.T) {
	cs, _ := dataset.Lookup(dataset.Cityscapes)
	ade, _ := dataset.Lookup(dataset.ADE20K)
	cam, _ := dataset.Lookup(dataset.CamVid)
	pc59, _ := dataset.Lookup(dataset.PascalContext59)
	zero, eleven := 0, 11
	for _, c := range []struct {
		name      string
		l         dataset.Labels
		in, out   []uint8
		bad       uint8
		wantError string
	}{
		{"cityscapes trainIds", cs.Labels(nil, false), []uint8{0, 13, 18, 255}, []uint8{0, 13, 18, 255}, 19, "classes 0–18; 255 is void"},
		{"ade20k", ade.Labels(nil, false), []uint8{0, 1, 150, 255}, []uint8{255, 0, 149, 255}, 151,
			"classes 1–150, read as 0–149 (reduce-zero-label); 0 and 255 are void"},
		{"pascal context 59", pc59.Labels(nil, false), []uint8{0, 1, 59}, []uint8{255, 0, 58}, 60, "0 and 255 are void"},
		{"camvid", cam.Labels(nil, false), []uint8{0, 10, 11, 255}, []uint8{0, 10, 255, 255}, 12, "classes 0–10; 11 and 255 are void"},
		{"camvid, ignore index 0", cam.Labels(&zero, false), []uint8{0, 10, 5}, []uint8{255, 10, 5}, 11, "classes 0–10; 0 and 255 are void"},
		{"camvid, reduce zero", cam.Labels(&eleven, true), []uint8{0, 1, 11}, []uint8{255, 0, 255}, 12, "classes 1–11, read as 0–10 (reduce-zero-label); 0, 11 and 255 are void"},
	} {
		m := voc.Mask{W: 2, H: len(c.in), Labels: make([]uint8, 2*len(c.in))}
		for i, v := range c.in {
			m.Labels[2*i], m.Labels[2*i+1] = v, v
		}
		if err := c.l.Apply("m.png", m); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for i, v := range c.out {
			if m.Labels[2*i] != v {
				t.Errorf("%s: %d → %d, want %d", c.name, c.in[i], m.Labels[2*i], v)
			}
		}
		m.Labels[5] = c.bad
		err := c.l.Apply("m.png", m)
		if err == nil || !strings.Contains(err.Error(), "m.png: label ") || !strings.Contains(err.Error(), " at (1, 2)") ||
			!strings.Contains(err.Error(), c.wantError) {
			t.Errorf("%s: %v, want label %d at (1, 2) and %q", c.name, err, c.bad, c.wantError)
		}
	}
}

// Cityscapes as downloaded (labelIds) trains as it is; 'segtrain data cityscapes' writes the
// trainIds files, which are then preferred and give the same labels.
func TestCityscapesLabelIDs(t *testing.T) {
	root, files := write(t, dataset.Cityscapes)
	d, err := dataset.Open(dataset.Cityscapes, root, "val", dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d.Note, "labelIds.png mapped to the 19 train ids on load") || !strings.HasSuffix(d.Masks[0], "_gtFine_labelIds.png") {
		t.Errorf("note %q, masks %s", d.Note, d.Masks[0])
	}
	before, _ := d.Load(0)
	n, err := dataset.ConvertCityscapes(root, 2)
	if err != nil || n != len(files) {
		t.Fatalf("converted %d of %d: %v", n, len(files), err)
	}
	stored, err := voc.ReadMask(strings.TrimSuffix(files[0].Mask, "_gtFine_labelIds.png") + "_gtFine_labelTrainIds.png")
	if err != nil || !bytes.Equal(stored.Labels, tree.Expected(0).Labels) {
		t.Errorf("the trainIds file holds other labels (%v)", err)
	}
	d, err = dataset.Open(dataset.Cityscapes, root, "val", dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	after, err := d.Load(0)
	if err != nil || d.Note != "" || !strings.HasSuffix(d.Masks[0], "_gtFine_labelTrainIds.png") || !bytes.Equal(before.Mask.Labels, after.Mask.Labels) {
		t.Errorf("after the conversion: note %q, mask %s, same labels %v (%v)", d.Note, d.Masks[0], bytes.Equal(before.Mask.Labels, after.Mask.Labels), err)
	}
	// A trainIds file missing where others exist: named, with the way out.
	os.Remove(d.Masks[1])
	if _, err := dataset.Open(dataset.Cityscapes, root, "val", dataset.Options{}); err == nil ||
		!strings.Contains(err.Error(), d.Images[1]+" has no mask") || !strings.Contains(err.Error(), "segtrain data cityscapes") {
		t.Errorf("missing trainIds: %v", err)
	}
	if _, err := dataset.ConvertCityscapes(t.TempDir(), 1); err == nil || !strings.Contains(err.Error(), "_gtFine_labelIds.png to convert") {
		t.Errorf("nothing to convert: %v", err)
	}
}

// An image without its mask, and a mask without its image, are named.
func TestUnpaired(t *testing.T) {
	root, files := write(t, dataset.CamVid)
	os.Remove(files[2].Mask)
	os.Remove(files[4].Mask)
	_, err := dataset.Open(dataset.CamVid, root, "train", dataset.Options{})
	if err == nil || !strings.Contains(err.Error(), "CamVid train: image "+files[2].Image+" has no mask: no "+files[2].Mask+" (and 1 other images lack theirs)") {
		t.Errorf("image without a mask: %v", err)
	}
	root, files = write(t, dataset.ADE20K)
	os.Remove(files[0].Image)
	_, err = dataset.Open(dataset.ADE20K, root, "validation", dataset.Options{})
	if err == nil || !strings.Contains(err.Error(), "mask "+files[0].Mask+" has no image: no "+files[0].Image) {
		t.Errorf("mask without an image: %v", err)
	}
}

// Listed files that are not there stop Open with one error naming the first and counting them
// all, for the layouts that read their ids from a list: the folder's masks, VOC's and Pascal
// Context's images and masks.
func TestMissingListedFiles(t *testing.T) {
	for _, name := range []string{dataset.Folder, dataset.VOC, dataset.PascalContext59} {
		root, files := write(t, name)
		// Both evaluation samples lose their masks; the folder layout lists its images itself.
		os.Remove(files[0].Mask)
		os.Remove(files[1].Mask)
		want := "2 of its 4 files are missing: " + files[0].Mask + ", " + files[1].Mask
		if name != dataset.Folder {
			os.Remove(files[0].Image)
			want = "3 of its 4 files are missing: " + files[0].Image + ", " + files[0].Mask + ", " + files[1].Mask
		}
		_, err := dataset.Open(name, root, datasettest.Splits[name][1], dataset.Options{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", name, err, want)
		}
		if _, err := dataset.Open(name, root, datasettest.Splits[name][0], dataset.Options{}); err != nil {
			t.Errorf("%s: the training split, whole: %v", name, err)
		}
	}
	root, files := write(t, dataset.VOC)
	for _, f := range files[2:] {
		os.Remove(f.Image)
		os.Remove(f.Mask)
	}
	if _, err := dataset.Open(dataset.VOC, root, "train", dataset.Options{}); err == nil ||
		!strings.Contains(err.Error(), "6 of its 6 files are missing: "+files[2].Image+", "+files[2].Mask+", "+files[3].Image+" and 3 more") {
		t.Errorf("every training file missing: %v", err)
	}
}

// A stored value outside the dataset's names the file, the pixel and the void values.
func TestBadLabel(t *testing.T) {
	root, files := write(t, dataset.CamVid)
	m := tree.Expected(files[3].Index)
	m.Labels[5*m.W+3] = 12
	if err := datasettest.WriteGrey(files[3].Mask, m); err != nil {
		t.Fatal(err)
	}
	d, err := dataset.Open(dataset.CamVid, root, "train", dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Load(slices.Index(d.IDs, files[3].ID))
	if err == nil || !strings.Contains(err.Error(), files[3].Mask+": label 12 at (3, 5) is not a CamVid label (classes 0–10; 11 and 255 are void)") {
		t.Errorf("bad label: %v", err)
	}
}

// Every kind of broken VOC sample is one error naming the file.
func TestBrokenSamples(t *testing.T) {
	root, _ := write(t, dataset.VOC)
	v, err := dataset.Open(dataset.VOC, root, "val", dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	jpg, msk := v.Images[0], v.Masks[1]
	raw, _ := os.ReadFile(jpg)
	os.WriteFile(jpg, raw[:len(raw)/3], 0o644)
	small, _ := voc.EncodeMask(voc.Mask{W: 3, H: 3, Labels: make([]uint8, 9)})
	os.WriteFile(msk, small, 0o644)
	for i, want := range []string{jpg + ": not a readable image", msk + " is 3×3 but its image"} {
		if _, err := v.Load(i); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("sample %d: %v, want %q", i, err, want)
		}
	}
	bad, _ := voc.EncodeMask(voc.Mask{W: 24, H: 24, Labels: append(make([]uint8, 24*24-1), 30)})
	os.WriteFile(msk, bad, 0o644)
	if _, err := v.Load(1); err == nil || !strings.Contains(err.Error(), "label 30 at (23, 23) is not a VOC 2012 label (classes 0–20; 255 is void)") {
		t.Errorf("label out of range: %v", err)
	}
	os.Remove(jpg)
	if _, err := v.Load(0); err == nil || !strings.Contains(err.Error(), jpg) {
		t.Errorf("missing image: %v", err)
	}
}

func TestFolder(t *testing.T) {
	root, _ := write(t, dataset.Folder)
	os.WriteFile(filepath.Join(root, "train.txt"), []byte("demo_00004\ndemo_00002\n"), 0o644)
	f, err := dataset.Open(dataset.Folder, root, "train", dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Len() != 2 || f.ID(0) != "demo_00004" {
		t.Errorf("%d ids, first %q", f.Len(), f.ID(0))
	}
	// Masks whose 0 marks ignored pixels: --ignore-index 0.
	zero := 0
	g, _ := dataset.Open(dataset.Folder, root, "train", dataset.Options{Void: &zero})
	s, err := g.Load(0)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(s.Mask.Labels, 0) || !slices.Contains(s.Mask.Labels, voc.Ignore) {
		t.Error("ignore index 0 was not mapped to 255")
	}
	// And with reduce-zero-label the demo's class 1 becomes 0.
	r, _ := dataset.Open(dataset.Folder, root, "train", dataset.Options{ReduceZero: true})
	s2, err := r.Load(0)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range s.Mask.Labels {
		if l != voc.Ignore && s2.Mask.Labels[i] != l-1 {
			t.Fatalf("pixel %d: %d with reduce-zero-label, %d without", i, s2.Mask.Labels[i], l)
		}
	}
	os.WriteFile(filepath.Join(root, "train.txt"), []byte("nope\n"), 0o644)
	if _, err := dataset.Open(dataset.Folder, root, "train", dataset.Options{}); err == nil || !strings.Contains(err.Error(), `lists "nope"`) {
		t.Errorf("unknown id: %v", err)
	}
	big := 256
	if _, err := dataset.Open(dataset.Folder, root, "train", dataset.Options{Void: &big}); err == nil || !strings.Contains(err.Error(), "ignore index 256") {
		t.Errorf("ignore index 256: %v", err)
	}
	os.Remove(filepath.Join(root, "classes.txt"))
	if _, err := dataset.Open(dataset.Folder, root, "val", dataset.Options{}); err == nil || !strings.Contains(err.Error(), "classes.txt") {
		t.Errorf("no classes.txt: %v", err)
	}
	names := filepath.Join(t.TempDir(), "classes.txt")
	os.WriteFile(names, []byte("road\nsky\n\ncar\n"), 0o644)
	if got, err := dataset.ReadClassNames(names); err != nil || !slices.Equal(got, []string{"road", "sky", "car"}) {
		t.Errorf("class names %v, %v", got, err)
	}
}

// The class tables are mmseg's: sizes, first and last names, and palettes of 256 colours whose
// first entries are the datasets' own.
func TestInfo(t *testing.T) {
	for name, want := range map[string][3]string{
		dataset.Cityscapes: {"19", "road", "bicycle"}, dataset.ADE20K: {"150", "wall", "flag"},
		dataset.PascalContext: {"60", "background", "wood"}, dataset.PascalContext59: {"59", "aeroplane", "wood"},
		dataset.CamVid: {"11", "Sky", "Bicyclist"}, dataset.VOC: {"21", "background", "tvmonitor"},
	} {
		in, err := dataset.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		n := len(in.Classes)
		if got := [3]string{fmt.Sprint(n), in.Classes[0], in.Classes[n-1]}; got != want {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
		if len(in.Palette) != 256 {
			t.Errorf("%s: palette of %d", name, len(in.Palette))
		}
	}
	cs, _ := dataset.Lookup(dataset.Cityscapes)
	if r, g, b, _ := cs.Palette[0].RGBA(); r>>8 != 128 || g>>8 != 64 || b>>8 != 128 {
		t.Errorf("Cityscapes road is (%d, %d, %d)", r>>8, g>>8, b>>8)
	}
	if _, err := dataset.Lookup("coco"); err == nil || !strings.Contains(err.Error(), "known: voc, cityscapes, ade20k") {
		t.Errorf("unknown dataset: %v", err)
	}
}

// mmseg's data/VOCdevkit holds VOC2012 and VOC2010 (Pascal Context, whose directory has VOC's
// files too): each directory is recognised as its dataset, the devkit is ambiguous, and a named
// layout finds its directory in it.
func TestDetectVOCdevkit(t *testing.T) {
	devkit := t.TempDir()
	if _, err := tree.Write(dataset.VOC, filepath.Join(devkit, "VOC2012")); err != nil {
		t.Fatal(err)
	}
	if _, err := tree.Write(dataset.PascalContext59, filepath.Join(devkit, "VOC2010")); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(devkit, "VOC2010", "ImageSets", "Segmentation"), 0o755)
	if f, err := dataset.Detect(filepath.Join(devkit, "VOC2010")); err != nil || f.Name != dataset.PascalContext59 {
		t.Errorf("VOC2010: %+v, %v", f, err)
	}
	if f, err := dataset.Detect(filepath.Join(devkit, "VOC2012")); err != nil || f.Name != dataset.VOC {
		t.Errorf("VOC2012: %+v, %v", f, err)
	}
	_, err := dataset.Detect(devkit)
	if err == nil || !strings.Contains(err.Error(), devkit+" holds more than one dataset: pascal_context_59 (JPEGImages/, SegmentationClassContext/ in "+
		filepath.Join(devkit, "VOC2010")+"), voc (JPEGImages/, ImageSets/Segmentation/ in "+filepath.Join(devkit, "VOC2012")+")") {
		t.Errorf("the devkit: %v", err)
	}
	for _, name := range []string{dataset.VOC, dataset.PascalContext59} {
		if d, err := dataset.Open(name, devkit, "val", dataset.Options{}); err != nil || d.Len() != 2 {
			t.Errorf("%s in the devkit: %v", name, err)
		}
	}
}
