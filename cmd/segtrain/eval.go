package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/segkit/segkit/cmd/internal/cli"
	"github.com/segkit/segkit/dataset"
	"github.com/segkit/segkit/internal/atomicfile"
	"github.com/segkit/segkit/metrics"
	"github.com/segkit/segkit/segmentation/infer"
	"github.com/segkit/segkit/voc"
)

func newEvalCmd() *cobra.Command {
	var (
		predDir, gtDir, idsFile, jsonOut string
		classes                          int
		ck                               infer.CheckpointEval
		imp                              *cli.ImportFlags
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
			if ck.Path != "" {
				if err := cli.RefuseIdle(cmd, "with --checkpoint (it evaluates the run's data split)", "pred-dir", "gt-dir", "ids", "classes"); err != nil {
					return err
				}
				// Checked before the checkpoint and the data are read.
				if err := (&infer.Inference{}).SetOptions(ck.Mode, ck.TTA); err != nil {
					return usageError{Err: err}
				}
				var err error
				if ck.Import, err = imp.Options(); err != nil {
					return usageError{Err: err}
				}
				res, n, err := ck.Run()
				if err != nil {
					return cli.Usage(err)
				}
				return report(cmd, n, res, jsonOut)
			}
			if predDir == "" || gtDir == "" {
				return usageError{Err: errors.New("give --checkpoint, or --pred-dir and --gt-dir")}
			}
			if err := cli.RefuseIdle(cmd, "without --checkpoint (saved masks are compared as they are)", "data", "split", "mode", "tta", "save-dir",
				"class-names", "bn", "align-corners"); err != nil {
				return err
			}
			if classes < 1 || classes > dataset.MaxClasses {
				return usageError{Err: fmt.Errorf("--classes %d: must be 1–%d", classes, dataset.MaxClasses)}
			}
			ids, err := infer.ListIDs(idsFile, gtDir)
			if err != nil {
				return err
			}
			conf, err := infer.EvaluateMasks(ids, predDir, gtDir, classes)
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
	f.StringVar(&ck.Path, "checkpoint", "", "evaluate this checkpoint: segtrain's .safetensors, or a PyTorch model (mmseg, official HRNet)")
	f.StringVar(&ck.Data, "data", "", "with --checkpoint: dataset root (default: the run's data; read as the run's dataset)")
	f.StringVar(&ck.Split, "split", "", "with --checkpoint: split (default: the run's evaluation split)")
	f.StringVar(&ck.Mode, "mode", "", "with --checkpoint: whole (the whole image) or slide (windows of the crop) (default: the run's --eval-mode)")
	f.StringVar(&ck.TTA, "tta", "", "with --checkpoint: test-time augmentation, any of flip,ms (scales 0.5–1.75)")
	f.StringVar(&ck.SaveDir, "save-dir", "", "with --checkpoint: also write the predicted masks here (<id>.png)")
	imp = cli.AddImportFlags(f)
	return cmd
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
