package onnx

import (
	"bytes"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

func sample() *Model {
	return &Model{
		IRVersion: 7, Opset: 13, ProducerName: "segkit", ProducerVersion: "v0", DocString: "doc",
		Graph: Graph{
			Name: "g",
			Nodes: []Node{
				{Name: "r", Op: "Resize", Inputs: []string{"x", "", "", "sizes"}, Outputs: []string{"y"},
					Attrs: []Attr{String("mode", "linear"), Ints("pads", 1, -1, 0, 1<<40), Int("axis", -1), FloatAttr("alpha", -0.25),
						{Name: "fs", Type: AttrFloats, Floats: []float32{1.5, -2}}}},
			},
			Initializers: []Tensor{FloatTensor("w", []int64{2, 1}, []float32{1, -3.5}), Int64Tensor("sizes", []int64{4}, []int64{1, 3, -8, 1 << 50})},
			Inputs:       []Value{{Name: "x", Type: Float, Shape: []Dim{{Param: "N"}, {Size: 3}, {Size: 5}, {Size: 7}}}},
			Outputs:      []Value{{Name: "y", Type: Int64, Shape: Dims(1, 1, 10, 14)}},
		},
		Metadata: []Property{{"classes", `["a","b"]`}, {"empty", ""}},
	}
}

func TestRoundTrip(t *testing.T) {
	m := sample()
	back, err := Unmarshal(Marshal(m))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, m) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, m)
	}
	if v, ok := back.Meta("classes"); !ok || v != `["a","b"]` {
		t.Errorf("Meta: %q %v", v, ok)
	}
	f, err := back.Graph.Initializers[0].Floats()
	if err != nil || !reflect.DeepEqual(f, []float32{1, -3.5}) {
		t.Errorf("Floats: %v %v", f, err)
	}
	i, err := back.Graph.Initializers[1].Int64s()
	if err != nil || !reflect.DeepEqual(i, []int64{1, 3, -8, 1 << 50}) {
		t.Errorf("Int64s: %v %v", i, err)
	}
}

// The bytes are onnx.proto's: a hand-encoded OperatorSetIdProto and a StringStringEntryProto,
// the tensor's fields with their numbers and wire types, and an omitted optional input kept.
func TestWireFormat(t *testing.T) {
	b := Marshal(&Model{IRVersion: 7, Opset: 13, Metadata: []Property{{"k", "v"}}})
	// ir_version (1, varint) 7; graph (7, bytes) empty; opset_import (8, bytes) {version (2) 13};
	// metadata_props (14, bytes) {key (1) "k", value (2) "v"}.
	if want := "0807" + "3a00" + "4202100d" + "7206" + "0a016b" + "120176"; hex.EncodeToString(b) != want {
		t.Errorf("model bytes %x, want %s", b, want)
	}
	tb := encodeTensor(&Tensor{Name: "t", Type: Float, Dims: []int64{2}, Raw: []byte{1, 2, 3, 4, 5, 6, 7, 8}})
	// dims (1) 2; data_type (2) 1; name (8) "t"; raw_data (9) 8 bytes.
	if want := "0802" + "1001" + "420174" + "4a080102030405060708"; hex.EncodeToString(tb) != want {
		t.Errorf("tensor bytes %x, want %s", tb, want)
	}
	nb := encodeNode(&Node{Op: "Resize", Inputs: []string{"x", ""}, Outputs: []string{"y"}})
	if want := "0a0178" + "0a00" + "120179" + "2206526573697a65"; hex.EncodeToString(nb) != want {
		t.Errorf("node bytes %x, want %s", nb, want)
	}
}

// Other writers pack repeated scalars and store tensors in float_data / int64_data: both read.
func TestPackedAndTypedData(t *testing.T) {
	var packed []byte
	for _, v := range []uint64{2, 3} {
		packed = protowire.AppendVarint(packed, v)
	}
	var tensor []byte
	tensor = protowire.AppendTag(tensor, tensorDims, protowire.BytesType)
	tensor = protowire.AppendBytes(tensor, packed)
	tensor = appendVarint(tensor, tensorDataType, uint64(Float))
	var floats []byte
	for _, f := range []uint32{0x3f800000, 0x40000000, 0xc0400000, 0, 0, 0} { // 1, 2, -3, 0, 0, 0
		floats = protowire.AppendFixed32(floats, f)
	}
	tensor = protowire.AppendTag(tensor, tensorFloatData, protowire.BytesType)
	tensor = protowire.AppendBytes(tensor, floats)
	var tt Tensor
	if err := decodeTensor(tensor, &tt); err != nil {
		t.Fatal(err)
	}
	f, err := tt.Floats()
	if err != nil || !reflect.DeepEqual(tt.Dims, []int64{2, 3}) || !reflect.DeepEqual(f, []float32{1, 2, -3, 0, 0, 0}) {
		t.Errorf("packed dims %v, float_data %v (%v)", tt.Dims, f, err)
	}
}

// Bad input never panics: every truncation of a valid model is an error or a shorter valid
// model, corrupt bytes are errors, and tensor data must match its dims.
func TestBadInput(t *testing.T) {
	full := Marshal(sample())
	for n := 0; n < len(full); n++ {
		Unmarshal(full[:n]) // must not panic
	}
	for _, bad := range [][]byte{{0x0a}, {0x3a, 0x05, 0x0a}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, {0x0b}} {
		if _, err := Unmarshal(bad); err == nil || !strings.Contains(err.Error(), "not a readable ONNX model") {
			t.Errorf("%x: %v", bad, err)
		}
	}
	short := Tensor{Name: "w", Type: Float, Dims: []int64{3}, Raw: make([]byte, 8)}
	if _, err := short.Floats(); err == nil || !strings.Contains(err.Error(), "8 bytes of data for dims [3]") {
		t.Errorf("short data: %v", err)
	}
	if _, err := (Tensor{Name: "w", Type: Float, Dims: []int64{-1}}).Floats(); err == nil {
		t.Error("negative dims read")
	}
	if _, err := (Tensor{Name: "w", Type: Float, Dims: []int64{1 << 40, 1 << 40}}).Floats(); err == nil {
		t.Error("overflowing dims read")
	}
	if _, err := FloatTensor("w", []int64{1}, []float32{1}).Int64s(); err == nil || !strings.Contains(err.Error(), "is float, not int64") {
		t.Errorf("type confusion: %v", err)
	}
}

func FuzzUnmarshal(f *testing.F) {
	f.Add(Marshal(sample()))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Unmarshal(b)
		if err != nil {
			return
		}
		for _, tt := range m.Graph.Initializers {
			tt.Floats()
			tt.Int64s()
		}
		// What decodes re-encodes to what decodes the same.
		again, err := Unmarshal(Marshal(m))
		if err != nil || !bytes.Equal(Marshal(again), Marshal(m)) {
			t.Errorf("re-encoding is not stable: %v", err)
		}
	})
}
