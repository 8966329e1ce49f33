// Package golden reads the PyTorch golden vectors written by tools/reference/golden.py and
// compares results against them. Tests read the project's testdata copy and, when the
// environment variable SEG_GOLDEN_DIR names a directory, the files of the same name there.
package golden

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"gorgonia.org/tensor"
)

// EnvDir names the environment variable with an extra directory of golden files.
const EnvDir = "SEG_GOLDEN_DIR"

// Tensor is a row-major tensor as the golden files store it: plain values or, for HRNet
// weights, int8 values times a power-of-two scale.
type Tensor struct {
	Shape []int     `json:"shape"`
	Data  []float64 `json:"data"`
	Scale float64   `json:"scale"`
	Int8  string    `json:"int8_b64"`
}

// F32 returns the values as float32 (exact: the files hold float32 values to 9 digits).
func (t *Tensor) F32() ([]float32, error) {
	if t.Int8 != "" {
		raw, err := base64.StdEncoding.DecodeString(t.Int8)
		if err != nil {
			return nil, fmt.Errorf("int8_b64: %w", err)
		}
		out := make([]float32, len(raw))
		for i, b := range raw {
			out[i] = float32(float64(int8(b)) * t.Scale)
		}
		return out, t.check(len(out))
	}
	out := make([]float32, len(t.Data))
	for i, v := range t.Data {
		out[i] = float32(v)
	}
	return out, t.check(len(out))
}

// Dense returns the values as a float32 tensor of the file's shape; it fails the test on a
// malformed tensor.
func (t *Tensor) Dense(tb testing.TB) *tensor.Dense {
	tb.Helper()
	v, err := t.F32()
	if err != nil {
		tb.Fatal(err)
	}
	return tensor.New(tensor.WithShape(t.Shape...), tensor.WithBacking(v))
}

// I32 returns integer values (labels).
func (t *Tensor) I32() ([]int32, error) {
	out := make([]int32, len(t.Data))
	for i, v := range t.Data {
		out[i] = int32(v)
	}
	return out, t.check(len(out))
}

func (t *Tensor) check(n int) error {
	size := 1
	for _, d := range t.Shape {
		size *= d
	}
	if size != n {
		return fmt.Errorf("tensor of shape %v holds %d values", t.Shape, n)
	}
	return nil
}

// Files returns the paths of the golden file name to check: testdata/name and, when
// SEG_GOLDEN_DIR is set, that directory's file of the same name (which must exist).
func Files(name string) ([]string, error) {
	paths := []string{filepath.Join("testdata", name)}
	if dir := os.Getenv(EnvDir); dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s is set but %w", EnvDir, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// Cases reads a file of the form {"about": ..., "cases": [...]} into cases (a pointer),
// replacing whatever it held.
func Cases(path string, cases any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var file struct {
		Cases json.RawMessage `json:"cases"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(file.Cases) == 0 {
		return fmt.Errorf("%s: no cases", path)
	}
	// Decode into a zeroed value: json.Unmarshal into a slice reuses its elements, so a
	// field one file lacks would keep the previous file's value.
	reflect.ValueOf(cases).Elem().SetZero()
	if err := json.Unmarshal(file.Cases, cases); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
