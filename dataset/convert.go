package dataset

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/png"
	"path/filepath"
	"strings"
	"sync"

	"github.com/segkit/segkit/internal/atomicfile"
	"github.com/segkit/segkit/voc"
)

// ConvertCityscapes writes, next to every gtFine/<split>/<city>/*_gtFine_labelIds.png of root,
// the *_gtFine_labelTrainIds.png that mmseg trains on (8-bit grey: the 19 train ids, 255 void),
// on workers goroutines, and returns how many it wrote. The files are what cityscapesScripts'
// json2labelImg gives from the polygons: both draw the same polygons, and every label id has
// one train id.
func ConvertCityscapes(root string, workers int) (int, error) {
	paths, err := filepath.Glob(filepath.Join(root, "gtFine", "*", "*", "*"+labelIDsSuffix))
	if err != nil {
		return 0, err
	}
	if len(paths) == 0 {
		return 0, fmt.Errorf("%s: no gtFine/<split>/<city>/*%s to convert", root, labelIDsSuffix)
	}
	l := Labels{Dataset: "Cityscapes", Classes: len(CityscapesClasses), Void: voc.Ignore, Remap: cityscapesTrainIDs, RemapName: "labelIds"}
	errs := make([]error, max(workers, 1))
	var wg sync.WaitGroup
	for w := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(paths) && errs[w] == nil; i += len(errs) {
				errs[w] = convertMask(paths[i], strings.TrimSuffix(paths[i], labelIDsSuffix)+trainIDsSuffix, l)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	return len(paths), nil
}

// convertMask maps the mask at src through l and writes it to dst as an 8-bit grey PNG, through
// a temporary file (package atomicfile) so that an interrupted run leaves no half-written mask.
func convertMask(src, dst string, l Labels) error {
	m, err := voc.ReadMask(src)
	if err != nil {
		return err
	}
	if err := l.Apply(src, m); err != nil {
		return err
	}
	img := image.NewGray(image.Rect(0, 0, m.W, m.H))
	copy(img.Pix, m.Labels)
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return err
	}
	return atomicfile.WriteFile(dst, buf.Bytes(), 0o644)
}
