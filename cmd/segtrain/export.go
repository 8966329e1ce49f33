package main

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/segkit/segkit/cmd/internal/cli"
	"github.com/segkit/segkit/export"
	"github.com/segkit/segkit/internal/atomicfile"
	"github.com/segkit/segkit/onnx"
)

func newExportCmd() *cobra.Command {
	var (
		checkpoint, out, size, batch, output string
		upsample                             bool
	)
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write a checkpoint as an ONNX graph (onnxruntime, TensorRT, OpenCV DNN), DynOPool models included",
		Long: `export writes a segkit checkpoint (trained, or imported with 'segtrain import') as an ONNX model
(opset 13, IR 7) at a fixed input size, for onnxruntime, TensorRT or OpenCV DNN. The input
"input" is the image normalised as segkit's test transform does ((RGB 0–255 − mean) / std,
N×3×H×W float32); the output is named after --output. Convolutions carry their batch norms
folded in; DynOPool resizes become a bilinear Resize to twice the learned size and a 2×2 max
pool, which is the op itself. The metadata holds the classes, palette, mean and std, the model's
config, its alphas and every level's size.`,
		Example: `  segtrain export --checkpoint runs/latest/best.safetensors --onnx model.onnx
  segtrain export --checkpoint hr18_voc.safetensors --onnx hr18.onnx --size 512x683 --upsample --output labels
  segtrain export --checkpoint runs/latest/best.safetensors --onnx model.onnx --batch dynamic`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if checkpoint == "" || out == "" {
				return usageError{Err: errors.New("give --checkpoint (a segkit checkpoint) and --onnx (the file to write)")}
			}
			kind, err := export.ParseOutput(output)
			if err != nil {
				return usageError{Err: fmt.Errorf("--output: %w", err)}
			}
			opt := export.Options{Output: kind, Upsample: upsample}
			if size != "" {
				if opt.H, opt.W, err = cli.ParseSize(size); err != nil {
					return usageError{Err: fmt.Errorf("--size: %w", err)}
				}
			}
			if batch != "dynamic" {
				n, err := strconv.Atoi(batch)
				if err != nil || n < 1 {
					return usageError{Err: fmt.Errorf("--batch %q: a positive number, or dynamic", batch)}
				}
				opt.Batch = n
			}
			m, err := export.Checkpoint(checkpoint, opt)
			if err != nil {
				return err
			}
			raw := onnx.Marshal(m)
			// Atomic: a full disk keeps the previous model whole, not a truncated one.
			if err := atomicfile.WriteFile(out, raw, 0o644); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			in, o := m.Graph.Inputs[0], m.Graph.Outputs[0]
			fmt.Fprintf(w, "%s: %s, %d nodes, %.1f MB\n", out, m.Graph.Name, len(m.Graph.Nodes), float64(len(raw))/1e6)
			fmt.Fprintf(w, "  input  %s %v %v (normalised RGB: mean and std in the metadata)\n", in.Name, in.Type, in.Shape)
			fmt.Fprintf(w, "  output %s %v %v\n", o.Name, o.Type, o.Shape)
			for _, key := range []string{"resize", "level_sizes", "alphas"} {
				if v, ok := m.Meta(key); ok && v != "{}" {
					fmt.Fprintf(w, "  %-6s %s\n", key, v)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&checkpoint, "checkpoint", "", "the segkit checkpoint to export (.safetensors)")
	f.StringVar(&out, "onnx", "", "the ONNX file to write")
	f.StringVar(&size, "size", "", "input size HxW (default: the checkpoint's test size: its crop rescaled to its test scale, or the crop for slide evaluation)")
	f.StringVar(&batch, "batch", "1", "images per run, or dynamic for a symbolic batch dimension N")
	f.StringVar(&output, "output", string(export.Logits), "logits (N×K×h×w), probs (softmax) or labels (argmax, int64 N×1×h×w)")
	f.BoolVar(&upsample, "upsample", false, "resize the output to the input size (bilinear, as segkit's inference; default: the network's 1/4 resolution)")
	return cmd
}
