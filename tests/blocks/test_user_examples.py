"""examples/gated_gemm.py and examples/rmsnorm.py (kernels composed from the blocks as a user would) in the
interpreter against numpy, past the shapes `skc run` gives them: the gated GEMM on the library's other schedules
(clusters along M and N, three consumers, pingpong, few rows), RMSNorm on rows that fill no row block or stage, one
stage a row (a run of one), and one or two consumer warpgroups reading every stage (at 8192 columns, runs of 16
stages in a ring of 28)."""
import numpy as np
import pytest

import skc
from helpers import load_example
from skc.blocks import MatmulConfig


@pytest.mark.parametrize("shape, fields", [
    ((256, 512, 128), dict(cluster_m=2, tile_n=256)), ((256, 512, 128), dict(cluster_n=2)),
    ((200, 192, 64), dict(tile_m=192, consumers=3, tile_n=192, stages=2)),
    ((128, 256, 128), dict(pingpong=True)), ((40, 136, 72), dict(tile_m=64, consumers=1, a_rows=40))])
def test_gated_gemm_on_the_librarys_schedules(hopper_interpreter, shape, fields):
    example = load_example("gated_gemm")
    M, N, K = shape
    cfg = MatmulConfig(epilogue=example.SPEC, **fields)
    rng = np.random.default_rng(1)
    host = [example.bf16_round(rng.standard_normal(s, dtype=np.float32)) for s in ((M, K), (K, N), (M, N), (N,))]
    a, b, gate, bias = (skc.to_device(x, dtype=skc.bf16) for x in host)
    out = skc.empty((M, N), skc.bf16).fill_bytes(0xFF)
    example.launch(a, b, gate, bias, out, M, N, K, cfg)
    assert skc.testing.relative_error(out.numpy(), example.reference(*host)) <= 1e-2


@pytest.mark.parametrize("rows, cols, consumers", [(37, 1000, 1), (9, 8, 2), (64, 520, 2), (20, 4096, 1),
                                                   (3, 512, 2), (100, 8192, 2), (50, 8192, 1)])
def test_rmsnorm_on_odd_shapes_and_consumer_counts(hopper_interpreter, rows, cols, consumers):
    summary = load_example("rmsnorm").main(rows=rows, cols=cols, consumers=consumers)
    assert f"{rows}x{cols} bf16, {consumers} consumer" in summary


@pytest.mark.parametrize("cols, consumers, message", [
    (4096, 3, "rmsnorm runs 1 or 2 consumer warpgroups, not 3"),
    (16384, 1, "a row block of 8 x 16384 bf16 takes 32 stages of 8192 bytes; shared memory holds 28")])
def test_rmsnorm_says_what_it_cannot_run(hopper_interpreter, cols, consumers, message):
    example = load_example("rmsnorm")
    arguments = dict(example.compile_arguments("rmsnorm", skc.get_target("sm_90a")), cols=cols, consumers=consumers,
                     block=128 * (1 + consumers))
    with pytest.raises(skc.CompileError, match=message):
        example.rmsnorm.compile(target="sm_90a", **arguments)
