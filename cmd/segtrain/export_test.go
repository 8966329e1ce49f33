package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/nn"
	"github.com/segkit/segkit/onnx"
	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/segmentation/checkpoint"
)

// exportCheckpoint writes a DynOPool w18_small_v1 checkpoint (3 classes, a 64 crop).
func exportCheckpoint(t *testing.T) string {
	t.Helper()
	m, err := hrnet.New("w18_small_v1", 3, hrnet.DynOPool)
	if err != nil {
		t.Fatal(err)
	}
	net := nn.NewNet(m, 1)
	if _, err := net.Graph(nn.Inference, tensor.Shape{1, 3, 64, 64}); err != nil {
		t.Fatal(err)
	}
	copy(net.Params.Get("pools.stem.alpha").Data(), []float32{2.5, 1.5})
	cfg := segmentation.DefaultConfig()
	cfg.Model, cfg.Resize, cfg.Crop = "w18_small_v1", "dynopool", 64
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := checkpoint.SaveCheckpoint(path, net.Params, checkpoint.State{Config: cfg, Classes: []string{"a", "b", "c"}}); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestExport(t *testing.T) {
	ck := exportCheckpoint(t)
	out := filepath.Join(t.TempDir(), "m.onnx")
	text, err := run("export", "--checkpoint", ck, "--onnx", out, "--size", "75x100", "--output", "labels", "--upsample", "--batch", "dynamic")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	m, err := onnx.Unmarshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	in, o := m.Graph.Inputs[0], m.Graph.Outputs[0]
	if in.Name != "input" || o.Name != "labels" || o.Type != onnx.Int64 {
		t.Errorf("input %+v, output %+v", in, o)
	}
	for _, want := range []string{"input  input float [N 3 75 100]", "output labels int64 [N 1 75 100]", `"pools.stem.alpha":[2.5,1.5]`, `"half":[30,67],"0":[12,45]`} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	// Defaults: batch 1, logits of the test size (the 64 crop at its 256×64 scale: 64×64), at
	// round(round(64/2.5)/2.5) × round(round(64/1.5)/1.5) = 10×29.
	if _, err := run("export", "--checkpoint", ck, "--onnx", out); err != nil {
		t.Fatal(err)
	}
	raw, _ = os.ReadFile(out)
	if m, err = onnx.Unmarshal(raw); err != nil {
		t.Fatal(err)
	}
	if got := m.Graph.Outputs[0]; got.Name != "logits" || len(got.Shape) != 4 || got.Shape[0].Size != 1 || got.Shape[2].Size != 10 || got.Shape[3].Size != 29 {
		t.Errorf("default export: output %+v, want logits 1×3×10×29", got)
	}
}

// Wrong command lines are usage errors found before the checkpoint is read; a file that is not
// a segkit checkpoint is one clear error.
func TestExportErrors(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "m.onnx")
	for _, args := range [][]string{
		{"--onnx", out},
		{"--checkpoint", "x.safetensors"},
		{"--checkpoint", "x.safetensors", "--onnx", out, "--output", "softmax"},
		{"--checkpoint", "x.safetensors", "--onnx", out, "--size", "0x5"},
		{"--checkpoint", "x.safetensors", "--onnx", out, "--batch", "0"},
		{"--checkpoint", "x.safetensors", "--onnx", out, "--batch", "N"},
	} {
		_, err := run(append([]string{"export"}, args...)...)
		var u usageError
		if !errors.As(err, &u) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	_, err := run("export", "--checkpoint", "../../importer/testdata/mmseg_0x.pth", "--onnx", out)
	var u usageError
	if err == nil || errors.As(err, &u) || !strings.Contains(err.Error(), "segtrain import") {
		t.Errorf("a PyTorch file: %v", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed export wrote its file")
	}
}
