"""Writes proto<N>.pkl (N = 0..5): one Python object, pickled at every protocol, that the Go
tests decode and compare against the same value written in Go (pickle_test.go, want()).
Run: /usr/bin/python3 make_pickles.py   (Debian's Python 3 with numpy)"""
import os, pickle, sys, types
from collections import OrderedDict

import numpy as np


class Opaque:
    """Stands for a class the reader does not know; pickled by module and name only."""


Opaque.__module__ = 'some.module'


class WithKwargs:
    """Pickled with NEWOBJ_EX from protocol 4 on (keyword arguments to __new__)."""
    def __new__(cls, *args, **kwargs):
        return super().__new__(cls)

    def __getnewargs_ex__(self):
        return (1,), {'k': 2}


WithKwargs.__module__ = 'some.module'
# pickle looks classes up by module and name: give it the module, as if it were installed.
sys.modules['some'] = types.ModuleType('some')
sys.modules['some.module'] = types.ModuleType('some.module')
sys.modules['some.module'].Opaque = Opaque
sys.modules['some.module'].WithKwargs = WithKwargs


def value():
    shared = [1, 'a']
    o = Opaque()
    o.attr = np.arange(3, dtype=np.int16)
    o.x = 1.5
    return {
        'int': 1, 'neg': -300, 'i32': 70000, 'i64': -(2**40), 'big': 2**70, 'negbig': -(2**70),
        'float': 1.5, 'str': 'h\u00e9llo \u2603\n', 'bytes': b'\x00\xff', 'empty': b'',
        'ba': bytearray(b'ab'), 'tuple': (1, 2, 3), 'tuple0': (), 'tuple1': ('x',),
        'tuple4': (1, 2, 3, 4), 'list': shared, 'again': shared, 'set': {7}, 'fset': frozenset({8}),
        'none': None, 't': True, 'f': False, 'od': OrderedDict([('a', 1), ('b', 2)]),
        'obj': o, 'kw': WithKwargs(), 'np_i': np.int64(-5), 'np_u': np.uint8(200),
        'np_f': np.float32(0.25), 'np_h': np.float16(-2), 'np_b': np.bool_(True),
        'arr': np.arange(6, dtype=np.uint8).reshape(2, 3),
        'arr_f': np.asfortranarray(np.array([[1.5, 2], [3, 4]], dtype='>f8')),
        'arr_b': np.array([True, False]),
    }


here = os.path.dirname(os.path.abspath(__file__))
for proto in range(6):
    with open(os.path.join(here, 'proto%d.pkl' % proto), 'wb') as f:
        pickle.dump(value(), f, protocol=proto)
