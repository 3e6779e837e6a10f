"""The FP8 GEMMs' host side, in torch._scaled_mm's terms: `scaled_matmul(a, b, scale_a, scale_b, out_dtype=...)`
(reached as `skc.blocks.matmul(a, b, scale_a=..., scale_b=...)`). a is M x K row-major, b K x N column-major
(b.t() an N x K row-major tensor): K-major both, what fp8 wgmma reads. The scales' shapes choose the GEMM: one
f32 each (per tensor), A's M x 1 and B's 1 x N (row-wise: the per-tensor GEMM, its fused epilogue scaling each row
and column), or A's M x (K / 128) and B's (K / 128) x (N / 128) (block-wise, DeepSeek-V3 style). A call
is one dict lookup once its facts were seen: the plan holds the checked geometry and the kernel's launcher, and on a
GPU a bound launch per set of operand addresses (as host_plans.GemmPlan), unless the call copies block scales."""
from __future__ import annotations

import threading
from collections.abc import Hashable
from contextlib import nullcontext
from dataclasses import replace

import numpy as np

import skc

from .epilogue import EpilogueSpec
from .fp8 import SB_BOX, SCALE_BLOCK, Fp8MatmulConfig, fp8_matmul_kernel, fp8_matmul_split_kernel, \
    fp8_matmul_stream_k_kernel
from .host_plans import (TORCH_TYPES, Bindings, MapsByAddress, StreamBuffers, address_functions, aligned_copy,
                         capturing, check_activation, check_epilogue_operands, check_has_data, check_no_overlap,
                         check_own_memory, check_stream_given, check_writeable, differentiated, element_strides,
                         facts_failed, keeping_stream, kept_zeros, misaligned, on_stream, released, remember,
                         require_arrays, row_major, split_buffers, stream_k_buffers, torch_type, unread_stand_in,
                         unsplit_unless_row_major, viewable, without_grad, write_into, zeros_like)
from .host_plans import facts as _facts
from .host_plans import storage as _storage
from .scheduler import TileScheduler

_PLANS: dict = {}
# dtype names (torch's and ml_dtypes', and skc arrays' own) -> the IR's
_FP8 = {"float8_e4m3fn": "f8e4m3", "float8_e5m2": "f8e5m2", "f8e4m3": "f8e4m3", "f8e5m2": "f8e5m2"}
_SCALE = ("float32", "f32")
_OUT = {"bfloat16": "bf16", "float16": "f16", "float32": "f32", "bf16": "bf16", "f16": "f16", "f32": "f32"}
_BYTES = {"bf16": 2, "f16": 2, "f32": 4}   # an out element's


def _name(dtype) -> str:
    """'float8_e4m3fn', 'bfloat16', ... for torch dtypes, numpy dtypes and types, and names."""
    if isinstance(dtype, type):
        dtype = np.dtype(dtype).name
    return str(dtype).split(".")[-1]


def scaled_matmul(a, b, scale_a, scale_b, out=None, *, out_dtype=None, bias=None, activation=None, config=None,
                  stream=None, use_fast_accum=None):
    """out = activation(scale_a · scale_b · (a @ b) + bias) for fp8 (e4m3 / e5m2) a (M x K, row-major) and b
    (K x N, column-major: the transpose of an N x K row-major tensor), accumulated in f32 and written as
    `out_dtype` (bf16 by default, f16 or f32). scale_a and scale_b are f32: one value each; A's M x 1 and B's
    1 x N (row-wise: out[m, n] = scale_a[m] · scale_b[n] · (a @ b)[m, n], the scales contiguous as torch's); or
    A's M x (K / 128) (any strides; K-block-major ones, strides (1, M), are read in place) and B's
    (K / 128) x ceil(N / 128). Each 128-deep k-block's product is added into f32 registers, as torch._scaled_mm
    does by default; `use_fast_accum=True` (per-tensor or row-wise scales) runs the whole K through fp8 wgmma's
    accumulator instead, which keeps fewer bits (torch's use_fast_accum). None: the config's `fast_accum`, else False."""
    _checked(config, use_fast_accum, activation)
    given = out
    if torch_type(type(a)):
        refuse_derivatives(a, b, scale_a, scale_b, bias, out)
    else:
        a, b, scale_a, scale_b, out, bias = viewable("scaled matmul", a=a, b=b, scale_a=scale_a, scale_b=scale_b,
                                                     out=out, bias=bias)
    key = _key(a, b, scale_a, scale_b, out, out_dtype, bias, activation, config, use_fast_accum)
    plan = _PLANS.get(key)
    if plan is None:
        plan = remember(_PLANS, key, _new_plan(a, b, scale_a, scale_b, out, out_dtype, bias, activation, config,
                                               use_fast_accum), limit=256)
    try:
        result = plan(a, b, scale_a, scale_b, out, bias, stream)
    except RuntimeError as error:   # (a torch.func transform's tensor, of a plan's facts, has no data pointer)
        facts_failed("scaled matmul", error, a=a, b=b, scale_a=scale_a, scale_b=scale_b, out=out, bias=bias)
    return result if out is given else given   # (the caller's out, not the view of it that viewable made)


def refuse_derivatives(a, b, scale_a, scale_b, bias, out):
    """A call autograd follows (host_plans.differentiated) is refused by name: the fp8 GEMM has no derivative (nor has
    torch._scaled_mm, whose backward raises), and its result came out with none, a silently lost gradient (eagerly,
    and in torch.ops.skc.scaled_matmul's autograd kernel)."""
    operands = dict(a=a, b=b, scale_a=scale_a, scale_b=scale_b, bias=bias, out=out)
    if differentiated(*operands.values()):
        names = [name for name, x in operands.items() if x is not None and differentiated(x)]
        raise skc.LaunchError(f"scaled matmul has no derivative (nor has torch._scaled_mm), and autograd follows "
                              f"{', '.join(names)}: call it under torch.no_grad(), or pass "
                              f"{', '.join(name + '.detach()' for name in names)}")


def _checked(config, use_fast_accum, activation):
    """The call's choices that its plan's key holds, checked at every call (a key cannot tell a refused value from
    an accepted one equal to it, np.str_("relu") from "relu"): the common values pass in a test or two."""
    if config is not None and not isinstance(config, Fp8MatmulConfig):
        raise skc.LaunchError(f"scaled matmul's config is an Fp8MatmulConfig, found {type(config).__name__}")
    if not (use_fast_accum is None or isinstance(use_fast_accum, Hashable) and use_fast_accum in (True, False)):
        raise skc.LaunchError(f"scaled matmul's use_fast_accum is True, False or None, found {use_fast_accum!r}")
    check_activation("scaled matmul", activation)


def _key(a, b, scale_a, scale_b, out, out_dtype, bias, activation, config, use_fast_accum) -> tuple:
    """What a plan assumed of a call: for torch tensors (the common call) their facts read in place into one
    tuple, led by their type; for other arrays facts() of each."""
    try:
        return _facts_key(a, b, scale_a, scale_b, out, out_dtype, bias, activation, config, use_fast_accum)
    except (RuntimeError, NotImplementedError) as error:   # (torch: a sparse CSR tensor has no strides)
        facts_failed("scaled matmul", error, a=a, b=b, scale_a=scale_a, scale_b=scale_b, out=out, bias=bias)


def _facts_key(a, b, scale_a, scale_b, out, out_dtype, bias, activation, config, use_fast_accum) -> tuple:
    device, kind = skc.current_device(), type(a)
    if ((kind in TORCH_TYPES or torch_type(kind)) and type(b) is kind and type(scale_a) is kind
            and type(scale_b) is kind and (out is None or type(out) is kind) and (bias is None or type(bias) is kind)):
        # (and whether each is a lazily negated view: the same facts but other values, refused by the first call)
        return (kind, device, a.shape, a.stride(), a.dtype, a.device, a.is_neg(),
                b.shape, b.stride(), b.dtype, b.device, b.is_neg(),
                scale_a.shape, scale_a.stride(), scale_a.dtype, scale_a.device, scale_a.is_neg(),
                scale_b.shape, scale_b.stride(), scale_b.dtype, scale_b.device, scale_b.is_neg(),
                out if out is None else (out.shape, out.stride(), out.dtype, out.device, out.is_neg()),
                bias if bias is None else (bias.shape, bias.stride(), bias.dtype, bias.device, bias.is_neg()),
                out_dtype if out_dtype is None or type(out_dtype) is type(a.dtype) else _name(out_dtype),
                activation, config, use_fast_accum)
    require_arrays("scaled matmul", ("out", "bias"), a=a, b=b, scale_a=scale_a, scale_b=scale_b, out=out,
                   bias=bias)
    check_writeable("scaled matmul", out)
    return (device, _facts(a), _facts(b), _facts(scale_a), _facts(scale_b), None if out is None else _facts(out),
            _name(out_dtype), None if bias is None else _facts(bias), activation, config, use_fast_accum)


def fp8_type(dtype):
    """The IR's fp8 type of a dtype (torch's, ml_dtypes' or skc's) that the scaled GEMM multiplies, else None."""
    return _FP8.get(_name(dtype))


def _fp8_type(x, name: str) -> str:
    found = fp8_type(x.dtype)
    if found is None:
        raise skc.LaunchError(f"scaled matmul: {name} is {x.dtype}; it multiplies float8_e4m3fn or float8_e5m2 "
                              "operands (cast with .to(torch.float8_e4m3fn) after scaling)")
    return found


def _operands(a, b) -> tuple:
    """(M, N, K) of K-major a and b, or a LaunchError that says what to transpose."""
    if len(a.shape) != 2 or len(b.shape) != 2:
        # (torch._scaled_mm's shapes: its scales are per tensor, per row of a or per column of b of one matrix)
        raise skc.LaunchError(f"scaled matmul takes 2-D operands, as torch._scaled_mm does, found a "
                              f"{tuple(a.shape)} and b {tuple(b.shape)}: fold a batch of a into its rows (a.reshape(-1, K), scale_a "
                              "per row likewise) and reshape the result, or multiply one matrix at a time")
    (M, K), N = a.shape, b.shape[1]
    if b.shape[0] != K:
        raise skc.LaunchError(f"cannot multiply a {tuple(a.shape)} by b {tuple(b.shape)}: inner dimensions differ")
    if not (M and N):   # (no elements: _EmptyProduct, no launch; an empty dimension makes any strides look transposed)
        return M, N, K
    if K and not _storage(a, True, "a", "scaled matmul")[1]:
        raise skc.LaunchError("fp8 wgmma reads K-major operands only: a is a transposed (column-major) view; "
                              "pass a row-major M x K a (a.contiguous())")
    if K and not _storage(b, False, "b", "scaled matmul")[1]:
        raise skc.LaunchError("fp8 wgmma reads K-major operands only: b is row-major K x N; pass b as the "
                              "transpose of a row-major N x K tensor (b = b.t().contiguous().t()), as "
                              "torch._scaled_mm takes it")
    if K % 16 or N % 8:
        raise skc.LaunchError(f"the fp8 GEMM copies 16-byte rows: K must be a multiple of 16 and N of 8, found "
                              f"K={K}, N={N}")
    for name, rows, pitch in (("a", M, element_strides(a)[0]), ("b", N, element_strides(b)[1])):
        if K and rows > 1 and pitch % 16:   # (a view of longer rows, x[:, :K]: TMA's error named no operand)
            raise skc.LaunchError(f"scaled matmul: {name}'s rows of K are {pitch} elements apart in memory (a view of "
                                  "longer rows), which TMA cannot address (a multiple of 16 bytes): pass "
                                  + ("a.contiguous()" if name == "a" else "b.t().contiguous().t()"))
    return M, N, K


def _scaling(scale_a, scale_b, M, N, K) -> str:
    """Which scales these are, their shapes and type checked as torch._scaled_mm checks them: "tensor" (one value
    each), "row" (row-wise: scale_a M x 1, scale_b 1 x N) or "block" (block-wise)."""
    for name, s in (("scale_a", scale_a), ("scale_b", scale_b)):
        if _name(s.dtype) not in _SCALE:
            if getattr(s.dtype, "name", None) == "float32":   # (numpy's float32 in the other byte order, '>f4')
                raise skc.LaunchError(f"scaled matmul: {name} is {s.dtype}, float32 not in this machine's byte order; "
                                      f"pass {name}.astype(np.float32)")
            raise skc.LaunchError(f"scaled matmul: {name} is {s.dtype}; scales are float32")
    shapes = tuple(scale_a.shape), tuple(scale_b.shape)
    # (each size compared, not their product: int() of a product of torch.compile's symbolic sizes fixes them)
    if all(size == 1 for shape in shapes for size in shape):
        return "tensor"
    if shapes == ((M, 1), (1, N)):
        _check_row_wise(scale_a, scale_b, M, N)
        return "row"
    k_blocks, n_blocks = -(-K // SCALE_BLOCK), -(-N // SCALE_BLOCK)
    wanted = ((M, k_blocks), (k_blocks, n_blocks))
    if shapes != wanted:
        # (torch._scaled_mm takes no other mix: a per-tensor scale beside a row-wise one is refused there too)
        raise skc.LaunchError(
            f"scaled matmul: scale_a {shapes[0]} and scale_b {shapes[1]} are neither one value each (per-tensor), "
            f"row-wise (scale_a {(M, 1)}: one per row of a; scale_b {(1, N)}: one per column of b) nor block-wise for "
            f"M={M}, N={N}, K={K} (scale_a {wanted[0]}: one per row per 128 K-columns; scale_b {wanted[1]}: one per "
            "128 x 128 block); as torch._scaled_mm, it takes no mix of these: expand a per-tensor scale to its "
            "row-wise shape (scale.expand(M, 1).contiguous())")
    if K % SCALE_BLOCK:
        raise skc.LaunchError(f"block-wise scales cover 128 K-columns each: K must be a multiple of 128, found {K}")
    return "block"


def _check_row_wise(scale_a, scale_b, M, N):
    """Row-wise scales are read as vectors of M and N consecutive f32 (the fused epilogue's row and column scales):
    a view of every other value is refused, as torch._scaled_mm refuses scales that are not contiguous."""
    for name, scale, axis, count in (("scale_a", scale_a, 0, M), ("scale_b", scale_b, 1, N)):
        if count > 1 and element_strides(scale)[axis] != 1:
            raise skc.LaunchError(f"scaled matmul: row-wise {name} {tuple(scale.shape)} has its values "
                                  f"{element_strides(scale)[axis]} elements apart; they are read as consecutive "
                                  f"float32 (as torch._scaled_mm reads them): pass "
                                  + (f"{name}.contiguous()" if hasattr(scale, "contiguous") else
                                     f"np.ascontiguousarray({name})"))


def _new_plan(a, b, scale_a, scale_b, out, out_dtype, bias, activation, config, use_fast_accum):
    """The plan of a call, once every check of it passed: a _Plan, or an _EmptyProduct where there is nothing to
    multiply (M, N or K of 0)."""
    checked = _checked_call(a, b, scale_a, scale_b, out, out_dtype, bias, activation, use_fast_accum)
    M, N, K = checked[2]
    if not (M and N and K):
        return _EmptyProduct(a, M, N, checked[4], activation)
    return _Plan(a, b, scale_a, scale_b, out, config, use_fast_accum, checked)


def _checked_call(a, b, scale_a, scale_b, out, out_dtype, bias, activation, use_fast_accum) -> tuple:
    """What a call asks, checked: (a's and b's fp8 types, (M, N, K), whether the scales are block-wise, out's type,
    the epilogue)."""
    check_has_data("scaled matmul", a=a, b=b, scale_a=scale_a, scale_b=scale_b, out=out, bias=bias)
    return _checked_problem(a, b, scale_a, scale_b, out, out_dtype, bias, activation, use_fast_accum)


def checked_result(a, b, scale_a, scale_b, out_dtype=None, bias=None, activation=None, use_fast_accum=None) -> tuple:
    """((M, N), out's type: 'bf16', 'f16' or 'f32') of a call with no out, once every check of it that reads no
    data passed: scaled_matmul's own, with its messages (torch.ops.skc.scaled_matmul's fake implementation asks
    it, so that torch.compile refuses while tracing what the call refuses at run time)."""
    _checked(None, use_fast_accum, activation)
    checked = _checked_problem(a, b, scale_a, scale_b, None, out_dtype, bias, activation, use_fast_accum)
    return checked[2][:2], checked[4]


def _checked_problem(a, b, scale_a, scale_b, out, out_dtype, bias, activation, use_fast_accum) -> tuple:
    """_checked_call's checks of the operands' types, shapes and strides (none reads their memory)."""
    dtype, dtype_b = _fp8_type(a, "a"), _fp8_type(b, "b")
    M, N, K = _operands(a, b)
    scaling = _scaling(scale_a, scale_b, M, N, K)
    block = scaling == "block"
    for name, scale in (("scale_a", scale_a), ("scale_b", scale_b)):   # (their devices: check_has_data)
        if block and not hasattr(scale, "T"):   # (read through their transposes, or copied: scales())
            raise skc.LaunchError(f"scaled matmul: block-wise {name} is a {type(scale).__name__}, which has no "
                                  "transposed view: pass block scales as torch tensors or numpy or cupy arrays")
    if block and use_fast_accum:
        raise skc.LaunchError("scaled matmul: use_fast_accum=True runs the whole K in fp8 wgmma's accumulator, "
                              "which per-tensor and row-wise scales allow; block-wise scales multiply each k-block's "
                              "product in f32: leave use_fast_accum unset (or False)")
    written = out_dtype if out_dtype is not None else out.dtype if out is not None else "bfloat16"
    out_name = _OUT.get(_name(written))
    if out_name is None:   # (out's dtype where out_dtype is not given)
        raise skc.LaunchError(f"scaled matmul writes bfloat16, float16 or float32, not {written}: pass one of them as "
                              + ("out_dtype" if out_dtype is not None else "out's dtype"))
    if out is not None and (tuple(out.shape) != (M, N) or _OUT.get(_name(out.dtype)) != out_name):
        raise skc.LaunchError(f"out is {tuple(out.shape)} {out.dtype}; the product is {(M, N)} {out_name}")
    if out is not None and M and N and element_strides(out)[-1] != 1:   # (its rows are stored through a tensor map)
        raise skc.LaunchError(f"scaled matmul: out (strides {element_strides(out)}) must have contiguous rows: "
                              "pass a contiguous out, or none")
    check_own_memory("scaled matmul", out)
    pitch = element_strides(out)[0] * _BYTES[out_name] if out is not None and M > 1 and N else 16
    if pitch <= 0 or pitch % 16:   # (TMA's global strides are positive multiples of 16 bytes)
        # (a view of longer rows, out[:, :N] of a wider buffer, or rows in reverse: TMA's own error named no operand;
        # matmul's bf16 GEMM refuses every out that is not row-major)
        raise skc.LaunchError(f"scaled matmul: out (strides {element_strides(out)}) has rows {pitch} bytes apart, "
                              "which TMA cannot store to (a positive multiple of 16 bytes): pass a contiguous out, "
                              "or none")
    check_epilogue_operands("scaled matmul", M, N, bias=bias)
    # (per tensor: the product of the scales as alpha; row-wise: the scales as the epilogue's row and column vectors)
    rows = scaling == "row"
    spec = EpilogueSpec(alpha=scaling == "tensor", bias=bias is not None, activation=activation, row_scale=rows,
                        column_scale=rows)
    try:
        spec.check()
    except ValueError as error:
        raise skc.LaunchError(f"scaled matmul: {error}") from None
    return dtype, dtype_b, (M, N, K), block, out_name, spec


class _EmptyProduct:
    """A scaled GEMM with nothing to multiply: no elements (M or N of 0), out as given or a new empty one, with no
    launch; or K of 0, each element a sum of nothing, so the epilogue of 0, activation(bias) or zeros (torch.
    _scaled_mm gives zeros on the CPU, and left out's memory unwritten there where a bias was given), by the GEMM
    over zero operands DEPTH deep with per-tensor scales of 0 (as matmul's _EmptyProblem: torch's 0-size tensors
    have any strides, and block-wise scales of no k-block nothing to read)."""

    DEPTH = 16   # (one 16-byte row of fp8: the GEMM's least K)

    def __init__(self, a, M: int, N: int, out_name: str, activation):
        self.M, self.N, self.activation = M, N, activation
        self.empty = _empty_maker(a, (M, N), out_name)

    def __call__(self, a, b, scale_a, scale_b, out, bias, stream):
        check_stream_given(stream)
        with on_stream(a, stream):   # (filled where the GEMM reads them, and freed into that stream's memory)
            if out is None:
                out = self.empty(a)
            if not (self.M and self.N):
                return out
            zero_a = zeros_like(a, (self.M, self.DEPTH))
            zero_b = zeros_like(b, (self.N, self.DEPTH)).T   # (K x N, column-major, as b is read)
            zero = zeros_like(scale_a, (1,))
        return scaled_matmul(zero_a, zero_b, zero, zero, out, bias=bias, activation=self.activation, stream=stream)


class _Plan:
    def __init__(self, a, b, scale_a, scale_b, out, config, use_fast_accum, checked: tuple):
        dtype, dtype_b, (M, N, K), block, out_name, spec = checked
        device = skc.current_device()
        fields = {"dtype": dtype, "dtype_b": "" if dtype_b == dtype else dtype_b, "out_dtype": out_name,
                  "block_scaled": block, "epilogue": spec}
        if use_fast_accum is not None or config is None:   # (None with a config: the config's fast_accum)
            fields["fast_accum"] = bool(use_fast_accum)
        if config is not None:  # the call decides the epilogue (alpha = the per-tensor scales, bias, activation)
            wrong = sorted(k for k, v in fields.items() if k != "epilogue" and getattr(config, k) != v)
            if wrong:
                raise skc.LaunchError(f"the config disagrees with the operands on {', '.join(wrong)}: "
                                      + ", ".join(f"{k}={fields[k]!r}" for k in wrong))
            self.cfg = replace(config, epilogue=spec).covering(N if config.swap_ab else M)
        else:
            self.cfg = Fp8MatmulConfig.for_fp8_problem(M, N, K, device.target.max_shared_bytes,
                                                       device.multiprocessors, **fields)
        self.cfg = unsplit_unless_row_major(self.cfg, out)
        self.M, self.N, self.K, self.block, self.out_name = M, N, K, block, out_name
        # swap_ab: the kernel's problem is b^T a^T (N x M), its epilogue storing each tile transposed into out
        self.sizes = (N, M, K) if self.cfg.swap_ab else (M, N, K)
        self.grid = TileScheduler.grid(*self.sizes[:2], self.cfg.tile_m, self.cfg.tile_n,
                                       device.cluster_blocks(self.cfg.cluster), self.cfg.cluster_m, self.cfg.split_k,
                                       cluster_n=self.cfg.cluster_n)
        self.kernel = (fp8_matmul_split_kernel if self.cfg.split_k > 1 else
                       fp8_matmul_stream_k_kernel if self.cfg.shares_tiles else fp8_matmul_kernel)
        # split-K's and stream-K's workspace and counters, a set per launch stream
        self.buffers = (StreamBuffers(lambda a, zeros: split_buffers(a, *self.sizes[:2], self.cfg, zeros))
                        if self.cfg.split_k > 1 else
                        StreamBuffers(lambda a, zeros: stream_k_buffers(a, self.grid, self.cfg, zeros))
                        if self.cfg.shares_tiles else None)
        self.boxes, self.interpreter = self.cfg.boxes(), device.is_interpreter
        self.maps = {}  # which tensor map -> its MapsByAddress
        # on a GPU, a bound launch per set of operand addresses (as GemmPlan); block scales whose rows TMA cannot
        # address (A's M or B's N / 128 no multiple of 4, or A's scales M-major) are copied at each call into
        # padded buffers kept a launch stream (_KeptScales), so that such calls bind too
        self.bound = Bindings(self.kernel[self.grid, self.cfg.threads], self.cfg)
        self.binds = device.kind == "cuda"
        self.pads = (block and _pads(scale_a.T, 4), block and _pads(scale_b, SB_BOX))
        self.keeps = self.binds and (self.pads[0] or self.pads[1])
        self.empty = _empty_maker(a, (M, N), out_name)
        self.kept, self.lock = {}, threading.Lock()   # launch stream -> _KeptScales
        self.address = address_functions(6)   # a, b, out, scale_a, scale_b, bias

    def scales(self, scale_a, scale_b, kept=None) -> tuple:
        """The scale arguments: f32 pointers, or (tensor, box) of A's scales as (K / 128) x M (padded to a multiple
        of 4 columns) and B's as (K / 128) x (N / 128, padded to a multiple of 4), for tensor maps; `kept`'s
        buffers (filled) in place of the scales they pad."""
        if not self.block:
            return _flat(scale_a), _flat(scale_b)
        sa = kept.sa if kept is not None and kept.sa is not None else _padded(scale_a.T, 4)
        sb = kept.sb if kept is not None and kept.sb is not None else _padded(scale_b, SB_BOX)
        return (sa, self.boxes["sa"], 0), (sb, self.boxes["sb"], 0)

    def __call__(self, a, b, scale_a, scale_b, out, bias, stream):
        if out is None:
            with on_stream(a, stream):   # (the launch's stream's memory: host_plans.on_stream)
                out = self.empty(a)
        if self.keeps:
            return self.padded_scales(a, b, scale_a, scale_b, out, bias, stream)
        if self.buffers is not None and not self.interpreter:   # the launch's stream picks its buffers
            stream = skc.launch_stream(stream, a)
        # (a launch a CUDA graph captures takes buffers of its own, never bound: StreamBuffers)
        if self.binds and (self.buffers is None or not capturing(a, stream)):
            self.bound_launch(a, b, scale_a, scale_b, out, bias, stream)
            return out
        return self.checked_launch(a, b, scale_a, scale_b, out, bias, stream)

    def bound_launch(self, a, b, scale_a, scale_b, out, bias, stream, kept=None):
        """Launch through the bound launch of these operands' addresses (bound at their second sighting); `kept`:
        the launch stream's padded scale buffers, which the call filled (the key then holds the stream)."""
        address = self.address
        key = (address[0](a), address[1](b), address[2](out), address[3](scale_a), address[4](scale_b),
               None if bias is None else address[5](bias),
               None if self.buffers is None and kept is None else stream)
        bound = self.bound.get(key)
        if bound is not None:   # (its addresses were checked when they were new)
            bound(stream)
        else:
            check_no_overlap("scaled matmul", out, a=a, b=b, scale_a=scale_a, scale_b=scale_b, bias=bias)
            copies = self.misaligned(a, b, scale_a, scale_b, out, kept)
            if any(copies):   # (never bound: each such call copies)
                return self.through_aligned_copies(copies, self.bound_launch, a, b, scale_a, scale_b, out, bias,
                                                   stream, kept)
            self.bound.launch(key, self.arguments(a, b, scale_a, scale_b, out, bias, stream, kept), stream)

    def padded_scales(self, a, b, scale_a, scale_b, out, bias, stream):
        """A call whose block scales need padded rows: copied into the launch stream's kept buffers (torch's copies
        in the launch's stream, a lock keeping two threads' copies and launches apart), then a bound launch; under a
        CUDA graph's capture, or for arrays other than torch's, into new buffers at each call."""
        if self.buffers is not None:   # (the launch's stream picks split-K's or stream-K's buffers)
            stream = skc.launch_stream(stream, a)
        grads = getattr(scale_a, "requires_grad", False) or getattr(scale_b, "requires_grad", False)
        with on_stream(a, stream), without_grad(a) if grads else nullcontext():
            handle = keeping_stream(a, stream)
            if handle is None:
                return self.checked_launch(a, b, scale_a, scale_b, out, bias, stream)
            with self.lock:   # (a stream's set is made once: a bound launch reads the set it was bound with)
                kept = self.kept.get(handle)
                if kept is None:
                    kept = self.kept[handle] = _KeptScales(a, handle, self.M, self.N, self.K, self.pads)
                kept.fill(scale_a, scale_b)
                self.bound_launch(a, b, scale_a, scale_b, out, bias, handle, kept)
        return out

    def checked_launch(self, a, b, scale_a, scale_b, out, bias, stream):
        """A launch whose arguments are checked and packed at this call (the interpreter's, or one not bound)."""
        check_no_overlap("scaled matmul", out, a=a, b=b, scale_a=scale_a, scale_b=scale_b, bias=bias)
        copies = self.misaligned(a, b, scale_a, scale_b, out)
        if any(copies):
            return self.through_aligned_copies(copies, self.checked_launch, a, b, scale_a, scale_b, out, bias, stream)
        buffers = () if self.buffers is None else self.buffers(a, stream)
        try:
            args = self.arguments(a, b, scale_a, scale_b, out, bias, stream, buffers=buffers)
            if self.interpreter:
                self.kernel[self.grid, self.cfg.threads](*args, self.cfg, stream=stream)
            else:
                self.bound.ready(args)(args, stream)
        finally:
            released(buffers)   # (a captured call's own, beside arrays other than torch's: host_plans.StreamBuffers)
        return out

    def misaligned(self, a, b, scale_a, scale_b, out, kept=None) -> tuple:
        """Which of a, b, scale_a, scale_b and out to copy: those read or written through a tensor map (out unless
        split-K stores it through a pointer; block scales read in place, neither padded nor in `kept`'s buffers)
        that start off a 16-byte boundary, which no map addresses (host_plans.misaligned: the interpreter read them
        as they were, the GPU refused them unnamed)."""
        address, pads = self.address, (self.block and (self.pads[0] or kept is not None and kept.sa is not None),
                                        self.block and (self.pads[1] or kept is not None and kept.sb is not None))
        mapped = (True, True, self.block and not pads[0], self.block and not pads[1], self.cfg.split_k == 1)
        return misaligned("scaled matmul", *((name, x, address[i](x)) if needed else (name, None, None) for
                                             i, name, x, needed in zip((0, 1, 3, 4, 2),
                                                                       ("a", "b", "scale_a", "scale_b", "out"),
                                                                       (a, b, scale_a, scale_b, out), mapped)))

    @staticmethod
    def through_aligned_copies(copies, launch, a, b, scale_a, scale_b, out, bias, stream, *rest):
        """`launch` over copies in new (aligned) memory of their strides of the operands `copies` names (made in
        the launch's stream; out's copy written back into out after the launch)."""
        with on_stream(a, stream), without_grad(a):
            operands = [aligned_copy(x) if copy else x for x, copy in zip((a, b, scale_a, scale_b, out), copies)]
            launch(*operands, bias, stream, *rest)
            if copies[4]:
                write_into(out, operands[4])
        return out

    def arguments(self, a, b, scale_a, scale_b, out, bias, stream=None, kept=None, buffers=None) -> tuple:
        """The kernel's run-time arguments: the operands' tensor maps (made over the arrays in the interpreter,
        else encoded once per address), split-K's or stream-K's `buffers` (by default the plan's for `stream`), the
        sizes, bias (out when none) and the scales (`kept`'s padded buffers where given)."""
        if buffers is None:
            buffers = () if self.buffers is None else self.buffers(a, stream)
        boxes, split = self.boxes, self.cfg.split_k > 1
        scales = self.scales(scale_a, scale_b, kept)
        if bias is None:
            bias = unread_stand_in(out, not self.interpreter)
        # (split-K: the last share of a tile stores through a pointer to the row-major out; block scales never split)
        # (b^T a^T: b's N x K storage is the kernel's a, a's M x K storage its b)
        operands = [(b.T, boxes["a"], 128), (a, boxes["b"], 128)] if self.cfg.swap_ab else \
            [(a, boxes["a"], 128), (b.T, boxes["b"], 128)]
        maps = operands + ([] if split else [(out, boxes["out"], 128)])
        if self.block:
            maps += scales
        maps = [skc.TensorMap(*m) if self.interpreter else self.encoded(i, *m) for i, m in enumerate(maps)]
        if split:
            return (*maps, out, *buffers, *self.sizes, bias, *scales)
        return (*maps[:3], *buffers, *self.sizes, bias,
                *(maps[3:] if self.block else scales))

    def encoded(self, which: int, tensor, box, swizzle):
        """Tensor map `which` over `tensor`: its geometry checked once per plan, encoded once per address."""
        maps = self.maps.get(which)
        if maps is None:
            maps = self.maps[which] = MapsByAddress(lambda t: skc.TensorMap(t, box, swizzle))
        return maps(tensor)


class _KeptScales:
    """One launch stream's padded block-scale buffers for a plan (None where its scales need no padding): A's as
    (K / 128) x M rounded up to 4, B's as (K / 128) x (N / 128) rounded up to SB_BOX, zero-filled once, with views
    of the parts a call writes (torch's slicing costs host time): fill() copies the call's scales into them."""

    __slots__ = ("stream", "sa", "sb", "sa_top", "sb_top")

    def __init__(self, a, stream, M, N, K, pads):
        import torch

        k_blocks, n_blocks = K // SCALE_BLOCK, -(-N // SCALE_BLOCK)
        self.stream, self.sa, self.sb, self.sa_top, self.sb_top = stream, None, None, None, None
        with torch.inference_mode(False):   # (made under inference_mode, they could not be filled outside it)
            if pads[0]:
                self.sa = kept_zeros(a, (k_blocks, -(-M // 4) * 4), "float32")
                self.sa_top = self.sa[:, :M]
            if pads[1]:
                self.sb = kept_zeros(a, (k_blocks, -(-n_blocks // SB_BOX) * SB_BOX), "float32")
                self.sb_top = self.sb[:, :n_blocks]

    def fill(self, scale_a, scale_b):
        if self.sa_top is not None:
            self.sa_top.copy_(scale_a.T)
        if self.sb_top is not None:
            self.sb_top.copy_(scale_b)


def _flat(scale):
    """A per-tensor or row-wise scale as the vector of its values (1, M or N: consecutive, _check_row_wise)."""
    return scale.reshape(-1) if hasattr(scale, "reshape") else scale


def _pads(x, multiple: int) -> bool:
    """Whether _padded(x, multiple) copies x (a fact of its shape and strides)."""
    return x.shape[1] % multiple != 0 or not row_major(x)


def _padded(x, multiple: int):
    """x (2-D) as a row-major array whose row length is a multiple of `multiple` (TMA strides are multiples of 16
    bytes); x itself when it already is one."""
    rows, cols = x.shape
    if not _pads(x, multiple):
        return x
    width = -(-cols // multiple) * multiple
    if hasattr(x, "new_zeros"):  # torch
        padded = x.new_zeros((rows, width))
    else:
        padded = np.zeros((rows, width), x.dtype)
    padded[:, :cols] = x
    return padded


def _empty_maker(a, shape, name):
    """The function making a call's output (`shape`, of type `name`) where `a` lives: its dtype found once."""
    if hasattr(a, "new_empty"):  # torch
        import torch  # the caller's tensors are torch's: it is installed

        dtype = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}[name]
        return lambda a: a.new_empty(shape, dtype=dtype)
    if hasattr(a, "__cuda_array_interface__"):   # (another framework's GPU array, or skc's: GPU memory)
        return lambda a: skc.empty(shape, name)
    if name == "bf16":
        import ml_dtypes

        dtype = ml_dtypes.bfloat16
    else:
        dtype = {"f16": np.float16, "f32": np.float32}[name]
    return lambda a: np.empty(shape, dtype)


def scaled_call(a, b, out, scale_a, scale_b, out_dtype, bias, c, alpha, beta, activation, config, stream,
                use_fast_accum=None, autotune=None):
    """matmul()'s fp8 form: what it does not take is refused by name."""
    kind = type(a)
    if (type(scale_a) is kind and type(scale_b) is kind and c is None and alpha is None and beta is None
            and autotune is None):
        # tensors of one kind: the plan's key holds their facts (a plan is made only for what it checked)
        return scaled_matmul(a, b, scale_a, scale_b, out, out_dtype=out_dtype, bias=bias, activation=activation,
                             config=config, stream=stream, use_fast_accum=use_fast_accum)
    if scale_a is None and scale_b is None:   # (out_dtype or use_fast_accum given to a bf16 or fp16 GEMM)
        raise skc.LaunchError("matmul's out_dtype and use_fast_accum are the fp8 GEMM's, which needs scale_a and "
                              "scale_b too (float32: one value each, row-wise or block-wise); a bf16 or fp16 GEMM "
                              "takes neither (it writes its operands' type)")
    if scale_a is None or scale_b is None:
        raise skc.LaunchError("scaled matmul needs both scale_a and scale_b (float32: one value each, row-wise or "
                              "block-wise)")
    for name, scale in (("scale_a", scale_a), ("scale_b", scale_b)):
        if not hasattr(scale, "dtype") or not hasattr(scale, "shape"):
            raise skc.LaunchError(f"scaled matmul: {name} is a {type(scale).__name__}; pass a float32 tensor on the "
                                  "operands' device (torch.tensor(value, device=a.device)), as torch._scaled_mm does")
    if c is not None or alpha is not None or beta is not None:
        raise skc.LaunchError("scaled matmul's epilogue takes bias and activation; c, alpha and beta are not "
                              "supported (fold alpha into scale_a)")
    if autotune is not None and autotune is not False:   # (True was dropped: the call ran untuned)
        raise skc.LaunchError(f"scaled matmul does not autotune (autotune={autotune!r}): its tiles are chosen for the "
                              "problem; pass config=Fp8MatmulConfig(...) to choose them")
    return scaled_matmul(a, b, scale_a, scale_b, out, out_dtype=out_dtype, bias=bias, activation=activation,
                         config=config, stream=stream, use_fast_accum=use_fast_accum)


def operator_arguments(a, b, scale_a, scale_b, out_dtype, bias, activation, use_fast_accum):
    """torch.ops.skc.scaled_matmul's arguments (a, b, scale_a, scale_b, bias, out_dtype, use_fast_accum, activation)
    for matmul()'s fp8 call as torch.compile traces it, or None where the operator cannot take them: scales or a
    bias that are no torch tensors, an out_dtype that is neither a torch dtype nor the name of one the GEMM writes,
    a use_fast_accum that is no bool, an activation that is no str (the operator's schema refused it with torch's
    cast error; such a call runs outside the graph, whose eager call refuses it by name)."""
    import torch   # (a traced call's tensors are torch's: it is installed)

    if not (isinstance(scale_a, torch.Tensor) and isinstance(scale_b, torch.Tensor)
            and (bias is None or isinstance(bias, torch.Tensor))
            and (use_fast_accum is None or isinstance(use_fast_accum, bool))
            and (activation is None or type(activation) is str)):
        return None
    if isinstance(out_dtype, str):   # ("bfloat16" or "bf16": the names the eager call takes)
        out_dtype = torch_out_dtype(_OUT.get(out_dtype))
        if out_dtype is None:
            return None
    elif not (out_dtype is None or isinstance(out_dtype, torch.dtype)):
        return None
    return a, b, scale_a, scale_b, bias, out_dtype, bool(use_fast_accum), activation


def torch_out_dtype(name):
    """torch's dtype of an out type the GEMM writes ('bf16', 'f16' or 'f32'), or None for another name."""
    import torch

    return {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}.get(name)
