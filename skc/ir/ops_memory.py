"""Memory ops: pointer arithmetic, loads and stores (scalar or vector, masked), atomics,
static shared-memory allocations and per-thread var slots."""
from __future__ import annotations

from .core import Op, PURE
from .types import PointerType, ScalarType, Type, VarType, VectorType, i1

PURE_TRAITS = frozenset({PURE})


def _check_pointer(op: Op, value, what="address"):
    if not isinstance(value.type, PointerType):
        op.fail(f"{what} is {value.type}, expected a pointer")


class PtrOffsetOp(Op):
    """`ptr.offset %p, %i {elem}`: p advanced by i elements of type elem (i is a signed or unsigned int)."""

    name = "ptr.offset"
    num_operands = 2
    num_results = 1
    traits = PURE_TRAITS
    required_attrs = ("elem",)

    def verify(self):
        p, i = self.operands
        _check_pointer(self, p)
        if not (isinstance(i.type, ScalarType) and i.type.is_int and not i.type.is_bool):
            self.fail(f"offset is {i.type}, expected an integer")
        if not isinstance(self.attrs["elem"], Type):
            self.fail(f"elem must be a type, found {self.attrs['elem']!r}")
        if self.result.type is not p.type:
            self.fail(f"result is {self.result.type}, expected {p.type}")


class PtrToIntOp(Op):
    """`ptr.to_int %p`: the address as an integer."""

    name = "ptr.to_int"
    num_operands = 1
    num_results = 1
    traits = PURE_TRAITS

    def verify(self):
        _check_pointer(self, self.operands[0])
        if not (isinstance(self.result.type, ScalarType) and self.result.type.is_int):
            self.fail(f"result is {self.result.type}, expected an integer")


class PtrFromIntOp(Op):
    """`ptr.from_int %i`: the pointer at an integer address."""

    name = "ptr.from_int"
    num_operands = 1
    num_results = 1
    traits = PURE_TRAITS

    def verify(self):
        if not (isinstance(self.operands[0].type, ScalarType) and self.operands[0].type.is_int):
            self.fail(f"operand is {self.operands[0].type}, expected an integer")
        if not isinstance(self.result.type, PointerType):
            self.fail(f"result is {self.result.type}, expected a pointer")


class PtrCastOp(Op):
    """`ptr.cast %p`: the same address seen from another address space (to or from generic)."""

    name = "ptr.cast"
    num_operands = 1
    num_results = 1
    traits = PURE_TRAITS

    def verify(self):
        src, dst = self.operands[0].type, self.result.type
        _check_pointer(self, self.operands[0])
        if not isinstance(dst, PointerType):
            self.fail(f"result is {dst}, expected a pointer")
        if "generic" not in (src.space, dst.space):
            self.fail(f"casts {src} to {dst}; one side must be ptr<generic>")


class LoadOp(Op):
    """`mem.load %p [, %mask [, %other]]`: read a scalar or vector at p; masked-off lanes read nothing and give other (or 0)."""

    name = "mem.load"
    num_operands = None
    num_results = 1

    def verify(self):
        if not 1 <= len(self.operands) <= 3:
            self.fail(f"expected an address, an optional mask and other value, found {len(self.operands)} operands")
        _check_pointer(self, self.operands[0])
        t = self.result.type
        if not isinstance(t, (ScalarType, VectorType, PointerType)):
            self.fail(f"cannot load a {t}")
        if len(self.operands) >= 2 and self.operands[1].type is not i1:
            self.fail(f"mask is {self.operands[1].type}, expected i1")
        if len(self.operands) == 3 and self.operands[2].type is not t:
            self.fail(f"other value is {self.operands[2].type}, expected {t}")
        _check_access_size(self, t)


class StoreOp(Op):
    """`mem.store %p, %value [, %mask]`: write value at p, unless the mask is false."""

    name = "mem.store"
    num_operands = None

    def verify(self):
        if not 2 <= len(self.operands) <= 3:
            self.fail(f"expected an address, a value and an optional mask, found {len(self.operands)} operands")
        _check_pointer(self, self.operands[0])
        t = self.operands[1].type
        if not isinstance(t, (ScalarType, VectorType, PointerType)):
            self.fail(f"cannot store a {t}")
        if len(self.operands) == 3 and self.operands[2].type is not i1:
            self.fail(f"mask is {self.operands[2].type}, expected i1")
        _check_access_size(self, t)


def _check_access_size(op: Op, t):
    size = t.bytes
    if size > 16 or size & (size - 1):
        op.fail(f"accesses {size} bytes ({t}); one access moves 1, 2, 4, 8 or 16 bytes")


ATOMIC_KINDS = ("add", "min", "max", "and", "or", "xor", "xchg")


class AtomicOp(Op):
    """`mem.atomic {op} %p, %v [, %mask]`: atomically combine v into *p (add min max and or xor xchg); gives the old value."""

    name = "mem.atomic"
    num_operands = None
    num_results = 1
    required_attrs = ("op",)

    def verify(self):
        if not 2 <= len(self.operands) <= 3:
            self.fail(f"expected an address, a value and an optional mask, found {len(self.operands)} operands")
        _check_pointer(self, self.operands[0])
        t = self.operands[1].type
        if self.attrs["op"] not in ATOMIC_KINDS:
            self.fail(f"op must be one of {', '.join(ATOMIC_KINDS)}, found {self.attrs['op']!r}")
        if not isinstance(t, ScalarType) or t.bits < 16:
            self.fail(f"atomics take 16-, 32- or 64-bit scalars, found {t}")
        if self.attrs["op"] in ("and", "or", "xor") and not t.is_int:
            self.fail(f"atomic {self.attrs['op']} is bitwise and takes integers, found {t}")
        if self.result.type is not t:
            self.fail(f"result is {self.result.type}, expected {t}")


class AtomicCasOp(Op):
    """`mem.atomic_cas %p, %cmp, %v`: if *p == cmp then *p = v, atomically; gives the old value."""

    name = "mem.atomic_cas"
    num_operands = 3
    num_results = 1

    def verify(self):
        p, cmp, v = self.operands
        _check_pointer(self, p)
        if cmp.type is not v.type or self.result.type is not v.type:
            self.fail(f"compare {cmp.type}, value {v.type} and result {self.result.type} must be one type")
        if not (isinstance(v.type, ScalarType) and v.type.is_int and v.type.bits in (32, 64)):
            self.fail(f"compare-and-swap takes 32- or 64-bit integers, found {v.type}")


class SharedOp(Op):
    """`mem.shared {offset, bytes}`: the address of a static shared-memory buffer the frontend laid out."""

    name = "mem.shared"
    num_results = 1
    traits = PURE_TRAITS
    required_attrs = ("offset", "bytes")

    def verify(self):
        if self.result.type is not PointerType("shared"):
            self.fail(f"result is {self.result.type}, expected ptr<shared>")


class VarAllocOp(Op):
    """`var.alloc`: a fresh per-thread slot (mutable local variable)."""

    name = "var.alloc"
    num_results = 1

    def verify(self):
        if not isinstance(self.result.type, VarType):
            self.fail(f"result is {self.result.type}, expected var<...>")


class VarLoadOp(Op):
    """`var.load %v`: the value last stored in slot v."""

    name = "var.load"
    num_operands = 1
    num_results = 1

    def verify(self):
        slot = self.operands[0].type
        if not isinstance(slot, VarType) or slot.elem is not self.result.type:
            self.fail(f"loads {self.result.type} from {slot}")


class VarStoreOp(Op):
    """`var.store %v, %x`: put x in slot v."""

    name = "var.store"
    num_operands = 2

    def verify(self):
        slot, value = self.operands[0].type, self.operands[1].type
        if not isinstance(slot, VarType) or slot.elem is not value:
            self.fail(f"stores {value} into {slot}")


class VecSplatOp(Op):
    """`vec.splat %x`: a vector with every element x."""

    name = "vec.splat"
    num_operands = 1
    num_results = 1
    traits = PURE_TRAITS

    def verify(self):
        t = self.result.type
        if not isinstance(t, VectorType) or t.elem is not self.operands[0].type:
            self.fail(f"splats {self.operands[0].type} into {t}")


class VecFromOp(Op):
    """`vec.from %a, %b, ...`: a vector of the given elements."""

    name = "vec.from"
    num_operands = None
    num_results = 1
    traits = PURE_TRAITS

    def verify(self):
        t = self.result.type
        if not isinstance(t, VectorType) or t.count != len(self.operands):
            self.fail(f"builds {t} from {len(self.operands)} elements")
        for i, x in enumerate(self.operands):
            if x.type is not t.elem:
                self.fail(f"element {i} is {x.type}, expected {t.elem}")


class VecExtractOp(Op):
    """`vec.extract %v {index}`: element `index` of v."""

    name = "vec.extract"
    num_operands = 1
    num_results = 1
    traits = PURE_TRAITS
    required_attrs = ("index",)

    def verify(self):
        t = self.operands[0].type
        if not isinstance(t, VectorType) or self.result.type is not t.elem:
            self.fail(f"extracts {self.result.type} from {t}")
        if not 0 <= self.attrs["index"] < t.count:
            self.fail(f"index {self.attrs['index']} out of range for {t}")


class VecInsertOp(Op):
    """`vec.insert %v, %x {index}`: v with element `index` replaced by x."""

    name = "vec.insert"
    num_operands = 2
    num_results = 1
    traits = PURE_TRAITS
    required_attrs = ("index",)

    def verify(self):
        v, x = self.operands
        if not isinstance(v.type, VectorType) or x.type is not v.type.elem or self.result.type is not v.type:
            self.fail(f"inserts {x.type} into {v.type} giving {self.result.type}")
        if not 0 <= self.attrs["index"] < v.type.count:
            self.fail(f"index {self.attrs['index']} out of range for {v.type}")
