package weights

import (
	"archive/zip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"slices"
	"strings"

	"github.com/segkit/segkit/internal/pickle"
)

// This file reads torch.save's two containers: the zip format (PyTorch ≥ 1.6: <archive>/data.pkl
// and one <archive>/data/<key> record per storage) and the legacy one (a magic-number pickle, a
// protocol pickle, a system-info pickle, the object's pickle, a pickle listing the storage keys,
// then per key an int64 element count and the raw elements). Tensors in the pickle name their
// storage by a persistent id; a storage's bytes are read only when a float tensor of the state
// dict needs them, after its declared size has been checked against the bytes the file holds.

// kind says what a storage's elements are to this package.
type kind int

const (
	kindFloat   kind = iota // read into a Tensor
	kindInteger             // listed in File.Integer (integer and bool tensors)
	kindOther               // complex: neither
)

type dtype struct {
	name string
	size int64
	kind kind
}

// storageTypes are the storage classes a persistent id names, by class name (in module torch,
// or torch.cuda in old files).
var storageTypes = map[string]dtype{
	"FloatStorage":         {"float32", 4, kindFloat},
	"HalfStorage":          {"float16", 2, kindFloat},
	"BFloat16Storage":      {"bfloat16", 2, kindFloat},
	"DoubleStorage":        {"float64", 8, kindFloat},
	"LongStorage":          {"int64", 8, kindInteger},
	"IntStorage":           {"int32", 4, kindInteger},
	"ShortStorage":         {"int16", 2, kindInteger},
	"CharStorage":          {"int8", 1, kindInteger},
	"ByteStorage":          {"uint8", 1, kindInteger},
	"BoolStorage":          {"bool", 1, kindInteger},
	"ComplexFloatStorage":  {"complex64", 8, kindOther},
	"ComplexDoubleStorage": {"complex128", 16, kindOther},
}

// storageType maps a persistent id's storage class to its element type. UntypedStorage (a
// storage saved on its own) holds bytes.
func storageType(v any) (dtype, error) {
	g, ok := v.(pickle.Global)
	if !ok {
		return dtype{}, fmt.Errorf("storage type is a %s", pickle.TypeName(v))
	}
	switch {
	case (g.Module == "torch" || g.Module == "torch.storage") && (g.Name == "UntypedStorage" || g.Name == "_UntypedStorage"):
		return dtype{"uint8", 1, kindInteger}, nil
	case g.Module == "torch" || g.Module == "torch.cuda":
		if dt, ok := storageTypes[g.Name]; ok {
			return dt, nil
		}
	}
	return dtype{}, fmt.Errorf("storage type %s is not supported", Quote(g.String()))
}

// storage is one storage a persistent id names. A legacy file can also name a view: a part of
// a root storage (base), starting baseOffset elements in.
type storage struct {
	key        string
	dtype      dtype
	numel      int64
	base       *storage
	baseOffset int64
}

// strided is what torch._utils._rebuild_tensor_v2 describes: a strided view of a storage.
type strided struct {
	storage      *storage
	offset       int64
	size, stride []int64
}

// torchFile is an opened torch.save file.
type torchFile struct {
	r        io.ReaderAt
	size     int64
	legacy   bool
	storages map[string]*storage // by key
	// zip format
	records map[string]*zip.File
	prefix  string // "<archive>/"
	// legacy format: where each root storage's elements start
	offsets map[string]int64
	// inflated is what the compressed storage records checked so far declare, together
	inflated int64
	counted  map[string]bool
}

// legacyMagic is the number the legacy format's first pickle holds.
var legacyMagic, _ = new(big.Int).SetString("1950a86a20f9469cfc6c", 16)

// openTorch reads a torch.save file's object, with tensors as *strided values.
func openTorch(r io.ReaderAt, size int64) (*torchFile, any, error) {
	var head [4]byte
	n, _ := r.ReadAt(head[:], 0)
	f := &torchFile{r: r, size: size, storages: map[string]*storage{}}
	switch {
	case size == 0:
		return nil, nil, errors.New("empty file")
	case n == 4 && string(head[:]) == "PK\x03\x04":
		obj, err := f.openZip()
		return f, obj, err
	case n >= 1 && head[0] == 0x80: // a pickle's PROTO opcode
		f.legacy = true
		obj, err := f.openLegacy()
		return f, obj, err
	}
	return nil, nil, errors.New("not a PyTorch file (neither torch.save's zip format nor its legacy pickle)")
}

func (f *torchFile) decoder(r io.Reader, limit int64) *pickle.Decoder {
	d := pickle.NewDecoder(r, limit)
	d.Funcs = torchFuncs
	d.PersistentLoad = f.persistentLoad
	return d
}

func (f *torchFile) openZip() (any, error) {
	zr, err := zip.NewReader(f.r, f.size)
	if err != nil {
		return nil, fmt.Errorf("not a readable PyTorch zip file: %w", err)
	}
	f.records = map[string]*zip.File{}
	for _, rec := range zr.File {
		f.records[rec.Name] = rec
		if f.prefix == "" && strings.Count(rec.Name, "/") == 1 && strings.HasSuffix(rec.Name, "/data.pkl") {
			f.prefix = strings.TrimSuffix(rec.Name, "data.pkl")
		}
	}
	if f.prefix == "" {
		return nil, errors.New("a zip file without <archive>/data.pkl: not written by torch.save")
	}
	if f.records[f.prefix+"constants.pkl"] != nil {
		return nil, errors.New("a TorchScript archive (torch.jit.save), not a torch.save file: load it in Python and torch.save its state_dict()")
	}
	// Every record's declared sizes are checked before any is inflated.
	for _, rec := range zr.File {
		if err := f.checkRecord(rec); err != nil {
			return nil, err
		}
	}
	if rec := f.records[f.prefix+"byteorder"]; rec != nil {
		order, err := f.readRecord(rec, 16)
		if err != nil {
			return nil, err
		}
		if string(order) != "little" {
			return nil, fmt.Errorf("saved with byte order %q: only little-endian files are supported", order)
		}
	}
	// The pickle is decoded as it is read, never held whole; a compressed one may declare no
	// more than the file's size, as a stored one can hold no more.
	rec := f.records[f.prefix+"data.pkl"]
	if rec.UncompressedSize64 > uint64(f.size) {
		return nil, fmt.Errorf("record %s: %d bytes, more than the %d expected", Quote(rec.Name), rec.UncompressedSize64, f.size)
	}
	rc, err := rec.Open()
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", Quote(rec.Name), err)
	}
	defer rc.Close()
	size := int64(rec.UncompressedSize64)
	lr := io.LimitReader(rc, size)
	obj, err := f.decoder(lr, size).Decode()
	if err != nil {
		return nil, fmt.Errorf("data.pkl: %w", err)
	}
	// Whatever follows the pickle is ignored, as torch.load does, but read for the CRC check.
	if _, err := io.Copy(io.Discard, lr); err != nil {
		return nil, fmt.Errorf("record %s: %w", Quote(rec.Name), err)
	}
	if err := atEOF(rc); err != nil {
		return nil, fmt.Errorf("record %s: %w", Quote(rec.Name), err)
	}
	return obj, nil
}

// maxInflate bounds the compressed storages' declared sizes together, as a multiple of the
// file's size: weights hardly compress (a re-zipped checkpoint shrinks by a few percent), so
// a claim far beyond the file is a zip bomb, refused before it is inflated.
const maxInflate = 16

// checkRecord checks that a zip record's declared sizes fit the file, so that reading it
// allocates no more than the file can hold.
func (f *torchFile) checkRecord(rec *zip.File) error {
	off, err := rec.DataOffset()
	if err != nil {
		return fmt.Errorf("record %s: %w", Quote(rec.Name), err)
	}
	if rec.CompressedSize64 > uint64(f.size) || off+int64(rec.CompressedSize64) > f.size {
		return fmt.Errorf("record %s runs past the end of the file", Quote(rec.Name))
	}
	switch rec.Method {
	case zip.Store: // what torch.save writes
		if rec.CompressedSize64 != rec.UncompressedSize64 {
			return fmt.Errorf("record %s: stored, yet %d bytes hold %d", Quote(rec.Name), rec.CompressedSize64, rec.UncompressedSize64)
		}
	case zip.Deflate: // a re-zipped file: deflate expands at most 1032-fold
		if rec.UncompressedSize64/1032 > rec.CompressedSize64+1 {
			return fmt.Errorf("record %s: %d compressed bytes cannot hold %d", Quote(rec.Name), rec.CompressedSize64, rec.UncompressedSize64)
		}
	default:
		return fmt.Errorf("record %s: compression method %d is not supported", Quote(rec.Name), rec.Method)
	}
	return nil
}

// readRecord reads a whole record of at most limit bytes, checking its CRC.
func (f *torchFile) readRecord(rec *zip.File, limit int64) ([]byte, error) {
	if err := f.checkRecord(rec); err != nil {
		return nil, err
	}
	if rec.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("record %s: %d bytes, more than the %d expected", Quote(rec.Name), rec.UncompressedSize64, limit)
	}
	rc, err := rec.Open()
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", Quote(rec.Name), err)
	}
	defer rc.Close()
	buf := make([]byte, rec.UncompressedSize64) // at most limit
	_, err = io.ReadFull(rc, buf)
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", Quote(rec.Name), err)
	}
	if err := atEOF(rc); err != nil {
		return nil, fmt.Errorf("record %s: %w", Quote(rec.Name), err)
	}
	return buf, nil
}

// atEOF reads past a record's end: archive/zip checks the CRC when it reaches EOF.
func atEOF(r io.Reader) error {
	var one [1]byte
	n, err := r.Read(one[:])
	if n == 0 && errors.Is(err, io.EOF) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return errors.New("longer than declared")
	}
	return err
}

func (f *torchFile) openLegacy() (any, error) {
	d := f.decoder(io.NewSectionReader(f.r, 0, f.size), f.size)
	magic, err := d.Decode()
	if err != nil {
		return nil, fmt.Errorf("legacy format: magic number: %w", err)
	}
	if m, ok := magic.(*big.Int); !ok || m.Cmp(legacyMagic) != 0 {
		return nil, errors.New("a pickle, but not torch.save's (no magic number)")
	}
	proto, err := d.Decode()
	if err != nil {
		return nil, fmt.Errorf("legacy format: protocol version: %w", err)
	}
	if proto != int64(1001) {
		return nil, fmt.Errorf("legacy format: protocol version %v is not supported (1001 is)", proto)
	}
	info, err := d.Decode()
	if err != nil {
		return nil, fmt.Errorf("legacy format: system info: %w", err)
	}
	if sys, ok := info.(*pickle.Dict); !ok {
		return nil, fmt.Errorf("legacy format: system info is a %s", pickle.TypeName(info))
	} else if le, _ := sys.Get("little_endian"); le != true {
		return nil, errors.New("legacy format: saved on a big-endian machine: not supported")
	}
	obj, err := d.Decode()
	if err != nil {
		return nil, fmt.Errorf("legacy format: %w", err)
	}
	keys, err := d.Decode()
	if err != nil {
		return nil, fmt.Errorf("legacy format: storage keys: %w", err)
	}
	list, ok := keys.(*pickle.List)
	if !ok {
		return nil, fmt.Errorf("legacy format: storage keys are a %s", pickle.TypeName(keys))
	}
	// The storages follow, in the order of the keys: find where each one's elements are,
	// checking every declared count against the bytes that remain.
	f.offsets = map[string]int64{}
	pos := d.Offset()
	for _, k := range list.Items {
		key, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("legacy format: a storage key is a %s", pickle.TypeName(k))
		}
		s := f.storages[key]
		if s == nil || s.base != nil {
			return nil, fmt.Errorf("storage %s: listed, but the pickle does not name it", Quote(key))
		}
		if _, dup := f.offsets[key]; dup {
			return nil, fmt.Errorf("storage %s: listed twice", Quote(key))
		}
		var count [8]byte
		if pos > f.size-8 {
			return nil, fmt.Errorf("storage %s: the file ends before its data: %w", Quote(key), io.ErrUnexpectedEOF)
		}
		if _, err := f.r.ReadAt(count[:], pos); err != nil {
			return nil, fmt.Errorf("storage %s: %w", Quote(key), err)
		}
		n := int64(binary.LittleEndian.Uint64(count[:]))
		if n != s.numel {
			return nil, fmt.Errorf("storage %s: %d elements in the file, %d in the pickle", Quote(key), n, s.numel)
		}
		pos += 8
		if left := f.size - pos; n > left/s.dtype.size {
			return nil, fmt.Errorf("storage %s: %d %s elements (%d bytes each) declared, %d bytes remain", Quote(key), n, s.dtype.name, s.dtype.size, left)
		}
		f.offsets[key] = pos
		pos += n * s.dtype.size
	}
	return obj, nil
}

// persistentLoad resolves a pickle's persistent id: ('storage', type, key, location, numel)
// in the zip format, plus a view (None or (view_key, offset, numel)) in the legacy one.
func (f *torchFile) persistentLoad(pid any) (any, error) {
	t, ok := pid.(pickle.Tuple)
	if !ok || len(t) == 0 {
		return nil, fmt.Errorf("persistent id is a %s, not a tuple", pickle.TypeName(pid))
	}
	if t[0] == "module" && f.legacy && len(t) >= 2 { // a whole model's class (with its source)
		return t[1], nil
	}
	if t[0] != "storage" || len(t) != 5 && !f.legacy || len(t) != 6 && f.legacy {
		return nil, fmt.Errorf("persistent id %s is not a storage", brief(t[0]))
	}
	dt, err := storageType(t[1])
	if err != nil {
		return nil, err
	}
	key, ok1 := t[2].(string)
	numel, ok2 := t[4].(int64)
	if !ok1 || !ok2 || numel < 0 {
		return nil, fmt.Errorf("storage persistent id (%s, %s)", pickle.TypeName(t[2]), brief(t[4]))
	}
	s, err := f.storage(key, dt, numel, nil, 0)
	if err != nil || !f.legacy || t[5] == nil {
		return s, err
	}
	view, ok := t[5].(pickle.Tuple)
	if !ok || len(view) != 3 {
		return nil, fmt.Errorf("storage %s: view %s", Quote(key), pickle.TypeName(t[5]))
	}
	vkey, ok1 := view[0].(string)
	off, ok2 := view[1].(int64)
	vn, ok3 := view[2].(int64)
	if !ok1 || !ok2 || !ok3 || off < 0 || vn < 0 || off > numel || vn > numel-off {
		return nil, fmt.Errorf("storage %s: view %s of %d elements", Quote(key), brief(view), numel)
	}
	return f.storage(vkey, dt, vn, s, off)
}

// storage returns the storage of a key, the same each time the key comes back.
func (f *torchFile) storage(key string, dt dtype, numel int64, base *storage, off int64) (*storage, error) {
	if s := f.storages[key]; s != nil {
		if s.dtype != dt || s.numel != numel || s.base != base || s.baseOffset != off {
			return nil, fmt.Errorf("storage %s: named twice, as %d %s and as %d %s", Quote(key), s.numel, s.dtype.name, numel, dt.name)
		}
		return s, nil
	}
	s := &storage{key: key, dtype: dt, numel: numel, base: base, baseOffset: off}
	f.storages[key] = s
	return s, nil
}

// torchFuncs are the torch callables a state dict's pickle calls.
var torchFuncs = map[pickle.Global]pickle.Func{}

func init() {
	u := func(name string) pickle.Global { return pickle.Global{Module: "torch._utils", Name: name} }
	torchFuncs[u("_rebuild_tensor_v2")] = rebuildTensor
	torchFuncs[u("_rebuild_tensor")] = rebuildTensor
	param := func(args pickle.Tuple) (any, error) { // the Parameter's tensor is what we read
		if len(args) == 0 {
			return nil, errors.New("_rebuild_parameter without arguments")
		}
		return args[0], nil
	}
	torchFuncs[u("_rebuild_parameter")] = param
	torchFuncs[u("_rebuild_parameter_with_state")] = param
	torchFuncs[u("_rebuild_from_type_v2")] = func(args pickle.Tuple) (any, error) {
		// (func, tensor subclass, args, state): the tensor is func(*args); the subclass is dropped
		if len(args) != 4 {
			return nil, fmt.Errorf("_rebuild_from_type_v2 with %d arguments", len(args))
		}
		g, ok1 := args[0].(pickle.Global)
		inner, ok2 := args[2].(pickle.Tuple)
		fn := torchFuncs[g]
		if !ok1 || !ok2 || fn == nil || g == u("_rebuild_from_type_v2") {
			return &pickle.Object{Module: "torch._utils", Name: "_rebuild_from_type_v2", Args: args}, nil
		}
		return fn(inner)
	}
}

// rebuildTensor is _rebuild_tensor_v2(storage, offset, size, stride, requires_grad,
// backward_hooks[, metadata]) (and the older _rebuild_tensor, with the first four).
func rebuildTensor(args pickle.Tuple) (any, error) {
	if len(args) < 4 {
		return nil, fmt.Errorf("_rebuild_tensor with %d arguments", len(args))
	}
	s, ok := args[0].(*storage)
	if !ok {
		return nil, fmt.Errorf("_rebuild_tensor of a %s, not a storage", pickle.TypeName(args[0]))
	}
	off, ok := args[1].(int64)
	size, ok2 := ints(args[2])
	stride, ok3 := ints(args[3])
	if !ok || !ok2 || !ok3 {
		return nil, fmt.Errorf("_rebuild_tensor offset, size, stride (%s, %s, %s)",
			pickle.TypeName(args[1]), pickle.TypeName(args[2]), pickle.TypeName(args[3]))
	}
	return &strided{storage: s, offset: off, size: size, stride: stride}, nil
}

func ints(v any) ([]int64, bool) {
	t, ok := v.(pickle.Tuple)
	if !ok {
		return nil, false
	}
	out := make([]int64, len(t))
	for i, x := range t {
		if out[i], ok = x.(int64); !ok {
			return nil, false
		}
	}
	return out, true
}

// view checks a tensor's view of its storage: its element count, whether it reads the
// storage contiguously in row-major order, and that every element it reads is in the storage.
func (t *strided) view() (n int64, contiguous bool, err error) {
	numel := t.storage.numel
	if len(t.size) != len(t.stride) {
		return 0, false, fmt.Errorf("%d sizes and %d strides", len(t.size), len(t.stride))
	}
	n = 1
	for _, d := range t.size {
		if d < 0 {
			return 0, false, fmt.Errorf("size %s", brief(t.size))
		}
		if d == 0 {
			n = 0
		}
	}
	for _, d := range t.size {
		if n != 0 && n > math.MaxInt64/d {
			return 0, false, fmt.Errorf("size %s: too many elements", brief(t.size))
		}
		n *= d
	}
	if n > numel {
		return 0, false, fmt.Errorf("a view of %d elements (size %s) on a storage of %d", n, brief(t.size), numel)
	}
	if t.offset < 0 || t.offset > numel {
		return 0, false, fmt.Errorf("offset %d in a storage of %d elements", t.offset, numel)
	}
	if n == 0 {
		return 0, true, nil
	}
	last, want := t.offset, int64(1)
	contiguous = true
	for i := len(t.size) - 1; i >= 0; i-- {
		d, s := t.size[i], t.stride[i]
		if s < 0 {
			return 0, false, fmt.Errorf("negative stride %s", brief(t.stride))
		}
		if d > 1 {
			if s > (math.MaxInt64-last)/(d-1) {
				return 0, false, fmt.Errorf("stride %s reads past its storage of %d elements", brief(t.stride), numel)
			}
			last += (d - 1) * s
			contiguous = contiguous && s == want
		}
		want *= d
	}
	if last >= numel {
		return 0, false, fmt.Errorf("size %s, stride %s and offset %d read element %d of a storage of %d",
			brief(t.size), brief(t.stride), t.offset, last, numel)
	}
	return n, contiguous, nil
}

// root returns the root storage a storage is part of, and where in it the storage starts.
func (s *storage) root() (*storage, int64) {
	if s.base != nil {
		return s.base, s.baseOffset
	}
	return s, 0
}

// check checks that a root storage's elements are in the file, without reading them.
func (f *torchFile) check(s *storage) error {
	if s.numel > math.MaxInt64/s.dtype.size {
		return fmt.Errorf("storage %s: %d elements", Quote(s.key), s.numel)
	}
	want := s.numel * s.dtype.size
	if f.legacy {
		if _, ok := f.offsets[s.key]; !ok {
			return fmt.Errorf("storage %s: its data is not in the file", Quote(s.key))
		}
		return nil // counts checked in openLegacy
	}
	name := f.prefix + "data/" + s.key
	rec := f.records[name]
	if rec == nil {
		return fmt.Errorf("storage %s: no record %s", Quote(s.key), Quote(name))
	}
	if rec.UncompressedSize64 != uint64(want) {
		return fmt.Errorf("storage %s: %d %s elements (%d bytes) declared, its record holds %d bytes",
			Quote(s.key), s.numel, s.dtype.name, want, rec.UncompressedSize64)
	}
	if err := f.checkRecord(rec); err != nil {
		return err
	}
	if rec.Method != zip.Store && !f.counted[name] {
		if f.counted == nil {
			f.counted = map[string]bool{}
		}
		f.counted[name] = true
		if f.inflated += want; f.inflated > maxInflate*f.size+1<<20 {
			return fmt.Errorf("storage %s: the compressed storages declare %d bytes, more than %d times the file's %d",
				Quote(s.key), f.inflated, maxInflate, f.size)
		}
	}
	return nil
}

// floats reads a root storage's elements as float32, in chunks (the raw bytes are never all in
// memory at once). check has been called.
func (f *torchFile) floats(s *storage) ([]float32, error) {
	var r io.Reader
	grow := int64(0) // elements to allocate at first: all of them, but for compressed records
	if f.legacy {
		r = io.NewSectionReader(f.r, f.offsets[s.key], s.numel*s.dtype.size)
	} else {
		rc, err := f.records[f.prefix+"data/"+s.key].Open()
		if err != nil {
			return nil, fmt.Errorf("storage %s: %w", Quote(s.key), err)
		}
		defer rc.Close()
		r = rc
		if f.records[f.prefix+"data/"+s.key].Method != zip.Store { // declared sizes may lie
			grow = min(s.numel, 1<<20)
		}
	}
	if grow == 0 {
		grow = s.numel
	}
	out := make([]float32, 0, grow)
	size := s.dtype.size
	buf := make([]byte, 64<<10)
	for done := int64(0); done < s.numel; {
		n := min(int64(len(buf))/size, s.numel-done)
		b := buf[:n*size]
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, fmt.Errorf("storage %s: %w", Quote(s.key), err)
		}
		out = slices.Grow(out, int(n))[:done+n]
		dst := out[done:]
		switch s.dtype.name {
		case "float32":
			for i := range dst {
				dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			}
		case "float16":
			for i := range dst {
				dst[i] = math.Float32frombits(pickle.HalfToFloat32Bits(binary.LittleEndian.Uint16(b[2*i:])))
			}
		case "bfloat16":
			for i := range dst {
				dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
			}
		case "float64":
			for i := range dst {
				dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
			}
		default:
			return nil, fmt.Errorf("storage %s: %s is not a float type", Quote(s.key), s.dtype.name)
		}
		done += n
	}
	if !f.legacy {
		if err := atEOF(r); err != nil {
			return nil, fmt.Errorf("storage %s: %w", Quote(s.key), err)
		}
	}
	return out, nil
}

// gather copies a strided view's elements from its storage's data, in row-major order.
func (t *strided) gather(data []float32, base int64, n int64) []float32 {
	out := make([]float32, n)
	idx := make([]int64, len(t.size))
	for i := range out {
		off := base + t.offset
		for k, v := range idx {
			off += v * t.stride[k]
		}
		out[i] = data[off]
		for k := len(idx) - 1; k >= 0; k-- { // next index, row-major
			if idx[k]++; idx[k] < t.size[k] {
				break
			}
			idx[k] = 0
		}
	}
	return out
}
