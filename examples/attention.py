"""Attention forward, softmax(Q Kᵀ / sqrt(D)) V, with the kernel composed from skc's blocks
(skc/blocks/attention.py): TMA loads of Q once and of K/V blocks through a pipeline, S = Q Kᵀ with wgmma
from shared memory, the online softmax, O += P V with P from registers, a TMA-store epilogue.
Run it: `skc run examples/attention.py` (on a Hopper GPU with torch; otherwise in the interpreter on small
shapes, checked against float64 numpy); compile it: `skc compile examples/attention.py::attention_kernel`."""
import math

import numpy as np

import skc
from skc.blocks.attention_host import attention
from skc.blocks.attention_host import compile_arguments as _arguments
from skc.blocks.attention_kernel import AttentionConfig, attention_kernel  # noqa: F401  (the kernel, for `skc compile`)


def compile_arguments(kernel: str, target):
    """What `skc compile` compiles attention_kernel for: head_dim 128, causal, bf16."""
    if kernel == "attention_kernel":
        return _arguments(AttentionConfig(head_dim=128, causal=True))
    return None


def bf16_round(x: np.ndarray) -> np.ndarray:
    from skc.runtime.dtypes import bf16_bits_to_float32, float32_to_bf16_bits

    return bf16_bits_to_float32(float32_to_bf16_bits(x.astype(np.float32)))


def reference(q, k, v, causal):
    group = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, group, 1).astype(np.float64), np.repeat(v, group, 1).astype(np.float64)
    s = np.einsum("bhqd,bhkd->bhqk", q.astype(np.float64), k) / math.sqrt(q.shape[-1])
    if causal:
        s = np.where(np.arange(k.shape[2])[None, :] <= np.arange(q.shape[2])[:, None], s, -np.inf)
    e = np.exp(s - s.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)) @ v


def gpu_torch():
    """torch, whose tensors attention() takes on a GPU (the interpreter takes numpy arrays too)."""
    try:
        import torch
    except ImportError:
        raise skc.SkcError("examples/attention.py runs on torch tensors on a GPU, and torch is not installed: "
                           "pip install torch (or run it in the interpreter: --device interpreter)") from None
    return torch


def main(causal=True, small=None, shape=None) -> str:
    """Attention on random data against float64 numpy; `shape` (B, H, H_kv, S, D) overrides the sizes."""
    device = skc.current_device()
    torch = None if device.is_interpreter else gpu_torch()
    small = device.is_interpreter if small is None else small
    B, H, Hkv, S, D = shape or ((1, 2, 1, 100, 64) if small else (4, 16, 4, 2048, 128))
    rng = np.random.default_rng(0)
    q, k, v = (bf16_round(rng.standard_normal(shape, dtype=np.float32))
               for shape in ((B, H, S, D), (B, Hkv, S, D), (B, Hkv, S, D)))
    if device.is_interpreter:
        out = attention(q, k, v, causal=causal)
    else:
        tensors = [torch.from_numpy(x).to("cuda", torch.bfloat16) for x in (q, k, v)]
        out = attention(*tensors, causal=causal).float().cpu().numpy()
    error = np.abs(out - reference(q, k, v, causal)).max()
    if not error <= 2e-2:
        raise AssertionError(f"attention: max abs error {error:.3g} (expected <= 2e-2)")
    return f"{B}x{H}(kv {Hkv})x{S}x{D} bf16{' causal' if causal else ''}: max abs error {error:.2g}"


if __name__ == "__main__":
    print(main())
