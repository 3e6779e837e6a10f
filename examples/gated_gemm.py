"""A GEMM with a fused epilogue skc does not ship, out = gelu(a @ b + bias) * gate (the gated half of a GeGLU MLP),
in bf16: the Hopper GEMM composed from skc's blocks (skc/blocks/gemm.py's `wgmma_gemm`: TMA loads into a pipeline of
shared-memory stages, wgmma consumers, a TMA-store epilogue, a persistent tile scheduler) given a fused part of the
user's: `Gated`, a FusedEpilogue subclass whose `__call__` applies the library's terms (bias, gelu) and then
multiplies by the gate at each value's place. Nothing else in the composition changes.
Run it: `skc run examples/gated_gemm.py` (small shapes in the interpreter when no Hopper GPU is present); compile it:
`skc compile examples/gated_gemm.py::gated_gemm --target sm_90a`.
"""
import numpy as np

import skc
from skc.blocks import EpilogueArgs, EpilogueSpec, FusedEpilogue, MatmulConfig, TileScheduler
from skc.blocks.gemm import wgmma_gemm

SPEC = EpilogueSpec(bias=True, activation="gelu")   # the library's terms; the gate is Gated's


class Gated(FusedEpilogue):
    """The fused part of each value at output place (row, column): gelu(value + bias[column]) * gate[row, column]."""

    def __init__(self, args: EpilogueArgs, gate):
        super().__init__(args)
        self.gate = gate   # a pointer to the row-major M x N gate

    def __call__(self, value, row, column, batch=None, scales=None):
        value = super().__call__(value, row, column, batch, scales)
        inside = (row < self.args.M) & (column < self.args.N)   # (places past the output are not stored)
        return value * skc.f32(skc.load(self.gate + (skc.i64(row) * self.args.N + column), mask=inside))


@skc.kernel
def gated_gemm(a: skc.TensorMap, b: skc.TensorMap, out: skc.TensorMap, gate: skc.Ptr[skc.bf16],
               bias: skc.Ptr[skc.bf16], M: skc.i32, N: skc.i32, K: skc.i32, cfg: skc.constexpr):
    wgmma_gemm(a, b, out, M, N, K, Gated(EpilogueArgs(cfg.epilogue, M, N, bias=bias), gate), cfg)


def config(M: int, N: int, K: int, target=None, multiprocessors=None) -> MatmulConfig:
    """The library's tile rule for the problem, with its operands as given (no swap_ab: a and b would trade places)
    and one launch without a workspace (no split-K)."""
    device = skc.current_device()
    target = target or device.target
    return MatmulConfig.for_problem(M, N, K, max_shared_bytes=target.max_shared_bytes,
                                    multiprocessors=multiprocessors or device.multiprocessors, epilogue=SPEC,
                                    swap_ab=False, split_k=1)


def tensor_maps(a, b, out, cfg: MatmulConfig) -> tuple:
    """The TMA descriptors the configuration's loader and epilogue read: a (M x K) and b (K x N) row-major, out M x N."""
    boxes = cfg.boxes()
    return (skc.TensorMap(a, boxes["a"], cfg.swizzle("a")), skc.TensorMap(b, boxes["b"], cfg.swizzle("b")),
            skc.TensorMap(out, boxes["out"]))


def launch(a, b, gate, bias, out, M: int, N: int, K: int, cfg: MatmulConfig = None):
    """out = gelu(a @ b + bias) * gate; rows of 16-byte multiples (K and N multiples of 8), as TMA reads them."""
    if K % 8 or N % 8:
        raise ValueError(f"this example reads rows with TMA: K and N must be multiples of 8, found K={K}, N={N}")
    cfg = cfg or config(M, N, K)
    device = skc.current_device()
    grid = TileScheduler.grid(M, N, cfg.tile_m, cfg.tile_n, device.cluster_blocks(cfg.cluster), cfg.cluster_m,
                              cluster_n=cfg.cluster_n)
    gated_gemm[grid, cfg.threads](*tensor_maps(a, b, out, cfg), gate, bias, M, N, K, cfg)


def compile_arguments(kernel: str, target):
    """What `skc compile` compiles gated_gemm for: the configuration of a 4096^3 problem on an H100's 132 SMs."""
    if kernel == "gated_gemm":
        from skc import ir

        cfg = config(4096, 4096, 4096, target, multiprocessors=132)
        maps = {name: ir.TensorMapType(ir.ScalarType("bf16"), box, cfg.swizzle(name) if name != "out" else 128)
                for name, box in cfg.boxes().items()}
        return dict(maps, cfg=cfg, block=cfg.threads)
    return None


def bf16_round(x: np.ndarray) -> np.ndarray:
    """The float32 values x takes once rounded to bf16."""
    from skc.runtime.dtypes import bf16_bits_to_float32, float32_to_bf16_bits

    return bf16_bits_to_float32(float32_to_bf16_bits(x.astype(np.float32)))


def reference(a, b, gate, bias) -> np.ndarray:
    v = a.astype(np.float64) @ b.astype(np.float64) + bias
    return 0.5 * v * (1 + np.tanh(0.7978845608028654 * (v + 0.044715 * v ** 3))) * gate


def main(M=None, N=None, K=None) -> str:
    small = skc.current_device().is_interpreter
    M, N, K = M or (4096 if not small else 136), N or (4096 if not small else 200), K or (4096 if not small else 96)
    rng = np.random.default_rng(0)
    host = [bf16_round(rng.standard_normal(shape, dtype=np.float32)) for shape in ((M, K), (K, N), (M, N), (N,))]
    a, b, gate, bias = (skc.to_device(x, dtype=skc.bf16) for x in host)
    out = skc.empty((M, N), skc.bf16).fill_bytes(0xFF)   # NaN until written
    launch(a, b, gate, bias, out, M, N, K)
    expected = reference(*host)
    error = skc.testing.relative_error(out.numpy(), expected)
    if not error <= 1e-2:
        raise AssertionError(f"gated_gemm: relative error {error:.3g} (expected <= 1e-2)")
    return f"{M}x{N}x{K} bf16 gelu(a @ b + bias) * gate: relative error {error:.2g}"


if __name__ == "__main__":
    print(main())
