package sweep

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/segmentation/internal/segtest"
	"github.com/segkit/segkit/segmentation/train"
)

// ProbeSizes on a trained tiny model: a row per alpha component with the sizes the alphas give,
// the same loss at the current size for every row (the probe leaves the alphas and running
// statistics as they were), the finite difference from the side losses, and a gradient.
// A fixed model is probed as the strided design at alpha 2; a fixed model alone is refused.
func TestProbeSizes(t *testing.T) {
	c := segtest.TinyConfig(t)
	c.Resize, c.Crop = "fixed", 64
	if _, err := (&train.Run{Cfg: c, Out: &strings.Builder{}, NoBar: true}).Train(); err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(c.Out, c.Name, "best.safetensors")
	if _, err := ProbeSizes(ckpt, nil, 1, 0); err == nil || !strings.Contains(err.Error(), "fixed") {
		t.Errorf("a fixed model probed as it is: %v", err)
	}
	like := &segmentation.Config{Resize: "dynopool", DynDown: "strided", DynUp: "centre"}
	probes, err := ProbeSizes(ckpt, like, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	in, out := []int{64, 16, 8, 4}, []int{32, 8, 4, 2} // each pool's input and output sizes
	if len(probes) != 2*len(in) {
		t.Fatalf("%d rows, want %d", len(probes), 2*len(in))
	}
	for i, p := range probes {
		n, o := float64(in[i/2]), out[i/2]
		if p.Size != o || p.Axis != i%2 {
			t.Errorf("row %d: %s axis %d size %d, want axis %d size %d", i, p.Pool, p.Axis, p.Size, i%2, o)
		}
		if p.Loss[1] != probes[0].Loss[1] {
			t.Errorf("%s: loss at the current size %v, the first row's %v: the probe changed the model", p.Pool, p.Loss[1], probes[0].Loss[1])
		}
		if p.Loss[0] == 0 || p.Loss[2] == 0 || p.ST == 0 {
			t.Errorf("%s axis %d: losses %v, ST %v", p.Pool, p.Axis, p.Loss, p.ST)
		}
		fd := (p.Loss[2] - p.Loss[0]) / (n/float64(o+1) - n/float64(o-1))
		if math.Abs(fd-p.FD) > 1e-5*math.Abs(fd)+1e-9 {
			t.Errorf("%s axis %d: FD %v, the side losses give %v", p.Pool, p.Axis, p.FD, fd)
		}
	}
}
