"""Target descriptions: plain data every layer may read (blocks choose instructions from it)."""
from __future__ import annotations

import collections.abc
import operator
from dataclasses import dataclass, field, fields

from .diagnostics import SkcError


def launch_dims(value) -> tuple:
    """A grid, block or cluster shape as (x, y, z): an int, or 1 to 3 of them in order (numpy's, a 0-d or 1-D array
    or tensor too). Integers only, never truncated: (2.7, 1) is not (2, 1), True is no count and the string "12" no
    shape. Raises ValueError saying what is wrong (its text follows the value's role: "grid ...")."""
    if isinstance(value, bool):
        raise ValueError(f"must be an int or a tuple of up to 3 ints, found {value!r}")
    if isinstance(value, int):
        dims = (value,)
    else:
        try:
            if isinstance(value, (str, bytes, dict, set, frozenset)) or isinstance(value, collections.abc.Iterator):
                raise TypeError   # (no sizes in order: {1: 2} was the grid (1,), a generator was used up once)
            if type(value) not in (tuple, list) and _bool_or_deep(value):
                raise TypeError   # (torch reads a bool tensor, and one of one element in any dimensions, as an index)
            try:   # one integer (numpy's, a 0-d array); else a sequence of them (a tuple, a 1-D array or tensor)
                dims = (operator.index(value),)
            except TypeError:
                items = tuple(value)
                if any(type(v) is not int and (isinstance(v, bool) or _bool_or_deep(v)) for v in items):
                    raise TypeError   # (a bool is no size: True would launch one block)
                dims = tuple(operator.index(v) for v in items)
        except TypeError:
            raise ValueError(f"must be an int or a tuple of up to 3 ints, found {value!r}") from None
        if not 1 <= len(dims) <= 3:
            raise ValueError(f"must have 1 to 3 dimensions, found {value!r}")
    if any(d <= 0 for d in dims):
        raise ValueError(f"has a dimension of zero or less ({value!r}); every dimension must be at least 1")
    return dims + (1,) * (3 - len(dims))


def _bool_or_deep(value) -> bool:
    """Whether an array or tensor holds bools, or has more dimensions than a shape's 1 (torch.tensor([[2]]))."""
    dtype = getattr(value, "dtype", None)
    return (dtype is not None and str(dtype) in ("bool", "torch.bool")) or getattr(value, "ndim", 0) > 1


@dataclass(frozen=True)
class Target:
    """One GPU architecture as the compiler sees it."""

    name: str                       # "sm_90a", "gfx942", ...
    vendor: str                     # "nvidia" or "amd"
    warp_size: int                  # 32 on NVIDIA, 64 (a wavefront) on CDNA
    max_threads_per_block: int
    max_shared_bytes: int           # per block, with the opt-in limit raised
    default_shared_bytes: int       # per block without opting in
    max_registers_per_thread: int
    features: frozenset = field(default_factory=frozenset)
    llvm_cpu: str = ""
    llvm_features: str = ""
    warpgroup_size: int = 0         # threads of a warpgroup: 4 consecutive warps, wgmma's unit (PTX ISA 9.7.15)
    # blocks a launch may have along x, y, z (CUDA C Programming Guide, table of technical
    # specifications; HIP keeps the same limits so one check serves both)
    max_grid: tuple = (2 ** 31 - 1, 65535, 65535)
    # threads a block may have along x, y, z (the same table; HIP's are 1024 along each)
    max_block: tuple = (1024, 1024, 64)

    def key(self) -> str:
        """Every field, in a text the same in every process (the features sorted): what the compile cache keys a
        target by. Its name alone does not tell a target made with dataclasses.replace (other limits, which the
        backends read) from the one it was made from."""
        return repr(tuple((f.name, sorted(v) if isinstance(v, frozenset) else v)
                          for f in fields(self) for v in (getattr(self, f.name),)))

    def has(self, feature: str) -> bool:
        return feature in self.features

    def __str__(self):
        return self.name


# Only flags something reads: the frontend's and backends' target checks, legalization.
# cvt_bf16_int: one instruction converts 32- and 64-bit integers to bf16, rounding once (PTX cvt.rn.bf16.s32, sm_90)
_HOPPER = frozenset({"bf16_arith", "f16_arith", "mbarrier", "tma", "wgmma", "setmaxnreg", "cluster", "cvt_bf16_int"})
_AMPERE = frozenset({"bf16_arith", "f16_arith"})
_CDNA = frozenset({"mfma", "f16_arith"})

TARGETS = {
    # sm_90a: 227 KB of shared memory per block once opted in (CUDA C Programming Guide, table of
    # compute capabilities: 228 KB per SM, 1 KB reserved per block).
    "sm_90a": Target("sm_90a", "nvidia", 32, 1024, 232448, 49152, 255, _HOPPER, "sm_90a", "+ptx80",
                     warpgroup_size=128),
    "sm_80": Target("sm_80", "nvidia", 32, 1024, 166912, 49152, 255, _AMPERE, "sm_80", "+ptx80"),
    # CDNA: 64 KB of LDS per workgroup; 512 registers per lane counting the AGPRs (CDNA3 ISA 3.6).
    "gfx942": Target("gfx942", "amd", 64, 1024, 65536, 65536, 512, _CDNA | {"mfma_fp8"}, "gfx942", "",
                     max_block=(1024, 1024, 1024)),
    "gfx90a": Target("gfx90a", "amd", 64, 1024, 65536, 65536, 512, _CDNA, "gfx90a", "",
                     max_block=(1024, 1024, 1024)),
}


class UnknownTargetError(SkcError):
    pass


def get_target(target) -> Target:
    """The Target named `target` (or `target` itself when it already is one)."""
    if isinstance(target, Target):
        return target
    found = TARGETS.get(str(target))
    if found is None:
        hint = ""
        if str(target) == "sm_90":
            hint = " (Hopper's wgmma and setmaxnreg need the architecture-specific 'sm_90a')"
        raise UnknownTargetError(f"unknown target {target!r}{hint}; known targets: {', '.join(TARGETS)}")
    return found
