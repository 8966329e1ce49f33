package mat

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fixtures are scipy.io.savemat of SBD-shaped structs (make_fixtures.py): GTcls with
// Segmentation (uint8), Boundaries (a cell of a sparse matrix) and CategoriesPresent; label 15 on
// rows 2–4, columns 1–3, label 7 on the last 2 rows × last 3 columns.
func TestSBDFixtures(t *testing.T) {
	for name, size := range map[string][2]int{"compressed.mat": {6, 9}, "plain.mat": {7, 5}} {
		raw, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		m, err := ReadField(raw, "GTcls", "Segmentation")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		h, w := size[0], size[1]
		if m.Rows != h || m.Cols != w {
			t.Fatalf("%s: %d×%d, want %d×%d", name, m.Rows, m.Cols, h, w)
		}
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				want := 0.0
				if y >= 2 && y < 5 && x >= 1 && x < 4 {
					want = 15
				}
				if y >= h-2 && x >= w-3 {
					want = 7
				}
				if got := m.Data[y*w+x]; got != want {
					t.Fatalf("%s: (%d, %d) = %v, want %v", name, y, x, got, want)
				}
			}
		}
		if _, err := ReadField(raw, "GTcls", "Nope"); err == nil || !strings.Contains(err.Error(), "no field Nope") {
			t.Errorf("%s: missing field: %v", name, err)
		}
		if _, err := ReadField(raw, "GTinst", "Segmentation"); err == nil || !strings.Contains(err.Error(), "no variable GTinst") {
			t.Errorf("%s: missing variable: %v", name, err)
		}
		for cut := 130; cut < len(raw); cut += 7 {
			if _, err := ReadField(raw[:cut], "GTcls", "Segmentation"); err == nil {
				t.Errorf("%s cut at %d read without error", name, cut)
			}
		}
	}
}

func FuzzReadField(f *testing.F) {
	for _, name := range []string{"compressed.mat", "plain.mat"} {
		raw, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ReadField(data, "GTcls", "Segmentation")
		if err == nil && len(m.Data) != m.Rows*m.Cols {
			t.Fatalf("%d values for %d×%d", len(m.Data), m.Rows, m.Cols)
		}
	})
}
