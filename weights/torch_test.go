package weights

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segkit/segkit/internal/pickle"
)

// The fixtures make_checkpoints.py wrote, and what PyTorch read from them.
var fixtures = []string{"mmcv_legacy.pth", "mmengine_zip.pth", "official_p4.pth"}

type fixtureSpec struct {
	Tensors map[string]struct {
		Shape      []int
		Dtype      string
		Contiguous bool
		Values     []float64
	}
	Integer   []string
	Classes   []string
	Palette   [][3]uint8
	Container string
	Size      int64
}

func readSpecs(t testing.TB) map[string]fixtureSpec {
	raw, err := os.ReadFile(filepath.Join("testdata", "checkpoints.json"))
	if err != nil {
		t.Fatal(err)
	}
	var specs map[string]fixtureSpec
	if err := json.Unmarshal(raw, &specs); err != nil {
		t.Fatal(err)
	}
	return specs
}

// Each fixture reads as PyTorch reads it: every float tensor's shape and values (float16,
// bfloat16, float64, transposed and offset views), the integer tensors' names, the container,
// classes and palette.
func TestCheckpoints(t *testing.T) {
	specs := readSpecs(t)
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			spec := specs[name]
			f, err := Read(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			if f.Container != spec.Container {
				t.Errorf("container %q, want %q", f.Container, spec.Container)
			}
			if !slices.Equal(f.Classes, spec.Classes) || !reflect.DeepEqual(f.Palette, spec.Palette) {
				t.Errorf("classes %q palette %v, want %q %v", f.Classes, f.Palette, spec.Classes, spec.Palette)
			}
			if !slices.Equal(f.Integer, spec.Integer) {
				t.Errorf("integer tensors %q, want %q", f.Integer, spec.Integer)
			}
			if len(f.Tensors) != len(spec.Tensors) {
				t.Errorf("%d tensors, want %d", len(f.Tensors), len(spec.Tensors))
			}
			for tname, want := range spec.Tensors {
				got, ok := f.Tensors[tname]
				if !ok {
					t.Errorf("no %s", tname)
					continue
				}
				if !slices.Equal(got.Shape, want.Shape) || len(got.Data) != len(want.Values) {
					t.Errorf("%s: shape %v, %d values; want %v, %d", tname, got.Shape, len(got.Data), want.Shape, len(want.Values))
					continue
				}
				for i, v := range want.Values {
					if float64(got.Data[i]) != v {
						t.Errorf("%s (%s): element %d is %v, want %v", tname, want.Dtype, i, got.Data[i], v)
						break
					}
				}
			}
			// Load is Read's tensors.
			tensors, err := Load(filepath.Join("testdata", name))
			if err != nil || !reflect.DeepEqual(tensors, f.Tensors) {
				t.Errorf("Load: %v", err)
			}
		})
	}
	// The non-contiguous cases are there.
	legacy := specs["mmcv_legacy.pth"].Tensors
	if legacy["decode_head.transposed"].Contiguous || legacy["decode_head.column"].Contiguous {
		t.Error("the fixture lost its strided views")
	}
}

// mmengine's message_hub pickles classes this package cannot know (HistoryBuffer): they are
// kept as opaque objects with their state, numpy arrays included.
func TestUnknownClassesKept(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "mmengine_zip.pth"))
	if err != nil {
		t.Fatal(err)
	}
	_, root, err := openTorch(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	get := func(v any, key string) any {
		d, ok := v.(*pickle.Dict)
		if !ok {
			t.Fatalf("%s: in a %s", key, pickle.TypeName(v))
		}
		x, _ := d.Get(key)
		return x
	}
	hb, ok := get(get(get(root, "message_hub"), "log_scalars"), "train/loss").(*pickle.Object)
	if !ok || hb.Module != "mmengine.logging.history_buffer" || hb.Name != "HistoryBuffer" {
		t.Fatalf("HistoryBuffer is %#v", hb)
	}
	log, ok := get(hb.State, "_log_history").(*pickle.NDArray)
	if !ok {
		t.Fatalf("_log_history is a %s", pickle.TypeName(get(hb.State, "_log_history")))
	}
	if v, err := log.Float64s(); err != nil || !slices.Equal(v, []float64{0.5, 0.25}) {
		t.Errorf("_log_history = %v, %v", v, err)
	}
	if get(hb.State, "max_length") != int64(3) || get(get(root, "meta"), "seed") != int64(42) {
		t.Error("max_length or the numpy seed did not decode")
	}
}

// Pickle and file builders for forged files.

// pk assembles pickle bytes from strings, bytes and single-byte ints.
func pk(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch p := p.(type) {
		case string:
			b = append(b, p...)
		case []byte:
			b = append(b, p...)
		case int:
			b = append(b, byte(p))
		}
	}
	return b
}

func pstr(s string) []byte { return pk("X", binary.LittleEndian.AppendUint32(nil, uint32(len(s))), s) }

func pint(v int64) []byte { return pk(0x8a, 8, binary.LittleEndian.AppendUint64(nil, uint64(v))) }

func ptuple(vs ...int64) []byte {
	b := pk("(")
	for _, v := range vs {
		b = append(b, pint(v)...)
	}
	return append(b, 't')
}

// pidZip is a zip-format persistent id; pidLegacy a legacy one, view nil or a pickled tuple.
func pidZip(typ, key string, numel int64) []byte {
	return pk("(", pstr("storage"), "ctorch\n"+typ+"\n", pstr(key), pstr("cpu"), pint(numel), "tQ")
}

func pidLegacy(typ, key string, numel int64, view []byte) []byte {
	if view == nil {
		view = []byte("N")
	}
	return pk("(", pstr("storage"), "ctorch\n"+typ+"\n", pstr(key), pstr("cpu"), pint(numel), view, "tQ")
}

// rebuild is _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()).
func rebuild(pid []byte, offset int64, size, stride []int64) []byte {
	return pk("ctorch._utils\n_rebuild_tensor_v2\n(", pid, pint(offset), ptuple(size...), ptuple(stride...),
		0x89, "ccollections\nOrderedDict\n)R", "tR")
}

// stateDict is a protocol-2 pickle of {name: value, ...} (names and pickled values alternating).
func stateDict(kv ...[]byte) []byte {
	b := pk(0x80, 2, "}(")
	for _, x := range kv {
		b = append(b, x...)
	}
	return append(b, "u."...)
}

type record struct {
	name string
	data []byte
}

func zipFile(t testing.TB, records ...record) []byte {
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	for _, r := range records {
		f, err := w.CreateHeader(&zip.FileHeader{Name: r.name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		f.Write(r.data)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func floatsLE(vs ...float32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

// legacyFile writes the legacy format: magic, protocol, system info, main, keys, storages
// (each an element count and its bytes).
func legacyFile(main []byte, keys []string, counts []int64, data [][]byte) []byte {
	b := pk(0x80, 2, 0x8a, 10, []byte{0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19}, ".")
	b = append(b, pk(0x80, 2, "M", 0xe9, 3, ".")...)
	b = append(b, pk(0x80, 2, "}(", pstr("little_endian"), 0x88, "u.")...)
	b = append(b, main...)
	b = append(b, pk(0x80, 2, "](")...)
	for _, k := range keys {
		b = append(b, pstr(k)...)
	}
	b = append(b, "e."...)
	for i := range keys {
		b = binary.LittleEndian.AppendUint64(b, uint64(counts[i]))
		b = append(b, data[i]...)
	}
	return b
}

func readBytes(data []byte) (*File, error) {
	return readTorch(bytes.NewReader(data), int64(len(data)))
}

// The builders make files the reader reads: the forged files below differ only where they say.
func TestForgedBaseline(t *testing.T) {
	zf := zipFile(t, record{"a/data.pkl", stateDict(pstr("w"), rebuild(pidZip("FloatStorage", "0", 4), 1, []int64{2}, []int64{2}))},
		record{"a/data/0", floatsLE(1, 2, 3, 4)})
	lf := legacyFile(stateDict(pstr("w"), rebuild(pidLegacy("FloatStorage", "7", 4, nil), 1, []int64{2}, []int64{2})),
		[]string{"7"}, []int64{4}, [][]byte{floatsLE(1, 2, 3, 4)})
	// A legacy storage view: elements 1–3 of the root storage, as torch < 0.4 saved them.
	lv := legacyFile(stateDict(pstr("w"), rebuild(pidLegacy("FloatStorage", "7", 4, pk("(", pstr("v"), pint(1), pint(3), "t")), 1, []int64{2}, []int64{1})),
		[]string{"7"}, []int64{4}, [][]byte{floatsLE(1, 2, 3, 4)})
	for name, c := range map[string]struct {
		file []byte
		want []float32
	}{"zip": {zf, []float32{2, 4}}, "legacy": {lf, []float32{2, 4}}, "legacy view": {lv, []float32{3, 4}}} {
		f, err := readBytes(c.file)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		} else if w := f.Tensors["w"]; !slices.Equal(w.Data, c.want) || !slices.Equal(w.Shape, []int{2}) {
			t.Errorf("%s: w = %+v, want %v", name, w, c.want)
		}
	}
}

// A file declaring a storage of 2^40 elements is refused, naming the storage, without
// allocating for it.
func TestHugeStorageRefused(t *testing.T) {
	const huge = int64(1) << 40
	main := stateDict(pstr("w"), rebuild(pidZip("FloatStorage", "0", huge), 0, []int64{huge}, []int64{1}))
	lmain := stateDict(pstr("w"), rebuild(pidLegacy("FloatStorage", "big", huge, nil), 0, []int64{huge}, []int64{1}))
	// A zip record whose header also claims 2^42 bytes (written raw: its data is 16 bytes).
	var lying bytes.Buffer
	zw := zip.NewWriter(&lying)
	f, _ := zw.CreateHeader(&zip.FileHeader{Name: "a/data.pkl", Method: zip.Store})
	f.Write(main)
	raw, err := zw.CreateRaw(&zip.FileHeader{Name: "a/data/0", Method: zip.Store, CompressedSize64: uint64(huge * 4), UncompressedSize64: uint64(huge * 4)})
	if err != nil {
		t.Fatal(err)
	}
	raw.Write(floatsLE(1, 2, 3, 4))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		file []byte
		want string
	}{
		{"zip", zipFile(t, record{"a/data.pkl", main}, record{"a/data/0", floatsLE(1, 2, 3, 4)}), "storage 0: 1099511627776 float32 elements (4398046511104 bytes) declared, its record holds 16 bytes"},
		{"zip record lies", lying.Bytes(), "record a/data/0 runs past the end of the file"},
		{"legacy", legacyFile(lmain, []string{"big"}, []int64{huge}, [][]byte{floatsLE(1, 2, 3, 4)}), "storage big: 1099511627776 float32 elements (4 bytes each) declared, 16 bytes remain"},
		{"legacy count differs", legacyFile(lmain, []string{"big"}, []int64{4}, [][]byte{floatsLE(1, 2, 3, 4)}), "storage big: 4 elements in the file, 1099511627776 in the pickle"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, err := readBytes(c.file)
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want %q", err, c.want)
			}
			if d := after.TotalAlloc - before.TotalAlloc; d > 64<<20 {
				t.Errorf("allocated %d MiB to refuse it", d>>20)
			}
			if took > 2*time.Second {
				t.Errorf("took %v to refuse it", took)
			}
		})
	}
}

// Views that read outside their storage, or have more elements than it, are refused.
func TestBadViews(t *testing.T) {
	data := record{"a/data/0", floatsLE(1, 2, 3, 4)}
	for _, c := range []struct {
		name           string
		offset         int64
		size, stride   []int64
		want           string
		numel          int64
		storageRecords []record
	}{
		{name: "more elements than the storage", size: []int64{5}, stride: []int64{1}, want: "a view of 5 elements (size [5]) on a storage of 4"},
		{name: "stride 0 expanding", size: []int64{2, 4}, stride: []int64{0, 1}, want: "a view of 8 elements"},
		{name: "reads past the end", offset: 2, size: []int64{3}, stride: []int64{1}, want: "read element 4 of a storage of 4"},
		{name: "huge stride", size: []int64{2}, stride: []int64{math.MaxInt64}, want: "read element 9223372036854775807 of a storage of 4"},
		{name: "overflowing stride", offset: 1, size: []int64{2}, stride: []int64{math.MaxInt64}, want: "reads past its storage"},
		{name: "negative stride", size: []int64{2}, stride: []int64{-1}, want: "negative stride"},
		{name: "negative size", size: []int64{-2}, stride: []int64{1}, want: "size [-2]"},
		{name: "overflowing size", size: []int64{1 << 32, 1 << 32}, stride: []int64{1, 1}, want: "too many elements"},
		{name: "sizes and strides differ", size: []int64{2}, stride: []int64{1, 1}, want: "1 sizes and 2 strides"},
		{name: "offset beyond", offset: 9, size: []int64{0}, stride: []int64{1}, want: "offset 9"},
		{name: "negative offset", offset: -1, size: []int64{1}, stride: []int64{1}, want: "offset -1"},
		{name: "storage record missing", size: []int64{1}, stride: []int64{1}, want: "no record a/data/0", storageRecords: []record{}},
		{name: "storage record short", size: []int64{1}, stride: []int64{1}, want: "4 float32 elements (16 bytes) declared, its record holds 8 bytes",
			storageRecords: []record{{"a/data/0", floatsLE(1, 2)}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			records := []record{{"a/data.pkl", stateDict(pstr("w"), rebuild(pidZip("FloatStorage", "0", 4), c.offset, c.size, c.stride))}}
			if c.storageRecords == nil {
				records = append(records, data)
			}
			records = append(records, c.storageRecords...)
			_, err := readBytes(zipFile(t, records...))
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "tensor w") {
				t.Errorf("error %v, want one about tensor w saying %q", err, c.want)
			}
		})
	}
	// A legacy view outside its root storage.
	lv := legacyFile(stateDict(pstr("w"), rebuild(pidLegacy("FloatStorage", "7", 4, pk("(", pstr("v"), pint(2), pint(3), "t")), 0, []int64{1}, []int64{1})),
		[]string{"7"}, []int64{4}, [][]byte{floatsLE(1, 2, 3, 4)})
	if _, err := readBytes(lv); err == nil || !strings.Contains(err.Error(), "view") {
		t.Errorf("legacy view past its root: %v", err)
	}
}

// Many strided views of one storage may not copy more than the file holds.
func TestStridedCopiesBounded(t *testing.T) {
	pid := pidZip("FloatStorage", "0", 4)
	// Each entry a fresh transposed view (4 elements) of the one 4-element storage.
	var entries [][]byte
	for i := range 3 {
		entries = append(entries, pstr(string(rune('a'+i))), rebuild(pid, 0, []int64{2, 2}, []int64{1, 2}))
	}
	records := func(entries [][]byte) []byte {
		return zipFile(t, record{"a/data.pkl", stateDict(entries...)}, record{"a/data/0", floatsLE(1, 2, 3, 4)})
	}
	if f, err := readBytes(records(entries[:2])); err != nil || !slices.Equal(f.Tensors["a"].Data, []float32{1, 3, 2, 4}) {
		t.Fatalf("one transposed view: %v", err)
	}
	if _, err := readBytes(records(entries)); err == nil || !strings.Contains(err.Error(), "strided views copy more") {
		t.Errorf("three transposed views of one storage: %v", err)
	}
}

func TestRefusedFiles(t *testing.T) {
	sd := stateDict(pstr("w"), rebuild(pidZip("FloatStorage", "0", 1), 0, []int64{1}, []int64{1}))
	one := record{"a/data/0", floatsLE(1)}
	for _, c := range []struct {
		name string
		file []byte
		want string
	}{
		{"TorchScript", zipFile(t, record{"a/data.pkl", sd}, record{"a/constants.pkl", pk(0x80, 2, ").")}, one), "TorchScript"},
		{"a whole model", zipFile(t, record{"a/data.pkl", pk(0x80, 2, "cmymodels\nNet\n)", 0x81, "}b.")}), "mymodels.Net object"},
		{"a list", zipFile(t, record{"a/data.pkl", pk(0x80, 2, "].")}), "holds a list"},
		{"no data.pkl", zipFile(t, one), "without <archive>/data.pkl"},
		{"big-endian", zipFile(t, record{"a/data.pkl", sd}, record{"a/byteorder", []byte("big")}, one), "byte order"},
		{"unknown storage type", zipFile(t, record{"a/data.pkl", stateDict(pstr("w"), rebuild(pidZip("QInt8Storage", "0", 1), 0, []int64{1}, []int64{1}))}, one), "torch.QInt8Storage is not supported"},
		{"storage named twice", zipFile(t, record{"a/data.pkl", stateDict(pstr("w"), rebuild(pidZip("FloatStorage", "0", 1), 0, []int64{1}, []int64{1}),
			pstr("v"), rebuild(pidZip("HalfStorage", "0", 1), 0, []int64{1}, []int64{1}))}, one), "named twice"},
		{"unknown torch rebuild", zipFile(t, record{"a/data.pkl", stateDict(pstr("w"), pk("ctorch._utils\n_rebuild_qtensor\n)R"))}), "_rebuild_qtensor"},
		{"a plain pickle", pk(0x80, 2, "K", 1, "."), "not torch.save's"},
		{"legacy big-endian", append(pk(0x80, 2, 0x8a, 10, []byte{0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19}, ".", 0x80, 2, "M", 0xe9, 3, "."),
			pk(0x80, 2, "}(", pstr("little_endian"), 0x89, "u.")...), "big-endian"},
		{"legacy key not pickled", legacyFile(stateDict(), []string{"x"}, []int64{0}, [][]byte{nil}), "storage x: listed, but the pickle does not name it"},
		{"not a PyTorch file", []byte("hello"), "not a PyTorch file"},
		{"empty", nil, "empty file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := readBytes(c.file)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want %q", err, c.want)
			}
		})
	}
}

// A changed byte in a storage's data is caught by the zip record's CRC.
func TestCorruptStorage(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "mmengine_zip.pth"))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	var rec *zip.File
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/data/0") {
			rec = f
		}
	}
	off, err := rec.DataOffset()
	if err != nil {
		t.Fatal(err)
	}
	bad := slices.Clone(raw)
	bad[off] ^= 0x40
	if _, err := readBytes(bad); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("a corrupted storage: %v", err)
	}
}

// Every fixture cut short, anywhere, is an error (and no panic).
func TestTruncatedFixtures(t *testing.T) {
	for _, name := range append(fixtures, "hrnet_tiny_fixed.pth") {
		raw, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		cuts := []int{0, 1, 2, 3, 4, 5, 10, 20, 50, 100, len(raw) - 1, len(raw) - 2, len(raw) - 22, len(raw) - 23}
		step := max(len(raw)/300, 1)
		for n := 0; n < len(raw); n += step {
			cuts = append(cuts, n)
		}
		for _, n := range cuts {
			if n < 0 || n >= len(raw) {
				continue
			}
			if _, err := readBytes(raw[:n]); err == nil {
				t.Errorf("%s cut at %d of %d: no error", name, n, len(raw))
			}
		}
	}
}

// Compressed records (a re-zipped file) read too; one whose header claims more than its data
// holds is an error, and memory follows the data, not the claim.
func TestDeflatedRecords(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, r := range []record{
		{"a/data.pkl", stateDict(pstr("w"), rebuild(pidZip("FloatStorage", "0", 4), 0, []int64{2, 2}, []int64{1, 2}))},
		{"a/data/0", floatsLE(1, 2, 3, 4)},
	} {
		f, err := zw.CreateHeader(&zip.FileHeader{Name: r.name, Method: zip.Deflate})
		if err != nil {
			t.Fatal(err)
		}
		f.Write(r.data)
	}
	zw.Close()
	if f, err := readBytes(buf.Bytes()); err != nil || !slices.Equal(f.Tensors["w"].Data, []float32{1, 3, 2, 4}) {
		t.Fatalf("deflated: %v", err)
	}

	// 64 KiB of noise deflated, declared as 64 MiB (within deflate's 1032-fold limit).
	noise := make([]byte, 64<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	var comp bytes.Buffer
	fw, _ := flate.NewWriter(&comp, flate.BestSpeed)
	fw.Write(noise)
	fw.Close()
	const claim = 64 << 20
	buf.Reset()
	zw = zip.NewWriter(&buf)
	f, _ := zw.CreateHeader(&zip.FileHeader{Name: "a/data.pkl", Method: zip.Store})
	f.Write(stateDict(pstr("w"), rebuild(pidZip("FloatStorage", "0", claim/4), 0, []int64{4}, []int64{1})))
	raw, err := zw.CreateRaw(&zip.FileHeader{Name: "a/data/0", Method: zip.Deflate,
		CompressedSize64: uint64(comp.Len()), UncompressedSize64: claim})
	if err != nil {
		t.Fatal(err)
	}
	raw.Write(comp.Bytes())
	zw.Close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = readBytes(buf.Bytes())
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "storage 0") {
		t.Errorf("a record holding less than it claims: %v", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 32<<20 {
		t.Errorf("allocated %d MiB for a 64 MiB claim backed by 64 KiB", d>>20)
	}
}

// What else a state dict's pickle may hold: Parameters, tensor subclasses, cuda storages,
// storages saved on their own, bare values.
func TestStateDictEntries(t *testing.T) {
	hooks := pk(0x89, "ccollections\nOrderedDict\n)R")
	param := pk("ctorch._utils\n_rebuild_parameter\n(", rebuild(pidZip("FloatStorage", "0", 4), 0, []int64{4}, []int64{1}), hooks, "tR")
	subclass := pk("ctorch._utils\n_rebuild_from_type_v2\n(ctorch._utils\n_rebuild_tensor_v2\ncmy\nTensor\n(",
		pidZip("FloatStorage", "0", 4), pint(1), ptuple(2), ptuple(1), hooks, "t}tR")
	sd := stateDict(
		pstr("param"), param,
		pstr("subclass"), subclass,
		pstr("cuda"), rebuild(pk("(", pstr("storage"), "ctorch.cuda\nHalfStorage\n", pstr("1"), pstr("cuda:0"), pint(2), "tQ"), 0, []int64{2}, []int64{1}),
		pstr("bytes"), rebuild(pk("(", pstr("storage"), "ctorch.storage\nUntypedStorage\n", pstr("2"), pstr("cpu"), pint(3), "tQ"), 0, []int64{3}, []int64{1}),
		pstr("untyped"), pk("(", pstr("storage"), "ctorch.storage\nUntypedStorage\n", pstr("3"), pstr("cpu"), pint(3), "tQ"),
		pstr("none"), pk("N"),
		pstr("step"), pint(3),
		pk("K", 1), rebuild(pidZip("FloatStorage", "0", 4), 0, []int64{1}, []int64{1}), // not a name
	)
	f, err := readBytes(zipFile(t, record{"a/data.pkl", pk(0x80, 2, "}(", pstr("model"), sd[2:len(sd)-1], "u.")},
		record{"a/data/0", floatsLE(1, 2, 3, 4)}, record{"a/data/1", []byte{0x00, 0x3c, 0x00, 0xc0}},
		record{"a/data/2", []byte{1, 2, 3}}, record{"a/data/3", []byte{1, 2, 3}}))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Tensor{"param": {[]int{4}, []float32{1, 2, 3, 4}}, "subclass": {[]int{2}, []float32{2, 3}}, "cuda": {[]int{2}, []float32{1, -2}}}
	if !reflect.DeepEqual(f.Tensors, want) || !slices.Equal(f.Integer, []string{"bytes"}) || f.Container != "checkpoint" {
		t.Errorf("got %v, integer %q, container %q", f.Tensors, f.Integer, f.Container)
	}
}

// Classes and palette in the forms mmseg writes them; anything else is left out, not an error.
func TestMetaForms(t *testing.T) {
	dict := func(kv ...any) *pickle.Dict {
		d := &pickle.Dict{}
		for i := 0; i < len(kv); i += 2 {
			d.Set(kv[i], kv[i+1])
		}
		return d
	}
	u8 := &pickle.DType{Str: "u1", Kind: 'u', Size: 1, Order: '|'}
	arr := &pickle.NDArray{Shape: []int{2, 3}, DType: u8, Raw: []byte{1, 2, 3, 4, 5, 6}}
	row := func(vs ...any) *pickle.List { return &pickle.List{Items: vs} }
	for _, c := range []struct {
		name    string
		meta    *pickle.Dict
		classes []string
		palette [][3]uint8
	}{
		{"0.x ndarray palette", dict("CLASSES", pickle.Tuple{"a", "b"}, "PALETTE", arr), []string{"a", "b"}, [][3]uint8{{1, 2, 3}, {4, 5, 6}}},
		{"1.x tuples", dict("dataset_meta", dict("classes", &pickle.List{Items: []any{"x"}}, "palette", row(pickle.Tuple{int64(9), int64(8), int64(7)}))),
			[]string{"x"}, [][3]uint8{{9, 8, 7}}},
		{"rows of arrays", dict("PALETTE", row(&pickle.NDArray{Shape: []int{3}, DType: u8, Raw: []byte{7, 7, 7}})), nil, [][3]uint8{{7, 7, 7}}},
		{"out of range", dict("CLASSES", pickle.Tuple{"a", int64(1)}, "PALETTE", row(row(int64(256), int64(0), int64(0)))), nil, nil},
		{"short row", dict("PALETTE", row(row(int64(1), int64(2)))), nil, nil},
		{"float values", dict("PALETTE", row(row(1.5, 2.0, 3.0))), nil, nil},
		{"None", dict("CLASSES", nil, "PALETTE", nil), nil, nil},
		{"wrong array shape", dict("PALETTE", &pickle.NDArray{Shape: []int{6}, DType: u8, Raw: []byte{1, 2, 3, 4, 5, 6}}), nil, nil},
	} {
		classes, palette := readMeta(dict("meta", c.meta))
		if !slices.Equal(classes, c.classes) || !reflect.DeepEqual(palette, c.palette) {
			t.Errorf("%s: %q %v, want %q %v", c.name, classes, palette, c.classes, c.palette)
		}
	}
}
