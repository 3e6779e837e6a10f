"""The host side of attention: `attention(q, k, v, ...)` reads the tensors' layouts (B, H, S, D) or (B, S, H, D)
as rank-4 strided views (no copy), picks a configuration and launches attention_kernel."""
from __future__ import annotations

import math

import numpy as np

import skc

from .attention_kernel import AttentionConfig, attention_kernel

LAYOUTS = ("bhsd", "bshd")


def attention(q, k, v, causal: bool = False, scale=None, out=None, *, layout: str = "bhsd", return_lse: bool = False,
              config: AttentionConfig = None, stream=None):
    """Scaled-dot-product attention forward, softmax(scale · Q Kᵀ [causal mask]) V, for bf16/f16 torch tensors
    (or, in the interpreter, numpy arrays: float32 values are rounded to bf16) in the layout `torch.nn.functional.
    scaled_dot_product_attention` takes, (B, H, S, D) ("bhsd"), or (B, S, H, D) ("bshd"). K and V may have fewer
    heads than Q (grouped-query attention: their count must divide Q's) and another sequence length. The causal
    mask is torch's (top-left aligned: query i sees keys 0 .. i). Returns out (like q), and with return_lse the
    natural log-sum-exp of each row's scaled scores, (B, H, Sq) float32."""
    if layout not in LAYOUTS:
        raise skc.LaunchError(f"layout must be one of {', '.join(LAYOUTS)}, found {layout!r}")
    host = isinstance(q, np.ndarray)
    views = [_heads_view(x, layout) for x in (q, k, v)]
    (B, H, Sq, D), (Bk, Hkv, Skv, Dk) = views[0].shape, views[1].shape
    if tuple(views[2].shape) != (Bk, Hkv, Skv, Dk) or Bk != B or Dk != D:
        raise skc.LaunchError(f"attention: q, k, v must agree in batch and head_dim and k, v in shape; found "
                              f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)} ({layout})")
    if Hkv == 0 or H % Hkv:
        raise skc.LaunchError(f"grouped-query attention needs K/V heads dividing Q heads: {H} and {Hkv}")
    if 0 in (B, H, Sq, Skv, D):   # (no key at all leaves softmax undefined; the kernel needs a key block)
        raise skc.LaunchError(f"attention of empty tensors: q, k, v are {tuple(q.shape)}, {tuple(k.shape)}, "
                              f"{tuple(v.shape)} ({layout}); every dimension must be at least 1")
    dtype = "bf16" if host else _dtype_name(q)
    if config is None:
        config = default_config(D, dtype, bool(causal), bool(return_lse))
    if config.head_dim != D:
        raise skc.LaunchError(f"the configuration is for head_dim {config.head_dim}, the tensors have {D}")
    scale = 1.0 / math.sqrt(D) if scale is None else float(scale)
    if host:
        views = [_bf16_bits(x) for x in views]
        out_bits = np.zeros(views[0].shape, np.uint16)
        out_view = out_bits
    else:
        if out is None:
            out = q.new_empty(q.shape)
        out_view = _heads_view(out, layout)
    lse = _new_lse(q, host, (B, H, Sq) if return_lse else (1,))
    boxes = config.boxes()
    maps = [skc.TensorMap(x, boxes[name], dtype=skc.bf16 if host else None)
            for x, name in zip(views + [out_view], ("q", "k", "v", "o"))]
    tiles = -(-Sq // config.block_m) * B * H
    grid = min(tiles, skc.current_device().multiprocessors) if config.persistent else tiles
    launch = attention_kernel[grid, config.threads]
    if stream is not None:
        launch(*maps, lse, Sq, Skv, B, H, H // Hkv, float(scale), config, stream=stream)
    else:
        launch(*maps, lse, Sq, Skv, B, H, H // Hkv, float(scale), config)
    if host:
        result = (out_bits.astype(np.uint32) << 16).view(np.float32)
        out = np.ascontiguousarray(np.swapaxes(result, 1, 2)) if layout == "bshd" else result
    return (out, lse) if return_lse else out


def _heads_view(x, layout: str):
    """x as a (B, H, S, D) view, without a copy."""
    if len(x.shape) != 4:
        raise skc.LaunchError(f"attention takes 4-D tensors ({layout}), found shape {tuple(x.shape)}")
    if layout == "bhsd":
        return x
    return np.swapaxes(x, 1, 2) if isinstance(x, np.ndarray) else x.transpose(1, 2)


def _dtype_name(x) -> str:
    name = str(x.dtype).replace("torch.", "")
    found = {"bfloat16": "bf16", "float16": "f16"}.get(name)
    if found is None:
        raise skc.LaunchError(f"attention runs on bfloat16 or float16 tensors, found {name}")
    return found


def _bf16_bits(x: np.ndarray) -> np.ndarray:
    """A host array of float values as bf16 bit patterns, rounded to nearest even (keeping the order of its
    strides: a (B, S, H, D) array stays one); uint16 arrays are taken as bf16 bits already."""
    if x.dtype == np.uint16:
        return x
    bits = np.asarray(x, np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def _new_lse(q, host: bool, shape):
    if host:
        return np.zeros(shape, np.float32)
    import torch

    return torch.empty(shape, dtype=torch.float32, device=q.device)


def default_config(D: int, dtype: str = "bf16", causal: bool = False, lse: bool = False) -> AttentionConfig:
    """What attention() runs without a config (measured on the H200, benchmarks/NOTES.md): for D <= 128, each
    warpgroup's softmax overlapped with its previous block's P·V, V three stages deep; for D = 64, the warpgroups
    taking turns at the tensor cores, with three of them on 192-row query tiles (1.07x of two) where not causal,
    and rows reduced pairwise where causal (1.13x); for D = 128, causal with the log-sum-exp, rows reduced pairwise."""
    fields = dict(block_n=128, overlap=True, value_stages=3) if D <= 128 else dict(block_n=64)
    if D == 64:
        fields.update(pingpong=True, tree_reductions=causal)
        if not causal:   # (causal: 0.9x, the diagonal's masks spill at 160 registers)
            fields.update(block_m=192, consumers=3)
    elif D == 128 and causal and lse:   # (rows reduced in order spill 4 bytes there; pairwise: 1.01x, no spill)
        fields.update(tree_reductions=True)
    return AttentionConfig(head_dim=D, dtype=dtype, causal=causal, lse=lse, **fields)


def compile_arguments(config: AttentionConfig) -> dict:
    """attention_kernel's arguments for `Kernel.compile` without data (skc compile, tests): rank-4 tensor-map
    types of the configuration's boxes, an f32 pointer for the log-sum-exp, the configuration and block size."""
    from skc import ir

    boxes = config.boxes()
    maps = {name: ir.TensorMapType(ir.ScalarType(config.dtype), boxes[name[0]], 128) for name in ("q", "k", "v", "o")}
    return dict(maps, lse=skc.Ptr[skc.f32], cfg=config, block=config.threads)
