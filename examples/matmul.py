"""C = A · B in bf16 with the GEMM composed from skc's blocks (skc/blocks/gemm.py), one source for
two vendors. On Hopper (sm_90a): TMA loads into a pipeline of shared-memory stages, a producer
warpgroup and two consumer warpgroups issuing wgmma, and a TMA-store epilogue. On AMD CDNA (gfx942,
gfx90a): every wave loads into a ping-pong pair of LDS stages and computes with MFMAs. Any M, N, K
(tails are handled); rows are copied 16 bytes at a time (K and N multiples of 8).
Run it: `skc run examples/matmul.py` (SKC_DEVICE=interpreter SKC_INTERPRETER_TARGET=gfx942 for the
AMD GEMM in the interpreter); compile it: `skc compile examples/matmul.py --target gfx942`.
"""
import numpy as np

import skc
from skc.blocks import matmul, matmul_kernel  # noqa: F401  (the kernel, for `skc compile`)


def compile_arguments(kernel: str, target):
    """What `skc compile` compiles matmul_kernel for: the configuration matmul() picks for a 4096^3 bf16
    problem on `target`, with tensor-map types (Hopper) or pointer types (AMD) for a, b and out."""
    if kernel == "matmul_kernel":
        return skc.blocks.compile_arguments(target, 4096, 4096, 4096, "bf16")
    return None


def bf16_round(x: np.ndarray) -> np.ndarray:
    """The float32 values x takes once rounded to bf16."""
    from skc.runtime.dtypes import bf16_bits_to_float32, float32_to_bf16_bits

    return bf16_bits_to_float32(float32_to_bf16_bits(x.astype(np.float32)))


def main(M=None, N=None, K=None) -> str:
    device = skc.current_device()
    small = device.is_interpreter
    M, N, K = M or (2048 if not small else 136), N or (1536 if not small else 72), K or (1024 if not small else 80)
    rng = np.random.default_rng(0)
    a_host = bf16_round(rng.standard_normal((M, K), dtype=np.float32))
    b_host = bf16_round(rng.standard_normal((K, N), dtype=np.float32))
    a, b = skc.to_device(a_host, dtype=skc.bf16), skc.to_device(b_host, dtype=skc.bf16)
    c = skc.empty((M, N), skc.bf16).fill_bytes(0xFF)  # NaN until written
    matmul(a, b, out=c)
    expected = a_host.astype(np.float64) @ b_host.astype(np.float64)
    error = skc.testing.relative_error(c.numpy(), expected)
    if not error <= 1e-2:
        raise AssertionError(f"matmul: relative error {error:.3g} (expected <= 1e-2)")
    return f"{M}x{N}x{K} bf16: relative error {error:.2g}"


if __name__ == "__main__":
    print(main())
