package voc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func demoRoot(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "VOC2012")
	if err := (Demo{Seed: 3, N: 6, Size: 40}).WriteVOC(root, 2); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestVOCRoot(t *testing.T) {
	root := demoRoot(t)
	for _, r := range []string{root, filepath.Dir(root)} { // the VOC2012 dir or VOCdevkit above it
		v, err := OpenVOC(r, "train")
		if err != nil {
			t.Fatal(err)
		}
		if v.Len() != 4 || v.ID(0) != "demo_00002" {
			t.Errorf("train split: %d ids, first %q", v.Len(), v.ID(0))
		}
		img, m, err := ReadPair(v.ImagePath(0), v.MaskPath(0))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := Demo{Seed: 3, N: 6, Size: 40}.Load(2)
		if !bytes.Equal(m.Labels, want.Mask.Labels) || img.W != 40 {
			t.Error("the written sample does not read back")
		}
	}
	if _, err := OpenVOC(root, "test"); err == nil || !strings.Contains(err.Error(), "train, trainval, val") {
		t.Errorf("unknown split: %v", err)
	}
	if _, err := OpenVOC(root, "trainaug"); err == nil || !strings.Contains(err.Error(), "segtrain data sbd") {
		t.Errorf("missing SBD split: %v", err)
	}
	if _, err := OpenVOC(t.TempDir(), "val"); err == nil || !strings.Contains(err.Error(), "not a VOC 2012 root") {
		t.Errorf("not a root: %v", err)
	}
}

func FuzzDecodeImage(f *testing.F) {
	root := filepath.Join(f.TempDir(), "voc")
	if err := (Demo{Seed: 1, N: 1, Size: 8}).WriteVOC(root, 0); err != nil {
		f.Fatal(err)
	}
	jpg, _ := os.ReadFile(filepath.Join(root, "JPEGImages", "demo_00000.jpg"))
	png, _ := os.ReadFile(filepath.Join(root, "SegmentationClass", "demo_00000.png"))
	f.Add(jpg)
	f.Add(png)
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := DecodeImage(data)
		if err == nil && len(img.Pix) != 3*img.W*img.H {
			t.Fatalf("%d bytes for %d×%d", len(img.Pix), img.W, img.H)
		}
	})
}

// Training transform: output of the crop size, labels only from the sample (or Ignore where
// padded, with image 0 there), deterministic for a seed.
func TestAugmentInvariants(t *testing.T) {
	d := Demo{Seed: 5, N: 20, Size: 60}
	a := DefaultAugment(48)
	padded := 0
	for i := 0; i < d.N; i++ {
		s, _ := d.Load(i)
		have := map[uint8]bool{} // the sample's labels: the demo's masks hold no Ignore
		for _, l := range s.Mask.Labels {
			have[l] = true
		}
		ex := a.Train(s, rand.New(rand.NewPCG(uint64(i), 1)))
		again := a.Train(s, rand.New(rand.NewPCG(uint64(i), 1)))
		if ex.H != 48 || ex.W != 48 || len(ex.Image) != 3*48*48 || !slices.Equal(ex.Image, again.Image) {
			t.Fatalf("sample %d: %d×%d, or not deterministic", i, ex.H, ex.W)
		}
		for p, l := range ex.Labels {
			if l != Ignore {
				if !have[l] {
					t.Fatalf("sample %d: label %d appeared", i, l)
				}
				continue
			}
			// Ignore where the sample had none is padding, whose image is 0 in every channel.
			if !have[Ignore] && (ex.Image[p] != 0 || ex.Image[48*48+p] != 0 || ex.Image[2*48*48+p] != 0) {
				t.Fatalf("sample %d: ignored pixel %d holds image data", i, p)
			}
			padded++
		}
	}
	if padded == 0 { // else the Ignore check above never ran
		t.Fatal("no crop was padded")
	}
	// Small images are padded: the rescale of a 60² image to at most 0.5·(192, 48) leaves room.
	s, _ := d.Load(0)
	small := a
	small.Ratio = [2]float64{0.5, 0.5} // short side 24 < 48
	ex := small.Train(s, rand.New(rand.NewPCG(1, 1)))
	for y := 24; y < 48; y++ {
		if ex.Labels[y*48] != Ignore || ex.Image[y*48] != 0 {
			t.Fatalf("row %d of the padding: label %d, image %v", y, ex.Labels[y*48], ex.Image[y*48])
		}
	}
}

// The crop is retried (up to 10 times) until no class covers 75%: on a mask that is 84% class
// 1 with a 40×40 block of class 2, a single random 50×50 crop is balanced about 1 time in 5;
// with the retries, far more often ((4/5)^10 ≈ 0.1 are left unbalanced).
func TestCatMaxRatio(t *testing.T) {
	img := RGB{W: 100, H: 100, Pix: make([]uint8, 3*100*100)}
	m := Mask{W: 100, H: 100, Labels: make([]uint8, 100*100)}
	for i := range m.Labels {
		m.Labels[i] = 1
		if i%100 < 40 && i/100 < 40 {
			m.Labels[i] = 2
		}
	}
	unbalanced := func(ratio float64) int {
		a := Augment{Crop: [2]int{50, 50}, CatMaxRatio: ratio}
		n := 0
		for s := uint64(0); s < 400; s++ {
			if _, c := a.randomCrop(img, m, rand.New(rand.NewPCG(s, 2))); !balanced(c, 0, 0, 50, 50, 0.75) {
				n++
			}
		}
		return n
	}
	once, retried := unbalanced(1), unbalanced(0.75)
	if once < 250 || retried > once/3 {
		t.Errorf("unbalanced crops of 400: %d without retries, %d with", once, retried)
	} else {
		t.Logf("unbalanced crops of 400: %d without retries, %d with", once, retried)
	}
}

// A JPEG whose EXIF orientation says "rotate 90°" is read upright: 20×10 stored, 10×20 seen.
func TestEXIFOrientation(t *testing.T) {
	var buf bytes.Buffer
	jpeg.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 20, 10)), nil)
	raw := buf.Bytes()
	ifd := []byte{'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0}
	payload := append([]byte("Exif\x00\x00"), ifd...)
	app1 := append([]byte{0xFF, 0xE1, byte((len(payload) + 2) >> 8), byte(len(payload) + 2)}, payload...)
	path := filepath.Join(t.TempDir(), "rotated.jpg")
	os.WriteFile(path, append(append(raw[:2:2], app1...), raw[2:]...), 0o644)
	img, err := ReadImage(path)
	if err != nil {
		t.Fatal(err)
	}
	if img.W != 10 || img.H != 20 {
		t.Errorf("read as %d×%d, want 10×20", img.W, img.H)
	}
}

// The pixel limit is checked on the header: a 30000×30000 PNG header is refused, naming its size.
func TestDecodeImageLimit(t *testing.T) {
	var buf bytes.Buffer
	png.Encode(&buf, image.NewGray(image.Rect(0, 0, 30, 20)))
	small := buf.Bytes()
	if img, err := DecodeImageLimit(small, 600); err != nil || img.W != 30 || img.H != 20 {
		t.Fatalf("30×20 within 600 pixels: %v", err)
	}
	if _, err := DecodeImageLimit(small, 599); !errors.Is(err, ErrTooManyPixels) || !strings.Contains(err.Error(), "30×20") {
		t.Errorf("30×20 over 599 pixels: %v", err)
	}
	huge := append([]byte(nil), small...)
	binary.BigEndian.PutUint32(huge[16:], 30000) // IHDR width and height
	binary.BigEndian.PutUint32(huge[20:], 30000)
	binary.BigEndian.PutUint32(huge[29:], crc32.ChecksumIEEE(huge[12:29]))
	if _, err := DecodeImage(huge); !errors.Is(err, ErrTooManyPixels) {
		t.Errorf("30000×30000 header: %v", err)
	}
}
