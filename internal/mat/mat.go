// Package mat reads what SBD's cls/*.mat files hold: MATLAB v5 MAT-files (compressed or not)
// with a struct whose field is a numeric matrix (GTcls.Segmentation). It reads exactly that;
// every size is checked against the data before anything is allocated.
package mat

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Matrix is a 2-D numeric array, row-major (MAT-files store columns first).
type Matrix struct {
	Rows, Cols int
	Data       []float64
}

// Data element types and array classes of the MAT v5 format.
const (
	miINT8, miUINT8, miINT16, miUINT16, miINT32, miUINT32, miSINGLE = 1, 2, 3, 4, 5, 6, 7
	miDOUBLE, miINT64, miUINT64, miMATRIX, miCOMPRESSED             = 9, 12, 13, 14, 15
	mxSTRUCT                                                        = 2
	maxDecompressed                                                 = 1 << 28
	maxElements                                                     = 1 << 26
)

var errShort = errors.New("truncated data element")

// element splits the next data element off b: its type, its data and what follows.
func element(b []byte) (typ uint32, data, rest []byte, err error) {
	if len(b) < 8 {
		return 0, nil, nil, errShort
	}
	w0 := binary.LittleEndian.Uint32(b)
	if n := w0 >> 16; n != 0 { // small element: type and size in one word, data in the next
		if n > 4 {
			return 0, nil, nil, fmt.Errorf("small data element of %d bytes", n)
		}
		return w0 & 0xffff, b[4 : 4+n], b[8:], nil
	}
	n := uint64(binary.LittleEndian.Uint32(b[4:]))
	if n > uint64(len(b)-8) {
		return 0, nil, nil, fmt.Errorf("data element of %d bytes with %d left", n, len(b)-8)
	}
	next := 8 + n
	if w0 != miCOMPRESSED { // elements are padded to 8 bytes, compressed ones are not
		next = min(8+(n+7)/8*8, uint64(len(b)))
	}
	return w0, b[8 : 8+n], b[next:], nil
}

// ReadField returns field of the struct variable named variable.
func ReadField(file []byte, variable, field string) (Matrix, error) {
	if len(file) < 128 || !bytes.HasPrefix(file, []byte("MATLAB 5.0 MAT-file")) {
		return Matrix{}, errors.New("not a MATLAB 5.0 MAT-file")
	}
	if file[126] != 'I' || file[127] != 'M' {
		return Matrix{}, errors.New("MAT-file is not little-endian")
	}
	b := file[128:]
	for len(b) > 0 {
		typ, data, rest, err := element(b)
		if err != nil {
			return Matrix{}, err
		}
		b = rest
		if typ == miCOMPRESSED {
			zr, err := zlib.NewReader(bytes.NewReader(data))
			if err != nil {
				return Matrix{}, fmt.Errorf("compressed element: %w", err)
			}
			inner, err := io.ReadAll(io.LimitReader(zr, maxDecompressed+1))
			if err != nil {
				return Matrix{}, fmt.Errorf("compressed element: %w", err)
			}
			if len(inner) > maxDecompressed {
				return Matrix{}, errors.New("compressed element too large")
			}
			if typ, data, _, err = element(inner); err != nil {
				return Matrix{}, err
			}
		}
		if typ != miMATRIX {
			continue
		}
		name, class, dims, body, err := header(data)
		if err != nil {
			return Matrix{}, err
		}
		if name != variable {
			continue
		}
		if class != mxSTRUCT || len(dims) != 2 || dims[0]*dims[1] != 1 {
			return Matrix{}, fmt.Errorf("variable %s is not a 1×1 struct", variable)
		}
		return structField(body, field)
	}
	return Matrix{}, fmt.Errorf("no variable %s", variable)
}

// header reads an array's flags, dimensions and name, and returns the rest of its data.
func header(b []byte) (name string, class uint32, dims []int, rest []byte, err error) {
	typ, flags, b, err := element(b)
	if err != nil || typ != miUINT32 || len(flags) < 4 {
		return "", 0, nil, nil, fmt.Errorf("array flags: %v", orBad(err))
	}
	class = binary.LittleEndian.Uint32(flags) & 0xff
	typ, d, b, err := element(b)
	if err != nil || typ != miINT32 || len(d) < 8 || len(d)%4 != 0 {
		return "", 0, nil, nil, fmt.Errorf("array dimensions: %v", orBad(err))
	}
	total := 1
	for i := 0; i < len(d); i += 4 {
		n := int(int32(binary.LittleEndian.Uint32(d[i:])))
		if n < 0 || n > maxElements {
			return "", 0, nil, nil, fmt.Errorf("array dimension %d", n)
		}
		dims = append(dims, n)
		if total *= n; total > maxElements {
			return "", 0, nil, nil, fmt.Errorf("array of dimensions %v is too large", dims)
		}
	}
	typ, nm, b, err := element(b)
	if err != nil || typ != miINT8 {
		return "", 0, nil, nil, fmt.Errorf("array name: %v", orBad(err))
	}
	return string(nm), class, dims, b, nil
}

func orBad(err error) error {
	if err != nil {
		return err
	}
	return errors.New("malformed")
}

// structField reads a 1×1 struct's field names, then the field's array.
func structField(b []byte, field string) (Matrix, error) {
	typ, l, b, err := element(b)
	if err != nil || typ != miINT32 || len(l) != 4 {
		return Matrix{}, fmt.Errorf("struct field name length: %v", orBad(err))
	}
	width := int(binary.LittleEndian.Uint32(l))
	typ, names, b, err := element(b)
	if err != nil || typ != miINT8 || width <= 0 || len(names)%width != 0 {
		return Matrix{}, fmt.Errorf("struct field names: %v", orBad(err))
	}
	for i := 0; i < len(names)/width; i++ {
		name := string(bytes.TrimRight(names[i*width:(i+1)*width], "\x00"))
		typ, data, rest, err := element(b)
		if err != nil || typ != miMATRIX {
			return Matrix{}, fmt.Errorf("struct field %s: %v", name, orBad(err))
		}
		b = rest
		if name == field {
			return numeric(data, field)
		}
	}
	return Matrix{}, fmt.Errorf("struct has no field %s", field)
}

// numeric reads a real 2-D numeric array (any storage type) into row-major float64.
func numeric(b []byte, what string) (Matrix, error) {
	_, class, dims, b, err := header(b)
	if err != nil {
		return Matrix{}, fmt.Errorf("%s: %w", what, err)
	}
	if len(dims) != 2 || class < 6 || class > 15 {
		return Matrix{}, fmt.Errorf("%s is not a 2-D numeric array (class %d, dimensions %v)", what, class, dims)
	}
	typ, data, _, err := element(b)
	if err != nil {
		return Matrix{}, fmt.Errorf("%s: %w", what, err)
	}
	size := map[uint32]int{miINT8: 1, miUINT8: 1, miINT16: 2, miUINT16: 2, miINT32: 4, miUINT32: 4,
		miSINGLE: 4, miDOUBLE: 8, miINT64: 8, miUINT64: 8}[typ]
	rows, cols := dims[0], dims[1]
	if size == 0 || len(data) != rows*cols*size {
		return Matrix{}, fmt.Errorf("%s: %d bytes of type %d for %d×%d values", what, len(data), typ, rows, cols)
	}
	m := Matrix{Rows: rows, Cols: cols, Data: make([]float64, rows*cols)}
	for k := 0; k < rows*cols; k++ {
		v := data[k*size:]
		var f float64
		switch typ {
		case miINT8:
			f = float64(int8(v[0]))
		case miUINT8:
			f = float64(v[0])
		case miINT16:
			f = float64(int16(binary.LittleEndian.Uint16(v)))
		case miUINT16:
			f = float64(binary.LittleEndian.Uint16(v))
		case miINT32:
			f = float64(int32(binary.LittleEndian.Uint32(v)))
		case miUINT32:
			f = float64(binary.LittleEndian.Uint32(v))
		case miSINGLE:
			f = float64(math.Float32frombits(binary.LittleEndian.Uint32(v)))
		case miDOUBLE:
			f = math.Float64frombits(binary.LittleEndian.Uint64(v))
		case miINT64:
			f = float64(int64(binary.LittleEndian.Uint64(v)))
		case miUINT64:
			f = float64(binary.LittleEndian.Uint64(v))
		}
		m.Data[(k%rows)*cols+k/rows] = f // column-major → row-major
	}
	return m, nil
}
