package sweep

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/segkit/segkit/internal/atomicfile"
)

// sweepSeed is one finished run of a hand-made sweep: its measurements, or nothing (unfinished).
type sweepSeed struct {
	done             bool
	miou, gmacs, ips float64
}

// writeHandSweep writes a sweep directory by hand, no training: sweep.json's runs and, for each
// finished seed, metrics.json and the sweep_eval.json that ReportSweep reads instead of
// measuring.
func writeHandSweep(t *testing.T, dir string, groups []handGroup) {
	t.Helper()
	var plan sweepFile
	for _, g := range groups {
		for k, s := range g.seeds {
			run := SweepRun{Name: g.kind + "_" + g.name + "_seed" + string(rune('0'+k)), Kind: g.kind, Value: g.value, Seed: uint64(k)}
			plan.Runs = append(plan.Runs, run)
			if !s.done {
				continue
			}
			rdir := filepath.Join(dir, run.Name)
			if err := os.MkdirAll(rdir, 0o755); err != nil {
				t.Fatal(err)
			}
			m := Measured{MIoU: s.miou, GMACs: s.gmacs, ImagesPerS: s.ips, Images: 1, BranchSizes: [][2]int{{k + 1, k + 1}}}
			if err := atomicfile.WriteJSON(filepath.Join(rdir, "metrics.json"), map[string]float64{"mIoU": s.miou}); err != nil {
				t.Fatal(err)
			}
			if err := atomicfile.WriteJSON(filepath.Join(rdir, measureFile), m); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := atomicfile.WriteJSON(filepath.Join(dir, "sweep.json"), plan); err != nil {
		t.Fatal(err)
	}
}

type handGroup struct {
	kind, name string
	value      float64
	seeds      []sweepSeed
}

// handSweep has 3 seeds per budget and scale, one of them unfinished (left out of its row), an
// exact GMACs tie (the lower mIoU is dominated) and a row dominated outright. The seeds' GMACs
// differ within a row so that a mean divided by the seed count twice shows.
var handSweep = []handGroup{
	{"dynopool", "budget0.5", 0.5, []sweepSeed{{true, 0.60, 1.0, 10}, {true, 0.62, 1.2, 12}, {true, 0.64, 1.1, 14}}},
	{"dynopool", "budget0.75", 0.75, []sweepSeed{{true, 0.66, 1.5, 8}, {true, 0.66, 1.5, 8}, {true, 0.66, 1.5, 8}}},
	{"dynopool", "budget1", 1, []sweepSeed{{true, 0.70, 1.9, 5}, {true, 0.74, 2.1, 7}, {true, 0.72, 2.0, 6}}},
	{"fixed", "scale0.5", 0.5, []sweepSeed{{true, 0.50, 0.5, 20}, {true, 0.54, 0.7, 22}, {}}},
	{"fixed", "scale0.75", 0.75, []sweepSeed{{true, 0.64, 1.5, 9}, {true, 0.64, 1.5, 9}, {true, 0.64, 1.5, 9}}},
	{"fixed", "scale1", 1, []sweepSeed{{true, 0.70, 2.4, 4}, {true, 0.71, 2.5, 4}, {true, 0.72, 2.6, 4}}},
}

// The report of a hand-made sweep against numbers worked out by hand: each row's seed count,
// means, sample standard deviation and the Pareto front.
func TestSweepReportHandMade(t *testing.T) {
	dir := t.TempDir()
	writeHandSweep(t, dir, handSweep)
	rep, err := ReportSweep(dir)
	if err != nil {
		t.Fatal(err)
	}
	// By hand: mean = sum/n; std = sqrt(sum of squared deviations / (n−1)).
	want := []SweepRow{
		{Kind: "dynopool", Value: 0.5, Seeds: 3, MIoU: 0.62, MIoUStd: 0.02, GMACs: 1.1, ImagesPerS: 12, Pareto: true},
		{Kind: "dynopool", Value: 0.75, Seeds: 3, MIoU: 0.66, MIoUStd: 0, GMACs: 1.5, ImagesPerS: 8, Pareto: true},
		{Kind: "dynopool", Value: 1, Seeds: 3, MIoU: 0.72, MIoUStd: 0.02, GMACs: 2.0, ImagesPerS: 6, Pareto: true},
		{Kind: "fixed", Value: 0.5, Seeds: 2, MIoU: 0.52, MIoUStd: 0.04 / math.Sqrt2, GMACs: 0.6, ImagesPerS: 21, Pareto: true},
		{Kind: "fixed", Value: 0.75, Seeds: 3, MIoU: 0.64, MIoUStd: 0, GMACs: 1.5, ImagesPerS: 9, Pareto: false}, // same GMACs as budget 0.75, lower mIoU
		{Kind: "fixed", Value: 1, Seeds: 3, MIoU: 0.71, MIoUStd: 0.01, GMACs: 2.5, ImagesPerS: 4, Pareto: false}, // budget 1: cheaper and better
	}
	if len(rep.Rows) != len(want) {
		t.Fatalf("%d rows, want %d:\n%s", len(rep.Rows), len(want), rep.Table())
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	for i, w := range want {
		g := rep.Rows[i]
		if g.Kind != w.Kind || g.Value != w.Value || g.Seeds != w.Seeds || !near(g.MIoU, w.MIoU) || !near(g.MIoUStd, w.MIoUStd) ||
			!near(g.GMACs, w.GMACs) || !near(g.ImagesPerS, w.ImagesPerS) || g.Pareto != w.Pareto {
			t.Errorf("row %d: %+v\nwant   %+v", i, g, w)
		}
		if len(g.Sizes) != w.Seeds || g.Sizes[0][0] != [2]int{1, 1} {
			t.Errorf("row %d: branch sizes %v, want one per finished seed in seed order", i, g.Sizes)
		}
	}
}
