package sweep

import (
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/segkit/segkit/segmentation/internal/segtest"

	"github.com/segkit/segkit/parallel"
	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/segmentation/train"
)

// A sweep of 2 budgets × 1 scale × 2 seeds: its directory, the summary's numbers equal to the
// runs' own metrics.json, the plot; a second call skips the finished runs; an interrupted run is
// resumed; another plan in the same directory is refused.
func TestSweep(t *testing.T) {
	c := segtest.TinyConfig(t)
	c.Iters, c.DemoImages, c.AlphaLR = 3, 10, 0.05
	dir := filepath.Join(t.TempDir(), "sweep")
	var out strings.Builder
	s := &Sweep{Base: c, Budgets: []float64{0.5, 1}, Scales: []float64{1}, Seeds: 2, Dir: dir, Out: &out}
	plan := s.Plan()
	if len(plan) != 6 || plan[0].Name != "dynopool_budget0.5_seed0" || plan[5].Name != "fixed_scale1_seed1" {
		t.Fatalf("plan %v", plan)
	}
	// The first run was interrupted after 2 of its 3 iterations.
	first := &train.Run{Cfg: plan[0].Config, Out: &strings.Builder{}, NoBar: true, StopAt: 2}
	if _, err := first.Train(); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Run()
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "dynopool_budget0.5_seed0: resuming") {
		t.Errorf("the interrupted run was not resumed:\n%s", out.String())
	}
	if l := segtest.Losses(t, filepath.Join(dir, plan[0].Name)); len(l) != 3 {
		t.Errorf("the resumed run logged iterations %v, want 1–3 once each", l)
	}
	for _, f := range []string{"sweep.json", "summary.json", "summary.csv", "frontier.png"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	if len(rep.Rows) != 3 {
		t.Fatalf("%d rows, want 3:\n%s", len(rep.Rows), rep.Table())
	}
	for _, row := range rep.Rows {
		var ious []float64
		for _, run := range plan {
			if run.Kind != row.Kind || run.Value != row.Value {
				continue
			}
			var m struct{ MIoU float64 }
			raw, err := os.ReadFile(filepath.Join(dir, run.Name, "metrics.json"))
			if err != nil || json.Unmarshal(raw, &m) != nil {
				t.Fatalf("%s: %v", run.Name, err)
			}
			ious = append(ious, m.MIoU)
		}
		mean := (ious[0] + ious[1]) / 2
		std := math.Abs(ious[0]-ious[1]) / math.Sqrt2
		if row.Seeds != 2 || math.Abs(row.MIoU-mean) > 1e-12 || math.Abs(row.MIoUStd-std) > 1e-12 || !(row.GMACs > 0) || !(row.ImagesPerS > 0) ||
			len(row.Sizes) != 2 || len(row.Sizes[0]) != 4 {
			t.Errorf("row %+v; the runs' mIoU %v", row, ious)
		}
	}
	// Pareto: no row is dominated by another on the front.
	for _, a := range rep.Rows {
		for _, b := range rep.Rows {
			if a.Pareto && b.GMACs <= a.GMACs && b.MIoU >= a.MIoU && (b.GMACs < a.GMACs || b.MIoU > a.MIoU) {
				t.Errorf("%+v is on the front but %+v dominates it", a, b)
			}
		}
	}
	stamp, _ := os.Stat(filepath.Join(dir, plan[3].Name, "metrics.json"))
	out.Reset()
	if _, err := s.Run(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "finished before, skipped"); n != 6 {
		t.Errorf("second call skipped %d of 6 runs:\n%s", n, out.String())
	}
	if again, _ := os.Stat(filepath.Join(dir, plan[3].Name, "metrics.json")); !again.ModTime().Equal(stamp.ModTime()) {
		t.Error("a finished run was trained again")
	}
	other := *s
	other.Seeds = 3
	var se segmentation.SettingError
	if _, err := other.Run(); !errors.As(err, &se) || !strings.Contains(err.Error(), "holds another sweep") {
		t.Errorf("another plan in the same directory: %v", err)
	}
	if _, err := ReportSweep(dir); err != nil {
		t.Errorf("--report: %v", err)
	}
}

// Under a launcher each run of the sweep is data-parallel over the ranks: rank 0 says what to
// run, writes and reports; the other ranks follow, whatever files they see.
func TestSweepRanks(t *testing.T) {
	c := segtest.TinyConfig(t)
	c.Iters, c.DemoImages, c.Batch = 2, 10, 4 // two images per rank: batch norm needs more than one value
	dir := filepath.Join(t.TempDir(), "sweep")
	comms := parallel.NewLocal(2, 0)
	sweep := func() ([]*SweepReport, []error, string) {
		reps, errs := make([]*SweepReport, 2), make([]error, 2)
		var out strings.Builder
		var wg sync.WaitGroup
		for i, comm := range comms {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w := io.Writer(io.Discard)
				if i == 0 {
					w = &out
				}
				s := &Sweep{Base: c, Budgets: []float64{0.5}, Scales: []float64{1}, Seeds: 1, Dir: dir, Out: w, Comm: comm}
				reps[i], errs[i] = s.Run()
			}()
		}
		wg.Wait()
		return reps, errs, out.String()
	}
	reps, errs, out := sweep()
	if errors.Join(errs...) != nil {
		t.Fatal(errors.Join(errs...))
	}
	if len(reps[0].Rows) != 2 || len(reps[1].Rows) != 0 {
		t.Errorf("rank 0 reports %d rows, rank 1 %d; want 2 and 0", len(reps[0].Rows), len(reps[1].Rows))
	}
	for _, name := range []string{"dynopool_budget0.5_seed0", "fixed_scale1_seed0"} {
		if _, err := os.Stat(filepath.Join(dir, name, measureFile)); err != nil {
			t.Error(err)
		}
	}
	if _, errs, out = sweep(); errors.Join(errs...) != nil || strings.Count(out, "skipped") != 2 {
		t.Errorf("again: %v\n%s", errors.Join(errs...), out)
	}
	bad := &Sweep{Base: c, Budgets: []float64{0.5}, Seeds: 1, Parallel: 2, Comm: comms[0]}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "already data-parallel") {
		t.Errorf("--parallel under a launcher: %v", err)
	}
}

// An empty metrics.json (left by a full disk or a kill before writes were atomic) does not make
// a run finished: --report leaves it out and says so, and the sweep finishes it again; an empty
// sweep_eval.json is measured again.
func TestSweepEmptyResultFiles(t *testing.T) {
	c := segtest.TinyConfig(t)
	c.Iters, c.DemoImages = 2, 10
	dir := filepath.Join(t.TempDir(), "sweep")
	var out strings.Builder
	s := &Sweep{Base: c, Budgets: []float64{0.5}, Scales: []float64{1}, Seeds: 1, Dir: dir, Out: &out}
	if _, err := s.Run(); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	plan := s.Plan()
	a, b := filepath.Join(dir, plan[0].Name), filepath.Join(dir, plan[1].Name)
	want, err := os.ReadFile(filepath.Join(a, "metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(a, "metrics.json"), nil, 0o644)
	os.WriteFile(filepath.Join(b, measureFile), nil, 0o644)
	rep, err := ReportSweep(dir)
	if err != nil {
		t.Fatalf("--report: %v", err)
	}
	if len(rep.Rows) != 1 || rep.Rows[0].Kind != "fixed" || !slices.Equal(rep.Unfinished, []string{plan[0].Name}) ||
		!strings.Contains(rep.Table(), "unfinished, left out (run the sweep again to finish them): "+plan[0].Name) {
		t.Errorf("--report with an empty metrics.json:\n%s", rep.Table())
	}
	if _, err := readMeasured(b); err != nil {
		t.Errorf("the empty %s was not measured again: %v", measureFile, err)
	}
	out.Reset()
	rep, err = s.Run()
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), plan[0].Name+": resuming") || !strings.Contains(out.String(), plan[1].Name+": finished before, skipped") ||
		len(rep.Rows) != 2 || len(rep.Unfinished) != 0 {
		t.Errorf("the sweep again:\n%s\n%s", out.String(), rep.Table())
	}
	if got, _ := os.ReadFile(filepath.Join(a, "metrics.json")); string(got) != string(want) {
		t.Errorf("metrics.json finished again:\n%s\nwant\n%s", got, want)
	}
}

// A baseline's input scale resizes the images for training and evaluation; the demo dataset's
// images keep their size.
func TestInputScaled(t *testing.T) {
	c := segmentation.DemoConfig()
	half := c.InputScaled(0.5)
	if half.Crop != 48 || half.CropW != 0 || half.Scale != [2]int{192, 48} || half.TestScale != [2]int{192, 48} || half.DemoSize != 96 {
		t.Errorf("half: crop %d×%d, scale %v, test scale %v, demo size %d", half.Crop, half.CropW, half.Scale, half.TestScale, half.DemoSize)
	}
	city, err := segmentation.RecipeFor("cityscapes")
	if err != nil {
		t.Fatal(err)
	}
	city.Config.Data = "data/cityscapes"
	q := city.Config.InputScaled(0.75)
	if q.Crop != 384 || q.CropW != 768 || q.Scale != [2]int{1536, 768} || q.TestScale != [2]int{1536, 768} || q.DemoSize != 0 {
		t.Errorf("Cityscapes × 0.75: crop %d×%d, scale %v, test scale %v, demo size %d", q.Crop, q.CropW, q.Scale, q.TestScale, q.DemoSize)
	}
	for _, bad := range []Sweep{{Seeds: 1}, {Budgets: []float64{0}, Seeds: 1}, {Scales: []float64{-1}, Seeds: 1}, {Budgets: []float64{1}}} {
		var se segmentation.SettingError
		if err := bad.Validate(); !errors.As(err, &se) {
			t.Errorf("%+v: %v, want a segmentation.SettingError", bad, err)
		}
	}
}
