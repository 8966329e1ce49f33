package onnx

import (
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of onnx.proto (proto2): what each message writes and reads.
const (
	modelIRVersion       = 1
	modelProducerName    = 2
	modelProducerVersion = 3
	modelDocString       = 6
	modelGraph           = 7
	modelOpsetImport     = 8
	modelMetadataProps   = 14

	opsetDomain  = 1
	opsetVersion = 2

	entryKey   = 1
	entryValue = 2

	graphNode        = 1
	graphName        = 2
	graphInitializer = 5
	graphInput       = 11
	graphOutput      = 12

	nodeInput     = 1
	nodeOutput    = 2
	nodeName      = 3
	nodeOpType    = 4
	nodeAttribute = 5

	attrName   = 1
	attrF      = 2
	attrI      = 3
	attrS      = 4
	attrFloats = 7
	attrInts   = 8
	attrType   = 20

	tensorDims      = 1
	tensorDataType  = 2
	tensorFloatData = 4 // read only: segkit writes raw_data
	tensorInt64Data = 7 // read only
	tensorName      = 8
	tensorRawData   = 9

	valueName = 1
	valueType = 2

	typeTensor     = 1
	tensorElemType = 1
	tensorShape    = 2
	shapeDim       = 1
	dimValue       = 1
	dimParam       = 2
)

// Marshal encodes the model as a ModelProto. Repeated scalars are written unpacked (proto2's
// default for onnx.proto's ints, floats and dims), which every protobuf reader accepts.
func Marshal(m *Model) []byte {
	var b []byte
	b = appendVarint(b, modelIRVersion, uint64(m.IRVersion))
	b = appendString(b, modelProducerName, m.ProducerName)
	b = appendString(b, modelProducerVersion, m.ProducerVersion)
	b = appendString(b, modelDocString, m.DocString)
	b = appendMessage(b, modelGraph, encodeGraph(&m.Graph))
	var opset []byte
	opset = appendVarint(opset, opsetVersion, uint64(m.Opset)) // domain "" (absent): ai.onnx
	b = appendMessage(b, modelOpsetImport, opset)
	for _, p := range m.Metadata {
		var e []byte
		e = appendString(e, entryKey, p.Key)
		e = appendString(e, entryValue, p.Value)
		b = appendMessage(b, modelMetadataProps, e)
	}
	return b
}

func encodeGraph(g *Graph) []byte {
	var b []byte
	for i := range g.Nodes {
		b = appendMessage(b, graphNode, encodeNode(&g.Nodes[i]))
	}
	b = appendString(b, graphName, g.Name)
	for i := range g.Initializers {
		b = appendMessage(b, graphInitializer, encodeTensor(&g.Initializers[i]))
	}
	for i := range g.Inputs {
		b = appendMessage(b, graphInput, encodeValue(&g.Inputs[i]))
	}
	for i := range g.Outputs {
		b = appendMessage(b, graphOutput, encodeValue(&g.Outputs[i]))
	}
	return b
}

func encodeNode(n *Node) []byte {
	var b []byte
	for _, in := range n.Inputs {
		b = appendBytes(b, nodeInput, []byte(in)) // an empty name (omitted optional input) is written too
	}
	for _, out := range n.Outputs {
		b = appendBytes(b, nodeOutput, []byte(out))
	}
	b = appendString(b, nodeName, n.Name)
	b = appendString(b, nodeOpType, n.Op)
	for i := range n.Attrs {
		b = appendMessage(b, nodeAttribute, encodeAttr(&n.Attrs[i]))
	}
	return b
}

func encodeAttr(a *Attr) []byte {
	var b []byte
	b = appendString(b, attrName, a.Name)
	switch a.Type {
	case AttrFloat:
		b = protowire.AppendTag(b, attrF, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(a.Float))
	case AttrInt:
		b = appendVarint(b, attrI, uint64(a.Int))
	case AttrString:
		b = appendBytes(b, attrS, []byte(a.String))
	case AttrFloats:
		for _, f := range a.Floats {
			b = protowire.AppendTag(b, attrFloats, protowire.Fixed32Type)
			b = protowire.AppendFixed32(b, math.Float32bits(f))
		}
	case AttrInts:
		for _, v := range a.Ints {
			b = appendVarint(b, attrInts, uint64(v))
		}
	}
	return appendVarint(b, attrType, uint64(a.Type))
}

func encodeTensor(t *Tensor) []byte {
	var b []byte
	for _, d := range t.Dims {
		b = appendVarint(b, tensorDims, uint64(d))
	}
	b = appendVarint(b, tensorDataType, uint64(t.Type))
	b = appendString(b, tensorName, t.Name)
	return appendBytes(b, tensorRawData, t.Raw)
}

func encodeValue(v *Value) []byte {
	var shape []byte
	for _, d := range v.Shape {
		var dim []byte
		if d.Param != "" {
			dim = appendBytes(dim, dimParam, []byte(d.Param))
		} else {
			dim = protowire.AppendTag(dim, dimValue, protowire.VarintType)
			dim = protowire.AppendVarint(dim, uint64(d.Size))
		}
		shape = appendMessage(shape, shapeDim, dim)
	}
	var tensor []byte
	tensor = appendVarint(tensor, tensorElemType, uint64(v.Type))
	tensor = appendMessage(tensor, tensorShape, shape)
	var typ []byte
	typ = appendMessage(typ, typeTensor, tensor)
	var b []byte
	b = appendString(b, valueName, v.Name)
	return appendMessage(b, valueType, typ)
}

// appendVarint writes a varint field (int64 values as two's complement, as protobuf does).
func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// appendString writes a string field, omitted when empty (an absent optional field).
func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	return appendBytes(b, num, []byte(s))
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// appendMessage writes an embedded message (written even when empty: its presence matters).
func appendMessage(b []byte, num protowire.Number, msg []byte) []byte {
	return appendBytes(b, num, msg)
}
