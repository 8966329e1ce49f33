package weights

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/internal/golden"
	"github.com/segkit/segkit/internal/numcheck"
	"github.com/segkit/segkit/nn"
)

// A .pth written by torch.save from the reference HRNet (float16) reproduces the reference's
// eval-mode logits: names, shapes, strides and half floats all read right.
func TestTorchFixtureReproducesLogits(t *testing.T) {
	tensors, err := Load(filepath.Join("testdata", "hrnet_tiny_fixed.pth"))
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Config     string        `json:"config"`
		NumClasses int           `json:"num_classes"`
		Input      golden.Tensor `json:"input"`
	}
	var want struct {
		LogitsEval golden.Tensor `json:"logits_eval"`
	}
	for path, v := range map[string]any{"hrnet_tiny_model.json": &spec, "hrnet_tiny_fixed.json": &want} {
		raw, err := os.ReadFile(filepath.Join("..", "hrnet", "testdata", "tiny_s0_2x64x64", path))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatal(err)
		}
	}
	m, err := hrnet.New(spec.Config, spec.NumClasses, hrnet.Fixed)
	if err != nil {
		t.Fatal(err)
	}
	net := nn.NewNet(m, 0)
	xv, _ := spec.Input.F32()
	x := tensor.New(tensor.WithShape(spec.Input.Shape...), tensor.WithBacking(xv))
	if _, err := net.Graph(nn.Inference, x.Shape()); err != nil {
		t.Fatal(err)
	}
	r := Apply(net.Params, tensors, nil)
	if !r.OK() || len(r.Unexpected) > 0 {
		t.Fatalf("loading: %v", r)
	}
	logits, err := net.Predict(x)
	if err != nil {
		t.Fatal(err)
	}
	if e := numcheck.RelErr(logits.Float32s(), want.LogitsEval.Data); e > 1e-4 {
		t.Errorf("logits relative error %.3g", e)
	} else {
		t.Logf("%v; logits relative error %.2g", r, e)
	}
}

// Missing, unexpected, mis-shaped and skipped tensors are reported by name.
func TestReport(t *testing.T) {
	m, _ := hrnet.New("w18_small_v1", 3, hrnet.Fixed)
	net := nn.NewNet(m, 0)
	if _, err := net.Graph(nn.Inference, tensor.Shape{1, 3, 32, 32}); err != nil {
		t.Fatal(err)
	}
	tensors, err := Load(filepath.Join("testdata", "hrnet_tiny_fixed.pth")) // 8 classes
	if err != nil {
		t.Fatal(err)
	}
	delete(tensors, "bn1.running_var")
	tensors["module.extra.weight"] = Tensor{Shape: []int{1}, Data: []float32{1}}
	r := Apply(net.Params, tensors, nil)
	for _, want := range []string{"1 missing: bn1.running_var", "1 unexpected: extra.weight",
		"last_layer.3.weight: file [8 240 1 1], model [3 240 1 1]", "last_layer.3.bias: file [8], model [3]"} {
		if !strings.Contains(r.String(), want) {
			t.Errorf("report %q does not say %q", r, want)
		}
	}
	if r.OK() {
		t.Error("a report with missing tensors is OK")
	}
	head := func(p *nn.Param, _ *Tensor) bool { return strings.HasPrefix(p.Name, "last_layer.3.") }
	r = Apply(net.Params, tensors, head)
	if len(r.Mismatched) != 0 || len(r.Skipped) != 2 {
		t.Errorf("skipping the head: %v", r)
	}
}

func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	trunc := filepath.Join(dir, "truncated.pth")
	raw, err := os.ReadFile(filepath.Join("testdata", "hrnet_tiny_fixed.pth"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(trunc, raw[:len(raw)/2], 0o644)
	junk := filepath.Join(dir, "junk.safetensors")
	os.WriteFile(junk, []byte("not a tensor file"), 0o644)
	for _, path := range []string{trunc, junk, filepath.Join(dir, "absent.pth")} {
		if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %v does not name the file", path, err)
		}
	}
}

// writeSafetensors writes tensors in the safetensors layout: header length, JSON header, data.
func writeSafetensors(t *testing.T, path string, tensors map[string]struct {
	dtype string
	shape []int
	data  []byte
}) {
	header := map[string]any{}
	var data []byte
	for name, v := range tensors {
		header[name] = map[string]any{"dtype": v.dtype, "shape": v.shape, "data_offsets": []int{len(data), len(data) + len(v.data)}}
		data = append(data, v.data...)
	}
	h, _ := json.Marshal(header)
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	if err := os.WriteFile(path, append(append(out, h...), data...), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSafetensors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.safetensors")
	f32 := binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, math.Float32bits(1.5)), math.Float32bits(-2))
	f16 := []byte{0x00, 0x3c, 0x00, 0xc0} // 1, −2
	i64 := binary.LittleEndian.AppendUint64(nil, 7)
	writeSafetensors(t, path, map[string]struct {
		dtype string
		shape []int
		data  []byte
	}{"a.weight": {"F32", []int{2, 1}, f32}, "b.weight": {"F16", []int{2}, f16}, "steps": {"I64", []int{1}, i64}})
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if a := got["a.weight"]; !slices.Equal(a.Shape, []int{2, 1}) || !slices.Equal(a.Data, []float32{1.5, -2}) {
		t.Errorf("a.weight = %+v", a)
	}
	if b := got["b.weight"]; !slices.Equal(b.Data, []float32{1, -2}) {
		t.Errorf("b.weight = %+v", b)
	}
	if _, ok := got["steps"]; ok {
		t.Error("an integer tensor was read as weights")
	}
	if f, err := Read(path); err != nil || f.Container != "safetensors" || !slices.Equal(f.Integer, []string{"steps"}) {
		t.Errorf("Read: %+v, %v", f, err)
	}
}

// Whatever a .pth file holds, reading it is an error or a result, never a crash, and never
// more memory than the file can account for.
func FuzzLoadTorch(f *testing.F) {
	raw, err := os.ReadFile(filepath.Join("testdata", "hrnet_tiny_fixed.pth"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw[:4096])
	f.Add([]byte("PK\x03\x04"))
	for _, name := range fixtures {
		raw, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		readBytes(data)
	})
}

// The same for the pickle inside a zip-format file: the fuzzer's data.pkl goes into a valid
// zip with the fixture's storages (mutating the zip itself mostly breaks its CRCs).
func FuzzZipPickle(f *testing.F) {
	raw, err := os.ReadFile(filepath.Join("testdata", "mmengine_zip.pth"))
	if err != nil {
		f.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		f.Fatal(err)
	}
	var others []record
	for _, rec := range zr.File {
		rc, err := rec.Open()
		if err != nil {
			f.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		if err != nil {
			f.Fatal(err)
		}
		name := "a/" + rec.Name[strings.Index(rec.Name, "/")+1:]
		if strings.HasSuffix(name, "/data.pkl") {
			f.Add(b)
		} else {
			others = append(others, record{name, b})
		}
	}
	f.Fuzz(func(t *testing.T, pkl []byte) {
		readBytes(zipFile(t, append([]record{{"a/data.pkl", pkl}}, others...)...))
	})
}
