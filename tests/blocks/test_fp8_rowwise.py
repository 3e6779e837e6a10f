"""The row-wise fp8 GEMM (torch._scaled_mm's scale_a M x 1, scale_b 1 x N): the per-tensor kernel with its scales
moved into the fused epilogue's row and column scale vectors. Exact in the interpreter against a float64 reference
of the dequantized operands on small shapes with tails (split-K, swapped operands, fast accumulation, bias,
activation, each out type), its PTX assembles without spills, and the host refuses other spellings by name."""
from types import SimpleNamespace

import numpy as np
import pytest

import skc
from skc import ir
from skc.backends import ptx_tools
from skc.blocks import fp8_host
from skc.blocks.epilogue import EpilogueArgs, EpilogueSpec, FusedEpilogue
from skc.blocks.fp8 import Fp8MatmulConfig, fp8_matmul_kernel, fp8_matmul_split_kernel

ml_dtypes = pytest.importorskip("ml_dtypes")
RNG = np.random.default_rng(54)
E4M3, E5M2 = ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2
OUT = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}
ROW_WISE = EpilogueSpec(row_scale=True, column_scale=True)

needs_assembler = pytest.mark.skipif(ptx_tools.ptxas_path() is None and not ptx_tools.have_nvjitlink(),
                                     reason="neither ptxas nor nvJitLink is installed")


def operands(M, N, K, dtype=E4M3):
    """Small integers (exact in fp8 and in every f32 sum): a (M x K row-major), b (K x N column-major), and
    powers of two as row-wise scales (every scaled value exact in f32)."""
    a = RNG.integers(-3, 4, (M, K)).astype(np.float32)
    b = RNG.integers(-3, 4, (K, N)).astype(np.float32)
    sa = (2.0 ** RNG.integers(-3, 4, (M, 1))).astype(np.float32)
    sb = (2.0 ** RNG.integers(-3, 4, (1, N))).astype(np.float32)
    return a, b, a.astype(dtype), np.ascontiguousarray(b.T).astype(dtype).T, sa, sb


def reference(a, b, sa, sb, bias=None, activation=None, out_dtype="float32"):
    """out[m, n] = activation(sa[m] · sb[n] · Σ_k a[m, k] b[k, n] + bias[n]) in float64, then as out_dtype."""
    out = sa.astype(np.float64) * sb.astype(np.float64) * (a.astype(np.float64) @ b.astype(np.float64))
    if bias is not None:
        out = out + bias.astype(np.float64)
    if activation == "relu":
        out = np.maximum(out, 0.0)
    return out.astype(OUT[out_dtype]).astype(np.float32)


@pytest.mark.parametrize("shape", [(136, 200, 256), (40, 72, 144), (1, 24, 64), (200, 8, 128)],
                         ids=["m-n-tails", "k-tail", "one-row", "eight-columns"])
@pytest.mark.parametrize("out_dtype", ["float32", "bfloat16", "float16"])
def test_row_wise_fp8_gemm_is_exact_in_the_interpreter(hopper_interpreter, shape, out_dtype):
    M, N, K = shape
    a, b, a8, b8, sa, sb = operands(M, N, K)
    out = np.full((M, N), np.nan, OUT[out_dtype])
    skc.blocks.matmul(a8, b8, out, scale_a=sa, scale_b=sb, out_dtype=out_dtype)
    np.testing.assert_array_equal(out.astype(np.float32), reference(a, b, sa, sb, out_dtype=out_dtype))


@pytest.mark.parametrize("out_dtype, activation", [("bfloat16", "relu"), ("float16", None), ("float32", "relu")])
def test_row_wise_fp8_gemm_with_bias_and_activation(hopper_interpreter, out_dtype, activation):
    """The bias is added after both scales, as torch._scaled_mm adds it; then the activation."""
    M, N, K = 72, 136, 256
    a, b, a8, b8, sa, sb = operands(M, N, K)
    bias = RNG.integers(-8, 9, N).astype(OUT[out_dtype] if out_dtype != "float32" else ml_dtypes.bfloat16)
    out = skc.blocks.matmul(a8, b8, scale_a=sa, scale_b=sb, out_dtype=out_dtype, bias=bias, activation=activation)
    np.testing.assert_array_equal(np.asarray(out).astype(np.float32),
                                  reference(a, b, sa, sb, bias, activation, out_dtype))


def test_row_wise_gelu_and_any_scales(hopper_interpreter):
    """Scales that are no powers of two, e5m2 operands and a GELU: within f32 rounding of the float64 reference."""
    M, N, K = 72, 80, 128
    a, b, a8, b8, _, _ = operands(M, N, K, E5M2)
    sa = RNG.uniform(0.01, 2.0, (M, 1)).astype(np.float32)
    sb = RNG.uniform(0.01, 2.0, (1, N)).astype(np.float32)
    out = skc.blocks.matmul(a8, b8, scale_a=sa, scale_b=sb, out_dtype="float32", activation="gelu")
    x = reference(a, b, sa, sb).astype(np.float64)
    gelu = 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(out, gelu, rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("fields", [{"split_k": 2, "stages": 2}, {"fast_accum": True}, {"tile_n": 56, "stages": 3}],
                         ids=["split-k", "fast-accum", "n56"])
def test_row_wise_fp8_gemm_in_other_schedules(hopper_interpreter, fields):
    """Split-K (the scales applied once to the whole sum by the split-K epilogue), fast accumulation and narrow
    tiles: the same fused epilogue."""
    M, N, K = 40, 136, 640
    a, b, a8, b8, sa, sb = operands(M, N, K)
    config = Fp8MatmulConfig.for_fp8_problem(M, N, K, out_dtype="bf16", **fields)
    assert config.split_k == fields.get("split_k", 1)
    out = skc.blocks.matmul(a8, b8, scale_a=sa, scale_b=sb, config=config,
                            use_fast_accum=fields.get("fast_accum", False))
    np.testing.assert_array_equal(out.astype(np.float32), reference(a, b, sa, sb, out_dtype="bfloat16"))


def test_row_wise_fp8_gemm_with_swapped_operands(hopper_interpreter):
    """swap_ab: the kernel computes out^T = b^T a^T, whose rows are out's columns; its epilogue applies A's scales
    by out's rows and B's by out's columns (EpilogueArgs.transposed), stored transposed with the bias at out's
    places."""
    m, n, k = 40, 256, 384
    a, b, a8, b8, sa, sb = operands(m, n, k)
    bias = RNG.integers(-4, 5, n).astype(ml_dtypes.bfloat16)
    cfg = Fp8MatmulConfig.for_fp8_problem(n, m, k, multiprocessors=4, tile_m=128, consumers=2,
                                          tile_n=-(-m // 16) * 8, swap_ab=True, out_dtype="bf16")
    out = np.full((m, n), np.nan, ml_dtypes.bfloat16)
    skc.blocks.matmul(a8, b8, out, scale_a=sa, scale_b=sb, bias=bias, activation="relu", config=cfg)
    np.testing.assert_array_equal(out.astype(np.float32), reference(a, b, sa, sb, bias, "relu", "bfloat16"))


def test_row_wise_scales_of_torch_as_torch_scaled_mm_takes_them(hopper_interpreter):
    """torch tensors (on the CPU, run by the interpreter): the result of torch._scaled_mm's row-wise call, where
    torch's CPU implementation takes it; else the float64 reference."""
    torch = pytest.importorskip("torch")
    M, N, K = 72, 48, 128
    a, b, a8, b8, sa, sb = operands(M, N, K)
    ta = torch.from_numpy(a).to(torch.float8_e4m3fn)
    tb = torch.from_numpy(np.ascontiguousarray(b.T)).to(torch.float8_e4m3fn).t()
    tsa, tsb = torch.from_numpy(sa), torch.from_numpy(sb)
    got = skc.blocks.matmul(ta, tb, scale_a=tsa, scale_b=tsb, out_dtype=torch.bfloat16)
    assert got.dtype == torch.bfloat16 and got.shape == (M, N)
    expected = torch.from_numpy(reference(a, b, sa, sb, out_dtype="bfloat16"))
    assert torch.equal(got.float(), expected)
    try:
        theirs = torch._scaled_mm(ta, tb, scale_a=tsa, scale_b=tsb, out_dtype=torch.bfloat16)
    except (RuntimeError, NotImplementedError):   # (a build whose CPU _scaled_mm takes no row-wise scales)
        return
    assert torch.equal(got, theirs)


def test_a_row_wise_plan_is_keyed_apart_from_a_per_tensor_one(hopper_interpreter):
    """M = 1: scale_a (1, 1) beside scale_b (1, N) is row-wise (one scale per column), and (1, 1) beside (1, 1) per
    tensor: two plans, each with its own epilogue."""
    a, b, a8, b8, sa, sb = operands(1, 32, 64)
    fp8_host._PLANS.clear()
    row_wise = skc.blocks.matmul(a8, b8, scale_a=sa, scale_b=sb, out_dtype="float32")
    per_tensor = skc.blocks.matmul(a8, b8, scale_a=sa, scale_b=sb[:, :1].copy(), out_dtype="float32")
    np.testing.assert_array_equal(row_wise, reference(a, b, sa, sb))
    np.testing.assert_array_equal(per_tensor, reference(a, b, sa, sb[:, :1]))
    specs = sorted((plan.cfg.epilogue.alpha, plan.cfg.epilogue.row_scale) for plan in fp8_host._PLANS.values())
    assert specs == [(False, True), (True, False)]


# -- errors -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    # (torch._scaled_mm takes no mix of a per-tensor and a row-wise scale either)
    (lambda sa, sb: (sa[:1], sb), r"scale_a \(1, 1\) and scale_b \(1, 72\) are neither one value each \(per-tensor\), "
                                  r"row-wise \(scale_a \(40, 1\).*expand a per-tensor scale to its row-wise shape"),
    (lambda sa, sb: (sa, sb[:, :1]), r"scale_a \(40, 1\) and scale_b \(1, 1\) are neither"),
    (lambda sa, sb: (sa, sb.T.copy()), r"scale_b \(72, 1\) are neither .* scale_b \(1, 72\): one per column of b"),
    (lambda sa, sb: (sa[:, 0].copy(), sb[0].copy()), r"scale_a \(40,\) and scale_b \(72,\) are neither"),
    (lambda sa, sb: (sa.astype(np.float64), sb), "scale_a is float64; scales are float32"),
    (lambda sa, sb: (sa, sb.astype(np.float16)), "scale_b is float16; scales are float32"),
    (lambda sa, sb: (sa.astype(">f4"), sb), r"scale_a is >f4, float32 not in this machine's byte order; pass "
                                            r"scale_a.astype\(np.float32\)"),
    (lambda sa, sb: (np.repeat(sa, 2, axis=1)[:, :1], sb),
     r"row-wise scale_a \(40, 1\) has its values 2 elements apart; they are read as consecutive float32 .*"
     r"pass np.ascontiguousarray\(scale_a\)$"),   # (numpy's arrays have no .contiguous(), which it said to pass)
    (lambda sa, sb: (sa, np.repeat(sb, 3, axis=0)[:1, ::-1]), r"row-wise scale_b \(1, 72\) has its values -1 elements"),
], ids=["tensor-and-row", "row-and-tensor", "b-as-column", "one-dimensional", "a-f64", "b-f16", "a-big-endian",
        "a-strided", "b-reversed"])
def test_row_wise_scales_refused_by_name(hopper_interpreter, change, message):
    _, _, a8, b8, sa, sb = operands(40, 72, 256)   # (K = 256: scale_a 40 x 1 is no block-wise shape)
    sa, sb = change(sa, sb)
    with pytest.raises(skc.LaunchError, match=message):
        skc.blocks.matmul(a8, b8, scale_a=sa, scale_b=sb)



def test_row_wise_scales_of_every_other_value_name_torchs_copy_for_torch(hopper_interpreter):
    """The refusal says the copy of the scales' own kind: .contiguous() for torch's, np.ascontiguousarray for numpy's
    (whose arrays have no .contiguous())."""
    torch = pytest.importorskip("torch")
    _, _, a8, b8, sa, sb = operands(40, 72, 256)
    ta = torch.from_numpy(a8.view(np.uint8)).view(torch.float8_e4m3fn)
    tb = torch.from_numpy(np.ascontiguousarray(b8.T).view(np.uint8)).view(torch.float8_e4m3fn).t()
    every_other = torch.from_numpy(np.repeat(sb, 2, axis=1))[:, ::2]
    with pytest.raises(skc.LaunchError, match=r"scale_b \(1, 72\) has its values 2 elements apart.*pass "
                                              r"scale_b\.contiguous\(\)$"):
        skc.blocks.matmul(ta, tb, scale_a=torch.from_numpy(sa), scale_b=every_other)

@skc.kernel
def scaled_elements(x, out, row_scale, column_scale, M: skc.i32, N: skc.i32, spec: skc.constexpr):
    """out[i, j] = FusedEpilogue(x[i, j]) for an M x N x (one thread an element, 16 x 16 threads a block): the
    epilogue's scale vectors apart from any GEMM, as an int8 GEMM's dequantization would use them."""
    row = skc.block_id(0) * 16 + skc.thread_id(0) // 16
    column = skc.block_id(1) * 16 + skc.thread_id(0) % 16
    if spec.row_scale and spec.column_scale:
        args = EpilogueArgs(spec, M, N, row_scale=row_scale, column_scale=column_scale)
    else:
        args = EpilogueArgs(spec, M, N, column_scale=column_scale)
    inside = (row < M) & (column < N)
    value = skc.f32(skc.load(x + (row * N + column), mask=inside))
    skc.store(out + (row * N + column), FusedEpilogue(args)(value, row, column), mask=inside)


def test_the_epilogue_scales_rows_and_columns_of_any_values(hopper_interpreter):
    """The fused epilogue's row and column scales on values that come from no GEMM (the threads past M and N read
    inside the vectors: the interpreter faults on a read past an array); a spec that scales rows reads a row vector
    or is refused."""
    M, N = 20, 36
    x = RNG.integers(-100, 100, (M, N)).astype(np.int32)
    rows, columns = RNG.uniform(0.5, 2.0, M).astype(np.float32), RNG.uniform(0.5, 2.0, N).astype(np.float32)
    out = np.full((M, N), np.nan, np.float32)
    scaled_elements[(2, 3), 256](x, out, rows, columns, M, N, ROW_WISE)
    np.testing.assert_array_equal(out, (x.astype(np.float32) * rows[:, None]) * columns[None, :])
    with pytest.raises(skc.CompileError, match="the epilogue's spec has row_scale=True, which reads row_scale; these "
                                               "arguments give none"):
        scaled_elements[(2, 3), 256](x, out, rows, columns, M, N, EpilogueSpec(row_scale=True))


# -- through the compiler ---------------------------------------------------------------------------------------
def compile_row_wise(cfg: Fp8MatmulConfig):
    """The row-wise kernel of `cfg` (its epilogue made row-wise) for sm_90a, with the host's argument types."""
    cfg = Fp8MatmulConfig(**{**cfg.__dict__, "epilogue": ROW_WISE})
    boxes = cfg.boxes()
    maps = [SimpleNamespace(spec=ir.TensorMapType(ir.ScalarType(t), boxes[name], 128))
            for name, t in (("a", cfg.dtype), ("b", cfg.dtype_b or cfg.dtype), ("out", cfg.out_dtype))]
    out = skc.Ptr[getattr(skc, cfg.out_dtype)]
    if cfg.split_k > 1:
        return fp8_matmul_split_kernel.compile(*maps[:2], out, skc.Ptr[skc.f32], skc.Ptr[skc.i32], skc.i32, skc.i32,
                                               skc.i32, out, skc.Ptr[skc.f32], skc.Ptr[skc.f32], cfg,
                                               target="sm_90a", block=cfg.threads)
    return fp8_matmul_kernel.compile(*maps, skc.i32, skc.i32, skc.i32, out, skc.Ptr[skc.f32], skc.Ptr[skc.f32], cfg,
                                     target="sm_90a", block=cfg.threads)


@needs_assembler
@pytest.mark.parametrize("shape, fields", [
    ((4096, 4096, 4096), {}), ((8192, 8192, 8192), {}), ((4096, 7168, 16384), {}), ((128, 7168, 16384), {}),
    ((64, 4096, 7168), {}), ((1000, 3000, 4096), {}), ((4096, 4096, 4096), {"out_dtype": "f32"}),
    ((4096, 4096, 4096), {"fast_accum": True}), ((136, 7168, 16384), {}), ((119, 592, 13056), {}),
], ids=["4096", "8192", "4096x7168x16384", "128x7168x16384", "64x4096x7168", "1000x3000x4096", "f32-out", "fast",
        "swapped", "rows-split"])
def test_row_wise_fp8_ptx_assembles_without_spills(shape, fields):
    """The default configuration of each shape, row-wise: the scales are loaded in the epilogue (ld.global of f32
    by row and by column), alpha is not, and no register spills."""
    cfg = Fp8MatmulConfig.for_fp8_problem(*shape, **fields)
    compiled = compile_row_wise(cfg)
    resources = compiled.resources
    limit = 64 if cfg.half_partials else 0   # (as the per-tensor kernel: test_fp8_gemm's note on 256 in halves)
    assert resources["spill_stores"] <= limit and resources["spill_loads"] <= limit, (cfg, resources)
    ptx = compiled.asm("ptx")
    assert "wgmma.mma_async.sync.aligned" in ptx and "ld.global" in ptx


@needs_assembler
def test_row_wise_scales_are_loaded_once_a_tile_before_the_first_chunk():
    """At short K (4096 x 24576 x 1536: twelve k-steps a tile) the epilogue's time shows. Its scale loads are
    issued together before the first chunk is staged: a thread's 2 row scales and tile_n / 4 column scales, each
    once a tile (not the row scales again every chunk), and none behind a chunk's barrier (a round trip to global
    memory a chunk, with the tensor cores idle)."""
    cfg = Fp8MatmulConfig.for_fp8_problem(4096, 24576, 1536)
    compiled = compile_row_wise(cfg)
    assert compiled.resources["spill_stores"] == 0 and compiled.resources["spill_loads"] == 0
    lines = compiled.asm("ptx").splitlines()
    loads = [i for i, line in enumerate(lines) if "ld.global" in line]
    staged = [i for i, line in enumerate(lines) if "st.shared" in line]
    assert len(loads) == 2 + cfg.tile_n // 4, len(loads)
    assert staged and max(loads) < min(staged)
