// Command segpredict segments images with a trained model: a class-index PNG, a coloured PNG and
// an overlay per image.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/segkit/segkit/cmd/internal/cli"
	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/segmentation/infer"
	"github.com/segkit/segkit/voc"
)

func main() { cli.Main("segpredict", newCmd()) }

// usageError is a wrong command line (exit status 2).
type usageError = cli.UsageError

type options struct {
	checkpoint, out, mode, tta, scale, format string
	crop, stride                              int
	opacity                                   float64
	imp                                       *cli.ImportFlags
}

func newCmd() *cobra.Command {
	var o options
	cmd := &cobra.Command{
		Use:   "segpredict IMAGE|DIR ...",
		Short: "Segment images: class-index PNG, coloured PNG and overlay",
		Long: `segpredict segments each image (JPEG or PNG, EXIF orientation honoured; directories are
processed in name order) at its original size and writes <name>.png (class indices in the VOC
palette, readable by VOC tools), <name>_color.png and <name>_overlay.jpg. It prints the classes
found with their share of the pixels. Without --checkpoint it uses runs/latest/best.safetensors.
An input that cannot be read (a missing or broken file, a directory without images) is reported
on stderr and skipped; the others are processed and the exit status is then 1.`,
		Example: `  segpredict photo.jpg
  segpredict --checkpoint runs/w48/best.safetensors --tta flip --out masks/ images/`,
		Args: func(cmd *cobra.Command, args []string) error {
			if err := cobra.MinimumNArgs(1)(cmd, args); err != nil {
				return usageError{Err: err}
			}
			return nil
		},
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE:          func(cmd *cobra.Command, args []string) error { return run(cmd, o, args) },
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{Err: err} })
	f := cmd.Flags()
	f.StringVar(&o.checkpoint, "checkpoint", "", "checkpoint to use: segtrain's .safetensors or a PyTorch model (mmseg, official HRNet) (default: runs/latest/best.safetensors)")
	f.StringVar(&o.out, "out", ".", "output directory")
	f.StringVar(&o.format, "format", "index,color,overlay", "outputs: any of index, color, overlay")
	f.Float64Var(&o.opacity, "opacity", 0.5, "overlay opacity of the class colours (0: the image, 1: the colours)")
	f.StringVar(&o.mode, "mode", "", "whole (the whole image) or slide (windows of --crop) (default: the run's --eval-mode)")
	f.IntVar(&o.crop, "crop", 0, "with --mode slide: window size (default: the training crop)")
	f.IntVar(&o.stride, "stride", 0, "with --mode slide: stride (default: 2/3 of the window)")
	f.StringVar(&o.tta, "tta", "", "test-time augmentation: any of flip, ms (scales 0.5–1.75; softmax averaged)")
	f.StringVar(&o.scale, "scale", "", "test resize rule LONGxSHORT: fit the image into it, keeping the aspect (default: the run's --test-scale)")
	o.imp = cli.AddImportFlags(f)
	return cmd
}

func run(cmd *cobra.Command, o options, args []string) error {
	outputs, err := infer.ParseFormat(o.format)
	if err != nil {
		return usageError{Err: err}
	}
	if o.opacity < 0 || o.opacity > 1 {
		return usageError{Err: fmt.Errorf("--opacity %g: between 0 and 1", o.opacity)}
	}
	outputs.Opacity = o.opacity
	// A wrong command line is refused before the checkpoint is read (a scratch Inference).
	if err := configure(&infer.Inference{}, o, cmd.Flags()); err != nil {
		return usageError{Err: err}
	}
	imp, err := o.imp.Options()
	if err != nil {
		return usageError{Err: err}
	}
	if o.checkpoint == "" {
		if o.checkpoint, err = infer.LatestCheckpoint("runs"); err != nil {
			return err
		}
	}
	p, err := infer.NewPredictor(o.checkpoint, imp)
	if err != nil {
		return err
	}
	if err := configure(&p.Inference, o, cmd.Flags()); err != nil {
		return usageError{Err: err}
	}
	outputs.Palette = p.Palette
	files, problems := inputs(args)
	var failed []string
	for _, err := range problems { // reported and skipped, as unreadable images are
		fmt.Fprintln(cmd.ErrOrStderr(), "segpredict:", err)
		failed = append(failed, err.path)
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	stdout := cmd.OutOrStdout()
	var bar *progressbar.ProgressBar
	if f, ok := stdout.(*os.File); ok && len(files) > 1 && term.IsTerminal(int(f.Fd())) {
		bar = progressbar.NewOptions(len(files), progressbar.OptionSetWriter(os.Stderr), progressbar.OptionShowCount())
	}
	for _, path := range files {
		start := time.Now()
		if err := predictOne(p, outputs, o.out, path, stdout, start); err != nil {
			fmt.Fprintln(cmd.ErrOrStderr(), "segpredict:", err)
			failed = append(failed, path)
		}
		if bar != nil {
			bar.Add(1)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d inputs failed: %s", len(failed), len(files)+len(problems), strings.Join(failed, ", "))
	}
	return nil
}

func predictOne(p *infer.Predictor, outputs infer.Outputs, out, path string, w io.Writer, start time.Time) error {
	img, err := voc.ReadImage(path)
	if err != nil {
		return err
	}
	labels, err := p.Segment(img)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	if err := outputs.Write(out, name, img, labels); err != nil {
		return fmt.Errorf("%s: writing the outputs: %w", path, err)
	}
	fmt.Fprintf(w, "%s (%d×%d, %.0f ms): %s\n", path, img.W, img.H, float64(time.Since(start).Microseconds())/1e3,
		strings.Join(infer.Shares(labels, p.Classes), ", "))
	return nil
}

// configure applies the mode, crop, stride, TTA and scale options; a window flag without
// --mode slide is refused, not ignored.
func configure(inf *infer.Inference, o options, fs *pflag.FlagSet) error {
	if err := inf.SetOptions(o.mode, o.tta); err != nil {
		return err
	}
	for _, f := range []string{"crop", "stride"} {
		if fs.Changed(f) && !inf.Slide {
			return fmt.Errorf("--%s: only used with --mode slide", f)
		}
	}
	if fs.Changed("crop") {
		if err := segmentation.CheckCrop(o.crop, 0); err != nil {
			return err
		}
		inf.Crop, inf.Stride = o.crop, max(1, o.crop*2/3)
	}
	if fs.Changed("stride") {
		if o.stride < 1 {
			return fmt.Errorf("--stride %d: must be positive", o.stride)
		}
		inf.Stride = o.stride
	}
	if o.scale != "" {
		parts := strings.Split(strings.ToLower(o.scale), "x")
		if len(parts) != 2 {
			return fmt.Errorf("--scale %q: LONGxSHORT, e.g. 2048x512", o.scale)
		}
		for i, part := range parts {
			v, err := strconv.Atoi(part)
			if err != nil || v < 1 {
				return fmt.Errorf("--scale %q: LONGxSHORT with positive integers", o.scale)
			}
			inf.Aug.Scale[i] = v
		}
		if err := segmentation.CheckScale("--scale", inf.Aug.Scale); err != nil {
			return err
		}
	}
	return nil
}

// inputError is an argument that gives no image: a missing path, an unreadable or empty directory.
type inputError struct {
	path string
	err  error
}

func (e inputError) Error() string { return e.path + ": " + e.err.Error() }

// inputs expands directories into their images, in name order; an argument that gives none is
// returned as a problem, so that the others are still processed.
func inputs(args []string) (files []string, problems []inputError) {
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			cause := errors.Unwrap(err) // the *PathError's cause: the path is named once
			if cause == nil {
				cause = err
			}
			problems = append(problems, inputError{a, cause})
			continue
		}
		if !st.IsDir() {
			files = append(files, a)
			continue
		}
		entries, err := os.ReadDir(a)
		if err != nil {
			problems = append(problems, inputError{a, err})
			continue
		}
		var found []string
		for _, e := range entries {
			switch strings.ToLower(filepath.Ext(e.Name())) {
			case ".jpg", ".jpeg", ".png":
				found = append(found, filepath.Join(a, e.Name()))
			}
		}
		if len(found) == 0 {
			problems = append(problems, inputError{a, errors.New("no .jpg, .jpeg or .png images")})
			continue
		}
		slices.Sort(found)
		files = append(files, found...)
	}
	return files, problems
}
