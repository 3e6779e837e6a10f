"""The host paths' choices of a 132-SM H100, run in the interpreter (SKC_INTERPRETER_SMS=132): the interpreter counts
4 SMs by default, and the host's rules (tile shapes, split-K, cp.async few rows, clusters for unaligned rows, the fp8
rules) then pick other configurations and paths than the GPU runs, so a bug of the GPU's path (an out copied for
split-K, fifty-first session) could not show on the CPU. Each case asserts the path the GPU takes, so that it keeps
running that path, and the answer, exact against numpy (small integers)."""
import numpy as np
import pytest

import skc
from skc.blocks import attention_host, conv, fp8_host, host_plans, matmul, matmul_host
from skc.runtime import devices

RNG = np.random.default_rng(132)


def ints(*shape):
    return RNG.integers(-2, 3, shape).astype(np.float16)


def exact(a, b):
    return a.astype(np.float64) @ b.astype(np.float64)


def off_8_bytes(shape):
    """A NaN-filled out that starts 8 bytes past a 16-byte boundary (numpy's buffers start on one)."""
    buffer = np.full(int(np.prod(shape)) + 4, np.nan, np.float16)
    assert buffer.ctypes.data % 16 == 0
    return buffer[4:].reshape(shape)


@pytest.fixture
def h100(hopper_interpreter, monkeypatch):
    """The interpreter modelling sm_90a on an H100's 132 SMs, with no plans made for another SM count; `launches`
    records each GEMM plan's launch (its configuration and grid) and each call through aligned copies."""
    monkeypatch.setenv(devices.INTERPRETER_SMS_ENV, "132")
    for plans in (matmul_host._PLANS, conv._PLANS, fp8_host._PLANS, attention_host._PLANS):
        plans.clear()
    assert hopper_interpreter.multiprocessors == 132
    launches = []
    call, copies = host_plans.GemmPlan.__call__, host_plans.GemmPlan._through_aligned_copies

    def recorded_call(self, *args, **kwargs):
        launches.append((self.cfg, self.grid))
        return call(self, *args, **kwargs)

    def recorded_copies(self, *args, **kwargs):
        launches.append("aligned copies")
        return copies(self, *args, **kwargs)

    monkeypatch.setattr(host_plans.GemmPlan, "__call__", recorded_call)
    monkeypatch.setattr(host_plans.GemmPlan, "_through_aligned_copies", recorded_copies)
    yield launches
    for plans in (matmul_host._PLANS, conv._PLANS, fp8_host._PLANS, attention_host._PLANS):
        plans.clear()


def test_the_interpreter_models_the_sms_it_is_told(monkeypatch):
    device = devices.Device("interpreter")
    monkeypatch.delenv(devices.INTERPRETER_SMS_ENV, raising=False)
    assert device.multiprocessors == 4 and device.cluster_blocks(2) == 4
    monkeypatch.setenv(devices.INTERPRETER_SMS_ENV, " 132 ")
    assert device.multiprocessors == 132 and device.cluster_blocks(4) == 132
    for wrong in ("0", "-4", "1.5", "many"):
        monkeypatch.setenv(devices.INTERPRETER_SMS_ENV, wrong)
        with pytest.raises(skc.DeviceError, match=f"SKC_INTERPRETER_SMS .* whole number from 1.*{wrong!r}"):
            device.multiprocessors


def test_split_k_writes_an_out_off_16_bytes_in_place(h100):
    """64 x 128 x 2048: two 64 x 64 tiles in 2 shares on 132 SMs (one unsplit 64 x 64 GEMM on 4); its out is a
    pointer, so an out 8 bytes off runs no aligned copies (it did before e648007)."""
    a, b, out = ints(64, 2048), ints(2048, 128), off_8_bytes((64, 128))
    matmul(a, b, out)
    ((cfg, grid),) = h100
    assert (cfg.tile_m, cfg.tile_n, cfg.split_k, grid) == (64, 64, 2, 4)
    np.testing.assert_array_equal(out.astype(np.float64), exact(a, b))


def test_split_k_with_the_whole_epilogue(h100):
    """40 x 128 x 4096 in 5 shares: alpha, beta · c, bias and relu by the last share only."""
    a, b, c, bias = ints(40, 4096), ints(4096, 128), ints(40, 128), ints(128)
    out = matmul(a, b, c=c, bias=bias, alpha=2.0, beta=-1.0, activation="relu")
    ((cfg, _),) = h100
    assert cfg.split_k == 5
    np.testing.assert_array_equal(out.astype(np.float64),
                                  np.maximum(2.0 * exact(a, b) - c.astype(np.float64) + bias, 0.0))


def test_case_834s_path_per_matrix_padded_rows_split_k_and_outs_off_16_bytes(h100):
    """A batch of 2 x 34 x 2048 times 2 x 2048 x 90 runs a GEMM per matrix (N = 90: rows TMA cannot store), each
    over padded copies, split in 2 on 132 SMs (unsplit on 4); out[1] starts 8 bytes off 16, written in place."""
    a, b = ints(2, 34, 2048), ints(2, 2048, 90)
    out = np.full((2, 34, 90), np.nan, np.float16)
    assert out[1].ctypes.data % 16 == 8
    matmul(a, b, out)
    assert "aligned copies" not in h100
    assert [(cfg.tile_m, cfg.tile_n, cfg.split_k) for cfg, _ in h100] == [(64, 64, 2)] * 2
    assert any(isinstance(plan, matmul_host._LoopedBatch) for plan in matmul_host._PLANS.values())
    np.testing.assert_array_equal(out.astype(np.float64), exact(a, b))


def test_few_rows_over_an_a_it_would_copy_read_by_cp_async_in_shares(h100):
    """64 x 128 x 2050 (A's rows no multiple of 16 bytes): the cp.async loader reads A in place, two elements a
    load, in 4 shares on 132 SMs."""
    a, b = ints(64, 2050), ints(2050, 128)
    out = matmul(a, b)
    ((cfg, grid),) = h100
    assert (cfg.loader, cfg.vector_async, cfg.vector_width, cfg.split_k, grid) == ("vector", True, 2, 4, 8)
    assert any(isinstance(plan, matmul_host._UnalignedRows) for plan in matmul_host._PLANS.values())
    np.testing.assert_array_equal(out.astype(np.float64), exact(a, b))


def test_few_rows_by_cp_async_store_directly_into_an_odd_out(h100):
    """17 x 512 x 626 with c: 64 x 64 tiles unsplit (64 x 128 on 4 SMs), out stored by the consumers."""
    a, b, c = ints(17, 626), ints(626, 512), ints(17, 512)
    out = off_8_bytes((17, 512))
    matmul(a, b, out, c=c)
    ((cfg, grid),) = h100
    assert (cfg.tile_n, cfg.store, cfg.loader, grid) == (64, "direct", "vector", 8)
    np.testing.assert_array_equal(out.astype(np.float64), exact(a, b) + c)


def test_unaligned_rows_take_clusters_of_two(h100):
    """96 x 200 x 512: B's rows 400 bytes apart, so B is shared in clusters of two along M."""
    a, b = ints(96, 512), ints(512, 200)
    out = matmul(a, b)
    ((cfg, _),) = h100
    assert (cfg.cluster_m, cfg.cluster_n) == (2, 1)
    np.testing.assert_array_equal(out.astype(np.float64), exact(a, b))


def test_a_per_tensor_fp8_gemm_split_along_k(h100):
    """fp8 16 x 256 x 4096: 64 x 64 tiles in 2 shares on 132 SMs."""
    import ml_dtypes

    a = RNG.integers(-3, 4, (16, 4096)).astype(np.float32)
    b = RNG.integers(-3, 4, (4096, 256)).astype(np.float32)
    a8 = a.astype(ml_dtypes.float8_e4m3fn)
    b8 = np.ascontiguousarray(b.T).astype(ml_dtypes.float8_e4m3fn).T
    out = matmul(a8, b8, scale_a=np.array([0.5], np.float32), scale_b=np.array([4.0], np.float32),
                 out_dtype="float32")
    ((plan),) = fp8_host._PLANS.values()
    assert (plan.cfg.tile_m, plan.cfg.tile_n, plan.cfg.split_k) == (64, 64, 2)
    np.testing.assert_array_equal(out, 2.0 * (a @ b))
