package sweep

import (
	"cmp"
	"image/color"
	"math"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/segkit/segkit/segmentation/internal/plotting"
)

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
		line.Color, points.Color = plotting.Colors[i], plotting.Colors[i]
		bars, err := plotter.NewYErrorBars(errorPoints{pts, errs})
		if err != nil {
			return err
		}
		bars.Color = plotting.Colors[i]
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
	return plotting.Save(p, 7*vg.Inch, 5*vg.Inch, path)
}

// errorPoints are points with vertical error bars.
type errorPoints struct {
	plotter.XYs
	plotter.YErrors
}

func (e errorPoints) Len() int { return len(e.XYs) }
