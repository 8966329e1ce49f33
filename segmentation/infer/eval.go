package infer

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/segkit/segkit/internal/atomicfile"
	"github.com/segkit/segkit/metrics"
	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/segmentation/checkpoint"
	"github.com/segkit/segkit/voc"
)

// CheckpointEval evaluates a checkpoint (segkit's, or a PyTorch model imported as it is read)
// on a split of its run's dataset, or of another root of that layout.
type CheckpointEval struct {
	Path    string // the checkpoint
	Data    string // dataset root ("": the run's)
	Split   string // the split ("": the run's evaluation split)
	Mode    string // whole or slide ("": the run's)
	TTA     string // a list of flip, ms
	SaveDir string // when set, the predicted masks are written there (<id>.png)
	Import  checkpoint.ImportOptions
}

// Run evaluates and returns the metrics and the number of images; a setting that cannot apply
// is a segmentation.SettingError.
func (e CheckpointEval) Run() (metrics.Result, int, error) {
	ck, err := checkpoint.OpenCheckpoint(e.Path, e.Import)
	if err != nil {
		return metrics.Result{}, 0, err
	}
	if ck.State.Imported != nil && e.Data == "" {
		return metrics.Result{}, 0, segmentation.SettingError{Err: fmt.Errorf("--data: %s was trained with PyTorch, so there is no run data to default to", e.Path)}
	}
	cfg := ck.State.Config
	if e.Data != "" {
		cfg.Data = e.Data
	}
	if e.Split != "" {
		cfg.ValSplit = e.Split
	}
	cfg.Split = cfg.ValSplit // eval reads the evaluation split alone: a dataset may have no training split here
	_, val, err := segmentation.OpenData(cfg)
	if err != nil {
		return metrics.Result{}, 0, err
	}
	if n := len(ck.State.Classes); n > 0 && n != len(val.Classes()) {
		return metrics.Result{}, 0, fmt.Errorf("%s has %d classes, the dataset %d", e.Path, n, len(val.Classes()))
	}
	_, net, err := checkpoint.LoadModel(ck, len(val.Classes()))
	if err != nil {
		return metrics.Result{}, 0, fmt.Errorf("%s: %w", e.Path, err)
	}
	inf := ForConfig(cfg)
	if err := inf.SetOptions(e.Mode, e.TTA); err != nil {
		return metrics.Result{}, 0, segmentation.SettingError{Err: err}
	}
	var save func(string, voc.Mask) error
	if e.SaveDir != "" {
		if err := os.MkdirAll(e.SaveDir, 0o755); err != nil {
			return metrics.Result{}, 0, err
		}
		save = func(id string, m voc.Mask) error {
			png, err := voc.EncodeMask(m)
			if err != nil {
				return err
			}
			return atomicfile.WriteFile(filepath.Join(e.SaveDir, id+".png"), png, 0o644)
		}
	}
	conf, err := inf.Evaluate(net, val, save)
	if err != nil {
		return metrics.Result{}, 0, err
	}
	return conf.Result(val.Classes()), val.Len(), nil
}

// ListIDs reads an id list (the first field of each line), or lists the PNGs of dir.
func ListIDs(file, dir string) ([]string, error) {
	var ids []string
	if file != "" {
		fh, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer fh.Close()
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			if id := strings.TrimSpace(sc.Text()); id != "" {
				ids = append(ids, strings.Fields(id)[0])
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if len(ids) == 0 {
			return nil, fmt.Errorf("%s: no ids", file)
		}
		return ids, nil
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*.png"))
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		ids = append(ids, strings.TrimSuffix(filepath.Base(p), ".png"))
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%s: no PNG masks", dir)
	}
	slices.Sort(ids)
	return ids, nil
}

// EvaluateMasks compares saved prediction masks (<predDir>/<id>.png) with ground truth
// (<gtDir>/<id>.png) in one confusion matrix of classes classes (ground-truth 255 ignored). The
// pairs are read on two goroutines, into one matrix each, then merged.
func EvaluateMasks(ids []string, predDir, gtDir string, classes int) (*metrics.Confusion, error) {
	const workers = 2
	parts := make([]*metrics.Confusion, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		parts[w] = metrics.NewConfusion(classes, voc.Ignore)
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(ids) && errs[w] == nil; i += workers {
				errs[w] = addPair(parts[w], filepath.Join(predDir, ids[i]+".png"), filepath.Join(gtDir, ids[i]+".png"))
			}
		}(w)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, p := range parts[1:] {
		parts[0].Merge(p)
	}
	return parts[0], nil
}

func addPair(c *metrics.Confusion, predPath, gtPath string) error {
	gt, err := voc.ReadMask(gtPath)
	if err != nil {
		return err
	}
	pred, err := voc.ReadMask(predPath)
	if err != nil {
		return err
	}
	if pred.W != gt.W || pred.H != gt.H {
		return fmt.Errorf("%s is %d×%d but its ground truth %s is %d×%d", predPath, pred.W, pred.H, gtPath, gt.W, gt.H)
	}
	if err := c.Add(gt.Labels, pred.Labels); err != nil {
		return fmt.Errorf("%s / %s: %w", predPath, gtPath, err)
	}
	return nil
}
