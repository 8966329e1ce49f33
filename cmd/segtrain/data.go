package main

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/segkit/segkit/dataset"
	"github.com/segkit/segkit/voc"
)

func newDataCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "data", Short: "Prepare datasets"}
	var sbd, root string
	sbdCmd := &cobra.Command{
		Use:   "sbd",
		Short: "Convert SBD annotations into VOC's SegmentationClassAug and the trainaug split",
		Long: `sbd reads SBD's benchmark_RELEASE/dataset (cls/*.mat, train.txt, val.txt) and writes, inside the
VOC 2012 root, SegmentationClassAug/<id>.png for every id of the trainaug split (VOC train ∪ SBD
train ∪ SBD val, minus VOC val: 10,582 ids for the full sets) and the split lists trainaug.txt
and aug.txt. Then train with --split trainaug.`,
		Example: "  segtrain data sbd --sbd benchmark_RELEASE --voc VOCdevkit/VOC2012",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if sbd == "" || root == "" {
				return usageError{Err: errors.New("--sbd and --voc are required")}
			}
			rep, err := voc.ConvertSBD(sbd, root)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %d masks (%d from SBD, %d from VOC) and the trainaug split\n", rep.IDs, rep.FromSBD, rep.FromVOC)
			return nil
		},
	}
	sbdCmd.Flags().StringVar(&sbd, "sbd", "", "SBD directory (benchmark_RELEASE or its dataset/)")
	sbdCmd.Flags().StringVar(&root, "voc", "", "VOC 2012 root (VOCdevkit/VOC2012)")
	cmd.AddCommand(sbdCmd, newCityscapesCmd())
	return cmd
}

func newCityscapesCmd() *cobra.Command {
	var workers int
	cmd := &cobra.Command{
		Use:   "cityscapes ROOT",
		Short: "Write Cityscapes' *_gtFine_labelTrainIds.png masks from the *_gtFine_labelIds.png",
		Long: `cityscapes writes, next to every gtFine/<split>/<city>/*_gtFine_labelIds.png of the Cityscapes
root, the *_gtFine_labelTrainIds.png mask that mmseg trains on (8-bit grey: the 19 train ids, 255
void), as cityscapesScripts' createTrainIdLabelImgs does. segtrain reads the labelIds masks
without it too, mapping them on load; with the trainIds files it reads those.`,
		Example: "  segtrain data cityscapes data/cityscapes",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if workers < 1 {
				return usageError{Err: fmt.Errorf("--workers %d: at least 1", workers)}
			}
			n, err := dataset.ConvertCityscapes(args[0], workers)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %d *_gtFine_labelTrainIds.png masks\n", n)
			return nil
		},
	}
	cmd.Flags().IntVar(&workers, "workers", runtime.GOMAXPROCS(0), "goroutines converting masks")
	return cmd
}
