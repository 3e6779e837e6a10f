"""Small runs of every example and every GEMM variant, one per process, for compute-sanitizer.

    python benchmarks/sanitize_targets.py --list          # the names, one a line
    python benchmarks/sanitize_targets.py gemm:vector     # run one (checks its result; exit 1 when wrong)

benchmarks/gpu_session.sh (step `sanitize`) runs each name under memcheck, racecheck and synccheck.
Sizes are small (a few tiles) so that a run under the sanitizer takes seconds.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import skc  # noqa: E402
from skc.blocks import MatmulConfig  # noqa: E402

EXAMPLES = {"vector_add": dict(n=5000), "softmax": dict(n_rows=5, n_cols=1000), "sgemm": dict(M=70, N=66, K=37),
            "matmul": dict(M=256, N=256, K=192), "conv2d": dict(small=True), "attention": dict(small=True)}

GEMMS = {
    "default": {},
    "128x128x64-s6": dict(config=MatmulConfig(tile_n=128, stages=6)),
    "128x256x64-s4": dict(config=MatmulConfig(tile_n=256, stages=4)),
    "128x256x64-s4-c2": dict(config=MatmulConfig(tile_n=256, stages=4, cluster_m=2)),
    "128x128x64-s6-c2": dict(config=MatmulConfig(tile_n=128, stages=6, cluster_m=2)),
    "vector-loader": dict(config=MatmulConfig(loader="vector")),
    "pingpong-64x128": dict(config=MatmulConfig(tile_m=64, tile_n=128, stages=3, pingpong=True)),
    "192x192-3-consumers": dict(config=MatmulConfig(tile_m=192, tile_n=192, consumers=3, stages=3,
                                                    producer_registers=24, consumer_registers=160)),
    "fp16": dict(dtype="fp16"),
    "a-transposed": dict(a_transposed=True),
    "b-transposed": dict(b_transposed=True),
    "bias-c-alpha-beta": dict(epilogue=True),
    "relu": dict(activation="relu"),
    # stream-K: more tiles than the 132 blocks, so that tiles are split between two blocks and meet in the fix-up
    "stream-k-64x128": dict(config=MatmulConfig(tile_m=64, consumers=1, tile_n=128, stages=4, stream_k=True),
                            shape=(896, 1280, 192)),
    "stream-k-256x128": dict(config=MatmulConfig(tile_m=256, tile_n=128, stages=3, stream_k=True),
                             shape=(3072, 1536, 192)),
    # a split tail: 140 tiles on 132 blocks, the last 8 split along K in 3 shares that meet in the fix-up
    "split-tail-64x128": dict(config=MatmulConfig(tile_m=64, consumers=1, tile_n=128, stages=4, split_tail=True),
                              shape=(896, 1280, 192)),
    # one epilogue buffer a consumer: each chunk written once the store of the one before has read it
    "128x256x64-s4-one-buffer": dict(config=MatmulConfig(tile_n=256, stages=4, epilogue_buffers=1)),
    # clusters of 2 along M sharing a K-major B by rows (each block loads half of every chunk's rows)
    "128x256x64-c2-kmajor-b": dict(config=MatmulConfig(tile_n=256, stages=4, cluster_m=2, b_k_major=True),
                                   b_transposed=True),
    # the wave rule's tiles (seventeenth session): 192 x 192 with a K-major B, 128 x 192, 64 x 64 for few rows
    "192x192-kmajor-b": dict(config=MatmulConfig(tile_m=192, tile_n=192, consumers=3, stages=3, b_k_major=True),
                             b_transposed=True, shape=(400, 392, 200)),
    "128x192": dict(config=MatmulConfig(tile_n=192, stages=4), shape=(264, 392, 200)),
    "64x64-few-rows": dict(config=MatmulConfig(tile_m=64, consumers=1, tile_n=64, stages=12, a_rows=24),
                           shape=(20, 1000, 1032)),
    # rows TMA cannot address: read by 1-element loads and stored directly (matmul_host._UnalignedRows), or (a
    # configuration with TMA given) copied into zero-padded rows (_PaddedRows)
    "unaligned-rows": dict(shape=(333, 777, 999)),
    "unaligned-rows-128x128-epilogue": dict(shape=(300, 390, 202), epilogue=True, activation="relu",
                                            config=MatmulConfig(tile_n=128, stages=4, loader="vector",
                                                                store="direct", vector_width=2)),
    "padded-rows": dict(shape=(333, 777, 999), config=MatmulConfig(tile_n=128, stages=6)),
    # few rows over a B whose rows TMA cannot address, read in place by cp.async (thirty-first session): the rule's
    # own pick (split along K, 4-byte copies, masked ones past N and K filling zeros), and a given configuration
    # with 8-byte copies over tails of M, N and K
    "cp-async-few-rows": dict(shape=(20, 1026, 2050)),
    "cp-async-64x64-tails": dict(shape=(70, 132, 204), epilogue=True,
                                 config=MatmulConfig(tile_m=64, consumers=1, tile_n=64, stages=4, loader="vector",
                                                     vector_width=4, vector_async=True)),
    # clusters sharing a share of A's rows (along N), or of the rows of K of B's three 64-column chunks (along M);
    # and the default for rows 16-byte but not 128-byte aligned (64 x 64 tiles sharing B's one chunk by rows of K)
    "192x192-cluster-n2": dict(config=MatmulConfig(tile_m=192, tile_n=192, consumers=3, stages=3, cluster_n=2),
                               shape=(400, 776, 200)),
    "192x192-cluster-m2": dict(config=MatmulConfig(tile_m=192, tile_n=192, consumers=3, stages=3, cluster_m=2),
                               shape=(776, 400, 200)),
    "unaligned-pitch-default": dict(shape=(200, 1000, 1000)),
    # a row-major B in 32-column chunks (the 64-byte swizzle), alone and shared by rows of K in a cluster along M;
    # a K-major B on 192 x 96 tiles (the wave rule's, at 1536²-like shapes)
    "192x96-swizzle64": dict(config=MatmulConfig(tile_m=192, tile_n=96, consumers=3, stages=4), shape=(400, 296, 200)),
    "160-swizzle64-cluster-m2": dict(config=MatmulConfig(tile_n=160, stages=4, cluster_m=2), shape=(520, 328, 200)),
    # a K-major B's 128 x 144 tiles (tile_rules.FILL_WIDTH_SPEEDS, thirty-second session), with tails in M, N and K
    "128x144-k-major-b": dict(config=MatmulConfig(tile_n=144, stages=4, b_k_major=True), shape=(300, 400, 200),
                              b_transposed=True),
    "192x96-k-major-b": dict(config=MatmulConfig(tile_m=192, tile_n=96, consumers=3, stages=4, b_k_major=True),
                             shape=(400, 296, 200), b_transposed=True),
    # one row of 192 x 64 tiles (128 < M <= 192): A's box holding M's rows (152 of 192), one epilogue buffer; and A
    # in 16-row boxes, those past M not loaded (a_box_rows), over two rows of tiles
    "192x64-one-row": dict(config=MatmulConfig(tile_m=192, consumers=3, tile_n=64, stages=6, epilogue_buffers=1,
                                               a_rows=152), shape=(150, 600, 200)),
    "a-box-rows-16": dict(config=MatmulConfig(tile_n=128, stages=4, a_box_rows=16), shape=(200, 392, 200)),
    # out^T = b^T a^T (swap_ab, 128 < M <= 192 with deep K): 64-row tiles of N, 152 wide over a's 150 rows, each tile
    # stored transposed, with C, bias and relu read at out's places
    "swapped-64x152": dict(config=MatmulConfig(tile_m=64, consumers=1, tile_n=152, stages=7, a_k_major=False,
                                                b_k_major=True, swap_ab=True),
                           shape=(150, 600, 200), epilogue=True, activation="relu"),
}


# more runs of an example with other arguments: name -> (example, its main's arguments)
VARIANTS = {"attention-not-causal": ("attention", dict(small=True, causal=False)),   # D = 64: three consumers
            # D = 128: persistent blocks, which fetch their tiles where causal (136 tiles on 132 blocks)
            "attention-d128-causal": ("attention", dict(causal=True, shape=(1, 34, 34, 512, 128))),
            # 132 tiles: every block takes one and the end (no slot used twice)
            "attention-d128-causal-132": ("attention", dict(causal=True, shape=(1, 33, 33, 512, 128))),
            # 256 tiles of unequal length (16 a head) on 132 blocks: about two a block, most blocks using a slot twice
            "attention-d128-causal-256": ("attention", dict(causal=True, shape=(1, 16, 16, 2048, 128))),
            "attention-d128-not-causal": ("attention", dict(causal=False, shape=(1, 34, 34, 512, 128)))}


def run_example(name: str) -> str:
    from importlib.util import module_from_spec, spec_from_file_location

    example, arguments = VARIANTS.get(name, (name, EXAMPLES.get(name)))
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", f"{example}.py")
    spec = spec_from_file_location(f"sanitize_{example}", path)
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(**arguments)   # raises AssertionError when the result is wrong


def run_gemm(name: str, M=256, N=384, K=192) -> str:
    """One GEMM variant on torch tensors (the GPU session has torch), checked against float64."""
    import torch

    options = dict(GEMMS[name])
    M, N, K = options.pop("shape", (M, N, K))
    dtype = torch.float16 if options.pop("dtype", "bf16") == "fp16" else torch.bfloat16
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(M, K, generator=generator).to(dtype).cuda()
    b = torch.randn(K, N, generator=generator).to(dtype).cuda()
    if options.pop("a_transposed", False):
        a = a.t().contiguous().t()          # a transposed view of a row-major K x M array
    if options.pop("b_transposed", False):
        b = b.t().contiguous().t()
    expected = a.double() @ b.double()
    if options.pop("epilogue", False):
        bias = torch.randn(N, generator=generator).to(dtype).cuda()
        c = torch.randn(M, N, generator=generator).to(dtype).cuda()
        options.update(bias=bias, c=c, alpha=0.5, beta=2.0)
        expected = 0.5 * expected + 2.0 * c.double() + bias.double()
    if options.get("activation") == "relu":
        expected = expected.clamp(min=0)
    out = torch.full((M, N), float("nan"), dtype=dtype, device="cuda")
    skc.blocks.matmul(a, b, out=out, **options)
    torch.cuda.synchronize()
    error = ((out.double() - expected).norm() / expected.norm()).item()
    if not error <= 1e-2:
        raise AssertionError(f"gemm {name}: relative error {error:.3g} (expected <= 1e-2)")
    return f"gemm {name} {M}x{N}x{K} {dtype}: relative error {error:.2g}"


CONVS = {   # conv2d's own tile choices beyond the example's (N, C, H, K, R, stride, padding, config)
    "192x128-3-consumers": (2, 64, 14, 256, 3, 1, 1, MatmulConfig(tile_m=192, tile_n=128, consumers=3, stages=3,
                                                                   producer_registers=24, consumer_registers=160)),
    "pointwise-one-k-step": (4, 64, 14, 256, 1, 1, 0, None),   # 128 x 64 tiles, one k-step each
}


def run_conv(name: str) -> str:
    """One conv2d configuration on channels_last torch tensors, checked against torch's conv2d in float32."""
    import torch

    N, C, H, K, R, stride, padding, config = CONVS[name]
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(N, C, H, H, generator=generator).to(torch.bfloat16).cuda().to(memory_format=torch.channels_last)
    w = torch.randn(K, C, R, R, generator=generator).to(torch.bfloat16).cuda().to(memory_format=torch.channels_last)
    expected = torch.nn.functional.conv2d(x.float(), w.float(), stride=stride, padding=padding)
    out = torch.full(expected.shape, float("nan"), dtype=torch.bfloat16, device="cuda").to(
        memory_format=torch.channels_last)
    skc.blocks.conv2d(x, w, stride=stride, padding=padding, out=out, config=config)
    torch.cuda.synchronize()
    error = ((out.float() - expected).norm() / expected.norm()).item()
    if not error <= 1e-2:
        raise AssertionError(f"conv {name}: relative error {error:.3g} (expected <= 1e-2)")
    return f"conv {name}: relative error {error:.2g}"


FP8 = {   # fp8 GEMMs (M, N, K, block-scaled, Fp8MatmulConfig fields)
    "per-tensor": (256, 384, 256, False, {}),
    "per-tensor-n56": (256, 600, 256, False, {"tile_n": 56}),   # narrow epilogue boxes (8 columns)
    "per-tensor-m64-n48": (40, 4096, 640, False, {}),   # the small-M default: 48 wide, 256 deep, 40 rows loaded
    "per-tensor-cluster-n2": (64, 1000, 1024, False, {"tile_n": 64, "tile_k": 256, "cluster_n": 2}),  # A multicast
    # few rows, each k-block added into f32: one consumer, 112 wide, two stages a step (five k-blocks: a lone last)
    "per-tensor-few-rows-112": (100, 504, 640, False, {"tile_m": 64, "consumers": 1, "tile_n": 112,
                                                      "overlap_scaling": True}),
    # two rows of 128-row tiles in one wave: 112 wide, seven stages beside one epilogue buffer (the rule's at 232 rows)
    "per-tensor-one-wave-112": (232, 504, 640, False, {"tile_n": 112, "overlap_scaling": True, "stages": 7,
                                                      "epilogue_buffers": 1}),
    "per-tensor-fast-one-wave-112": (232, 504, 640, False, {"tile_n": 112, "stages": 7, "epilogue_buffers": 1,
                                                           "fast_accum": True}),
    # one row of 192 x 64 tiles, each k-block into f32, two stages a step, 160 of 192 rows loaded (the rule's)
    "per-tensor-one-row-192x64": (160, 600, 640, False, {"tile_m": 192, "consumers": 3, "tile_n": 64,
                                                        "epilogue_buffers": 1, "overlap_scaling": True}),
    "per-tensor-fast-one-row-192x64": (160, 600, 640, False, {"tile_m": 192, "consumers": 3, "tile_n": 64,
                                                             "epilogue_buffers": 1, "fast_accum": True}),
    # out^T = b^T a^T on 128 x 80 tiles (swap_ab: the rule's for 128 < M <= 192 with deep K), stored transposed
    "per-tensor-swapped-128x80": (150, 600, 640, False, {"tile_m": 128, "consumers": 2, "tile_n": 80,
                                                        "swap_ab": True}),
    # the wave rule's tiles (three consumer warpgroups for 192 rows), a second row and column of tiles past the ends
    "per-tensor-192x192": (200, 392, 384, False, {"tile_m": 192, "tile_n": 192, "consumers": 3}),
    "per-tensor-128x192": (200, 392, 384, False, {"tile_n": 192}),
    "block": (256, 384, 384, True, {}),
    "block-n192": (256, 1000, 384, True, {"tile_n": 192, "stages": 4, "producer_registers": 24,
                                          "consumer_registers": 240}),   # tiles that start inside scale blocks
    "block-n256-halves": (256, 600, 384, True, {"tile_n": 256, "half_partials": True, "stage_turns": True,
                                                "producer_registers": 24, "consumer_registers": 240}),   # the default
    "block-n256-halves-one-buffer": (256, 600, 384, True, {"tile_n": 256, "half_partials": True, "stage_turns": True,
                                                           "epilogue_buffers": 1, "producer_registers": 24,
                                                           "consumer_registers": 240}),   # four stages
    "block-c2": (256, 600, 384, True, {"cluster_m": 2}),   # clusters of 2 along M sharing B by rows
    # a split tail: 150 tiles on 132 blocks, the last 18 in 3 shares along K
    "block-n192-split-tail": (1280, 2880, 384, True, {"tile_n": 192, "stages": 4, "producer_registers": 24,
                                                      "consumer_registers": 240, "split_tail": True}),
}


def run_fp8(name: str) -> str:
    """One fp8 GEMM (e4m3, bf16 out) on torch tensors, checked against a float32 product of the dequantized
    operands."""
    import torch

    from skc.blocks import Fp8MatmulConfig

    M, N, K, block, fields = FP8[name]
    generator = torch.Generator().manual_seed(0)
    a = (torch.randn(M, K, generator=generator) * 8).to(torch.float8_e4m3fn).cuda()
    b = (torch.randn(N, K, generator=generator) * 8).to(torch.float8_e4m3fn).cuda().t()
    if block:
        sa = (torch.rand(M, K // 128, generator=generator) + 0.5).cuda()
        sb = (torch.rand(K // 128, -(-N // 128), generator=generator) + 0.5).cuda()
        expected = (a.float() * sa.repeat_interleave(128, 1)) @ (b.float() * sb.repeat_interleave(128, 0)
                                                                  .repeat_interleave(128, 1)[:, :N])
    else:
        sa, sb = torch.tensor(0.5, device="cuda"), torch.tensor(2.0, device="cuda")
        expected = a.float() @ b.float()
    # (a swap_ab configuration is for the problem b^T a^T)
    config = Fp8MatmulConfig.for_fp8_problem(*((N, M) if fields.get("swap_ab") else (M, N)), K, block_scaled=block,
                                             **fields)
    out = torch.full((M, N), float("nan"), dtype=torch.bfloat16, device="cuda")
    skc.blocks.matmul(a, b, out, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16, config=config)
    torch.cuda.synchronize()
    error = ((out.float() - expected).norm() / expected.norm()).item()
    if not error <= 1e-2:
        raise AssertionError(f"fp8 {name}: relative error {error:.3g} (expected <= 1e-2)")
    return f"fp8 {name} {M}x{N}x{K}: relative error {error:.2g}"


def names():
    return ([f"example:{n}" for n in (*EXAMPLES, *VARIANTS)] + [f"gemm:{n}" for n in GEMMS]
            + [f"conv:{n}" for n in CONVS] + [f"fp8:{n}" for n in FP8])


def main(argv):
    if not argv or argv[0] == "--list":
        print("\n".join(names()))
        return 0
    kind, _, name = argv[0].partition(":")
    print({"example": run_example, "gemm": run_gemm, "conv": run_conv, "fp8": run_fp8}[kind](name))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
