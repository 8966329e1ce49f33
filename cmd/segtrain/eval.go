package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/segkit/segkit/dataset"
	"github.com/segkit/segkit/internal/atomicfile"
	"github.com/segkit/segkit/metrics"
	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/voc"
)

func newEvalCmd() *cobra.Command {
	var (
		predDir, gtDir, idsFile, jsonOut string
		classes                          int
		ck                               checkpointEval
		imp                              *segmentation.ImportFlags
	)
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "Compute mIoU, aAcc, mAcc and a per-class table",
		Long: `eval evaluates a checkpoint on a dataset split (--checkpoint), or compares saved prediction
masks with ground truth (--pred-dir, --gt-dir), pixel for pixel, in one confusion matrix over the
whole set (ground-truth 255 is ignored). Masks are PNGs named <id>.png: paletted (VOC), 8-bit
grey indices, or VOC-palette colours.`,
		Example: `  segtrain eval --checkpoint runs/latest/best.safetensors --data VOCdevkit/VOC2012 --split val --tta flip
  segtrain eval --pred-dir out/pred --gt-dir VOCdevkit/VOC2012/SegmentationClass \
      --ids VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt --json metrics.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ck.path != "" {
				if err := refuseIdle(cmd, "with --checkpoint (it evaluates the run's data split)", "pred-dir", "gt-dir", "ids", "classes"); err != nil {
					return err
				}
				// Checked before the checkpoint and the data are read.
				if err := (&segmentation.Inference{}).SetOptions(ck.mode, ck.tta); err != nil {
					return usageError{err}
				}
				var err error
				if ck.imp, err = imp.Options(); err != nil {
					return usageError{err}
				}
				res, n, err := ck.run()
				if err != nil {
					return err
				}
				return report(cmd, n, res, jsonOut)
			}
			if predDir == "" || gtDir == "" {
				return usageError{errors.New("give --checkpoint, or --pred-dir and --gt-dir")}
			}
			if err := refuseIdle(cmd, "without --checkpoint (saved masks are compared as they are)", "data", "split", "mode", "tta", "save-dir",
				"class-names", "bn", "align-corners"); err != nil {
				return err
			}
			if classes < 1 || classes > dataset.MaxClasses {
				return usageError{fmt.Errorf("--classes %d: must be 1–%d", classes, dataset.MaxClasses)}
			}
			ids, err := listIDs(idsFile, gtDir)
			if err != nil {
				return err
			}
			conf, err := evaluate(ids, predDir, gtDir, classes)
			if err != nil {
				return err
			}
			names := voc.ClassNames
			if classes != len(names) {
				names = nil
			}
			return report(cmd, len(ids), conf.Result(names), jsonOut)
		},
	}
	f := cmd.Flags()
	f.StringVar(&predDir, "pred-dir", "", "directory of predicted masks (<id>.png)")
	f.StringVar(&gtDir, "gt-dir", "", "directory of ground-truth masks (<id>.png)")
	f.StringVar(&idsFile, "ids", "", "file listing the ids to evaluate, one per line (default: every PNG in --gt-dir)")
	f.IntVar(&classes, "classes", 21, "number of classes")
	f.StringVar(&jsonOut, "json", "", "also write the metrics to this JSON file")
	f.StringVar(&ck.path, "checkpoint", "", "evaluate this checkpoint: segtrain's .safetensors, or a PyTorch model (mmseg, official HRNet)")
	f.StringVar(&ck.data, "data", "", "with --checkpoint: dataset root (default: the run's data; read as the run's dataset)")
	f.StringVar(&ck.split, "split", "", "with --checkpoint: split (default: the run's evaluation split)")
	f.StringVar(&ck.mode, "mode", "", "with --checkpoint: whole (the whole image) or slide (windows of the crop) (default: the run's --eval-mode)")
	f.StringVar(&ck.tta, "tta", "", "with --checkpoint: test-time augmentation, any of flip,ms (scales 0.5–1.75)")
	f.StringVar(&ck.saveDir, "save-dir", "", "with --checkpoint: also write the predicted masks here (<id>.png)")
	imp = segmentation.AddImportFlags(f)
	return cmd
}

// refuseIdle is a usage error naming those of flags that the user set: they do nothing in this
// mode, and silently ignoring them would let the user believe they did.
func refuseIdle(cmd *cobra.Command, mode string, flags ...string) error {
	var set []string
	for _, f := range flags {
		if cmd.Flags().Changed(f) {
			set = append(set, "--"+f)
		}
	}
	if len(set) == 0 {
		return nil
	}
	return usageError{fmt.Errorf("%s: not used %s", strings.Join(set, ", "), mode)}
}

// report prints the table and writes the JSON.
func report(cmd *cobra.Command, images int, res metrics.Result, jsonOut string) error {
	fmt.Fprintf(cmd.OutOrStdout(), "%d images\n%s", images, res.Table())
	if jsonOut == "" {
		return nil
	}
	raw, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(jsonOut, append(raw, '\n'), 0o644)
}

// checkpointEval evaluates a checkpoint.
type checkpointEval struct {
	path, data, split, mode, tta, saveDir string
	imp                                   segmentation.ImportOptions
}

func (e checkpointEval) run() (metrics.Result, int, error) {
	ck, err := segmentation.OpenCheckpoint(e.path, e.imp)
	if err != nil {
		return metrics.Result{}, 0, err
	}
	if ck.State.Imported != nil && e.data == "" {
		return metrics.Result{}, 0, usageError{fmt.Errorf("--data: %s was trained with PyTorch, so there is no run data to default to", e.path)}
	}
	cfg := ck.State.Config
	if e.data != "" {
		cfg.Data = e.data
	}
	if e.split != "" {
		cfg.ValSplit = e.split
	}
	cfg.Split = cfg.ValSplit // eval reads the evaluation split alone: a dataset may have no training split here
	_, val, err := segmentation.OpenData(cfg)
	if err != nil {
		return metrics.Result{}, 0, err
	}
	if n := len(ck.State.Classes); n > 0 && n != len(val.Classes()) {
		return metrics.Result{}, 0, fmt.Errorf("%s has %d classes, the dataset %d", e.path, n, len(val.Classes()))
	}
	_, net, err := segmentation.LoadModel(ck, len(val.Classes()))
	if err != nil {
		return metrics.Result{}, 0, fmt.Errorf("%s: %w", e.path, err)
	}
	inf := cfg.TestInference()
	if err := inf.SetOptions(e.mode, e.tta); err != nil {
		return metrics.Result{}, 0, usageError{err}
	}
	var save func(string, voc.Mask) error
	if e.saveDir != "" {
		if err := os.MkdirAll(e.saveDir, 0o755); err != nil {
			return metrics.Result{}, 0, err
		}
		save = func(id string, m voc.Mask) error {
			png, err := voc.EncodeMask(m)
			if err != nil {
				return err
			}
			return atomicfile.WriteFile(filepath.Join(e.saveDir, id+".png"), png, 0o644)
		}
	}
	conf, err := inf.Evaluate(net, val, save)
	if err != nil {
		return metrics.Result{}, 0, err
	}
	return conf.Result(val.Classes()), val.Len(), nil
}

// listIDs reads an id list, or lists the PNGs of dir.
func listIDs(file, dir string) ([]string, error) {
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

// evaluate reads the mask pairs on two goroutines into one confusion matrix each, then merges.
func evaluate(ids []string, predDir, gtDir string, classes int) (*metrics.Confusion, error) {
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
