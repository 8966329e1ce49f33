package segmentation

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/segkit/segkit/internal/atomicfile"
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
			l.Color = palette[i/2%len(palette)]
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
		if err := savePlot(p, 6*vg.Inch, 4*vg.Inch, filepath.Join(dir, c.file)); err != nil {
			return err
		}
	}
	return nil
}

var palette = []color.Color{
	color.RGBA{31, 119, 180, 255}, color.RGBA{255, 127, 14, 255}, color.RGBA{44, 160, 44, 255},
	color.RGBA{214, 39, 40, 255}, color.RGBA{148, 103, 189, 255}, color.RGBA{140, 86, 75, 255},
	color.RGBA{227, 119, 194, 255}, color.RGBA{127, 127, 127, 255},
}

// plotFrontier draws mIoU against GMACs per image: a curve with error bars (± one standard
// deviation over the seeds) for DynOPool's budgets and one for the fixed model's input scales,
// each point labelled with its budget or scale, and the Pareto front ringed.
func (rep *SweepReport) plotFrontier(path string) error {
	p := plot.New()
	p.Title.Text, p.X.Label.Text, p.Y.Label.Text = "accuracy–compute frontier", "GMACs per image (at the test size)", "mIoU (%)"
	var front plotter.XYs
	for i, kind := range []string{"dynopool", "fixed"} {
		var pts plotter.XYs
		var errs plotter.YErrors
		var labels []string
		rows := slices.DeleteFunc(slices.Clone(rep.Rows), func(r SweepRow) bool { return r.Kind != kind })
		slices.SortFunc(rows, func(a, b SweepRow) int { return cmp.Compare(a.GMACs, b.GMACs) })
		for _, r := range rows {
			pts = append(pts, plotter.XY{X: r.GMACs, Y: 100 * r.MIoU})
			errs = append(errs, struct{ Low, High float64 }{100 * r.MIoUStd, 100 * r.MIoUStd})
			what := "budget "
			if kind == "fixed" {
				what = "scale "
			}
			labels = append(labels, what+strconv.FormatFloat(r.Value, 'f', -1, 64))
			if r.Pareto {
				front = append(front, pts[len(pts)-1])
			}
		}
		if len(pts) == 0 {
			continue
		}
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		line.Color, points.Color = palette[i], palette[i]
		bars, err := plotter.NewYErrorBars(errorPoints{pts, errs})
		if err != nil {
			return err
		}
		bars.Color = palette[i]
		named, err := plotter.NewLabels(plotter.XYLabels{XYs: pts, Labels: labels})
		if err != nil {
			return err
		}
		p.Add(line, points, bars, named)
		p.Legend.Add(map[string]string{"dynopool": "DynOPool (GMACs budget)", "fixed": "fixed (input scale)"}[kind], line, points)
	}
	if len(front) > 0 {
		ring, err := plotter.NewScatter(front)
		if err != nil {
			return err
		}
		ring.GlyphStyle.Shape, ring.GlyphStyle.Radius = draw.RingGlyph{}, vg.Points(7)
		ring.GlyphStyle.Color = color.Black
		p.Add(ring)
		p.Legend.Add("Pareto front", ring)
	}
	// At least two points of mIoU in view: the default range of a flat sweep labels every tick alike.
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range rep.Rows {
		lo, hi = min(lo, 100*(r.MIoU-r.MIoUStd)), max(hi, 100*(r.MIoU+r.MIoUStd))
	}
	pad := max(1, (hi-lo)/10)
	p.Y.Min, p.Y.Max = max(0, lo-pad), min(100, hi+pad)
	p.X.Min = 0
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.YPosition = draw.PosBottom
	return savePlot(p, 7*vg.Inch, 5*vg.Inch, path)
}

// savePlot is plot.Save written atomically: a failed write keeps the previous image.
func savePlot(p *plot.Plot, w, h vg.Length, path string) error {
	format := strings.ToLower(strings.TrimPrefix(filepath.Ext(path), "."))
	img, err := p.WriterTo(w, h, format)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, 0o666, func(out io.Writer) error { // os.Create's mode, as plot.Save
		_, err := img.WriteTo(out)
		return err
	})
}

// errorPoints are points with vertical error bars.
type errorPoints struct {
	plotter.XYs
	plotter.YErrors
}

func (e errorPoints) Len() int { return len(e.XYs) }
