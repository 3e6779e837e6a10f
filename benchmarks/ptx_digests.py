"""Digests of the PTX of the kernels the benchmarks measure: every GEMM configuration the table or the tuner can
pick, the default fp8 GEMMs of five shapes (per-tensor and block-wise) and six of the per-tensor fill widths, and the
default attention configurations.
Run it at two commits (`git stash`, a worktree) and compare the outputs: equal lines mean the change left that
kernel's code as it was, so figures measured before still describe it. CPU only (needs nvJitLink's wheel for
nothing: PTX comes from llvmlite). Run: python benchmarks/ptx_digests.py"""
import hashlib
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "blocks"), str(ROOT / "tests")]

import test_gemm_compile as gemm  # noqa: E402  (the tests' compile helpers and their list of pickable configs)
from test_fp8_gemm import compile_fp8  # noqa: E402

from skc.blocks.attention_host import compile_arguments, default_config  # noqa: E402
from skc.blocks.attention_kernel import attention_kernel  # noqa: E402
from skc.blocks.fp8 import Fp8MatmulConfig  # noqa: E402

FP8_SHAPES = ((4096, 4096, 4096), (8192, 8192, 8192), (128, 7168, 16384), (64, 4096, 7168), (4096, 24576, 1536))
# per-tensor widths between 128 and 256 that fp8's rule takes on few waves (thirty-fifth session): 144, 176, 240 in
# halves, and 224 with fast_accum
FP8_FILL_SHAPES = (((990, 2240, 6144), False), ((774, 9376, 15872), False), ((336, 10496, 13952), False),
                   ((1663, 4224, 7936), True),
                   # thirty-sixth session: fast 64 x 256 up to 320 rows, one swapped column at 129-160 rows
                   ((300, 13088, 10496), True), ((156, 10192, 12032), False))


def digest(ptx: str) -> str:
    return hashlib.sha256(ptx.encode()).hexdigest()[:12]


def kernels():
    """(name, compiled kernel) of each measured configuration."""
    for config in gemm.PICKABLE:
        if config.split_k > 1:
            yield repr(config), gemm.compile_split_gemm(config)
        elif config.stream_k:
            yield repr(config), gemm.compile_stream_k_gemm(config)
        else:
            yield repr(config), gemm.compile_gemm(config)
    for M, N, K in FP8_SHAPES:
        for block in (False, True):
            yield f"fp8 {M}x{N}x{K} block={block}", compile_fp8(Fp8MatmulConfig.for_fp8_problem(M, N, K,
                                                                                                  block_scaled=block))
    for (M, N, K), fast in FP8_FILL_SHAPES:
        config = Fp8MatmulConfig.for_fp8_problem(M, N, K, fast_accum=fast)
        yield f"fp8 {M}x{N}x{K} fast={fast} ({config.tile_m}x{config.tile_n})", compile_fp8(config)
    for D in (64, 128):
        for causal in (False, True):
            config = default_config(D, "bf16", causal, False)
            yield f"attention D={D} causal={causal}", attention_kernel.compile(**compile_arguments(config),
                                                                               target="sm_90a")


def main():
    for name, kernel in kernels():
        print(digest(kernel.asm("ptx")), name[:110], flush=True)


if __name__ == "__main__":
    main()
