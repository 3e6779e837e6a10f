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
from ...ir.types import Im2colTensorMapType, ScalarType, TensorMapType
from ..launcher import host_view
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
    if isinstance(tensor_map.spec, Im2colTensorMapType):
        return map_im2col_map(tensor_map, memory, name)
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
    if len(value.shape) != value.spec.rank:
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
                if target.reading is not None:
                    target.check_not_read_by_stores(physical[None], lambda row: lane, "tma.load")
                target.shared.data[physical] = data
                landing = barrier_at(target, barrier, lane, "tma.load")
                target.copying(physical)
                target.completes_on(landing, physical)
                landing.transact(-nbytes, lane)   # complete-tx
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
            block.check_async_read(physical, lane, "tma.store reads")
            values = block.shared.data[physical].view(dtype).reshape(t.box)
            _write_global(launch, env[tmap][lane], values, origin, lane)
            # the GPU's copy engine reads the source some time before the lane's wait for its group: until then
            # the bytes must not change (BlockState.check_not_read_by_stores)
            block.bulk_reads.setdefault(lane, ([], []))[0].append(physical)
            block.last_bulk_store = op.loc
            reading_changed(block)
    return store


def check_stores_waited(block):
    """At the block's end, no TMA store may still read its shared memory: the GPU frees the block's shared memory when
    it exits, under a copy that has not read it yet (an epilogue used without its `with`, whose exit waits)."""
    lanes = [lane for lane, (open_group, groups) in block.bulk_reads.items()
             if any(addresses.size for addresses in (*open_group, *groups))]
    if lanes:
        raise block.error(block.last_bulk_store, Fault(
            "the block ended with TMA stores still reading its shared memory (no cp.async.bulk.wait_group after "
            "them): on the GPU the block's shared memory is freed under the copy", lanes[0],
            hint="wait for the stores before the kernel ends: use the epilogue in a `with` block (its exit waits), "
                 "or call skc.hopper.tma_wait(0)"))


# -- TMA stores in flight: their shared source is read until a wait for their bulk group -----------------------------
def _tma_commit(op, launch):
    """Close each lane's open group of stores (cp.async.bulk.commit_group)."""
    def commit(group):
        block = group.block
        for lane in np.flatnonzero(group.mask).tolist():
            close_read_group(block.bulk_reads, lane)
    return commit


def close_read_group(table: dict, owner):
    """Commit `owner`'s open group of asynchronous reads (a lane's bulk stores, a warpgroup's wgmma ops) in `table`
    (owner -> (open group, committed groups))."""
    open_group, groups = table.setdefault(owner, ([], []))
    groups.append(np.concatenate(open_group) if open_group else np.empty(0, np.int64))
    open_group.clear()


def retire_read_groups(table: dict, owner, pending: int):
    """Leave at most `pending` of `owner`'s committed groups of reads in flight (the oldest complete first)."""
    groups = table.get(owner, ((), []))[1]
    del groups[:max(0, len(groups) - pending)]


def _tma_wait(op, launch):
    """At most `pending` of each lane's committed groups are left in flight (cp.async.bulk.wait_group[.read])."""
    pending = int(op.attrs["pending"])

    def wait(group):
        block = group.block
        for lane in np.flatnonzero(group.mask).tolist():
            retire_read_groups(block.bulk_reads, lane, pending)
        reading_changed(block)
    return wait


def reading_changed(block):
    """Recompute the shared bytes that asynchronous reads still in flight may read: the sources of TMA stores whose
    bulk group was not waited for (`bulk_reads`, by lane) and the operands of wgmma ops whose wgmma group was not
    waited for (`mma_reads`, by warpgroup; wgmma.py). `reading` is their union, `mma_reading` the wgmma part."""
    def union(table):
        parts = [addresses for open_group, groups in table.values() for addresses in (*open_group, *groups)]
        parts = [addresses for addresses in parts if addresses.size]
        if not parts:
            return None
        reading = np.zeros(block.shared.nbytes, bool)
        for addresses in parts:
            reading[addresses] = True
        return reading

    stores, mmas = union(block.bulk_reads), union(block.mma_reads)
    block.mma_reading = mmas
    block.reading = mmas if stores is None else stores if mmas is None else stores | mmas


def _nothing(op, launch):
    """Memory is sequentially consistent: a global fence has nothing left to do, nor has a descriptor prefetch."""
    return lambda group: None


def _fence_proxy_async(op, launch):
    """The running lanes' generic writes to shared memory are visible to the async proxy from now on (memory is
    sequentially consistent here: the fence only ends their being unfenced, BlockState.unfenced)."""
    return lambda group: group.block.fenced(np.flatnonzero(group.mask))


EFFECTS = {"tma.load": _tma_load, "tma.store": _tma_store, "tma.commit": _tma_commit, "tma.wait": _tma_wait,
           "fence.proxy_async": _fence_proxy_async, "fence.acq_rel_gpu": _nothing, "tma.prefetch": _nothing}


# -- im2col mode (PTX ISA 5.5.4) -----------------------------------------------------------------
# The walk below follows the PTX ISA's description (the filter base steps through the bounding box by the
# traversal strides, W fastest, wrapping to the lower corner) and agrees with how CUTLASS-style conv kernels
# set the corners; it has not been checked on an H100 yet (tests/gpu/test_conv2d_gpu.py does that).
@dataclass(frozen=True)
class Im2colDescriptor(TensorMapDescriptor):
    """An im2col tensor map as the interpreter reads it: a tiled descriptor whose box is (pixels, channels),
    plus the spatial bounding box's corners and traversal strides (outermost first)."""

    lower: tuple = ()
    upper: tuple = ()
    traversal: tuple = ()

    @property
    def spec(self) -> Im2colTensorMapType:
        return Im2colTensorMapType(self.elem, self.box, self.swizzle, len(self.shape))


def map_im2col_map(tensor_map, memory, name: str) -> Im2colDescriptor:
    """Map the host array of an skc.Im2colTensorMap into `memory` and describe it."""
    from dataclasses import fields

    plain = map_tensor_map(_AsTiled(tensor_map), memory, name)
    values = {f.name: getattr(plain, f.name) for f in fields(TensorMapDescriptor)}
    return Im2colDescriptor(**values, lower=tuple(tensor_map.lower), upper=tuple(tensor_map.upper),
                            traversal=tuple(tensor_map.traversal))


class _AsTiled:
    """The tensor-map facts map_tensor_map reads, with a tiled spec: maps the array the same way."""

    def __init__(self, tensor_map):
        self.tensor, self.dtype, self.shape, self.strides = (tensor_map.tensor, tensor_map.dtype, tensor_map.shape,
                                                             tensor_map.strides)
        self.box, self.swizzle = tensor_map.box, tensor_map.swizzle
        self.spec = TensorMapType(tensor_map.dtype, tensor_map.box, tensor_map.swizzle)


def im2col_pixels(desc: Im2colDescriptor, origin: list, offsets: list, lane: int) -> list:
    """The (n, spatial...) tensor index each pixel of a copy reads: the filter base starts at origin's spatial
    part and walks the bounding box [lower, extent - 1 + upper] by the traversal strides, innermost dimension
    fastest, wrapping to the lower corner of the next row (and past the outermost spatial one, to the next
    image); each pixel read is the base plus the offsets."""
    spatial = desc.shape[1:-1]
    low = list(desc.lower)
    high = [extent - 1 + upper for extent, upper in zip(spatial, desc.upper)]
    base, image = list(origin[1:-1]), origin[0]
    if any(not lo <= b <= hi for b, lo, hi in zip(base, low, high)):
        raise Fault(f"tma.load_im2col with its filter base at {base} (outermost first), outside the bounding box "
                    f"{low}..{high} that the tensor map encodes", lane,
                    hint="start copies at a filter base inside the box (an output pixel of the convolution)")
    pixels = []
    for _ in range(desc.box[0]):
        pixels.append((image, *[b + o for b, o in zip(base, offsets)]))
        for dim in reversed(range(len(base))):   # innermost (W) first
            base[dim] += desc.traversal[dim]
            if base[dim] <= high[dim]:
                break
            base[dim] = low[dim]
        else:
            image += 1
    return pixels


def _read_im2col(launch, desc: Im2colDescriptor, origin, offsets, dtype, lane) -> np.ndarray:
    pixels, channels = desc.box
    out = np.zeros((pixels, channels), dtype)
    first, last = max(origin[-1], 0), min(origin[-1] + channels, desc.shape[-1])
    if first >= last:
        return out
    rows, starts = [], []
    for row, index in enumerate(im2col_pixels(desc, origin, offsets, lane)):
        if all(0 <= i < extent for i, extent in zip(index, desc.shape[:-1])):
            rows.append(row)
            starts.append(sum(i * stride for i, stride in zip(index, desc.strides[:-1])))
    if not rows:
        return out
    elements = np.array(starts, np.int64)[:, None] + np.arange(first, last, dtype=np.int64) * desc.strides[-1]
    addresses = (np.uint64(desc.address) + (elements * desc.elem.bytes).astype(np.uint64)).reshape(-1)
    values = np.empty(addresses.size, dtype)
    lanes = np.full(addresses.size, lane)
    for seg, selection, byte_offsets in launch.memory.address_map_for("global", None).locate(
            addresses, lanes, dtype.itemsize, "tma.load_im2col"):
        picked = seg.typed(dtype)[(byte_offsets // np.uint64(dtype.itemsize)).astype(np.intp)]
        values[slice(None) if selection is None else selection] = picked
    out[np.array(rows)[:, None], np.arange(first - origin[-1], last - origin[-1])] = values.reshape(len(rows), -1)
    return out


# PTX ISA 5.5.4.1: the im2col offsets of a copy are 0 .. 2**16 - 1 for a 3-D tensor, 0 .. 2**8 - 1 for 4-D and
# 0 .. 2**5 - 1 for 5-D (the instruction's 16 bits hold them; the GPU reads only these)
IM2COL_OFFSET_LIMIT = {3: (1 << 16) - 1, 4: (1 << 8) - 1, 5: (1 << 5) - 1}


def _check_im2col_offsets(offsets: list, rank: int, lane: int):
    limit = IM2COL_OFFSET_LIMIT[rank]
    if max(offsets) > limit:
        raise Fault(f"tma.load_im2col with im2col offsets {offsets[::-1]} (innermost first): a rank-{rank} copy takes "
                    f"offsets of 0 to {limit} (PTX ISA 5.5.4.1)", lane,
                    hint="keep the filter taps' offsets (r * dilation) within the range, or load such taps another way")


def _tma_load_im2col(op, launch):
    t = op.operands[2].type
    if not isinstance(t, Im2colTensorMapType):
        return failing(f"tma.load_im2col of a tensor map typed {t}: the interpreter needs its element type, box and "
                       "swizzle", hint="declare the parameter as an im2col map (tmap_im2col<bf16, 4d, 128x64, "
                                       "swizzle=128>)")
    rank = op.attrs["rank"]
    dst, bar, tmap = op.operands[:3]
    coords, offsets = op.operands[3:3 + rank], op.operands[3 + rank:]
    dtype, nbytes = numerics.storage_dtype(t.elem), t.box_bytes

    def load(group):
        env, block = group.env, group.block
        for lane in np.flatnonzero(group.mask).tolist():
            desc = env[tmap][lane]
            origin = [int(env[c][lane]) for c in reversed(coords)]   # outermost first: n, (d,) h, w, c
            shift = [int(env[o][lane]) & 0xFFFF for o in reversed(offsets)]   # unsigned 16-bit offsets
            _check_im2col_offsets(shift, rank, lane)
            _check_coordinates(t, origin, lane, "tma.load_im2col", store=False)
            data = _read_im2col(launch, desc, origin, shift, dtype, lane).reshape(-1).view(np.uint8)
            physical = _shared_addresses(block, int(env[dst][lane]), t, lane, "tma.load_im2col")
            _check_barriers_untouched(block, physical, lane, "tma.load_im2col")
            if block.reading is not None:
                block.check_not_read_by_stores(physical[None], lambda row: lane, "tma.load_im2col")
            block.shared.data[physical] = data
            landing = barrier_at(block, int(env[bar][lane]), lane, "tma.load_im2col")
            block.copying(physical)
            block.completes_on(landing, physical)
            landing.transact(-nbytes, lane)
    return load


EFFECTS["tma.load_im2col"] = _tma_load_im2col
