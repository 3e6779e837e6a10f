"""Warpgroup ops (PTX ISA 9.7.15): wgmma.mma_async reading A and B from shared memory through
matrix descriptors, its fence/commit/wait, and setmaxnreg. A warpgroup is lanes 128w..128w+127
of the block; these ops are `.sync.aligned`: every thread of a warpgroup that runs one runs it.

wgmma.mma: D(64 x n, f32) = D + A(64 x k) B(k x n), k = 16 for f16/bf16 and 32 for fp8 (e4m3/e5m2, the
two may mix; 32 bytes of K either way, so the canonical layouts below hold unchanged). The descriptor
(9.7.15.5.1.2.2 "Matrix
Descriptor Format") gives the start address, the leading- and stride-dimension byte offsets
(LBO, SBO) and the swizzle; the canonical layouts (9.7.15.5.1.2.1.3, with T = 16 bytes of
elements) say where element (row, k) of each operand lies before the swizzle (tma.swizzle)
maps that logical address to the physical one. The result is the accumulator fragment of
9.7.15.5.1.1 ("Register Fragments", m64nNk16 with f32 D).

The product is taken when the wgmma is issued; the tensor cores read the shared operands later, until a
wgmma.wait retires the wgmma group (9.7.15.4, 9.7.15.7.3). Until then the operands' bytes count as read by a
copy in flight, as a TMA store's source does: a write to them (a store, an atomic, a cp.async, a TMA load) is
reported as a race. Likewise the result: the tensor cores write the accumulator registers until that wait, so an
op that reads a result still in flight (anything but another wgmma taking it as its accumulator) is an error.

Numerics: products of bf16/f16 are exact in f32; the 16 products of each element are summed
exactly (in f64, exact unless their exponents span more than ~30 binades), rounded once to
f32 and added to D in f32. The tensor cores round differently: on an H100, with random bf16
data, 55% of results were bit-identical and the others a few ulps off (more where sums
cancel); a sum of D and the 16 products aligned to the largest of them, truncated 26 bits
below it and rounded toward zero matched 99%, so the hardware truncates. Sums that are exact
(small integers, or terms within 24 bits of each other) agree bit for bit.

fp8 (m64nNk32): products of e4m3/e5m2 values are exact in f32 (at most 4 + 4 significant bits, exponents
within 2**-32 .. 2**32); the model adds them to D one at a time in k order, each sum rounded to f32. The
order and width of the hardware's accumulation are not specified (it is known to keep fewer bits than f32
for fp8), so results may differ from the GPU in the last bits; sums that are exact agree bit for bit.

Checked on an H100 against these formulas (16-bit types): K-major and MN-major A and B, no swizzle and the
32/64/128-byte swizzles, n = 8, 64 and 256, bit for bit (SBO along M/N for MN-major without
swizzle, as PTX's canonical layout has it).
"""
from __future__ import annotations

import numpy as np

from ...ir.ops_async import WGMMA_FP8_TYPES, WGMMA_K
from ...ir.types import ScalarType
from . import numerics
from .state import Fault, lane_ranges
from .tma import close_read_group, reading_changed, retire_read_groups, swizzle

WARPGROUP = 128
M = 64   # wgmma.mma_async .m64nNkK (PTX ISA 9.7.15.5); K per operand type in ir.ops_async.WGMMA_K
SWIZZLE_MODES = {0: 0, 1: 128, 2: 64, 3: 32}   # descriptor bits 62-63 -> swizzle bytes


def whole_units(group, what: str, size: int, unit: str) -> list:
    """The lanes (arrays of `size`) of each warpgroup or wavefront with active lanes in the group; ops the
    hardware runs per unit (wgmma, MFMA, setmaxnreg) need every lane of it active."""
    launch = group.block.launch
    found = []
    for w in np.unique(np.flatnonzero(group.mask) // size).tolist():
        lanes = np.arange(w * size, (w + 1) * size)
        inside = lanes[lanes < launch.nthreads]
        missing = inside[~group.mask[inside]]
        if inside.size < size or missing.size:
            absent = np.zeros(max(launch.nthreads, lanes[-1] + 1), bool)
            absent[missing] = True
            absent[lanes[lanes >= launch.nthreads]] = True
            raise Fault(f"{what} must be executed by all {size} threads of a {unit}: {unit} {w} (threads "
                        f"{lanes[0]}-{lanes[-1]}) runs it without threads {lane_ranges(absent)}",
                        group.first_lane(), hint=f"run it outside branches that split {unit}s (e.g. not under "
                                                 f"an elect_one), in blocks of a multiple of {size} threads")
        found.append(lanes)
    return found


def warpgroups(group, what: str) -> list:
    return whole_units(group, what, WARPGROUP, "warpgroup")


def fragment_layout(n: int):
    """(rows, cols), each (128, n/2): the D element thread t of a warpgroup holds as its value i (9.7.15.5.1.1)."""
    t = np.arange(WARPGROUP)[:, None]
    i = np.arange(n // 2)[None, :]
    column_block, within = i // 4, i % 4
    rows = 16 * (t // 32) + (t % 32) // 4 + 8 * (within // 2)
    cols = 8 * column_block + 2 * (t % 4) + within % 2
    return rows, cols


def decode_descriptor(desc: int) -> tuple:
    """(start, LBO, SBO, base offset, swizzle bytes) of a 64-bit matrix descriptor (9.7.15.5.1.2.2)."""
    desc &= (1 << 64) - 1
    start = (desc & 0x3FFF) << 4
    lbo = ((desc >> 16) & 0x3FFF) << 4
    sbo = ((desc >> 32) & 0x3FFF) << 4
    return start, lbo, sbo, (desc >> 49) & 0x7, SWIZZLE_MODES[desc >> 62]


def operand_addresses(desc: int, rows: int, mn_major: bool, elem_bytes: int, depth: int = 16) -> np.ndarray:
    """The logical shared address of element (row, k) of an operand, (rows, depth), before the swizzle.

    `row` is m for A and n for B. K-major: rows of K contiguous; MN-major: columns of M/N contiguous. From the
    canonical layouts of PTX ISA 9.7.15.5.1.2.1.3 (S = swizzle bytes, e = element bytes, c = row * e):
      K-major, swizzled:   start + (row // 8) SBO + (row % 8) S + k e
      K-major, none:       start + (row // 8) SBO + (k e // 16) LBO + (row % 8) 16 + k e % 16
      MN-major, swizzled:  start + (c // S) LBO + (k // 8) SBO + (k % 8) S + c % S
      MN-major, none:      start + (c // 16) SBO + (k // 8) LBO + (k % 8) 16 + c % 16
    (MN-major without swizzle is ((T,1,m),(8,k)):((1,T,SBO),(1T,LBO)): SBO steps along M/N, LBO along K.)
    """
    start, lbo, sbo, _, swizzle_bytes = decode_descriptor(desc)
    row = np.arange(rows, dtype=np.int64)[:, None]
    k = np.arange(depth, dtype=np.int64)[None, :]
    ke, c = k * elem_bytes, row * elem_bytes
    if not mn_major:
        if swizzle_bytes:
            return start + (row // 8) * sbo + (row % 8) * swizzle_bytes + ke
        return start + (row // 8) * sbo + (ke // 16) * lbo + (row % 8) * 16 + ke % 16
    if swizzle_bytes:
        return start + (c // swizzle_bytes) * lbo + (k // 8) * sbo + (k % 8) * swizzle_bytes + c % swizzle_bytes
    return start + (c // 16) * sbo + (k // 8) * lbo + (k % 8) * 16 + c % 16


def _read_operand(block, desc: int, rows: int, mn_major: bool, elem: ScalarType, what: str, lane: int, reads: list):
    """The operand's (rows, k) values as float64, k = 32 bytes of elements; appends the shared byte addresses it reads
    to `reads`."""
    _, _, _, base_offset, swizzle_bytes = decode_descriptor(desc)
    if base_offset:
        raise Fault(f"wgmma.mma: the {what} descriptor {desc & ((1 << 64) - 1):#018x} has base offset {base_offset}; "
                    "the interpreter takes swizzle patterns that start at their natural boundary (base offset 0)",
                    lane, hint="align the operand's shared buffer to 1024 bytes and leave bits 49-51 zero")
    depth = WGMMA_K[elem.name]
    physical = swizzle(operand_addresses(desc, rows, mn_major, elem.bytes, depth), swizzle_bytes)
    end = int(physical.max()) + elem.bytes
    if end > block.shared.nbytes:
        raise Fault(f"wgmma.mma reads {what} at shared bytes up to {end - 1}, past the {block.shared.nbytes} bytes "
                    f"of shared memory (descriptor {desc & ((1 << 64) - 1):#018x})", lane,
                    hint="check the descriptor's start address, LBO and SBO")
    read = (physical[..., None] + np.arange(elem.bytes)).reshape(-1)
    block.check_async_read(read, lane, f"wgmma.mma reads its {what} operand from")
    reads.append(read)
    dtype = numerics.storage_dtype(elem)
    bits = block.shared.typed(dtype)[physical // elem.bytes]
    return numerics.from_storage(elem, bits).astype(np.float64)


def _uniform(values: np.ndarray, lanes: np.ndarray, what: str) -> int:
    first = values[lanes[0]]
    differ = values[lanes] != first
    if differ.any():
        lane = int(lanes[np.argmax(differ)])
        raise Fault(f"wgmma.mma: the {what} descriptor differs across the warpgroup (thread {int(lanes[0])} has "
                    f"{int(first) & ((1 << 64) - 1):#x}, thread {lane} {int(values[lane]) & ((1 << 64) - 1):#x})", lane,
                    hint="compute the descriptor from warpgroup-uniform values")
    return int(first)


def _mma(op, launch):
    n, elem = op.attrs["n"], ScalarType(op.attrs["dtype"])
    elem_b = ScalarType(op.attrs.get("dtype_b", elem.name))
    trans_a, trans_b = bool(op.attrs.get("trans_a", 0)), bool(op.attrs.get("trans_b", 0))
    zero_acc = bool(op.attrs.get("zero_acc", 0))
    product = _products_in_k_order if elem.name in WGMMA_FP8_TYPES else _products_summed_once
    rows, cols = fragment_layout(n)
    acc, desc_a, desc_b = op.operands
    result = op.result

    def mma(group):
        env, block = group.env, group.block
        out = env[acc].copy()
        for lanes in warpgroups(group, "wgmma.mma"):
            lane, da, db = int(lanes[0]), _uniform(env[desc_a], lanes, "A"), _uniform(env[desc_b], lanes, "B")
            reads = _in_flight(block, lanes)
            a = _read_operand(block, da, M, trans_a, elem, "A", lane, reads)     # (m, k)
            b = _read_operand(block, db, n, trans_b, elem_b, "B", lane, reads)   # (n, k)
            d = np.zeros((M, n), np.float32)
            if not zero_acc:  # zero_acc: scale-d = 0, D = A B
                d[rows, cols] = env[acc][lanes]
            out[lanes] = product(d, a, b)[rows, cols]
            _writing(block, lanes).append(out)
        env[result] = out
        reading_changed(block)
    return mma


def register_a_layout():
    """(rows, cols), each (128, 8): the A element (of 64 x 16) thread t holds as value i of its register fragment
    (PTX ISA 9.7.15.5.1.1, m64nNk16 A in registers: warp w holds rows 16w..16w+15 as mma.m16n8k16 does: values
    0-1 at row (t % 32) / 4, columns 2 (t % 4) + {0, 1}; 2-3 eight rows below; 4-7 the same eight columns on)."""
    t = np.arange(WARPGROUP)[:, None]
    i = np.arange(8)[None, :]
    rows = 16 * (t // 32) + (t % 32) // 4 + 8 * ((i // 2) % 2)
    cols = 2 * (t % 4) + i % 2 + 8 * (i // 4)
    return rows, cols


def _mma_rs(op, launch):
    n, elem = op.attrs["n"], ScalarType(op.attrs["dtype"])
    trans_b = bool(op.attrs.get("trans_b", 0))
    rows, cols = fragment_layout(n)
    a_rows, a_cols = register_a_layout()
    acc, a_fragment, desc_b = op.operands
    result = op.result

    def mma(group):
        env, block = group.env, group.block
        out = env[acc].copy()
        for lanes in warpgroups(group, "wgmma.mma_rs"):
            lane, db = int(lanes[0]), _uniform(env[desc_b], lanes, "B")
            a = np.empty((M, 16), np.float64)
            a[a_rows, a_cols] = env[a_fragment][lanes]      # the values are exact in bf16/f16
            b = _read_operand(block, db, n, trans_b, elem, "B", lane, _in_flight(block, lanes))   # (n, k)
            d = np.empty((M, n), np.float32)
            d[rows, cols] = env[acc][lanes]
            out[lanes] = _products_summed_once(d, a, b)[rows, cols]
            _writing(block, lanes).append(out)
        env[result] = out
        reading_changed(block)
    return mma


def _products_summed_once(d: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """f16/bf16: the k products of each element summed exactly, rounded once to f32, added to D in f32."""
    return d + (a @ b.T).astype(np.float32)


def _products_in_k_order(d: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """fp8: each exact product added to D in f32, k = 0, 1, ... (the hardware's order and width may differ)."""
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):   # infinities and NaN propagate as on the GPU
        for k in range(a.shape[1]):
            d = d + np.outer(a32[:, k], b32[:, k])
    return d


def _whole_warpgroups(op, launch):
    """An op with no effect in the interpreter that still must be run by whole warpgroups."""
    def check(group):
        warpgroups(group, op.name)
    return check


# -- wgmma groups: the interpreter multiplies when a wgmma is issued, but the tensor cores read its shared operands
# asynchronously until a wgmma.wait_group retires its group (PTX ISA 9.7.15.4, 9.7.15.7.3), so until then a write to
# them is a race on the GPU (BlockState.check_not_read_by_stores reports it) -----------------------------------------
def _in_flight(block, lanes) -> list:
    """The open wgmma group's list of shared byte addresses of the warpgroup of `lanes` (kept short: a long run of
    wgmma ops without a commit reads the same tiles again and again)."""
    open_group = block.mma_reads.setdefault(int(lanes[0]) // WARPGROUP, ([], []))[0]
    if len(open_group) > 16:
        open_group[:] = [np.unique(np.concatenate(open_group))]
    return open_group


def _commit(op, launch):
    """Close each warpgroup's open group of wgmma ops (wgmma.commit_group)."""
    def commit(group):
        block = group.block
        for lanes in warpgroups(group, op.name):
            close_read_group(block.mma_reads, int(lanes[0]) // WARPGROUP)
            written = block.mma_results.get(int(lanes[0]) // WARPGROUP)
            if written is not None:
                written[1].append(list(written[0]))
                written[0].clear()
    return commit


def _wait(op, launch):
    """At most `pending` of each warpgroup's committed groups are left in flight (wgmma.wait_group)."""
    pending = int(op.attrs["pending"])

    def wait(group):
        block = group.block
        for lanes in warpgroups(group, op.name):
            warpgroup = int(lanes[0]) // WARPGROUP
            retire_read_groups(block.mma_reads, warpgroup, pending)
            retire_read_groups(block.mma_results, warpgroup, pending)
            if not any(block.mma_results.get(warpgroup, ())):   # (none in flight: reads are not checked at all)
                block.mma_results.pop(warpgroup, None)
        reading_changed(block)
    return wait


# -- the accumulators of wgmma groups in flight: the tensor cores write them until a wgmma.wait_group retires the
# group (PTX ISA 9.7.15.7.3: reading them before is undefined); the interpreter has them at issue, so a read of one
# before the wait is named here. Another wgmma may take one as its accumulator (the hardware chains them in order).
ACCUMULATING = ("wgmma.mma", "wgmma.mma_rs")


def _writing(block, lanes) -> list:
    """The open wgmma group's list of result arrays of the warpgroup of `lanes`."""
    return block.mma_results.setdefault(int(lanes[0]) // WARPGROUP, ([], []))[0]


def result_values(function) -> frozenset:
    """The values of `function` that may hold a wgmma's result: the wgmma ops' own, and what variables they are
    stored into give back (a loop's accumulator)."""
    ops = list(function.body.walk())
    found = {op.results[0] for op in ops if op.name in ACCUMULATING}
    slots, grown = set(), bool(found)
    while grown:
        grown = False
        for op in ops:
            if op.name == "var.store" and op.operands[1] in found and op.operands[0] not in slots:
                slots.add(op.operands[0])
                grown = True
            elif op.name == "var.load" and op.operands[0] in slots and op.results[0] not in found:
                found.add(op.results[0])
                grown = True
    return frozenset(found)


def read_operands(op, results: frozenset) -> tuple:
    """The operands of `op` that may hold a wgmma's result and that it reads as values (a variable's store and a
    wgmma's accumulator pass them on)."""
    if op.name == "var.store":
        return ()
    operands = op.operands[1:] if op.name in ACCUMULATING else op.operands
    return tuple(dict.fromkeys(v for v in operands if v in results))


def checking_results(op, values: tuple, step):
    """`step`, after a check that none of `values` is the result of a wgmma still in flight in a warpgroup
    whose threads run it."""
    def check(group):
        table = group.block.mma_results
        if table:
            _not_in_flight(op, values, group, table)
        return step(group)
    return check


def _not_in_flight(op, values, group, table):
    env = group.env
    for value in values:
        held = env.get(value)
        for warpgroup, (open_group, groups) in table.items():
            if any(a is held for a in open_group) or any(a is held for g in groups for a in g):
                lanes = group.mask[warpgroup * WARPGROUP:(warpgroup + 1) * WARPGROUP]
                if lanes.any():
                    raise Fault(f"{op.name} reads the accumulator of a wgmma that no wgmma.wait has retired "
                                f"(warpgroup {warpgroup}): the tensor cores may still be writing those registers, "
                                "so on the GPU the value read is undefined", warpgroup * WARPGROUP + int(np.argmax(lanes)),
                                hint="commit the wgmma group and wait for it first (skc.hopper.wgmma_commit(), then "
                                     "skc.hopper.wgmma_wait(pending) with a pending count that leaves this group "
                                     "out)")


# -- wgmma.fence (PTX ISA 9.7.15.7.1): a warpgroup runs one before its first wgmma, and between any other
# instruction's access of registers a wgmma reads or writes (its accumulator, a register A fragment) and that wgmma;
# wgmma ops chained on one accumulator are ordered without it. The interpreter has no registers: it takes as one set
# a wgmma's accumulator and its result, and a variable with the values stored into it and loaded from it.
MOVES = ("var.alloc", "var.load", "var.store")   # (no instruction of their own once in registers)


def register_sets(function) -> dict:
    """value -> its register set (an int), for the values that share registers with a wgmma's accumulator or A
    fragment."""
    parent: dict = {}

    def root(value):
        while parent.setdefault(value, value) is not value:
            value = parent[value]
        return value

    def join(a, b):
        parent[root(a)] = root(b)

    ops, operands = list(function.body.walk()), []
    for op in ops:
        if op.name in ACCUMULATING:
            operands += [*_registers_read(op), op.result]
            if not _zeroing(op):
                join(op.operands[0], op.result)
        elif op.name == "var.store":
            join(op.operands[1], op.operands[0])
        elif op.name == "var.load":
            join(op.result, op.operands[0])
    kept = {root(value) for value in operands}
    numbers = {kept_root: number for number, kept_root in enumerate(kept)}
    return {value: numbers[root(value)] for value in parent if root(value) in numbers}


def _zeroing(op) -> bool:
    """A wgmma with zero_acc (scale-d = 0): its accumulator operand is no register of it (the backend passes the
    result's registers only, as outputs), so other accesses of that operand need no fence before it."""
    return op.name == "wgmma.mma" and bool(op.attrs.get("zero_acc", 0))


def _registers_read(op) -> list:
    """The operands of a wgmma in its registers: the accumulator (unless zeroing), and the A fragment of mma_rs."""
    return [*op.operands[1 if _zeroing(op) else 0:2 if op.name == "wgmma.mma_rs" else 1]]


def fencing(op, sets: dict, step):
    """`step`, keeping the wgmma.fence rule for the register sets (register_sets) `op` reads or writes: a wgmma
    checks that none of its sets had another access since its warpgroup's last fence; another op marks the sets it
    accesses for its lanes."""
    if op.name in ACCUMULATING:
        return _fenced(op, tuple(dict.fromkeys(sets[v] for v in (*_registers_read(op), op.result))), step)
    touched = tuple(dict.fromkeys(sets[v] for v in (*op.operands, *op.results) if v in sets))
    if not touched or op.name in MOVES:
        return step

    def touch(group):
        marks = group.block.register_access
        for number in touched:
            found = marks.get(number)
            if found is None:
                marks[number] = group.mask.copy()
            else:
                found |= group.mask
        return step(group)
    return touch


def _fenced(op, touched: tuple, step):
    what = "accumulator" if len(touched) == 1 else "accumulator or A fragment"

    def check(group):
        block = group.block
        for lanes in warpgroups(group, op.name):
            warpgroup = int(lanes[0]) // WARPGROUP
            if block.mma_fenced is None or not block.mma_fenced[lanes].all():
                raise Fault(f"{op.name} is the first wgmma of warpgroup {warpgroup} and no wgmma.fence came before "
                            "it: on the GPU its register accesses are unordered with the instructions before it",
                            int(lanes[0]), hint="call skc.hopper.wgmma_fence() before the warpgroup's first wgmma")
            for number in touched:
                marks = block.register_access.get(number)
                if marks is not None and marks[lanes].any():
                    lane = int(lanes[np.argmax(marks[lanes])])
                    raise Fault(f"{op.name} uses registers (its {what}) that another instruction of thread {lane} "
                                "read or wrote after the warpgroup's last wgmma.fence: on the GPU the wgmma may run "
                                "before that access lands, or after it", lane,
                                hint="call skc.hopper.wgmma_fence() between the other access and the wgmma (once "
                                     "for a group of wgmma ops)")
        return step(group)
    return check


def _fence(op, launch):
    """The warpgroups' register accesses so far are ordered before the wgmma ops that follow (wgmma.fence)."""
    def fence(group):
        block = group.block
        for lanes in warpgroups(group, op.name):
            if block.mma_fenced is None:
                block.mma_fenced = np.zeros(launch.nthreads, bool)
            block.mma_fenced[lanes] = True
            for marks in block.register_access.values():
                marks[lanes] = False
    return fence


EFFECTS = {"wgmma.mma": _mma, "wgmma.mma_rs": _mma_rs, "wgmma.fence": _fence, "wgmma.commit": _commit,
           "wgmma.wait": _wait, "gpu.setmaxnreg": _whole_warpgroups}
