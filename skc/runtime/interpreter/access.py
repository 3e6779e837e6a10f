"""Memory ops (ptr.*, mem.*, var.*): pointer arithmetic, masked loads and stores, atomics,
shared-memory buffers and per-thread var slots.

Pointers are uint64 addresses (memory.py says how they decode). Only active lanes (the group's,
and the op's mask) touch memory. Loads and stores move bit patterns (numerics.to_storage);
when several lanes store to one address the highest lane's value stays (the GPU leaves it
unspecified). Atomics on one address apply in lane order, each lane getting the value it saw.
"""
from __future__ import annotations

import numpy as np

from ...ir.types import VectorType, element_type
from . import numerics, races
from .arith import binary_function
from .state import Fault, Slot

_SPACE_MASK = {"shared": np.uint64(0xFFFFFFFF), "local": np.uint64(0xFFFFFFFF)}


# -- pointers (pure) ------------------------------------------------------------------------------
def _offset(op, launch):
    elem_bytes = np.uint64(op.attrs["elem"].bytes)
    index_type = op.operands[1].type
    window = _SPACE_MASK.get(op.result.type.space)

    def offset(p, i):
        wide = i.astype(np.int64).astype(np.uint64) if index_type.is_signed else i.astype(np.uint64)
        address = p + wide * elem_bytes
        return address & window if window is not None else address
    return offset


def _to_int(op, launch):
    dtype = numerics.value_dtype(op.result.type)
    return lambda p: p.astype(dtype)


def _from_int(op, launch):
    signed = op.operands[0].type.is_signed
    window = _SPACE_MASK.get(op.result.type.space)

    def from_int(i):
        address = i.astype(np.int64).astype(np.uint64) if signed else i.astype(np.uint64)
        return address & window if window is not None else address
    return from_int


def _ptr_cast(op, launch):
    return lambda p: p


def _shared(op, launch):
    address = np.full(launch.nthreads, op.attrs["offset"], np.uint64)
    return lambda: address


PURE = {"ptr.offset": _offset, "ptr.to_int": _to_int, "ptr.from_int": _from_int, "ptr.cast": _ptr_cast,
        "mem.shared": _shared}


# -- loads and stores -----------------------------------------------------------------------------
class _Access:
    """What a load, store or atomic needs to know of its type: bytes, bit-pattern dtype, element count."""

    def __init__(self, t, space: str):
        self.type, self.space = t, space
        self.elem = element_type(t)
        self.size = t.bytes
        self.count = t.count if isinstance(t, VectorType) else 0
        self.dtype = numerics.storage_dtype(self.elem)

    def index(self, offsets: np.ndarray) -> np.ndarray:
        index = (offsets // np.uint64(self.dtype.itemsize)).astype(np.intp)
        return index[:, None] + np.arange(self.count) if self.count else index


def _active(group, env, mask_value):
    """The lanes that access memory (None: every lane of the block), as indices."""
    if mask_value is None and group.full:
        return None
    active = group.mask if mask_value is None else group.mask & env[mask_value]
    return np.flatnonzero(active)


def _read(access: _Access, space, addrs, lanes, block, what="load") -> np.ndarray:
    bits = np.empty((len(addrs), access.count) if access.count else len(addrs), access.dtype)
    for seg, selection, offsets in space.locate(addrs, lanes, access.size, what):
        if seg is block.shared and (block.landing is not None or block.launch.races):
            touched, readers = _bytes_of(offsets, access.size), _rows_lanes(offsets, lanes, selection)
            if block.landing is not None:   # (a copy still landing there: BlockState.check_not_landing)
                block.check_not_landing(touched, _lane_in(readers), "a load reads")
            if block.launch.races:
                races.reading(block, touched, readers)
        values = seg.typed(access.dtype)[access.index(offsets)]
        if selection is None:
            return values
        bits[selection] = values
    return bits


def _load(op, launch):
    t, n = op.result.type, launch.nthreads
    access = _Access(t, op.operands[0].type.space)
    ptr, mask, other = (list(op.operands) + [None, None])[:3]
    zero = numerics.zeros(t, n)
    result = op.result

    def load(group):
        env = group.env
        lanes = _active(group, env, mask)
        space = group.block.space(access.space)
        if lanes is None:
            env[result] = numerics.from_storage(access.elem, _read(access, space, env[ptr], None, group.block))
            return
        out = (env[other] if other is not None else zero).copy()
        if lanes.size:
            out[lanes] = numerics.from_storage(access.elem, _read(access, space, env[ptr][lanes], lanes, group.block))
        env[result] = out
    return load


def _store(op, launch):
    access = _Access(op.operands[1].type, op.operands[0].type.space)
    ptr, value, mask = (list(op.operands) + [None])[:3]

    def store(group):
        env = group.env
        lanes = _active(group, env, mask)
        addrs, bits = env[ptr], numerics.to_storage(access.type, env[value])
        if lanes is not None:
            if not lanes.size:
                return
            addrs, bits = addrs[lanes], bits[lanes]
        block = group.block
        for seg, selection, offsets in block.space(access.space).locate(addrs, lanes, access.size, "store"):
            _check_writable(seg, lanes, selection)
            stored = bits if selection is None else bits[selection]
            if seg is block.shared:
                written, writers = _bytes_of(offsets, access.size), _rows_lanes(offsets, lanes, selection)
                _shared_write(block, written, writers, "a store")
                if block.launch.races:
                    races.writing(block, written, writers,
                                  np.ascontiguousarray(stored).view(np.uint8).reshape(written.shape), seg.data[written])
            seg.typed(access.dtype)[access.index(offsets)] = stored
    return store


def _lane_in(rows):
    """Which lane row i of a segment's accesses is (`rows`: _rows_lanes)."""
    return lambda row: int(rows[row])


def check_not_read_by_stores(block, offsets, size: int, lanes, selection, what: str = "a store"):
    block.check_not_read_by_stores(_bytes_of(offsets, size), _lane_in(_rows_lanes(offsets, lanes, selection)), what)


def _shared_write(block, written, writers, what: str):
    """A store's or atomic's write of shared bytes `written` (rows, bytes) by lanes `writers` (one a row): a Fault
    where an asynchronous read (BlockState.reading) or a copy still landing (BlockState.landing) has them; else they
    are a write of the generic proxy's, not yet fenced (BlockState.unfenced)."""
    if block.reading is not None:
        block.check_not_read_by_stores(written, _lane_in(writers), what)
    if block.landing is not None:
        block.check_not_landing(written, _lane_in(writers), f"{what} writes")
    block.written_generically(written, writers)


def _bytes_of(offsets, size: int) -> np.ndarray:
    """The bytes (rows, size) of the accesses of `size` bytes at `offsets`."""
    return offsets.astype(np.int64)[:, None] + np.arange(size)


def _rows_lanes(offsets, lanes, selection) -> np.ndarray:
    """The lane of each row of a segment's accesses (`selection` of `lanes`; None: all of them)."""
    if lanes is None:
        return np.arange(offsets.shape[0]) if selection is None else np.asarray(selection)
    return lanes if selection is None else lanes[selection]


def _check_writable(seg, lanes, selection):
    if not seg.writable:
        position = 0 if selection is None else int(selection[0])
        raise Fault(f"store to read-only array '{seg.name}'", int(lanes[position]) if lanes is not None else position,
                    hint="map a writeable array")


# -- atomics --------------------------------------------------------------------------------------
_ATOMIC = {"add": "arith.add", "min": "arith.min", "max": "arith.max",
           "and": "arith.and", "or": "arith.or", "xor": "arith.xor"}


def _combine(kind: str, elem):
    if kind == "xchg":
        return lambda old, value: value
    if elem.is_float and kind in ("and", "or", "xor"):
        return None
    return binary_function(_ATOMIC[kind], elem)


def _apply_atomic(access, seg, offsets, update):
    """Apply update(old) -> new at each offset in order; give the old values (conflicts go one at a time)."""
    view = seg.typed(access.dtype)
    index = access.index(offsets)
    if np.unique(index).size == index.size:
        old = numerics.from_storage(access.elem, view[index])
        view[index] = numerics.to_storage(access.elem, update(old, slice(None)))
        return old
    old = numerics.from_storage(access.elem, view[index]).copy()
    for j in range(index.size):
        seen = numerics.from_storage(access.elem, view[index[j:j + 1]])
        view[index[j]] = numerics.to_storage(access.elem, update(seen, slice(j, j + 1)))[0]
        old[j] = seen[0]
    return old


def _atomic_step(op, launch, make_update):
    """A step running an atomic read-modify-write; make_update(env, lanes, shared) gives update(old, part) -> new
    for the lanes whose addresses lie in shared memory (shared) or in global memory (whatever the pointer's space:
    a generic address reaches the same memory's atomic unit)."""
    access = _Access(op.result.type, op.operands[0].type.space)
    ptr = op.operands[0]
    mask = op.operands[2] if op.name == "mem.atomic" and len(op.operands) == 3 else None
    zero, result = numerics.zeros(op.result.type, launch.nthreads), op.result

    def atomic(group):
        env = group.env
        lanes = _active(group, env, mask)
        lanes = launch.lanes if lanes is None else lanes
        out = zero.copy()
        if lanes.size:
            for seg, selection, offsets in group.block.space(access.space).locate(env[ptr][lanes], lanes, access.size,
                                                                                   "atomic"):
                _check_writable(seg, lanes, selection)
                block = group.block
                if seg is block.shared:
                    written, writers = _bytes_of(offsets, access.size), _rows_lanes(offsets, lanes, selection)
                    _shared_write(block, written, writers, "an atomic")
                    if block.launch.races:
                        races.updating(block, written, writers)
                chosen = slice(None) if selection is None else selection
                update = make_update(env, lanes, seg is block.shared)
                out[lanes[chosen]] = _apply_atomic(access, seg, offsets, _restrict(update, chosen))
        env[result] = out
    return atomic


def _restrict(update, chosen):
    """update() over a subset of the accessing lanes (those of one segment)."""
    if isinstance(chosen, slice):
        return update
    return lambda old, part: update(old, chosen[part])


def _atomic(op, launch):
    kind, elem = op.attrs["op"], op.result.type
    combine = _combine(kind, elem)
    if combine is None:
        return failing(f"atomic {kind} is not defined on {elem}")
    value = op.operands[1]
    flushing = kind == "add" and elem.name == "f32" and launch.target.vendor == "nvidia"

    def make_update(env, lanes, shared):
        values = env[value][lanes]
        if flushing and not shared:
            # PTX: atom.add.f32 on global memory flushes subnormal inputs and results to sign-preserving zero, also
            # where a generic address reaches it (an H100 gave 0 for 1e-39 + 1e-39 there; shared memory keeps them)
            return lambda old, part: _flushed(combine(_flushed(old), _flushed(values[part])))
        return lambda old, part: combine(old, values[part])
    return _atomic_step(op, launch, make_update)


def _flushed(x: np.ndarray) -> np.ndarray:
    """f32 subnormals as zeros of their sign."""
    x = np.asarray(x, np.float32)
    return np.where(np.abs(x) < np.finfo(np.float32).tiny, np.copysign(np.float32(0), x), x).astype(np.float32)


def _atomic_cas(op, launch):
    _, compare, value = op.operands

    def make_update(env, lanes, shared):
        expected, values = env[compare][lanes], env[value][lanes]
        return lambda old, part: np.where(old == expected[part], values[part], old)
    return _atomic_step(op, launch, make_update)


# -- var slots ------------------------------------------------------------------------------------
def _var_alloc(op, launch):
    t, result = op.result.type.elem, op.result
    return lambda group: group.env.__setitem__(result, Slot(numerics.zeros(t, launch.nthreads)))


def _var_load(op, launch):
    slot, result = op.operands[0], op.result

    def var_load(group):
        group.env[result] = group.env[slot].value
    return var_load


def _var_store(op, launch):
    slot_value, value = op.operands
    vector = isinstance(value.type, VectorType)

    def var_store(group):
        env = group.env
        slot = env[slot_value]
        if group.full:
            slot.value = env[value]
        else:
            mask = group.mask[:, None] if vector else group.mask
            stored = env[value]
            slot.value = np.where(mask, stored, slot.value)
            if group.block.mma_results:   # (a wgmma's accumulator in flight stays one in the merged value)
                group.block.carry_in_flight(stored, slot.value)
    return var_store


def failing(message: str, hint: str = ""):
    """A step that stops the kernel with message when any thread reaches it."""
    def fail(group):
        if group.alive:
            raise Fault(message, group.first_lane(), hint)
    return fail


EFFECTS = {"mem.load": _load, "mem.store": _store, "mem.atomic": _atomic, "mem.atomic_cas": _atomic_cas,
           "var.alloc": _var_alloc, "var.load": _var_load, "var.store": _var_store}

