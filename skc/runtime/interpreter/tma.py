"""TMA bulk tensor copies (PTX ISA 9.7.9.25.5.1, cp.async.bulk.tensor) between a tensor in
global memory, described by a tensor map, and a box in shared memory; the interpreter-side
tensor-map descriptor; the shared-memory swizzle.

A copy moves the box of the tensor map's type (outermost dimension first) at coordinates
given innermost first (PTX order). A load reads elements outside the tensor as zero; a store
skips them. In shared memory the box is row-major (innermost dimension contiguous) from dst:
byte b of box row r (all outer dimensions flattened) has the logical offset L = r * pitch + b
and sits at the physical address swizzle(dst + L), a function of the absolute shared address
(CUTLASS Swizzle<3,4,3> for 128B, <2,4,3> for 64B, <1,4,3> for 32B: bits 4-6 of the address
are XORed with bits 7-9, as many of them as the mode takes). The pitch is the row's bytes
without a swizzle, and the swizzle span with one: a row narrower than the span still takes
a whole span, the rest of which the copy leaves alone. A load then completes the box's bytes
(zero-filled ones included, the padding not) on the mbarrier it names. Copies happen when
issued, by each lane that runs the op, with that lane's operands.

Checked on an H100 (sm_90a, driver 580) against these kernels in the interpreter: the
placement above for every swizzle, boxes narrower than the span included; and two faults the
GPU raises (an illegal instruction) that the interpreter reports: an innermost coordinate
whose byte offset is not a multiple of 16, and a store whose box starts before the tensor
(a negative coordinate; loads take negative coordinates and read zeros there).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...diagnostics import LaunchError
from ...ir.types import ScalarType, TensorMapType
from . import numerics
from .access import failing
from .mbarriers import BARRIER_BYTES, barrier_at, cluster_block
from .state import Fault

SWIZZLE_MASKS = {0: 0, 32: 1, 64: 3, 128: 7}   # how many of address bits 7-9 are XORed into bits 4-6
ALIGNMENT = 128                                 # PTX ISA 9.7.9.25.5.1: the shared box is 128-byte aligned
SWIZZLE_ALIGNMENT = {128: 1024}                 # ... and where the 128B pattern repeats, for that mode


def swizzle(addresses: np.ndarray, swizzle_bytes: int) -> np.ndarray:
    """The physical shared address of each logical one: A ^ (((A >> 7) & mask) << 4)."""
    mask = SWIZZLE_MASKS[swizzle_bytes]
    if not mask:
        return addresses
    return addresses ^ (((addresses >> 7) & mask) << 4)


@dataclass(frozen=True)
class TensorMapDescriptor:
    """What the interpreter's TMA ops read of a tensor map: the tensor's base address in the interpreter's
    Memory, its shape and strides (elements, outermost first), element type, box (outermost first) and swizzle
    (bytes). Launches pass one per `tmap` argument (see `map_tensor_map`)."""

    address: int
    shape: tuple
    strides: tuple
    elem: ScalarType
    box: tuple
    swizzle: int
    name: str = "tensor"

    @property
    def spec(self) -> TensorMapType:
        return TensorMapType(self.elem, self.box, self.swizzle)

    def __repr__(self):
        return (f"TensorMapDescriptor('{self.name}' at {self.address:#x}, shape={self.shape}, "
                f"strides={self.strides}, {self.spec})")


def map_tensor_map(tensor_map, memory, name: str) -> TensorMapDescriptor:
    """Map the host array of an skc.TensorMap into `memory` and describe it.

    The array mapped starts at the tensor's first element and spans every element its shape and strides
    reach, so tensors with padded rows (a view of a wider array) map as they are.
    """
    from ..launcher import host_view

    array = host_view(tensor_map.tensor, name, "TensorMap", strided=True)
    elem = tensor_map.dtype
    if array.dtype.itemsize != elem.bytes:
        raise LaunchError(f"tensor map '{name}' has {elem} elements ({elem.bytes} bytes) but its array holds "
                          f"{array.dtype} ({array.dtype.itemsize} bytes)")
    shape, strides = tuple(int(s) for s in tensor_map.shape), tuple(int(s) for s in tensor_map.strides)
    reach = 1 + sum((extent - 1) * stride for extent, stride in zip(shape, strides))
    if min(shape) > 0 and reach > array.size:
        raise LaunchError(f"tensor map '{name}' reaches element {reach - 1} (shape {shape}, strides {strides}) but "
                          f"its array has {array.size} elements")
    address = memory.map_array(array, name=name)
    return TensorMapDescriptor(address, shape, strides, elem, tuple(tensor_map.box), int(tensor_map.swizzle), name)


def check_descriptor(value, t: TensorMapType, name: str):
    """A launch argument for a parameter of type t: a descriptor whose type agrees with t."""
    if not isinstance(value, TensorMapDescriptor):
        raise LaunchError(f"argument '{name}' is a {t}: pass a TensorMapDescriptor (interpreter.map_tensor_map), "
                          f"found {type(value).__name__}")
    if t.elem is not None and value.spec is not t:
        raise LaunchError(f"argument '{name}' is a tensor map of {value.spec} but the kernel was compiled for {t}")
    if len(value.shape) != len(value.box):
        raise LaunchError(f"tensor map '{name}' has a rank-{len(value.shape)} tensor and a rank-{len(value.box)} box")


# -- the global side of a copy -------------------------------------------------------------------
class _Box:
    """The elements of one copy's box that lie inside the tensor: per dimension the box positions (a slice) and
    the tensor indices they cover; their global addresses."""

    def __init__(self, desc: TensorMapDescriptor, box: tuple, origin: list):
        self.inside, self.empty = [], False
        offsets = np.zeros((), np.int64)
        for start, extent, size, stride in zip(origin, box, desc.shape, desc.strides):
            first, last = max(start, 0), min(start + extent, size)   # tensor indices [first, last)
            if first >= last:
                self.empty = True
                return
            self.inside.append(slice(first - start, last - start))
            offsets = offsets[..., None] + np.arange(first, last, dtype=np.int64) * stride
        self.addresses = (np.uint64(desc.address) + (offsets * desc.elem.bytes).astype(np.uint64)).reshape(-1)
        self.shape = offsets.shape


def _global_parts(launch, box: _Box, size: int, lane: int, what: str):
    lanes = np.full(box.addresses.size, lane)
    return launch.memory.address_map_for("global", None).locate(box.addresses, lanes, size, what)


def _read_global(launch, desc, box_shape, origin, dtype, lane) -> np.ndarray:
    out = np.zeros(box_shape, dtype)
    box = _Box(desc, box_shape, origin)
    if box.empty:
        return out
    values = np.empty(box.addresses.size, dtype)
    for seg, selection, offsets in _global_parts(launch, box, dtype.itemsize, lane, "TMA load"):
        picked = seg.typed(dtype)[(offsets // np.uint64(dtype.itemsize)).astype(np.intp)]
        values[slice(None) if selection is None else selection] = picked
    out[tuple(box.inside)] = values.reshape(box.shape)
    return out


def _write_global(launch, desc, box_values, origin, lane):
    box = _Box(desc, box_values.shape, origin)
    if box.empty:
        return
    values = np.ascontiguousarray(box_values[tuple(box.inside)]).reshape(-1)
    dtype = values.dtype
    for seg, selection, offsets in _global_parts(launch, box, dtype.itemsize, lane, "TMA store"):
        if not seg.writable:
            raise Fault(f"TMA store to read-only array '{seg.name}'", lane, hint="map a writeable array")
        chosen = slice(None) if selection is None else selection
        seg.typed(dtype)[(offsets // np.uint64(dtype.itemsize)).astype(np.intp)] = values[chosen]


# -- the shared side of a copy -------------------------------------------------------------------
def _shared_addresses(block, start: int, t: TensorMapType, lane: int, what: str) -> np.ndarray:
    """The physical shared address of each byte of a box of type t at `start` (in box order), checked for
    alignment and bounds."""
    alignment = SWIZZLE_ALIGNMENT.get(t.swizzle, ALIGNMENT)
    if start % alignment:
        raise Fault(f"{what} with its shared-memory box at offset {start:#x}, which is not {alignment}-byte aligned"
                    f"{f' (the {t.swizzle}B swizzle pattern repeats every 1024 bytes)' if alignment > 128 else ''}",
                    lane, hint=f"align the shared buffer to {alignment} bytes")
    row = t.box[-1] * t.elem.bytes
    rows = t.box_bytes // row
    pitch = max(row, t.swizzle)
    logical = (np.arange(rows, dtype=np.int64)[:, None] * pitch + np.arange(row, dtype=np.int64)).reshape(-1)
    physical = swizzle(start + logical, t.swizzle)
    end = int(physical.max()) + 1
    if end > block.shared.nbytes:
        raise Fault(f"{what} with its {rows * pitch}-byte shared-memory box at offset {start:#x} reaches byte "
                    f"{end - 1}, past the {block.shared.nbytes} bytes of shared memory", lane)
    return physical


def _check_coordinates(t: TensorMapType, origin: list, lane: int, what: str, store: bool):
    """The coordinates an H100 accepts (measured: others raise an illegal-instruction fault there)."""
    inner = origin[-1] * t.elem.bytes
    if inner % 16:
        raise Fault(f"{what} at innermost coordinate {origin[-1]}: its byte offset {inner} is not a multiple of 16, "
                    "which the GPU faults on", lane, hint="start boxes at multiples of 16 bytes along the innermost "
                                                          "dimension")
    if store and min(origin) < 0:
        raise Fault(f"{what} of a box that starts before the tensor (coordinates {origin[::-1]}, innermost first): "
                    "the GPU faults on negative store coordinates", lane,
                    hint="boxes may run past the tensor's end, not start before its beginning")


def _check_barriers_untouched(block, physical: np.ndarray, lane: int, what: str):
    """A copy that overwrites an initialized mbarrier corrupts it on the GPU: stop there."""
    low, high = int(physical.min()), int(physical.max())
    for address in block.mbarriers:
        if address <= high and low < address + BARRIER_BYTES:
            if ((physical >= address) & (physical < address + BARRIER_BYTES)).any():
                raise Fault(f"{what} writes shared bytes in {low:#x}..{high:#x}, over "
                            f"{block.mbarriers[address].name()}", lane, hint="give the barriers their own shared buffer")


def _spec_problem(op, t) -> str:
    if not isinstance(t, TensorMapType) or t.elem is None:
        return (f"{op.name} of a tensor map typed bare 'tmap': the interpreter needs its element type, box and "
                "swizzle (a parameter typed like tmap<bf16, 64x64, swizzle=128>)")
    if t.rank != op.attrs["rank"]:
        return f"{op.name} of rank {op.attrs['rank']} on a tensor map of rank {t.rank} ({t})"
    return ""


def _tma_load(op, launch):
    t = op.operands[2].type
    problem = _spec_problem(op, t)
    if problem:
        return failing(problem, hint="declare the parameter with its element type, box and swizzle")
    rank, multicast = t.rank, bool(op.attrs.get("multicast", False))
    dst, bar, tmap = op.operands[:3]
    coords = op.operands[3:3 + rank]
    mask = op.operands[-1] if multicast else None
    dtype, nbytes = numerics.storage_dtype(t.elem), t.box_bytes

    def load(group):
        env, block = group.env, group.block
        for lane in np.flatnonzero(group.mask).tolist():
            origin = [int(env[c][lane]) for c in reversed(coords)]   # outermost first
            _check_coordinates(t, origin, lane, "tma.load", store=False)
            data = _read_global(launch, env[tmap][lane], t.box, origin, dtype, lane).reshape(-1).view(np.uint8)
            start, barrier = int(env[dst][lane]), int(env[bar][lane])
            targets = [block] if mask is None else _multicast_blocks(block, int(env[mask][lane]), lane)
            for target in targets:
                physical = _shared_addresses(target, start, t, lane, "tma.load")
                _check_barriers_untouched(target, physical, lane, "tma.load")
                target.shared.data[physical] = data
                barrier_at(target, barrier, lane, "tma.load").transact(-nbytes, lane)   # complete-tx
    return load


def _multicast_blocks(block, mask: int, lane: int) -> list:
    """The blocks of the cluster whose rank bit is set in the 16-bit mask."""
    mask &= 0xFFFF
    return [cluster_block(block, rank, lane, "tma.load with multicast") for rank in range(16) if mask >> rank & 1]


def _tma_store(op, launch):
    t = op.operands[0].type
    problem = _spec_problem(op, t)
    if problem:
        return failing(problem, hint="declare the parameter with its element type, box and swizzle")
    tmap, src = op.operands[:2]
    coords = op.operands[2:]
    dtype = numerics.storage_dtype(t.elem)

    def store(group):
        env, block = group.env, group.block
        for lane in np.flatnonzero(group.mask).tolist():
            origin = [int(env[c][lane]) for c in reversed(coords)]
            _check_coordinates(t, origin, lane, "tma.store", store=True)
            physical = _shared_addresses(block, int(env[src][lane]), t, lane, "tma.store")
            values = block.shared.data[physical].view(dtype).reshape(t.box)
            _write_global(launch, env[tmap][lane], values, origin, lane)
    return store


def _nothing(op, launch):
    """Copies complete when issued and memory is sequentially consistent: commits, waits and proxy fences have
    nothing left to do."""
    return lambda group: None


EFFECTS = {"tma.load": _tma_load, "tma.store": _tma_store, "tma.commit": _nothing, "tma.wait": _nothing,
           "fence.proxy_async": _nothing}
