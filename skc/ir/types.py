"""Tile IR types: immutable, interned values (scalars, pointers, vectors, var slots, tensor maps)."""
from __future__ import annotations

import numbers
from typing import ClassVar

# Address spaces of pointers. The numbers are NVPTX's (LLVM NVPTXAddrSpace), used as the
# canonical order; other targets map them through their own tables.
ADDRESS_SPACES = ("generic", "global", "shared", "const", "local")


class Type:
    """Base of all IR types. Instances are interned: equal types are the same object."""

    _interned: ClassVar[dict] = {}
    __slots__ = ("_key",)

    def __new__(cls, *key):
        full = (cls,) + key
        found = Type._interned.get(full)
        if found is None:
            found = object.__new__(cls)
            object.__setattr__(found, "_key", key)
            Type._interned[full] = found
        return found

    def __setattr__(self, name, value):
        raise AttributeError(f"IR types are immutable (tried to set {name})")

    def __reduce__(self):
        return (type(self), self._key)

    def __repr__(self):
        return str(self)

    # Queries every type answers; the subclasses refine them.
    is_scalar = False
    is_int = False
    is_float = False
    is_bool = False
    is_pointer = False
    is_vector = False


class ScalarType(Type):
    """A scalar: i1 (bool), signed iN, unsigned uN, or a float format (f16, bf16, f32, f64, fp8)."""

    __slots__ = ()
    is_scalar = True

    def __new__(cls, name: str):
        if name not in _SCALARS:
            raise ValueError(f"unknown scalar type {name!r}; known: {', '.join(_SCALARS)}")
        return super().__new__(cls, name)

    @property
    def name(self) -> str:
        return self._key[0]

    @property
    def bits(self) -> int:
        return _SCALARS[self.name][1]

    @property
    def bytes(self) -> int:
        return max(1, self.bits // 8)

    @property
    def kind(self) -> str:
        """'bool', 'int', 'uint' or 'float'."""
        return _SCALARS[self.name][0]

    @property
    def is_bool(self):
        return self.kind == "bool"

    @property
    def is_int(self):
        return self.kind in ("int", "uint", "bool")

    @property
    def is_signed(self):
        return self.kind == "int"

    @property
    def is_float(self):
        return self.kind == "float"

    def __str__(self):
        return self.name


_SCALARS = {
    "i1": ("bool", 1),
    "i8": ("int", 8), "i16": ("int", 16), "i32": ("int", 32), "i64": ("int", 64),
    "u8": ("uint", 8), "u16": ("uint", 16), "u32": ("uint", 32), "u64": ("uint", 64),
    "f8e4m3": ("float", 8), "f8e5m2": ("float", 8), "f8e4m3fnuz": ("float", 8), "f8e5m2fnuz": ("float", 8),
    "f16": ("float", 16), "bf16": ("float", 16), "f32": ("float", 32), "f64": ("float", 64),
}


class PointerType(Type):
    """An opaque pointer into one address space (`ptr<global>`); it says nothing of what it points to."""

    __slots__ = ()
    is_pointer = True

    def __new__(cls, space: str):
        if space not in ADDRESS_SPACES:
            opaque = (" (IR pointers are opaque: they name an address space, not an element type; a kernel's "
                      "argument of a typed pointer is skc.Ptr[skc.f16])" if isinstance(space, Type) else "")
            raise ValueError(f"unknown address space {space!r}; known: {', '.join(ADDRESS_SPACES)}{opaque}")
        return super().__new__(cls, space)

    @property
    def space(self) -> str:
        return self._key[0]

    @property
    def bits(self) -> int:
        # Shared and local addresses are 32-bit windows (PTX ISA 5.1: state spaces); others 64.
        return 32 if self.space in ("shared", "local") else 64

    @property
    def bytes(self) -> int:
        return self.bits // 8

    def __str__(self):
        return f"ptr<{self.space}>"


MAX_VECTOR_LENGTH = 256   # elements of a vector type (registers: a longer one is a tile in memory)


class VectorType(Type):
    """A short vector of scalars held in registers (`vec<4xf32>`), 2 to 256 elements."""

    __slots__ = ()
    is_vector = True

    def __new__(cls, elem: ScalarType, count: int):
        if not isinstance(elem, ScalarType):
            raise ValueError(f"vector elements must be scalars, got {elem}")
        if not 1 <= count <= MAX_VECTOR_LENGTH:
            raise ValueError(f"vector length must be within 1..{MAX_VECTOR_LENGTH}, got {count}")
        return super().__new__(cls, elem, count)

    @property
    def elem(self) -> ScalarType:
        return self._key[0]

    @property
    def count(self) -> int:
        return self._key[1]

    @property
    def bytes(self) -> int:
        return self.elem.bytes * self.count

    # Elementwise ops look at the element's kind.
    @property
    def is_int(self):
        return self.elem.is_int

    @property
    def is_float(self):
        return self.elem.is_float

    @property
    def is_signed(self):
        return self.elem.is_signed

    @property
    def is_bool(self):
        return self.elem.is_bool

    def __str__(self):
        return f"vec<{self.count}x{self.elem}>"


class VarType(Type):
    """A per-thread mutable slot holding one value of `elem` (`var<i32>`), read and written by var ops."""

    __slots__ = ()

    def __new__(cls, elem: Type):
        if not isinstance(elem, (ScalarType, VectorType, PointerType)):
            raise ValueError(f"a var holds a scalar, vector or pointer, got {elem}")
        return super().__new__(cls, elem)

    @property
    def elem(self) -> Type:
        return self._key[0]

    def __str__(self):
        return f"var<{self.elem}>"


class TensorMapType(Type):
    """A TMA tensor map (a 128-byte descriptor made on the host, passed by value). The parameterized
    form `tmap<bf16, 128x64, swizzle=128>` carries what the kernel must know at compile time: the
    element type, the box copied per operation (outermost dimension first) and the swizzle in bytes."""

    __slots__ = ()

    def __new__(cls, elem=None, box=(), swizzle: int = 0):
        if elem is not None and not isinstance(elem, ScalarType):
            raise ValueError(f"a tensor map's elements are scalars, got {elem}")
        if swizzle not in (0, 32, 64, 128):
            raise ValueError(f"swizzle must be 0, 32, 64 or 128 bytes, got {swizzle}")
        return super().__new__(cls, elem, tuple(int(b) for b in box), swizzle)

    @property
    def elem(self):
        return self._key[0]

    @property
    def box(self) -> tuple:
        return self._key[1]

    @property
    def swizzle(self) -> int:
        return self._key[2]

    @property
    def rank(self) -> int:
        return len(self.box)

    @property
    def box_bytes(self) -> int:
        count = 1
        for extent in self.box:
            count *= extent
        return count * (self.elem.bytes if self.elem is not None else 0)

    def __str__(self):
        if self.elem is None:
            return "tmap"
        return f"tmap<{self.elem}, {'x'.join(map(str, self.box))}, swizzle={self.swizzle}>"


class Im2colTensorMapType(TensorMapType):
    """A TMA tensor map in im2col mode (PTX ISA 5.5.4): `tmap_im2col<bf16, 4d, 128x64, swizzle=128>` over a
    rank-d (3 to 5) channels-last tensor; one copy moves a box of `pixels` x `channels` (box = (pixels,
    channels)) gathered from the spatial bounding box the host encoded (corners, traversal strides)."""

    __slots__ = ()

    def __new__(cls, elem, box, swizzle: int, rank: int):
        if not isinstance(elem, ScalarType):
            raise ValueError(f"an im2col tensor map's elements are scalars, got {elem}")
        if swizzle not in (0, 32, 64, 128):
            raise ValueError(f"swizzle must be 0, 32, 64 or 128 bytes, got {swizzle}")
        if len(tuple(box)) != 2 or not 3 <= int(rank) <= 5:
            raise ValueError(f"an im2col box is (pixels, channels) over a rank 3-5 tensor, got {box}, rank {rank}")
        return Type.__new__(cls, elem, tuple(int(b) for b in box), swizzle, int(rank))

    @property
    def rank(self) -> int:
        """The tensor's rank (coordinates per copy); the box itself is 2-D."""
        return self._key[3]

    def __str__(self):
        return f"tmap_im2col<{self.elem}, {self.rank}d, {'x'.join(map(str, self.box))}, swizzle={self.swizzle}>"


def _parse_im2col_type(text: str) -> Im2colTensorMapType:
    elem, rank, box, swizzle = (part.strip() for part in text[len("tmap_im2col<"):-1].split(","))
    if not (rank.endswith("d") and swizzle.startswith("swizzle=")):
        raise ValueError(f"bad im2col tensor map type {text!r}")
    return Im2colTensorMapType(ScalarType(elem), tuple(int(b) for b in box.split("x")), int(swizzle[8:]),
                               int(rank[:-1]))


def scalar(name: str) -> ScalarType:
    return ScalarType(name)


i1, i8, i16, i32, i64 = (ScalarType(n) for n in ("i1", "i8", "i16", "i32", "i64"))
u8, u16, u32, u64 = (ScalarType(n) for n in ("u8", "u16", "u32", "u64"))
f16, bf16, f32, f64 = (ScalarType(n) for n in ("f16", "bf16", "f32", "f64"))
f8e4m3, f8e5m2 = ScalarType("f8e4m3"), ScalarType("f8e5m2")
f8e4m3fnuz, f8e5m2fnuz = ScalarType("f8e4m3fnuz"), ScalarType("f8e5m2fnuz")   # AMD's (gfx942's fp8 formats)
tmap = TensorMapType()

SCALAR_NAMES = tuple(_SCALARS)


def python_number_type(value):
    """The type a Python number takes on its own (bool i1; int i32, else i64, else u64; float f32),
    or None when it fits none. Literals in kernels and scalar launch arguments both follow it."""
    if isinstance(value, bool):
        return i1
    if isinstance(value, numbers.Integral):
        value = int(value)
        if -2 ** 31 <= value < 2 ** 31:
            return i32
        if -2 ** 63 <= value < 2 ** 63:
            return i64
        return u64 if 0 <= value < 2 ** 64 else None
    if isinstance(value, numbers.Real):
        return f32
    return None


def element_type(t: Type) -> Type:
    """The scalar of a vector, else the type itself."""
    return t.elem if isinstance(t, VectorType) else t


def with_element(t: Type, elem: ScalarType) -> Type:
    """`t` with its scalar replaced: vec<4xf32> with i1 gives vec<4xi1>."""
    return VectorType(elem, t.count) if isinstance(t, VectorType) else elem


def parse_type(text: str) -> Type:
    """Parse a type's printed form."""
    text = text.strip()
    if text in _SCALARS:
        return ScalarType(text)
    if text == "tmap":
        return tmap
    if text.startswith("tmap_im2col<") and text.endswith(">"):
        return _parse_im2col_type(text)
    if text.startswith("tmap<") and text.endswith(">"):
        elem, box, swizzle = (part.strip() for part in text[5:-1].split(","))
        if not swizzle.startswith("swizzle="):
            raise ValueError(f"bad tensor map type {text!r}")
        return TensorMapType(ScalarType(elem), tuple(int(b) for b in box.split("x")), int(swizzle[8:]))
    if text.startswith("ptr<") and text.endswith(">"):
        return PointerType(text[4:-1])
    if text.startswith("vec<") and text.endswith(">"):
        count, _, elem = text[4:-1].partition("x")
        return VectorType(ScalarType(elem), int(count))
    if text.startswith("var<") and text.endswith(">"):
        return VarType(parse_type(text[4:-1]))
    raise ValueError(f"unknown type {text!r}")
