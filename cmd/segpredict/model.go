package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/segkit/segkit/cmd/internal/cli"
	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/segmentation/infer"
)

// modelFlags pick the model and its test protocol: the same flags, read the same way, for
// segpredict and segpredict serve.
type modelFlags struct {
	checkpoint, mode, tta, scale string
	crop, stride                 int
	imp                          *cli.ImportFlags
	fs                           *pflag.FlagSet
}

func addModelFlags(f *pflag.FlagSet) *modelFlags {
	m := &modelFlags{fs: f}
	f.StringVar(&m.checkpoint, "checkpoint", "", "checkpoint to use: segtrain's .safetensors or a PyTorch model (mmseg, official HRNet) (default: runs/latest/best.safetensors)")
	f.StringVar(&m.mode, "mode", "", "whole (the whole image) or slide (windows of --crop) (default: the run's --eval-mode)")
	f.IntVar(&m.crop, "crop", 0, "with --mode slide: window size (default: the training crop)")
	f.IntVar(&m.stride, "stride", 0, "with --mode slide: stride (default: 2/3 of the window)")
	f.StringVar(&m.tta, "tta", "", "test-time augmentation: any of flip, ms (scales 0.5–1.75; softmax averaged)")
	f.StringVar(&m.scale, "scale", "", "test resize rule LONGxSHORT: fit the image into it, keeping the aspect (default: the run's --test-scale)")
	m.imp = cli.AddImportFlags(f)
	return m
}

// load checks the flags (a wrong command line is a usageError, found before the checkpoint is
// read, on a scratch Inference), loads the predictor and applies the protocol flags to it.
func (m *modelFlags) load() (*infer.Predictor, error) {
	if err := m.configure(&infer.Inference{}); err != nil {
		return nil, usageError{Err: err}
	}
	imp, err := m.imp.Options()
	if err != nil {
		return nil, usageError{Err: err}
	}
	path := m.checkpoint
	if path == "" {
		if path, err = infer.LatestCheckpoint("runs"); err != nil {
			return nil, err
		}
	}
	p, err := infer.NewPredictor(path, imp)
	if err != nil {
		return nil, err
	}
	if err := m.configure(&p.Inference); err != nil {
		return nil, usageError{Err: err}
	}
	return p, nil
}

// configure applies the mode, crop, stride, TTA and scale options; a window flag without
// --mode slide is refused, not ignored.
func (m *modelFlags) configure(inf *infer.Inference) error {
	if err := inf.SetOptions(m.mode, m.tta); err != nil {
		return err
	}
	for _, f := range []string{"crop", "stride"} {
		if m.fs.Changed(f) && !inf.Slide {
			return fmt.Errorf("--%s: only used with --mode slide", f)
		}
	}
	if m.fs.Changed("crop") {
		if err := segmentation.CheckCrop(m.crop, 0); err != nil {
			return err
		}
		inf.Crop, inf.Stride = m.crop, max(1, m.crop*2/3)
	}
	if m.fs.Changed("stride") {
		if m.stride < 1 {
			return fmt.Errorf("--stride %d: must be positive", m.stride)
		}
		inf.Stride = m.stride
	}
	if m.scale != "" {
		parts := strings.Split(strings.ToLower(m.scale), "x")
		if len(parts) != 2 {
			return fmt.Errorf("--scale %q: LONGxSHORT, e.g. 2048x512", m.scale)
		}
		for i, part := range parts {
			v, err := strconv.Atoi(part)
			if err != nil || v < 1 {
				return fmt.Errorf("--scale %q: LONGxSHORT with positive integers", m.scale)
			}
			inf.Aug.Scale[i] = v
		}
		if err := segmentation.CheckScale("--scale", inf.Aug.Scale); err != nil {
			return err
		}
	}
	return nil
}
