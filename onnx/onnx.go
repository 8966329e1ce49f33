// Package onnx reads and writes ONNX models (the onnx.proto ModelProto) for the subset segkit's
// exporter uses: one graph of nodes with attributes, raw-data initializers, typed inputs and
// outputs, opset imports and metadata. It holds no model knowledge (package export maps segkit's
// models onto it). The protobuf is written and read with protowire, field by field as onnx.proto
// numbers them, so no generated code is needed.
package onnx

import (
	"encoding/binary"
	"fmt"
	"math"
)

// DataType is a TensorProto.DataType.
type DataType int32

// The element types segkit's graphs use.
const (
	Float DataType = 1
	Int64 DataType = 7
)

func (t DataType) String() string {
	switch t {
	case Float:
		return "float"
	case Int64:
		return "int64"
	}
	return fmt.Sprintf("data type %d", int32(t))
}

// size is the bytes per element of the types raw data is read for (0: not supported here).
func (t DataType) size() int {
	switch t {
	case Float:
		return 4
	case Int64:
		return 8
	}
	return 0
}

// Model is a ModelProto.
type Model struct {
	IRVersion       int64
	Opset           int64 // the default ("ai.onnx") domain's version
	ProducerName    string
	ProducerVersion string
	DocString       string
	Graph           Graph
	Metadata        []Property // metadata_props, in order
}

// Property is a StringStringEntryProto.
type Property struct{ Key, Value string }

// Meta returns the value of the metadata key (ok false when absent).
func (m *Model) Meta(key string) (string, bool) {
	for _, p := range m.Metadata {
		if p.Key == key {
			return p.Value, true
		}
	}
	return "", false
}

// Graph is a GraphProto: nodes in topological order.
type Graph struct {
	Name         string
	Nodes        []Node
	Initializers []Tensor
	Inputs       []Value
	Outputs      []Value
}

// Node is a NodeProto of the default domain; an empty input name is an omitted optional input.
type Node struct {
	Name    string
	Op      string
	Inputs  []string
	Outputs []string
	Attrs   []Attr
}

// Attr returns the named attribute (ok false when absent).
func (n *Node) Attr(name string) (Attr, bool) {
	for _, a := range n.Attrs {
		if a.Name == name {
			return a, true
		}
	}
	return Attr{}, false
}

// AttrType is an AttributeProto.AttributeType.
type AttrType int32

// The attribute types segkit's graphs use.
const (
	AttrFloat  AttrType = 1
	AttrInt    AttrType = 2
	AttrString AttrType = 3
	AttrFloats AttrType = 6
	AttrInts   AttrType = 7
)

// Attr is an AttributeProto; Type says which value field holds it.
type Attr struct {
	Name   string
	Type   AttrType
	Float  float32
	Int    int64
	String string
	Floats []float32
	Ints   []int64
}

// Int returns an INT attribute.
func Int(name string, v int64) Attr { return Attr{Name: name, Type: AttrInt, Int: v} }

// Ints returns an INTS attribute.
func Ints(name string, v ...int64) Attr { return Attr{Name: name, Type: AttrInts, Ints: v} }

// String returns a STRING attribute.
func String(name, v string) Attr { return Attr{Name: name, Type: AttrString, String: v} }

// FloatAttr returns a FLOAT attribute.
func FloatAttr(name string, v float32) Attr { return Attr{Name: name, Type: AttrFloat, Float: v} }

// Tensor is a TensorProto with its data in raw_data (little-endian).
type Tensor struct {
	Name string
	Type DataType
	Dims []int64
	Raw  []byte
}

// FloatTensor returns a float tensor of the given shape holding v.
func FloatTensor(name string, dims []int64, v []float32) Tensor {
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	return Tensor{Name: name, Type: Float, Dims: dims, Raw: raw}
}

// Int64Tensor returns an int64 tensor of the given shape holding v.
func Int64Tensor(name string, dims []int64, v []int64) Tensor {
	raw := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(x))
	}
	return Tensor{Name: name, Type: Int64, Dims: dims, Raw: raw}
}

// Len returns the number of elements its dims give, or an error for a negative or overflowing
// shape.
func (t Tensor) Len() (int, error) {
	n := int64(1)
	for _, d := range t.Dims {
		if d < 0 || d > math.MaxInt32 || n > math.MaxInt64/max(d, 1) {
			return 0, fmt.Errorf("tensor %s: invalid dims %v", t.Name, t.Dims)
		}
		n *= d
	}
	if n > math.MaxInt32 {
		return 0, fmt.Errorf("tensor %s: dims %v are too large", t.Name, t.Dims)
	}
	return int(n), nil
}

// check verifies that the raw data holds exactly the elements the dims give.
func (t Tensor) check(want DataType) (int, error) {
	if t.Type != want {
		return 0, fmt.Errorf("tensor %s is %v, not %v", t.Name, t.Type, want)
	}
	n, err := t.Len()
	if err != nil {
		return 0, err
	}
	if len(t.Raw) != n*want.size() {
		return 0, fmt.Errorf("tensor %s: %d bytes of data for dims %v", t.Name, len(t.Raw), t.Dims)
	}
	return n, nil
}

// Floats returns a float tensor's values.
func (t Tensor) Floats() ([]float32, error) {
	n, err := t.check(Float)
	if err != nil {
		return nil, err
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Raw[4*i:]))
	}
	return v, nil
}

// Int64s returns an int64 tensor's values.
func (t Tensor) Int64s() ([]int64, error) {
	n, err := t.check(Int64)
	if err != nil {
		return nil, err
	}
	v := make([]int64, n)
	for i := range v {
		v[i] = int64(binary.LittleEndian.Uint64(t.Raw[8*i:]))
	}
	return v, nil
}

// Value is a ValueInfoProto of a tensor: its element type and shape.
type Value struct {
	Name  string
	Type  DataType
	Shape []Dim
}

// Dim is a dimension: a fixed size, or (Param non-empty) a symbolic one.
type Dim struct {
	Size  int64
	Param string
}

func (d Dim) String() string {
	if d.Param != "" {
		return d.Param
	}
	return fmt.Sprint(d.Size)
}

// Dims returns fixed dimensions.
func Dims(sizes ...int64) []Dim {
	d := make([]Dim, len(sizes))
	for i, s := range sizes {
		d[i] = Dim{Size: s}
	}
	return d
}
