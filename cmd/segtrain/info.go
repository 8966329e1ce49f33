package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/segkit/segkit/cmd/internal/cli"
	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/segmentation"
)

func newInfoCmd() *cobra.Command {
	var (
		model, resize, size string
		classes             int
		asJSON              bool
	)
	cmd := &cobra.Command{
		Use:   "info",
		Short: "Print a model's parameter count, GMACs and branch feature sizes",
		Example: `  segtrain info --model w48 --size 512x512
  segtrain info --model w18_small_v2 --resize dynopool --size 500x375 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, w, err := cli.ParseSize(size)
			if err != nil {
				return usageError{Err: err}
			}
			m, err := hrnet.New(model, classes, hrnet.Resize(resize))
			if err != nil {
				return usageError{Err: err}
			}
			info, err := segmentation.Describe(m, h, w)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(out).Encode(info)
			}
			fmt.Fprintf(out, "model      HRNetV2-%s, %s resizing, %d classes\n", info.Model, info.Resize, info.Classes)
			fmt.Fprintf(out, "input      %d×%d\n", h, w)
			fmt.Fprintf(out, "params     %d (%.2fM)\n", info.Params, float64(info.Params)/1e6)
			fmt.Fprintf(out, "GMACs      %.3f per image (conv multiply-accumulates)\n", info.GMACs)
			for i, s := range info.BranchSizes {
				fmt.Fprintf(out, "branch %d   %d×%d\n", i, s[0], s[1])
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&model, "model", "w48", "HRNet config: w18_small_v1, w18_small_v2, w18, w32, w48")
	f.StringVar(&resize, "resize", "fixed", "resizing between resolutions: fixed or dynopool")
	f.StringVar(&size, "size", "512x512", "input size, HxW (or one number for a square)")
	f.IntVar(&classes, "classes", 21, "number of classes")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}
