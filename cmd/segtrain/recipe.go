package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/segkit/segkit/dataset"
	"github.com/segkit/segkit/segmentation"
)

func newRecipeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "recipe [DATASET]",
		Short: "Show a dataset's training recipe (mmseg's config for it), or list the datasets",
		Long: `recipe lists the datasets segtrain reads, or shows one: its layout, classes, label mapping,
and the recipe that --data (or --dataset) gives as defaults: crop, rescale and ratio range,
batch, iterations, learning rate, evaluation scale and mode, as flags that override it.`,
		Example: "  segtrain recipe\n  segtrain recipe cityscapes",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			if len(args) == 0 {
				listRecipes(out)
				return nil
			}
			r, err := segmentation.RecipeFor(args[0])
			if err != nil {
				return usageError{Err: err}
			}
			info, _ := dataset.Lookup(r.Dataset)
			classes := fmt.Sprintf("%d classes: %s", len(info.Classes), strings.Join(info.Classes, ", "))
			if info.Classes == nil {
				classes = "classes from classes.txt"
			}
			fmt.Fprintf(out, "%s (--dataset %s)\n  layout: %s\n  splits: %s\n  %s\n  masks: %s\n\nrecipe: %s\n%s",
				info.Title, info.Name, info.Layout, info.Splits, classes, maskValues(info), r.Source, r.Settings())
			if r.Longer != "" {
				fmt.Fprintf(out, "longer schedules: %s\n", r.Longer)
			}
			return nil
		},
	}
}

// maskValues says how a dataset's masks store labels.
func maskValues(info dataset.Info) string {
	if info.Classes == nil {
		return fmt.Sprintf("class indices; %d is void (--ignore-index, --reduce-zero-label change that)", info.Void)
	}
	s := info.Labels(nil, false).Describe()
	if info.Name == dataset.Cityscapes {
		s += " (labelIds 0–33 are mapped to the 19 train ids when there are no labelTrainIds files)"
	}
	return s
}

func listRecipes(out io.Writer) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DATASET\tCLASSES\tCROP\tSCALE\tITERS\tEVAL\tRECIPE")
	for _, r := range segmentation.Recipes() {
		info, _ := dataset.Lookup(r.Dataset)
		c := r.Config.WithDefaults()
		classes := fmt.Sprint(len(info.Classes))
		if info.Classes == nil {
			classes = "classes.txt"
		}
		source, _, _ := strings.Cut(r.Source, " (")
		fmt.Fprintf(tw, "%s\t%s\t%dx%d\t%dx%d\t%d\t%s %dx%d\t%s\n", r.Dataset, classes, c.Crop, c.CropW, c.Scale[0], c.Scale[1],
			c.Iters, c.EvalMode, c.TestScale[0], c.TestScale[1], source)
	}
	tw.Flush()
	fmt.Fprintln(out, "\n'segtrain recipe DATASET' shows one; 'segtrain --dataset DATASET --help' shows its defaults as the flags'.")
}
