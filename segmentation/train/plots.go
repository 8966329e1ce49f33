package train

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/segkit/segkit/segmentation/internal/plotting"
)

// logEntry is one line of train.jsonl (fields absent from a line stay nil).
type logEntry struct {
	Iter        int      `json:"iter"`
	Loss        *float64 `json:"loss"`
	LR          *float64 `json:"lr"`
	GMACs       *float64 `json:"gmacs"`
	ValMIoU     *float64 `json:"val_miou"`
	BranchSizes [][2]int `json:"branch_sizes"`
}

// WritePlots draws the run's curves from its log: loss.png, lr.png, miou.png and, for DynOPool
// runs, sizes.png (every branch's learned height and width) and gmacs.png.
func WritePlots(dir string, dynopool bool) error {
	f, err := os.Open(filepath.Join(dir, "train.jsonl"))
	if err != nil {
		return err
	}
	defer f.Close()
	var entries []logEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e logEntry
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			entries = append(entries, e)
		}
	}
	series := func(get func(logEntry) *float64) plotter.XYs {
		var xy plotter.XYs
		for _, e := range entries {
			if v := get(e); v != nil {
				xy = append(xy, plotter.XY{X: float64(e.Iter), Y: *v})
			}
		}
		return xy
	}
	type chart struct {
		file, title, y string
		lines          map[string]plotter.XYs
	}
	charts := []chart{
		{"loss.png", "training loss", "loss", map[string]plotter.XYs{"loss": series(func(e logEntry) *float64 { return e.Loss })}},
		{"lr.png", "learning rate", "lr", map[string]plotter.XYs{"lr": series(func(e logEntry) *float64 { return e.LR })}},
		{"miou.png", "validation mIoU", "mIoU", map[string]plotter.XYs{"mIoU": series(func(e logEntry) *float64 { return e.ValMIoU })}},
	}
	if dynopool {
		sizes := map[string]plotter.XYs{}
		for _, e := range entries {
			for b, s := range e.BranchSizes {
				for k, axis := range []string{"h", "w"} {
					name := fmt.Sprintf("branch %d %s", b, axis)
					sizes[name] = append(sizes[name], plotter.XY{X: float64(e.Iter), Y: float64(s[k])})
				}
			}
		}
		charts = append(charts,
			chart{"sizes.png", "learned feature sizes (at the crop)", "pixels", sizes},
			chart{"gmacs.png", "model GMACs per image (at the crop)", "GMACs", map[string]plotter.XYs{"GMACs": series(func(e logEntry) *float64 { return e.GMACs })}})
	}
	for _, c := range charts {
		p := plot.New()
		p.Title.Text, p.X.Label.Text, p.Y.Label.Text = c.title, "iteration", c.y
		i := 0
		for _, name := range slices.Sorted(maps.Keys(c.lines)) {
			xy := c.lines[name]
			if len(xy) == 0 {
				continue
			}
			l, err := plotter.NewLine(xy)
			if err != nil {
				return err
			}
			l.Color = plotting.Colors[i/2%len(plotting.Colors)]
			if i%2 == 1 { // sizes come as (h, w) pairs: widths dashed in the heights' colour
				l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
			}
			p.Add(l)
			if len(c.lines) > 1 {
				p.Legend.Add(name, l)
			}
			i++
		}
		p.Legend.Top = true
		if err := plotting.Save(p, 6*vg.Inch, 4*vg.Inch, filepath.Join(dir, c.file)); err != nil {
			return err
		}
	}
	return nil
}
