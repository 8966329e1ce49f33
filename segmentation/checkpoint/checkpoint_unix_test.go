//go:build unix

package checkpoint

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/segkit/segkit/nn"
)

// Checkpoints are created like other files: mode 0666 less the umask (not CreateTemp's 0600).
func TestCheckpointRespectsUmask(t *testing.T) {
	params := nn.NewParams(0)
	nn.NewBuilder(params, false).Param("w", []int{2}, "", nn.Constant(1))
	dir := t.TempDir()
	for _, mask := range []int{0o022, 0o027, 0o002} {
		old := syscall.Umask(mask)
		path := filepath.Join(dir, "ck.safetensors")
		err := SaveCheckpoint(path, params, State{Iter: 1})
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if want := os.FileMode(0o666 &^ mask); st.Mode().Perm() != want {
			t.Errorf("umask %03o: checkpoint mode %v, want %v", mask, st.Mode().Perm(), want)
		}
	}
	if files, _ := filepath.Glob(filepath.Join(dir, ".tmp-*")); len(files) > 0 {
		t.Errorf("left %v", files)
	}
}
