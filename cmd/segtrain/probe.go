package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/segmentation/sweep"
)

func newProbeSizesCmd() *cobra.Command {
	var (
		ckpt, down, up string
		batches        int
		seed           uint64
		asJSON         bool
	)
	cmd := &cobra.Command{
		Use:   "probe-sizes",
		Short: "Compare each DynOPool alpha's straight-through gradient with one size step's loss change",
		Long: `probe-sizes loads a trained checkpoint and, on --batches training batches of its dataset (training
mode, the GMACs loss left out), prints for every alpha component the straight-through gradient
dL/dalpha that training follows, and the finite difference of the loss between the alphas whose
output sizes are one smaller and one larger, with the three losses. Where the two disagree in
sign, or the loss rises on both sides, the gradient does not say which size the data wants
(docs/dynopool.md). A fixed model's checkpoint is probed as a DynOPool model at alpha 2 with
--dynopool-down strided --dynopool-up centre (the design that equals it there).`,
		Example: "  segtrain probe-sizes --checkpoint runs/latest/best.safetensors",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ckpt == "" || batches < 1 {
				return usageError{Err: fmt.Errorf("--checkpoint is required and --batches must be at least 1")}
			}
			var like *segmentation.Config
			if down != "" || up != "" {
				like = &segmentation.Config{Resize: "dynopool", DynDown: down, DynUp: up}
			}
			probes, err := sweep.ProbeSizes(ckpt, like, batches, seed)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(out).Encode(probes)
			}
			fmt.Fprintf(out, "%-22s %-6s %5s %12s %12s   %s\n", "alpha", "axis", "size", "ST dL/dα", "FD dL/dα", "loss at size −1, size, +1")
			for _, p := range probes {
				fmt.Fprintf(out, "%-22s %-6s %5d %+12.4g %+12.4g   %.5f %.5f %.5f\n", p.Pool, [2]string{"height", "width"}[p.Axis], p.Size, p.ST, p.FD, p.Loss[0], p.Loss[1], p.Loss[2])
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&ckpt, "checkpoint", "", "the trained model (.safetensors)")
	f.IntVar(&batches, "batches", 8, "training batches to average over")
	f.Uint64Var(&seed, "seed", 99, "seed of the batches' draw")
	f.StringVar(&down, "dynopool-down", "", "probe as DynOPool with this down-sampling (pool or strided)")
	f.StringVar(&up, "dynopool-up", "", "probe as DynOPool with this up-sampling (max, mean or centre)")
	f.BoolVar(&asJSON, "json", false, "print one JSON array")
	return cmd
}
