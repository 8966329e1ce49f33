package metrics

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Confusion is a confusion matrix accumulated over a whole evaluated set, image by image: rows
// are ground truth, columns prediction; pixels whose ground truth is Ignore are skipped. Memory
// does not depend on the number of images.
type Confusion struct {
	Classes int
	Ignore  int
	counts  []int64 // Classes × Classes
}

// NewConfusion returns an empty matrix for classes classes and the given ignore label.
func NewConfusion(classes, ignore int) *Confusion {
	return &Confusion{Classes: classes, Ignore: ignore, counts: make([]int64, classes*classes)}
}

// Add counts one image. gt and pred hold a label per pixel; a ground-truth label other than
// Ignore, or a predicted label, outside [0, Classes) is an error (nothing is counted then).
func (c *Confusion) Add(gt, pred []uint8) error {
	if len(gt) != len(pred) {
		return fmt.Errorf("prediction has %d pixels, ground truth %d", len(pred), len(gt))
	}
	for i, g := range gt {
		if int(g) != c.Ignore && int(g) >= c.Classes {
			return fmt.Errorf("ground-truth label %d at pixel %d: classes are 0–%d (and %d ignored)", g, i, c.Classes-1, c.Ignore)
		}
		if int(g) != c.Ignore && int(pred[i]) >= c.Classes {
			return fmt.Errorf("predicted label %d at pixel %d: classes are 0–%d", pred[i], i, c.Classes-1)
		}
	}
	for i, g := range gt {
		if int(g) != c.Ignore {
			c.counts[int(g)*c.Classes+int(pred[i])]++
		}
	}
	return nil
}

// Merge adds the counts of o (same classes) to c.
func (c *Confusion) Merge(o *Confusion) {
	for i, v := range o.counts {
		c.counts[i] += v
	}
}

// Counts is the matrix itself (ground truth × prediction, row-major), for callers that combine
// matrices of their own, e.g. summed over the ranks of a data-parallel evaluation.
func (c *Confusion) Counts() []int64 { return c.counts }

// ClassResult is one class's IoU and accuracy; nil where undefined: IoU for a class in neither
// ground truth nor prediction, Acc for a class not in the ground truth.
type ClassResult struct {
	Name string   `json:"-"`
	IoU  *float64 `json:"iou"`
	Acc  *float64 `json:"acc"`
}

// Result holds the metrics as fractions in [0, 1]. Means are over the classes where defined.
type Result struct {
	AAcc     float64       `json:"aAcc"`
	MIoU     float64       `json:"mIoU"`
	MAcc     float64       `json:"mAcc"`
	PerClass []ClassResult `json:"-"`
	Pixels   int64         `json:"pixels"`
}

// Result computes IoU_c = TP/(TP+FP+FN), Acc_c = TP/(TP+FN), aAcc = ΣTP/Σ, and their means;
// names label the classes (missing names become "class N").
func (c *Confusion) Result(names []string) Result {
	var r Result
	var tpAll, total int64
	var iouSum, accSum float64
	var iouN, accN int
	for k := 0; k < c.Classes; k++ {
		var row, col int64
		for j := 0; j < c.Classes; j++ {
			row += c.counts[k*c.Classes+j]
			col += c.counts[j*c.Classes+k]
		}
		tp := c.counts[k*c.Classes+k]
		tpAll += tp
		total += row
		cr := ClassResult{Name: fmt.Sprintf("class %d", k)}
		if k < len(names) {
			cr.Name = names[k]
		}
		if union := row + col - tp; union > 0 {
			v := float64(tp) / float64(union)
			cr.IoU = &v
			iouSum += v
			iouN++
		}
		if row > 0 {
			v := float64(tp) / float64(row)
			cr.Acc = &v
			accSum += v
			accN++
		}
		r.PerClass = append(r.PerClass, cr)
	}
	r.Pixels = total
	if total > 0 {
		r.AAcc = float64(tpAll) / float64(total)
	}
	if iouN > 0 {
		r.MIoU = iouSum / float64(iouN)
	}
	if accN > 0 {
		r.MAcc = accSum / float64(accN)
	}
	return r
}

// MarshalJSON writes the metrics with "per_class": name → {"iou", "acc"} (null where undefined).
func (r Result) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	fmt.Fprintf(&b, `{"mIoU":%s,"aAcc":%s,"mAcc":%s,"pixels":%d,"per_class":{`, num(r.MIoU), num(r.AAcc), num(r.MAcc), r.Pixels)
	for i, c := range r.PerClass {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `%q:{"iou":%s,"acc":%s}`, c.Name, opt(c.IoU), opt(c.Acc))
	}
	b.WriteString("}}")
	return []byte(b.String()), nil
}

func num(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "null"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func opt(v *float64) string {
	if v == nil {
		return "null"
	}
	return num(*v)
}

// Table is the per-class table in percent, "-" where undefined, then the summary.
func (r Result) Table() string {
	width := len("Class")
	for _, c := range r.PerClass {
		width = max(width, len(c.Name))
	}
	var b strings.Builder
	line := strings.Repeat("-", width+20) + "\n"
	fmt.Fprintf(&b, "%s%-*s | %6s | %6s\n%s", line, width, "Class", "IoU", "Acc", line)
	pct := func(v *float64) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprintf("%.2f", 100**v)
	}
	absent := 0
	for _, c := range r.PerClass {
		fmt.Fprintf(&b, "%-*s | %6s | %6s\n", width, c.Name, pct(c.IoU), pct(c.Acc))
		if c.IoU == nil {
			absent++
		}
	}
	fmt.Fprintf(&b, "%saAcc %.2f  mIoU %.2f  mAcc %.2f  (%d pixels)\n", line, 100*r.AAcc, 100*r.MIoU, 100*r.MAcc, r.Pixels)
	if absent > 0 {
		fmt.Fprintf(&b, "%d classes absent from both ground truth and prediction (\"-\") are left out of the means.\n", absent)
	}
	return b.String()
}
