package sweep

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/segkit/segkit/internal/atomicfile"
)

// SweepReport is the sweep's summary: a row per budget or scale, over the seeds.
type SweepReport struct {
	Rows       []SweepRow `json:"rows"`
	Unfinished []string   `json:"unfinished,omitempty"` // runs of the plan left out: no valid metrics.json
}

// SweepRow summarises the seeds of one budget (DynOPool) or input scale (fixed).
type SweepRow struct {
	Kind       string     `json:"kind"`
	Value      float64    `json:"value"`
	Seeds      int        `json:"seeds"`
	MIoU       float64    `json:"miou_mean"`
	MIoUStd    float64    `json:"miou_std"` // sample standard deviation over the seeds (0 for one)
	GMACs      float64    `json:"gmacs_mean"`
	ImagesPerS float64    `json:"images_per_s_mean"`
	Sizes      [][][2]int `json:"branch_sizes"` // per seed: every branch's h×w at the first image's test size
	Pareto     bool       `json:"pareto"`       // no other row has at most its GMACs and at least its mIoU (one strictly)
}

// ReportSweep summarises a sweep directory's finished runs (measuring those not yet measured)
// and writes summary.json, summary.csv and frontier.png there.
func ReportSweep(dir string) (*SweepReport, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "sweep.json"))
	if err != nil {
		return nil, fmt.Errorf("%s is not a sweep directory: %w", dir, err)
	}
	var plan sweepFile
	if err := json.Unmarshal(raw, &plan); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "sweep.json"), err)
	}
	type key struct {
		kind  string
		value float64
	}
	var order []key
	var unfinished []string
	groups := map[key][]Measured{}
	for _, run := range plan.Runs {
		k := key{run.Kind, run.Value}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
			groups[k] = nil
		}
		rdir := filepath.Join(dir, run.Name)
		if finished(rdir) != nil {
			unfinished = append(unfinished, run.Name) // left out, and said
			continue
		}
		if err := measureOnce(rdir); err != nil {
			return nil, err
		}
		m, err := readMeasured(rdir)
		if err != nil {
			return nil, err
		}
		groups[k] = append(groups[k], m)
	}
	rep := &SweepReport{Unfinished: unfinished}
	for _, k := range order {
		ms := groups[k]
		if len(ms) == 0 {
			continue
		}
		row := SweepRow{Kind: k.kind, Value: k.value, Seeds: len(ms)}
		for _, m := range ms {
			row.MIoU += m.MIoU / float64(len(ms))
			row.GMACs += m.GMACs / float64(len(ms))
			row.ImagesPerS += m.ImagesPerS / float64(len(ms))
			row.Sizes = append(row.Sizes, m.BranchSizes)
		}
		if len(ms) > 1 {
			var ss float64
			for _, m := range ms {
				ss += (m.MIoU - row.MIoU) * (m.MIoU - row.MIoU)
			}
			row.MIoUStd = math.Sqrt(ss / float64(len(ms)-1))
		}
		rep.Rows = append(rep.Rows, row)
	}
	if len(rep.Rows) == 0 {
		return nil, fmt.Errorf("%s: no finished runs to report (unfinished: %s)", dir, strings.Join(unfinished, ", "))
	}
	for i := range rep.Rows {
		a := &rep.Rows[i]
		a.Pareto = !slices.ContainsFunc(rep.Rows, func(b SweepRow) bool {
			return b.GMACs <= a.GMACs && b.MIoU >= a.MIoU && (b.GMACs < a.GMACs || b.MIoU > a.MIoU)
		})
	}
	if err := atomicfile.WriteJSON(filepath.Join(dir, "summary.json"), rep); err != nil {
		return nil, err
	}
	if err := rep.writeCSV(filepath.Join(dir, "summary.csv")); err != nil {
		return nil, err
	}
	if err := rep.plotFrontier(filepath.Join(dir, "frontier.png")); err != nil {
		return nil, err
	}
	return rep, nil
}

func (rep *SweepReport) writeCSV(path string) error {
	return atomicfile.Write(path, 0o666, func(f io.Writer) error { return rep.csv(f) })
}

func (rep *SweepReport) csv(f io.Writer) error {
	w := csv.NewWriter(f)
	w.Write([]string{"kind", "value", "seeds", "miou_mean", "miou_std", "gmacs_mean", "images_per_s_mean", "pareto", "branch_sizes"})
	for _, r := range rep.Rows {
		w.Write([]string{r.Kind, fmt.Sprint(r.Value), fmt.Sprint(r.Seeds), fmt.Sprintf("%.6f", r.MIoU), fmt.Sprintf("%.6f", r.MIoUStd),
			fmt.Sprintf("%.6f", r.GMACs), fmt.Sprintf("%.3f", r.ImagesPerS), fmt.Sprint(r.Pareto), sizesText(r.Sizes)})
	}
	w.Flush()
	return w.Error()
}

// sizesText writes the branches' sizes per seed: "16x21 8x11 4x6 2x3; …".
func sizesText(sizes [][][2]int) string {
	seeds := make([]string, len(sizes))
	for i, s := range sizes {
		b := make([]string, len(s))
		for j, hw := range s {
			b[j] = fmt.Sprintf("%dx%d", hw[0], hw[1])
		}
		seeds[i] = strings.Join(b, " ")
	}
	return strings.Join(seeds, "; ")
}

// Table is the report as text: a row per budget and scale.
func (rep *SweepReport) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-9s %6s %5s %15s %8s %8s %6s  %s\n", "kind", "value", "seeds", "mIoU (%)", "GMACs", "img/s", "pareto", "branch sizes per seed (h×w)")
	for _, r := range rep.Rows {
		mark := ""
		if r.Pareto {
			mark = "*"
		}
		fmt.Fprintf(&b, "%-9s %6g %5d %8.2f ± %4.2f %8.3f %8.1f %6s  %s\n", r.Kind, r.Value, r.Seeds, 100*r.MIoU, 100*r.MIoUStd,
			r.GMACs, r.ImagesPerS, mark, sizesText(r.Sizes))
	}
	if len(rep.Unfinished) > 0 {
		fmt.Fprintf(&b, "unfinished, left out (run the sweep again to finish them): %s\n", strings.Join(rep.Unfinished, ", "))
	}
	return b.String()
}
