package main

import (
	"bytes"
	"errors"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segkit/segkit/segmentation/checkpoint"
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
	log, err := run("import", "../../importer/testdata/official_abn.pth", "--align-corners", "--classes", names, "-o", out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"official HRNet", "HRNetV2-w18_small_v1, 8 classes", "dropped: loss.criterion.weight", "folded from InPlaceABN",
		"align_corners=true", "classes: a, b, c, d, e, f, g, h", "wrote " + out} {
		if !strings.Contains(log, want) {
			t.Errorf("output lacks %q:\n%s", want, log)
		}
	}
	ck, err := checkpoint.LoadCheckpoint(out)
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

// eval takes a PyTorch model with --data: here mmseg's fixture (8 classes) on a folder dataset
// of 8 classes, reported under the dataset's names.
func TestEvalPyTorchModel(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"images", "masks"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	names := "sea\nland\nc\nd\ne\nf\ng\nh\n"
	files := map[string]string{"classes.txt": names, "val.txt": "a\nb\n"} // no training split: eval needs none
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, id := range []string{"a", "b"} {
		img := image.NewRGBA(image.Rect(0, 0, 40, 30))
		for p := range img.Pix {
			img.Pix[p] = uint8(p*(i+3)) | 3
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "images", id+".png"), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		labels := make([]uint8, 40*30)
		for p := range labels {
			labels[p] = uint8(p % 8)
		}
		writeMask(t, filepath.Join(dir, "masks", id+".png"), 40, 30, labels)
	}
	out, err := run("eval", "--checkpoint", "../../importer/testdata/mmseg_0x.pth", "--data", dir, "--split", "val")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "sea") || !strings.Contains(out, "mIoU") {
		t.Errorf("the table lacks the dataset's classes:\n%s", out)
	}
}
