"""Epilogues: from a consumer's accumulator fragment to the output. Both apply the fused element-wise
part (`FusedEpilogue`: alpha·AB, scaled per row and per column, + beta·C + bias, then an activation) and convert
to the output type.
`TmaStoreEpilogue` (Hopper) writes the warpgroup's 64 x n tile to shared memory and stores it with
TMA (which skips whatever lies outside the output); `DirectStoreEpilogue` (AMD) stores each lane's
accumulator values straight to global memory, masked at the edges. Neither knows an MMA's register
layout: the accumulator says where each of its values lies (`runs()`, `values()`, `corner`)."""
from __future__ import annotations

import copy
import numbers
from dataclasses import dataclass
from typing import Optional

import skc
from skc import frontend

from . import scheduler
from .arguments import check_count, check_dtype, check_has, check_tensor_map, is_integer, refuse
from .mma import Wgmma
from .roles import check_role, claim_named_barriers, current_role, every_warpgroup_of_role, kernel_consumers
from .scheduler import split_count

ACTIVATIONS = (None, "relu", "gelu", "silu")


@dataclass(frozen=True)
class EpilogueSpec:
    """The compile-time shape of the fused epilogue: which extra inputs it reads, which activation."""

    alpha: bool = False        # scale the product by a run-time alpha
    beta: bool = False         # add beta times an input C
    bias: bool = False         # add a per-column bias
    activation: Optional[str] = None
    row_scale: bool = False    # scale each row by its f32 value of a vector (torch._scaled_mm's row-wise scale_a)
    column_scale: bool = False  # scale each column likewise (row-wise scale_b; int8-style dequantization)

    def check(self):
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; choose from {ACTIVATIONS}")


def activate(kind, v):
    if kind == "relu":   # as torch's F.relu: a NaN stays NaN and -0.0 stays -0.0 (maximum gives 0: IEEE maxNum)
        return skc.where(v < 0.0, 0.0, v)
    if kind == "gelu":  # the tanh approximation
        return 0.5 * v * (1.0 + skc.tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)))
    if kind == "silu":
        return v / (1.0 + skc.exp(-v))
    return v


class EpilogueArgs:
    """The fused epilogue's operands: the spec (compile time) and the run-time values it reads, for an
    M x N output: alpha, beta, the input C (`c`, row-major M x N), the bias (N values) and the f32 scale vectors
    (`row_scale`, M values; `column_scale`, N values). For a batched output
    (an epilogue given each tile's matrix), `c_batch_stride` is the elements from one matrix's C to the next's:
    M · N for a B x M x N C, 0 for one C that every matrix adds; `bias_batch_stride` likewise for the bias, by
    default one bias for every matrix (a grouped convolution's matrices, its groups, each have their N filters')."""

    def __init__(self, spec: EpilogueSpec, M, N, alpha=1.0, beta=0.0, c=None, bias=None, c_batch_stride=None,
                 row_scale=None, column_scale=None, bias_batch_stride=None):
        if not isinstance(spec, EpilogueSpec):
            refuse("EpilogueArgs", "spec", "an EpilogueSpec (which terms the epilogue fuses)", spec,
                   "EpilogueArgs(EpilogueSpec(...), M, N, ...): EpilogueSpec() for none, or the config's epilogue")
        spec.check()
        for name, value in (("M", M), ("N", N)):
            if not is_integer(value):
                refuse("EpilogueArgs", name, "the output's rows" if name == "M" else "the output's columns", value,
                       f"give {name} as an integer (the kernel's i32 parameter, or a compile-time int)")
        for name, value in (("c", c), ("bias", bias), ("row_scale", row_scale), ("column_scale", column_scale)):
            if value is not None:
                check_pointer("EpilogueArgs", name, value, "its values")
        # (each operand with its spec term and whether it was given: alpha and beta at their defaults say nothing)
        operands = (("alpha", "alpha", alpha, not _is(alpha, 1.0)), ("beta", "beta", beta, not _is(beta, 0.0)),
                    ("beta", "c", c, c is not None), ("bias", "bias", bias, bias is not None),
                    ("row_scale", "row_scale", row_scale, row_scale is not None),
                    ("column_scale", "column_scale", column_scale, column_scale is not None))
        for term, name, value, _ in operands:
            if getattr(spec, term) and value is None:
                raise frontend.current().error(f"the epilogue's spec has {term}=True, which reads {name}; these "
                                               f"arguments give none", hint=f"give EpilogueArgs(..., {name}=...)")
        for term, name, _, given in operands:
            if given and not getattr(spec, term):   # (never applied: a wrong answer, silently)
                raise frontend.current().error(
                    f"these arguments give {name}, which the epilogue's spec leaves out ({term}=False): it would not "
                    f"be applied", hint=f"make the spec with {term}=True: EpilogueSpec(..., {term}=True), or leave "
                                        f"{name} out (a kernel that takes every operand whatever its spec: "
                                        f"EpilogueArgs.of_spec(spec, M, N, ...) keeps those the spec reads)")
        for name, value in (("alpha", alpha), ("beta", beta)):
            if value is not None and not _is_number(value):
                refuse("EpilogueArgs", name, "a number (compile-time, or a run-time scalar)", value,
                       f"give {name} as a float, or the kernel's f32 parameter")
        self.spec, self.M, self.N = spec, M, N
        self.alpha, self.beta, self.c, self.bias = alpha, beta, c, bias
        self.c_batch_stride, self.bias_batch_stride = c_batch_stride, bias_batch_stride
        self.row_scale, self.column_scale = row_scale, column_scale

    @classmethod
    def of_spec(cls, spec: EpilogueSpec, M, N, alpha=1.0, beta=0.0, c=None, bias=None, c_batch_stride=None,
                row_scale=None, column_scale=None, bias_batch_stride=None) -> "EpilogueArgs":
        """The arguments of a kernel that takes every operand whatever its spec (the library's GEMMs): those the
        spec reads, the others left out."""
        return cls(spec, M, N, alpha if spec.alpha else 1.0, beta if spec.beta else 0.0, c if spec.beta else None,
                   bias if spec.bias else None, c_batch_stride, row_scale if spec.row_scale else None,
                   column_scale if spec.column_scale else None, bias_batch_stride)

    def transposed(self) -> "EpilogueArgs":
        """The same operands for the N x M output whose transpose a kernel computes (MatmulConfig.swap_ab). The
        operands are the output's (C, the bias and the scales by its rows and columns), so only the sizes trade
        places: the kernel's epilogue is given them in the output's places."""
        return EpilogueArgs(self.spec, self.N, self.M, self.alpha, self.beta, self.c, self.bias, self.c_batch_stride,
                            self.row_scale, self.column_scale, self.bias_batch_stride)


def _is_number(value) -> bool:
    if isinstance(value, frontend.Dyn):
        return bool(getattr(value.type, "is_scalar", False))
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is(value, default: float) -> bool:
    """Whether an epilogue scalar is its compile-time default (a run-time value never is)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value == default


class FusedEpilogue:
    """The element-wise part of a GEMM epilogue: value -> activation(alpha · value · row_scale[row] ·
    column_scale[column] + beta · C[row, column] + bias[column]), each term present when the spec of `args` asks
    for it (C and bias read with masks, the scales at rows and columns clamped to M - 1 and N - 1: the output has
    a row and a column, or no epilogue runs). Of matrix `batch` of a batched output, C is read `batch` ·
    `args.c_batch_stride` elements on; the scale vectors have no batch stride: every matrix is scaled by the same
    M and N values. The scale vectors serve any GEMM whose operands were quantized per row of A
    and per column of B (fp8 row-wise, int8-style dequantization)."""

    def __init__(self, args: EpilogueArgs):
        if not isinstance(args, EpilogueArgs):   # (None failed later, "'Gated' object has no attribute 'scaled'")
            refuse(type(self).__name__, "args", "an EpilogueArgs (the spec and the run-time values it reads)", args,
                   "FusedEpilogue(EpilogueArgs(spec, M, N, ...)) (a subclass: super().__init__(args))")
        self.args = args

    @property
    def scaled(self) -> bool:
        """Whether the spec reads scale vectors (values `scales` loads, which a caller may load ahead)."""
        return self.args.spec.row_scale or self.args.spec.column_scale

    def scales(self, row, column) -> tuple:
        """(row scale, column scale) of output place (row, column), loaded (None for a scale the spec lacks). The
        reads are clamped into the vectors rather than masked: unconditional, so the compiler reads each address a
        thread's places share once, and a caller may issue them early; a value past M or N is not stored."""
        args = self.args
        row_scale = column_scale = None
        if args.spec.row_scale:
            row_scale = skc.f32(skc.load(args.row_scale + skc.minimum(row, args.M - 1)))
        if args.spec.column_scale:
            column_scale = skc.f32(skc.load(args.column_scale + skc.minimum(column, args.N - 1)))
        return row_scale, column_scale

    def __call__(self, value, row, column, batch=None, scales=None):
        """The fused part of `value` at output place (row, column); `scales`: that place's (row scale, column
        scale) as `scales(row, column)` gave them, loaded ahead (by default loaded here)."""
        args = self.args
        spec = args.spec
        if spec.alpha:
            value = value * args.alpha
        row_scale, column_scale = self.scales(row, column) if scales is None else scales
        if spec.row_scale:
            value = value * row_scale
        if spec.column_scale:
            value = value * column_scale
        if spec.beta or spec.bias:
            inside = (row < args.M) & (column < args.N)
            if spec.beta:
                c = args.c if batch is None else args.c + skc.i64(batch) * self.batch_stride()
                value = value + args.beta * skc.f32(skc.load(c + (skc.i64(row) * args.N + column), mask=inside))
            if spec.bias:
                bias = args.bias
                if batch is not None and args.bias_batch_stride is not None:   # (each matrix's own)
                    bias = bias + skc.i64(batch) * args.bias_batch_stride
                value = value + skc.f32(skc.load(bias + column, mask=column < args.N))
        return activate(spec.activation, value)

    @frontend.host   # (plain Python: a copy made and filled at compile time)
    def transposed(self) -> "FusedEpilogue":
        """This fused part for the N x M output whose transpose a kernel computes (MatmulConfig.swap_ab): a copy (a
        subclass's own operands too) over `args.transposed()`."""
        twin = copy.copy(self)
        twin.args = self.args.transposed()
        return twin

    def batch_stride(self):
        """C's elements from one matrix to the next: a batched store reads each matrix's own C, or one C for all,
        as the arguments say (read as one M x N C, every matrix added matrix 0's, silently)."""
        if self.args.c_batch_stride is None:
            raise frontend.current().error(
                "this epilogue stores a matrix of a batch and adds beta · C, but its EpilogueArgs do not say where "
                "each matrix's C lies", hint="give EpilogueArgs(..., c_batch_stride=M * N) for a C of B x M x N, or "
                "c_batch_stride=0 for one M x N C that every matrix adds")
        return self.args.c_batch_stride


def fused_part(args, block: str) -> FusedEpilogue:
    """The element-wise part an epilogue applies to each value: made from `args` (EpilogueArgs), or `args` itself,
    a FusedEpilogue (a subclass of the user's fuses what EpilogueSpec has no term for, docs/blocks.md)."""
    if isinstance(args, FusedEpilogue):
        return args
    if isinstance(args, EpilogueArgs):
        return FusedEpilogue(args)
    raise frontend.current().error(
        f"{block} applies the fused part its `args` give: EpilogueArgs(spec, M, N, ...), or a FusedEpilogue (a "
        f"subclass of yours whose __call__(value, row, column, batch=None, scales=None) fuses more); found "
        f"{type(args).__name__}", hint="pass EpilogueArgs(EpilogueSpec(...), M, N, ...), or FusedEpilogue(args) / "
        "your subclass of it")


@frontend.host
def check_pointer(block: str, name: str, value, holds: str):
    """A block's argument that its code offsets and stores through: a run-time pointer, else an error where the block
    is made (a tensor map given for SplitKEpilogue's out failed inside its epilogue, "'TensorMapType' object has no
    attribute 'is_signed'")."""
    if isinstance(value, (numbers.Number, str, tuple, list, type(None))):
        refuse(block, name, f"a pointer to {holds} (skc.Ptr[...])", value,
               "pass the tensor to a pointer parameter (skc.Ptr[...]) of the kernel")
    if not isinstance(value, frontend.Dyn) or isinstance(value.type, frontend.PtrType):
        return   # (a pointer, an Array, or what the user's code makes of its own: its use will tell)
    tmap = isinstance(value.type, skc.ir.TensorMapType)
    raise frontend.current().error(
        f"{block}'s {name} is a pointer to {holds} (skc.Ptr[...]), found "
        f"{f'a tensor map ({value.type})' if tmap else f'a run-time {value.type}'}",
        hint="pass the tensor to a pointer parameter (skc.Ptr[...]) of the kernel" +
             ("; a tensor map is for the blocks that copy by TMA (TmaStoreEpilogue)" if tmap else ""))


def _host_array(value) -> bool:
    """Whether value is an array of the host's (a device array, numpy's, a framework's tensor), not a kernel's
    pointer."""
    return not isinstance(value, (frontend.Dyn, frontend.Array)) and any(hasattr(value, name) for name in (
        "__array_interface__", "__dlpack__", "data_ptr", "numpy"))   # (skc's device arrays: numpy())


def check_stored(block: str, acc, row0, col0, batch=None, says=("values", "corner", "wait")):
    """An epilogue's call: an accumulator (a TileOp's zeros(), or one of the user's that says `says`) at an integer
    corner of the output (of an integer matrix of a batch)."""
    check_has(block, "accumulator", acc, says, "an accumulator (a TileOp's zeros())",
              "pass the accumulator the TileOp computed (acc = mma.zeros(); mma(acc, stage.a, stage.b))")
    for name, value in (("row0", row0), ("col0", col0)) + ((("batch", batch),) if batch is not None else ()):
        if not is_integer(value):
            refuse(block, name, "an integer (the output tile's first " + ("row" if name == "row0" else "column" if
                   name == "col0" else "matrix") + ")", value, "give the tile's tile.row0, tile.col0 (tile.batch)")
    scheduler.check_order(row0, "stored", block)


def _plus(x, offset):
    """x + offset, leaving x alone for a compile-time offset of 0."""
    return x if isinstance(offset, int) and offset == 0 else x + offset


def _check_consumer_role(epilogue):
    """An epilogue stores a consumer's accumulator: the producer's warpgroup holds none."""
    check_role(type(epilogue).__name__, "consumer", hint="store the accumulator in the consumer branch that computed "
                                                         "it (`else:` of `if roles.is_producer():`)")


@frontend.host
def _warpgroups(block: str, warpgroup, warpgroups) -> int:
    """How many warpgroups an epilogue piece of one part a warpgroup (shared memory, a named barrier) is made for,
    `warpgroup` checked to index them: by default the kernel's consumer warpgroups (its WarpRoles; else 1). A
    run-time index (each consumer its own part) needs a part for every consumer of the kernel: with fewer, the last
    ones would use shared memory past the parts and wait at no barrier."""
    consumers = kernel_consumers()
    if warpgroups is None:
        warpgroups = consumers or 1
    if not isinstance(warpgroups, numbers.Integral) or isinstance(warpgroups, bool) or warpgroups < 1:
        raise frontend.current().error(f"{block}'s warpgroups is a compile-time count of 1 or more, found "
                                       f"{warpgroups!r}")
    if isinstance(warpgroup, numbers.Integral):
        if not 0 <= warpgroup < warpgroups:
            raise frontend.current().error(f"{block} is made for {warpgroups} warpgroup(s), 0 to {warpgroups - 1}; "
                                           f"warpgroup {warpgroup} is none of them",
                                           hint=f"give warpgroups= {warpgroup + 1} or more")
    elif consumers is not None and warpgroups < consumers:
        raise frontend.current().error(
            f"{block} is made for {warpgroups} warpgroup(s) and given a run-time warpgroup index, in a kernel of "
            f"{consumers} consumer warpgroups (WarpRoles({consumers})): the warpgroups past {warpgroups - 1} would "
            f"use shared memory past the epilogue's and wait at no barrier of their own",
            hint=f"make it for the kernel's consumers: {block}(..., warpgroup, {consumers}), or leave warpgroups out")
    return warpgroups


class _WarpgroupBarrier:
    """A warpgroup's own barrier, for the epilogue pieces that need `warpgroup`, `warpgroups` and `threads`."""

    @frontend.host
    def check_own_part(self, block: str):
        """A compile-time warpgroup index is one warpgroup's part: refused where every consumer warpgroup of a kernel
        of several runs the code (they would all use that part, and its barrier's count would be met by any of
        them)."""
        consumers = kernel_consumers()
        if (isinstance(self.warpgroup, numbers.Integral) and consumers is not None and consumers > 1
                and current_role() == "consumer" and every_warpgroup_of_role()):
            raise frontend.current().error(
                f"{block} of warpgroup {self.warpgroup} is used by every consumer warpgroup of the kernel's "
                f"{consumers}: they would all stage in (and synchronize on) warpgroup {self.warpgroup}'s part",
                hint=f"give each consumer its own part, {block}(..., roles.consumer_index(), {consumers}), or use it "
                     f"under `if roles.consumer_index() == {self.warpgroup}:`")

    def barrier(self):
        """The warpgroup's threads wait for each other (named barrier 1 + its index), so the warpgroups do
        not wait on each other's epilogues."""
        claim_named_barriers(1, self.warpgroups, self.threads, type(self).__name__,
                             "leave named barriers 1 to the consumers' count to the epilogues: give the other "
                             "block's barriers ids past them (WarpgroupTurns(..., first_id=8), the default)")
        for w in skc.static_range(self.warpgroups):
            if self.warpgroup == w:
                skc.barrier_named(1 + w, self.threads)


class TmaStoreEpilogue(_WarpgroupBarrier):
    """Stores a warpgroup's accumulator (`rows` x n, wgmma's 64 by default) in chunks of rows x `columns`
    (one 128-byte swizzled TMA box each, or a narrower box of `columns`), double-buffered in shared memory it allocates for all
    `warpgroups` (2 x rows x columns elements each, 1024-byte aligned), so a chunk is written while the
    previous one is being stored (`buffers=1`: one buffer, half the shared memory, each chunk written once the
    store before it has read the buffer). Warpgroup `warpgroup` (of `warpgroups`) synchronizes on named barrier
    1 + warpgroup. A `with` waits on exit for the last stores (before the block may exit)."""

    BUFFERS = 2
    BOX_BYTES = 128  # a row of a chunk: the width of the 128-byte swizzle

    @classmethod
    def staging_elements(cls, elem_bytes: int, rows: int = Wgmma.rows_per_warpgroup, buffers: int = BUFFERS) -> int:
        """The shared-memory elements one warpgroup's epilogue stages its chunks in (for shared-memory plans)."""
        return buffers * rows * (cls.BOX_BYTES // elem_bytes)

    def __init__(self, out_map, dtype, args: EpilogueArgs, warpgroup=0, warpgroups: int = None,
                 rows: int = Wgmma.rows_per_warpgroup, allocate: bool = True, columns: int = 0,
                 buffers: int = BUFFERS, transposed: bool = False):
        warpgroups = _warpgroups(type(self).__name__, warpgroup, warpgroups)
        check_dtype(type(self).__name__, "dtype", dtype)
        check_tensor_map(type(self).__name__, "out_map", out_map, hint="pass the output's skc.TensorMap parameter; "
                         "an output given as a pointer is stored by DirectStoreEpilogue(out, dtype, args)")
        for name, value, lowest in (("rows", rows, 1), ("columns", columns, 0), ("buffers", buffers, 1)):
            check_count(type(self).__name__, name, value, lowest)   # (a run-time one failed as "Python needs a bool")
        # a chunk is one swizzled 128-byte row of columns, or (`columns`: a narrower box, for tiles narrower than
        # that or no multiple of it) part of one: each row still takes a whole 128-byte span in shared memory
        self.columns = columns or self.BOX_BYTES // dtype.itemsize
        if self.columns * dtype.itemsize > self.BOX_BYTES or self.columns * dtype.itemsize % 16:
            raise frontend.current().error(f"the epilogue stores chunks of whole 16-byte pieces of a 128-byte row: "
                                           f"{self.columns} columns of {dtype} are not")
        if buffers not in (1, 2):
            raise frontend.current().error(f"the epilogue stages its chunks in 1 or 2 buffers, not {buffers}")
        # transposed: the output is the accumulator's transpose (args and out_map are the output's): a chunk is
        # staged as `columns` rows of the warpgroup's `rows` outputs, which must fill one 128-byte row
        if transposed and rows * dtype.itemsize != self.BOX_BYTES:
            raise frontend.current().error(f"a transposed epilogue stages a chunk's columns as 128-byte rows of "
                                           f"{rows} outputs: {rows} outputs of {dtype} are not")
        self._check_map(getattr(out_map, "type", None), dtype, rows, transposed)
        self.out_map, self.dtype, self.rows, self.buffers = out_map, dtype, rows, buffers
        self.warpgroup, self.warpgroups, self.transposed = warpgroup, warpgroups, transposed
        self.fused = fused_part(args, type(self).__name__) if args is not None else None   # None: values as they are
        if self.fused is not None and transposed:
            self.fused = self.fused.transposed()
        per_warpgroup = self.staging_elements(dtype.itemsize, rows, buffers)
        # without `allocate`, the caller stages in memory it owns (a subclass says where, to `store`)
        self.staging = (skc.shared((warpgroups * per_warpgroup,), dtype, align=1024) + warpgroup * per_warpgroup
                        if allocate else None)
        self.threads = skc.current_target().warpgroup_size
        self.leader = skc.thread_index() % self.threads == 0
        if self.leader:   # the descriptor, fetched while the mainloop runs rather than at the first store
            skc.hopper.tma_prefetch(out_map)

    def _check_map(self, map_type, dtype, rows: int, transposed: bool):
        """The output's tensor map copies what this epilogue stages: its elements' size, and their type where both
        are floats (TMA moves bytes, but f16 bits in a bf16 output are other numbers; an integer map of the width
        passes), a box of one chunk (outer dimensions 1) and the 128-byte swizzle `staged` lays out."""
        elem, box = getattr(map_type, "elem", None), getattr(map_type, "box", ())
        stored = frontend.as_ir_type(dtype) if elem is not None else None
        if elem is not None and (elem.bits // 8 != dtype.itemsize or (elem.is_float and stored.is_float and
                                                                      elem != stored)):
            # (two float types of one size are other numbers: f16 bits stored into a bf16 output read as garbage)
            raise frontend.current().error(f"the output's tensor map holds {elem}; this epilogue stores {dtype}",
                                           hint="make the output map of the type the epilogue stores")
        if not box:   # (a map whose box the kernel is not told)
            return
        chunk = (self.columns, rows) if transposed else (rows, self.columns)
        if tuple(box[-2:]) != chunk or any(extent != 1 for extent in box[:-2]) or map_type.swizzle != 128:
            wanted = (1,) * (len(box) - 2) + chunk
            raise frontend.current().error(
                f"the output's tensor map copies boxes of {'x'.join(map(str, box))} with a {map_type.swizzle}-byte "
                f"swizzle; this epilogue stores chunks of {'x'.join(map(str, wanted))} staged in the 128-byte "
                f"swizzle", hint=f"make the output map's box {wanted} and its swizzle 128 (or give the epilogue "
                f"rows= and columns= of the map's box)")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.flush()

    def __call__(self, acc, row0, col0, batch=None):
        """Store acc where it lies in the output tile whose corner is (row0, col0) (of matrix `batch` of a batched
        output: a 3-D tensor map)."""
        if self.staging is None:
            raise frontend.current().error("this TmaStoreEpilogue was made with allocate=False: it has no staging "
                                           "buffer of its own", hint="allocate=True, or a subclass that says where it "
                                           "stages (as attention's HeadTileEpilogue does)")
        _check_consumer_role(self)
        check_stored(type(self).__name__, acc, row0, col0, batch, says=("shape", "corner", "wait"))
        self.check_own_part(type(self).__name__)
        rows, n = acc.shape
        if rows != self.rows or n % self.columns:
            raise frontend.current().error(f"the epilogue stores {self.rows} rows of {self.columns} columns of "
                                           f"{self.dtype} at a time; the accumulator is {rows} x {n}")
        # the scales the fused part reads, loaded while the last MMAs run (their addresses need no result)
        scales = self.load_scales(acc, _plus(row0, acc.corner[0]), _plus(col0, acc.corner[1]))
        acc.wait()
        row0, col0 = _plus(row0, acc.corner[0]), _plus(col0, acc.corner[1])
        # a buffer holds `rows` whole 128-byte rows, however few columns a chunk has
        self.store(acc, row0, col0, () if batch is None else (batch,), self.staging,
                   self.rows * (self.BOX_BYTES // self.dtype.itemsize), batch, scales)

    def load_scales(self, acc, row0, col0):
        """The scales the fused part of acc's values reads (FusedEpilogue.scales: a pair a value, listed by chunk,
        run and place in the run as `store` walks them), for acc's tile at (row0, col0): a thread's loads of the
        whole tile issued together, before the first chunk. Loaded chunk by chunk, each chunk's loads would wait
        behind the barrier of the chunk before (which orders memory): a round trip to global memory a chunk, with
        the tensor cores idle. None where the fused part reads no scales."""
        loaded = None
        if self.fused is not None and self.fused.scaled:
            loaded = [self._chunk_scales(acc, first, row0, col0)
                      for first in range(0, acc.shape[1] // self.columns * self.columns, self.columns)]
        return loaded

    def _chunk_scales(self, acc, first, row0, col0):
        """load_scales' of the chunk of columns from `first`."""
        # (runs for their places: the values they name are not read)
        if self.transposed:   # (the output's rows are the accumulator's columns)
            found = [[self.fused.scales(_plus(col0 + column, j), row0 + row) for j in range(len(values))]
                     for values, row, column in acc.runs(first, self.columns)]
        else:
            found = [[self.fused.scales(row0 + row, _plus(col0 + column, j)) for j in range(len(values))]
                     for values, row, column in acc.runs(first, self.columns)]
        return found

    def store(self, acc, row0, col0, outer: tuple, staging, stride, batch=None, scales=None):
        """The chunks of acc (its MMAs complete) to the output at (row0, col0) of the matrix at coordinates `outer`
        of the tensor map's outer dimensions, through the staging buffers at `staging` (the second, if two, `stride`
        elements after it); the fused part reads the C of matrix `batch`, and its scales from `scales`
        (`load_scales`'; by default loaded here, before the first chunk)."""
        chunks = acc.shape[1] // self.columns   # (the documented accumulator members only: a user's may have no n)
        if scales is None:
            scales = self.load_scales(acc, row0, col0)
        for chunk in skc.static_range(chunks):
            first = chunk * self.columns
            buffer = staging + (chunk % self.buffers) * stride
            # the store that last read this buffer is done with it: the one before last (two buffers), except at
            # the first chunk of a tile of an odd number of chunks, whose buffer the previous tile's last store read
            self.sync(0 if chunk == 0 and chunks % self.buffers else self.buffers - 1)
            chunk_scales = None if scales is None else scales[chunk]
            if self.transposed:
                self.stage_transposed(acc, first, buffer, row0, col0, batch, chunk_scales)
            else:
                for run, (values, row, column) in enumerate(acc.runs(first, self.columns)):
                    results = values if self.fused is None else \
                        [self.fused(value, row0 + row, _plus(col0 + column, j), batch,
                                    None if chunk_scales is None else chunk_scales[run][j])
                         for j, value in enumerate(values)]
                    where = self.staged(buffer, row, column - first)
                    skc.store(where, skc.vector(*[self.dtype(r) for r in results]) if len(results) > 1 else
                              self.dtype(results[0]))
            skc.hopper.fence_proxy_async()  # the TMA (async proxy) reads what these stores wrote
            self.barrier()
            if self.leader:
                if self.transposed:   # (the output's rows are the accumulator's columns)
                    skc.hopper.tma_store(self.out_map, buffer, (*outer, col0 + first, row0))
                else:
                    skc.hopper.tma_store(self.out_map, buffer, (*outer, row0, col0 + first))
                skc.hopper.tma_commit()

    def stage_transposed(self, acc, first, buffer, row0, col0, batch=None, scales=None):
        """The chunk of acc's columns from `first` into the buffer as rows (the output's rows are the accumulator's
        columns), one value a staged row, after the fused part at the output's own places (`scales`: the chunk's
        of `load_scales`, if loaded)."""
        for run, (values, row, column) in enumerate(acc.runs(first, self.columns)):
            for j, value in enumerate(values):
                result = value if self.fused is None else self.fused(value, _plus(col0 + column, j), row0 + row, batch,
                                                                     None if scales is None else scales[run][j])
                skc.store(self.staged(buffer, column - first + j, row), self.dtype(result))

    def staged(self, buffer, row, column):
        """Where (row, column) of a chunk sits in a 128-byte-swizzled buffer (the TMA box's layout):
        16-byte piece index XOR row % 8, so the 8 rows a warp writes at once hit different banks."""
        size = self.dtype.itemsize
        piece = (column * size) // 16
        offset = row * 128 + ((piece ^ (row % 8)) * 16) + (column * size) % 16
        return buffer + offset // size

    def sync(self, pending: int):
        if self.leader:
            skc.hopper.tma_wait(pending, read=True)
        self.barrier()

    def flush(self):
        """Wait for the last stores to finish (before the block exits)."""
        if self.leader:
            skc.hopper.tma_wait(0)


class DirectStoreEpilogue:
    """Stores a wave's accumulator values (any TileOp's accumulator: it lists its `values()` as (value, row,
    column) in its tile, which lies at `corner` in the block's tile) to the row-major M x N output at `out` (of a
    batched output, B x M x N, to matrix `batch`), converted to `dtype` after the fused part; values outside the
    output are not stored."""

    def __init__(self, out, dtype, args: EpilogueArgs):
        self.fused = fused_part(args, type(self).__name__)
        check_pointer(type(self).__name__, "out", out, "the output")
        check_dtype(type(self).__name__, "dtype", dtype)
        self.out, self.dtype, self.M, self.N = out, dtype, self.fused.args.M, self.fused.args.N

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass  # plain stores: nothing in flight to wait for

    def __call__(self, acc, row0, col0, batch=None):
        """Store acc where it lies in the output tile whose corner is (row0, col0) (of matrix `batch` of a batched
        output)."""
        _check_consumer_role(self)
        if _host_array(self.out):   # (it failed inside, "cannot combine a run-time i64 with a DeviceArray")
            raise frontend.current().error(
                f"this DirectStoreEpilogue was made on the host, with the host's {type(self.out).__name__} for out: a "
                "kernel stores through its own pointer parameter", hint="make the epilogue inside the kernel from the "
                "kernel's skc.Ptr[...] parameter")
        check_stored(type(self).__name__, acc, row0, col0, batch)
        acc.wait()
        row0, col0 = _plus(row0, acc.corner[0]), _plus(col0, acc.corner[1])
        out = self.out if batch is None else self.out + skc.i64(batch) * self.M * self.N
        for value, row, column in acc.values():
            row, column = row0 + row, col0 + column
            inside = (row < self.M) & (column < self.N)
            result = self.dtype(self.fused(value, row, column, batch))
            skc.store(out + (skc.i64(row) * self.N + column), result, mask=inside)


IN_FLIGHT = 64   # floats a thread of a split-K tile's last share has loads in flight for (a group of values' shares)


class _StripRecords(_WarpgroupBarrier):
    """What split-K's epilogue and stream-K's fix-up share: a warpgroup's 64-row strips of output tiles, each with a
    counter in `counters` (i32, zero between launches) and fp32 records in `workspace` that hold the warpgroup's
    fragments in their own order (every thread four values at a time, the warpgroup's threads side by side: whole
    512-byte runs); the count the warpgroup's leader saw (`arrived`, in shared memory, for every thread)."""

    def __init__(self, workspace, counters, warpgroup, warpgroups: int):
        warpgroups = _warpgroups(type(self).__name__, warpgroup, warpgroups)
        check_pointer(type(self).__name__, "workspace", workspace, "fp32 records")
        check_pointer(type(self).__name__, "counters", counters, "i32 counters")
        self.workspace, self.counters = workspace, counters
        self.warpgroup, self.warpgroups = warpgroup, warpgroups
        self.threads = skc.current_target().warpgroup_size
        self.thread = skc.thread_index() % self.threads
        self.leader = self.thread == 0
        self.arrived = skc.shared((warpgroups,), skc.i32) + warpgroup  # the count the leader saw, for all

    def quad(self, record, floats: int, j: int):
        """Where this thread's values 4j .. 4j + 3 lie in record `record` (of `floats` floats)."""
        return self.workspace + (record * floats + (j * self.threads + self.thread) * 4)

    def read(self, record, floats: int, count: int):
        """This thread's `count` values of record `record` (of `floats` floats), as one vector."""
        quads = [skc.load(self.quad(record, floats, j), width=4) for j in range(count // 4)]
        return skc.vector(*[quad[i] for quad in quads for i in range(4)])

    def write(self, record, values: list):
        """This thread's accumulator values ((value, row, column) as acc.values() gives them) into record `record`."""
        floats = len(values) * self.threads
        for j in skc.static_range(len(values) // 4):
            quad = [value for value, row, column in values[4 * j:4 * j + 4]]
            skc.store(self.quad(record, floats, j), skc.vector(quad))

    def count_in(self, record, values: list, strip):
        """Writes this warpgroup's values into record `record`, then its leader counts the warpgroup in strip
        `strip`'s counter behind a GPU-scope fence (the records written before the count): the count before this
        one, for every thread."""
        self.write(record, values)
        self.barrier()
        counter = self.counters + strip
        if self.leader:
            skc.hopper.fence_acq_rel_gpu()  # the warpgroup's stores (ordered by the barrier) before the count
            skc.store(self.arrived, skc.atomic_add(counter, 1))
        self.barrier()
        return skc.load(self.arrived)


class SplitKEpilogue(_StripRecords):
    """Completes output tiles computed in `splits` shares of K (SplitKScheduler's work units) in the same launch.
    Each warpgroup's strip of a tile (64 rows by tile_n: the accumulator's width, which `tile_n`, given, must be) has
    a record in `workspace` per share: share s stores its
    fp32 accumulator there in the fragment's own order (every thread four values at a time, the warpgroup's 128
    threads side by side: whole 512-byte runs, no atomics), then one thread of the warpgroup counts the share in
    `counters` (one i32 per strip, zero between launches) behind a GPU-scope fence. The share that counts last
    reads every share's record of the strip behind an acquiring fence, each thread the values it holds itself,
    adds them in share order (so results are the same bits in every run, whichever share comes last), applies the
    fused epilogue to the sum — so alpha, beta·C, bias and activations are exact, applied once to the whole sum —
    converts and stores it to the row-major output at `out` (masked at the edges), and resets its counter. The
    workspace (split_buffers: strips x splits x 64 x tile_n fp32) needs no zeroing: a launch reads only what it
    wrote.

    Same interface as TmaStoreEpilogue, with the work unit's share: `epilogue(acc, row0, col0, share)` for a
    warpgroup's accumulator of the tile at (row0, col0); a `with` has nothing to wait for."""

    def __init__(self, out, workspace, counters, dtype, args: EpilogueArgs, splits, warpgroup=0,
                 warpgroups: int = None, tile_n: int = None):
        self.out, self.dtype = out, dtype
        self.fused = fused_part(args, type(self).__name__)
        check_pointer(type(self).__name__, "out", out, "the output")
        self.M, self.N, self.splits, self.tile_n = self.fused.args.M, self.fused.args.N, splits, tile_n
        super().__init__(workspace, counters, warpgroup, warpgroups)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass  # plain stores and atomics: nothing in flight

    def __call__(self, acc, row0, col0, share):
        self.check_own_part(type(self).__name__)
        handed = split_count(share)
        if handed is not None and handed[0] != self.splits:   # (it waited for shares that never came, or left some)
            raise frontend.current().error(
                f"this SplitKEpilogue sums {self.splits} shares of a tile, and the share comes from {handed[1]}: "
                f"{handed[0]} shares (its output would never be complete, or complete before every share is in)",
                hint=f"make both of the same splits: SplitKEpilogue(..., splits={handed[0]})")
        rows, tile_n = acc.shape   # (the warpgroups share a tile's rows: each holds its whole width)
        if self.tile_n not in (None, tile_n):
            raise frontend.current().error(
                f"this SplitKEpilogue was made for tiles {self.tile_n} wide (tile_n); the accumulator is {tile_n} "
                f"wide: tiles would share strips (counters and records)", hint="give tile_n= the tiles' width, or "
                "leave it out (the accumulator's)")
        acc.wait()
        row0, col0 = _plus(row0, acc.corner[0]), _plus(col0, acc.corner[1])
        values = acc.values()
        # the strip's counter and records: one per strip of `rows` rows and tile_n columns (a warpgroup's)
        strip = (row0 // rows) * skc.cdiv(self.N, tile_n) + col0 // tile_n
        record = len(values) * self.threads   # floats of one share's record of a strip

        def quad(which, j):   # where this thread's values 4j .. 4j + 3 lie in share `which`'s record
            return self.quad(skc.i64(strip) * self.splits + which, record, j)

        arrived = self.count_in(skc.i64(strip) * self.splits + share, values, strip)
        counter = self.counters + strip
        if arrived == self.splits - 1:  # the last share: every other share's record is written
            skc.hopper.fence_acq_rel_gpu()
            # a group of values at a time (their shares' loads in flight together; the next group's loads wait
            # for the round trip of this group's stores, which they might alias): a bigger group, fewer trips,
            # more registers
            group = max(4, IN_FLIGHT // self.splits // 4 * 4)
            for first in skc.static_range(0, len(values), group):
                quads = range(first // 4, min(first + group, len(values)) // 4)
                totals = [skc.load(quad(0, j), width=4) for j in quads]
                for other in skc.static_range(1, self.splits):   # in share order, whichever share adds them up
                    totals = [total + skc.load(quad(other, j), width=4) for total, j in zip(totals, quads)]
                for j, total in zip(quads, totals):
                    for i in skc.static_range(4):
                        value, row, column = values[4 * j + i]
                        row, column = row0 + row, col0 + column
                        inside = (row < self.M) & (column < self.N)
                        skc.store(self.out + (skc.i64(row) * self.N + column),
                                  self.dtype(self.fused(total[i], row, column)), mask=inside)
            if self.leader:
                skc.store(counter, 0)


def _strips(tile_m, warpgroups: int) -> int:
    """The 64-row strips of a tile of `tile_m` rows (None: a strip a warpgroup), at least one a warpgroup (fewer would
    give two warpgroups' strips, or two slots', one record and counter)."""
    strips = warpgroups if tile_m is None else tile_m // Wgmma.rows_per_warpgroup
    if strips < warpgroups or (tile_m is not None and tile_m % Wgmma.rows_per_warpgroup):
        raise frontend.current().error(
            f"a tile of {tile_m} rows holds {strips} strip(s) of {Wgmma.rows_per_warpgroup} rows; its {warpgroups} "
            f"warpgroups need one each at least", hint="give tile_m= the tiles' rows (a multiple of 64), or leave it "
            "out (64 a warpgroup)")
    return strips


class StreamKFixup(_StripRecords):
    """Completes the output tiles StreamKScheduler splits between two blocks, before the tile's epilogue.
    `fixup(acc, unit)` for a warpgroup's accumulator of a work unit (its MMAs may still run) gives whether the unit
    now holds the whole tile (store it): a whole tile's unit does. Of a split tile's two units, the first to get
    here counts itself in its strip's counter (`counters`: i32, one per 64-row strip of each slot, zero between
    launches), writes its sum into the strip's record in `workspace` (64 x tile_n fp32 a strip, any contents) and
    counts again behind a GPU-scope fence: it stores nothing. The second counts itself, finding the first counted,
    waits for the count of 3 (the first is past its first count, writing: the wait is short and never on a block
    that has not run), resets the counter and adds the record to its registers; the tile's own epilogue (TMA
    stores, the fused part applied once to the whole sum) then stores it."""

    def __init__(self, workspace, counters, warpgroup=0, warpgroups: int = None, tile_m: int = None):
        warpgroups = _warpgroups(type(self).__name__, warpgroup, warpgroups)   # (before its strips)
        self.strips = _strips(tile_m, warpgroups)   # a tile's 64-row strips
        super().__init__(workspace, counters, warpgroup, warpgroups)

    def __call__(self, acc, unit):
        self.check_own_part(type(self).__name__)
        store = ~unit.partial
        if unit.partial:
            acc.wait()
            strip = unit.slot * self.strips + acc.corner[0] // acc.shape[0]
            counter = self.counters + strip
            values = acc.values()
            record = len(values) * self.threads
            if self.leader:
                skc.store(self.arrived, skc.atomic_add(counter, 1))
            self.barrier()
            first = skc.load(self.arrived) == 0
            if first:
                self.write(skc.i64(strip), values)
                self.barrier()
                if self.leader:
                    skc.hopper.fence_acq_rel_gpu()   # the warpgroup's stores (ordered by the barrier) before the count
                    skc.atomic_add(counter, 1)
            else:
                # the first's two counts and this one: its record is written. Warp 0 waits, every lane reading the
                # count and the warp leaving together once one saw it: a loop of the leader alone leaves its warp
                # diverged at the named barrier below, which counts the warp in before the leader has arrived
                if self.thread < skc.warp_size():
                    while skc.vote_all(skc.atomic_add(counter, 0) != 3):
                        pass
                    skc.hopper.fence_acq_rel_gpu()   # by every lane: the one whose read saw the count among them
                if self.leader:
                    skc.store(counter, 0)   # for the next launch
                self.barrier()
                fragment = acc.fragment
                added = []
                for j in skc.static_range(len(values) // 4):
                    other = skc.load(self.quad(skc.i64(strip), record, j), width=4)
                    added += [fragment[4 * j + i] + other[i] for i in range(4)]
                acc.fragment = skc.vector(*added)
            store = ~first
        return store


class SplitTailFixup(_StripRecords):
    """Completes the tiles SplitTailScheduler splits along K, before the tile's epilogue (StreamKFixup's interface:
    `fixup(acc, unit)` gives whether the unit now holds the whole tile). Each share of a split tile writes its sum
    into its record of the strip (`workspace`, stream_k_buffers': records of 64 x tile_n fp32, any contents) and
    counts itself in the strip's counter (`counters`, zero between launches) behind a GPU-scope fence; the share that
    counts last adds every share's record in share order (the same bits whichever share is last), resets the
    counter and keeps the sum in its registers for the epilogue. No share waits for another."""

    def __init__(self, workspace, counters, tiles, warpgroup=0, warpgroups: int = None, tile_m: int = None):
        self.tiles = tiles   # the SplitTailScheduler (its run-time count of shares)
        warpgroups = _warpgroups(type(self).__name__, warpgroup, warpgroups)   # (before its strips)
        self.strips = _strips(tile_m, warpgroups)
        super().__init__(workspace, counters, warpgroup, warpgroups)

    def __call__(self, acc, unit):
        self.check_own_part(type(self).__name__)
        store = ~unit.partial
        if unit.partial:
            acc.wait()
            splits = self.tiles.splits
            strip = unit.slot * self.strips + acc.corner[0] // acc.shape[0]
            values = acc.values()
            record = len(values) * self.threads
            last = self.count_in(skc.i64(strip) * splits + unit.share, values, strip) == splits - 1
            counter = self.counters + strip
            if last:   # every other share's record is written
                skc.hopper.fence_acq_rel_gpu()
                first = skc.i64(strip) * splits
                total = self.read(first, record, len(values))
                for share in range(1, splits):   # (a run-time count of shares, added in share order)
                    total = total + self.read(first + share, record, len(values))
                acc.fragment = total
                if self.leader:
                    skc.store(counter, 0)   # for the next launch
            store = last
        return store
