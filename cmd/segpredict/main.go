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
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/segkit/segkit/cmd/internal/cli"
	"github.com/segkit/segkit/segmentation/infer"
	"github.com/segkit/segkit/voc"
)

func main() { cli.Main("segpredict", newCmd()) }

// usageError is a wrong command line (exit status 2).
type usageError = cli.UsageError

type options struct {
	out, format string
	opacity     float64
	model       *modelFlags
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
	f.StringVar(&o.out, "out", ".", "output directory")
	f.StringVar(&o.format, "format", "index,color,overlay", "outputs: any of index, color, overlay")
	f.Float64Var(&o.opacity, "opacity", 0.5, "overlay opacity of the class colours (0: the image, 1: the colours)")
	o.model = addModelFlags(f)
	cmd.AddCommand(newServeCmd())
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
	p, err := o.model.load()
	if err != nil {
		return err
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
