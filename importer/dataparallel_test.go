package importer

import (
	"maps"
	"slices"
	"testing"

	"github.com/segkit/segkit/internal/golden"
	"github.com/segkit/segkit/weights"
)

// A checkpoint saved from a DataParallel (or DistributedDataParallel) model has every key under
// "module." (and an official FullModel's under "module.model."): the fixtures with their keys so
// renamed in memory import to the very same model, and compute PyTorch's logits.
func TestDataParallelPrefix(t *testing.T) {
	g := readGoldens(t)
	x := g.Input.Dense(t)
	aligned := true
	for _, c := range []struct {
		path   string
		opt    Options
		golden *golden.Tensor
	}{
		{"testdata/mmseg_1x.pth", Options{}, &g.MMSeg},
		{"testdata/official_abn.pth", Options{AlignCorners: &aligned}, &g.OfficialABN}, // keys are model.*: module.model.*
		{"../weights/testdata/hrnet_tiny_fixed.pth", Options{}, &g.Official},
	} {
		f, err := weights.Read(c.path)
		if err != nil {
			t.Fatal(err)
		}
		want, err := Convert(f, c.opt)
		if err != nil {
			t.Fatal(err)
		}
		wrapped := *f
		wrapped.Tensors = map[string]weights.Tensor{}
		for name, v := range f.Tensors {
			wrapped.Tensors["module."+name] = v
		}
		got, err := Convert(&wrapped, c.opt)
		if err != nil {
			t.Errorf("%s under module.: %v", c.path, err)
			continue
		}
		if got.Family != want.Family || got.Config != want.Config || got.Classes != want.Classes || got.ABN != want.ABN ||
			got.Convention != want.Convention || got.Report.Mapped != want.Report.Mapped {
			t.Errorf("%s under module.: %s %s, %d classes, ABN %v, %q, %d mapped; without it %s %s, %d, %v, %q, %d", c.path,
				got.Family, got.Config, got.Classes, got.ABN, got.Convention, got.Report.Mapped,
				want.Family, want.Config, want.Classes, want.ABN, want.Convention, want.Report.Mapped)
		}
		names := slices.Sorted(maps.Keys(got.Tensors))
		if !slices.Equal(names, slices.Sorted(maps.Keys(want.Tensors))) {
			t.Errorf("%s under module.: other tensor names", c.path)
		}
		for _, n := range names {
			if !slices.Equal(got.Tensors[n].Data, want.Tensors[n].Data) {
				t.Errorf("%s under module.: %s differs", c.path, n)
			}
		}
		expectLogits(t, c.path+" under module.", logits(t, got, x), c.golden)
	}
}
