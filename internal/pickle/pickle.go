// Package pickle decodes Python pickles (protocols 0–5) into Go values without running Python.
// The few callables that torch.save and numpy pickles use are built in (OrderedDict, set,
// bytes, numpy scalars, dtypes and arrays; more through Decoder.Funcs); every other class
// becomes an *Object that records what the pickle did with it, so an unknown class never stops
// the decoding. Malformed input is an error, never a panic, no declared length is trusted
// beyond the bytes that remain to be read, and the values, memo entries, stack and MARKs a
// pickle makes are bounded by its size and by caps that no checkpoint comes near.
//
// Python values map to Go as follows:
//
//	None → nil; bool → bool; int → int64, or *big.Int beyond int64; float → float64;
//	str → string; bytes, bytearray → []byte; tuple → Tuple; list → *List;
//	dict, OrderedDict → *Dict; set, frozenset → *Set; numpy scalars → bool, int64
//	(*big.Int beyond), float64; numpy arrays → *NDArray; numpy dtypes → *DType;
//	a class or function named by the pickle → Global; an instance of an unknown class → *Object.
package pickle

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"math/bits"
)

// Tuple is a Python tuple.
type Tuple []any

// List is a Python list (a pointer: pickles share and then append to lists).
type List struct{ Items []any }

// Set is a Python set or frozenset. Items are kept as pickled, without removing duplicates.
type Set struct {
	Items  []any
	Frozen bool
}

// Global is a class or function the pickle names (GLOBAL, STACK_GLOBAL), e.g.
// {"torch", "FloatStorage"}.
type Global struct{ Module, Name string }

func (g Global) String() string { return g.Module + "." + g.Name }

// Object is an instance of a class this package does not know: it keeps the class's name and
// everything the pickle gave it, so callers can still read what they need from it.
type Object struct {
	Module, Name string
	Args         Tuple   // from REDUCE, NEWOBJ, INST or OBJ
	Kwargs       *Dict   // from NEWOBJ_EX
	State        any     // from BUILD (usually a *Dict of attributes)
	Items        *Dict   // from SETITEM(S): a dict subclass's entries
	List         []any   // from APPEND(S) and ADDITEMS: a list or set subclass's items
	Callee       *Object // set when the pickle called an object rather than a class
}

// Func is a callable the decoder runs for REDUCE, NEWOBJ and the like: it gets the arguments
// and returns the value to push.
type Func func(args Tuple) (any, error)

// Decoder reads pickles, one after another, from a stream.
type Decoder struct {
	// Funcs adds callables, or overrides the built-in ones (see Builtins).
	Funcs map[Global]Func
	// PersistentLoad resolves persistent ids (PERSID, BINPERSID); without it they are an error.
	PersistentLoad func(pid any) (any, error)

	r    *bufio.Reader
	left int64 // bytes the decoder may still read: every declared length is checked against it
	off  int64 // bytes read so far
	// made counts the bytes the decoder has allocated beyond the strings it read: a one-byte
	// opcode makes a list, a dict or a memo entry of tens of bytes, and the built-in callables
	// can copy one memoized value over and over (dict(d), bytes(b)). It is charged against a
	// budget in proportion to the input, with a cap, which keeps memory linear in what the
	// input can hold and bounded whatever it is.
	made, budget int64
}

// The budget: bytesPerByte per input byte, at most maxBudget, plus minBudget. A torch.save
// pickle makes 10–20 bytes of values per byte (as charged, the strings aside); the state dict
// and optimizer state of the largest HRNet, a few MiB.
const (
	bytesPerByte = 32
	maxBudget    = 32 << 20
	minBudget    = 1 << 20
)

// maxStack and maxMarks bound the stack and the MARKs open on it: a pickle of a state dict
// holds a few thousand values at a time, nested a few levels deep.
const (
	maxStack = 1 << 18
	maxMarks = 1 << 16
)

// NewDecoder reads pickles from r, reading at most limit bytes in all (usually the bytes that
// remain in the file: lengths beyond them are refused before anything is allocated).
func NewDecoder(r io.Reader, limit int64) *Decoder {
	limit = max(limit, 0)
	return &Decoder{r: bufio.NewReader(r), left: limit, budget: min(bytesPerByte*min(limit, maxBudget), maxBudget) + minBudget}
}

// Offset is the number of bytes the decoder has read: after Decode, where the next pickle
// (or whatever follows) starts.
func (d *Decoder) Offset() int64 { return d.off }

// Unmarshal decodes one pickle from data with the built-in callables only.
func Unmarshal(data []byte) (any, error) {
	return NewDecoder(bytes.NewReader(data), int64(len(data))).Decode()
}

// ErrTruncated is returned (wrapped) when the input ends inside a pickle.
var ErrTruncated = errors.New("truncated")

// Error is a decoding error at a byte offset.
type Error struct {
	Offset int64 // where the opcode that failed starts
	Op     byte
	Err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("pickle: offset %d, opcode 0x%02x: %v", e.Offset, e.Op, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

type machine struct {
	*Decoder
	stack []any
	marks []int // stack lengths at each MARK
	memo  map[int64]any
	depth int // nesting of copyreg.__newobj__ calls (a pickle can make them call themselves)
}

// Decode reads one pickle, up to and including its STOP opcode, and returns its value.
func (d *Decoder) Decode() (any, error) {
	m := machine{Decoder: d, memo: map[int64]any{}}
	for {
		at := d.off
		op, err := d.readByte()
		if err != nil {
			if at == 0 && errors.Is(err, ErrTruncated) {
				return nil, &Error{Offset: at, Err: fmt.Errorf("empty input: %w", ErrTruncated)}
			}
			return nil, &Error{Offset: at, Err: err}
		}
		if op == opStop {
			v, err := m.pop()
			if err != nil {
				return nil, &Error{Offset: at, Op: op, Err: err}
			}
			return v, nil
		}
		if err := m.step(op); err != nil {
			return nil, &Error{Offset: at, Op: op, Err: err}
		}
		if err := m.checkStack(); err != nil {
			return nil, &Error{Offset: at, Op: op, Err: err}
		}
	}
}

// Opcodes, as named in Python's pickletools.
const (
	opMark           = '('
	opStop           = '.'
	opPop            = '0'
	opPopMark        = '1'
	opDup            = '2'
	opFloat          = 'F'
	opInt            = 'I'
	opBinInt         = 'J'
	opBinInt1        = 'K'
	opLong           = 'L'
	opBinInt2        = 'M'
	opNone           = 'N'
	opPersID         = 'P'
	opBinPersID      = 'Q'
	opReduce         = 'R'
	opString         = 'S'
	opBinString      = 'T'
	opShortBinString = 'U'
	opUnicode        = 'V'
	opBinUnicode     = 'X'
	opAppend         = 'a'
	opBuild          = 'b'
	opGlobal         = 'c'
	opDict           = 'd'
	opEmptyDict      = '}'
	opAppends        = 'e'
	opGet            = 'g'
	opBinGet         = 'h'
	opInst           = 'i'
	opLongBinGet     = 'j'
	opList           = 'l'
	opEmptyList      = ']'
	opObj            = 'o'
	opPut            = 'p'
	opBinPut         = 'q'
	opLongBinPut     = 'r'
	opSetItem        = 's'
	opTuple          = 't'
	opEmptyTuple     = ')'
	opSetItems       = 'u'
	opBinFloat       = 'G'
	opBinBytes       = 'B'
	opShortBinBytes  = 'C'

	opProto          = 0x80
	opNewObj         = 0x81
	opExt1           = 0x82
	opExt2           = 0x83
	opExt4           = 0x84
	opTuple1         = 0x85
	opTuple2         = 0x86
	opTuple3         = 0x87
	opNewTrue        = 0x88
	opNewFalse       = 0x89
	opLong1          = 0x8a
	opLong4          = 0x8b
	opShortBinUni    = 0x8c
	opBinUnicode8    = 0x8d
	opBinBytes8      = 0x8e
	opEmptySet       = 0x8f
	opAddItems       = 0x90
	opFrozenSet      = 0x91
	opNewObjEx       = 0x92
	opStackGlobal    = 0x93
	opMemoize        = 0x94
	opFrame          = 0x95
	opByteArray8     = 0x96
	opNextBuffer     = 0x97
	opReadOnlyBuffer = 0x98
)

// maxDigits bounds decimal integers in text opcodes, as Python does (int_max_str_digits):
// converting longer ones takes quadratic time.
const maxDigits = 4300

func (m *machine) step(op byte) error {
	switch op {
	case opProto:
		v, err := m.readByte()
		if err != nil {
			return err
		}
		if v > 5 {
			return fmt.Errorf("protocol %d is not supported (0–5 are)", v)
		}
	case opFrame: // framing only groups opcodes for reading; the length is a hint to check
		n, err := m.readUint(8)
		if err != nil {
			return err
		}
		if n > uint64(m.left) {
			return fmt.Errorf("frame of %d bytes, %d remain: %w", n, m.left, ErrTruncated)
		}

	case opMark:
		if len(m.marks) >= maxMarks {
			return fmt.Errorf("more than %d MARKs open: nested deeper than any pickle of a checkpoint", maxMarks)
		}
		m.marks = append(m.marks, len(m.stack))
	case opPop:
		if len(m.stack) > m.floor() {
			_, err := m.pop()
			return err
		}
		_, err := m.popMark() // as in Python, POP with nothing above the MARK pops the MARK
		return err
	case opPopMark:
		_, err := m.popMark()
		return err
	case opDup:
		v, err := m.top()
		if err != nil {
			return err
		}
		m.push(v)

	case opNone:
		m.push(nil)
	case opNewTrue:
		m.push(true)
	case opNewFalse:
		m.push(false)
	case opBinInt:
		v, err := m.readUint(4)
		if err != nil {
			return err
		}
		m.push(int64(int32(uint32(v))))
	case opBinInt1:
		v, err := m.readUint(1)
		if err != nil {
			return err
		}
		m.push(int64(v))
	case opBinInt2:
		v, err := m.readUint(2)
		if err != nil {
			return err
		}
		m.push(int64(v))
	case opLong1, opLong4:
		n, err := m.readUint(lengthSize(op))
		if err != nil {
			return err
		}
		if op == opLong4 && int32(uint32(n)) < 0 {
			return errors.New("LONG4 with a negative length")
		}
		b, err := m.read(int64(n))
		if err != nil {
			return err
		}
		m.push(decodeLong(b))
	case opInt, opLong:
		line, err := m.readLine()
		if err != nil {
			return err
		}
		if op == opInt && string(line) == "00" {
			m.push(false)
			return nil
		}
		if op == opInt && string(line) == "01" {
			m.push(true)
			return nil
		}
		if op == opLong && len(line) > 0 && line[len(line)-1] == 'L' {
			line = line[:len(line)-1]
		}
		v, err := parseInt(string(line))
		if err != nil {
			return err
		}
		m.push(v)
	case opBinFloat:
		v, err := m.readUint(8)
		if err != nil {
			return err
		}
		// BINFLOAT is the one big-endian number in the format.
		m.push(math.Float64frombits(bits.ReverseBytes64(v)))
	case opFloat:
		line, err := m.readLine()
		if err != nil {
			return err
		}
		v, err := parseFloat(string(line))
		if err != nil {
			return err
		}
		m.push(v)

	case opBinUnicode, opShortBinUni, opBinUnicode8:
		b, err := m.readCounted(lengthSize(op))
		if err != nil {
			return err
		}
		m.push(string(b))
	case opBinString, opShortBinString: // Python 2 str: kept as a string of its bytes
		b, err := m.readCounted(lengthSize(op))
		if err != nil {
			return err
		}
		m.push(string(b))
	case opBinBytes, opShortBinBytes, opBinBytes8, opByteArray8:
		b, err := m.readCounted(lengthSize(op))
		if err != nil {
			return err
		}
		m.push(b)
	case opUnicode:
		line, err := m.readLine()
		if err != nil {
			return err
		}
		m.push(rawUnicodeEscape(line))
	case opString:
		line, err := m.readLine()
		if err != nil {
			return err
		}
		s, err := stringEscape(line)
		if err != nil {
			return err
		}
		m.push(s)

	case opEmptyTuple:
		if err := m.alloc(containerSize); err != nil {
			return err
		}
		m.push(Tuple{})
	case opTuple1, opTuple2, opTuple3:
		n := int(op-opTuple1) + 1
		if len(m.stack)-m.floor() < n {
			return fmt.Errorf("TUPLE%d needs %d items on the stack", n, n)
		}
		if err := m.alloc(containerSize + itemSize*int64(n)); err != nil {
			return err
		}
		t := Tuple(append([]any(nil), m.stack[len(m.stack)-n:]...))
		m.stack = m.stack[:len(m.stack)-n]
		m.push(t)
	case opTuple:
		items, err := m.popMark()
		if err != nil {
			return err
		}
		if err := m.alloc(containerSize + itemSize*int64(len(items))); err != nil {
			return err
		}
		m.push(Tuple(items))
	case opEmptyList:
		if err := m.alloc(containerSize); err != nil {
			return err
		}
		m.push(&List{})
	case opList:
		items, err := m.popMark()
		if err != nil {
			return err
		}
		if err := m.alloc(containerSize + itemSize*int64(len(items))); err != nil {
			return err
		}
		m.push(&List{Items: items})
	case opEmptyDict:
		if err := m.alloc(containerSize); err != nil {
			return err
		}
		m.push(&Dict{})
	case opDict:
		items, err := m.popMark()
		if err != nil {
			return err
		}
		if err := m.alloc(containerSize + entrySize*int64(len(items)/2)); err != nil {
			return err
		}
		d := &Dict{}
		if err := setItems(d, items); err != nil {
			return err
		}
		m.push(d)
	case opEmptySet:
		if err := m.alloc(containerSize); err != nil {
			return err
		}
		m.push(&Set{})
	case opFrozenSet:
		items, err := m.popMark()
		if err != nil {
			return err
		}
		if err := m.alloc(containerSize + itemSize*int64(len(items))); err != nil {
			return err
		}
		m.push(&Set{Items: items, Frozen: true})

	case opAppend:
		v, err := m.pop()
		if err != nil {
			return err
		}
		return m.appendTo([]any{v})
	case opAppends:
		items, err := m.popMark()
		if err != nil {
			return err
		}
		return m.appendTo(items)
	case opAddItems:
		items, err := m.popMark()
		if err != nil {
			return err
		}
		target, err := m.top()
		if err != nil {
			return err
		}
		if err := m.alloc(itemSize * int64(len(items))); err != nil {
			return err
		}
		switch t := target.(type) {
		case *Set:
			t.Items = append(t.Items, items...)
		case *Object:
			t.List = append(t.List, items...)
		default:
			return fmt.Errorf("ADDITEMS to %s", typeName(target))
		}
	case opSetItem:
		if len(m.stack)-m.floor() < 3 {
			return errors.New("SETITEM needs a dict, a key and a value on the stack")
		}
		items := m.stack[len(m.stack)-2:]
		if err := m.alloc(entrySize); err != nil {
			return err
		}
		if err := m.setItemsOn(m.stack[len(m.stack)-3], items); err != nil {
			return err
		}
		m.stack = m.stack[:len(m.stack)-2]
	case opSetItems:
		items, err := m.popMark()
		if err != nil {
			return err
		}
		target, err := m.top()
		if err != nil {
			return err
		}
		if err := m.alloc(entrySize * int64(len(items)/2)); err != nil {
			return err
		}
		return m.setItemsOn(target, items)

	case opPut, opBinPut, opLongBinPut, opMemoize:
		var idx int64
		switch op {
		case opPut:
			line, err := m.readLine()
			if err != nil {
				return err
			}
			if idx, err = parseIndex(line); err != nil {
				return err
			}
		case opBinPut, opLongBinPut:
			v, err := m.readUint(lengthSize(op))
			if err != nil {
				return err
			}
			idx = int64(v)
		case opMemoize:
			idx = int64(len(m.memo))
		}
		v, err := m.top()
		if err != nil {
			return err
		}
		if err := m.alloc(entrySize); err != nil {
			return err
		}
		m.memo[idx] = v
	case opGet, opBinGet, opLongBinGet:
		var idx int64
		if op == opGet {
			line, err := m.readLine()
			if err != nil {
				return err
			}
			if idx, err = parseIndex(line); err != nil {
				return err
			}
		} else {
			v, err := m.readUint(lengthSize(op))
			if err != nil {
				return err
			}
			idx = int64(v)
		}
		v, ok := m.memo[idx]
		if !ok {
			return fmt.Errorf("memo entry %d was never stored", idx)
		}
		m.push(v)

	case opGlobal:
		module, err := m.readLine()
		if err != nil {
			return err
		}
		name, err := m.readLine()
		if err != nil {
			return err
		}
		if err := m.alloc(containerSize); err != nil {
			return err
		}
		m.push(Global{Module: string(module), Name: string(name)})
	case opStackGlobal:
		name, err := m.pop()
		if err != nil {
			return err
		}
		module, err := m.pop()
		if err != nil {
			return err
		}
		ms, ok1 := module.(string)
		ns, ok2 := name.(string)
		if !ok1 || !ok2 {
			return fmt.Errorf("STACK_GLOBAL of %s and %s, not two strings", typeName(module), typeName(name))
		}
		if err := m.alloc(containerSize); err != nil {
			return err
		}
		m.push(Global{Module: ms, Name: ns})

	case opReduce, opNewObj:
		argv, err := m.pop()
		if err != nil {
			return err
		}
		args, ok := argv.(Tuple)
		if !ok {
			return fmt.Errorf("arguments are a %s, not a tuple", typeName(argv))
		}
		callee, err := m.pop()
		if err != nil {
			return err
		}
		v, err := m.call(callee, args, nil)
		if err != nil {
			return err
		}
		m.push(v)
	case opNewObjEx:
		kw, err := m.pop()
		if err != nil {
			return err
		}
		argv, err := m.pop()
		if err != nil {
			return err
		}
		cls, err := m.pop()
		if err != nil {
			return err
		}
		args, ok1 := argv.(Tuple)
		kwargs, ok2 := kw.(*Dict)
		if !ok1 || !ok2 {
			return fmt.Errorf("NEWOBJ_EX with %s and %s, not a tuple and a dict", typeName(argv), typeName(kw))
		}
		v, err := m.call(cls, args, kwargs)
		if err != nil {
			return err
		}
		m.push(v)
	case opInst:
		module, err := m.readLine()
		if err != nil {
			return err
		}
		name, err := m.readLine()
		if err != nil {
			return err
		}
		args, err := m.popMark()
		if err != nil {
			return err
		}
		v, err := m.call(Global{Module: string(module), Name: string(name)}, args, nil)
		if err != nil {
			return err
		}
		m.push(v)
	case opObj:
		items, err := m.popMark()
		if err != nil {
			return err
		}
		if len(items) == 0 {
			return errors.New("OBJ without a class")
		}
		v, err := m.call(items[0], items[1:], nil)
		if err != nil {
			return err
		}
		m.push(v)
	case opBuild:
		state, err := m.pop()
		if err != nil {
			return err
		}
		target, err := m.top()
		if err != nil {
			return err
		}
		if b, ok := target.(builder); ok {
			return b.setState(state)
		}
		// Other values (a dict with attributes, say) have no place for the state: drop it.

	case opPersID, opBinPersID:
		var pid any
		if op == opPersID {
			line, err := m.readLine()
			if err != nil {
				return err
			}
			pid = string(line)
		} else {
			v, err := m.pop()
			if err != nil {
				return err
			}
			pid = v
		}
		if m.PersistentLoad == nil {
			return errors.New("a persistent id, and no way to resolve it")
		}
		if err := m.alloc(objectSize); err != nil {
			return err
		}
		v, err := m.PersistentLoad(pid)
		if err != nil {
			return err
		}
		m.push(v)

	case opExt1, opExt2, opExt4:
		return errors.New("the copyreg extension registry is not supported")
	case opNextBuffer:
		return errors.New("out-of-band buffers are not supported")
	case opReadOnlyBuffer:
		_, err := m.top()
		return err
	default:
		return fmt.Errorf("unknown opcode")
	}
	return nil
}

// lengthSize is the size in bytes of the length or index that follows op.
func lengthSize(op byte) int {
	switch op {
	case opShortBinUni, opShortBinString, opShortBinBytes, opBinPut, opBinGet, opLong1:
		return 1
	case opBinUnicode, opBinString, opBinBytes, opLongBinPut, opLongBinGet, opLong4:
		return 4
	}
	return 8 // BINUNICODE8, BINBYTES8, BYTEARRAY8
}

// builder is a value that takes BUILD's state.
type builder interface{ setState(state any) error }

func (o *Object) setState(state any) error {
	o.State = state
	return nil
}

// call runs REDUCE, NEWOBJ(_EX), INST and OBJ: a known callable runs; an unknown class makes an
// *Object.
func (m *machine) call(callee any, args Tuple, kwargs *Dict) (any, error) {
	if err := m.alloc(objectSize); err != nil { // what the callable makes, at least
		return nil, err
	}
	switch c := callee.(type) {
	case Global:
		if (c.Module == "copyreg" || c.Module == "copy_reg") && m.depth < 8 {
			// cls.__new__(cls, *args[, **kwargs]) spelled out for protocols < 2 (and kwargs < 4)
			switch {
			case c.Name == "__newobj__" && len(args) >= 1:
				m.depth++
				defer func() { m.depth-- }()
				return m.call(args[0], args[1:], kwargs)
			case c.Name == "__newobj_ex__" && len(args) == 3:
				a, ok1 := args[1].(Tuple)
				kw, ok2 := args[2].(*Dict)
				if !ok1 || !ok2 {
					return nil, fmt.Errorf("copyreg.__newobj_ex__ with %s and %s", typeName(args[1]), typeName(args[2]))
				}
				m.depth++
				defer func() { m.depth-- }()
				return m.call(args[0], a, kw)
			}
		}
		if f, ok := m.Funcs[c]; ok {
			return f(args)
		}
		if f, ok := builtins[c]; ok {
			v, err := f(args)
			if err != nil {
				return nil, err
			}
			return v, m.charge(v)
		}
		return &Object{Module: c.Module, Name: c.Name, Args: args, Kwargs: kwargs}, nil
	case *Object: // e.g. functools.partial(...)(): keep what was called
		return &Object{Module: c.Module, Name: c.Name, Args: args, Kwargs: kwargs, Callee: c}, nil
	}
	return nil, fmt.Errorf("calling a %s", typeName(callee))
}

// charge counts a built-in's new value against the allocation budget.
func (m *machine) charge(v any) error {
	var n int64
	switch v := v.(type) {
	case []byte:
		n = int64(len(v))
	case *Dict:
		n = 32 * int64(v.Len())
	case *List:
		n = 16 * int64(len(v.Items))
	case *Set:
		n = 16 * int64(len(v.Items))
	}
	return m.alloc(n)
}

// What alloc charges: a container or a global (its header, rounded up), each item of a list,
// tuple or set, each entry of a dict or of the memo, and an object a callable makes.
const (
	containerSize = 64
	itemSize      = 16
	entrySize     = 64
	objectSize    = 128
)

// alloc charges n bytes of new values against the budget.
func (m *machine) alloc(n int64) error {
	if m.made += n; m.made > m.budget {
		return fmt.Errorf("the pickle makes more than %d bytes of values (objects, memo entries, copies) from %d bytes, far more than its size justifies", m.budget, m.off)
	}
	return nil
}

func (m *machine) appendTo(items []any) error {
	target, err := m.top()
	if err != nil {
		return err
	}
	if err := m.alloc(itemSize * int64(len(items))); err != nil {
		return err
	}
	switch t := target.(type) {
	case *List:
		t.Items = append(t.Items, items...)
	case *Object:
		t.List = append(t.List, items...)
	default:
		return fmt.Errorf("APPEND to %s", typeName(target))
	}
	return nil
}

func (m *machine) setItemsOn(target any, items []any) error {
	switch t := target.(type) {
	case *Dict:
		return setItems(t, items)
	case *Object:
		if t.Items == nil {
			t.Items = &Dict{}
		}
		return setItems(t.Items, items)
	}
	return fmt.Errorf("SETITEM on %s", typeName(target))
}

func setItems(d *Dict, kv []any) error {
	if len(kv)%2 != 0 {
		return fmt.Errorf("%d items for a dict: a key without a value", len(kv))
	}
	for i := 0; i < len(kv); i += 2 {
		d.Set(kv[i], kv[i+1])
	}
	return nil
}

func (m *machine) push(v any) { m.stack = append(m.stack, v) }

// checkStack refuses a stack past maxStack values (step pushes at most one per opcode).
func (m *machine) checkStack() error {
	if len(m.stack) > maxStack {
		return fmt.Errorf("more than %d values on the stack: more than any pickle of a checkpoint holds", maxStack)
	}
	return nil
}

// floor is where the stack above the last MARK starts: opcodes other than the MARK ones must
// not reach below it.
func (m *machine) floor() int {
	if len(m.marks) == 0 {
		return 0
	}
	return m.marks[len(m.marks)-1]
}

func (m *machine) pop() (any, error) {
	if len(m.stack) <= m.floor() {
		return nil, errors.New("stack underflow")
	}
	v := m.stack[len(m.stack)-1]
	m.stack = m.stack[:len(m.stack)-1]
	return v, nil
}

func (m *machine) top() (any, error) {
	if len(m.stack) <= m.floor() {
		return nil, errors.New("stack underflow")
	}
	return m.stack[len(m.stack)-1], nil
}

// popMark removes the items above the last MARK, and the MARK, and returns the items.
func (m *machine) popMark() ([]any, error) {
	if len(m.marks) == 0 {
		return nil, errors.New("no MARK to pop to")
	}
	at := m.marks[len(m.marks)-1]
	m.marks = m.marks[:len(m.marks)-1]
	items := make([]any, len(m.stack)-at) // a copy: the stack's array is reused
	copy(items, m.stack[at:])
	m.stack = m.stack[:at]
	return items, nil
}

// Reading.

func (d *Decoder) readByte() (byte, error) {
	if d.left <= 0 {
		return 0, ErrTruncated
	}
	b, err := d.r.ReadByte()
	if err != nil {
		return 0, readErr(err)
	}
	d.left--
	d.off++
	return b, nil
}

// read returns the next n bytes, refusing n beyond what remains before allocating.
func (d *Decoder) read(n int64) ([]byte, error) {
	if n < 0 || n > d.left {
		return nil, fmt.Errorf("%d bytes declared, %d remain: %w", n, d.left, ErrTruncated)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(d.r, b); err != nil {
		return nil, readErr(err)
	}
	d.left -= n
	d.off += n
	return b, nil
}

// readUint reads a little-endian unsigned integer of size bytes.
func (d *Decoder) readUint(size int) (uint64, error) {
	b, err := d.read(int64(size))
	if err != nil {
		return 0, err
	}
	var buf [8]byte
	copy(buf[:], b)
	return binary.LittleEndian.Uint64(buf[:]), nil
}

// readCounted reads a length of size bytes, then that many bytes.
func (d *Decoder) readCounted(size int) ([]byte, error) {
	n, err := d.readUint(size)
	if err != nil {
		return nil, err
	}
	if n > math.MaxInt64 {
		return nil, fmt.Errorf("length %d: %w", n, ErrTruncated)
	}
	return d.read(int64(n))
}

// readLine reads up to a newline (protocol 0's text arguments) and returns it without it.
func (d *Decoder) readLine() ([]byte, error) {
	var line []byte
	for {
		b, err := d.readByte()
		if err != nil {
			return nil, err
		}
		if b == '\n' {
			return line, nil
		}
		line = append(line, b)
	}
}

func readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrTruncated
	}
	return err
}

// decodeLong decodes LONG1/LONG4's little-endian two's-complement bytes.
func decodeLong(b []byte) any {
	if len(b) == 0 {
		return int64(0)
	}
	if len(b) <= 8 {
		var v uint64
		for i := len(b) - 1; i >= 0; i-- {
			v = v<<8 | uint64(b[i])
		}
		shift := 64 - 8*uint(len(b)) // sign-extend from the top byte
		return int64(v<<shift) >> shift
	}
	be := make([]byte, len(b))
	for i, c := range b {
		be[len(b)-1-i] = c
	}
	v := new(big.Int).SetBytes(be)
	if b[len(b)-1]&0x80 != 0 {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return normInt(v)
}

// normInt returns v as an int64 when it fits.
func normInt(v *big.Int) any {
	if v.IsInt64() {
		return v.Int64()
	}
	return v
}

func typeName(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case *Object:
		return Brief(v.Module+"."+v.Name) + " object"
	case Global:
		return "global " + Brief(v.String())
	case Tuple:
		return "tuple"
	case *List:
		return "list"
	case *Dict:
		return "dict"
	case *Set:
		return "set"
	case string:
		return "str"
	case []byte:
		return "bytes"
	case int64, *big.Int:
		return "int"
	case float64:
		return "float"
	case bool:
		return "bool"
	}
	return fmt.Sprintf("%T", v)
}

// TypeName describes a decoded value's Python type for messages ("dict", "int",
// "mmengine.logging.history_buffer.HistoryBuffer object", ...).
func TypeName(v any) string { return typeName(v) }
