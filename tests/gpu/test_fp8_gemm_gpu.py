"""The FP8 GEMMs (per-tensor and block-scaled) on the GPU, outputs poisoned first: against a float32 reference of
the dequantized operands, on square, rectangular and tail shapes; per-tensor also against torch._scaled_mm."""
import pytest

import skc
from skc.blocks.fp8 import Fp8MatmulConfig

pytestmark = pytest.mark.gpu
torch = pytest.importorskip("torch")


def quantized(rows, cols, dtype=torch.float8_e4m3fn, seed=0):
    """A rows x cols fp8 tensor of random values spread over the format's range (row-major)."""
    generator = torch.Generator(device="cuda").manual_seed(seed)
    x = torch.randn(rows, cols, device="cuda", generator=generator) * 8
    return x.clamp(-400, 400).to(dtype)


def relative_error(got, expected):
    return ((got.float() - expected).norm() / expected.norm()).item()


def block_scales(M, N, K, seed=1):
    generator = torch.Generator(device="cuda").manual_seed(seed)
    kb, nb = K // 128, -(-N // 128)
    sa = torch.rand(M, kb, device="cuda", generator=generator) * 2 ** -6 + 2 ** -8
    sb = torch.rand(kb, nb, device="cuda", generator=generator) * 2 ** -6 + 2 ** -8
    return sa, sb


def dequantized_block_reference(a, b, sa, sb):
    """(a · sa) @ (b · sb) in float32, each scale spread over its block."""
    K, N = b.shape
    a32 = a.float() * sa.repeat_interleave(128, dim=1)[:, :K]
    b32 = b.float() * sb.repeat_interleave(128, dim=0).repeat_interleave(128, dim=1)[:K, :N]
    return a32 @ b32


SHAPES = [(128, 128, 128), (512, 512, 512), (256, 384, 1024), (1000, 1000, 1024), (200, 136, 384), (64, 4096, 512),
          (40, 200, 256)]


@pytest.mark.parametrize("M,N,K", SHAPES)
@pytest.mark.parametrize("out_dtype", [torch.bfloat16, torch.float32])
def test_per_tensor(M, N, K, out_dtype):
    a, b = quantized(M, K), quantized(N, K, seed=2).t()
    sa, sb = torch.tensor(0.01, device="cuda"), torch.tensor(0.02, device="cuda")
    out = torch.full((M, N), float("nan"), device="cuda", dtype=out_dtype)
    skc.blocks.matmul(a, b, out, scale_a=sa, scale_b=sb, out_dtype=out_dtype)
    torch.cuda.synchronize()
    assert not out.isnan().any()
    expected = (a.float() @ b.float()) * 0.01 * 0.02
    assert relative_error(out, expected) <= (5e-3 if out_dtype == torch.bfloat16 else 1e-3)
    if out_dtype == torch.bfloat16 and M % 16 == 0 and N % 16 == 0:
        cublas = torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, out_dtype=out_dtype)
        assert relative_error(out, cublas.float()) <= 1e-2


@pytest.mark.parametrize("M,N,K", [(64, 4096, 7168), (40, 200, 640), (128, 1000, 1024)])
@pytest.mark.parametrize("fields", [{"split_k": 2}, {"split_k": 4, "tile_n": 128}], ids=["k2", "k4-n128"])
def test_per_tensor_split_k(M, N, K, fields):
    """K in shares, twice on the same plan (its counters must be left zero), outputs poisoned before each."""
    a, b = quantized(M, K), quantized(N, K, seed=2).t()
    sa, sb = torch.tensor(0.01, device="cuda"), torch.tensor(0.02, device="cuda")
    config = Fp8MatmulConfig.for_fp8_problem(M, N, K, out_dtype="bf16", **fields)
    assert config.split_k == fields["split_k"]
    expected = (a.float() @ b.float()) * 0.01 * 0.02
    for _ in range(2):
        out = torch.full((M, N), float("nan"), device="cuda", dtype=torch.bfloat16)
        skc.blocks.matmul(a, b, out, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16, config=config)
        torch.cuda.synchronize()
        assert not out.isnan().any()
        assert relative_error(out, expected) <= 5e-3


VARIANTS = {"serial": {}, "overlapped": {"overlap_scaling": True},
            # tiles that start inside scale blocks and cross B's scale boxes; narrower epilogue boxes
            "n192": {"tile_n": 192, "stages": 4, "producer_registers": 24, "consumer_registers": 240},
            "n160": {"tile_n": 160, "producer_registers": 24, "consumer_registers": 240},
            "n176": {"tile_n": 176, "stages": 4, "producer_registers": 24, "consumer_registers": 240},
            "n56": {"tile_n": 56}, "m64n32": {"tile_m": 64, "consumers": 1, "tile_n": 32},
            # the consumers take turns issuing each stage's MMAs (two of them even where M is small)
            "turns": {"stage_turns": True, "tile_m": 128, "consumers": 2},
            "n192-turns": {"tile_n": 192, "stages": 4, "producer_registers": 24, "consumer_registers": 240,
                           "stage_turns": True, "tile_m": 128, "consumers": 2},
            # each k-block's partial in two column halves: 256-wide tiles
            "n256-halves": {"tile_n": 256, "half_partials": True, "producer_registers": 24, "consumer_registers": 240},
            "n256-halves-turns": {"tile_n": 256, "half_partials": True, "producer_registers": 24,
                                  "consumer_registers": 240, "stage_turns": True, "tile_m": 128, "consumers": 2},
            # one epilogue buffer a consumer: a fourth stage at 256 wide, a fifth at 192
            "n256-halves-turns-e1": {"tile_n": 256, "half_partials": True, "producer_registers": 24,
                                     "consumer_registers": 240, "stage_turns": True, "tile_m": 128, "consumers": 2,
                                     "epilogue_buffers": 1},
            "n192-e1": {"tile_n": 192, "producer_registers": 24, "consumer_registers": 240, "epilogue_buffers": 1},
            # clusters of 2 along M, each block loading half of B's rows for both
            "c2": {"cluster_m": 2}, "n128-c2-s6-e1": {"tile_n": 128, "cluster_m": 2, "stages": 6, "epilogue_buffers": 1},
            "n256-halves-turns-c2": {"tile_n": 256, "half_partials": True, "producer_registers": 24,
                                     "consumer_registers": 240, "stage_turns": True, "tile_m": 128, "consumers": 2,
                                     "cluster_m": 2}}


@pytest.mark.parametrize("M,N,K", [(128, 1000, 512), (200, 136, 384), (64, 4096, 512), (64, 4096, 7168)])
@pytest.mark.parametrize("fields", [{"tile_n": 56}, {"tile_m": 64, "consumers": 1, "tile_n": 32},
                                    {"tile_m": 64, "consumers": 1, "tile_n": 48, "tile_k": 256},
                                    {"tile_n": 64, "tile_k": 256, "cluster_n": 2},
                                    {"tile_n": 48, "tile_k": 512, "cluster_n": 4}, {"tile_n": 128, "cluster_m": 2}],
                         ids=["n56", "m64n32", "m64n48-k256", "cluster-n2", "n48-cluster-n4", "n128-cluster-m2"])
def test_per_tensor_narrow_tiles(M, N, K, fields):
    a, b = quantized(M, K), quantized(N, K, seed=2).t()
    sa, sb = torch.tensor(0.01, device="cuda"), torch.tensor(0.02, device="cuda")
    out = torch.full((M, N), float("nan"), device="cuda", dtype=torch.bfloat16)
    config = Fp8MatmulConfig.for_fp8_problem(M, N, K, **fields)
    skc.blocks.matmul(a, b, out, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16, config=config)
    torch.cuda.synchronize()
    assert not out.isnan().any()
    assert relative_error(out, (a.float() @ b.float()) * 0.01 * 0.02) <= 5e-3


@pytest.mark.parametrize("M,N,K,tile", [(3072, 3072, 3072, (192, 192)), (3000, 2960, 1040, (192, 192)),
                                        (1536, 1536, 1536, (128, 192)), (1900, 1640, 1024, (192, 128)),
                                        (4096, 4096, 1024, (128, 256)), (232, 6000, 1040, (128, 112)),
                                        (192, 7168, 1024, (192, 64)), (150, 6016, 1040, (192, 64))])
@pytest.mark.parametrize("out_dtype", [torch.bfloat16, torch.float32])
def test_per_tensor_tiles_the_wave_rule_picks(M, N, K, tile, out_dtype):
    """Per-tensor fp8 with use_fast_accum=True takes the bf16 GEMM's wave rule where it picks a 192-row or
    192-wide tile (three consumer warpgroups for 192 rows), and 128 x 112 in seven stages for two rows of tiles in
    one wave; tails in M, N and K, through matmul() with no config; output poisoned first."""
    from skc.blocks import fp8_host

    a, b = quantized(M, K), quantized(N, K, seed=2).t()
    sa, sb = torch.tensor(0.01, device="cuda"), torch.tensor(0.02, device="cuda")
    out = torch.full((M, N), float("nan"), device="cuda", dtype=out_dtype)
    skc.blocks.matmul(a, b, out, scale_a=sa, scale_b=sb, out_dtype=out_dtype, use_fast_accum=True)
    torch.cuda.synchronize()
    plans = [plan for plan in fp8_host._PLANS.values() if (plan.M, plan.N, plan.K) == (M, N, K)]
    assert (plans[-1].cfg.tile_m, plans[-1].cfg.tile_n) == tile
    assert not out.isnan().any()
    expected = (a.float() @ b.float()) * 0.01 * 0.02
    # (f32 out at K = 3072: 1.1e-3 on every tile shape, 5.4e-4 at K = 1024: fp8 wgmma's accumulator holds fewer bits
    # than f32, and fast_accum runs the whole K in it, as torch._scaled_mm's use_fast_accum=True does;
    # session18-2026-12-02-fp8-f32-accuracy.txt)
    assert relative_error(out, expected) <= (5e-3 if out_dtype == torch.bfloat16 else 2e-3)


@pytest.mark.parametrize("M,N,K", [(3072, 3072, 3072), (4096, 4096, 1024), (8192, 1024, 4096), (1000, 1000, 1024),
                                   (128, 7168, 4096), (100, 7000, 1024), (64, 4096, 7168), (2176, 2304, 1008),
                                   (256, 7168, 1024), (232, 6000, 1024), (160, 7000, 1024), (192, 7168, 2048)])
def test_per_tensor_without_fast_accum_is_as_accurate_as_cublaslt(M, N, K):
    """The default (each k-block's product added into f32 registers) on the tiles matmul() picks for it (256 wide
    in halves, 192 wide, 64 x 112 with tails, 128 x 112 in seven stages, one row of 192 x 64, 48 wide and 256 deep,
    tails), f32 out
    against float32: no worse than torch._scaled_mm's default (use_fast_accum=False) on the same data, where
    use_fast_accum=True read 8x its error at K = 3072."""
    a, b = quantized(M, K), quantized(N, K, seed=2).t()
    sa, sb = torch.tensor(0.01, device="cuda"), torch.tensor(0.02, device="cuda")
    out = torch.full((M, N), float("nan"), device="cuda", dtype=torch.float32)
    skc.blocks.matmul(a, b, out, scale_a=sa, scale_b=sb, out_dtype=torch.float32)
    torch.cuda.synchronize()
    assert not out.isnan().any()
    expected = (a.float() @ b.float()) * 0.01 * 0.02
    error = relative_error(out, expected)
    if M % 16 == 0 and N % 16 == 0:
        cublas = relative_error(torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, out_dtype=torch.float32), expected)
        assert error <= 1.25 * cublas + 1e-6, (error, cublas)
    assert error <= 3e-4, error


@pytest.mark.parametrize("M,N,K,width", [(160, 7168, 4096, 80), (136, 7168, 8192, 72), (150, 6016, 4096, 80),
                                         (192, 8192, 4096, 96), (129, 5000, 4096, 72),
                                         # one column (fp8.SWAPPED_COLUMN_ROWS)
                                         (156, 10192, 4224, 160), (131, 16880, 4096, 144)])
def test_per_tensor_few_rows_and_deep_k_swap_a_and_b(M, N, K, width):
    """128 < M <= 192 with K >= 4096, each k-block into f32, bf16 out: out^T = b^T a^T on 128 x M/2 tiles (M/2
    rounded up to 8), or where N is wider one column of 128 x M (rounded up to 16), stored transposed into the
    row-major out (poisoned first), tails in M and N; as accurate as torch._scaled_mm's default on the same data, and
    with a bias and relu."""
    from skc.blocks import fp8_host

    a, b = quantized(M, K), quantized(N, K, seed=2).t()
    sa, sb = torch.tensor(0.01, device="cuda"), torch.tensor(0.02, device="cuda")
    out = torch.full((M, N), float("nan"), device="cuda", dtype=torch.bfloat16)
    skc.blocks.matmul(a, b, out, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16)
    torch.cuda.synchronize()
    plans = [plan for plan in fp8_host._PLANS.values() if (plan.M, plan.N, plan.K) == (M, N, K)]
    assert plans[-1].cfg.swap_ab and plans[-1].cfg.tile_n == width
    assert not out.isnan().any()
    expected = (a.float() @ b.float()) * 0.01 * 0.02
    error = relative_error(out, expected)
    if M % 16 == 0 and N % 16 == 0:
        cublas = relative_error(torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16), expected)
        assert error <= 1.25 * cublas + 1e-6, (error, cublas)
    assert error <= 5e-3, error
    bias = torch.randn(N, device="cuda", dtype=torch.bfloat16)
    out.fill_(float("nan"))
    skc.blocks.matmul(a, b, out, scale_a=sa, scale_b=sb, bias=bias, activation="relu", out_dtype=torch.bfloat16)
    assert relative_error(out, torch.relu(expected + bias.float())) <= 5e-3


@pytest.mark.parametrize("M,N,K", SHAPES + [(256, 2000, 512), (2048, 6144, 256)])  # the last: 256 wide by default
@pytest.mark.parametrize("out_dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("variant", VARIANTS)
def test_block_scaled(M, N, K, out_dtype, variant):
    a, b = quantized(M, K), quantized(N, K, seed=2).t()
    sa, sb = block_scales(M, N, K)
    out = torch.full((M, N), float("nan"), device="cuda", dtype=out_dtype)
    name = {torch.bfloat16: "bf16", torch.float32: "f32"}[out_dtype]
    config = Fp8MatmulConfig.for_fp8_problem(M, N, K, block_scaled=True, out_dtype=name, **VARIANTS[variant])
    skc.blocks.matmul(a, b, out, scale_a=sa, scale_b=sb, out_dtype=out_dtype, config=config)
    torch.cuda.synchronize()
    assert not out.isnan().any()
    error = relative_error(out, dequantized_block_reference(a, b, sa, sb))
    assert error <= (5e-3 if out_dtype == torch.bfloat16 else 2e-3), error


@pytest.mark.parametrize("M,N,K,fields", [
    (2048, 2000, 1024, {"block_scaled": True, **VARIANTS["n192"]}),         # 176 tiles: every one shared
    (2176, 2304, 1024, {"block_scaled": True, **VARIANTS["n256-halves"]}),  # 153 tiles: 21 past a whole wave
    (4096, 1920, 512, {"block_scaled": True, "tile_n": 128}),
    (4096, 1920, 512, {"tile_n": 128}),                                       # per tensor
    (2176, 2304, 1008, {}),                                                   # per tensor, a short last k-step
], ids=["block-n192", "block-n256-halves", "block-n128", "per-tensor-n128", "per-tensor"])
@pytest.mark.parametrize("how", ["stream_k", "split_tail"])
def test_stream_k(M, N, K, fields, how):
    """Stream-K or a split tail on a grid whose last wave is part-full, twice on one plan (its counters must be
    left zero), outputs poisoned before each."""
    a, b = quantized(M, K), quantized(N, K, seed=2).t()
    if fields.get("block_scaled"):
        sa, sb = block_scales(M, N, K)
        expected = dequantized_block_reference(a, b, sa, sb)
    else:
        sa, sb = torch.tensor(0.01, device="cuda"), torch.tensor(0.02, device="cuda")
        expected = (a.float() @ b.float()) * 0.01 * 0.02
    config = Fp8MatmulConfig.for_fp8_problem(M, N, K, **{how: True}, **fields)
    tiles = -(-M // config.tile_m) * -(-N // config.tile_n)
    assert config.shares_tiles and tiles > 132 and tiles % 132
    for _ in range(2):
        out = torch.full((M, N), float("nan"), device="cuda", dtype=torch.bfloat16)
        skc.blocks.matmul(a, b, out, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16, config=config)
        torch.cuda.synchronize()
        assert not out.isnan().any()
        assert relative_error(out, expected) <= 5e-3


def test_block_scaled_outer_dim_major_scales_and_fused_bias_relu():
    M, N, K = 256, 256, 512
    a, b = quantized(M, K), quantized(N, K, seed=2).t()
    sa, sb = block_scales(M, N, K)
    bias = torch.randn(N, device="cuda", dtype=torch.bfloat16)
    out = skc.blocks.matmul(a, b, scale_a=sa.t().contiguous().t(), scale_b=sb, bias=bias, activation="relu")
    torch.cuda.synchronize()
    expected = torch.relu(dequantized_block_reference(a, b, sa, sb) + bias.float())
    assert out.dtype == torch.bfloat16 and relative_error(out, expected) <= 5e-3


def test_e5m2_operand():
    M, N, K = 256, 256, 256
    a, b = quantized(M, K), quantized(N, K, dtype=torch.float8_e5m2, seed=2).t()
    one = torch.tensor(1.0, device="cuda")
    out = skc.blocks.matmul(a, b, scale_a=one, scale_b=one, out_dtype=torch.float32)
    torch.cuda.synchronize()
    assert relative_error(out, a.float() @ b.float()) <= 1e-3


def test_row_major_b_is_refused_with_the_fix():
    a, b = quantized(128, 128), quantized(128, 128)
    one = torch.tensor(1.0, device="cuda")
    with pytest.raises(skc.LaunchError, match="pass b as the transpose"):
        skc.blocks.matmul(a, b, scale_a=one, scale_b=one)


@pytest.mark.parametrize("M,N,K,a_m_major", [(180, 3872, 1024, True), (48, 1168, 1280, False), (256, 512, 384, False)],
                         ids=["b-padded", "a-and-b-padded", "a-copied"])
def test_block_scales_padded_into_kept_buffers(M, N, K, a_m_major):
    """Block scales whose rows TMA cannot address (N / 128 or M no multiple of 4; A's scales row-major, which the
    kernel reads M-major) go through the plan's kept buffers: calls that change the scales in place, new scale
    tensors, a side stream and a CUDA graph's capture (then replayed after the scales changed) each read the
    scales of their own call."""
    from skc.blocks import fp8_host

    a, b = quantized(M, K), quantized(N, K, seed=2).t()
    out = torch.empty((M, N), device="cuda", dtype=torch.bfloat16)

    def check(sa, sb):
        expected = dequantized_block_reference(a, b, sa, sb)
        assert not out.isnan().any()
        assert relative_error(out, expected) <= 5e-3

    sa, sb = block_scales(M, N, K)
    sa = sa.t().contiguous().t() if a_m_major else sa.contiguous()
    for seed in range(3):   # the same tensors, new values: the third call is a bound launch
        sa.copy_(block_scales(M, N, K, seed=seed + 5)[0])
        sb.copy_(block_scales(M, N, K, seed=seed + 5)[1])
        out.fill_(float("nan"))
        skc.blocks.matmul(a, b, out, scale_a=sa, scale_b=sb)
        check(sa, sb)
    plan = next(p for p in fp8_host._PLANS.values() if p.M == M and p.N == N and p.K == K and p.block)
    assert any(plan.pads) and len(plan.kept) == 1 and len(plan.bound) >= 1
    sa2, sb2 = (s.clone() * 2 for s in (sa, sb))   # new tensors of the same facts
    sa2 = sa2.t().contiguous().t() if a_m_major else sa2.contiguous()
    out.fill_(float("nan"))
    skc.blocks.matmul(a, b, out, scale_a=sa2, scale_b=sb2)
    check(sa2, sb2)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        out.fill_(float("nan"))
        skc.blocks.matmul(a, b, out, scale_a=sa, scale_b=sb)
    side.synchronize()
    check(sa, sb)
    assert len(plan.kept) == 2
    graph = torch.cuda.CUDAGraph()
    capture = torch.cuda.Stream()
    capture.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(capture):
        with torch.cuda.graph(graph, stream=capture):
            skc.blocks.matmul(a, b, out, scale_a=sa, scale_b=sb)
    sa.mul_(0.5)
    sb.mul_(3.0)
    out.fill_(float("nan"))
    graph.replay()
    torch.cuda.synchronize()
    check(sa, sb)


@pytest.mark.parametrize("M,N,K,tile", [
    (18, 512, 13568, (64, 64, 8)), (7, 1456, 6272, (64, 64, 3)),   # few 64 x 64 tiles over a deep K: split-K
    (212, 2096, 6016, (64, 64, 1)), (321, 560, 4224, (64, 64, 1)),  # past 192 rows, 128 x 64 filling half the SMs
    (265, 1232, 256, (64, 64, 1))])
@pytest.mark.parametrize("fast", [False, True])
def test_per_tensor_tiles_the_rule_takes_for_few_tiles(M, N, K, tile, fast):
    """The rule's per-tensor choices where few tiles would fill the SMs (split-K, or 64-row tiles), each k-block into
    f32 or not, twice on one plan (split-K's buffers reused); against cuBLASLt's error on the same data."""
    check_the_rules_tile(M, N, K, tile, fast)


@pytest.mark.parametrize("M,N,K,tile,fast", [
    (119, 592, 13056, (64, 64, 4), False), (119, 592, 13056, (64, 64, 4), True), (80, 2048, 7168, (64, 64, 2), False),
    (80, 2048, 7168, (64, 64, 2), True), (128, 1280, 5120, (64, 64, 2), False), (65, 112, 4096, (64, 64, 2), False),
    (65, 112, 4096, (64, 64, 2), True), (163, 816, 10496, (64, 64, 3), False), (270, 336, 11904, (64, 64, 4), False),
    (313, 208, 6144, (64, 64, 3), False)])
def test_per_tensor_rows_of_few_tiles_split(M, N, K, tile, fast):
    """65-320 rows (128 with fast_accum) on few 64 x 64 tiles over a deep K, each k-block into f32 or not: split-K in
    the shares of fp8.rows_split (last tiles part past N, 112 and 208 columns, and past M, 313 rows), poisoned
    outputs, twice on one plan; then with a bias and a ReLU in the split's epilogue."""
    check_the_rules_tile(M, N, K, tile, fast)
    check_bias_and_relu(M, N, K, fast, torch.bfloat16)


def check_the_rules_tile(M, N, K, tile, fast):
    from skc.blocks import fp8_host

    a, b = quantized(M, K), quantized(N, K, seed=2).t()
    sa, sb = torch.tensor(0.01, device="cuda"), torch.tensor(0.02, device="cuda")
    expected = (a.float() @ b.float()) * 0.01 * 0.02
    cublas = torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16, use_fast_accum=fast)
    fp8_host._PLANS.clear()
    for _ in range(2):
        out = torch.full((M, N), float("nan"), device="cuda", dtype=torch.bfloat16)
        skc.blocks.matmul(a, b, out, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16, use_fast_accum=fast)
        torch.cuda.synchronize()
        assert not out.isnan().any()
        assert relative_error(out, expected) <= max(5e-3, 1.5 * relative_error(cublas, expected))
    (plan,) = fp8_host._PLANS.values()
    assert (plan.cfg.tile_m, plan.cfg.tile_n, plan.cfg.split_k) == tile


@pytest.mark.parametrize("M,N,K,tile,fast", [
    (990, 2240, 1040, (128, 144, 1), False), (1473, 5152, 1024, (128, 160, 1), False),
    (774, 9376, 1024, (128, 176, 1), False), (1488, 6032, 1024, (128, 192, 1), False),
    (324, 9072, 1040, (128, 208, 1), False), (1158, 2768, 1024, (128, 224, 1), False),
    (336, 10496, 1024, (128, 240, 1), False), (547, 6480, 1040, (128, 256, 1), False),
    (810, 4992, 1040, (128, 144, 1), True), (142, 10016, 1040, (64, 256, 1), True),
    (784, 9856, 1040, (128, 176, 1), True), (2691, 3600, 1040, (128, 208, 1), True),
    (247, 14016, 1040, (128, 224, 1), True), (1488, 5184, 1040, (128, 240, 1), True),
    (341, 2816, 1040, (128, 128, 1), True),
    # up to fp8.FAST_ROWS_64 rows, 64 x 256 (one consumer)
    (300, 13088, 1040, (64, 256, 1), True), (187, 9760, 1040, (64, 256, 1), True)])
def test_per_tensor_widths_that_fill_few_waves(M, N, K, tile, fast):
    """Where 128 x 128 tiles make at most fp8.FEW_WAVES waves: the width the rule takes from PROMOTED_FILL_WIDTHS
    (past 320 rows, each k-block into f32) or FAST_FILL_WIDTHS (fast_accum; up to 320 rows 64 x 256 too), each
    with a last column part past N, most with a last row part past M and a 16-deep last k-block; poisoned outputs,
    twice on one plan, against cuBLASLt's error; then with a bias and a ReLU into f16."""
    check_the_rules_tile(M, N, K, tile, fast)
    check_bias_and_relu(M, N, K, fast, torch.float16)


def check_bias_and_relu(M, N, K, fast, dtype):
    """The rule's configuration with a bias and a ReLU in its epilogue, into `dtype` (bias of that dtype too)."""
    a, b = quantized(M, K), quantized(N, K, seed=2).t()
    sa, sb = torch.tensor(0.01, device="cuda"), torch.tensor(0.02, device="cuda")
    bias = torch.randn(N, device="cuda", dtype=dtype)
    out = torch.full((M, N), float("nan"), device="cuda", dtype=dtype)
    skc.blocks.matmul(a, b, out, scale_a=sa, scale_b=sb, bias=bias, activation="relu", out_dtype=dtype,
                      use_fast_accum=fast)
    expected = torch.relu((a.float() @ b.float()) * 0.01 * 0.02 + bias.float())
    assert relative_error(out, expected) <= 5e-3


def row_wise_scales(M, N, seed=3):
    generator = torch.Generator(device="cuda").manual_seed(seed)
    sa = torch.rand(M, 1, device="cuda", generator=generator) * 2 ** -6 + 2 ** -8
    sb = torch.rand(1, N, device="cuda", generator=generator) * 2 ** -6 + 2 ** -8
    return sa, sb


@pytest.mark.parametrize("M,N,K", SHAPES + [(1000, 3000, 4096), (136, 7168, 2048), (4096, 4104, 1024)])
@pytest.mark.parametrize("out_dtype", [torch.bfloat16, torch.float32, torch.float16])
def test_row_wise(M, N, K, out_dtype):
    # (fifty-fourth session: torch._scaled_mm's row-wise scales, the per-tensor kernel with its epilogue scaling rows
    # and columns; f32 out as accurate as cuBLASLt's, whose fp8 wgmma accumulates with the same fewer bits)
    a, b = quantized(M, K), quantized(N, K, seed=2).t()
    sa, sb = row_wise_scales(M, N)
    out = torch.full((M, N), float("nan"), device="cuda", dtype=out_dtype)
    skc.blocks.matmul(a, b, out, scale_a=sa, scale_b=sb, out_dtype=out_dtype)
    torch.cuda.synchronize()
    assert not out.isnan().any()
    expected = (a.float() @ b.float()) * sa * sb
    error = relative_error(out, expected)
    assert error <= {torch.bfloat16: 5e-3, torch.float16: 1e-3, torch.float32: 5e-4}[out_dtype]
    if M % 16 == 0 and N % 16 == 0:   # (cuBLASLt refuses other shapes)
        cublas = torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, out_dtype=out_dtype)
        assert error <= 1.01 * relative_error(cublas, expected) + 1e-6


@pytest.mark.parametrize("fields", [{}, {"split_k": 2}, {"fast_accum": True}], ids=["default", "k2", "fast"])
def test_row_wise_with_bias_and_relu(fields):
    M, N, K = 200, 1000, 1024
    a, b = quantized(M, K), quantized(N, K, seed=2).t()
    sa, sb = row_wise_scales(M, N)
    bias = torch.randn(N, device="cuda").to(torch.bfloat16)
    config = Fp8MatmulConfig.for_fp8_problem(M, N, K, out_dtype="bf16", **fields)
    assert config.split_k == fields.get("split_k", 1)
    out = torch.full((M, N), float("nan"), device="cuda", dtype=torch.bfloat16)
    skc.blocks.matmul(a, b, out, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16, bias=bias, activation="relu",
                      use_fast_accum=bool(fields.get("fast_accum")), config=config)
    torch.cuda.synchronize()
    expected = torch.relu((a.float() @ b.float()) * sa * sb + bias.float())
    assert relative_error(out, expected) <= 1e-2
