"""conv2d as the GEMM with one block swapped: skc.blocks.conv2d runs the Hopper GEMM composition
(skc/blocks/gemm.py: TMA producer, mbarrier pipeline, wgmma consumers, fused TMA-store epilogue) with
its loader replaced by the im2col loader (skc/blocks/im2col.py), whose TMA copies gather the output
pixels' input windows, padding zero-filled by the hardware. NHWC activations, KRSC filters, bf16.
Run it: `skc run examples/conv2d.py` (small shapes in the interpreter when no GPU is present).
"""
import numpy as np

import skc
from skc.blocks import conv2d, matmul_kernel  # noqa: F401  (the kernel, for `skc compile`)


def compile_arguments(kernel: str, target):
    """What `skc compile examples/conv2d.py::matmul_kernel` compiles: the GEMM with the im2col loader, as
    conv2d() configures it for a 3x3 convolution of 64 x 56 x 56 inputs into 64 channels (batch 32)."""
    if kernel == "matmul_kernel":
        from skc.blocks.conv import ConvShape
        from skc.blocks.conv import compile_arguments as conv_arguments

        return conv_arguments(target, ConvShape(32, 56, 56, 64, 64, 3, 3, (1, 1), (1, 1), (1, 1)))
    return None


def bf16_round(x: np.ndarray) -> np.ndarray:
    """The float32 values x takes once rounded to bf16."""
    from skc.runtime.dtypes import bf16_bits_to_float32, float32_to_bf16_bits

    return bf16_bits_to_float32(float32_to_bf16_bits(x.astype(np.float32)))


def reference(x, w, stride, padding):
    """Direct convolution in float64 (x NHWC, w KRSC), one filter tap at a time."""
    N, H, W, C = x.shape
    K, R, S, _ = w.shape
    P, Q = (H + 2 * padding - R) // stride + 1, (W + 2 * padding - S) // stride + 1
    padded = np.pad(x.astype(np.float64), ((0, 0), (padding, padding + stride), (padding, padding + stride), (0, 0)))
    y = np.zeros((N, P, Q, K))
    for r in range(R):
        for s in range(S):
            y += padded[:, r:r + stride * P:stride, s:s + stride * Q:stride, :] @ w[:, r, s, :].astype(np.float64).T
    return y


def main(small=None) -> str:
    small = skc.current_device().is_interpreter if small is None else small
    N, H, W, C, K = (2, 9, 7, 32, 40) if small else (32, 56, 56, 64, 64)
    rng = np.random.default_rng(0)
    results = []
    for R, stride, padding in ((3, 1, 1), (3, 2, 1), (1, 1, 0)):
        x_host = bf16_round(rng.standard_normal((N, H, W, C), dtype=np.float32))
        w_host = bf16_round(rng.standard_normal((K, R, R, C), dtype=np.float32))
        x, w = skc.to_device(x_host, dtype=skc.bf16), skc.to_device(w_host, dtype=skc.bf16)
        P, Q = (H + 2 * padding - R) // stride + 1, (W + 2 * padding - R) // stride + 1
        y = skc.empty((N, P, Q, K), skc.bf16).fill_bytes(0xFF)  # NaN until written
        conv2d(x, w, stride=stride, padding=padding, out=y)
        error = skc.testing.relative_error(y.numpy(), reference(x_host, w_host, stride, padding))
        if not error <= 1e-2:
            raise AssertionError(f"conv2d {R}x{R} stride {stride}: relative error {error:.3g} (expected <= 1e-2)")
        results.append(f"{R}x{R}/s{stride}: {error:.2g}")
    return f"conv2d {N}x{H}x{W}x{C} -> {K} bf16, relative errors " + ", ".join(results)


if __name__ == "__main__":
    print(main())
