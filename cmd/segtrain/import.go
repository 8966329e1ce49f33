package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/segkit/segkit/cmd/internal/cli"
	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/segmentation/checkpoint"
)

func newImportCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "import FILE.pth",
		Short: "Convert a trained PyTorch HRNet (mmseg, official) into a segkit checkpoint",
		Long: `import converts a segmentation model trained with PyTorch into a segkit checkpoint, which eval
and segpredict then use like any other (they also read the PyTorch file directly; converting
once saves the conversion each time). Supported: mmsegmentation FCN-HRNet (fcn_hr18s, fcn_hr18,
fcn_hr48; 0.x and 1.x checkpoints) and the official HRNet-Semantic-Segmentation models (plain BN
or InPlaceABN). The HRNet layout and the class count are read off the tensor shapes, the class
names and palette from the file's metadata when it has them. The forward conventions that change
outputs (mmseg's two-step resizes, align_corners) are recorded in the checkpoint, so eval and
segpredict compute what PyTorch computes. ImageNet backbones are for segtrain --pretrained.`,
		Example: `  segtrain import fcn_hr48_512x512_20k_voc12aug_20200617_224419-89de05cd.pth -o hr48_voc.safetensors
  segtrain import hrnet_w48_cityscapes_cls19_1024x2048_trainset.pth --class-names cityscapes.txt -o hr48_cs.safetensors`,
		Args: cobra.ExactArgs(1),
	}
	imp := cli.AddImportFlags(cmd.Flags())
	// --classes is --class-names here (in eval, --classes counts the classes of saved masks).
	cmd.Flags().SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if name == "classes" {
			name = "class-names"
		}
		return pflag.NormalizedName(name)
	})
	cmd.Flags().StringVarP(&out, "out", "o", "", "the segkit checkpoint to write (.safetensors)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if out == "" {
			return usageError{Err: fmt.Errorf("-o/--out: where to write the checkpoint")}
		}
		opt, err := imp.Options()
		if err != nil {
			return usageError{Err: err}
		}
		im, err := checkpoint.ImportModel(args[0], opt)
		if err != nil {
			return err
		}
		if err := im.Save(out); err != nil {
			return err
		}
		st, m := im.State, im.Model
		w := cmd.OutOrStdout()
		fmt.Fprintf(w, "%s: %s HRNet (%s container), HRNetV2-%s, %d classes\n", args[0], m.Family, m.Container, st.Config.Model, len(st.Classes))
		fmt.Fprintf(w, "  %v\n", m.Report)
		conv := "one-step resizes (as official HRNet and segkit)"
		if st.Config.Convention != "" {
			conv = st.Config.Convention + "'s two-step resizes"
		}
		fmt.Fprintf(w, "  forward: %s, align_corners=%v, BN: %s\n", conv, st.Config.AlignCorners, map[bool]string{true: "InPlaceABN (|γ|+eps folded)", false: "plain"}[m.ABN])
		fmt.Fprintf(w, "  classes: %s\n", strings.Join(st.Classes, ", "))
		test, mode := st.Config.WithDefaults(), "whole"
		if test.EvalMode == segmentation.EvalSlide {
			mode = fmt.Sprintf("slide %d×%d windows", test.Crop, test.Crop)
		}
		of := "segkit's default"
		if test.Dataset != "" {
			of = test.Dataset + "'s recipe, from the class count"
		}
		fmt.Fprintf(w, "  test protocol: %s, %s (%s; --mode overrides it in eval and segpredict, --scale in segpredict)\n", fmt.Sprintf("scale %dx%d", test.TestScale[0], test.TestScale[1]), mode, of)
		fmt.Fprintf(w, "wrote %s\n", out)
		return nil
	}
	return cmd
}
