package main

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/segmentation/train"
	"github.com/segkit/segkit/voc"
)

func runCLI(args ...string) (string, error) {
	cmd := newCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func writePNG(t *testing.T, path string, w, h int) {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	img.Set(0, 0, color.RGBA{1, 2, 3, 255})
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	png.Encode(f, img)
	f.Close()
}

// tinyCheckpoint trains the demo model for two iterations on 32×32 crops and returns its best
// checkpoint.
func tinyCheckpoint(t *testing.T) string {
	t.Helper()
	c := segmentation.DemoConfig()
	c.Crop, c.Batch, c.Iters, c.DemoImages, c.EvalEvery, c.CkptEvery = 32, 2, 2, 20, 0, 0
	c.Out, c.Name = t.TempDir(), "run"
	sum, err := (&train.Run{Cfg: c, Out: io.Discard, NoBar: true}).Train()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(sum.Dir, "best.safetensors")
}

// Outputs at the images' own sizes (odd, portrait), the index PNG reads back through the dataset
// reader, an unreadable file is reported and skipped with a failing status.
func TestSegpredict(t *testing.T) {
	ck := tinyCheckpoint(t)
	in, out := t.TempDir(), t.TempDir()
	writePNG(t, filepath.Join(in, "a.png"), 37, 53)
	writePNG(t, filepath.Join(in, "b.png"), 61, 29)
	log, err := runCLI("--checkpoint", ck, "--out", out, in)
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	for name, size := range map[string][2]int{"a": {37, 53}, "b": {61, 29}} {
		m, err := voc.ReadMask(filepath.Join(out, name+".png"))
		if err != nil || m.W != size[0] || m.H != size[1] {
			t.Errorf("%s.png: %d×%d, %v", name, m.W, m.H, err)
		}
		for _, suffix := range []string{"_color.png", "_overlay.jpg"} {
			if _, err := os.Stat(filepath.Join(out, name+suffix)); err != nil {
				t.Error(err)
			}
		}
		if !strings.Contains(log, name+".png (") || !strings.Contains(log, "%") {
			t.Errorf("no per-image line for %s in %q", name, log)
		}
	}
	os.WriteFile(filepath.Join(in, "c.png"), []byte("not an image"), 0o644)
	log, err = runCLI("--checkpoint", ck, "--out", out, "--format", "index", in)
	if err == nil || !strings.Contains(err.Error(), "1 of 3 inputs failed") || !strings.Contains(log, "c.png") {
		t.Errorf("bad image: %v\n%s", err, log)
	}
	wd, _ := os.Getwd()
	os.Chdir(t.TempDir())
	defer os.Chdir(wd)
	if _, err := runCLI(filepath.Join(in, "a.png")); err == nil || !strings.Contains(err.Error(), "train one with 'segtrain'") {
		t.Errorf("no checkpoint: %v", err)
	}
	// Wrong command lines are usage errors (exit status 2) naming the flag, found before the
	// checkpoint is read; a flag that does nothing in the mode is one.
	for _, args := range [][]string{{"--format", "gif"}, {"--opacity", "2"}, {"--mode", "tiles"}, {"--scale", "big"}, {"--tta", "rotate"},
		{"--crop", "64"}, {"--stride", "8"}, {"--mode", "whole", "--crop", "64"}, {"--mode", "slide", "--crop", "-4"},
		{"--mode", "slide", "--stride", "0"}} {
		for _, c := range []string{ck, filepath.Join(in, "missing.safetensors")} {
			_, err := runCLI(append(append([]string{"--checkpoint", c}, args...), filepath.Join(in, "a.png"))...)
			var u usageError
			if !errors.As(err, &u) || !strings.Contains(err.Error(), args[len(args)-2]) {
				t.Errorf("%v: %v (want a usage error naming %s)", args, err, args[len(args)-2])
			}
		}
	}
	if _, err := runCLI("--checkpoint", ck, "--out", out, "--mode", "slide", "--crop", "40", "--stride", "20", filepath.Join(in, "a.png")); err != nil {
		t.Errorf("slide with --crop and --stride: %v", err)
	}
}

// A missing input is reported on stderr, naming it, and skipped: the others are segmented,
// and the exit status is 1 (not a usage error) at the end.
func TestSegpredictSkipsMissingInputs(t *testing.T) {
	c := segmentation.DemoConfig()
	c.Crop, c.Batch, c.Iters, c.DemoImages, c.EvalEvery, c.CkptEvery = 32, 2, 1, 20, 0, 0
	c.Out, c.Name = t.TempDir(), "run"
	sum, err := (&train.Run{Cfg: c, Out: io.Discard, NoBar: true}).Train()
	if err != nil {
		t.Fatal(err)
	}
	in, out := t.TempDir(), t.TempDir()
	writePNG(t, filepath.Join(in, "good.png"), 20, 30)
	os.Mkdir(filepath.Join(in, "empty"), 0o755)
	missing, empty := filepath.Join(in, "missing.jpg"), filepath.Join(in, "empty")
	cmd := newCmd()
	var stdout, stderr bytes.Buffer
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	cmd.SetArgs([]string{"--checkpoint", filepath.Join(sum.Dir, "best.safetensors"), "--out", out, missing, filepath.Join(in, "good.png"), empty})
	err = cmd.Execute()
	var u usageError
	if err == nil || errors.As(err, &u) || !strings.Contains(err.Error(), "2 of 3 inputs failed") {
		t.Errorf("error %v, want a failure (exit status 1) counting 2 of 3 inputs", err)
	}
	if !strings.Contains(stderr.String(), missing) || !strings.Contains(stderr.String(), empty) {
		t.Errorf("stderr does not name the failed inputs:\n%s", stderr.String())
	}
	if _, err := os.Stat(filepath.Join(out, "good.png")); err != nil || !strings.Contains(stdout.String(), "good.png (20×30") {
		t.Errorf("the good image was not segmented: %v\n%s", err, stdout.String())
	}
}

// A PyTorch model is used directly: mmseg's file with its own class names and palette.
func TestSegpredictPyTorchModel(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "a.png")
	writePNG(t, img, 37, 29)
	out, err := runCLI("--checkpoint", "../../importer/testdata/mmseg_0x.pth", "--out", dir, "--format", "index,color", img)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	f, err := os.Open(filepath.Join(dir, "a_color.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	col, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// The file's palette (make_fixtures.py): every pixel has one of its eight colours.
	palette := map[[3]uint8]bool{{0, 0, 0}: true, {128, 64, 128}: true, {220, 20, 60}: true, {0, 0, 142}: true,
		{107, 142, 35}: true, {70, 130, 180}: true, {70, 70, 70}: true, {0, 80, 100}: true}
	b := col.Bounds()
	if b.Dx() != 37 || b.Dy() != 29 {
		t.Fatalf("colour image %v, want 37×29", b)
	}
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			r, g, bl, _ := col.At(x, y).RGBA()
			if c := [3]uint8{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8)}; !palette[c] {
				t.Fatalf("pixel (%d, %d) has colour %v, not one of the file's palette", x, y, c)
			}
		}
	}
	names := []string{"background", "road", "person", "car", "tree", "sky", "building", "water"}
	if !containsAny(out, names) {
		t.Errorf("output names none of the file's classes: %s", out)
	}
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
