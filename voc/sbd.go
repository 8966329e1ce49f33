package voc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/segkit/segkit/internal/atomicfile"
	"github.com/segkit/segkit/internal/mat"
)

// SBDReport says what ConvertSBD wrote.
type SBDReport struct {
	IDs, FromSBD, FromVOC int
}

// ConvertSBD turns the SBD annotations (benchmark_RELEASE/dataset: cls/<id>.mat, train.txt,
// val.txt) into VOC's SegmentationClassAug/<id>.png and writes the trainaug (= aug) split: VOC
// train ∪ SBD train ∪ SBD val, minus VOC val (10,582 ids for the full sets). Masks come from SBD
// where it has the id, else from VOC's SegmentationClass.
func ConvertSBD(sbdDir, vocRoot string) (SBDReport, error) {
	sbd, err := findSBD(sbdDir)
	if err != nil {
		return SBDReport{}, err
	}
	if _, err := os.Stat(filepath.Join(vocRoot, "VOC2012", "JPEGImages")); err == nil {
		vocRoot = filepath.Join(vocRoot, "VOC2012")
	}
	lists := filepath.Join(vocRoot, "ImageSets", "Segmentation")
	var sets [4][]string
	for i, path := range []string{filepath.Join(lists, "train.txt"), filepath.Join(lists, "val.txt"),
		filepath.Join(sbd, "train.txt"), filepath.Join(sbd, "val.txt")} {
		if sets[i], err = ReadIDs(path); err != nil {
			return SBDReport{}, err
		}
	}
	val := map[string]bool{}
	for _, id := range sets[1] {
		val[id] = true
	}
	var ids []string
	for _, set := range [][]string{sets[0], sets[2], sets[3]} {
		for _, id := range set {
			if !val[id] {
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	out := filepath.Join(vocRoot, "SegmentationClassAug")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return SBDReport{}, err
	}
	rep := SBDReport{IDs: len(ids)}
	var mu sync.Mutex
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for w := range errs {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(ids) && errs[w] == nil; i += len(errs) {
				fromSBD, err := convertOne(ids[i], sbd, vocRoot, out)
				errs[w] = err
				mu.Lock()
				if fromSBD {
					rep.FromSBD++
				} else {
					rep.FromVOC++
				}
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return rep, err
	}
	list := []byte(strings.Join(ids, "\n") + "\n")
	for _, name := range []string{"trainaug.txt", "aug.txt"} {
		if err := atomicfile.WriteFile(filepath.Join(lists, name), list, 0o644); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// findSBD accepts benchmark_RELEASE, its dataset directory, or a directory holding either.
func findSBD(dir string) (string, error) {
	for _, d := range []string{dir, filepath.Join(dir, "dataset"), filepath.Join(dir, "benchmark_RELEASE", "dataset")} {
		if st, err := os.Stat(filepath.Join(d, "cls")); err == nil && st.IsDir() {
			return d, nil
		}
	}
	return "", fmt.Errorf("%s: no SBD cls/ directory (expected benchmark_RELEASE/dataset/cls)", dir)
}

// convertOne writes id's mask, from SBD when it has one, and reports which.
func convertOne(id, sbd, vocRoot, out string) (bool, error) {
	matPath := filepath.Join(sbd, "cls", id+".mat")
	raw, err := os.ReadFile(matPath)
	fromSBD := err == nil
	var m Mask
	switch {
	case fromSBD:
		seg, err := mat.ReadField(raw, "GTcls", "Segmentation")
		if err != nil {
			return true, fmt.Errorf("%s: %w", matPath, err)
		}
		m = Mask{W: seg.Cols, H: seg.Rows, Labels: make([]uint8, len(seg.Data))}
		for i, v := range seg.Data {
			if v < 0 || v > 20 || v != float64(int(v)) {
				return true, fmt.Errorf("%s: label %v at (%d, %d) is not a VOC class", matPath, v, i%m.W, i/m.W)
			}
			m.Labels[i] = uint8(v)
		}
	case errors.Is(err, os.ErrNotExist):
		if m, err = ReadMask(filepath.Join(vocRoot, "SegmentationClass", id+".png")); err != nil {
			return false, fmt.Errorf("%s is in no SBD file (%s) nor VOC mask: %w", id, matPath, err)
		}
	default:
		return true, err
	}
	png, err := EncodeMask(m)
	if err != nil {
		return fromSBD, err
	}
	return fromSBD, atomicfile.WriteFile(filepath.Join(out, id+".png"), png, 0o644)
}
