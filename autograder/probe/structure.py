"""Measuring what an object really holds, without asking it.

``type()`` cannot be faked by a ``__class__`` property, ``gc.get_referents()`` reads
what an object really holds (not a ``__dict__`` property), and ndarray's own
descriptors give the real dtype and size of a subclass whose properties lie.
"""

from __future__ import annotations

import gc
import types

import numpy as np

_ndarray, _str = np.ndarray, str
_type, _issubclass, _id, _referents = type, issubclass, id, gc.get_referents
_ND = {name: np.ndarray.__dict__[name].__get__ for name in ("base", "dtype", "size", "itemsize")}
_OPAQUE = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.CodeType,
    types.FrameType,
    types.GeneratorType,
)


def _owner(array):
    """The array that owns ``array``'s memory (a view's ultimate ndarray base), read with ndarray's own descriptors."""
    while True:
        base = _ND["base"](array)
        if base is None or not _issubclass(_type(base), _ndarray):
            return array
        array = base


def reachable_buffers(root, skip: set) -> list:
    """[[elements, bytes per element]] of every distinct array buffer reachable from ``root``.

    The grader's own ruler: it follows what objects really reference (instance
    attributes and slots, containers, an ndarray subclass's attributes), never
    into classes, modules or functions, and reports sizes; the grader decides
    what counts (``judge.compare.memory_ratio``).
    """
    seen, owners, stack = set(), {}, [root]
    while stack:
        obj = stack.pop()
        if _id(obj) in seen or _id(obj) in skip:
            continue
        seen.add(_id(obj))
        kind = _type(obj)
        if _issubclass(kind, _ndarray):
            owner = _owner(obj)
            owners[_id(owner)] = owner  # keeps it alive, so its id is not reused
            if kind is _ndarray:
                continue
        elif _issubclass(kind, _OPAQUE):
            continue
        stack.extend(_referents(obj))
    return [[_ND["size"](a), _ND["itemsize"](a)] for a in owners.values()]


def dtype_name(value) -> str:
    """The real dtype of an array, or of the array a Tensor holds; never what the object says about itself."""
    if _issubclass(_type(value), (list, tuple, dict, set, frozenset)):
        return "not an array"
    if not _issubclass(_type(value), _ndarray):
        held = [v for r in _referents(value) for v in ((r.get("data"),) if _type(r) is dict else (r,))]
        arrays = [v for v in held if _issubclass(_type(v), _ndarray)]
        if not arrays:
            return "not an array"
        value = arrays[0]
    return _str(_ND["dtype"](value))
