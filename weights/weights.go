// Package weights reads model weights saved by PyTorch (torch.save of a state_dict or of a
// training checkpoint holding one, .pth/.pt) or as .safetensors, and loads them into a model's
// parameters by name, reporting what did not fit.
//
// PyTorch files are read by this package itself (torch.go, with internal/pickle): any class a
// checkpoint's metadata pickles is kept as an opaque value rather than an error, and no storage
// is allocated before its declared size has been checked against the bytes the file holds.
package weights

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nlpodyssey/safetensors"

	"github.com/segkit/segkit/internal/pickle"
	"github.com/segkit/segkit/nn"
)

// Tensor is a float tensor from a weights file, as float32, in row-major order. Tensors that
// are views of one storage in the file may share Data.
type Tensor struct {
	Shape []int
	Data  []float32
}

// File is what a weights file holds.
type File struct {
	// Tensors are the state dict's float tensors (float32, float16, bfloat16, float64), by
	// name as stored.
	Tensors map[string]Tensor
	// Integer names the state dict's integer and bool tensors (num_batches_tracked, say),
	// sorted: they are not read.
	Integer []string
	// Container says what held the state dict:
	//   "state_dict"  the file is the state dict itself (torch.save(model.state_dict()))
	//   "checkpoint"  a dict holding it under "state_dict" or "model", nothing else recognized
	//   "mmcv"        mmcv/mmseg 0.x: {meta, state_dict[, optimizer]}
	//   "mmengine"    mmengine/mmseg 1.x: {meta, state_dict, message_hub, ...}
	//   "official"    HRNet-Semantic-Segmentation's resume file: {epoch, best_mIoU, state_dict, ...}
	//   "safetensors" a .safetensors file
	Container string
	// Classes and Palette are the dataset's, from an mmseg checkpoint's meta (CLASSES and
	// PALETTE in 0.x, dataset_meta's classes and palette in 1.x); nil when absent or not in
	// that form (a list of names; a list of [r, g, b] in 0–255).
	Classes []string
	Palette [][3]uint8
}

// Load reads a weights file's float tensors: .safetensors, or a PyTorch file holding a
// state_dict (directly or under "state_dict" or "model", as training checkpoints do).
func Load(path string) (map[string]Tensor, error) {
	f, err := Read(path)
	if err != nil {
		return nil, err
	}
	return f.Tensors, nil
}

// Read reads a weights file: .safetensors (by its extension), else a torch.save file (zip
// format or legacy). A file without float tensors is an error. Errors name the file.
func Read(path string) (*File, error) {
	out, err := read(path)
	if err == nil && len(out.Tensors) == 0 {
		err = errors.New("no float tensors")
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

func read(path string) (*File, error) {
	if strings.EqualFold(filepath.Ext(path), ".safetensors") {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		return readSafetensors(raw)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return readTorch(f, st.Size())
}

func readSafetensors(raw []byte) (out *File, err error) {
	defer func() { // a third-party decoder: a malformed file must be an error, whatever it does
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("not a valid safetensors file (%v)", r)
		}
	}()
	st, err := safetensors.Deserialize(raw)
	if err != nil {
		return nil, fmt.Errorf("not a valid safetensors file: %w", err)
	}
	out = &File{Tensors: map[string]Tensor{}, Container: "safetensors"}
	for _, nt := range st.Tensors() {
		tv := nt.TensorView
		shape := make([]int, len(tv.Shape()))
		n := 1
		for i, d := range tv.Shape() {
			shape[i] = int(d)
			n *= int(d)
		}
		var data []float32
		b := tv.Data()
		size := map[safetensors.DType]int{safetensors.F32: 4, safetensors.F64: 8, safetensors.F16: 2, safetensors.BF16: 2}[tv.DType()]
		if size == 0 {
			out.Integer = append(out.Integer, nt.Name)
			continue
		}
		if len(b) != n*size {
			return nil, fmt.Errorf("tensor %s: shape %s in %d bytes", Quote(nt.Name), brief(shape), len(b))
		}
		data = make([]float32, n)
		for i := range data {
			switch tv.DType() {
			case safetensors.F32:
				data[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			case safetensors.F64:
				data[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
			case safetensors.F16:
				data[i] = math.Float32frombits(pickle.HalfToFloat32Bits(binary.LittleEndian.Uint16(b[2*i:])))
			case safetensors.BF16:
				data[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
			}
		}
		out.Tensors[nt.Name] = Tensor{Shape: shape, Data: data}
	}
	slices.Sort(out.Integer)
	return out, nil
}

// readTorch reads a torch.save file's state dict and metadata.
func readTorch(r io.ReaderAt, size int64) (*File, error) {
	tf, root, err := openTorch(r, size)
	if err != nil {
		return nil, err
	}
	sd, container, top, err := findStateDict(root)
	if err != nil {
		return nil, err
	}
	out := &File{Tensors: map[string]Tensor{}, Container: container}
	if top != nil {
		out.Classes, out.Palette = readMeta(top)
	}
	type entry struct {
		name       string
		t          *strided
		n          int64
		contiguous bool
	}
	var floats []entry
	roots := map[*storage]bool{}
	var held int64 // elements of the float storages: what the file holds for Tensors
	for i, k := range sd.Keys {
		name, ok := k.(string)
		if !ok {
			continue
		}
		switch v := sd.Values[i].(type) {
		case *strided:
			n, contiguous, err := v.view()
			if err != nil {
				return nil, fmt.Errorf("tensor %s: %w", Quote(name), err)
			}
			root, _ := v.storage.root()
			if err := tf.check(root); err != nil {
				return nil, fmt.Errorf("tensor %s: %w", Quote(name), err)
			}
			switch v.storage.dtype.kind {
			case kindFloat:
				floats = append(floats, entry{name, v, n, contiguous})
				if !roots[root] {
					roots[root] = true
					held += root.numel
				}
			case kindInteger:
				out.Integer = append(out.Integer, name)
			}
		case *pickle.Object:
			if strings.HasPrefix(v.Module, "torch") && strings.HasPrefix(v.Name, "_rebuild") {
				return nil, fmt.Errorf("tensor %s: rebuilt by %s.%s, which this reader does not support", Quote(name), Quote(v.Module), Quote(v.Name))
			}
		}
	}
	slices.Sort(out.Integer)
	// Strided views are copied: all the copies together may not exceed what the file holds,
	// or a small file could have many views of one storage copied over and over.
	var copies int64
	data := map[*storage][]float32{}
	for _, e := range floats {
		root, base := e.t.storage.root()
		if data[root] == nil {
			d, err := tf.floats(root)
			if err != nil {
				return nil, fmt.Errorf("tensor %s: %w", Quote(e.name), err)
			}
			data[root] = d
		}
		shape := make([]int, len(e.t.size))
		for i, d := range e.t.size {
			shape[i] = int(d)
		}
		start := base + e.t.offset
		if e.contiguous {
			out.Tensors[e.name] = Tensor{Shape: shape, Data: data[root][start : start+e.n : start+e.n]}
			continue
		}
		if copies += e.n; copies > held {
			return nil, fmt.Errorf("tensor %s: strided views copy more elements than the file's storages hold (%d)", Quote(e.name), held)
		}
		out.Tensors[e.name] = Tensor{Shape: shape, Data: e.t.gather(data[root], base, e.n)}
	}
	return out, nil
}

// findStateDict finds the state dict in what torch.load returns, says what held it, and
// returns the top-level dict when it was a checkpoint (for its meta).
func findStateDict(root any) (sd *pickle.Dict, container string, top *pickle.Dict, err error) {
	d, ok := root.(*pickle.Dict)
	if !ok {
		if o, ok := root.(*pickle.Object); ok {
			return nil, "", nil, fmt.Errorf("holds a %s object, not a state_dict (a whole model? save model.state_dict() instead)", Quote(o.Module+"."+o.Name))
		}
		return nil, "", nil, fmt.Errorf("holds a %s, not a state_dict", pickle.TypeName(root))
	}
	inner := func(d *pickle.Dict) *pickle.Dict {
		for _, key := range []string{"state_dict", "model"} {
			if v, ok := d.Get(key); ok {
				if sd, ok := v.(*pickle.Dict); ok {
					return sd
				}
			}
		}
		return nil
	}
	sd = inner(d)
	if sd == nil {
		return d, "state_dict", nil, nil
	}
	has := func(key string) bool { _, ok := d.Get(key); return ok }
	switch {
	case has("message_hub"):
		container = "mmengine"
	case has("meta"):
		container = "mmcv"
	case has("best_mIoU"):
		container = "official"
	default:
		container = "checkpoint"
	}
	for range 4 { // {"model": {"state_dict": ...}} and the like
		next := inner(sd)
		if next == nil {
			break
		}
		sd = next
	}
	return sd, container, d, nil
}

// readMeta reads an mmseg checkpoint's classes and palette.
func readMeta(top *pickle.Dict) ([]string, [][3]uint8) {
	get := func(d *pickle.Dict, key string) any {
		if d == nil {
			return nil
		}
		v, _ := d.Get(key)
		return v
	}
	meta, _ := get(top, "meta").(*pickle.Dict)
	classes, palette := get(meta, "CLASSES"), get(meta, "PALETTE")
	if ds, ok := get(meta, "dataset_meta").(*pickle.Dict); ok {
		if classes == nil {
			classes = get(ds, "classes")
		}
		if palette == nil {
			palette = get(ds, "palette")
		}
	}
	return names(classes), colors(palette)
}

// sequence returns a list's, tuple's or 1-D object array's items.
func sequence(v any) ([]any, bool) {
	switch v := v.(type) {
	case pickle.Tuple:
		return v, true
	case *pickle.List:
		return v.Items, true
	case *pickle.NDArray:
		if v.Items != nil {
			return v.Items, len(v.Shape) == 1
		}
	}
	return nil, false
}

func names(v any) []string {
	items, ok := sequence(v)
	if !ok {
		return nil
	}
	out := make([]string, len(items))
	for i, x := range items {
		if out[i], ok = x.(string); !ok {
			return nil
		}
	}
	return out
}

// maxColors bounds a palette read: labels are bytes, so more colours are not a palette (and
// decoding a forged array of millions would take tens of bytes each).
const maxColors = 256

func colors(v any) [][3]uint8 {
	var rows [][]int64
	if a, ok := v.(*pickle.NDArray); ok && a.Items == nil {
		if len(a.Shape) != 2 || a.Shape[1] != 3 || a.Shape[0] > maxColors {
			return nil
		}
		flat, err := a.Int64s()
		if err != nil {
			return nil
		}
		for i := 0; i < len(flat); i += 3 {
			rows = append(rows, flat[i:i+3])
		}
	} else {
		items, ok := sequence(v)
		if !ok || len(items) > maxColors {
			return nil
		}
		for _, item := range items {
			var row []int64
			if a, ok := item.(*pickle.NDArray); ok && a.Items == nil {
				row, _ = a.Int64s()
			} else if xs, ok := sequence(item); ok {
				for _, x := range xs {
					n, ok := x.(int64)
					if !ok {
						return nil
					}
					row = append(row, n)
				}
			}
			rows = append(rows, row)
		}
	}
	out := make([][3]uint8, len(rows))
	for i, row := range rows {
		if len(row) != 3 {
			return nil
		}
		for j, c := range row {
			if c < 0 || c > 255 {
				return nil
			}
			out[i][j] = uint8(c)
		}
	}
	return out
}

// Quote returns a name from a file as a message shows it: as it is when short and printable,
// else quoted and cut, so that a forged file's names cannot make a message long.
func Quote(name string) string { return pickle.Brief(name) }

func brief(v any) string { return pickle.Brief(v) }

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
			fmt.Fprintf(&b, "; %d %s: %s", len(part.names), part.what, listed(part.names))
		}
	}
	return b.String()
}

// listed joins names for a message, the first 10 only (a forged file can have any number).
func listed(names []string) string {
	const most = 10
	parts := make([]string, 0, most+1)
	for _, n := range names[:min(len(names), most)] {
		parts = append(parts, Quote(n))
	}
	if len(names) > most {
		parts = append(parts, fmt.Sprintf("… %d more", len(names)-most))
	}
	return strings.Join(parts, ", ")
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
