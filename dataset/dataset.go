// Package dataset is what training reads: the Dataset interface, the layouts segkit recognises
// as downloaded (VOC 2012, Cityscapes, ADE20K, Pascal Context 59/60, CamVid, and a folder layout
// of one's own) with mmsegmentation's classes, palettes and label mappings, and the loader that
// turns a dataset into training batches.
package dataset

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/segkit/segkit/voc"
)

// Dataset is a list of samples read on demand.
type Dataset interface {
	Len() int
	ID(i int) string
	// Load reads sample i; errors name the file and the problem.
	Load(i int) (voc.Sample, error)
	// Classes names the classes; labels are indices into it (voc.Ignore aside).
	Classes() []string
}

// Pairs is a dataset of image files with one mask file each, whose values become labels
// through Labels.
type Pairs struct {
	Title  string // the dataset and split, for messages: "Cityscapes val"
	IDs    []string
	Images []string
	Masks  []string
	Names  []string // the classes
	Labels Labels
	Note   string // how it was read, when that needs saying
}

func (p *Pairs) Len() int          { return len(p.IDs) }
func (p *Pairs) ID(i int) string   { return p.IDs[i] }
func (p *Pairs) Classes() []string { return p.Names }

func (p *Pairs) Load(i int) (voc.Sample, error) {
	img, m, err := voc.ReadPair(p.Images[i], p.Masks[i])
	if err != nil {
		return voc.Sample{}, err
	}
	if err := p.Labels.Apply(p.Masks[i], m); err != nil {
		return voc.Sample{}, err
	}
	return voc.Sample{ID: p.IDs[i], Image: img, Mask: m}, nil
}

// MaxClasses is the most classes a model may have: labels are bytes, and 255 is void.
const MaxClasses = 255

// MaxClassName is the longest class name, in bytes.
const MaxClassName = 256

// CheckClassNames checks a list of class names against the limits (1–MaxClasses names of at
// most MaxClassName bytes): those of a class-names file, and those a checkpoint carries.
func CheckClassNames(names []string) error {
	if len(names) == 0 || len(names) > MaxClasses {
		return fmt.Errorf("%d class names (want 1–%d)", len(names), MaxClasses)
	}
	for i, n := range names {
		if len(n) > MaxClassName {
			return fmt.Errorf("class name %d is %d bytes long (at most %d)", i, len(n), MaxClassName)
		}
	}
	return nil
}

// ReadClassNames reads a class-names file: one name per line, in label order.
func ReadClassNames(path string) ([]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(string(raw), "\n") {
		if name := strings.TrimSpace(line); name != "" {
			names = append(names, name)
		}
	}
	if err := CheckClassNames(names); err != nil {
		return nil, fmt.Errorf("%s: %w; one per line", path, err)
	}
	return names, nil
}

// isDir reports whether path is a directory.
func isDir(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

// isFile reports whether path is a regular file (or a link to one).
func isFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// subdirs lists the directories in dir, sorted.
func subdirs(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		if e.IsDir() || isDir(filepath.Join(dir, e.Name())) {
			out = append(out, e.Name())
		}
	}
	return out
}

// filesWithSuffix maps the names of dir's files ending in suffix (case-insensitive), less the
// suffix, to their paths.
func filesWithSuffix(dir, suffix string) (map[string]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || len(name) <= len(suffix) || !strings.EqualFold(name[len(name)-len(suffix):], suffix) {
			continue
		}
		out[name[:len(name)-len(suffix)]] = filepath.Join(dir, name)
	}
	return out, nil
}
