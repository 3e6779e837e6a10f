"""Memory of interpreted kernels: allocations at distinct addresses, and the decoding of
addresses (bounds and alignment checked) for loads, stores and atomics.

Global allocations sit at 256-byte-aligned addresses from 2**40 up, with unmapped gaps
between them so that overruns fault instead of reading a neighbour. Shared memory is one
buffer per block at addresses 0..shared_bytes (ptr<shared> values are 32-bit offsets); a
generic address below 2**32 is taken as a shared address, any other as a global one.
"""
from __future__ import annotations

import numpy as np

from ...diagnostics import LaunchError
from .state import Fault

GLOBAL_BASE = 1 << 40
SHARED_WINDOW = 1 << 32   # generic addresses below this are shared-memory addresses
ALIGNMENT = 256           # cudaMalloc's alignment
VECTOR_ALIGNMENT = 16     # the widest vector access (map_array keeps an array's place in it)
GAP = 1 << 20             # unmapped bytes after each allocation


class Segment:
    """A contiguous range of addressable bytes: `data` is a uint8 view of its buffer."""

    __slots__ = ("name", "base", "nbytes", "data", "writable", "owner", "_views")

    def __init__(self, name: str, base: int, data: np.ndarray, writable: bool = True, owner=None):
        self.name, self.base, self.data, self.writable, self.owner = name, base, data, writable, owner
        self.nbytes = int(data.size)
        self._views: dict = {}

    def typed(self, dtype: np.dtype) -> np.ndarray:
        """The buffer seen as an array of dtype (aligned accesses index it by offset // itemsize)."""
        view = self._views.get(dtype)
        if view is None:
            usable = self.nbytes - self.nbytes % dtype.itemsize
            view = self._views[dtype] = self.data[:usable].view(dtype)
        return view

    def describe(self) -> str:
        return f"'{self.name}' ({self.nbytes} bytes at {self.base:#x})"


class AddressMap:
    """Segments of one address space, sorted by address; decodes per-thread addresses."""

    def __init__(self, space: str, segments):
        self.space = space
        self.segments = sorted(segments, key=lambda s: s.base)
        self.bases = np.array([s.base for s in self.segments], np.uint64)
        self.sizes = np.array([s.nbytes for s in self.segments], np.uint64)

    def locate(self, addrs: np.ndarray, lanes, size: int, what: str):
        """[(segment, selection, byte offsets)] covering `addrs` (uint64), each accessed `size` bytes.

        `selection` indexes addrs (None: all of them); `lanes` (None: position = lane) name the
        thread of each address for faults. Raises Fault when an access leaves every segment or
        is not aligned to its size.
        """
        if addrs.size == 0:
            return []
        low, high = int(addrs.min()), int(addrs.max())
        k = int(np.searchsorted(self.bases, low, side="right")) - 1
        if k >= 0:
            seg = self.segments[k]
            if seg.base <= low and high + size <= seg.base + seg.nbytes:
                self._check_alignment(addrs, lanes, size, what)
                return [(seg, None, addrs - np.uint64(seg.base))]
        if not self.segments:
            raise Fault(self.describe_miss(int(addrs[0]), size, what), _lane(lanes, 0))
        index = np.searchsorted(self.bases, addrs, side="right").astype(np.int64) - 1
        safe = np.maximum(index, 0)
        base, limit = self.bases[safe], self.sizes[safe]
        offsets = addrs - base
        inside = (index >= 0) & (addrs >= base) & (limit >= size) & (offsets <= limit - np.uint64(size))
        if not inside.all():
            first = int(np.argmin(inside))
            raise Fault(self.describe_miss(int(addrs[first]), size, what), _lane(lanes, first),
                        hint="check the index arithmetic and the bounds mask of this access")
        self._check_alignment(addrs, lanes, size, what)
        parts = []
        for k in np.unique(index):
            selection = np.flatnonzero(index == k)
            parts.append((self.segments[int(k)], selection, offsets[selection]))
        return parts

    def _check_alignment(self, addrs, lanes, size, what):
        misaligned = (addrs & np.uint64(size - 1)) != 0
        if misaligned.any():
            first = int(np.argmax(misaligned))
            raise Fault(f"misaligned {size}-byte {what} at address {int(addrs[first]):#x} in {self.space} memory: "
                        f"the address must be a multiple of {size}", _lane(lanes, first),
                        hint="vector accesses need addresses aligned to the vector's size, as on the GPU")

    def describe_miss(self, addr: int, size: int, what: str) -> str:
        """Says which allocation the faulting address is nearest to, and how far off it is."""
        text = f"out-of-bounds {what} of {size} bytes at address {addr:#x} in {self.space} memory"
        if not self.segments:
            return text + (": this block has no shared memory" if self.space == "shared" else ": nothing is mapped")
        k = int(np.searchsorted(self.bases, addr, side="right")) - 1
        below = self.segments[k] if k >= 0 else None
        above = self.segments[k + 1] if k + 1 < len(self.segments) else None
        past = addr + size - (below.base + below.nbytes) if below is not None else None
        ahead = above.base - addr if above is not None else None
        if below is not None and (ahead is None or past <= ahead):
            start = addr - below.base
            return (f"{text}: bytes {start}..{start + size - 1} of {below.describe()}, "
                    f"{past} bytes past its end")
        return f"{text}: {ahead} bytes before the start of {above.describe()}"


def _lane(lanes, position: int) -> int:
    return int(lanes[position]) if lanes is not None else position


def shared_segment(nbytes: int) -> Segment:
    """A fresh zero-filled shared-memory buffer for one block."""
    return Segment("shared memory", 0, np.zeros(nbytes, np.uint8))


class Memory:
    """The global memory kernels see: numpy arrays mapped at addresses, and scratch allocations.

        mem = Memory()
        x = mem.map_array(np.zeros(1024, np.float32), name="x")   # loads and stores reach the array
        tmp = mem.allocate(4096, name="scratch")                   # zero-filled, owned by mem
    """

    def __init__(self):
        self._segments: list[Segment] = []
        self._next = GLOBAL_BASE
        self._global = None

    def map_array(self, array: np.ndarray, name: str = "array") -> int:
        """Map a C-contiguous array; kernels read and write its buffer in place. Gives its base address."""
        if not isinstance(array, np.ndarray):
            raise LaunchError(f"map_array takes a numpy array, found {type(array).__name__} for '{name}'")
        if not array.flags.c_contiguous:
            raise LaunchError(f"array '{name}' is not C-contiguous; pass np.ascontiguousarray(...)")
        if not array.dtype.isnative:
            raise LaunchError(f"array '{name}' is {array.dtype.str}, not in this machine's byte order; "
                              "pass array.astype(array.dtype.newbyteorder('='))")
        data = np.asarray(array).reshape(-1).view(np.uint8)   # (a subclass's view: np.matrix stays 2-D)
        # (at its own address's place in 16 bytes, as on a GPU, whose allocations are 256-byte aligned: a view a[1:] of
        # f32 lies 4 bytes past a boundary, where a 16-byte vector load faults; at an aligned base it had read fine)
        offset = array.ctypes.data % VECTOR_ALIGNMENT
        return self._add(Segment(name, self._next + offset, data, bool(array.flags.writeable), owner=array))

    def allocate(self, nbytes: int, name: str = "scratch") -> int:
        """A zero-filled buffer of nbytes owned by this Memory. Gives its base address."""
        if nbytes < 0:
            raise LaunchError(f"cannot allocate {nbytes} bytes for '{name}'")
        return self._add(Segment(name, self._next, np.zeros(int(nbytes), np.uint8)))

    def _add(self, segment: Segment) -> int:
        self._segments.append(segment)
        end = segment.base + segment.nbytes + GAP
        self._next = -(-end // ALIGNMENT) * ALIGNMENT
        self._global = None
        return segment.base

    def view(self, address: int, dtype=np.uint8, count: int = -1) -> np.ndarray:
        """The memory at `address` as `count` elements of dtype (-1: to the end of its allocation)."""
        for seg in self._segments:
            if seg.base <= address <= seg.base + seg.nbytes:
                data = seg.data[address - seg.base:]
                dtype = np.dtype(dtype)
                data = data[:len(data) - len(data) % dtype.itemsize].view(dtype)
                return data if count < 0 else data[:count]
        raise LaunchError(f"address {address:#x} is not in any allocation")

    def address_map_for(self, space: str, shared: Segment) -> AddressMap:
        """Decoding for pointers into `space`, with `shared` as the block's shared memory."""
        if space in ("global", "const"):
            if self._global is None:
                self._global = AddressMap("global", self._segments)
            return self._global
        if space == "shared":
            return AddressMap("shared", [shared])
        if space == "generic":
            return AddressMap("generic", [shared] + self._segments)
        return AddressMap(space, [])

    def __repr__(self):
        return "Memory(" + ", ".join(s.describe() for s in self._segments) + ")"
