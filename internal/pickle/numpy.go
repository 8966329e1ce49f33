package pickle

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
)

// DType is a numpy dtype. Kind and Size describe the plain numbers this package decodes:
// 'b' bool, 'i' signed and 'u' unsigned integers (1, 2, 4, 8 bytes), 'f' floats (2, 4, 8);
// Kind is 0 for every other dtype (strings, objects, records, dates), kept but not decoded.
type DType struct {
	Str   string // as pickled: "f8", "u1", "U5", ...
	Kind  byte
	Size  int
	Order byte // '<' little-endian, '>' big-endian, '|' single bytes
}

// numpyDType is numpy.dtype(str, align, copy); BUILD then sets the byte order.
func numpyDType(args Tuple) (any, error) {
	if len(args) == 0 {
		return nil, errors.New("numpy.dtype without arguments")
	}
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("numpy.dtype of a %s", typeName(args[0]))
	}
	dt := &DType{Str: s, Order: '<'}
	spec := s
	if len(spec) > 0 && (spec[0] == '<' || spec[0] == '>' || spec[0] == '|' || spec[0] == '=') {
		dt.setOrder(spec[0])
		spec = spec[1:]
	}
	if len(spec) >= 2 {
		size, err := strconv.Atoi(spec[1:])
		kind := spec[0]
		valid := err == nil && (kind == 'b' && size == 1 ||
			(kind == 'i' || kind == 'u') && (size == 1 || size == 2 || size == 4 || size == 8) ||
			kind == 'f' && (size == 2 || size == 4 || size == 8))
		if valid {
			dt.Kind, dt.Size = kind, size
		}
	}
	if dt.Size == 1 {
		dt.Order = '|'
	}
	return dt, nil
}

func (dt *DType) setOrder(c byte) {
	if c == '=' { // native: every machine numpy pickles on in practice is little-endian
		c = '<'
	}
	dt.Order = c
}

// setState takes the dtype's pickled state (version, byte order, subarray, names, fields,
// element size, alignment, flags).
func (dt *DType) setState(state any) error {
	t, ok := state.(Tuple)
	if !ok || len(t) < 2 {
		return fmt.Errorf("numpy.dtype state is a %s, not a tuple", typeName(state))
	}
	order, ok := t[1].(string)
	if !ok || len(order) != 1 || order != "<" && order != ">" && order != "|" && order != "=" {
		return fmt.Errorf("numpy.dtype byte order %v", t[1])
	}
	if dt.Size != 1 {
		dt.setOrder(order[0])
	}
	for _, part := range t[2:min(len(t), 5)] { // a subarray or fields: not a plain number
		if part != nil {
			dt.Kind, dt.Size = 0, 0
		}
	}
	return nil
}

// decode decodes one element of a plain-number dtype from b (len(b) == dt.Size).
func (dt *DType) decode(b []byte) any {
	var buf [8]byte
	copy(buf[:], b)
	if dt.Order == '>' {
		for i := range dt.Size {
			buf[i] = b[dt.Size-1-i]
		}
	}
	u := binary.LittleEndian.Uint64(buf[:])
	switch dt.Kind {
	case 'b':
		return u != 0
	case 'i':
		shift := 64 - 8*uint(dt.Size)
		return int64(u<<shift) >> shift
	case 'u':
		if u > math.MaxInt64 {
			return new(big.Int).SetUint64(u)
		}
		return int64(u)
	}
	switch dt.Size { // 'f'
	case 2:
		return float64(math.Float32frombits(HalfToFloat32Bits(uint16(u))))
	case 4:
		return float64(math.Float32frombits(uint32(u)))
	}
	return math.Float64frombits(u)
}

// HalfToFloat32Bits converts an IEEE 754 half-precision float to single precision's bits
// (exactly: every half is a float32).
func HalfToFloat32Bits(h uint16) uint32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf, NaN (payload kept)
		return sign | 0xff<<23 | frac<<13
	case exp != 0: // normal: rebias 15 → 127
		return sign | (exp+112)<<23 | frac<<13
	case frac == 0:
		return sign
	}
	// Subnormal: shift the leading 1 up to the implicit bit, lowering the exponent as we go.
	e := uint32(113)
	for frac&0x400 == 0 {
		frac <<= 1
		e--
	}
	return sign | e<<23 | (frac&0x3ff)<<13
}

// numpyScalar is numpy.core.multiarray.scalar(dtype, bytes): a numpy number (np.int64(0),
// np.float32(0.5)) becomes a Go number. Scalars of other dtypes stay opaque.
func numpyScalar(args Tuple) (any, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("numpy scalar with %d arguments", len(args))
	}
	dt, ok := args[0].(*DType)
	if !ok {
		return nil, fmt.Errorf("numpy scalar of dtype %s", typeName(args[0]))
	}
	if dt.Kind == 0 {
		return &Object{Module: "numpy.core.multiarray", Name: "scalar", Args: args}, nil
	}
	b, err := asBytes(args[1])
	if err != nil || len(b) != dt.Size {
		return nil, fmt.Errorf("numpy %s scalar of %d bytes (%s)", dt.Str, len(b), typeName(args[1]))
	}
	return dt.decode(b), nil
}

// asBytes accepts bytes, and str for Python 2's byte strings.
func asBytes(v any) ([]byte, error) {
	switch v := v.(type) {
	case []byte:
		return v, nil
	case string:
		return []byte(v), nil
	}
	return nil, fmt.Errorf("a %s, not bytes", typeName(v))
}

// NDArray is a numpy array. Raw holds its elements as stored (byte order DType.Order, in
// column-major order when Fortran); Int64s and Float64s decode plain-number arrays in row-major
// order. Object arrays (dtype O) keep their elements in Items instead.
type NDArray struct {
	Shape   []int
	DType   *DType
	Fortran bool
	Raw     []byte
	Items   []any
}

// Len is the number of elements.
func (a *NDArray) Len() int {
	n := 1
	for _, d := range a.Shape {
		n *= d
	}
	return n
}

// numpyReconstruct is numpy.core.multiarray._reconstruct(ndarray, (0,), b'b'): an empty
// array that BUILD fills. Subclasses (masked arrays, matrices) stay opaque.
func numpyReconstruct(args Tuple) (any, error) {
	if len(args) < 1 || args[0] != (Global{"numpy", "ndarray"}) {
		return &Object{Module: "numpy.core.multiarray", Name: "_reconstruct", Args: args}, nil
	}
	return &NDArray{}, nil
}

// setState takes ([version,] shape, dtype, is_fortran, data).
func (a *NDArray) setState(state any) error {
	t, ok := state.(Tuple)
	if ok && len(t) == 5 {
		t = t[1:]
	}
	if !ok || len(t) != 4 {
		return fmt.Errorf("numpy array state is a %s, not a tuple of 4 or 5", typeName(state))
	}
	fortran, ok := t[2].(bool)
	if !ok {
		return fmt.Errorf("numpy array order flag is a %s", typeName(t[2]))
	}
	return a.fill(t[0], t[1], fortran, t[3])
}

// numpyFromBuffer is numpy.core.numeric._frombuffer(buffer, dtype, shape, order): how
// protocol 5 pickles arrays.
func numpyFromBuffer(args Tuple) (any, error) {
	if len(args) != 4 {
		return nil, fmt.Errorf("numpy _frombuffer with %d arguments", len(args))
	}
	order, ok := args[3].(string)
	if !ok || order != "C" && order != "F" {
		return nil, fmt.Errorf("numpy _frombuffer order %v", args[3])
	}
	a := &NDArray{}
	return a, a.fill(args[2], args[1], order == "F", args[0])
}

func (a *NDArray) fill(shape, dtype any, fortran bool, data any) error {
	dims, ok := shape.(Tuple)
	if !ok {
		return fmt.Errorf("numpy array shape is a %s", typeName(shape))
	}
	dt, ok := dtype.(*DType)
	if !ok {
		return fmt.Errorf("numpy array dtype is a %s", typeName(dtype))
	}
	a.Shape, a.DType, a.Fortran = make([]int, len(dims)), dt, fortran
	n := int64(1)
	for i, d := range dims {
		v, ok := d.(int64)
		if !ok || v < 0 {
			return fmt.Errorf("numpy array dimension %v", d)
		}
		if v != 0 && n > math.MaxInt32/v { // beyond any array a pickle of this size can hold
			return fmt.Errorf("numpy array of shape %v is too large", dims)
		}
		n *= v
		a.Shape[i] = int(v)
	}
	if l, ok := data.(*List); ok { // an object array
		if int64(len(l.Items)) != n {
			return fmt.Errorf("numpy object array of %d elements holds %d", n, len(l.Items))
		}
		a.Items = l.Items
		return nil
	}
	raw, err := asBytes(data)
	if err != nil {
		return fmt.Errorf("numpy array data: %w", err)
	}
	if dt.Kind != 0 && int64(len(raw)) != n*int64(dt.Size) {
		return fmt.Errorf("numpy array of %d %s elements has %d bytes", n, dt.Str, len(raw))
	}
	a.Raw = raw
	return nil
}

// elements returns the decoded elements in row-major order.
func (a *NDArray) elements() ([]any, error) {
	dt := a.DType
	if dt == nil || dt.Kind == 0 || a.Items != nil {
		return nil, fmt.Errorf("numpy array of dtype %v does not hold plain numbers", dt)
	}
	n := a.Len()
	out := make([]any, n)
	idx := make([]int, len(a.Shape)) // the column-major walk's index, when Fortran
	for k := range n {
		at := k
		if a.Fortran { // element k in memory is at idx; place it at idx's row-major position
			at = 0
			for i, d := range a.Shape {
				at = at*d + idx[i]
			}
			for i := range idx {
				if idx[i]++; idx[i] < a.Shape[i] {
					break
				}
				idx[i] = 0
			}
		}
		out[at] = dt.decode(a.Raw[k*dt.Size : (k+1)*dt.Size])
	}
	return out, nil
}

// Int64s returns an integer or bool array's elements in row-major order.
func (a *NDArray) Int64s() ([]int64, error) {
	el, err := a.elements()
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(el))
	for i, v := range el {
		switch v := v.(type) {
		case int64:
			out[i] = v
		case bool:
			if v {
				out[i] = 1
			}
		default:
			return nil, fmt.Errorf("numpy %s array does not hold int64 values", a.DType.Str)
		}
	}
	return out, nil
}

// Float64s returns a plain-number array's elements in row-major order.
func (a *NDArray) Float64s() ([]float64, error) {
	el, err := a.elements()
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(el))
	for i, v := range el {
		switch v := v.(type) {
		case float64:
			out[i] = v
		case int64:
			out[i] = float64(v)
		case bool:
			if v {
				out[i] = 1
			}
		case *big.Int:
			out[i], _ = new(big.Float).SetInt(v).Float64()
		}
	}
	return out, nil
}
