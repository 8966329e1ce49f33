package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A write that fails part way (a full disk) leaves the previous file whole and no temporary
// file behind; a write that succeeds replaces it.
func TestWriteFailureKeepsPrevious(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.onnx")
	old := strings.Repeat("previous model ", 1000)
	if err := WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	full := errors.New("no space left on device")
	err := Write(path, 0o644, func(w io.Writer) error {
		if _, err := w.Write([]byte(strings.Repeat("new model ", 300))); err != nil {
			return err
		}
		return full // after 3000 bytes of the new file
	})
	if !errors.Is(err, full) {
		t.Fatalf("the failed write returned %v", err)
	}
	if got, err := os.ReadFile(path); err != nil || string(got) != old {
		t.Errorf("after the failed write the file holds %d bytes (%v), want the previous %d", len(got), err, len(old))
	}
	if left, _ := filepath.Glob(filepath.Join(dir, TempPrefix+"*")); len(left) > 0 {
		t.Errorf("left %v", left)
	}
	if err := WriteFile(path, []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "new" {
		t.Errorf("after a good write: %q", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the directory holds %d files, want 1", len(entries))
	}
}

// A file that cannot be created is an error, and nothing is written.
func TestWriteMissingDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gone", "metrics.json")
	if err := WriteFile(path, []byte("{}"), 0o644); err == nil {
		t.Error("no error writing into a missing directory")
	}
}
