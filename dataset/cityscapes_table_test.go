package dataset_test

import (
	"strings"
	"testing"

	"github.com/segkit/segkit/dataset"
	"github.com/segkit/segkit/dataset/datasettest"
	"github.com/segkit/segkit/voc"
)

// officialTrainIDs is cityscapesScripts' helpers/labels.py written out by hand: labelId →
// trainId for the 34 ids a labelIds PNG holds (license plate, id −1, is never stored). Kept
// as a literal, not derived from the package's table, so that one wrong entry there fails.
var officialTrainIDs = [34]uint8{
	0:  255, // unlabeled
	1:  255, // ego vehicle
	2:  255, // rectification border
	3:  255, // out of roi
	4:  255, // static
	5:  255, // dynamic
	6:  255, // ground
	7:  0,   // road
	8:  1,   // sidewalk
	9:  255, // parking
	10: 255, // rail track
	11: 2,   // building
	12: 3,   // wall
	13: 4,   // fence
	14: 255, // guard rail
	15: 255, // bridge
	16: 255, // tunnel
	17: 5,   // pole
	18: 255, // polegroup
	19: 6,   // traffic light
	20: 7,   // traffic sign
	21: 8,   // vegetation
	22: 9,   // terrain
	23: 10,  // sky
	24: 11,  // person
	25: 12,  // rider
	26: 13,  // car
	27: 14,  // truck
	28: 15,  // bus
	29: 255, // caravan
	30: 255, // trailer
	31: 16,  // train
	32: 17,  // motorcycle
	33: 18,  // bicycle
}

// Every one of the 34 labelIds, stored in one mask, maps to the official trainId both when
// the labelIds masks are read on load and in the trainIds files ConvertCityscapes writes; 34
// and up are no labelId.
func TestCityscapesTrainIDTable(t *testing.T) {
	root, files := write(t, dataset.Cityscapes)
	f := files[0] // in val
	m := tree.Expected(0)
	for i := range m.Labels {
		m.Labels[i] = uint8(i % len(officialTrainIDs))
	}
	if err := datasettest.WriteGrey(f.Mask, m); err != nil {
		t.Fatal(err)
	}
	check := func(how string, got voc.Mask) {
		t.Helper()
		if len(got.Labels) != len(m.Labels) {
			t.Fatalf("%s: %d pixels, want %d", how, len(got.Labels), len(m.Labels))
		}
		seen := map[int]bool{}
		for i, v := range got.Labels {
			id := int(m.Labels[i])
			if want := officialTrainIDs[id]; v != want && !seen[id] {
				seen[id] = true
				t.Errorf("%s: labelId %d → %d, want trainId %d", how, id, v, want)
			}
		}
	}
	d, err := dataset.Open(dataset.Cityscapes, root, f.Split, dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k := -1
	for i, id := range d.IDs {
		if id == f.ID {
			k = i
		}
	}
	if k < 0 || d.Masks[k] != f.Mask {
		t.Fatalf("%s not opened from its labelIds mask (%v, %v)", f.ID, d.IDs, d.Masks)
	}
	s, err := d.Load(k)
	if err != nil {
		t.Fatal(err)
	}
	check("on load", s.Mask)
	if _, err := dataset.ConvertCityscapes(root, 1); err != nil {
		t.Fatal(err)
	}
	conv, err := voc.ReadMask(strings.TrimSuffix(f.Mask, "_gtFine_labelIds.png") + "_gtFine_labelTrainIds.png")
	if err != nil {
		t.Fatal(err)
	}
	check("converted", conv)
	// The first value past the table is rejected, not silently void.
	bad := voc.Mask{W: 1, H: 1, Labels: []uint8{uint8(len(officialTrainIDs))}}
	if err := d.Labels.Apply("m.png", bad); err == nil || !strings.Contains(err.Error(), "labelIds 0–33") {
		t.Errorf("labelId 34: %v, want an error naming labelIds 0–33", err)
	}
}
