package main

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segkit/segkit/segmentation"
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

// Outputs at the images' own sizes (odd, portrait), the index PNG reads back through the dataset
// reader, an unreadable file is reported and skipped with a failing status.
func TestSegpredict(t *testing.T) {
	c := segmentation.DemoConfig()
	c.Crop, c.Batch, c.Iters, c.DemoImages, c.EvalEvery, c.CkptEvery = 32, 2, 2, 20, 0, 0
	c.Out, c.Name = t.TempDir(), "run"
	sum, err := (&segmentation.Run{Cfg: c, Out: io.Discard, NoBar: true}).Train()
	if err != nil {
		t.Fatal(err)
	}
	ck := filepath.Join(sum.Dir, "best.safetensors")
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
	if err == nil || !strings.Contains(err.Error(), "1 of 3 images failed") || !strings.Contains(log, "c.png") {
		t.Errorf("bad image: %v\n%s", err, log)
	}
	wd, _ := os.Getwd()
	os.Chdir(t.TempDir())
	defer os.Chdir(wd)
	if _, err := runCLI(filepath.Join(in, "a.png")); err == nil || !strings.Contains(err.Error(), "train one with 'segtrain'") {
		t.Errorf("no checkpoint: %v", err)
	}
	for _, args := range [][]string{{"--format", "gif"}, {"--opacity", "2"}, {"--mode", "tiles"}, {"--scale", "big"}} {
		if _, err := runCLI(append(append([]string{"--checkpoint", ck}, args...), filepath.Join(in, "a.png"))...); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
