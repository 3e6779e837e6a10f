"""The GEMM's host side: `matmul(a, b, ...)` reads the operands' layouts, picks a configuration for the device's
target and launches matmul_kernel's persistent grid.

A call is one dict lookup in the common case: a tuple of cheap facts (device; each operand's type, shape,
strides and dtype; the epilogue's flags; the config) finds a ready plan made, and fully checked, by the first
call with those facts. A plan holds the launcher of its specialization, its grid and its tensor maps' geometry;
on Hopper it encodes a tensor map only for an address it has not seen (cached per address and geometry) and
writes the arguments straight into the launcher. Batched operands (B x M x K with K x N, or B x K x N) fold
into one GEMM when they can and launch one GEMM per batch otherwise.
"""
from __future__ import annotations

import functools
import os

import skc
from skc import ir

from .amd_config import AmdMatmulConfig
from .config import MatmulConfig
from .epilogue import EpilogueSpec
from .gemm import matmul_kernel
from .matmul_tuning import tune
from .scheduler import TileScheduler

_PLANS: dict = {}        # facts of a call -> its plan
_MAX_PLANS = 1024

# Tuned configurations for known problems: (target name, M bucket, N bucket, K bucket, dtype) -> the fields that
# differ from MatmulConfig.for_problem's choice (buckets: the next power of two). Filled from `skc.autotune` runs.
TUNED: dict = {}


def _bucket(size: int) -> int:
    return 1 << max(0, int(size) - 1).bit_length()


# -- cheap facts of an operand (the plan key) -------------------------------------------------------------------
def _torch_facts(x):
    return (x.shape, x.stride(), x.dtype, x.device)


def _numpy_facts(x):
    return (x.shape, x.strides, x.dtype)


def _array_facts(x):
    return (x.shape, x.dtype, x.device)


def _other_facts(x):
    return (x.shape, getattr(x, "strides", None), str(getattr(x, "dtype", None)))


_FACTS: dict = {}


def _facts_function(kind: type):
    found = _FACTS.get(kind)
    if found is None:
        if kind.__module__.split(".")[0] == "torch" and hasattr(kind, "data_ptr"):
            found = _torch_facts
        elif kind.__module__.split(".")[0] == "numpy" and hasattr(kind, "ctypes"):
            found = _numpy_facts
        elif isinstance(kind, type) and issubclass(kind, skc.DeviceArray):
            found = _array_facts
        else:
            found = _other_facts
        _FACTS[kind] = found
    return found


def _facts(x):
    kind = type(x)
    function = _FACTS.get(kind) or _facts_function(kind)
    return (kind, function(x))


def matmul(a, b, out=None, *, bias=None, c=None, alpha=None, beta=None, activation=None, config=None,
           stream=None, autotune=None):
    """out = activation(alpha · a @ b + beta · c + bias) on the current device: a Hopper GPU, an AMD CDNA GPU,
    or the interpreter modelling either.

    a (M x K) and b (K x N) are bf16 or fp16 tensors, row-major or transposed views of row-major ones;
    out, c and bias are row-major. Rows are copied 16 bytes at a time (TMA on Hopper, vector loads on AMD):
    K and N (and M for a transposed a) must be multiples of 8. Batched: a of B x M x K with b of K x N or
    B x K x N (out B x M x N). `config` is a MatmulConfig (Hopper) or an AmdMatmulConfig (AMD); by default one
    comes from the tuning table, or from `skc.autotune` when `autotune=True` (or SKC_AUTOTUNE=1), or is chosen
    for the problem. The launch goes to `stream`, by default the current stream of the operands' framework."""
    device = skc.current_device()
    key = (device, _facts(a), _facts(b), out if out is None else _facts(out), c if c is None else _facts(c),
           bias if bias is None else _facts(bias), alpha is None, activation, config, autotune)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _plan(device, a, b, out, c, bias, alpha, activation, config, autotune)
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        _PLANS[key] = plan
    return plan(a, b, out, c, bias, alpha, beta, stream)


# -- making a plan (every check happens here, once per set of facts) ---------------------------------------------
def _plan(device, a, b, out, c, bias, alpha, activation, config, autotune):
    if len(a.shape) == 3 or len(b.shape) == 3:
        return _batched_plan(a, b, out, c)
    if len(a.shape) != 2 or len(b.shape) != 2:
        raise skc.LaunchError(f"matmul takes 2-D operands (or a batch: B x M x K times K x N or B x K x N), found "
                              f"shapes {tuple(a.shape)} and {tuple(b.shape)}")
    dtype = operand_dtype_name(a)
    if operand_dtype_name(b) != dtype:
        raise skc.LaunchError(f"a is {dtype} and b is {operand_dtype_name(b)}; matmul needs one type")
    M, K = a.shape
    if b.shape[0] != K:
        raise skc.LaunchError(f"cannot multiply {tuple(a.shape)} by {tuple(b.shape)}: inner dimensions differ")
    N = b.shape[1]
    a_store, a_k_major = _storage(a, True)
    b_store, b_k_major = _storage(b, False)
    if out is not None and tuple(out.shape) != (M, N):
        raise skc.LaunchError(f"out has shape {tuple(out.shape)}; the product of {tuple(a.shape)} and "
                              f"{tuple(b.shape)} is {(M, N)}")
    spec = EpilogueSpec(alpha=alpha is not None, beta=c is not None, bias=bias is not None, activation=activation)
    try:
        spec.check()
    except ValueError as error:
        raise skc.LaunchError(f"matmul: {error}") from None
    problem = (M, N, K, dtype, a_k_major, b_k_major)
    if config is not None and (config.dtype, config.a_k_major, config.b_k_major) != problem[3:]:
        raise skc.LaunchError(f"the config is for {config.dtype} with a_k_major={config.a_k_major}, b_k_major="
                              f"{config.b_k_major}; the operands are {dtype} with a_k_major={a_k_major}, "
                              f"b_k_major={b_k_major}")
    cfg = config or _choose_config(device, problem, spec, autotune, (a, b, out, c, bias))
    transposed = (a_store is not a, b_store is not b)
    if device.kind == "cuda" and isinstance(cfg, MatmulConfig) and cfg.loader != "vector":
        return _TmaPlan(device, a_store, b_store, problem, cfg, transposed)
    return _Plan(device, problem, cfg, transposed)


class _Plan:
    """A checked problem and its configuration; each call builds the launch arguments (interpreter, AMD, and
    the vector loader, whose costs lie elsewhere)."""

    def __init__(self, device, problem, cfg, transposed):
        self.device, self.problem, self.cfg, self.transposed = device, problem, cfg, transposed
        self.out_shape = problem[:2]

    def __call__(self, a, b, out, c, bias, alpha, beta, stream):
        if out is None:
            out = _empty_like(a, self.out_shape)
        a_store = a.T if self.transposed[0] else a
        b_store = b.T if self.transposed[1] else b
        extras = (c if c is not None else out, bias if bias is not None else out,
                  float(alpha if alpha is not None else 1.0), float(beta if beta is not None else 0.0))
        launch = _launch_mfma if self.device.target.has("mfma") else _launch_wgmma
        launch(self.device, a_store, b_store, out, self.problem, extras, self.cfg, stream)
        return out


class _TmaPlan:
    """The Hopper TMA GEMM of one geometry, ready: the specialization's launcher and grid, and the tensor maps'
    checked geometry, encoded once per address seen."""

    def __init__(self, device, a_store, b_store, problem, cfg, transposed):
        M, N, K = problem[:3]
        self.out_shape, self.M, self.N, self.K = (M, N), M, N, K
        boxes = cfg.boxes()
        self.templates = [skc.TensorMap(a_store, boxes["a"]), skc.TensorMap(b_store, boxes["b"]), None]
        self.out_box = boxes["out"]
        self.cfg, self.device = cfg, device
        self.grid = TileScheduler.grid(M, N, cfg.tile_m, cfg.tile_n, device.multiprocessors, cfg.cluster_m)
        self.encoded = [{}, {}, {}]  # per operand: address -> EncodedTensorMap
        self.pointers = [t.pointer_function() for t in self.templates[:2]] + [None]
        self.ready = None
        for template in self.templates[:2]:
            template.tensor = None  # a plan keeps the geometry, never the caller's tensors alive

    def _map(self, which: int, tensor):
        pointer = self.pointers[which](tensor)
        found = self.encoded[which].get(pointer)
        if found is None:
            found = self.templates[which].encoded_at(pointer)  # checks the address's alignment
            cache = self.encoded[which]
            if len(cache) >= 64:
                cache.clear()
            cache[pointer] = found
        return found

    def __call__(self, a, b, out, c, bias, alpha, beta, stream):
        if out is None:
            out = _empty_like(a, self.out_shape)
        if self.templates[2] is None:  # out's geometry is known at the first call (checked then, once)
            self.templates[2] = skc.TensorMap(out, self.out_box)
            self.pointers[2] = self.templates[2].pointer_function()
            self.templates[2].tensor = None
        args = (self._map(0, a), self._map(1, b), self._map(2, out), self.M, self.N, self.K,
                out if c is None else c, out if bias is None else bias,
                1.0 if alpha is None else float(alpha), 0.0 if beta is None else float(beta))
        ready = self.ready
        if ready is None:
            ready = self.ready = matmul_kernel[self.grid, self.cfg.threads].ready(*args, self.cfg)
        ready(args, stream)
        return out


def _launch_wgmma(device, a, b, out, problem, extras, cfg: MatmulConfig, stream=None):
    M, N, K = problem[:3]
    boxes = cfg.boxes()
    if cfg.loader == "vector":  # the producer reads the operands through plain pointers
        maps = [a, b, skc.TensorMap(out, boxes["out"])]
    else:
        maps = [skc.TensorMap(a, boxes["a"]), skc.TensorMap(b, boxes["b"]), skc.TensorMap(out, boxes["out"])]
    grid = TileScheduler.grid(M, N, cfg.tile_m, cfg.tile_n, device.multiprocessors, cfg.cluster_m)
    matmul_kernel[grid, cfg.threads](*maps, M, N, K, *extras, cfg, stream=stream)


def _launch_mfma(device, a, b, out, problem, extras, cfg: AmdMatmulConfig, stream=None):
    M, N, K, _, a_k_major, b_k_major = problem
    for what, extent, name in ((a_k_major, K, "K"), (not a_k_major, M, "M (a is transposed)"),
                               (b_k_major, K, "K (b is transposed)"), (not b_k_major, N, "N")):
        if what and extent % 8:
            raise skc.LaunchError(f"the AMD GEMM copies 16-byte rows: {name} must be a multiple of 8, found {extent}")
    if _storage(out, True)[0] is not out:
        raise skc.LaunchError("the AMD GEMM writes a row-major out, found a transposed view")
    grid = TileScheduler.grid(M, N, cfg.tile_m, cfg.tile_n, device.multiprocessors * cfg.blocks_per_cu)
    matmul_kernel[grid, cfg.threads](a, b, out, M, N, K, *extras, cfg, stream=stream)


# -- batches ------------------------------------------------------------------------------------------------------
def _batched_plan(a, b, out, c):
    """A batch: a (B x M x K) with b (K x N) folds B into M when a is row-major and contiguous (one GEMM of
    (B·M) x K); otherwise (b of B x K x N, or a strided a) one GEMM per batch, launched from the host (the tile
    scheduler has no batch coordinate yet)."""
    if len(a.shape) not in (2, 3) or len(b.shape) not in (2, 3):
        raise skc.LaunchError(f"matmul takes 2-D operands or a batch of them (3-D), found shapes {tuple(a.shape)} "
                              f"and {tuple(b.shape)}")
    for x in (a, b, out, c):
        if x is not None and len(x.shape) == 3 and not (hasattr(x, "reshape") and hasattr(type(x), "__getitem__")):
            raise skc.LaunchError(f"matmul: batched operands must be tensors or arrays that can be viewed per batch "
                                  f"(torch, cupy, numpy), found {type(x).__name__}; pass 2-D operands per batch")
    batch = a.shape[0] if len(a.shape) == 3 else b.shape[0]
    for name, x in (("a", a), ("b", b)):
        if len(x.shape) == 3 and x.shape[0] != batch:
            raise skc.LaunchError(f"matmul: the batch sizes differ: a is {tuple(a.shape)}, b is {tuple(b.shape)}")
    M, K = a.shape[-2:]
    if b.shape[-2] != K:
        raise skc.LaunchError(f"cannot multiply {tuple(a.shape)} by {tuple(b.shape)}: inner dimensions differ")
    N = b.shape[-1]
    for name, x in (("out", out), ("c", c)):
        if x is not None and tuple(x.shape) != (batch, M, N):
            raise skc.LaunchError(f"matmul: {name} has shape {tuple(x.shape)}; the batched product is "
                                  f"{(batch, M, N)}")
    foldable = len(b.shape) == 2 and _row_major(a) and all(x is None or _row_major(x) for x in (out, c))
    if foldable:
        return _FoldedBatch(batch, M, N, K)
    return _LoopedBatch(batch, M, N, len(a.shape) == 3, len(b.shape) == 3)


def _strides(x) -> tuple:
    stride = getattr(x, "stride", None)
    if callable(stride):
        return tuple(stride())
    if hasattr(x, "strides"):
        return tuple(s // x.itemsize for s in x.strides)
    shape = tuple(x.shape)  # skc arrays are row-major
    return tuple(int(_product(shape[i + 1:])) for i in range(len(shape)))


def _product(values) -> int:
    total = 1
    for v in values:
        total *= int(v)
    return total


def _row_major(x) -> bool:
    shape = tuple(x.shape)
    return _strides(x) == tuple(_product(shape[i + 1:]) for i in range(len(shape)))


def _reshape(x, shape):
    return x.reshape(shape)


class _FoldedBatch:
    def __init__(self, batch, M, N, K):
        self.batch, self.M, self.N, self.K = batch, M, N, K

    def __call__(self, a, b, out, c, bias, alpha, beta, stream):
        rows = self.batch * self.M
        if out is None:
            out = _empty_like(a, (self.batch, self.M, self.N))
        flat_c = _reshape(c, (rows, self.N)) if c is not None else None
        matmul(_reshape(a, (rows, self.K)), b, _reshape(out, (rows, self.N)), bias=bias, c=flat_c, alpha=alpha,
               beta=beta, stream=stream)
        return out


class _LoopedBatch:
    def __init__(self, batch, M, N, a_batched, b_batched):
        self.batch, self.M, self.N, self.a_batched, self.b_batched = batch, M, N, a_batched, b_batched

    def __call__(self, a, b, out, c, bias, alpha, beta, stream):
        if out is None:
            out = _empty_like(a, (self.batch, self.M, self.N))
        for i in range(self.batch):
            matmul(a[i] if self.a_batched else a, b[i] if self.b_batched else b, out[i], bias=bias,
                   c=c[i] if c is not None else None, alpha=alpha, beta=beta, stream=stream)
        return out


# -- configurations -------------------------------------------------------------------------------------------------
def _storage(x, k_major_if_row_major: bool):
    """(the row-major array holding x's elements, whether that makes the operand K-major)."""
    strides = x.stride() if callable(getattr(x, "stride", None)) else tuple(
        s // x.itemsize for s in getattr(x, "strides", ()))
    if len(x.shape) != 2:
        raise skc.LaunchError(f"matmul takes 2-D operands, found shape {tuple(x.shape)}")
    rows, cols = x.shape
    if strides and tuple(strides) == (1, rows) and not (rows == 1 or cols == 1):
        return x.T, not k_major_if_row_major  # a transposed view of a row-major array
    if strides and strides[1] != 1 and cols > 1:
        raise skc.LaunchError("matmul's operands must be row-major or transposed views of row-major arrays")
    return x, k_major_if_row_major


def operand_dtype_name(x) -> str:
    name = str(x.dtype)
    for candidate, label in (("bfloat16", "bf16"), ("bf16", "bf16"), ("float16", "f16"), ("f16", "f16")):
        if candidate in name:
            return label
    raise skc.LaunchError(f"matmul multiplies bf16 or fp16 operands, found {x.dtype}")


def _autotune_requested(autotune) -> bool:
    if autotune is not None:
        return bool(autotune)
    return os.environ.get("SKC_AUTOTUNE", "") not in ("", "0")


def _choose_config(device, problem, spec, autotune, operands):
    """The tuning table's entry for this problem, else (when asked) an autotuned one, else the default."""
    target = device.target
    M, N, K, dtype = problem[:4]
    overrides = TUNED.get((target.name, _bucket(M), _bucket(N), _bucket(K), dtype))
    if overrides is not None and not target.has("mfma"):
        return _config(target, *problem, spec, tuple(sorted(overrides.items())))
    if _autotune_requested(autotune) and not device.is_interpreter and not target.has("mfma"):
        return tune(device, problem, spec, operands, matmul)
    return _config(target, *problem, spec)


@functools.lru_cache(maxsize=256)
def _config(target, M, N, K, dtype, a_k_major, b_k_major, spec, overrides=()):
    if target.has("mfma"):
        return AmdMatmulConfig.for_problem(M, N, K, dtype, a_k_major, b_k_major, epilogue=spec, **dict(overrides))
    return MatmulConfig.for_problem(M, N, K, dtype, a_k_major, b_k_major, target.max_shared_bytes, epilogue=spec,
                                    **dict(overrides))


def compile_arguments(target, M: int = 4096, N: int = 4096, K: int = 4096, dtype: str = "bf16", config=None) -> dict:
    """matmul_kernel's arguments for `Kernel.compile` without data (skc compile, tests): the configuration
    matmul() picks for an M x N x K problem on `target` (or `config`), tensor-map types of its boxes (Hopper)
    or pointer types (AMD) for the operands, and the block size."""
    target = skc.get_target(target)
    pointer = skc.Ptr[skc.bf16 if dtype == "bf16" else skc.f16]
    cfg = config or _config(target, M, N, K, dtype, True, False, EpilogueSpec())
    if target.has("mfma"):
        operands = {"a": pointer, "b": pointer, "out": pointer}
    else:
        boxes = cfg.boxes()
        operands = {name: ir.TensorMapType(ir.ScalarType(dtype), boxes[name], 128) for name in ("a", "b", "out")}
    return dict(operands, c_in=pointer, bias=pointer, cfg=cfg, block=cfg.threads)


def _empty_like(a, shape):
    if hasattr(a, "new_empty"):  # torch
        return a.new_empty(shape)
    if isinstance(a, skc.DeviceArray):
        return skc.empty(shape, a.dtype)
    import numpy as np

    return np.empty(shape, a.dtype)
