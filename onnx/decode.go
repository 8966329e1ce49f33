package onnx

import (
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Unmarshal decodes a ModelProto. Fields outside the subset this package models are skipped;
// a malformed or truncated encoding is an error (never a panic). Initializer data stays in raw
// form, sharing b's memory (Tensor.Floats reads it); tensors stored as float_data or int64_data
// are converted to raw data.
func Unmarshal(b []byte) (*Model, error) {
	m := &Model{}
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch num {
		case modelIRVersion:
			m.IRVersion = int64(x)
		case modelProducerName:
			m.ProducerName = string(v)
		case modelProducerVersion:
			m.ProducerVersion = string(v)
		case modelDocString:
			m.DocString = string(v)
		case modelGraph:
			return decodeGraph(v, &m.Graph)
		case modelOpsetImport:
			var domain string
			var version int64
			if err := fields(v, func(num protowire.Number, _ protowire.Type, v []byte, x uint64) error {
				switch num {
				case opsetDomain:
					domain = string(v)
				case opsetVersion:
					version = int64(x)
				}
				return nil
			}); err != nil {
				return fmt.Errorf("opset_import: %w", err)
			}
			if domain == "" || domain == "ai.onnx" {
				m.Opset = version
			}
		case modelMetadataProps:
			var p Property
			if err := fields(v, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
				switch num {
				case entryKey:
					p.Key = string(v)
				case entryValue:
					p.Value = string(v)
				}
				return nil
			}); err != nil {
				return fmt.Errorf("metadata_props: %w", err)
			}
			m.Metadata = append(m.Metadata, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("not a readable ONNX model: %w", err)
	}
	return m, nil
}

func decodeGraph(b []byte, g *Graph) error {
	return fields(b, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
		switch num {
		case graphNode:
			var n Node
			if err := decodeNode(v, &n); err != nil {
				return fmt.Errorf("node %d: %w", len(g.Nodes), err)
			}
			g.Nodes = append(g.Nodes, n)
		case graphName:
			g.Name = string(v)
		case graphInitializer:
			var t Tensor
			if err := decodeTensor(v, &t); err != nil {
				return fmt.Errorf("initializer %d: %w", len(g.Initializers), err)
			}
			g.Initializers = append(g.Initializers, t)
		case graphInput, graphOutput:
			var val Value
			if err := decodeValue(v, &val); err != nil {
				return fmt.Errorf("graph input or output: %w", err)
			}
			if num == graphInput {
				g.Inputs = append(g.Inputs, val)
			} else {
				g.Outputs = append(g.Outputs, val)
			}
		}
		return nil
	})
}

func decodeNode(b []byte, n *Node) error {
	return fields(b, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
		switch num {
		case nodeInput:
			n.Inputs = append(n.Inputs, string(v))
		case nodeOutput:
			n.Outputs = append(n.Outputs, string(v))
		case nodeName:
			n.Name = string(v)
		case nodeOpType:
			n.Op = string(v)
		case nodeAttribute:
			var a Attr
			if err := decodeAttr(v, &a); err != nil {
				return fmt.Errorf("attribute: %w", err)
			}
			n.Attrs = append(n.Attrs, a)
		}
		return nil
	})
}

func decodeAttr(b []byte, a *Attr) error {
	return fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch num {
		case attrName:
			a.Name = string(v)
		case attrType:
			a.Type = AttrType(x)
		case attrF:
			a.Float = math.Float32frombits(uint32(x))
		case attrI:
			a.Int = int64(x)
		case attrS:
			a.String = string(v)
		case attrFloats:
			return repeated(typ, v, x, protowire.Fixed32Type, func(u uint64) { a.Floats = append(a.Floats, math.Float32frombits(uint32(u))) })
		case attrInts:
			return repeated(typ, v, x, protowire.VarintType, func(u uint64) { a.Ints = append(a.Ints, int64(u)) })
		}
		return nil
	})
}

func decodeTensor(b []byte, t *Tensor) error {
	var floats []float32
	var ints []int64
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch num {
		case tensorDims:
			return repeated(typ, v, x, protowire.VarintType, func(u uint64) { t.Dims = append(t.Dims, int64(u)) })
		case tensorDataType:
			t.Type = DataType(x)
		case tensorName:
			t.Name = string(v)
		case tensorRawData:
			t.Raw = v
		case tensorFloatData:
			return repeated(typ, v, x, protowire.Fixed32Type, func(u uint64) { floats = append(floats, math.Float32frombits(uint32(u))) })
		case tensorInt64Data:
			return repeated(typ, v, x, protowire.VarintType, func(u uint64) { ints = append(ints, int64(u)) })
		}
		return nil
	})
	if err != nil {
		return err
	}
	switch {
	case t.Raw != nil:
	case floats != nil:
		t.Raw = FloatTensor("", nil, floats).Raw
	case ints != nil:
		t.Raw = Int64Tensor("", nil, ints).Raw
	}
	return nil
}

func decodeValue(b []byte, val *Value) error {
	return fields(b, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
		switch num {
		case valueName:
			val.Name = string(v)
		case valueType:
			return fields(v, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
				if num != typeTensor {
					return nil
				}
				return fields(v, func(num protowire.Number, _ protowire.Type, v []byte, x uint64) error {
					switch num {
					case tensorElemType:
						val.Type = DataType(x)
					case tensorShape:
						return fields(v, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
							if num != shapeDim {
								return nil
							}
							var d Dim
							err := fields(v, func(num protowire.Number, _ protowire.Type, v []byte, x uint64) error {
								switch num {
								case dimValue:
									d.Size = int64(x)
								case dimParam:
									d.Param = string(v)
								}
								return nil
							})
							val.Shape = append(val.Shape, d)
							return err
						})
					}
					return nil
				})
			})
		}
		return nil
	})
}

// fields calls f for each field of a message: bytes fields with their value v, varint and
// fixed fields with their value x.
func fields(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var u uint32
			u, n = protowire.ConsumeFixed32(b)
			x = uint64(u)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default: // groups are not in onnx.proto
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n >= 0 {
				return fmt.Errorf("field %d: unexpected group", num)
			}
		}
		if n < 0 {
			return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := f(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

// repeated reads one element of a repeated scalar field (elem its wire type) or, in a bytes
// field, a packed run of them.
func repeated(typ protowire.Type, v []byte, x uint64, elem protowire.Type, add func(uint64)) error {
	if typ == elem {
		add(x)
		return nil
	}
	if typ != protowire.BytesType {
		return fmt.Errorf("repeated field of wire type %d, want %d or packed", typ, elem)
	}
	for len(v) > 0 {
		var u uint64
		var n int
		if elem == protowire.Fixed32Type {
			var f uint32
			f, n = protowire.ConsumeFixed32(v)
			u = uint64(f)
		} else {
			u, n = protowire.ConsumeVarint(v)
		}
		if n < 0 {
			return errors.New("truncated packed field")
		}
		add(u)
		v = v[n:]
	}
	return nil
}
