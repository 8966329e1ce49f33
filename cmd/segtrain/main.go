// Command segtrain trains and evaluates HRNet semantic segmentation models, with fixed resizing
// or with DynOPool.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "segtrain:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "segtrain",
		Short: "Train HRNet (+DynOPool) semantic segmentation on Pascal VOC or a folder dataset",
		Long: `segtrain trains HRNetV2 segmentation models with fixed resizing or with DynOPool
(learned per-axis resizing) and evaluates them by mIoU.

With no flags it trains a small HRNet with DynOPool on the built-in demo dataset and prints the
mIoU table; with --data it trains on a VOC 2012 root (mmseg's recipe). Runs are written under
--out (default runs/), with runs/latest pointing at the newest. The defaults shown below are
mmseg's VOC recipe for --data runs; the demo has its own (a 96 crop, 1200 iterations, ...).`,
		Example: `  segtrain                                    # the demo
  segtrain --data VOCdevkit/VOC2012 --split trainaug --model w48 --resize dynopool
  segtrain --resume runs/latest`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	flags := addTrainFlags(root.Flags())
	root.RunE = func(cmd *cobra.Command, _ []string) error { return runTraining(cmd, flags) }
	root.AddCommand(newInfoCmd(), newEvalCmd(), newDataCmd())
	return root
}
