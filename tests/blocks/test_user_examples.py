"""examples/gated_gemm.py and examples/rmsnorm.py (kernels composed from the blocks as a user would) in the
interpreter against numpy, past the shapes `skc run` gives them: the gated GEMM on the library's other schedules
(clusters along M and N, three consumers, pingpong, few rows), RMSNorm on rows that fill no row block or stage, one
stage a row (a run of one), and one to three consumer warpgroups taking the row blocks in turn."""
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


@pytest.mark.parametrize("rows, cols, consumers", [(37, 1000, 1), (9, 8, 3), (64, 520, 2), (20, 4096, 1),
                                                   (40, 4096, 3), (3, 512, 2)])
def test_rmsnorm_on_odd_shapes_and_consumer_counts(hopper_interpreter, rows, cols, consumers):
    summary = load_example("rmsnorm").main(rows=rows, cols=cols, consumers=consumers)
    assert f"{rows}x{cols} bf16, {consumers} consumer" in summary
