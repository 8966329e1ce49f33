package pickle

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func readProto(t testing.TB, proto int) []byte {
	raw, err := os.ReadFile(filepath.Join("testdata", fmt.Sprintf("proto%d.pkl", proto)))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func dict(kv ...any) *Dict {
	d := &Dict{}
	for i := 0; i < len(kv); i += 2 {
		d.Set(kv[i], kv[i+1])
	}
	return d
}

// want is make_pickles.py's value() as this package decodes it (but "kw", which differs by
// protocol).
func want() map[string]any {
	big70 := new(big.Int).Lsh(big.NewInt(1), 70)
	le := func(vs ...uint16) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint16(b, v)
		}
		return b
	}
	f8be := func(vs ...float64) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.BigEndian.AppendUint64(b, math.Float64bits(v))
		}
		return b
	}
	return map[string]any{
		"int": int64(1), "neg": int64(-300), "i32": int64(70000), "i64": int64(-(1 << 40)),
		"big": big70, "negbig": new(big.Int).Neg(big70),
		"float": 1.5, "str": "h\u00e9llo \u2603\n", "bytes": []byte{0, 0xff}, "empty": []byte{},
		"ba": []byte("ab"), "tuple": Tuple{int64(1), int64(2), int64(3)}, "tuple0": Tuple{},
		"tuple1": Tuple{"x"}, "tuple4": Tuple{int64(1), int64(2), int64(3), int64(4)},
		"list": &List{Items: []any{int64(1), "a"}}, "again": &List{Items: []any{int64(1), "a"}},
		"set": &Set{Items: []any{int64(7)}}, "fset": &Set{Items: []any{int64(8)}, Frozen: true},
		"none": nil, "t": true, "f": false, "od": dict("a", int64(1), "b", int64(2)),
		"obj": &Object{Module: "some.module", Name: "Opaque", State: dict(
			"attr", &NDArray{Shape: []int{3}, DType: &DType{Str: "i2", Kind: 'i', Size: 2, Order: '<'}, Raw: le(0, 1, 2)},
			"x", 1.5)},
		"np_i": int64(-5), "np_u": int64(200), "np_f": 0.25, "np_h": -2.0, "np_b": true,
		"arr": &NDArray{Shape: []int{2, 3}, DType: &DType{Str: "u1", Kind: 'u', Size: 1, Order: '|'}, Raw: []byte{0, 1, 2, 3, 4, 5}},
		"arr_f": &NDArray{Shape: []int{2, 2}, DType: &DType{Str: "f8", Kind: 'f', Size: 8, Order: '>'}, Fortran: true,
			Raw: f8be(1.5, 3, 2, 4)},
		"arr_b": &NDArray{Shape: []int{2}, DType: &DType{Str: "b1", Kind: 'b', Size: 1, Order: '|'}, Raw: []byte{1, 0}},
	}
}

// The same Python value pickled at protocols 0–5 decodes to the same Go value.
func TestProtocols(t *testing.T) {
	for proto := range 6 {
		v, err := Unmarshal(readProto(t, proto))
		if err != nil {
			t.Fatalf("protocol %d: %v", proto, err)
		}
		d, ok := v.(*Dict)
		if !ok {
			t.Fatalf("protocol %d: a %s", proto, TypeName(v))
		}
		w := want()
		if d.Len() != len(w)+1 {
			t.Errorf("protocol %d: %d entries, want %d", proto, d.Len(), len(w)+1)
		}
		for k, wv := range w {
			got, ok := d.Get(k)
			if o, isObj := got.(*Object); isObj && len(o.Args) == 0 {
				o.Args = nil // NEWOBJ passes (), copyreg._reconstructor nothing: the same here
			}
			if b, isBig := wv.(*big.Int); isBig {
				if g, _ := got.(*big.Int); g == nil || g.Cmp(b) != 0 {
					t.Errorf("protocol %d: %s = %v, want %v", proto, k, got, b)
				}
			} else if !ok || !reflect.DeepEqual(got, wv) {
				t.Errorf("protocol %d: %s = %#v (present %v), want %#v", proto, k, got, ok, wv)
			}
		}
		list, _ := d.Get("list")
		again, _ := d.Get("again")
		if list != again {
			t.Errorf("protocol %d: the memo did not share the list", proto)
		}
		kw, _ := d.Get("kw")
		o, ok := kw.(*Object)
		switch {
		case !ok:
			t.Errorf("protocol %d: kw is a %s", proto, TypeName(kw))
		case proto >= 4: // NEWOBJ_EX
			if k, _ := o.Kwargs.Get("k"); o.Name != "WithKwargs" || !reflect.DeepEqual(o.Args, Tuple{int64(1)}) || k != int64(2) {
				t.Errorf("protocol %d: kw = %+v", proto, o)
			}
		case proto >= 2: // functools.partial(getattr(cls, "__new__"), cls, 1, k=2)() as opaque calls
			if o.Module != "functools" || o.Callee == nil || o.Callee.Name != "partial" {
				t.Errorf("protocol %d: kw = %+v", proto, o)
			}
		default: // copyreg._reconstructor
			if o.Module != "some.module" || o.Name != "WithKwargs" {
				t.Errorf("protocol %d: kw = %+v", proto, o)
			}
		}
		arr, _ := d.Get("arr_f")
		if f, err := arr.(*NDArray).Float64s(); err != nil || !reflect.DeepEqual(f, []float64{1.5, 2, 3, 4}) {
			t.Errorf("protocol %d: Fortran array reads %v, %v", proto, f, err)
		}
		arr, _ = d.Get("arr")
		if i, err := arr.(*NDArray).Int64s(); err != nil || !reflect.DeepEqual(i, []int64{0, 1, 2, 3, 4, 5}) {
			t.Errorf("protocol %d: uint8 array reads %v, %v", proto, i, err)
		}
	}
}

// op assembles a pickle from strings and bytes.
func op(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch p := p.(type) {
		case string:
			b = append(b, p...)
		case byte:
			b = append(b, p)
		case int:
			b = append(b, byte(p))
		case []byte:
			b = append(b, p...)
		}
	}
	return b
}

func u32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// Opcodes Python 3 does not write (or not for these values), assembled by hand.
func TestOpcodes(t *testing.T) {
	for _, c := range []struct {
		name string
		in   []byte
		want any
	}{
		{"DUP shares", op("]2K", 1, "a", 0x86, "."), nil}, // checked below
		{"POP", op("K", 1, "K", 2, "0."), int64(1)},
		{"POP of a bare MARK", op("K", 1, "(0."), int64(1)},
		{"POP_MARK", op("K", 1, "(K", 2, "K", 3, "1."), int64(1)},
		{"BINSTRING", op("T", u32(3), "a\x00b."), "a\x00b"},
		{"SHORT_BINSTRING", op("U", 2, "hi."), "hi"},
		{"STRING escapes", op(`S'a\'b\\\x41\101\n\q'` + "\n."), "a'b\\AA\n\\q"},
		{"STRING double-quoted", op(`S"x"` + "\n."), "x"},
		{"BINUNICODE8", op(0x8d, u64(2), "\xc3\xa9."), "\u00e9"},
		{"BINBYTES8", op(0x8e, u64(1), "\x07."), []byte{7}},
		{"BYTEARRAY8", op(0x96, u64(0), "."), []byte{}},
		{"LONG4", op(0x8b, u32(2), "\xff\x7f."), int64(0x7fff)},
		{"LONG1 negative", op(0x8a, 2, "\x00\xff."), int64(-256)},
		{"LONG1 empty", op(0x8a, 0, "."), int64(0)},
		{"BININT negative", op("J", u32(0xfffffffe), "."), int64(-2)},
		{"BININT2", op("M", "\x01\x02."), int64(0x201)},
		{"INT bool", op("I01\n."), true},
		{"LONG text", op("L-12L\n."), int64(-12)},
		{"FLOAT text", op("F-0.25\n."), -0.25},
		{"BINFLOAT", op("G", "\x3f\xf8\x00\x00\x00\x00\x00\x00."), 1.5},
		{"UNICODE escapes", op(`V\u00e9\U0001f600x` + "\n."), "\u00e9\U0001f600x"},
		{"dict keys replace", op("}(K", 1, "K", 2, "K", 1, "K", 3, "u."), dict(int64(1), int64(3))},
		{"DICT", op("(U", 1, "aK", 1, "d."), dict("a", int64(1))},
		{"bytes and str keys differ", op("}(U", 1, "aK", 1, "C", 1, "aK", 2, "u."), dict("a", int64(1), []byte("a"), int64(2))},
		{"LIST", op("(K", 1, "K", 2, "l."), &List{Items: []any{int64(1), int64(2)}}},
		{"EMPTY_SET ADDITEMS", op(0x8f, "(K", 1, 0x90, "."), &Set{Items: []any{int64(1)}}},
		{"PUT GET", op("K", 5, "p7\n0g7\n."), int64(5)},
		{"LONG_BINPUT LONG_BINGET", op("K", 5, "r", u32(1<<20), "0j", u32(1<<20), "."), int64(5)},
		{"MEMOIZE", op("K", 5, 0x94, "0h", 0, "."), int64(5)},
		{"FRAME", op(0x80, 4, 0x95, u64(2), "N."), nil},
		{"READONLY_BUFFER", op("C", 1, "x", 0x98, "."), []byte("x")},
		{"GLOBAL", op("cos\nsystem\n."), Global{"os", "system"}},
		{"STACK_GLOBAL", op(0x8c, 2, "os", 0x8c, 6, "system", 0x93, "."), Global{"os", "system"}},
		{"unknown class: REDUCE, BUILD, SETITEMS, APPENDS", op("cm\nC\n(K", 1, "tR}(U", 1, "aK", 2, "ub(U", 1, "kK", 3, "u(K", 4, "e."),
			&Object{Module: "m", Name: "C", Args: Tuple{int64(1)}, State: dict("a", int64(2)), Items: dict("k", int64(3)), List: []any{int64(4)}}},
		{"unknown class: NEWOBJ", op("cm\nC\n)", 0x81, "."), &Object{Module: "m", Name: "C", Args: Tuple{}}},
		{"INST", op("(K", 1, "im\nC\n."), &Object{Module: "m", Name: "C", Args: Tuple{int64(1)}}},
		{"OBJ", op("(cm\nC\nK", 1, "o."), &Object{Module: "m", Name: "C", Args: Tuple{int64(1)}}},
		{"copyreg.__newobj__", op("ccopyreg\n__newobj__\ncm\nC\nK", 1, 0x86, "R."), &Object{Module: "m", Name: "C", Args: Tuple{int64(1)}}},
		{"OrderedDict from pairs", op("ccollections\nOrderedDict\n](U", 1, "aK", 1, "ta", 0x85, "R."), dict("a", int64(1))},
		{"bytes from a list", op("cbuiltins\nbytes\n](K", 1, "K", 2, "e", 0x85, "R."), []byte{1, 2}},
		{"numpy int32 big-endian scalar", op("cnumpy.core.multiarray\nscalar\ncnumpy\ndtype\nU", 2, "i4", 0x85, "R(K", 3, "U", 1, ">NNNJ", u32(0xffffffff), "J", u32(0xffffffff), "K", 0, "tbC", 4, "\xff\xff\xff\xfe", 0x86, "R."), int64(-2)},
		{"numpy uint64 beyond int64", op("cnumpy.core.multiarray\nscalar\ncnumpy\ndtype\nU", 2, "u8", 0x85, "RC", 8, "\xff\xff\xff\xff\xff\xff\xff\xff", 0x86, "R."), new(big.Int).SetUint64(math.MaxUint64)},
		{"numpy string scalar stays opaque", op("cnumpy.core.multiarray\nscalar\ncnumpy\ndtype\nU", 2, "U1", 0x85, "RC", 4, "a\x00\x00\x00", 0x86, "R."), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Unmarshal(c.in)
			if err != nil {
				t.Fatal(err)
			}
			switch c.name {
			case "DUP shares":
				if l, ok := got.(Tuple); !ok || len(l) != 2 || l[0] != l[1] || len(l[0].(*List).Items) != 1 {
					t.Errorf("got %#v", got)
				}
				return
			case "numpy string scalar stays opaque":
				if o, ok := got.(*Object); !ok || o.Name != "scalar" {
					t.Errorf("got %#v", got)
				}
				return
			}
			if w, ok := c.want.(*big.Int); ok {
				if g, ok := got.(*big.Int); !ok || g.Cmp(w) != 0 {
					t.Errorf("got %v, want %v", got, w)
				}
				return
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %#v, want %#v", got, c.want)
			}
		})
	}
}

func TestPersistentLoad(t *testing.T) {
	in := op("(U", 1, "aK", 1, "tQP7\n", 0x86, ".")
	if _, err := Unmarshal(in); err == nil || !strings.Contains(err.Error(), "persistent id") {
		t.Errorf("no loader: %v", err)
	}
	d := NewDecoder(strings.NewReader(string(in)), int64(len(in)))
	d.PersistentLoad = func(pid any) (any, error) { return Tuple{"loaded", pid}, nil }
	got, err := d.Decode()
	want := Tuple{Tuple{"loaded", Tuple{"a", int64(1)}}, Tuple{"loaded", "7"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, %v", got, err)
	}
	if d.Offset() != int64(len(in)) {
		t.Errorf("offset %d after a pickle of %d bytes", d.Offset(), len(in))
	}
}

// Custom callables run, and take precedence over the built-in ones.
func TestFuncs(t *testing.T) {
	in := op("ccollections\nOrderedDict\n)Rcx\nf\nK", 2, 0x85, "R", 0x86, ".")
	d := NewDecoder(strings.NewReader(string(in)), int64(len(in)))
	d.Funcs = map[Global]Func{
		{"x", "f"}:                     func(args Tuple) (any, error) { return args[0].(int64) * 10, nil },
		{"collections", "OrderedDict"}: func(Tuple) (any, error) { return "mine", nil },
	}
	got, err := d.Decode()
	if err != nil || !reflect.DeepEqual(got, Tuple{"mine", int64(20)}) {
		t.Errorf("got %#v, %v", got, err)
	}
}

// Two pickles in a row, as torch's legacy format writes them: each Decode reads one.
func TestSequence(t *testing.T) {
	in := op(0x80, 2, "K", 1, ".", 0x80, 2, "K", 2, ".tail")
	d := NewDecoder(strings.NewReader(string(in)), int64(len(in)))
	for want := range []int64{1, 2} {
		v, err := d.Decode()
		if err != nil || v != int64(want+1) {
			t.Fatalf("pickle %d: %v, %v", want, v, err)
		}
	}
	if d.Offset() != int64(len(in)-4) {
		t.Errorf("offset %d", d.Offset())
	}
}

func TestMalformed(t *testing.T) {
	for _, c := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "empty input"},
		{"no STOP", op("K", 1), "truncated"},
		{"unknown opcode", op("\xff."), "unknown opcode"},
		{"protocol 6", op(0x80, 6, "N."), "protocol 6"},
		{"stack underflow", op("0."), "no MARK"},
		{"STOP on empty", op("."), "underflow"},
		{"underflow below MARK", op("K", 1, "(."), "underflow"},
		{"TUPLE2 across MARK", op("K", 1, "(K", 2, 0x86, "."), "TUPLE2 needs"},
		{"SETITEM across MARK", op("}(K", 1, "K", 2, "s."), "SETITEM needs"},
		{"no MARK", op("t."), "no MARK"},
		{"memo miss", op("h", 3, "."), "never stored"},
		{"text memo miss", op("g12\n."), "never stored"},
		{"bad memo index", op("K", 1, "p-1\n."), "memo index"},
		{"huge BINBYTES8", op(0x8e, u64(1<<62), "x."), "declared"},
		{"huge BINUNICODE8 beyond int64", op(0x8d, u64(math.MaxUint64), "x."), "truncated"},
		{"huge LONG4", op(0x8b, u32(0x7fffffff), "x."), "declared"},
		{"negative LONG4", op(0x8b, u32(0xffffffff), "x."), "negative"},
		{"huge FRAME", op(0x95, u64(1<<40), "N."), "frame"},
		{"truncated BINBYTES", op("B", u32(10), "abc"), "declared"},
		{"truncated BININT", op("J\x01"), "declared"},
		{"unterminated line", op("I12"), "truncated"},
		{"INT junk", op("Ixyz\n."), "integer"},
		{"INT too long", op("I" + strings.Repeat("9", 5000) + "\n."), "digits"},
		{"FLOAT junk", op("Fxyz\n."), "float"},
		{"STRING unquoted", op("Sabc\n."), "not quoted"},
		{"STRING bad hex", op(`S'\xz1'` + "\n."), "invalid"},
		{"STRING short hex", op(`S'\x1'` + "\n."), "truncated"},
		{"APPEND to dict", op("}K", 1, "a."), "APPEND to dict"},
		{"SETITEM on list", op("]K", 1, "K", 2, "s."), "SETITEM on list"},
		{"SETITEMS odd", op("}(K", 1, "u."), "without a value"},
		{"ADDITEMS to list", op("](K", 1, 0x90, "."), "ADDITEMS to list"},
		{"REDUCE with list args", op("cm\nf\n]R."), "not a tuple"},
		{"calling an int", op("K", 1, ")R."), "calling a int"},
		{"NEWOBJ_EX without dict", op("cm\nC\n))", 0x92, "."), "NEWOBJ_EX"},
		{"STACK_GLOBAL of ints", op("K", 1, "K", 2, 0x93, "."), "STACK_GLOBAL"},
		{"OBJ without class", op("(o."), "OBJ without"},
		{"EXT1", op(0x82, 1, "."), "extension"},
		{"NEXT_BUFFER", op(0x97, "."), "out-of-band"},
		{"dict from an int", op("cbuiltins\ndict\nK", 1, 0x85, "R."), "dict from"},
		{"_codecs.encode non-Latin-1", op("c_codecs\nencode\n", 0x8c, 3, "\xe2\x98\x83", 0x8c, 6, "latin1", 0x86, "R."), "not latin1"},
		{"_codecs.encode unknown", op("c_codecs\nencode\n", 0x8c, 1, "a", 0x8c, 5, "rot13", 0x86, "R."), "not supported"},
		{"numpy scalar wrong size", op("cnumpy.core.multiarray\nscalar\ncnumpy\ndtype\nU", 2, "i4", 0x85, "RC", 2, "\x00\x00", 0x86, "R."), "scalar of 2 bytes"},
		{"numpy dtype of int", op("cnumpy\ndtype\nK", 1, 0x85, "R."), "dtype of a int"},
		{"numpy dtype state", op("cnumpy\ndtype\nU", 2, "i4", 0x85, "RK", 1, "b."), "state"},
		{"numpy array short data", op("cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n)N", 0x87, "R(K", 1, "K", 4, 0x85, "cnumpy\ndtype\nU", 2, "i4", 0x85, "R", 0x89, "C", 3, "abct", "b."), "has 3 bytes"},
		{"numpy array huge shape", op("cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n)N", 0x87, "R(K", 1, "J", u32(0x7fffffff), "J", u32(0x7fffffff), 0x86, "cnumpy\ndtype\nU", 2, "i4", 0x85, "R", 0x89, "C", 0, "t", "b."), "too large"},
		{"numpy array negative dim", op("cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n)N", 0x87, "R(K", 1, "J", u32(0xffffffff), 0x85, "cnumpy\ndtype\nU", 2, "i4", 0x85, "R", 0x89, "C", 0, "t", "b."), "dimension"},
	} {
		t.Run(c.name, func(t *testing.T) {
			v, err := Unmarshal(c.in)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %#v, error %v; want an error saying %q", v, err, c.want)
			}
			var pe *Error
			if err != nil && !errors.As(err, &pe) {
				t.Errorf("%v is not a *pickle.Error", err)
			}
		})
	}
}

// A declared length beyond the input is refused before anything is allocated.
func TestHugeLengthAllocatesNothing(t *testing.T) {
	in := op(0x8e, u64(1<<40), "x.")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 100 {
		if _, err := Unmarshal(in); err == nil {
			t.Fatal("no error")
		}
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 4<<20 {
		t.Errorf("%d bytes allocated to refuse a 1 TiB BINBYTES8 100 times", d)
	}
}

// Every prefix of a valid pickle is an error (no panic).
func TestTruncated(t *testing.T) {
	for proto := range 6 {
		raw := readProto(t, proto)
		for n := range len(raw) {
			if v, err := Unmarshal(raw[:n]); err == nil {
				t.Fatalf("protocol %d cut at %d of %d: no error (%s)", proto, n, len(raw), TypeName(v))
			}
		}
	}
}

// Every half-precision value converts to the float32 of the same value.
func TestHalfToFloat32(t *testing.T) {
	for h := range 1 << 16 {
		sign := 1.0
		if h&0x8000 != 0 {
			sign = -1
		}
		exp, frac := (h>>10)&0x1f, float64(h&0x3ff)
		var want float64
		switch {
		case exp == 0x1f && frac == 0:
			want = math.Inf(int(sign))
		case exp == 0x1f:
			want = math.NaN()
		case exp == 0:
			want = sign * frac / 1024 * math.Pow(2, -14)
		default:
			want = sign * (1 + frac/1024) * math.Pow(2, float64(exp-15))
		}
		got := math.Float32frombits(HalfToFloat32Bits(uint16(h)))
		if math.IsNaN(want) != math.IsNaN(float64(got)) || !math.IsNaN(want) && float64(got) != want ||
			want == 0 && math.Signbit(want) != math.Signbit(float64(got)) {
			t.Fatalf("half %#04x: %v, want %v", h, got, want)
		}
	}
}

// Whatever the bytes, decoding is an error or a value, never a crash or a hang.
func FuzzDecode(f *testing.F) {
	for proto := range 6 {
		f.Add(readProto(f, proto))
	}
	f.Add(op("cm\nC\n)Rq\x00(h\x00h\x00u."))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewDecoder(strings.NewReader(string(data)), int64(len(data)))
		d.PersistentLoad = func(pid any) (any, error) { return pid, nil }
		for range 3 { // and the pickles after it
			if _, err := d.Decode(); err != nil {
				return
			}
		}
	})
}

// A pickle that copies one memoized value over and over (here 10,000 × 1,000 bytes from an
// 80 kB input) is refused once the copies outgrow the input.
func TestCopiesBounded(t *testing.T) {
	in := op("c_codecs\nencode\nq", 0, "X", u32(1000), strings.Repeat("a", 1000), "q", 1, "X", u32(6), "latin1q", 2, "](")
	call := op("h", 0, "h", 1, "h", 2, 0x86, "R")
	n := 10000
	for range n {
		in = append(in, call...)
	}
	in = append(in, "e."...)
	_, err := Unmarshal(in)
	if err == nil || !strings.Contains(err.Error(), "copies") {
		t.Errorf("error %v", err)
	}
	// The same with few copies decodes.
	in = append(in[:len(in)-2-len(call)*(n-10)], "e."...)
	if v, err := Unmarshal(in); err != nil || len(v.(*List).Items) != 10 {
		t.Errorf("10 copies: %v", err)
	}
}
