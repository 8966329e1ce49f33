package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segkit/segkit/segmentation"
)

// segtrain import converts a PyTorch file once; its report names the family, layout, classes
// and conventions, and the checkpoint reads back with them.
func TestImport(t *testing.T) {
	dir := t.TempDir()
	names := filepath.Join(dir, "names.txt")
	if err := os.WriteFile(names, []byte("a\nb\nc\nd\ne\nf\ng\nh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "o.safetensors")
	log, err := run("import", "../../importer/testdata/official_abn.pth", "--align-corners", "--class-names", names, "-o", out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"official HRNet", "HRNetV2-w18_small_v1, 8 classes", "dropped: loss.criterion.weight", "folded from InPlaceABN",
		"align_corners=true", "classes: a, b, c, d, e, f, g, h", "wrote " + out} {
		if !strings.Contains(log, want) {
			t.Errorf("output lacks %q:\n%s", want, log)
		}
	}
	ck, err := segmentation.LoadCheckpoint(out)
	if err != nil {
		t.Fatal(err)
	}
	if st := ck.State; !st.Config.AlignCorners || st.Imported == nil || !st.Imported.ABN || st.Classes[7] != "h" {
		t.Errorf("checkpoint state %+v", st)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"import", "../../importer/testdata/mmseg_0x.pth"}, "-o/--out"},
		{[]string{"import", "../../importer/testdata/mmseg_0x.pth", "--bn", "xyz", "-o", out}, `--bn "xyz"`},
		{[]string{"eval", "--checkpoint", "../../importer/testdata/mmseg_0x.pth"}, "--data"},
		{[]string{"eval", "--pred-dir", dir, "--gt-dir", dir, "--bn", "abn"}, "--bn: not used without --checkpoint"},
	} {
		_, err := run(c.args...)
		var u usageError
		if !errors.As(err, &u) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want a usage error saying %q", c.args, err, c.want)
		}
	}
	if _, err := run("import", "../../importer/testdata/mmseg_0x.pth", "--class-names", names, "--align-corners", "-o", out); err == nil ||
		!strings.Contains(err.Error(), "--align-corners") {
		t.Errorf("--align-corners on an mmseg file: %v", err)
	}
}
