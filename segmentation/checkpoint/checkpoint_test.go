package checkpoint

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/nn"
	"github.com/segkit/segkit/segmentation"
	"gorgonia.org/tensor"
)

// Checkpoints keep every tensor, the momentum and the state; broken or foreign files are refused.
func TestCheckpointRoundTrip(t *testing.T) {
	m, _ := hrnet.New("w18_small_v1", 3, hrnet.DynOPool)
	net := nn.NewNet(m, 1)
	if _, err := net.Graph(nn.Inference, tensor.Shape{1, 3, 32, 32}); err != nil {
		t.Fatal(err)
	}
	p := net.Params.Get("pools.stem.alpha")
	p.Data()[0], p.Velocity = 2.25, []float32{0.5, -0.5}
	st := State{Iter: 7, Epoch: 1, Batch: 2, BestMIoU: 0.5, BestIter: 6, Config: segmentation.DemoConfig()}
	dir := t.TempDir()
	path := filepath.Join(dir, "ck.safetensors")
	if err := SaveCheckpoint(path, net.Params, st); err != nil {
		t.Fatal(err)
	}
	ck, err := LoadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	if ck.State.Iter != 7 || ck.State.Batch != 2 || ck.State.Config.Model != "w18_small_v1" {
		t.Errorf("state %+v", ck.State)
	}
	other := nn.NewNet(m, 2)
	other.Graph(nn.Inference, tensor.Shape{1, 3, 32, 32})
	if err := ck.Restore(other.Params); err != nil {
		t.Fatal(err)
	}
	q := other.Params.Get("pools.stem.alpha")
	if q.Data()[0] != 2.25 || q.Velocity[1] != -0.5 || other.Params.Get("conv1.weight").Data()[5] != net.Params.Get("conv1.weight").Data()[5] {
		t.Error("values did not come back")
	}
	raw, _ := os.ReadFile(path)
	cases := map[string][]byte{"truncated": raw[:len(raw)/2], "empty": nil, "junk": []byte("hello, not a checkpoint at all")}
	for name, data := range cases {
		bad := filepath.Join(dir, name+".safetensors")
		os.WriteFile(bad, data, 0o644)
		if _, err := LoadCheckpoint(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%s: %v", name, err)
		}
	}
	w, _ := hrnet.New("w18_small_v2", 3, hrnet.DynOPool)
	wrong := nn.NewNet(w, 1)
	wrong.Graph(nn.Inference, tensor.Shape{1, 3, 32, 32})
	if err := ck.Restore(wrong.Params); err == nil || !strings.Contains(err.Error(), "another model") && !strings.Contains(err.Error(), "shape") {
		t.Errorf("restoring into another model: %v", err)
	}
	// No temporary files are left behind.
	files, _ := filepath.Glob(filepath.Join(dir, ".tmp-*"))
	if len(files) > 0 {
		t.Errorf("left %v", files)
	}
}

// A checkpoint that cannot be written is an error naming it; the previous one stays whole.
func TestCheckpointWriteFailure(t *testing.T) {
	m, _ := hrnet.New("w18_small_v1", 3, hrnet.Fixed)
	net := nn.NewNet(m, 1)
	net.Graph(nn.Inference, tensor.Shape{1, 3, 32, 32})
	dir := t.TempDir()
	good := filepath.Join(dir, "ckpt.safetensors")
	if err := SaveCheckpoint(good, net.Params, State{Iter: 1}); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "gone", "ckpt.safetensors")
	if err := SaveCheckpoint(bad, net.Params, State{Iter: 2}); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("writing into a missing directory: %v", err)
	}
	if ck, err := LoadCheckpoint(good); err != nil || ck.State.Iter != 1 {
		t.Errorf("the previous checkpoint: %v", err)
	}
}

func FuzzCheckpoint(f *testing.F) {
	params := nn.NewParams(0)
	b := nn.NewBuilder(params, false)
	b.Param("w", []int{2, 3}, "", nn.Constant(1))
	path := filepath.Join(f.TempDir(), "c.safetensors")
	if err := SaveCheckpoint(path, params, State{Iter: 3, Config: segmentation.DemoConfig()}); err != nil {
		f.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	f.Add(raw)
	f.Add([]byte("\xff\xff\xff\xff\xff\xff\xff\x7f{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		decodeCheckpoint(data) // must not panic, whatever the bytes
	})
}
