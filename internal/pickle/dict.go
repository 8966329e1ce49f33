package pickle

import "math/big"

// Dict is a Python dict or OrderedDict: its entries in insertion order. Setting a key that is
// already there replaces its value in place, as Python does, for keys of the types Go can
// compare (None, bool, int, float, str, bytes, globals, and objects by identity); entries with
// other keys (tuples) are appended.
type Dict struct {
	Keys, Values []any
	index        map[any]int
}

type (
	bytesKey string // bytes, kept apart from str keys of the same content
	bigKey   struct {
		neg bool
		mag string
	}
)

// hashKey returns a Go map key for a Python key, or false when the key's type has none.
func hashKey(k any) (any, bool) {
	switch k := k.(type) {
	case nil, bool, int64, float64, string, Global, *Object, *List, *Dict, *Set, *NDArray, *DType:
		return k, true
	case []byte:
		return bytesKey(k), true
	case *big.Int:
		return bigKey{k.Sign() < 0, string(k.Bytes())}, true
	}
	return nil, false
}

// Len is the number of entries.
func (d *Dict) Len() int { return len(d.Keys) }

// Get returns the value for key.
func (d *Dict) Get(key any) (any, bool) {
	if h, ok := hashKey(key); ok && d.index != nil {
		if i, ok := d.index[h]; ok {
			return d.Values[i], true
		}
	}
	return nil, false
}

// Set sets key to value.
func (d *Dict) Set(key, value any) {
	h, ok := hashKey(key)
	if ok {
		if i, found := d.index[h]; found {
			d.Values[i] = value
			return
		}
		if d.index == nil {
			d.index = map[any]int{}
		}
		d.index[h] = len(d.Keys)
	}
	d.Keys = append(d.Keys, key)
	d.Values = append(d.Values, value)
}
