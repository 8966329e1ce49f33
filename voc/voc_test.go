package voc

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"path/filepath"
	"strings"
	"testing"
)

func TestPalette(t *testing.T) {
	want := map[int]color.RGBA{0: {0, 0, 0, 255}, 1: {128, 0, 0, 255}, 2: {0, 128, 0, 255}, 3: {128, 128, 0, 255},
		4: {0, 0, 128, 255}, 5: {128, 0, 128, 255}, 6: {0, 128, 128, 255}, 7: {128, 128, 128, 255},
		8: {64, 0, 0, 255}, 9: {192, 0, 0, 255}, 10: {64, 128, 0, 255}, 11: {192, 128, 0, 255},
		12: {64, 0, 128, 255}, 13: {192, 0, 128, 255}, 14: {64, 128, 128, 255}, 15: {192, 128, 128, 255},
		16: {0, 64, 0, 255}, 17: {128, 64, 0, 255}, 18: {0, 192, 0, 255}, 19: {128, 192, 0, 255},
		20: {0, 64, 128, 255}, 255: {224, 224, 192, 255}}
	for c, w := range want {
		if got := Palette[c].(color.RGBA); got != w {
			t.Errorf("class %d: %v, want %v", c, got, w)
		}
	}
	if len(ClassNames) != 21 || ClassNames[15] != "person" {
		t.Errorf("class names %v", ClassNames)
	}
}

// A real VOC mask (paletted) decodes to palette indices: classes 0, the object's, and 255 borders.
func TestReadVOCMask(t *testing.T) {
	m, err := ReadMask(filepath.Join("testdata", "2011_000003.png"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint8]int{}
	for _, l := range m.Labels {
		seen[l]++
	}
	if m.W != 500 || m.H != 338 || seen[0] == 0 || seen[255] == 0 || seen[15] == 0 {
		t.Errorf("%d×%d with labels %v", m.W, m.H, seen)
	}
	for l := range seen {
		if l > 20 && l != 255 {
			t.Errorf("label %d", l)
		}
	}
	// Round trip through the paletted encoder, and the same labels as grey and as VOC colours.
	enc, err := EncodeMask(m)
	if err != nil {
		t.Fatal(err)
	}
	grey := image.NewGray(image.Rect(0, 0, m.W, m.H))
	copy(grey.Pix, m.Labels)
	rgb := image.NewRGBA(image.Rect(0, 0, m.W, m.H))
	for i, l := range m.Labels {
		rgb.Set(i%m.W, i/m.W, Palette[l])
	}
	for name, data := range map[string][]byte{"paletted": enc, "grey": pngBytes(t, grey), "rgb": pngBytes(t, rgb)} {
		back, err := DecodeMask(data)
		if err != nil || !bytes.Equal(back.Labels, m.Labels) {
			t.Errorf("%s round trip: %v", name, err)
		}
	}
}

func pngBytes(t *testing.T, img image.Image) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestBadMasks(t *testing.T) {
	off := image.NewRGBA(image.Rect(0, 0, 3, 2))
	off.Set(2, 1, color.RGBA{1, 2, 3, 255})
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"not a PNG":      {[]byte("GIF89a"), "not a readable PNG"},
		"truncated":      {pngBytes(t, image.NewGray(image.Rect(0, 0, 40, 40)))[:60], "not a readable PNG"},
		"colour outside": {pngBytes(t, off), "pixel (2, 1) has colour (1, 2, 3)"},
		"16-bit":         {pngBytes(t, image.NewGray16(image.Rect(0, 0, 2, 2))), "16-bit"},
	} {
		if _, err := DecodeMask(tc.data); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
		}
	}
	if _, err := ReadMask(filepath.Join("testdata", "absent.png")); err == nil || !strings.Contains(err.Error(), "absent.png") {
		t.Errorf("missing file: %v", err)
	}
}

func FuzzDecodeMask(f *testing.F) {
	for _, img := range []image.Image{image.NewGray(image.Rect(0, 0, 3, 3)), image.NewPaletted(image.Rect(0, 0, 2, 5), Palette)} {
		var b bytes.Buffer
		png.Encode(&b, img)
		f.Add(b.Bytes())
	}
	f.Add([]byte("\x89PNG\r\n\x1a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeMask(data)
		if err == nil && len(m.Labels) != m.W*m.H {
			t.Fatalf("%d labels for %d×%d", len(m.Labels), m.W, m.H)
		}
	})
}
