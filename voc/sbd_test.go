package voc

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A small SBD (two .mat files, the fixtures of internal/mat) next to a demo VOC root: trainaug =
// VOC train ∪ SBD train ∪ SBD val minus VOC val, masks from SBD where it has them.
func TestConvertSBD(t *testing.T) {
	root := demoRoot(t) // train demo_00002..5, val demo_00000..1
	sbd := filepath.Join(t.TempDir(), "benchmark_RELEASE", "dataset")
	os.MkdirAll(filepath.Join(sbd, "cls"), 0o755)
	for name, id := range map[string]string{"compressed.mat": "demo_00003", "plain.mat": "sbd_0001"} {
		raw, err := os.ReadFile(filepath.Join("..", "internal", "mat", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(sbd, "cls", id+".mat"), raw, 0o644)
	}
	os.WriteFile(filepath.Join(sbd, "train.txt"), []byte("demo_00003\nsbd_0001\n"), 0o644)
	os.WriteFile(filepath.Join(sbd, "val.txt"), []byte("demo_00000\n"), 0o644) // in VOC val: left out
	rep, err := ConvertSBD(filepath.Dir(filepath.Dir(sbd)), filepath.Dir(root))
	if err != nil {
		t.Fatal(err)
	}
	if rep.IDs != 5 || rep.FromSBD != 2 || rep.FromVOC != 3 {
		t.Errorf("report %+v", rep)
	}
	ids, err := ReadIDs(filepath.Join(root, "ImageSets", "Segmentation", "trainaug.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"demo_00002", "demo_00003", "demo_00004", "demo_00005", "sbd_0001"}; !slices.Equal(ids, want) {
		t.Errorf("trainaug %v, want %v", ids, want)
	}
	m, err := ReadMask(filepath.Join(root, "SegmentationClassAug", "sbd_0001.png"))
	if err != nil || m.W != 5 || m.H != 7 || m.Labels[2*5+1] != 15 || m.Labels[6*5+4] != 7 {
		t.Errorf("converted mask %d×%d %v: %v", m.W, m.H, m.Labels, err)
	}
	// The SBD mask replaces the VOC one for demo_00003 (6×9, not the demo's 40×40).
	if m, _ := ReadMask(filepath.Join(root, "SegmentationClassAug", "demo_00003.png")); m.W != 9 {
		t.Errorf("demo_00003 came from VOC, not SBD")
	}
	os.WriteFile(filepath.Join(sbd, "cls", "sbd_0001.mat"), []byte("MATLAB 5.0 MAT-file, broken"), 0o644)
	if _, err := ConvertSBD(sbd, root); err == nil || !strings.Contains(err.Error(), "sbd_0001.mat") {
		t.Errorf("broken .mat: %v", err)
	}
	if _, err := ConvertSBD(t.TempDir(), root); err == nil || !strings.Contains(err.Error(), "no SBD cls/") {
		t.Errorf("not an SBD dir: %v", err)
	}
}
