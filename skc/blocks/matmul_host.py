"""The GEMM's host side: `matmul(a, b, ...)` reads the operands' layouts, picks a configuration for the device's
target and launches matmul_kernel's persistent grid.

A call is one dict lookup in the common case: a tuple of cheap facts (device; each operand's type, shape,
strides and dtype, read in place for torch tensors; the epilogue's flags; the config) finds a ready plan made,
and fully checked, by the first call with those facts. A plan holds the launcher of its specialization, its grid
and its tensor maps' geometry; on a Hopper GPU, operands at addresses it has seen twice (with the same alpha and
beta) find a bound launch, whose kernel parameters were checked and packed once: the call is then the lookup and
the driver call. A tensor map is encoded once per address and geometry. Batched operands (B x M x K with K x N,
or B x K x N) fold into one GEMM when they can; otherwise on Hopper they run in one launch over every matrix's
tiles (3-D tensor maps) and, with a c or elsewhere, as one GEMM per batch. Skinny problems can split K
(MatmulConfig(split_k=n)): one launch whose last share of each tile completes it. Rows that 16-byte copies cannot
address (K or N, or M of a transposed a, no multiple of 8; views of such rows) are copied, in one launch, into
buffers whose rows TMA can address (_PaddedRows, which keeps them on the GPU for small problems); arrays it cannot
copy (skc's own), few rows over a large B of such rows (by cp.async, few_rows_async), and a configuration that
asks, read them with the vector loader's narrower loads and store out directly (_UnalignedRows).
"""
from __future__ import annotations

import functools
import math
import os
import sys
import threading
import weakref
from dataclasses import replace

import skc

from .amd_config import AmdMatmulConfig
from .config import ROWS, MatmulConfig
from .epilogue import EpilogueSpec
from .fp8_host import fp8_type, operator_arguments, scaled_call
from . import gemm
from .host_plans import (TORCH_HOOKS, TORCH_TYPES, Direct, GemmPlan, autocast, differentiated, element_strides,
                         empty_like,
                         outside_graph, refuse_host_options, remember, row_major, torch_type, traced, traced_numbers,
                         zeros_like)
from .copies import BLOCK as COPY_BLOCK
from .copies import blocks, copy_rows
from .host_plans import (Bindings, address_functions, beta_without_c, check_activation, check_epilogue_operands,
                         check_has_data, check_no_overlap, check_own_memory, check_real_operands, check_stream_given,
                         check_writeable, contiguous, facts_failed, keeping_stream, kept_empty, matrices_packed,
                         on_stream, paddable, read_in_place, real, require_arrays, span, unsplit_unless_row_major, view,
                         viewable)
from .host_plans import facts as _facts
from .host_plans import storage as _storage
from .matmul_shapes import TorchShapes
from .matmul_tuning import tune
from .scheduler import TileScheduler

_PLANS: dict = {}        # facts of a call -> its plan (host_plans.remember bounds it)

# Tuned configurations for known problems: (target name, M, N, K, dtype) -> the configuration's fields. From the
# kernel-time sweeps on the H200 (benchmarks/NOTES.md, benchmarks/results/sweep-2026-11-30-{baseline,c3}.json): each
# suite shape's fastest configuration, bf16; fp16 runs the same kernels. Exact shapes only: a neighbour's tiles
# fill the SMs in other waves (3072³ on 4096³'s 128 x 256 tiles measured 0.77x cuBLAS; MatmulConfig.for_problem
# weighs the waves). 16 x 8192 x 8192 stays unsplit: split-K measured slower there (benchmarks/NOTES.md).
_SWEPT = {
    (4096, 4096, 4096): {"tile_m": 128, "tile_n": 256, "cluster_m": 1, "stages": 4},
    (8192, 8192, 8192): {"tile_m": 128, "tile_n": 256, "cluster_m": 2, "stages": 4},
    (8192, 8192, 2048): {"tile_m": 128, "tile_n": 256, "cluster_m": 2, "stages": 4},
    # three consumer warpgroups on 192 x 192 tiles, 708 against 675 TFLOP/s (sweep-...-c3)
    (8192, 28672, 8192): {"tile_m": 192, "tile_n": 192, "cluster_m": 1, "stages": 3},
    (8192, 8192, 28672): {"tile_m": 128, "tile_n": 256, "cluster_m": 2, "stages": 4},
    (4096, 14336, 4096): {"tile_m": 128, "tile_n": 256, "cluster_m": 1, "stages": 4},
    # (128 x 128 pingpong tiles measured 705 against 685 TFLOP/s of kernel time at 2048³, but 0.97x cuBLAS end to
    # end against 1.00x with these: benchmarks/NOTES.md)
    (2048, 2048, 2048): {"tile_m": 64, "tile_n": 256, "cluster_m": 1, "stages": 5},
    (1024, 1024, 1024): {"tile_m": 64, "tile_n": 128, "cluster_m": 1, "stages": 8},
    (128, 8192, 8192): {"tile_m": 64, "tile_n": 128, "cluster_m": 1, "stages": 8},
    (16, 8192, 8192): {"tile_m": 64, "tile_n": 128, "cluster_m": 1, "stages": 8},
    (16384, 2048, 2048): {"tile_m": 128, "tile_n": 256, "cluster_m": 2, "stages": 4},
}
TUNED: dict = {("sm_90a", *shape, dtype): fields for shape, fields in _SWEPT.items() for dtype in ("bf16", "f16")}


def matmul(a, b, out=None, *, bias=None, c=None, alpha=None, beta=None, activation=None, config=None,
           stream=None, autotune=None, scale_a=None, scale_b=None, out_dtype=None, use_fast_accum=None):
    """out = activation(alpha · a @ b + beta · c + bias) on the current device: a Hopper GPU, an AMD CDNA GPU,
    or the interpreter modelling either. alpha defaults to 1, beta to 1 where c is given (torch.addmm's defaults);
    beta scales c alone (a beta not 0 with no c is refused: c=out adds to out).

    a (M x K) and b (K x N) are bf16 or fp16 tensors, row-major or transposed views of row-major ones;
    out, c and bias are row-major. Rows are copied 16 bytes at a time (TMA on Hopper, vector loads on AMD): where
    K or N (or M for a transposed a) is no multiple of 8, the Hopper GEMM copies the operands that need it into
    rows it can address (torch tensors, numpy arrays; a batch then runs a GEMM per matrix), or, for few rows over a
    large such B (few_rows_async), for skc's own arrays and for a config with loader="vector", reads them in place
    with narrower loads or cp.async and stores out through a pointer; the AMD GEMM refuses such shapes. Batched: a of
    B x M x K with b of K x N or B x K x N (out B x M x N; a batch of one broadcasts), and every shape torch.matmul
    takes: 1-D operands, batch dimensions of any number, broadcast (matmul_shapes.py; out and c of the result's
    shape; fp8 operands 2-D, as torch._scaled_mm's). `config`
    is a MatmulConfig (Hopper) or an AmdMatmulConfig (AMD); by default one comes from the tuning table, or from `skc.autotune` when
    `autotune=True` (or SKC_AUTOTUNE=1), or is chosen for the problem. The launch goes to `stream`, by default
    the current stream of the operands' framework.
    fp8 operands with `scale_a`, `scale_b` (and `out_dtype`, `use_fast_accum`) are torch._scaled_mm's GEMMs
    (fp8_host.py). Inside a function torch.compile compiles, the call is torch.ops.skc's operator in the graph."""
    if traced(a):
        return _traced_matmul(a, b, out, bias, c, alpha, beta, activation, config=config, stream=stream,
                              autotune=autotune, scale_a=scale_a, scale_b=scale_b, out_dtype=out_dtype,
                              use_fast_accum=use_fast_accum)
    if scale_a is not None or scale_b is not None or out_dtype is not None or use_fast_accum is not None:
        return scaled_call(a, b, out, scale_a, scale_b, out_dtype, bias, c, alpha, beta, activation, config, stream,
                           use_fast_accum, autotune)
    if config is not None and not isinstance(config, (MatmulConfig, AmdMatmulConfig)):
        raise skc.LaunchError(f"matmul's config is a MatmulConfig (Hopper) or an AmdMatmulConfig (AMD), found "
                              f"{type(config).__name__}")
    check_activation("matmul", activation)
    if c is None and beta is not None and real(beta, "beta") != 0.0:
        raise skc.LaunchError(beta_without_c(beta))
    if beta is None and c is not None:   # torch.addmm's default (the plans take None as 0: no c)
        beta = 1.0
    ignored = None
    if c is not None and real(beta, "beta") == 0.0:   # torch.addmm ignores c: its NaNs and infs do not propagate
        c, ignored = None, c   # (autograd follows it all the same, to a zero gradient)
    if autotune is not None and type(autotune) is not bool:
        raise skc.LaunchError(f"matmul's autotune is True, False or None (the environment's SKC_AUTOTUNE), found "
                              f"{autotune!r}")
    device = skc.current_device()
    kind, given = type(a), out
    if ((kind in TORCH_TYPES or torch_type(kind)) and (type(b) is kind or torch_type(type(b)))
            and (out is None or type(out) is kind or torch_type(type(out)))
            and (c is None or type(c) is kind or torch_type(type(c)))
            and (bias is None or type(bias) is kind or torch_type(type(bias)))):
        # torch tensors (the common call; an nn.Parameter w beside a plain x too): their facts read in place into one
        # tuple, led by a's type
        # (an out autograd follows is refused, as torch's out= is; the plain call's facts read in place first: calling
        # differentiated for every call was the larger part of a host time that had been under torch.matmul's)
        if out is None and TORCH_HOOKS[3]():   # (in a torch.autocast region: its dtype, as torch.matmul's; no out=)
            a, b, c, bias = autocast(a, b, c, bias)
        held = c if ignored is None else ignored
        if (a.requires_grad or b.requires_grad or out is not None or held is not None or bias is not None
                or TORCH_HOOKS[2]._current_level >= 0) and differentiated(a, b, held, bias, out):   # (traced() made it)
            return _differentiated_matmul(a, b, out, bias, held, alpha, beta, activation, config=config, stream=stream,
                                          autotune=autotune)
        try:
            # (and whether each is a lazily negated view: the same facts but other values, refused by the first call)
            key = (kind, device, a.shape, a.stride(), a.dtype, a.device, a.is_neg(),
                   b.shape, b.stride(), b.dtype, b.device, b.is_neg(),
                   out if out is None else (out.shape, out.stride(), out.dtype, out.device, out.is_neg()),
                   c if c is None else (c.shape, c.stride(), c.dtype, c.device, c.is_neg()),
                   bias if bias is None else (bias.shape, bias.stride(), bias.dtype, bias.device, bias.is_neg()),
                   alpha is None, activation, config, autotune)
        except (RuntimeError, NotImplementedError) as error:   # (a sparse CSR tensor has no strides)
            facts_failed("matmul", error, a=a, b=b, out=out, c=c, bias=bias)
    else:
        require_arrays("matmul", ("out", "c", "bias"), a=a, b=b, out=out, c=c, bias=bias)
        torch = sys.modules.get("torch")
        operands = {"a": a, "b": b, "out": out, "c": c, "bias": bias}
        # (torch tensors beside another kind, numpy's: all of torch's kinds took the branch above; the result could
        # carry no gradient)
        if (torch is not None and any(isinstance(x, torch.Tensor) for x in operands.values())
                and differentiated(a, b, c, bias, out)):
            name, x = next((name, x) for name, x in operands.items()
                           if x is not None and not isinstance(x, torch.Tensor))
            raise skc.LaunchError(f"matmul: autograd follows a torch operand, and {name} is a {type(x).__name__}, "
                                  f"which it cannot follow: pass {name} as a torch tensor (torch.from_numpy({name}), "
                                  "torch.as_tensor), or call matmul under torch.no_grad() (or on detached tensors)")
        check_writeable("matmul", out)
        a, b, out, c, bias = viewable("matmul", a=a, b=b, out=out, c=c, bias=bias)
        try:
            key = (device, _facts(a), _facts(b), out if out is None else _facts(out), c if c is None else _facts(c),
                   bias if bias is None else _facts(bias), alpha is None, activation, config, autotune)
        except (RuntimeError, NotImplementedError) as error:
            facts_failed("matmul", error, a=a, b=b, out=out, c=c, bias=bias)
    plan = _PLANS.get(key)
    if plan is None:
        plan = remember(_PLANS, key, _plan(device, a, b, out, c, bias, alpha, activation, config, autotune))
    try:
        result = plan(a, b, out, c, bias, alpha, beta, stream)
    except RuntimeError as error:   # (a torch.func transform's tensor, of a plan's facts, has no data pointer)
        facts_failed("matmul", error, a=a, b=b, out=out, c=c, bias=bias)
    return result if out is given else given   # (the caller's out, not the view of it that viewable made)


def _traced_matmul(a, b, out, bias, c, alpha, beta, activation, **host_only):
    """matmul as torch.compile's Dynamo traces it: torch.ops.skc.matmul (or matmul_out), an operator the graph holds,
    whose fake implementation gives the result's shape and checks the operands (the host call itself, its locks and
    plans, is no code Dynamo can trace; they take torch.matmul's shapes, as matmul does); an fp8 call is
    torch.ops.skc.scaled_matmul. What the operators do not take (a config, a stream, an fp8 call's out) runs outside
    the graph, as torch.compiler.disable runs a function: a graph break (under fullgraph=True, an error that names
    it)."""
    given = {name: value for name, value in host_only.items() if value is not None}
    # (the fp8 GEMM: torch.ops.skc.scaled_matmul, where it takes the call's arguments)
    if any(name in given for name in _SCALED) and all(name in _SCALED for name in given) and out is None \
            and c is None and alpha is None and beta is None:
        arguments = operator_arguments(a, b, given.get("scale_a"), given.get("scale_b"), given.get("out_dtype"), bias,
                                       activation, given.get("use_fast_accum"))
        if arguments is not None:
            from .. import torch as skc_torch

            return skc_torch.scaled_matmul(*arguments)
    numbers = traced_numbers(alpha, beta)
    alpha, beta = (alpha, beta) if numbers is None else numbers
    if given or numbers is None:
        return outside_graph(matmul, a, b, out, bias=bias, c=c, alpha=alpha, beta=beta, activation=activation,
                             **given)
    return _operator(a, b, out, bias, c, alpha, beta, activation)


_SCALED = ("scale_a", "scale_b", "out_dtype", "use_fast_accum")   # (matmul's arguments of the fp8 GEMM)


def _differentiated_matmul(a, b, out, bias, c, alpha, beta, activation, **host_only):
    """matmul where autograd follows the call (host_plans.differentiated): torch.ops.skc.matmul, whose derivative is
    registered (the GEMM's result had none); an out is refused, as torch's out= refuses it."""
    refuse_host_options("matmul", "torch.ops.skc.matmul", out=out, **host_only)
    numbers = traced_numbers(alpha, beta)
    if numbers is None:
        raise skc.LaunchError("matmul: an operand requires grad, and torch.ops.skc.matmul, which computes the "
                              "derivative, takes alpha and beta as numbers, not tensors: pass alpha.item(), or call "
                              "matmul under torch.no_grad()")
    return _operator(a, b, out, bias, c, *numbers, activation)


def _operator(a, b, out, bias, c, alpha, beta, activation):
    """The call as torch.ops.skc.matmul (out None) or matmul_out."""
    from .. import torch as skc_torch

    if out is None:
        return skc_torch.matmul(a, b, bias, c, alpha, beta, activation)
    skc_torch.matmul_out(a, b, out, bias, c, alpha, beta, activation)
    return out


# -- making a plan (every check happens here, once per set of facts) ---------------------------------------------
def _plan(device, a, b, out, c, bias, alpha, activation, config, autotune):
    check_has_data("matmul", a=a, b=b, out=out, c=c, bias=bias)
    if not (2 <= len(a.shape) <= 3 and 2 <= len(b.shape) <= 3):   # (vectors, or more batch dimensions: torch's)
        return TorchShapes.checked(matmul, a, b, out, c, bias, activation, config)
    if len(a.shape) == 3 or len(b.shape) == 3:
        return _batched_plan(device, a, b, out, c, bias, alpha, activation, config)
    dtype = _one_type(a, b)
    M, K = a.shape
    if b.shape[0] != K:
        raise skc.LaunchError(f"cannot multiply a {tuple(a.shape)} by b {tuple(b.shape)}: inner dimensions differ")
    N = b.shape[1]
    if not (M and N and K):
        return _EmptyProblem.checked((M, N), K, a, b, out, c, bias, alpha, activation, config, dtype)
    a_store, a_k_major = _storage(a, True, "a")
    b_store, b_k_major = _storage(b, False, "b")
    if out is not None and tuple(out.shape) != (M, N):
        raise skc.LaunchError(f"out has shape {tuple(out.shape)}; the product of {tuple(a.shape)} and "
                              f"{tuple(b.shape)} is {(M, N)}")
    _check_out_type(out, dtype)
    if out is not None and not contiguous(out):
        raise skc.LaunchError(f"out (strides {element_strides(out)}) must be row-major with its rows one after "
                              "another (a transposed, strided or column-sliced view is not written, though a and b "
                              "may be such views): pass a contiguous out, or none")
    check_epilogue_operands("matmul", M, N, c, bias)
    spec = _checked_epilogue(EpilogueSpec(alpha=alpha is not None, beta=c is not None, bias=bias is not None,
                                          activation=activation))
    problem = (M, N, K, dtype, a_k_major, b_k_major)
    if config is not None:
        _check_config(device, config, problem)
    unaligned = (_unaligned_pitch(a_store), _unaligned_pitch(b_store))
    if not device.target.has("mfma"):   # Hopper: rows TMA cannot address are read by narrower loads, or copied
        flips = (a_store is not a, b_store is not b)
        copies = (_misaligned(a_store), _misaligned(b_store))
        if config is not None and config.loader == "vector":   # (it reads dense rows through pointers)
            copies = tuple(copy or not contiguous(x) for copy, x in zip(copies, (a_store, b_store)))
        unaddressed = any(copies) or N % 8 > 0   # (out's rows of N no multiple of 8: TMA cannot store them)
        # (a given vector-loader configuration: its load width is checked against each call's rows and addresses)
        if unaddressed or (config is not None and config.loader == "vector"):
            copyable = paddable(a, b, out, c, bias)
            direct = _UnalignedRows.config(device, problem, spec, config, autotune, a_store, b_store, copyable,
                                           copies)
            if direct is not None:
                return _UnalignedRows(device, problem, direct, flips, a_store, b_store)
            if unaddressed and copyable:
                return _PaddedRows(device, problem, flips, copies, spec, config, autotune, unaligned)
    # a given configuration chooses tiles, stages and the rest; the epilogue is always the call's
    cfg = (replace(config, epilogue=spec) if config is not None
           else _choose_config(device, problem, spec, autotune, (a, b, out, c, bias), unaligned))
    return _gemm_plan(device, a, b, out, problem, cfg, config is not None, unaligned)


def _gemm_plan(device, a, b, out, problem, cfg, given: bool, unaligned):
    """The plan running configuration `cfg` (`given` by the caller, or chosen) over a, b and out, whose storage's
    rows the GEMM can address: Hopper's (its operands swapped where cfg says so) or AMD's."""
    M, N = problem[:2]
    a_store, b_store = _storage(a, True, "a")[0], _storage(b, False, "b")[0]
    if getattr(cfg, "swap_ab", False) and not all(x is None or hasattr(x, "T") for x in (a, b, out)):
        # (the swapped product multiplies transposed views: skc's own arrays have none)
        if given:
            raise skc.LaunchError(f"matmul: swap_ab multiplies the operands' transposed views (.T), which "
                                  f"{type(a).__name__} has not: pass torch tensors or numpy arrays, or a config "
                                  "without swap_ab")
        cfg = _config(device.target, *problem, cfg.epilogue, UNSWAPPED, device.multiprocessors, unaligned)
    cfg = unsplit_unless_row_major(cfg, out)
    pointers = not isinstance(cfg, MatmulConfig) or cfg.loader == "vector"
    if pointers and not (row_major(a_store) and row_major(b_store)):
        # (the AMD GEMM and the vector loader index a and b as dense M x K / K x N storage: a view with longer rows
        # would be read at the wrong addresses; only TMA maps carry a row stride)
        raise skc.LaunchError(f"matmul: a (strides {element_strides(a)}) and b (strides {element_strides(b)}) are read "
                              "through plain pointers here: pass row-major operands with no gaps between rows "
                              "(x.contiguous()), or transposed views of such")
    if isinstance(cfg, MatmulConfig) and cfg.swap_ab:   # out^T = b^T a^T: the kernel's a is b, its b a
        return _SwappedPlan(_hopper_plan(device, b, a, _swapped(problem), cfg.covering(N),
                                         (b_store is not b, a_store is not a)))
    if isinstance(cfg, MatmulConfig):
        return _hopper_plan(device, a, b, problem, cfg.covering(M), (a_store is not a, b_store is not b))
    return _AmdPlan(device, problem, cfg, (a_store is not a, b_store is not b))


UNSWAPPED = (("swap_ab", False),)   # _config's overrides for the rule's choice without swapped operands


LINE = 64   # 2-byte elements in 128 bytes: rows a multiple of that apart, TMA reads a box row in one piece


def _unaligned_pitch(store) -> int:
    """How far past a multiple of 128 bytes a row-major storage's rows start from each other (2-byte elements), in
    bytes: 0 where they are 128-byte aligned (a truth value: whether they are not)."""
    return element_strides(store)[0] % LINE * 2


def _misaligned(store) -> bool:
    """Whether a row-major storage's rows start at no multiple of 16 bytes from each other (2-byte elements)."""
    return element_strides(store)[0] % 8 != 0


# Problems of rows TMA cannot address run without copies (_UnalignedRows) up to this many multiply-adds (M·N·K),
# and whatever their size where the operands cannot be copied (skc's own arrays). 0: measured on the H200, the
# narrower loads were slower than _PaddedRows's copies at every size but the smallest (benchmarks/unaligned_rows.py;
# benchmarks/NOTES.md, nineteenth session)
UNALIGNED_DIRECT_MACS = 0

# ... but few rows of A over a B whose rows TMA cannot address, which _PaddedRows would copy whole, run here: the
# vector loader reads B in place by cp.async (no registers, a stage's copies all in flight), the tiles and the split
# along K that fill the SMs best (benchmarks/NOTES.md, thirty-first session: 4 x 7378 x 8128 0.37 -> 1.05 of
# torch.matmul, 32 x 4096 x 4100 0.49 -> 1.22; 256 rows, or a B of few elements, were faster copied)
ASYNC_ROWS = 128          # M at most
ASYNC_B_ELEMENTS = 1 << 21   # B's elements at least
# Likewise where only A's rows need the copy (K no multiple of 8, B row-major and 16-byte aligned) and the problem
# is small: there the copy's launch and host work weigh more than TMA's reads of B save (thirty-second session, end
# to end: 64 x 1984 x 492 1.19 of torch.matmul against 1.02 copied, 32 x 8160 x 626 1.17 against 0.96, 48 x 1176 x
# 3898 1.23 against 1.08, 80 x 8896 x 370 0.70 against 0.50; copying A was faster from a B of 9.2M elements, 128 x 5360
# x 1710 1.43 against 0.87, and from 4.3e8 multiply-adds, 112 x 4280 x 954 1.39 against 0.96, 80 x 13736 x 394 1.16
# against 0.83), and the output small: over a K of few k-steps the epilogue's stores, direct ones here, set the pace
# (thirty-third session: 96 x 9408 x 154 1.23 copied against 0.82, 128 x 9752 x 146 1.12 against 0.89, 128 x 10112 x
# 138 1.11 against 0.80; under the bound, 128 x 3712 x 386 1.10 against 1.01 copied)
ASYNC_A_ONLY_B_ELEMENTS = 6 << 20   # B's elements at most
ASYNC_A_ONLY_MACS = 1 << 28         # M·N·K at most
ASYNC_A_ONLY_OUTPUTS = 1 << 19      # M·N at most
ASYNC_SHARE_STEPS = 8     # k-steps a share of K takes at least
# (tile_m, tile_n, stages) in the order of preference: wider (fewer reads of A, more work a copy), then taller (B
# read once for 64 < M <= 128); a later one is taken where its one wave fills ASYNC_FILL_MARGIN more of the SMs.
# 128-row tiles only for more than 64 rows; 256 columns not of a K-major B (0.75-0.8x of 128 there)
ASYNC_TILES = ((128, 256, 3), (64, 256, 4), (128, 128, 6), (64, 128, 6), (64, 64, 8))
ASYNC_FILL_MARGIN = 0.02


class _UnalignedRows:
    """A problem whose rows TMA cannot address, run without copies: the vector loader reads the stored a and b with
    loads of as many elements (8, 4, 2 or 1) as their rows' lengths and their addresses allow (at most a given
    configuration's vector_width), and each consumer thread stores its values to out (store='direct'), so no row
    needs padding. A GEMM plan per load width, made at the first call whose addresses take it. A given vector-loader
    configuration with TMA stores runs here too (out's rows aligned), for the same checks of its width."""

    def __init__(self, device, problem, cfg, flipped, a_store, b_store):
        self.device, self.problem, self.cfg, self.flipped = device, problem, cfg, flipped
        # the widest load the rows' lengths (and a given configuration's width) allow
        self.rows = math.gcd(cfg.vector_width, a_store.shape[1], b_store.shape[1])
        self.address = address_functions(2)
        self.plans = {}

    @staticmethod
    def config(device, problem, spec, config, autotune, a_store, b_store, copyable=True, copied=(False, False)):
        """The configuration of a problem this plan runs (its stored operands' rows with no gaps), or None: a given
        configuration with the vector loader and direct stores, or TMA stores where out's rows allow them (N a
        multiple of 8); else, with none given, cp.async copies for few rows over a large B that the padded path would
        copy, or over a small one beside an A it would copy (`copied`: whether it would copy A's rows, B's;
        few_rows_async), the default tiles for operands that cannot be copied (`copyable` false),
        or without tuning asked for a problem of at most UNALIGNED_DIRECT_MACS multiply-adds."""
        if not (contiguous(a_store) and contiguous(b_store)):
            return None
        M, N, K = problem[:3]
        if config is not None:   # (out's rows of N no multiple of 8: stored directly)
            if config.loader != "vector":
                return None
            config = replace(config, epilogue=spec)
            return storing_directly(config) if N % 8 else config
        widest = math.gcd(8, a_store.shape[1], b_store.shape[1])
        if widest > 1 and not _autotune_requested(autotune) and _reads_in_place(M, N, K, copied):
            return few_rows_async(problem, spec, device.multiprocessors)
        if copyable and (_autotune_requested(autotune) or M * N * K > UNALIGNED_DIRECT_MACS):
            return None
        chosen = _config(device.target, *problem, spec, UNSWAPPED, device.multiprocessors)
        rows = min(chosen.tile_m, 2 * ROWS)   # (three consumers leave the vector loader too few registers)
        # (the vector loader writes 128-byte swizzled chunks: a row-major B's tile whole 64-column chunks)
        columns = chosen.tile_n if chosen.swizzle("b") == 128 else -(-chosen.tile_n // LINE) * LINE
        return replace(chosen, tile_m=rows, consumers=rows // ROWS, tile_n=columns, loader="vector", store="direct",
                       cluster_m=1, cluster_n=1, split_k=1, stream_k=False, split_tail=False, a_rows=0, a_box_rows=0,
                       producer_registers=None, consumer_registers=None, vector_in_flight=0)

    def __call__(self, a, b, out, c, bias, alpha, beta, stream):
        # (a transposed view starts where its stored matrix does; 2-byte types)
        width = math.gcd(self.rows, self.address[0](a) // 2, self.address[1](b) // 2)
        plan = self.plans.get(width)
        if plan is None:   # (cp.async copies 4 bytes at least: one element a load goes through registers)
            cfg = replace(self.cfg, vector_width=width, vector_async=self.cfg.vector_async and width > 1)
            plan = self.plans[width] = _hopper_plan(self.device, a, b, self.problem, cfg, self.flipped)
        return plan(a, b, out, c, bias, alpha, beta, stream)


# _PaddedRows keeps its buffers on the GPU (made once, one copy into each a call) where they take at most KEPT_BYTES
# a launch stream: a small problem's allocations cost more host time than its GEMM, and buffers at fixed addresses
# make the copy and the GEMM bound launches. All plans' kept buffers together take at most KEPT_TOTAL_BYTES (past
# it a call copies as an unkept one does); a set's bytes return to the budget when its plan goes (the plan cache's
# bound, or matmul_host._PLANS.clear()).
KEPT_BYTES = 32 << 20
KEPT_TOTAL_BYTES = 256 << 20
_kept_total = [0]

# Where out's rows are of N no multiple of 8, _PaddedRows' GEMM stores to out directly up to this many elements of
# out (a launch less); a larger out is stored by TMA into rows 128 bytes apart and copied (benchmarks/NOTES.md,
# twenty-eighth session: direct stores took 2048 x 50257 x 512 from 490 to 624 us and 3000 x 3001 x 3000 from 129
# to 137; 2500 x 2500 x 2500 level; 1000 x 1000 x 999 and smaller faster, a launch and torch's clone less)
DIRECT_STORE_ELEMENTS = 1 << 22


class _PaddedRows:
    """A problem whose rows TMA cannot address (row strides of no whole number of 16-byte units: K or N, or M for a
    transposed a, no multiple of 8; views of longer such rows): each such operand copied, in one launch of
    copies.copy_rows, into a buffer whose rows start 128 bytes apart (a transposed operand keeps its layout, its
    storage copied), and the product of those copies' views by the GEMM (a plan of its own, of the problem's own
    M, N and K: TMA reads past a row's end as zeros); where out's rows are of N no multiple of 8, the consumers store
    to out directly (store="direct", or split-K's last share), or, for a large out (DIRECT_STORE_ELEMENTS), by TMA
    into a buffer whose rows start 128 bytes apart, then copied to out. Two launches (three), in the launch's
    stream: what torch.matmul's users expect of any shape. Small problems keep their buffers a launch stream
    (KEPT_BYTES), made at its first call outside a CUDA graph's capture; a lock keeps two threads' copies and
    launches into one set from interleaving."""

    def __init__(self, device, problem, flipped, copies, spec, config, autotune, unaligned):
        self.device, self.problem, self.flipped, self.copies = device, problem, flipped, copies
        self.spec, self.config, self.autotune = spec, config, autotune
        # (a copied operand's rows start 128 bytes apart)
        self.unaligned = tuple(0 if copied else was for was, copied in zip(unaligned, copies))
        M, N, K = problem[:3]
        # the shapes of a's and b's storage (a transposed view's is its .T's) and of their copies
        self.stored = ((K, M) if flipped[0] else (M, K), (N, K) if flipped[1] else (K, N))
        # (a given vector-loader configuration reads dense rows through pointers: its copies are dense)
        self.pitch = (lambda n: n) if config is not None and config.loader == "vector" else _pitch
        # (not for a given configuration that writes out through a pointer, as rows N apart)
        pointer = config is not None and (config.store == "direct" or config.split_k > 1)
        self.through_product = bool(N % 8) and M * N > DIRECT_STORE_ELEMENTS and not pointer
        self.set_bytes = 2 * (sum(rows * self.pitch(cols) for (rows, cols), copied in zip(self.stored, copies)
                                  if copied) + self.through_product * M * _pitch(N))
        self.keeps = self.set_bytes <= KEPT_BYTES
        self.kept, self.lock = {}, threading.Lock()   # launch stream -> its _Kept buffers
        self.cuda = device.kind == "cuda"
        # the copy launches (in, where an operand is copied; out, where out is stored through the product buffer)
        grid = sum(blocks(*shape) for shape, copied in zip(self.stored, copies) if copied)
        self.copy = Bindings(copy_rows[grid, COPY_BLOCK]) if grid else None
        self.copy_out = Bindings(copy_rows[blocks(M, N), COPY_BLOCK]) if self.through_product else None
        self.address = address_functions(1)   # (of a torch tensor or array: the operands' type)
        self.gemm = None   # the GEMM's plan, made at the first call over its operands

    def _kept(self, a, stream):
        """The buffers kept for the launch's stream (made now at its first call), or None: the interpreter, a large
        problem, or a call that a CUDA graph captures (whose memory the graph owns, not this plan)."""
        handle = keeping_stream(a, stream) if self.keeps and (any(self.copies) or self.through_product) else None
        if handle is None:
            return None
        found = self.kept.get(handle)
        if found is None:
            if _kept_total[0] + self.set_bytes > KEPT_TOTAL_BYTES:
                return None
            # (the driver's memory, never torch's: host_plans.kept_zeros says why)
            found = self.kept[handle] = self._buffers(a, kept_empty)
            _kept_total[0] += self.set_bytes
            weakref.finalize(found, _release, self.set_bytes)
        return found

    def _buffers(self, a, make=empty_like) -> "_Kept":
        """Buffers like a's (made by `make`: kept_empty for a set the plan keeps) for the operands the plan copies
        (the stored shapes) and the product it stores through TMA, rows 128 bytes apart."""
        M, N = self.problem[:2]
        return _Kept(*(make(a, (rows, self.pitch(cols)))[:, :cols] if copied else None
                       for (rows, cols), copied in zip(self.stored, self.copies)),
                     make(a, (M, _pitch(N)))[:, :N] if self.through_product else None)

    def __call__(self, a, b, out, c, bias, alpha, beta, stream):
        with on_stream(a, stream):   # (buffers and outs made here belong to the launch's stream)
            kept = self._kept(a, stream)
            if kept is not None:
                with self.lock:
                    return self._product(a, b, out, c, bias, alpha, beta, stream, kept, True)
            return self._product(a, b, out, c, bias, alpha, beta, stream, self._buffers(a), False)

    def _product(self, a, b, out, c, bias, alpha, beta, stream, buffers, bound: bool):
        """The call's copies into `buffers` (a _Kept; `bound`: the plan's own, at fixed addresses) and its GEMM."""
        operands = []
        for x, flip, copy in zip((a, b), self.flipped, (buffers.a, buffers.b)):
            operands.append(x if copy is None else copy.T if flip else copy)
        if self.copy is not None:
            self._copy(a, b, buffers, stream, bound)
        product = out if buffers.product is None else buffers.product
        if self.gemm is None:
            self.gemm = self._gemm(*operands, product, c, bias)
        product = self.gemm(*operands, product, c, bias, alpha, beta, stream)
        if buffers.product is None:
            return product
        if out is None:
            out = empty_like(a, self.problem[:2])
        self._launch(self.copy_out, [(product, out, self.problem[1], element_strides(product)[0],
                                      element_strides(out)[0])], stream, bound)
        return out

    def _copy(self, a, b, buffers, stream, bound: bool):
        """One launch copying the storage of a and b (those the plan copies) into the buffers' views."""
        stores = [(x.T if flip else x, copy) for x, flip, copy in zip((a, b), self.flipped, (buffers.a, buffers.b))
                  if copy is not None]
        jobs = [(x, copy, copy.shape[1], element_strides(x)[0], element_strides(copy)[0]) for x, copy in stores]
        self._launch(self.copy, jobs, stream, bound)

    def _launch(self, launches: Bindings, jobs: list, stream, bound: bool):
        """copy_rows over one or two jobs (source, target, columns, source's row stride, target's), bound by the
        four addresses where `bound` (the plan's kept buffers, and operands at addresses seen before)."""
        first_blocks = blocks(jobs[0][0].shape[0], jobs[0][2])
        if not self.cuda:   # (the interpreter takes pointer arguments as contiguous arrays: spans)
            jobs = [(span(source), span(target), *rest) for source, target, *rest in jobs]
        first, second = jobs if len(jobs) == 2 else jobs * 2
        args = (*first, first_blocks, *second)
        if not bound or not self.cuda:   # (the interpreter binds nothing, whatever tensors _kept kept buffers for)
            launches.kernel(*args, stream=stream)
            return
        address = self.address[0]
        key = (address(first[0]), address(first[1]), address(second[0]), address(second[1]))
        launch = launches.get(key)
        if launch is not None:
            launch(stream)
        else:
            launches.launch(key, args, stream)

    def _gemm(self, a, b, out, c, bias):
        """The GEMM's plan over the copies' views (and any operand not copied): the call's config, or the one
        chosen for the problem, storing to out directly where TMA cannot (out's rows of N no multiple of 8) and out
        is not stored through the plan's product buffer."""
        device, problem, given = self.device, self.problem, self.config is not None
        cfg = (replace(self.config, epilogue=self.spec) if given else
               _choose_config(device, problem, self.spec, self.autotune, (a, b, out, c, bias), self.unaligned))
        if problem[1] % 8 and not self.through_product:
            if cfg.swap_ab:   # (its epilogue stores tiles transposed through TMA)
                if given:
                    raise skc.LaunchError(f"matmul: swap_ab stores out's tiles through TMA, which cannot address "
                                          f"rows of N = {problem[1]} (no multiple of 8): pass a config without "
                                          "swap_ab")
                cfg = _config(device.target, *problem, self.spec, UNSWAPPED, device.multiprocessors, self.unaligned)
            cfg = storing_directly(cfg)
        if cfg.loader == "vector":   # (a given configuration: each call's widest loads over the dense copies)
            return _UnalignedRows(device, problem, cfg, self.flipped, *(x.T if flip else x for x, flip
                                                                         in zip((a, b), self.flipped)))
        return _gemm_plan(device, a, b, out, problem, cfg, given, self.unaligned)


class _Kept:
    """The buffers of a padded problem's copies (views of a's and b's stored shapes) and of the product stored
    through TMA (M x N), rows 128 bytes apart; None where the problem has no such buffer: a launch stream's, kept by
    its plan, or one call's."""

    __slots__ = ("a", "b", "product", "__weakref__")

    def __init__(self, a, b, product):
        self.a, self.b, self.product = a, b, product


def _release(set_bytes: int):
    """A kept set's bytes back to the budget (its buffers are freed with it)."""
    _kept_total[0] -= set_bytes


def _pitch(n: int) -> int:
    """Elements in rows of n 2-byte elements padded to a multiple of 128 bytes."""
    return -(-n // LINE) * LINE


def _reads_in_place(M: int, N: int, K: int, copied: tuple) -> bool:
    """Whether few rows whose operands' rows the padded path would copy (`copied`: A's, B's) read them in place by
    cp.async instead: M <= ASYNC_ROWS over a copied B of ASYNC_B_ELEMENTS or more, or beside a copied A over a
    B of ASYNC_A_ONLY_B_ELEMENTS at most in a problem of ASYNC_A_ONLY_MACS and ASYNC_A_ONLY_OUTPUTS at most."""
    if M > ASYNC_ROWS:
        return False
    if copied[1]:
        return N * K >= ASYNC_B_ELEMENTS
    return (copied[0] and N * K <= ASYNC_A_ONLY_B_ELEMENTS and M * N * K <= ASYNC_A_ONLY_MACS
            and M * N <= ASYNC_A_ONLY_OUTPUTS)


def few_rows_async(problem, spec, multiprocessors: int) -> MatmulConfig:
    """The cp.async configuration of few rows (M <= ASYNC_ROWS) over a B whose rows TMA cannot address: of
    ASYNC_TILES that make one wave or less, the tiles and split along K (at most 16 shares, each of
    ASYNC_SHARE_STEPS k-steps or more) that fill the SMs best (the widest tiles unsplit where none does); out
    written through a pointer (split-K's last share, or direct stores)."""
    M, N, K, dtype, a_k_major, b_k_major = problem
    steps = -(-K // 64)
    best, chosen = -1.0, None
    for tile_m, tile_n, stages in ASYNC_TILES:
        if (tile_m > ROWS and M <= ROWS) or (b_k_major and tile_n > 2 * ROWS):
            continue
        tiles = -(-M // tile_m) * -(-N // tile_n)
        if chosen is None:   # (the widest: taken when every tile of the list makes more than one wave)
            chosen = (tile_m, tile_n, stages, 1)
        if tiles > multiprocessors:
            continue
        shares = max(1, min(16, multiprocessors // tiles, steps // ASYNC_SHARE_STEPS))
        fill = tiles * shares / multiprocessors
        if fill > best + ASYNC_FILL_MARGIN:
            best, chosen = fill, (tile_m, tile_n, stages, shares)
    tile_m, tile_n, stages, shares = chosen
    cfg = MatmulConfig(tile_m=tile_m, tile_n=tile_n, consumers=tile_m // ROWS, stages=stages, split_k=shares,
                       dtype=dtype, a_k_major=a_k_major, b_k_major=b_k_major, epilogue=spec, loader="vector",
                       vector_async=True)
    return storing_directly(cfg)


def storing_directly(cfg: MatmulConfig) -> MatmulConfig:
    """cfg writing out through a pointer, whatever its rows: split-K's last share does already; otherwise the
    consumers store their values directly (no stream-K or split tail, whose tiles end in TMA stores)."""
    if cfg.split_k > 1 or cfg.store == "direct":
        return cfg
    return replace(cfg, store="direct", stream_k=False, split_tail=False)


class _AmdPlan:
    """A checked AMD problem and its configuration; each call passes the operands as pointers."""

    def __init__(self, device, problem, cfg, transposed):
        self.device, self.problem, self.cfg, self.transposed = device, problem, cfg, transposed
        self.address, self.checked = address_functions(5), {}   # (addresses of a, b, out, bias, c) checked

    def __call__(self, a, b, out, c, bias, alpha, beta, stream):
        if out is None:
            out = empty_like(a, self.problem[:2])
        address = self.address
        key = (address[0](a), address[1](b), address[2](out), None if bias is None else address[3](bias),
               None if c is None else address[4](c))
        if key not in self.checked:   # (the plan's key fixes the layouts: the verdict depends on the addresses only)
            check_no_overlap("matmul", out, a=a, b=b, c=read_in_place(out, c), bias=bias)
            remember(self.checked, key, True)
        a_store = a.T if self.transposed[0] else a
        b_store = b.T if self.transposed[1] else b
        extras = (c if c is not None else out, bias if bias is not None else out,
                  real(alpha if alpha is not None else 1.0, "alpha"), real(beta if beta is not None else 0.0, "beta"))
        _launch_mfma(self.device, a_store, b_store, out, self.problem, extras, self.cfg, stream)
        return out


def _swapped(problem: tuple) -> tuple:
    """The problem b^T a^T of (M, N, K, dtype, a_k_major, b_k_major): a^T is K-major where b is, b^T where a is."""
    M, N, K, dtype, a_k_major, b_k_major = problem
    return N, M, K, dtype, b_k_major, a_k_major


class _SwappedPlan:
    """out = a @ b as out^T = b^T a^T (MatmulConfig.swap_ab): the inner plan (`_hopper_plan` of the swapped problem)
    takes b as the kernel's a and a as its b, and its epilogue stores each tile transposed into the row-major out
    (reading c and bias at out's own places)."""

    def __init__(self, inner: GemmPlan):
        self.inner = inner

    def __call__(self, a, b, out, c, bias, alpha, beta, stream):
        return self.inner(b, a, out, c, bias, alpha, beta, stream)


def _hopper_plan(device, a, b, problem, cfg, transposed=(False, False), batches=None) -> GemmPlan:
    """The Hopper GEMM of one geometry, for a GPU or the interpreter: tensor maps of the row-major storage of a and b
    (a transposed view is read through its .T), or, for the vector loader, that storage itself; a and b's maps are
    checked now, out's at the first call. A swap_ab configuration's problem is b^T a^T: `a` is the caller's b, `b`
    its a, and out keeps the caller's shape (the transpose of the problem's)."""
    boxes = cfg.boxes()

    def maker(name, flip):
        stored = (lambda t: t.T) if flip else (lambda t: t)
        if cfg.through_pointer(name):
            return Direct(stored)
        box, swizzle = boxes[name], cfg.swizzle(name)
        return lambda t: skc.TensorMap(stored(t), box, swizzle)

    makers = (maker("a", transposed[0]), maker("b", transposed[1]), maker("out", False))
    rows, columns = problem[:2][::-1] if cfg.swap_ab else problem[:2]
    shape = (rows, columns) if batches is None else (batches, rows, columns)
    names = ("matmul", "b", "a") if cfg.swap_ab else ("matmul", "a", "b")
    return GemmPlan(device, cfg, problem[:3], makers, (a, b, None), batches, empty=lambda a: empty_like(a, shape),
                    names=names)


def _launch_mfma(device, a, b, out, problem, extras, cfg: AmdMatmulConfig, stream=None):
    M, N, K, _, a_k_major, b_k_major = problem
    for what, extent, name in ((a_k_major, K, "K"), (not a_k_major, M, "M (a is transposed)"),
                               (b_k_major, K, "K (b is transposed)"), (not b_k_major, N, "N")):
        if what and extent % 8:
            raise skc.LaunchError(f"the AMD GEMM copies 16-byte rows: {name} must be a multiple of 8, found {extent}")
    if _storage(out, True, "out")[0] is not out:
        raise skc.LaunchError("the AMD GEMM writes a row-major out, found a transposed view")
    grid = TileScheduler.grid(M, N, cfg.tile_m, cfg.tile_n, device.multiprocessors * cfg.blocks_per_cu)
    gemm.matmul_kernel[grid, cfg.threads](a, b, out, M, N, K, *extras, cfg, stream=stream)


def _checked_epilogue(spec: EpilogueSpec) -> EpilogueSpec:
    try:
        spec.check()
    except ValueError as error:
        raise skc.LaunchError(f"matmul: {error}") from None
    return spec


# -- batches ------------------------------------------------------------------------------------------------------
def _batched_plan(device, a, b, out, c, bias, alpha, activation, config):
    """A batch: a (B x M x K) with b (K x N) folds B into M when a is row-major and contiguous (one GEMM of
    (B·M) x K); otherwise (b of B x K x N, or a strided a) on Hopper one launch over every matrix's tiles with 3-D
    tensor maps when each matrix is row-major (any batch stride) and there is no c; else one GEMM per batch,
    launched from the host."""
    for x in (a, b, out, c):
        if x is not None and len(x.shape) == 3 and not (hasattr(x, "reshape") and hasattr(type(x), "__getitem__")):
            raise skc.LaunchError(f"matmul: batched operands must be tensors or arrays that can be viewed per batch "
                                  f"(torch, cupy, numpy), found {type(x).__name__}; pass 2-D operands per batch")
    if len(a.shape) == len(b.shape) == 3 and a.shape[0] != b.shape[0] and 1 in (a.shape[0], b.shape[0]):
        return _BroadcastBatch(a.shape[0] == 1, activation, config)
    batch = a.shape[0] if len(a.shape) == 3 else b.shape[0]
    for name, x in (("a", a), ("b", b)):
        if len(x.shape) == 3 and x.shape[0] != batch:
            raise skc.LaunchError(f"matmul: the batch sizes differ: a is {tuple(a.shape)}, b is {tuple(b.shape)}")
    M, K = a.shape[-2:]
    if b.shape[-2] != K:
        raise skc.LaunchError(f"cannot multiply a {tuple(a.shape)} by b {tuple(b.shape)}: inner dimensions differ")
    N = b.shape[-1]
    if not (batch and M and N and K):
        return _EmptyProblem.checked((batch, M, N), K, a, b, out, c, bias, alpha, activation, config, _one_type(a, b))
    for name, x in (("out", out), ("c", c)):
        if x is not None and tuple(x.shape) != (batch, M, N):
            raise skc.LaunchError(f"matmul: {name} has shape {tuple(x.shape)}; the batched product is "
                                  f"{(batch, M, N)}")
    dtype = _one_type(a, b)
    _check_out_type(out, dtype)   # (one launch writes out through a map of the operands' type)
    check_own_memory("matmul", out)
    check_epilogue_operands("matmul", None, N, bias=bias)
    check_real_operands("matmul", c=c)   # (c of any strides: a batch that does not fold runs a GEMM a matrix)
    _checked_epilogue(EpilogueSpec(alpha=alpha is not None, beta=c is not None, bias=bias is not None,
                                   activation=activation))
    foldable = len(b.shape) == 2 and row_major(a) and all(x is None or row_major(x) for x in (out, c))
    if foldable:
        return _FoldedBatch(batch, M, N, K, activation, config)
    one_launch = (device.target.has("wgmma") and c is None and config is None
                  and all(x is None or element_strides(x)[-1] == 1 for x in (a, b, out))
                  # (numpy's reversed batches or rows, x[::-1], have negative strides, which no map takes)
                  and all(x is None or all(s % 8 == 0 and s >= 0 for s in element_strides(x)[:-1])
                          for x in (a, b, out))
                  and N % 8 == 0)   # (out's rows when it is made here; else rows TMA cannot address: per matrix)
    if one_launch:
        batched = "a" * (len(a.shape) == 3) + "b" * (len(b.shape) == 3)
        spec = EpilogueSpec(alpha=alpha is not None, bias=bias is not None, activation=activation)
        cfg = MatmulConfig.for_problem(batch * M, N, K, dtype, True, False, device.target.max_shared_bytes,
                                       device.multiprocessors, batch, epilogue=spec, batched=batched, split_k=1)
        problem = (M, N, K, cfg.dtype, True, False)
        return _hopper_plan(device, a, b, problem, cfg, batches=batch)
    for name, x in (("out", out), ("c", c)):   # (named here: each matrix's GEMM named only its own strides)
        if x is not None and not matrices_packed(x):
            raise skc.LaunchError(f"matmul: {name} (shape {tuple(x.shape)}, strides {element_strides(x)}) must hold "
                                  f"each matrix row-major, rows of {N} elements one after another: this batch runs "
                                  f"one GEMM per matrix (with c, or rows a single launch cannot address), which "
                                  f"{'writes' if name == 'out' else 'reads'} {name} so; pass a contiguous {name} "
                                  f"({name}.contiguous(), np.ascontiguousarray({name}))"
                                  + (", or none" if name == "out" else ""))
    return _LoopedBatch(batch, M, N, len(a.shape) == 3, len(b.shape) == 3, activation, config)


def _check_config(device, config, problem):
    """A given config fits the device and the call's operands (the device, batched and shared memory were errors
    from inside the compiler, at skc's own lines)."""
    wanted = AmdMatmulConfig if device.target.has("mfma") else MatmulConfig
    if not isinstance(config, wanted):
        raise skc.LaunchError(f"matmul on {device.target.name} takes a {wanted.__name__}, found "
                              f"{type(config).__name__}")
    swapped = getattr(config, "swap_ab", False)
    if swapped:   # (its problem is b^T a^T)
        problem = _swapped(problem)
    dtype, a_k_major, b_k_major = problem[3:]
    if (config.dtype, config.a_k_major, config.b_k_major) != (dtype, a_k_major, b_k_major):
        raise skc.LaunchError(f"the config is for {config.dtype} with a_k_major={config.a_k_major}, b_k_major="
                              f"{config.b_k_major}; the operands " + ("(swap_ab: b^T a^T's) " if swapped else "")
                              + f"are {dtype} with a_k_major={a_k_major}, b_k_major={b_k_major}")
    if getattr(config, "batched", ""):
        raise skc.LaunchError(f"matmul: config.batched={config.batched!r} is matmul's own choice for a batch in one "
                              "launch; pass a config without it (a given config runs on each matrix)")
    needed, limit = config.shared_bytes(), device.target.max_shared_bytes
    if needed > limit:
        raise skc.LaunchError(f"matmul: the config's tiles and stages take {needed} bytes of shared memory, more "
                              f"than the {limit} a block may use on {device.target.name}: use fewer stages "
                              f"(stages={config.stages}) or smaller tiles")


class _EmptyProblem:
    """A product with no elements (M, N or the batch 0): out as it is, or a new empty one, with no launch; or one
    whose K is 0, each element a sum of nothing: the epilogue of 0 (beta·c + bias, activated: alpha scales nothing), as
    torch.matmul and torch.addmm give it, by the call over zero operands 8 deep (torch's 0-size tensors have any
    strides, which no map or kernel needs to read)."""

    DEPTH = 8   # (one 16-byte row of bf16/fp16)

    def __init__(self, shape, K, activation, config):
        self.shape, self.K, self.activation, self.config = shape, K, activation, config

    @classmethod
    def checked(cls, shape, K, a, b, out, c, bias, alpha, activation, config, dtype) -> "_EmptyProblem":
        """The plan, once out, c, bias and the activation are checked as a problem with elements checks them."""
        for name, x in (("out", out), ("c", c)):
            if x is not None and tuple(x.shape) != shape:
                raise skc.LaunchError(f"matmul: {name} has shape {tuple(x.shape)}; the product of {tuple(a.shape)} "
                                      f"and {tuple(b.shape)} is {shape}")
        _check_out_type(out, dtype)
        check_epilogue_operands("matmul", None, shape[-1], bias=bias)
        check_real_operands("matmul", c=c)
        _checked_epilogue(EpilogueSpec(alpha=alpha is not None, beta=c is not None, bias=bias is not None,
                                       activation=activation))
        return cls(shape, K, activation, config)

    def __call__(self, a, b, out, c, bias, alpha, beta, stream):
        if alpha is not None:   # (named as a launch names it, though no element is alpha's)
            real(alpha, "alpha")
        check_stream_given(stream)
        with on_stream(a, stream):   # (filled where the GEMM reads them, and freed into that stream's memory)
            if out is None:
                out = empty_like(a, self.shape)
            if 0 in self.shape:
                return out
            zero_a = zeros_like(a, (*a.shape[:-1], self.DEPTH))
            zero_b = zeros_like(b, (*b.shape[:-2], self.DEPTH, b.shape[-1]))
        # alpha scales the sum of nothing, 0 whatever alpha is (torch.addmm's beta · c for a NaN or infinite alpha,
        # where alpha · 0 would be NaN): the GEMM of zero operands runs without it
        return matmul(zero_a, zero_b, out, bias=bias, c=c, beta=beta, activation=self.activation,
                      config=self.config, stream=stream)


class _FoldedBatch:
    """B matrices of a that lie one after another, times one b: a single GEMM of (B·M) x K."""

    def __init__(self, batch, M, N, K, activation, config):
        self.batch, self.M, self.N, self.K = batch, M, N, K
        self.activation, self.config = activation, config

    def __call__(self, a, b, out, c, bias, alpha, beta, stream):
        rows = self.batch * self.M
        if out is None:
            with on_stream(a, stream):   # (the launch's stream's memory: host_plans.on_stream)
                out = empty_like(a, (self.batch, self.M, self.N))
        flat_c = view(c, (rows, self.N)) if c is not None else None
        matmul(view(a, (rows, self.K)), b, view(out, (rows, self.N)), bias=bias, c=flat_c, alpha=alpha,
               beta=beta, activation=self.activation, config=self.config, stream=stream)
        return out


class _BroadcastBatch:
    """A batch of one matrix times a batch of several (1 x M x K with B x K x N, or B x M x K with 1 x K x N): that
    one matrix times the batch, as torch.matmul broadcasts the batch dimension."""

    def __init__(self, single_a: bool, activation, config):
        self.single_a, self.activation, self.config = single_a, activation, config

    def __call__(self, a, b, out, c, bias, alpha, beta, stream):
        a, b = (a[0], b) if self.single_a else (a, b[0])
        return matmul(a, b, out, bias=bias, c=c, alpha=alpha, beta=beta, activation=self.activation,
                      config=self.config, stream=stream)


class _LoopedBatch:
    """One GEMM per matrix of the batch, launched from the host."""

    def __init__(self, batch, M, N, a_batched, b_batched, activation, config):
        self.batch, self.M, self.N, self.a_batched, self.b_batched = batch, M, N, a_batched, b_batched
        self.activation, self.config = activation, config

    def __call__(self, a, b, out, c, bias, alpha, beta, stream):
        if out is None:
            with on_stream(a, stream):   # (the launch's stream's memory: host_plans.on_stream)
                out = empty_like(a, (self.batch, self.M, self.N))
        else:   # (each matrix's GEMM checks its own operands; a later one must not read what an earlier one wrote)
            check_no_overlap("matmul", out, a=a, b=b, c=read_in_place(out, c), bias=bias)
        for i in range(self.batch):
            matmul(a[i] if self.a_batched else a, b[i] if self.b_batched else b, out[i], bias=bias,
                   c=c[i] if c is not None else None, alpha=alpha, beta=beta, activation=self.activation,
                   config=self.config, stream=stream)
        return out


# -- configurations -------------------------------------------------------------------------------------------------
def operand_dtype_name(x, name: str, what: str = "matmul") -> str:
    """bf16 or f16, the type of `what`'s operand `name`; another type is a LaunchError that names the operand."""
    dtype = str(x.dtype)
    for candidate, label in (("bfloat16", "bf16"), ("bf16", "bf16"), ("float16", "f16"), ("f16", "f16")):
        if candidate in dtype:
            return label
    raise skc.LaunchError(f"{what} multiplies bf16 or fp16 operands; {name} is {x.dtype}")


def _one_type(a, b) -> str:
    """The operands' type (bf16 or f16), which they must share; fp8 ones are the scaled GEMM's, named as such."""
    for name, x in (("a", a), ("b", b)):
        if fp8_type(x.dtype):
            raise skc.LaunchError(f"matmul: {name} is {x.dtype}; fp8 operands multiply with scale_a and scale_b "
                                  "(float32: one value each, or block-wise), as torch._scaled_mm takes them")
    dtype, dtype_b = operand_dtype_name(a, "a"), operand_dtype_name(b, "b")
    if dtype_b != dtype:
        raise skc.LaunchError(f"a is {dtype} and b is {dtype_b}; matmul needs one type")
    return dtype


def _check_out_type(out, dtype: str):
    """matmul writes the operands' type: an out of another is refused (a bf16 out holds "f16" in its name)."""
    if out is not None and dtype_label(out) != dtype:
        raise skc.LaunchError(f"out is {out.dtype}; matmul writes the operands' type ({dtype}): pass an out of that "
                              "type, or none")


def dtype_label(x):
    """operand_dtype_name(x), or None for a dtype matmul does not take."""
    try:
        return operand_dtype_name(x, "out")
    except skc.LaunchError:
        return None


def _autotune_requested(autotune) -> bool:
    if autotune is not None:
        return bool(autotune)
    return os.environ.get("SKC_AUTOTUNE", "").strip().lower() not in ("", "0", "false", "no", "off")


def _choose_config(device, problem, spec, autotune, operands, unaligned=(False, False)):
    """The tuning table's entry for this problem, else (when asked) an autotuned one, else the default (in clusters
    where `unaligned` says A's or B's rows start at no multiple of 128 bytes from each other, by how many bytes past
    one, _unaligned_pitch's, and tile_rules says the cluster pays: unaligned_cluster, shares_b)."""
    target = device.target
    M, N, K, dtype = problem[:4]
    overrides = TUNED.get((target.name, M, N, K, dtype))
    if overrides is not None and not target.has("mfma"):
        if problem[5] and overrides.get("cluster_m", 1) > 1:  # (the table's clusters were measured on a K x N B)
            overrides = dict(overrides, cluster_m=1)
        return _config(target, *problem, spec, tuple(sorted(overrides.items())), device.multiprocessors)
    if _autotune_requested(autotune) and not device.is_interpreter and not target.has("mfma"):
        return tune(device, problem, spec, operands, matmul, unaligned)
    return _config(target, *problem, spec, (), device.multiprocessors, unaligned)


@functools.lru_cache(maxsize=256)
def _config(target, M, N, K, dtype, a_k_major, b_k_major, spec, overrides=(), multiprocessors=132,
            unaligned=(False, False)):
    if target.has("mfma"):
        return AmdMatmulConfig.for_problem(M, N, K, dtype, a_k_major, b_k_major, epilogue=spec, **dict(overrides))
    return MatmulConfig.for_problem(M, N, K, dtype, a_k_major, b_k_major, target.max_shared_bytes,
                                    multiprocessors=multiprocessors, unaligned=unaligned, epilogue=spec,
                                    **dict(overrides))


def compile_arguments(target, M: int = 4096, N: int = 4096, K: int = 4096, dtype: str = "bf16", config=None) -> dict:
    """matmul_kernel's arguments for `Kernel.compile` without data (skc compile, tests): the configuration
    matmul() picks for an M x N x K problem on `target` (or `config`), tensor-map types of its boxes (Hopper)
    or pointer types (AMD) for the operands, and the block size."""
    from skc import ir

    target = skc.get_target(target)
    if getattr(config, "dtype", None) in ("bf16", "f16"):   # (an f16 config was given bf16 maps and pointers)
        dtype = config.dtype
    pointer = skc.Ptr[skc.bf16 if dtype == "bf16" else skc.f16]
    cfg = config or _config(target, M, N, K, dtype, True, False, EpilogueSpec())
    if target.has("mfma"):
        operands = {"a": pointer, "b": pointer, "out": pointer}
    else:
        boxes = cfg.boxes()
        operands = {name: pointer if cfg.through_pointer(name) else
                    ir.TensorMapType(ir.ScalarType(dtype), boxes[name], cfg.swizzle(name)) for name in ("a", "b", "out")}
    return dict(operands, c_in=pointer, bias=pointer, cfg=cfg, block=cfg.threads)

