// Package atomicfile writes output files so that a reader (or the next run) finds either the
// previous file whole or the new one whole: never a truncated file after a full disk, a crash
// or a kill.
package atomicfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// TempPrefix starts the name of the temporary files Write creates next to their target; a
// directory may be swept of leftovers (from a killed process) by it.
const TempPrefix = ".tmp-"

// Write writes what write produces to path: into a temporary file in path's directory, synced,
// then renamed over path, and the directory synced. On any error (write's included) the
// temporary file is removed and path is left as it was. perm is the mode before the umask, as
// for os.OpenFile.
func Write(path string, perm fs.FileMode, write func(w io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	tmp, err := create(dir, TempPrefix+filepath.Base(path)+"-", perm)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := write(tmp); err != nil {
		return err
	}
	// Sync before the rename: else a crash may leave the new name on empty data.
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// The rename itself is durable once the directory is synced; not every system can sync one.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// WriteFile is os.WriteFile made atomic by Write.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := io.Copy(w, bytes.NewReader(data))
		return err
	})
}

// create opens a new file named prefix and a random suffix in dir with mode perm less the
// umask (os.CreateTemp would give 0600 whatever the umask: the renamed file must be readable
// like the directory's other files).
func create(dir, prefix string, perm fs.FileMode) (*os.File, error) {
	for try := 0; ; try++ {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%s%016x", prefix, rand.Uint64())), os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if !errors.Is(err, fs.ErrExist) || try == 100 {
			return f, err
		}
	}
}

// WriteJSON writes v as indented JSON and a newline, atomically (mode 0644).
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return WriteFile(path, append(b, '\n'), 0o644)
}
