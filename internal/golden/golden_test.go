package golden

import (
	"os"
	"path/filepath"
	"testing"
)

// Reading a second file into the same cases leaves nothing of the first: a field the second
// file lacks is zero, not the first file's value.
func TestCasesReplaceValues(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	if err := os.WriteFile(a, []byte(`{"cases":[{"name":"x","bias":{"shape":[1],"data":[2]}}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, []byte(`{"cases":[{"name":"y"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Name string  `json:"name"`
		Bias *Tensor `json:"bias"`
	}
	if err := Cases(a, &cases); err != nil || cases[0].Bias == nil {
		t.Fatalf("first file: %+v, %v", cases, err)
	}
	if err := Cases(b, &cases); err != nil {
		t.Fatal(err)
	}
	if cases[0].Name != "y" || cases[0].Bias != nil {
		t.Errorf("second file read as %+v: the first file's bias survived", cases[0])
	}
}
