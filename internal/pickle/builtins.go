package pickle

import (
	"fmt"
	"strings"
)

// Builtins are the callables every Decoder knows: the containers and the bytes constructors
// that protocol-2 pickles call, and numpy's scalars, dtypes and arrays (numpy.go).
var builtins = map[Global]Func{}

func init() {
	for _, mod := range []string{"builtins", "__builtin__"} { // Python 3 and 2 (protocols < 3) names
		builtins[Global{mod, "dict"}] = newDict
		builtins[Global{mod, "list"}] = newList
		builtins[Global{mod, "set"}] = func(args Tuple) (any, error) { return newSet(args, false) }
		builtins[Global{mod, "frozenset"}] = func(args Tuple) (any, error) { return newSet(args, true) }
		builtins[Global{mod, "bytes"}] = newBytes
		builtins[Global{mod, "bytearray"}] = newBytes
	}
	builtins[Global{"collections", "OrderedDict"}] = newDict
	builtins[Global{"_codecs", "encode"}] = codecsEncode
	for _, mod := range []string{"copyreg", "copy_reg"} {
		builtins[Global{mod, "_reconstructor"}] = reconstructor
	}
	for _, mod := range []string{"numpy.core.multiarray", "numpy._core.multiarray"} { // numpy 1, 2
		builtins[Global{mod, "scalar"}] = numpyScalar
		builtins[Global{mod, "_reconstruct"}] = numpyReconstruct
	}
	for _, mod := range []string{"numpy.core.numeric", "numpy._core.numeric"} {
		builtins[Global{mod, "_frombuffer"}] = numpyFromBuffer
	}
	builtins[Global{"numpy", "dtype"}] = numpyDType
}

// items returns the elements of a pickled iterable.
func items(v any) ([]any, bool) {
	switch v := v.(type) {
	case Tuple:
		return v, true
	case *List:
		return v.Items, true
	case *Set:
		return v.Items, true
	}
	return nil, false
}

// newDict is dict() and OrderedDict(): empty, a copy of a dict, or from (key, value) pairs.
func newDict(args Tuple) (any, error) {
	d := &Dict{}
	if len(args) == 0 {
		return d, nil
	}
	if len(args) == 1 {
		if src, ok := args[0].(*Dict); ok {
			for i, k := range src.Keys {
				d.Set(k, src.Values[i])
			}
			return d, nil
		}
		if pairs, ok := items(args[0]); ok {
			for _, p := range pairs {
				kv, ok := items(p)
				if !ok || len(kv) != 2 {
					return nil, fmt.Errorf("dict from a %s, not a (key, value) pair", typeName(p))
				}
				d.Set(kv[0], kv[1])
			}
			return d, nil
		}
	}
	return nil, fmt.Errorf("dict from %d arguments (%s)", len(args), typeName(args[0]))
}

func newList(args Tuple) (any, error) {
	if len(args) == 0 {
		return &List{}, nil
	}
	if src, ok := items(args[0]); ok && len(args) == 1 {
		return &List{Items: append([]any(nil), src...)}, nil
	}
	return nil, fmt.Errorf("list from %d arguments (%s)", len(args), typeName(args[0]))
}

func newSet(args Tuple, frozen bool) (any, error) {
	if len(args) == 0 {
		return &Set{Frozen: frozen}, nil
	}
	if src, ok := items(args[0]); ok && len(args) == 1 {
		return &Set{Items: append([]any(nil), src...), Frozen: frozen}, nil
	}
	return nil, fmt.Errorf("set from %d arguments (%s)", len(args), typeName(args[0]))
}

// newBytes is bytes() and bytearray(): empty, a copy, from a str and an encoding (protocols
// < 3), or from a list of byte values.
func newBytes(args Tuple) (any, error) {
	if len(args) == 0 {
		return []byte{}, nil
	}
	switch v := args[0].(type) {
	case []byte: // shared: decoded bytes are never modified
		return v, nil
	case string:
		return codecsEncode(args)
	case *List:
		out := make([]byte, len(v.Items))
		for i, x := range v.Items {
			n, ok := x.(int64)
			if !ok || n < 0 || n > 255 {
				return nil, fmt.Errorf("bytes from a list holding %s", typeName(x))
			}
			out[i] = byte(n)
		}
		return out, nil
	}
	return nil, fmt.Errorf("bytes from a %s", typeName(args[0]))
}

// codecsEncode is _codecs.encode(str, encoding): how protocol 2 pickles bytes (as Latin-1).
func codecsEncode(args Tuple) (any, error) {
	if len(args) == 0 || len(args) > 3 {
		return nil, fmt.Errorf("_codecs.encode with %d arguments", len(args))
	}
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("_codecs.encode of a %s", typeName(args[0]))
	}
	enc := "utf-8"
	if len(args) > 1 {
		if enc, ok = args[1].(string); !ok {
			return nil, fmt.Errorf("_codecs.encode with an encoding of type %s", typeName(args[1]))
		}
	}
	limit := rune(0)
	switch strings.ReplaceAll(strings.ToLower(enc), "_", "-") {
	case "latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1":
		limit = 0xff
	case "ascii", "us-ascii":
		limit = 0x7f
	case "utf-8", "utf8":
		return []byte(s), nil
	default:
		return nil, fmt.Errorf("_codecs.encode to %q is not supported", enc)
	}
	out := make([]byte, 0, len(s))
	for _, r := range s { // invalid UTF-8 reads as U+FFFD, beyond the limit
		if r > limit {
			return nil, fmt.Errorf("_codecs.encode: U+%04X is not %s", r, enc)
		}
		out = append(out, byte(r))
	}
	return out, nil
}

// reconstructor is copyreg._reconstructor(cls, base, state): how protocols 0 and 1 pickle
// instances. The class is unknown here by construction, so it makes an *Object.
func reconstructor(args Tuple) (any, error) {
	if len(args) != 3 {
		return nil, fmt.Errorf("copyreg._reconstructor with %d arguments", len(args))
	}
	cls, ok := args[0].(Global)
	if !ok {
		return nil, fmt.Errorf("copyreg._reconstructor of a %s", typeName(args[0]))
	}
	o := &Object{Module: cls.Module, Name: cls.Name}
	if args[2] != nil { // the base type's initial value (a dict subclass's contents, say)
		o.Args = Tuple{args[2]}
	}
	return o, nil
}
