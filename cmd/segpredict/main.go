// Command segpredict segments images with a trained model.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	cmd := &cobra.Command{
		Use:   "segpredict IMAGE...",
		Short: "Segment images: class-index PNG, VOC-coloured PNG and overlay",
		Long: `segpredict writes, for each image, the class-index PNG, a VOC-coloured PNG and an
overlay. Prediction is not in this build yet: this build provides the compute engine.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "segpredict:", err)
		os.Exit(1)
	}
}
