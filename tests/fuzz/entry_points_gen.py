"""What skc says about bad calls of its host entry points: a valid call of skc.blocks.matmul (bf16 and fp8 with its
scales), conv2d, attention, the torch operators (torch.ops.skc.*), a kernel's launch (kernel[grid, block](...)),
skc.autotune or skc.to_device, with one or two of its arguments put wrong: another dtype, rank or size, a view of
another layout (transposed, expanded, flipped, a negated or conjugated bit), an out that overlaps itself or an
input, a number, a list, a numpy array, None, a string, NaN or infinity, a bool, a huge int, a misspelled keyword,
an extra positional argument. Each call runs in the interpreter modelling sm_90a (the gpu_ entries: on the GPU host
path, with the fake driver, where nothing runs and a call is right when it launches) and is judged:
  right    the result is torch's own function of the same arguments (within the output type's rounding);
  refused  an skc error (SkcError) whose message names the argument put wrong, with no foreign exception's name;
  BAD      anything else: a foreign exception (TypeError, ValueError, RuntimeError, AttributeError, IndexError,
           KeyError, ZeroDivisionError, ...), an skc error that names no wrong argument, a wrong answer, a call past
           the timeout. A call torch refuses that skc answers is `taken` (listed, not BAD: skc takes numpy arrays,
           lists of sizes, ...), Python's own TypeError for a misspelled keyword of a plain function `python`,
           torch's dispatcher's refusal of an operator's argument of the wrong type `torch`, and a wrong answer
           of a class left as it is `known` (a huge attention scale).

    python tests/fuzz/entry_points_gen.py --seed 1 --count 2000      # the classes of BAD outcomes, one example each
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import math
import os
import random
import re
import signal
import sys
import warnings

import numpy as np

FOREIGN = ("TypeError", "ValueError", "RuntimeError", "AttributeError", "IndexError", "KeyError",
           "ZeroDivisionError", "OverflowError", "AssertionError", "NotImplementedError", "Traceback")


def torch_module():
    import torch
    return torch


# -- the wrong values ------------------------------------------------------------------------------------------------
def tensor_mutations(torch, x):
    """(label, value) of ways a tensor argument goes wrong (or merely changes layout: then the answer must hold)."""
    out = [("float32", lambda: x.float()), ("float64", lambda: x.double()), ("int32", lambda: x.to(torch.int32)),
           ("bool", lambda: x.to(torch.bool)), ("complex", lambda: x.to(torch.complex64)),
           ("fp8", lambda: x.float().to(torch.float8_e4m3fn)), ("rank+1", lambda: x[None]),
           ("rank-1", lambda: x.reshape(-1) if x.dim() > 1 else x[0]), ("empty", lambda: x[:0]),
           ("empty-last", lambda: x[..., :0]),
           ("transposed-layout", lambda: x.mT.contiguous().mT if x.dim() > 1 else x),
           ("transposed", lambda: x.mT if x.dim() > 1 else x), ("expanded", lambda: x[:1].expand_as(x)),
           ("strided", lambda: torch.repeat_interleave(x, 2, dim=-1)[..., ::2]),
           ("neg-bit", lambda: torch._neg_view(x)), ("conj-bit", lambda: x.to(torch.complex64).conj()),
           ("numpy", lambda: x.float().numpy()), ("numpy-flipped", lambda: x.float().numpy()[::-1]),
           ("list", lambda: x.tolist()), ("int", lambda: 3), ("float", lambda: 2.5), ("None", lambda: None),
           ("string", lambda: "x"), ("meta", lambda: x.to("meta")), ("grad", lambda: x.clone().requires_grad_()),
           ("scalar-tensor", lambda: x.reshape(-1)[0]), ("sliced-rows", lambda: x[1:] if x.dim() else x)]
    return out


SCALARS = [("nan", math.nan), ("inf", math.inf), ("-inf", -math.inf), ("bool", True), ("huge", 2 ** 70),
           ("string", "2"), ("None", None), ("list", [1]), ("negative", -1), ("zero", 0), ("float", 1.5),
           ("numpy-float", np.float32(0.5)), ("complex", 1j), ("tensor", "TENSOR")]


@dataclasses.dataclass
class Entry:
    """A host entry point: its valid arguments, a call, and torch's meaning of a call."""
    name: str
    make: object         # (torch, rng) -> (args list, kwargs dict, tensor names, scalar names)
    call: object         # (args, kwargs) -> result
    reference: object    # (args, kwargs) -> float32 torch result (raises where torch refuses)
    tolerance: float = 3e-2


# -- matmul ---------------------------------------------------------------------------------------------------------
def _ints(torch, rng, *shape, dtype=None):
    generator = torch.Generator().manual_seed(rng.randrange(1 << 30))
    return torch.randint(-2, 3, shape, generator=generator).to(dtype or torch.bfloat16)


def _float(torch, x):
    if isinstance(x, torch.Tensor):
        if x.dtype.is_complex or x.dtype == torch.bool or not x.dtype.is_floating_point:
            raise TypeError(f"torch: {x.dtype}")
        return x.resolve_neg().float()
    raise TypeError(f"torch takes tensors, found {type(x).__name__}")


def _real(value, default):
    if value is None:
        return default
    if isinstance(value, (bool, str, complex)) or not isinstance(value, (int, float, np.floating)):
        raise TypeError("torch: not a real scalar")
    return float(value)


def _activation(torch, y, activation):
    def gelu(t):   # (torch's gives NaN for +inf on the CPU; its limit, and skc's, is +inf)
        return torch.where(t == math.inf, t, torch.nn.functional.gelu(t))
    table = {None: lambda t: t, "relu": torch.relu, "gelu": gelu, "silu": torch.nn.functional.silu}
    if activation not in table:
        raise ValueError("torch: activation")
    return table[activation](y)


def matmul_make(torch, rng):
    M, N, K = rng.choice([(16, 16, 32), (8, 24, 16), (16, 8, 16)])
    kwargs = {"a": _ints(torch, rng, M, K), "b": _ints(torch, rng, K, N)}
    tensors = ["a", "b"]
    if rng.random() < 0.4:
        kwargs["bias"] = _ints(torch, rng, N)
        tensors.append("bias")
    if rng.random() < 0.4:
        kwargs["c"], kwargs["beta"] = _ints(torch, rng, M, N), rng.choice([1.0, 0.5, 2.0])
        tensors.append("c")
    if rng.random() < 0.3:
        kwargs["out"] = torch.full((M, N), math.nan, dtype=torch.bfloat16)
        tensors.append("out")
    if rng.random() < 0.4:
        kwargs["alpha"] = rng.choice([1.0, 0.5, 2.0])
    if rng.random() < 0.4:
        kwargs["activation"] = rng.choice(["relu", "gelu", "silu"])
    scalars = ["alpha", "beta", "activation", "autotune", "config", "stream"]
    return kwargs, tensors, scalars


def matmul_call(kwargs):
    import skc
    return skc.blocks.matmul(**kwargs)


def matmul_reference(torch, kwargs):
    a, b = _float(torch, kwargs["a"]), _float(torch, kwargs["b"])
    if {"a", "b"} - set(kwargs) or set(kwargs) - {"a", "b", "out", "bias", "c", "alpha", "beta", "activation",
                                                  "config", "stream", "autotune"}:
        raise TypeError("torch: keywords")
    y = _real(kwargs.get("alpha"), 1.0) * torch.matmul(a, b)
    if kwargs.get("c") is not None:
        y = y + _real(kwargs.get("beta"), 1.0) * _float(torch, kwargs["c"])
    elif _real(kwargs.get("beta"), 0.0) != 0.0:
        raise ValueError("torch: beta with no c")
    if kwargs.get("bias") is not None:
        y = y + _float(torch, kwargs["bias"])
    return _activation(torch, y, kwargs.get("activation"))


# -- fp8 matmul -----------------------------------------------------------------------------------------------------
def fp8_make(torch, rng):
    M, N, K = rng.choice([(16, 16, 32), (16, 32, 16)])
    a = _ints(torch, rng, M, K, dtype=torch.float8_e4m3fn)
    b = _ints(torch, rng, N, K, dtype=torch.float8_e4m3fn).T
    kwargs = {"a": a, "b": b, "scale_a": torch.tensor(0.5), "scale_b": torch.tensor(2.0)}
    tensors = ["a", "b", "scale_a", "scale_b"]
    if rng.random() < 0.5:
        kwargs["out_dtype"] = rng.choice([torch.bfloat16, torch.float16, torch.float32])
    if rng.random() < 0.3:
        kwargs["bias"] = _ints(torch, rng, N, dtype=kwargs.get("out_dtype", torch.bfloat16))
        if kwargs["bias"].dtype == torch.float32:
            del kwargs["bias"]
        else:
            tensors.append("bias")
    return kwargs, tensors, ["out_dtype", "use_fast_accum", "config", "activation"]


def fp8_reference(torch, kwargs):
    kwargs = dict(kwargs)
    a, b = kwargs.pop("a"), kwargs.pop("b")
    for key in ("config", "stream", "autotune", "activation"):
        if kwargs.pop(key, None) is not None:
            raise TypeError("torch: option")
    if kwargs.get("use_fast_accum") is not None:
        kwargs["use_fast_accum"] = bool(kwargs["use_fast_accum"]) if isinstance(kwargs["use_fast_accum"], bool) \
            else _fail()
    out_dtype = kwargs.get("out_dtype") or torch.bfloat16
    if not isinstance(out_dtype, torch.dtype) or out_dtype not in (torch.bfloat16, torch.float16, torch.float32):
        raise TypeError("torch: out_dtype")
    for name in ("a", "b"):
        x = a if name == "a" else b
        if not isinstance(x, torch.Tensor) or x.dtype not in (torch.float8_e4m3fn, torch.float8_e5m2) or x.dim() != 2:
            raise TypeError("torch: fp8")
    scale_a, scale_b = kwargs["scale_a"], kwargs["scale_b"]
    if not (isinstance(scale_a, torch.Tensor) and isinstance(scale_b, torch.Tensor)) or scale_a.numel() != 1 \
            or scale_b.numel() != 1 or scale_a.dtype != torch.float32 or scale_b.dtype != torch.float32:
        raise TypeError("torch: scales")
    if a.shape[1] % 16 or b.shape[1] % 16 or a.stride(1) != 1 or b.stride(0) != 1:
        raise TypeError("torch: _scaled_mm's layouts")
    y = (a.float() @ b.float()) * scale_a.float() * scale_b.float()
    if kwargs.get("bias") is not None:
        if not isinstance(kwargs["bias"], torch.Tensor) or kwargs["bias"].dtype != out_dtype:
            raise TypeError("torch: bias")
        y = y + kwargs["bias"].float()
    if set(kwargs) - {"scale_a", "scale_b", "out_dtype", "bias", "use_fast_accum", "out"}:
        raise TypeError("torch: keywords")
    return y


def _fail():
    raise TypeError("torch refuses")


# -- conv2d ---------------------------------------------------------------------------------------------------------
def conv_make(torch, rng):
    C, K = rng.choice([(8, 8), (16, 8)])
    cl = torch.channels_last
    kwargs = {"x": _ints(torch, rng, 1, C, 7, 6).to(memory_format=cl),
              "w": _ints(torch, rng, K, C, 3, 3).to(memory_format=cl)}
    tensors = ["x", "w"]
    if rng.random() < 0.3:
        kwargs["bias"] = _ints(torch, rng, K)
        tensors.append("bias")
    for name in ("stride", "padding", "dilation"):
        if rng.random() < 0.3:
            kwargs[name] = rng.choice([1, 2, (1, 2)]) if name != "padding" else rng.choice([0, 1, (1, 0)])
    if rng.random() < 0.2:
        kwargs["activation"] = "relu"
    return kwargs, tensors, ["stride", "padding", "dilation", "groups", "activation", "config", "stream"]


def conv_call(kwargs):
    import skc
    return skc.blocks.conv2d(**kwargs)


def conv_reference(torch, kwargs):
    kwargs = dict(kwargs)
    x, w = _float(torch, kwargs.pop("x")), _float(torch, kwargs.pop("w"))
    activation = kwargs.pop("activation", None)
    for key in ("config", "stream", "out"):
        kwargs.pop(key, None)
    for key, value in kwargs.items():
        if key == "bias":
            kwargs[key] = None if value is None else _float(torch, value)
        elif isinstance(value, bool) or isinstance(value, float) or value is None:
            raise TypeError("torch: bool or float geometry")   # (torch takes a bool stride as 1; skc refuses)
    y = torch.nn.functional.conv2d(x, w, **kwargs)
    return _activation(torch, y, activation)


# -- attention ------------------------------------------------------------------------------------------------------
def attention_make(torch, rng):
    S, Skv, H, Hkv = rng.choice([(16, 16, 1, 1), (8, 24, 2, 1), (16, 8, 2, 2)])
    q = _ints(torch, rng, 1, H, S, 64) / 4
    k, v = _ints(torch, rng, 1, Hkv, Skv, 64) / 4, _ints(torch, rng, 1, Hkv, Skv, 64) / 4
    kwargs = {"q": q, "k": k, "v": v}
    if rng.random() < 0.3:   # (the same values in (B, S, H, D))
        kwargs = {name: x.transpose(1, 2).contiguous() for name, x in kwargs.items()}
        kwargs["layout"] = "bshd"
    if rng.random() < 0.3:
        kwargs["return_lse"] = True
    if rng.random() < 0.4:
        kwargs["causal"] = True
    if rng.random() < 0.3:
        kwargs["scale"] = 0.25
    if rng.random() < 0.2:
        kwargs["out"] = torch.full_like(kwargs["q"], math.nan)
    tensors = ["q", "k", "v"] + (["out"] if "out" in kwargs else [])
    return kwargs, tensors, ["causal", "scale", "layout", "return_lse", "config", "stream"]


def attention_call(kwargs):
    import skc
    result = skc.blocks.attention(**kwargs)
    return result[0] if kwargs.get("return_lse") else result


def attention_reference(torch, kwargs):
    kwargs = dict(kwargs)
    q, k, v = (_float(torch, kwargs.pop(name)) for name in "qkv")
    layout = kwargs.pop("layout", "bhsd")
    if layout not in ("bhsd", "bshd"):
        raise ValueError("torch: layout")
    if layout == "bshd":
        q, k, v = (x.transpose(1, 2) for x in (q, k, v))
    causal = kwargs.pop("causal", False)
    if not isinstance(causal, bool):
        raise TypeError("torch: causal")
    scale = kwargs.pop("scale", None)
    if scale is not None:
        scale = _real(scale, None)
    for key in ("out", "config", "stream", "return_lse"):
        kwargs.pop(key, None)
    if kwargs:
        raise TypeError("torch: keywords")
    if q.dim() != 4 or k.dim() != 4 or q.shape[1] % k.shape[1]:
        raise ValueError("torch: shapes")
    y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale,
                                                         enable_gqa=q.shape[1] != k.shape[1])
    return y.transpose(1, 2) if layout == "bshd" else y


# -- the torch operators --------------------------------------------------------------------------------------------
def op_matmul_make(torch, rng):
    kwargs, tensors, scalars = matmul_make(torch, rng)
    kwargs.pop("out", None)
    return kwargs, [name for name in tensors if name != "out"], ["alpha", "beta", "activation"]


def op_matmul_call(kwargs):
    import skc.torch   # noqa: F401 (registers the operators)
    torch = torch_module()
    return torch.ops.skc.matmul(**kwargs)


def op_conv_call(kwargs):
    import skc.torch   # noqa: F401
    torch = torch_module()
    kwargs = dict(kwargs)
    for name in ("stride", "padding", "dilation"):
        if isinstance(kwargs.get(name), int) and not isinstance(kwargs.get(name), bool):
            kwargs[name] = (kwargs[name], kwargs[name])
    return torch.ops.skc.conv2d(**kwargs)


def op_conv_make(torch, rng):
    kwargs, tensors, scalars = conv_make(torch, rng)
    return kwargs, tensors, ["stride", "padding", "dilation", "groups", "activation"]


def op_attention_make(torch, rng):
    kwargs, tensors, scalars = attention_make(torch, rng)
    kwargs.pop("out", None)
    kwargs.pop("return_lse", None)
    return kwargs, ["q", "k", "v"], ["causal", "scale", "layout"]


def op_attention_call(kwargs):
    import skc.torch   # noqa: F401
    torch = torch_module()
    return torch.ops.skc.attention(**kwargs)


def op_scaled_make(torch, rng):
    kwargs, tensors, scalars = fp8_make(torch, rng)
    return kwargs, tensors, ["out_dtype", "use_fast_accum", "activation"]


def op_scaled_call(kwargs):
    import skc.torch   # noqa: F401
    return torch_module().ops.skc.scaled_matmul(**kwargs)


def op_matmul_out_make(torch, rng):
    kwargs, tensors, scalars = matmul_make(torch, rng)
    M, N = kwargs["a"].shape[0], kwargs["b"].shape[1]
    kwargs["out"] = torch.full((M, N), math.nan, dtype=torch.bfloat16)
    return kwargs, tensors + (["out"] if "out" not in tensors else []), ["alpha", "beta", "activation"]


def op_matmul_out_call(kwargs):
    import skc.torch   # noqa: F401
    torch_module().ops.skc.matmul_out(**kwargs)
    return kwargs.get("out")


def op_lse_call(kwargs):
    import skc.torch   # noqa: F401
    return torch_module().ops.skc.attention_with_lse(**kwargs)[0]


# -- skc.autotune ---------------------------------------------------------------------------------------------------
def autotune_make(torch, rng):
    kwargs, tensors, scalars = launch_make(torch, rng)
    kwargs.pop("positional", None)
    kwargs.pop("block")
    kwargs["configs"] = [{"block": 32}, {"block": 64}]
    kwargs["key"] = lambda out, x, alpha, n, grid: n
    return kwargs, tensors, ["configs", "key", "alpha", "n", "grid"]


def autotune_call(kwargs):
    import skc
    kwargs = dict(kwargs)
    configs, key = kwargs.pop("configs", None), kwargs.pop("key", None)

    torch = torch_module()
    out = kwargs.get("out")   # (an expanded out takes no copy: its launch is refused by name)
    first = out.clone() if isinstance(out, torch.Tensor) and 0 not in out.stride() else None

    def axpy(out, x, alpha, n, grid, block):   # (run again by the tuning: from out's first values each time)
        if first is not None:
            with torch.no_grad():
                out.copy_(first)
        launch_kernel()[grid, block](out, x, alpha, n)
    tuned = skc.autotune(configs=configs, key=key, timer=lambda run: (run(), 1.0)[1],
                         device_name=lambda: "interpreter")(axpy)
    tuned(**kwargs)
    return kwargs.get("out")


def autotune_reference(torch, kwargs):
    configs, key = kwargs.get("configs"), kwargs.get("key")
    if not (isinstance(configs, list) and configs and all(c in ({"block": 32}, {"block": 64}) for c in configs)) \
            or not callable(key):
        raise TypeError("configs or key")
    launch = {name: value for name, value in kwargs.items() if name not in ("configs", "key")}
    return launch_reference(torch, {**launch, "block": 32})


# -- kernel launches ------------------------------------------------------------------------------------------------
_KERNELS = {}
skc = None   # (the launched kernel's annotations name skc: it is imported into this module's globals)


def launch_kernel():
    global skc
    if not _KERNELS:
        import skc

        @skc.kernel
        def axpy(out: skc.Ptr[skc.f32], x: skc.Ptr[skc.f32], alpha: skc.f32, n: skc.i32):
            i = skc.block_id(0) * skc.block_dim(0) + skc.thread_id(0)
            if i < n:
                out[i] = alpha * x[i] + out[i]
        _KERNELS["axpy"] = axpy
    return _KERNELS["axpy"]


def launch_make(torch, rng):
    n = rng.choice([8, 13, 32])
    kwargs = {"out": torch.zeros(n), "x": torch.arange(n, dtype=torch.float32), "alpha": rng.choice([1.0, 2.0]),
              "n": n, "grid": rng.choice([1, 2, (2, 1)]), "block": rng.choice([32, (16, 1, 1)])}
    if rng.random() < 0.5:
        kwargs["positional"] = (rng.choice([2, 4]), ())
    return kwargs, ["out", "x"], ["alpha", "n", "grid", "block", "stream"]


def launch_call(kwargs):
    kwargs = dict(kwargs)
    grid, block = kwargs.pop("grid", 1), kwargs.pop("block", 32)
    out = kwargs.get("out")
    positional = kwargs.pop("positional", None)   # (how many leading arguments go by position, and any extra ones)
    if positional is None:
        launch_kernel()[grid, block](**kwargs)
    else:
        count, extra = positional
        names = [name for name in ("out", "x", "alpha", "n") if name in kwargs][:count]
        launch_kernel()[grid, block](*[kwargs.pop(name) for name in names], *extra, **kwargs)
    return out


def launch_reference(torch, kwargs):
    out, x = kwargs["out"], kwargs["x"]
    if not (isinstance(out, torch.Tensor) and isinstance(x, torch.Tensor)) or out.dtype != torch.float32 \
            or x.dtype != torch.float32 or out.dim() != 1 or x.dim() != 1:
        raise TypeError("torch: operands")
    if not out.is_contiguous():   # (its writes land in memory order: the comparison would need its storage)
        raise TypeError("unchecked: a non-contiguous out")
    x = _memory_order(torch, x)
    n, alpha = kwargs["n"], _real(kwargs["alpha"], None)
    positional = kwargs.get("positional", (0, ()))
    if not (isinstance(positional, tuple) and positional[1] == () and kwargs.get("stream") is None):
        raise TypeError("unchecked: positional arguments or a stream")
    if isinstance(n, bool) or not isinstance(n, int) or set(kwargs) - {"out", "x", "alpha", "n", "grid", "block",
                                                                           "positional"}:
        raise TypeError("torch: n")
    grid, block = kwargs["grid"], kwargs["block"]
    grid = grid if isinstance(grid, int) and not isinstance(grid, bool) else (
        grid[0] if isinstance(grid, tuple) and grid and all(type(g) is int for g in grid) else _fail())
    block = block if isinstance(block, int) and not isinstance(block, bool) else (
        block[0] if isinstance(block, tuple) and block and all(type(g) is int for g in block) else _fail())
    if grid <= 0 or block <= 0 or n < 0:
        raise ValueError("torch: sizes")
    covered = min(n, grid * block, x.numel(), out.numel())
    if min(n, grid * block) > min(x.numel(), out.numel()):
        raise IndexError("out of bounds")
    y = out.clone()
    y[:covered] = alpha * x[:covered] + out[:covered]
    return y


def _memory_order(torch, x):
    """What a pointer to x's first element reads, in memory order (tests/runtime/test_strided_pointers.py): its
    elements from the first to the last, gaps included; an expanded x's one element."""
    if x.is_contiguous() or x.numel() <= 1:
        return x
    if x.stride(0) <= 0:
        return x[:1] if x.stride(0) == 0 else _fail()
    return x.as_strided(((x.numel() - 1) * x.stride(0) + 1,), (1,))


# -- to_device ------------------------------------------------------------------------------------------------------
def to_device_make(torch, rng):
    return {"array": np.arange(6, dtype=np.float32).reshape(2, 3)}, ["array"], ["dtype", "device"]


def to_device_call(kwargs):
    import skc
    return skc.to_device(**kwargs).numpy()


def to_device_reference(torch, kwargs):
    array = kwargs["array"]
    if not isinstance(array, (np.ndarray, torch.Tensor)) or set(kwargs) - {"array", "dtype", "device"}:
        raise TypeError("numpy: array")
    if kwargs.get("dtype") is not None or kwargs.get("device") is not None:
        raise TypeError("options")
    return torch.as_tensor(np.asarray(array)).float()


# -- the GPU host path, with the fake driver (nothing runs: a call is right when it launches, and is BAD when it
# launches with an argument no GPU call takes) ----------------------------------------------------------------------
def fake_mutations(x):
    """(label, value) of ways a FakeTensor argument goes wrong; those whose label ends in '!' no call may take."""
    from skc.runtime.fake_cuda import FakeTensor
    return [("float32!", lambda: FakeTensor(x.shape, "float32")), ("int32!", lambda: FakeTensor(x.shape, "int32")),
            ("rank+1!", lambda: FakeTensor((1, *x.shape), x.dtype)), ("empty", lambda: FakeTensor((0, *x.shape[1:]))),
            ("numpy!", lambda: np.zeros(x.shape, np.float16)), ("None!", lambda: None), ("int!", lambda: 3),
            ("list!", lambda: [[1.0]]), ("string!", lambda: "x"), ("transposed", lambda: x.T),
            ("misaligned", lambda: FakeTensor(x.shape, x.dtype, address=x.address + 2)),
            ("odd-strides", lambda: FakeTensor(x.shape, x.dtype, strides=(x.shape[-1] + 3, 1)[-len(x.shape):]))]


def gpu_matmul_make(torch, rng):
    from skc.runtime.fake_cuda import FakeTensor
    M, N, K = rng.choice([(128, 128, 64), (64, 256, 128)])
    kwargs = {"a": FakeTensor((M, K)), "b": FakeTensor((K, N))}
    if rng.random() < 0.5:
        kwargs["out"] = FakeTensor((M, N))
    if rng.random() < 0.3:
        kwargs["bias"] = FakeTensor((N,))
    return kwargs, list(kwargs), ["alpha", "beta", "activation", "stream", "config"]


def gpu_launch_make(torch, rng):
    from skc.runtime.fake_cuda import FakeTensor
    n = rng.choice([64, 100])
    kwargs = {"out": FakeTensor((n,), "float32"), "x": FakeTensor((n,), "float32"), "alpha": 2.0, "n": n,
              "grid": 2, "block": 64}
    return kwargs, ["out", "x"], ["alpha", "n", "grid", "block", "stream"]


def refused_on_gpu(entry: str, name: str, label: str) -> bool:
    """Whether no GPU call takes argument `name` changed by `label` (host memory and non-arrays never; None for an
    operand the call needs; a type other than the one the kernel reads)."""
    if label in ("numpy!", "int!", "list!", "string!"):
        return True
    needed = ("a", "b") if entry == "gpu_matmul" else ("out", "x")
    if label == "None!":
        return name in needed
    if label == "int32!":
        return name in needed + ("out",)
    return label == "float32!" and entry == "gpu_matmul" and name in ("a", "b", "out")


def on_fake_gpu(call):
    def run(kwargs):
        from skc.runtime import fake_cuda
        with fake_cuda.installed() as driver:
            call(kwargs)
            return len(driver.launches)
    return run


def no_reference(torch, kwargs):
    raise TypeError("unchecked: nothing runs")


ENTRIES = {
    "matmul": Entry("matmul", matmul_make, matmul_call, matmul_reference),
    "fp8": Entry("fp8", fp8_make, matmul_call, fp8_reference, 6e-2),
    "conv2d": Entry("conv2d", conv_make, conv_call, conv_reference),
    "attention": Entry("attention", attention_make, attention_call, attention_reference, 3e-2),
    "op_matmul": Entry("op_matmul", op_matmul_make, op_matmul_call, matmul_reference),
    "op_conv2d": Entry("op_conv2d", op_conv_make, op_conv_call, conv_reference),
    "op_attention": Entry("op_attention", op_attention_make, op_attention_call, attention_reference),
    "launch": Entry("launch", launch_make, launch_call, launch_reference, 1e-6),
    "to_device": Entry("to_device", to_device_make, to_device_call, to_device_reference, 0),
    "op_scaled_matmul": Entry("op_scaled_matmul", op_scaled_make, op_scaled_call, fp8_reference, 6e-2),
    "op_matmul_out": Entry("op_matmul_out", op_matmul_out_make, op_matmul_out_call, matmul_reference),
    "op_attention_with_lse": Entry("op_attention_with_lse", op_attention_make, op_lse_call, attention_reference),
    "autotune": Entry("autotune", autotune_make, autotune_call, autotune_reference, 1e-6),
    "gpu_matmul": Entry("gpu_matmul", gpu_matmul_make, on_fake_gpu(matmul_call), no_reference),
    "gpu_launch": Entry("gpu_launch", gpu_launch_make, on_fake_gpu(launch_call), no_reference),
}


# -- drawing a case --------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Case:
    entry: str
    seed: int
    changes: list       # (argument, label)
    kwargs: dict


def mutate(torch, rng, kwargs, tensors, scalars):
    """One change to kwargs in place: its (argument name, label)."""
    roll = rng.random()
    if roll < 0.5 and tensors:
        name = rng.choice(tensors)
        fake = type(kwargs[name]).__name__ == "FakeTensor"
        label, make = rng.choice((fake_mutations if fake else lambda x: tensor_mutations(torch, x))(kwargs[name]))
        try:
            kwargs[name] = make()
        except Exception:      # (a mutation torch cannot make of this tensor: a plain None then)
            label, kwargs[name] = "None", None
        return name, label
    if roll < 0.85:
        name = rng.choice(scalars)
        label, value = rng.choice(SCALARS)
        kwargs[name] = torch.tensor(2.0) if value == "TENSOR" else value
        return name, label
    if roll < 0.92 and tensors:
        name, other = rng.choice(tensors), rng.choice(tensors)
        if name != other and isinstance(kwargs.get(other), torch.Tensor):
            kwargs[name] = kwargs[other]
            return name, f"alias-of-{other}"
        x = kwargs.get(name)
        if isinstance(x, torch.Tensor) and x.dim() >= 1 and x.numel():
            kwargs[name] = x.reshape(-1)[:1].expand(x.shape)
            return name, "self-overlapping"
        return name, "unchanged"
    if roll < 0.97:
        name = rng.choice(list(kwargs))
        wrong = name[:-1] + name[-1].upper() if len(name) > 1 else name + "_"
        kwargs[wrong] = kwargs.pop(name)
        return wrong, f"misspelled-{name}"
    if "positional" in kwargs:   # (a launch: one argument too many by position, or one missing)
        count, _ = kwargs["positional"]
        if rng.random() < 0.5:
            kwargs["positional"] = (count, (7,))
            return "positional", "extra-positional"
        name = rng.choice(["out", "x", "alpha", "n"])
        kwargs.pop(name, None)
        return name, "missing"
    kwargs["extra"] = 7   # (a keyword no entry point takes)
    return "extra", "unknown-keyword"


def draw(seed: int, entries=None) -> Case:
    torch = torch_module()
    rng = random.Random(seed)
    entry = rng.choice(sorted(entries or ENTRIES))
    kwargs, tensors, scalars = ENTRIES[entry].make(torch, rng)
    changes = [mutate(torch, rng, kwargs, [t for t in tensors if t in kwargs], scalars)]
    if rng.random() < 0.25:
        changes.append(mutate(torch, rng, kwargs, [t for t in tensors if t in kwargs], scalars))
    return Case(entry, seed, changes, kwargs)


# -- judging --------------------------------------------------------------------------------------------------------
class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout()


def names_argument(message: str, changes, names=()) -> bool:
    """Whether the message names an argument put wrong, or another of the call's (`names`) as the one at odds with
    it (a's rows changed, "c has shape (8, 24), expected (1, 8, 24)")."""
    first = message.split("\nhint")[0]
    for name in names:
        word = re.escape(name)
        if re.search(rf"(?<![A-Za-z_]){word}(?:'s| has | is | of | \(| must |: )|'{word}'", first):
            return True
    for name, label in changes:
        if label == "extra-positional" and re.search(r"takes \d+ arguments?", first):
            return True
        if label.startswith("misspelled-") or label == "unknown-keyword":
            if name in first or label[len("misspelled-"):] in first:   # (the wrong name, or the missing one)
                return True
            continue
        if re.search(rf"(?<![A-Za-z_]){re.escape(name)}(?![A-Za-z_(])", first):
            return True
        if label.startswith("alias-of-") and label[len("alias-of-"):] in first:
            return True
    return False


def _as_float(torch, result):
    if isinstance(result, np.ndarray):
        return torch.from_numpy(np.asarray(result, np.float32))
    if isinstance(result, torch.Tensor):
        return result.detach().float()
    raise TypeError(f"result is a {type(result).__name__}")


def judge(case: Case, timeout: float = 60.0):
    """(outcome, class, detail): outcome is 'right', 'refused', 'taken', 'python' or 'BAD'."""
    import skc
    torch = torch_module()
    entry = ENTRIES[case.entry]
    try:
        want = entry.reference(torch, case.kwargs)
    except Exception as error:
        want = error
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(int(timeout))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = entry.call(case.kwargs)
    except Timeout:
        return "BAD", "timeout", "past the timeout"
    except skc.SkcError as error:
        message = str(error)
        foreign = [word for word in FOREIGN if word in message]
        if foreign:
            return "BAD", f"skc error with {foreign[0]} in it", message.splitlines()[0][:300]
        if not names_argument(message, case.changes, case.kwargs):
            return "BAD", "skc error naming no wrong argument", message.splitlines()[0][:300]
        return "refused", type(error).__name__, message.splitlines()[0][:200]
    except TypeError as error:
        text = str(error)
        if re.search(r"got an unexpected keyword argument|missing \d+ required|takes .* positional", text) and \
                any(label.startswith("misspelled-") or label == "unknown-keyword" for _, label in case.changes):
            return "python", "Python's own call check", text[:200]
        return "BAD", f"foreign {type(error).__name__}", text.splitlines()[0][:300] if text else ""
    except Exception as error:
        text = str(error)
        if type(error).__name__ == "RuntimeError" and re.search(r"Expected a value of type .* for argument|Unknown "
                                                                r"keyword argument .* for operator|missing value for "
                                                                r"argument|[Ee]xpected at most \d+ argument", text):
            return "torch", "torch's operator schema check", text.splitlines()[0][:200]
        return "BAD", f"foreign {type(error).__name__}", text.splitlines()[0][:300] if text else ""
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    if case.entry.startswith("gpu_"):
        last = dict(case.changes)   # (a second change of the same argument replaces the first)
        wrong = [f"{name}={label}" for name, label in last.items() if refused_on_gpu(case.entry, name, label)]
        if wrong:
            return "BAD", "a GPU call took an argument it cannot", ", ".join(wrong)
        return "right", "launched", ""
    if isinstance(want, Exception):
        return "taken", "skc answers where torch refuses", f"torch: {want}"[:200]
    try:
        got = _as_float(torch, got)
    except TypeError as error:
        return "BAD", "a result of another kind", str(error)
    if got.shape != want.shape:
        return "BAD", "wrong shape", f"{tuple(got.shape)} for {tuple(want.shape)}"
    close = torch.allclose(got, want.float(), rtol=entry.tolerance, atol=entry.tolerance, equal_nan=True)
    if not close:
        error = (got - want).abs().nan_to_num(math.inf).max().item()
        if case.entry in ("attention", "op_attention", "op_attention_with_lse") and \
                abs(_real(case.kwargs.get("scale"), 0.0)) > 1e3:
            # the online softmax's exp2(fma(S, c, -m·c)) (softmax.py) loses m·c's rounding, 2^-24 of it, which
            # reaches exp2's units for scaled scores past 2^20 or so: left as it is (the attention kernel's choice)
            return "known", "a huge attention scale", f"largest error {error:.3g}"
        return "BAD", "wrong answer", f"largest error {error:.3g}"
    return "right", "right", ""


def describe(case: Case) -> str:
    return f"{case.entry} seed {case.seed}: " + ", ".join(f"{name}={label}" for name, label in case.changes)


def use_interpreter():
    """The interpreter modelling sm_90a as the current device, for the process (tests/blocks/conftest.py's fixture
    does it for a test)."""
    import skc
    from skc.runtime import devices
    import tempfile
    os.environ["SKC_INTERPRETER_TARGET"] = "sm_90a"
    skc.set_cache_dir(tempfile.mkdtemp(prefix="skc-entry-points-"))   # (autotune's winners: never the user's cache)
    devices._selected[0] = devices.Device("interpreter")
    devices._target_of.cache_clear()
    assert skc.current_device().target.name == "sm_90a"


def run(seed: int, count: int, entries=None, timeout: float = 60.0, quiet: bool = False, verbose: bool = False):
    """Judge `count` drawn cases: {outcome: [(case, class, detail)]}, the first of each class of outcome printed
    (unless quiet) as it is found."""
    found, seen = collections.defaultdict(list), set()
    for index in range(count):
        with warnings.catch_warnings():   # (torch's, of a complex tensor made real by a mutation)
            warnings.simplefilter("ignore")
            case = draw(seed * 1_000_003 + index, entries)
        outcome, kind, detail = judge(case, timeout)
        found[outcome].append((case, kind, detail))
        if verbose:
            print(outcome, describe(case), kind, detail, flush=True)
        key = (case.entry, outcome, kind, re.sub(r"\d+", "N", detail)[:80])
        if not quiet and outcome not in ("right", "refused") and key not in seen:
            seen.add(key)
            print(f"{outcome}: {kind}: {describe(case)}: {detail}", flush=True)
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--entry", action="append", help="only these entry points (repeatable)")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    use_interpreter()
    found = run(args.seed, args.count, args.entry, args.timeout, verbose=args.verbose)
    print({outcome: len(cases) for outcome, cases in found.items()})
    return 1 if found["BAD"] else 0


if __name__ == "__main__":
    sys.exit(main())
