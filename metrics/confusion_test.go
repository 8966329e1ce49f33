package metrics

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

// By hand, 4 classes, 255 ignored:
//
//	gt   0 0 1 1 2 255 1
//	pred 0 1 1 1 0 2   3
//
// counts (gt, pred): (0,0)=1 (0,1)=1 (1,1)=2 (1,3)=1 (2,0)=1.
// class 0: TP 1, gt 2, pred 2: IoU 1/3, Acc 1/2
// class 1: TP 2, gt 3, pred 3: IoU 2/4, Acc 2/3
// class 2: TP 0, gt 1, pred 0: IoU 0, Acc 0
// class 3: TP 0, gt 0, pred 1: IoU 0 (predicted, never true), Acc undefined
// aAcc 3/6; mIoU (1/3 + 1/2 + 0 + 0)/4; mAcc (1/2 + 2/3 + 0)/3.
func TestHandComputed(t *testing.T) {
	c := NewConfusion(4, 255)
	if err := c.Add([]uint8{0, 0, 1, 1, 2, 255, 1}, []uint8{0, 1, 1, 1, 0, 2, 3}); err != nil {
		t.Fatal(err)
	}
	r := c.Result([]string{"bg", "a", "b", "c"})
	if !near(r.AAcc, 3.0/6) || !near(r.MIoU, (1.0/3+0.5)/4) || !near(r.MAcc, (0.5+2.0/3)/3) || r.Pixels != 6 {
		t.Errorf("aAcc %v mIoU %v mAcc %v pixels %d", r.AAcc, r.MIoU, r.MAcc, r.Pixels)
	}
	want := []struct{ iou, acc *float64 }{{f(1.0 / 3), f(0.5)}, {f(0.5), f(2.0 / 3)}, {f(0), f(0)}, {f(0), nil}}
	for k, w := range want {
		got := r.PerClass[k]
		if !same(got.IoU, w.iou) || !same(got.Acc, w.acc) {
			t.Errorf("class %d: iou %v acc %v", k, deref(got.IoU), deref(got.Acc))
		}
	}
}

// A class in neither ground truth nor prediction has no IoU: left out of the means, "-" in the
// table, null in JSON.
func TestAbsentClass(t *testing.T) {
	c := NewConfusion(3, 255)
	if err := c.Add([]uint8{0, 1, 1}, []uint8{0, 1, 0}); err != nil {
		t.Fatal(err)
	}
	r := c.Result([]string{"background", "cat", "dog"})
	if !near(r.MIoU, (0.5+0.5)/2) || r.PerClass[2].IoU != nil {
		t.Errorf("mIoU %v, dog iou %v", r.MIoU, deref(r.PerClass[2].IoU))
	}
	table := r.Table()
	if !strings.Contains(table, "dog") || !strings.Contains(table, "|      - |      -") || !strings.Contains(table, "1 classes absent") {
		t.Errorf("table:\n%s", table)
	}
	raw, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		MIoU     float64 `json:"mIoU"`
		AAcc     float64 `json:"aAcc"`
		MAcc     float64 `json:"mAcc"`
		PerClass map[string]*struct {
			IoU *float64 `json:"iou"`
			Acc *float64 `json:"acc"`
		} `json:"per_class"`
	}
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	if !near(back.MIoU, 0.5) || back.PerClass["dog"].IoU != nil || back.PerClass["cat"].IoU == nil || !near(*back.PerClass["cat"].IoU, 0.5) {
		t.Errorf("json %s", raw)
	}
}

func TestBadLabels(t *testing.T) {
	c := NewConfusion(3, 255)
	for _, tc := range []struct {
		gt, pred []uint8
		want     string
	}{
		{[]uint8{0, 7}, []uint8{0, 1}, "ground-truth label 7 at pixel 1"},
		{[]uint8{0, 1}, []uint8{0, 9}, "predicted label 9 at pixel 1"},
		{[]uint8{0, 1}, []uint8{0}, "prediction has 1 pixels, ground truth 2"},
	} {
		if err := c.Add(tc.gt, tc.pred); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
	if c.Result(nil).Pixels != 0 {
		t.Error("a rejected image was counted")
	}
}

func f(v float64) *float64 { return &v }

func same(a, b *float64) bool { return (a == nil) == (b == nil) && (a == nil || near(*a, *b)) }

func deref(v *float64) any {
	if v == nil {
		return nil
	}
	return *v
}
