"""conv2d, the host side: the GEMM composition (skc/blocks/gemm.py) with its loader swapped for the im2col
loader (skc/blocks/im2col.py). Everything else (pipeline, warp roles, wgmma, scheduler, fused epilogue)
is the GEMM's, unchanged: y[N·P·Q, K] = im2col(x) · w^T, stored as NHWC.
"""
from __future__ import annotations

import functools
from dataclasses import replace

import skc
from skc import ir

from .config import MatmulConfig
from .epilogue import EpilogueSpec
from .gemm import matmul_kernel
from .matmul_host import operand_dtype_name
from .im2col import ConvShape
from .scheduler import TileScheduler


def conv2d(x, w, bias=None, stride=1, padding=0, dilation=1, activation=None, out=None, config=None):
    """y = activation(conv2d(x, w) + bias) on a Hopper GPU (or the interpreter modelling one).

    x holds NHWC activations and w KRSC filters (numpy arrays or skc arrays in that order; torch tensors in
    torch's NCHW / OIHW order with the channels_last memory format, whose memory is NHWC / KRSC: taken as
    they are, no copy). bf16 or fp16; C a multiple of 8. The output is NHWC (a channels_last torch tensor
    for torch inputs); `out` may be given. stride, padding, dilation: an int or an (h, w) pair."""
    x_nhwc, w_krsc, torch_layout = _nhwc(x, "x"), _nhwc(w, "w"), _is_torch(x)
    dtype = operand_dtype_name(x)
    if operand_dtype_name(w) != dtype:
        raise skc.LaunchError(f"x is {dtype} and w is {operand_dtype_name(w)}; conv2d needs one type")
    (N, H, W, C), (K, R, S, C_w) = x_nhwc.shape, w_krsc.shape
    if C_w != C:
        raise skc.LaunchError(f"x has {C} channels but the filters take {C_w}")
    if C % 8:
        raise skc.LaunchError(f"conv2d copies pixels 16 bytes at a time: C must be a multiple of 8, found {C} "
                              "(pad the channels with zeros to a multiple of 8)")
    conv = ConvShape(N, H, W, C, K, R, S, _pair(stride), _pair(padding), _pair(dilation))
    if conv.P < 1 or conv.Q < 1:
        raise skc.LaunchError(f"conv2d of a {H}x{W} input by a {R}x{S} filter (padding {conv.padding}, dilation "
                              f"{conv.dilation}) has no output pixels")
    device = skc.current_device()
    if not device.target.has("tma"):
        raise skc.LaunchError(f"conv2d loads with TMA im2col copies (sm_90a); {device.target.name} has no TMA")
    if max((R - 1) * conv.dilation[0], (S - 1) * conv.dilation[1]) > 255:
        raise skc.LaunchError(f"a {R}x{S} filter with dilation {conv.dilation} reaches past the 255-pixel im2col "
                              "offsets of TMA (PTX ISA 5.5.4.1); such convolutions need a vector im2col loader")
    spec = EpilogueSpec(bias=bias is not None, activation=activation)
    cfg = _config(conv, dtype, device.target.max_shared_bytes, spec, config)
    if out is None:
        out = _empty_output(x, (N, conv.P, conv.Q, K), torch_layout)
    y = _nhwc(out, "out")
    M, N_gemm, K_gemm = conv.gemm_shape()
    boxes = _boxes(cfg)
    lower, upper = cfg.loader.corners()
    x_map = skc.Im2colTensorMap(x_nhwc, channels=boxes["a"][1], pixels=boxes["a"][0], lower=lower, upper=upper,
                                strides=conv.stride)
    w_map = skc.TensorMap(_reshape(w_krsc, (K, R * S, C)), boxes["b"])
    out_map = skc.TensorMap(_reshape(y, (M, K)), boxes["out"])
    grid = TileScheduler.grid(M, N_gemm, cfg.tile_m, cfg.tile_n, device.multiprocessors)
    matmul_kernel[grid, cfg.threads](x_map, w_map, out_map, M, N_gemm, K_gemm, y, bias if bias is not None else y,
                                     1.0, 0.0, cfg)
    return out


@functools.lru_cache(maxsize=256)
def _config(conv: ConvShape, dtype: str, max_shared_bytes: int, spec: EpilogueSpec, config=None) -> MatmulConfig:
    """The GEMM's configuration for the implicit GEMM of `conv` (B, the filter, is K-major), loading with the
    im2col loader; 64-wide output tiles where K is no wider."""
    narrow = {"tile_n": 64} if conv.K <= 64 else {}
    cfg = config or MatmulConfig.for_problem(*conv.gemm_shape(), dtype, True, True, max_shared_bytes, epilogue=spec,
                                             cluster_m=1, **narrow)
    return replace(cfg, loader=replace(conv, tile_k=cfg.tile_k))


def _boxes(cfg: MatmulConfig) -> dict:
    """The boxes of the tensor maps: pixels x channels for x's im2col map, tile_n x 1 x chunk for the filter
    viewed as [K, R*S, C], the GEMM's own for the output."""
    layouts = cfg.payload().layouts
    return {"a": (cfg.tile_m, layouts["a"].chunk), "b": (cfg.tile_n, 1, layouts["b"].chunk),
            "out": cfg.boxes()["out"]}


def compile_arguments(target, conv: ConvShape, dtype: str = "bf16", config=None) -> dict:
    """matmul_kernel's arguments for `Kernel.compile` without data (skc compile, tests): the configuration
    conv2d() picks for `conv` on `target`, and the types of its tensor maps."""
    target = skc.get_target(target)
    cfg = _config(conv, dtype, target.max_shared_bytes, EpilogueSpec(), config)
    elem, boxes, pointer = ir.ScalarType(dtype), _boxes(cfg), skc.Ptr[skc.bf16 if dtype == "bf16" else skc.f16]
    M, N, K = conv.gemm_shape()
    return dict(a=ir.Im2colTensorMapType(elem, boxes["a"], 128, 4), b=ir.TensorMapType(elem, boxes["b"], 128),
                out=ir.TensorMapType(elem, boxes["out"], 128), M=M, N=N, K=K, c_in=pointer, bias=pointer,
                cfg=cfg, block=cfg.threads)


def _pair(value) -> tuple:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or any(not isinstance(v, int) for v in pair):
        raise skc.LaunchError(f"expected an int or an (h, w) pair of ints, found {value!r}")
    return pair


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def _nhwc(x, name: str):
    """x's channels-last (NHWC / KRSC) view: torch tensors are NCHW / OIHW views of channels_last memory."""
    if len(x.shape) != 4:
        raise skc.LaunchError(f"conv2d's '{name}' must have 4 dimensions, found shape {tuple(x.shape)}")
    if not _is_torch(x):
        return x
    import torch

    if not x.is_contiguous(memory_format=torch.channels_last):
        raise skc.LaunchError(f"conv2d's '{name}' must be in the channels_last memory format: pass "
                              f"{name}.to(memory_format=torch.channels_last)")
    return x.permute(0, 2, 3, 1)


def _reshape(x, shape):
    """A view of a contiguous array with another shape (no copy)."""
    if isinstance(x, skc.DeviceArray):
        view = object.__new__(skc.DeviceArray)
        view.__dict__.update(x.__dict__, shape=tuple(shape), _base=x, _free=None)
        view.host = x.host.reshape(shape) if x.host is not None else None
        return view
    return x.view(*shape) if _is_torch(x) else x.reshape(shape)


def _empty_output(x, nhwc, torch_layout: bool):
    if torch_layout:
        import torch

        N, P, Q, K = nhwc
        return torch.empty((N, K, P, Q), dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
    if isinstance(x, skc.DeviceArray):
        return skc.empty(nhwc, x.dtype)
    import numpy as np

    return np.empty(nhwc, x.dtype)


__all__ = ["conv2d", "compile_arguments", "ConvShape"]
