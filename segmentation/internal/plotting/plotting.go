// Package plotting holds what the run's and the sweep's plots share.
package plotting

import (
	"image/color"
	"io"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"

	"github.com/segkit/segkit/internal/atomicfile"
)

// Colors are the lines' colours, in order.
var Colors = []color.Color{
	color.RGBA{31, 119, 180, 255}, color.RGBA{255, 127, 14, 255}, color.RGBA{44, 160, 44, 255},
	color.RGBA{214, 39, 40, 255}, color.RGBA{148, 103, 189, 255}, color.RGBA{140, 86, 75, 255},
	color.RGBA{227, 119, 194, 255}, color.RGBA{127, 127, 127, 255},
}

// Save is plot.Save written atomically: a failed write keeps the previous image.
func Save(p *plot.Plot, w, h vg.Length, path string) error {
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
