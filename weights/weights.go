// Package weights reads model weights saved by PyTorch (torch.save of a state_dict, .pth/.pt)
// or as .safetensors, and loads them into a model's parameters by name, reporting what did
// not fit.
package weights

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nlpodyssey/gopickle/pytorch"
	"github.com/nlpodyssey/gopickle/types"
	"github.com/nlpodyssey/safetensors"

	"github.com/segkit/segkit/nn"
)

// Tensor is a float tensor from a weights file, as float32. Integer tensors (such as
// num_batches_tracked) are not read.
type Tensor struct {
	Shape []int
	Data  []float32
}

// Load reads a weights file: .safetensors, or a PyTorch file holding a state_dict (directly or
// under "state_dict" or "model", as training checkpoints do).
func Load(path string) (out map[string]Tensor, err error) {
	defer func() { // the decoders may panic on malformed data: a bad file is an error
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("%s: unreadable (%v)", path, r)
		}
	}()
	if strings.EqualFold(filepath.Ext(path), ".safetensors") {
		out, err = loadSafetensors(path)
	} else {
		out, err = loadTorch(path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no float tensors", path)
	}
	return out, nil
}

func loadSafetensors(path string) (map[string]Tensor, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	st, err := safetensors.Deserialize(raw)
	if err != nil {
		return nil, fmt.Errorf("not a valid safetensors file: %w", err)
	}
	out := map[string]Tensor{}
	for _, nt := range st.Tensors() {
		tv := nt.TensorView
		shape := make([]int, len(tv.Shape()))
		for i, d := range tv.Shape() {
			shape[i] = int(d)
		}
		var data []float32
		b := tv.Data()
		switch tv.DType() {
		case safetensors.F32:
			data = make([]float32, len(b)/4)
			for i := range data {
				data[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			}
		case safetensors.F64:
			data = make([]float32, len(b)/8)
			for i := range data {
				data[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
			}
		case safetensors.F16:
			data = make([]float32, len(b)/2)
			for i := range data {
				data[i] = math.Float32frombits(pytorch.FloatBits16to32(binary.LittleEndian.Uint16(b[2*i:])))
			}
		case safetensors.BF16:
			data = make([]float32, len(b)/2)
			for i := range data {
				data[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
			}
		default:
			continue // integer buffers
		}
		out[nt.Name] = Tensor{Shape: shape, Data: data}
	}
	return out, nil
}

func loadTorch(path string) (map[string]Tensor, error) {
	// Check the container first: the pickle reader can loop forever on some malformed input.
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	switch {
	case bytes.HasPrefix(raw, []byte("PK\x03\x04")): // torch.save's zip format (PyTorch ≥ 1.6)
		if _, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw))); err != nil {
			return nil, fmt.Errorf("not a readable PyTorch file: %w", err)
		}
	case len(raw) > 2 && raw[0] == 0x80 && raw[1] == 2: // the legacy format: a pickle, protocol 2
	default:
		return nil, fmt.Errorf("not a PyTorch file (neither torch.save's zip nor its legacy pickle)")
	}
	obj, err := pytorch.Load(path)
	if err != nil {
		return nil, fmt.Errorf("not a readable PyTorch file: %w", err)
	}
	dict, err := stateDict(obj)
	if err != nil {
		return nil, err
	}
	out := map[string]Tensor{}
	for name, v := range dict {
		t, ok := v.(*pytorch.Tensor)
		if !ok {
			continue
		}
		data, err := floats(t)
		if err != nil {
			return nil, fmt.Errorf("tensor %s: %w", name, err)
		}
		if data != nil {
			out[name] = Tensor{Shape: slices.Clone(t.Size), Data: data}
		}
	}
	return out, nil
}

// stateDict finds the name → value map in what torch.load returns.
func stateDict(obj any) (map[string]any, error) {
	entries := map[string]any{}
	switch d := obj.(type) {
	case *types.OrderedDict:
		for e := d.List.Front(); e != nil; e = e.Next() {
			entry := e.Value.(*types.OrderedDictEntry)
			if k, ok := entry.Key.(string); ok {
				entries[k] = entry.Value
			}
		}
	case *types.Dict:
		for _, entry := range *d {
			if k, ok := entry.Key.(string); ok {
				entries[k] = entry.Value
			}
		}
	default:
		return nil, fmt.Errorf("holds a %T, not a state_dict", obj)
	}
	for _, key := range []string{"state_dict", "model"} {
		if inner, ok := entries[key]; ok {
			return stateDict(inner)
		}
	}
	return entries, nil
}

// floats reads a tensor's values in row-major order (nil for integer tensors).
func floats(t *pytorch.Tensor) ([]float32, error) {
	var src []float32
	switch s := t.Source.(type) {
	case *pytorch.FloatStorage:
		src = s.Data
	case *pytorch.HalfStorage:
		src = s.Data
	case *pytorch.DoubleStorage:
		src = make([]float32, len(s.Data))
		for i, v := range s.Data {
			src[i] = float32(v)
		}
	default:
		return nil, nil
	}
	n := 1
	for _, d := range t.Size {
		n *= d
	}
	out := make([]float32, n)
	idx := make([]int, len(t.Size))
	for i := range out {
		off := t.StorageOffset
		for k, v := range idx {
			off += v * t.Stride[k]
		}
		if off < 0 || off >= len(src) {
			return nil, fmt.Errorf("reads past its storage (offset %d of %d)", off, len(src))
		}
		out[i] = src[off]
		for k := len(idx) - 1; k >= 0; k-- { // next index, row-major
			if idx[k]++; idx[k] < t.Size[k] {
				break
			}
			idx[k] = 0
		}
	}
	return out, nil
}

// Report is what Apply did.
type Report struct {
	Loaded     int
	Missing    []string // parameters the file does not have
	Unexpected []string // tensors of the file the model does not have
	Mismatched []string // same name, other shape: "name: file [..], model [..]"
	Skipped    []string // left out on purpose (skip)
}

// OK reports whether every parameter was loaded (skipped ones aside) and nothing mismatched.
func (r Report) OK() bool { return len(r.Missing) == 0 && len(r.Mismatched) == 0 }

func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "loaded %d tensors", r.Loaded)
	for _, part := range []struct {
		what  string
		names []string
	}{{"missing", r.Missing}, {"unexpected", r.Unexpected}, {"mismatched", r.Mismatched}, {"skipped", r.Skipped}} {
		if len(part.names) > 0 {
			fmt.Fprintf(&b, "; %d %s: %s", len(part.names), part.what, strings.Join(part.names, ", "))
		}
	}
	return b.String()
}

// canonical strips the prefixes wrappers add (DataParallel's "module.", "model.", and "param/"
// in segtrain's own checkpoints).
func canonical(name string) string {
	for _, p := range []string{"param/", "module.", "model."} {
		name = strings.TrimPrefix(name, p)
	}
	return name
}

// Apply copies the tensors into the parameters of the same name (after stripping "module." and
// "model." prefixes). Parameters for which skip returns true are left as they are (e.g. the
// head, when the class count differs); skip sees the parameter and the file's tensor of that
// name (nil when there is none), and may be nil.
func Apply(params *nn.Params, tensors map[string]Tensor, skip func(p *nn.Param, file *Tensor) bool) Report {
	var r Report
	byName := map[string]Tensor{}
	for name, t := range tensors {
		if !strings.HasPrefix(name, "velocity/") { // a checkpoint's optimizer state
			byName[canonical(name)] = t
		}
	}
	used := map[string]bool{}
	for _, p := range params.All() {
		t, ok := byName[p.Name]
		used[p.Name] = true
		var file *Tensor
		if ok {
			file = &t
		}
		switch {
		case skip != nil && skip(p, file):
			r.Skipped = append(r.Skipped, p.Name)
		case !ok:
			r.Missing = append(r.Missing, p.Name)
		case !slices.Equal(t.Shape, p.Value.Shape()) || len(t.Data) != len(p.Data()):
			r.Mismatched = append(r.Mismatched, fmt.Sprintf("%s: file %v, model %v", p.Name, t.Shape, []int(p.Value.Shape())))
		default:
			copy(p.Data(), t.Data)
			r.Loaded++
		}
	}
	for name := range byName {
		if !used[name] {
			r.Unexpected = append(r.Unexpected, name)
		}
	}
	for _, l := range [][]string{r.Missing, r.Unexpected, r.Mismatched, r.Skipped} {
		slices.Sort(l)
	}
	return r
}
