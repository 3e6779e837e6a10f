"""`Array`: a pointer with a shape, indexed with several subscripts (`tile[r, c]`)."""
from __future__ import annotations

import numbers

from . import semantics
from .dtypes import DTYPES
from .values import Dyn


class Array:
    """A view of memory: `a[i, j]` reads, `a[i, j] = v` writes, row-major unless strides say otherwise.

    Shapes and strides may be compile-time ints or run-time values; `a.ptr` is the base pointer.
    """

    def __init__(self, ptr, shape, strides=None):
        ptr = semantics.to_rvalue(ptr)
        self.ptr = ptr
        self.shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
        if strides is None:
            strides, step = [], 1
            for extent in reversed(self.shape):
                strides.append(step)
                step = step * extent
            strides.reverse()
        self.strides = tuple(strides)

    @property
    def dtype(self):
        return DTYPES[self.ptr.type.elem.name]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def address(self, index):
        """The pointer to element `index` (a tuple with one entry per dimension)."""
        index = index if isinstance(index, tuple) else (index,)
        if len(index) != len(self.shape):
            raise semantics.error(f"an array of {len(self.shape)} dimensions needs {len(self.shape)} indices, "
                                  f"found {len(index)}",
                                  hint=f"index it with one subscript of {len(self.shape)} indices: "
                                       f"a[{', '.join('ijk'[:len(self.shape)]) if len(self.shape) <= 3 else '...'}]"
                                       f" (a[i][j] indexes twice)" if len(index) < len(self.shape) else "")
        offset = 0
        for dim, (i, extent, stride) in enumerate(zip(index, self.shape, self.strides)):
            if isinstance(i, slice):
                raise semantics.error("arrays take integer indices, not slices")
            i = _within(i, extent, dim, self.shape)
            term = i * stride if not (semantics.is_number(stride) and stride == 1) else i
            offset = term if (semantics.is_number(offset) and offset == 0) else offset + term
        return semantics.offset(self.ptr, offset)

    def __getitem__(self, index):
        return semantics.load(self.address(index))

    def __setitem__(self, index, value):
        semantics.store(self.address(index), value)

    def __add__(self, offset):
        return semantics.offset(self.ptr, offset)

    def __iter__(self):
        # (Python iterates an object with __getitem__ by indices 0, 1, ... up to an IndexError: `for v in a` and
        # sum(a) ended at "index 16 is out of range" of a 16-element array, and one of a run-time shape never ended)
        raise semantics.error("an skc array is not iterated: a loop over it would unroll a load per element",
                              hint="loop over its indices: `for i in range(n): ... a[i]`")

    def __len__(self):
        extent = self.shape[0]
        if isinstance(extent, Dyn):
            raise semantics.error("len() of an array with a run-time shape", hint="use a.shape[0]")
        return extent

    def __repr__(self):
        return f"<Array {self.ptr.type} shape={self.shape}>"


def _within(i, extent, dim: int, shape):
    """A compile-time index i into a dimension of compile-time extent, checked: a negative one or one past the extent
    is an error at the user's line (both were added to the address as they were, and `tile[-1]` read before the
    array, silently on a GPU). A negative index does not count from the end, since a run-time one cannot."""
    if isinstance(i, bool) or not (isinstance(i, numbers.Integral) and isinstance(extent, numbers.Integral)):
        return i
    if i < 0:
        raise semantics.error(f"index {i} is negative in dimension {dim} of an array of shape {shape}: skc arrays do "
                              "not count from the end (a run-time index could not)",
                              hint=f"write the index from the start: {i + extent} for {i}" if i >= -extent
                              else f"a compile-time index there lies in 0..{extent - 1}")
    if i >= extent:
        raise semantics.error(f"index {i} is out of range for dimension {dim} of an array of shape {shape}",
                              hint=f"a compile-time index there lies in 0..{extent - 1}")
    return i
