package dataset

import (
	"fmt"
	"strings"

	"github.com/segkit/segkit/voc"
)

// Labels turns the values stored in a dataset's mask files into training labels: class indices
// 0..Classes-1, or voc.Ignore (255) for pixels that the loss and the metrics skip. The steps
// are mmseg's: the void value (and 255) become Ignore; Remap, when set, maps the rest
// (Cityscapes labelIds → train ids); ReduceZero then makes 0 void and k → k−1.
type Labels struct {
	Dataset string // named in errors: "Cityscapes"
	Classes int
	// Void is the value on disk of pixels to ignore ("ignore index"); 255 is always ignored.
	Void int
	// Remap maps a stored value v < len(Remap) to Remap[v] (voc.Ignore for values without a
	// class); larger values are errors. Nil: the values are the labels.
	Remap []uint8
	// RemapName names what the stored values are when Remap is set: "labelIds".
	RemapName  string
	ReduceZero bool // mmseg's reduce_zero_label (ADE20K, Pascal Context 59)
}

// badValue marks a table entry of a value that is not a label.
const badValue = -1

// table is the mapping as a lookup table: stored value → label, or badValue.
func (l Labels) table() [256]int {
	var t [256]int
	for v := range t {
		lab := v
		switch {
		case v == voc.Ignore || v == l.Void:
			t[v] = voc.Ignore
			continue
		case l.Remap != nil && v >= len(l.Remap):
			t[v] = badValue
			continue
		case l.Remap != nil:
			lab = int(l.Remap[v])
			if lab == voc.Ignore {
				t[v] = voc.Ignore
				continue
			}
		}
		if l.ReduceZero {
			if lab == 0 {
				t[v] = voc.Ignore
				continue
			}
			lab--
		}
		if lab >= l.Classes {
			lab = badValue
		}
		t[v] = lab
	}
	return t
}

// Apply maps m's stored values to labels in place; a value that is not a label is an error
// naming the file, the pixel and the values the dataset has (its void among them).
func (l Labels) Apply(path string, m voc.Mask) error {
	t := l.table()
	for i, v := range m.Labels {
		lab := t[v]
		if lab == badValue {
			return fmt.Errorf("%s: label %d at (%d, %d) is not a %s label (%s)", path, v, i%m.W, i/m.W, l.Dataset, l.Describe())
		}
		m.Labels[i] = uint8(lab)
	}
	return nil
}

// Describe says which stored values are classes and which are void: "classes 0–10; 11 and
// 255 are void".
func (l Labels) Describe() string {
	voids := []string{}
	if l.ReduceZero {
		voids = append(voids, "0")
	}
	if l.Void != voc.Ignore && !(l.ReduceZero && l.Void == 0) {
		voids = append(voids, fmt.Sprint(l.Void))
	}
	voids = append(voids, fmt.Sprint(voc.Ignore))
	void := voids[0] + " is void"
	if n := len(voids); n > 1 {
		void = strings.Join(voids[:n-1], ", ") + " and " + voids[n-1] + " are void"
	}
	switch {
	case l.Remap != nil:
		return fmt.Sprintf("%s 0–%d, mapped to %d classes; %s", l.RemapName, len(l.Remap)-1, l.Classes, void)
	case l.ReduceZero:
		return fmt.Sprintf("classes 1–%d, read as 0–%d (reduce-zero-label); %s", l.Classes, l.Classes-1, void)
	default:
		return fmt.Sprintf("classes 0–%d; %s", l.Classes-1, void)
	}
}
