package cli

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/segkit/segkit/dataset"
	"github.com/segkit/segkit/importer"
	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/segmentation/checkpoint"
)

// ImportFlags are the command-line flags of what a PyTorch file cannot say about its model, for
// every command that reads one (segtrain import and eval, segpredict).
type ImportFlags struct {
	classNames, bn string
	alignCorners   bool
	fs             *pflag.FlagSet
}

// AddImportFlags adds --class-names, --bn and --align-corners to fs.
func AddImportFlags(fs *pflag.FlagSet) *ImportFlags {
	f := &ImportFlags{fs: fs}
	fs.StringVar(&f.classNames, "class-names", "", "PyTorch files: class names, one per line (official HRNet files carry none; default: the file's, VOC's for 21 classes)")
	fs.StringVar(&f.bn, "bn", "", "official HRNet files: bn or abn (InPlaceABN, scale |γ|+eps; default: abn when the file has no num_batches_tracked)")
	fs.BoolVar(&f.alignCorners, "align-corners", false, "official HRNet files: bilinear resizes with align_corners=True (HRNet-OCR's ADE20K and COCO-Stuff configs)")
	return f
}

// Options returns the options the flags set; a bad value is a SettingError.
func (f *ImportFlags) Options() (checkpoint.ImportOptions, error) {
	var o checkpoint.ImportOptions
	switch importer.BN(f.bn) {
	case importer.BNDetect, importer.BNPlain, importer.BNInPlaceABN:
		o.BN = importer.BN(f.bn)
	default:
		return o, segmentation.SettingError{Err: fmt.Errorf("--bn %q: bn or abn", f.bn)}
	}
	if f.fs.Changed("align-corners") {
		o.AlignCorners = &f.alignCorners
	}
	if f.classNames != "" {
		names, err := dataset.ReadClassNames(f.classNames)
		if err != nil {
			return o, segmentation.SettingError{Err: fmt.Errorf("--class-names: %w", err)}
		}
		o.Classes = names
	}
	return o, nil
}
