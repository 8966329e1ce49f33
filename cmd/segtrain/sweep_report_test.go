package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// segtrain sweep --report on a sweep directory written by hand (no training): the table's
// means, standard deviations, GMACs and Pareto marks, and summary.csv's, against numbers worked
// out by hand.
func TestSweepReportCommandHandMade(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	type seed struct{ miou, gmacs, ips float64 }
	groups := []struct {
		kind  string
		value float64
		seeds []seed
	}{
		{"dynopool", 0.5, []seed{{0.60, 1.0, 10}, {0.64, 1.4, 14}}},
		{"fixed", 0.5, []seed{{0.40, 0.4, 40}, {0.40, 0.6, 40}}},
		{"fixed", 1, []seed{{0.50, 1.0, 20}, {0.70, 2.0, 30}}}, // dominated by budget 0.5: 1.2 GMACs, 62%
	}
	var runs []map[string]any
	for _, g := range groups {
		for k, s := range g.seeds {
			name := fmt.Sprintf("%s_%g_seed%d", g.kind, g.value, k)
			runs = append(runs, map[string]any{"name": name, "kind": g.kind, "value": g.value, "seed": k})
			writeJSONFile(t, filepath.Join(dir, name, "metrics.json"), map[string]any{"mIoU": s.miou})
			writeJSONFile(t, filepath.Join(dir, name, "sweep_eval.json"), map[string]any{"miou": s.miou, "gmacs": s.gmacs,
				"images_per_s": s.ips, "images": 1, "branch_sizes": [][2]int{{8, 8}, {4, 4}, {2, 2}, {1, 1}}})
		}
	}
	writeJSONFile(t, filepath.Join(dir, "sweep.json"), map[string]any{"runs": runs})
	out, err := run("sweep", "--report", dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// kind value seeds mIoU ± std GMACs img/s pareto: std = |a−b|/√2 for two seeds.
	want := [][]string{
		{"dynopool", "0.5", "2", "62.00", "±", "2.83", "1.200", "12.0", "*"},
		{"fixed", "0.5", "2", "40.00", "±", "0.00", "0.500", "40.0", "*"},
		{"fixed", "1", "2", "60.00", "±", "14.14", "1.500", "25.0", "8x8"}, // no mark: the sizes follow
	}
	var rows [][]string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > len(want[0]) && (f[0] == "dynopool" || f[0] == "fixed") {
			rows = append(rows, f[:len(want[0])])
		}
	}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("table rows\n%v\nwant\n%v\n%s", rows, want, out)
	}
	f, err := os.Open(filepath.Join(dir, "summary.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil || len(recs) != 4 {
		t.Fatalf("summary.csv: %d records, %v", len(recs), err)
	}
	// kind, value, seeds, miou_mean, miou_std, gmacs_mean, images_per_s_mean, pareto
	wantCSV := [][]string{
		{"dynopool", "0.5", "2", "0.620000", "0.028284", "1.200000", "12.000", "true"},
		{"fixed", "0.5", "2", "0.400000", "0.000000", "0.500000", "40.000", "true"},
		{"fixed", "1", "2", "0.600000", "0.141421", "1.500000", "25.000", "false"},
	}
	for i, w := range wantCSV {
		if got := recs[i+1][:len(w)]; fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("summary.csv row %d: %v, want %v", i+1, got, w)
		}
	}
}

func writeJSONFile(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err == nil {
		err = os.MkdirAll(filepath.Dir(path), 0o755)
	}
	if err == nil {
		err = os.WriteFile(path, b, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
}
