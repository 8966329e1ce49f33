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

The training loop, datasets and the built-in demo are not in this build yet; "segtrain info"
describes the models.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	root.AddCommand(newInfoCmd(), newEvalCmd(), newDataCmd())
	return root
}
