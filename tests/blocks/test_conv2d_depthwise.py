"""Depthwise conv2d (groups = C, K = multiplier · C) as the direct kernel of skc/blocks/stencil.py, in the interpreter
modelling sm_90a: exact against F.conv2d in float64 (small integers: every product and sum exact in f32), the plan
conv2d picks, the tiling stencil_config picks, and the PTX through ptxas without spills."""
import numpy as np
import pytest

import skc
from skc.backends import ptx_tools
from skc.blocks import ConvShape, conv2d
from skc.blocks.epilogue import EpilogueSpec
from skc.blocks.stencil import stencil_config, stencil_conv_kernel

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
import skc.torch  # noqa: E402,F401
from helpers import small_ints

RNG = np.random.default_rng(55)


def ints(*shape, dtype=None):
    return small_ints(RNG, *shape, dtype=dtype)


def want(x, w, bias, stride, padding, dilation, activation=None):
    y = F.conv2d(x.double(), w.double(), None if bias is None else bias.double(), stride, padding, dilation,
                 x.shape[1])
    return (y.relu() if activation == "relu" else y).to(x.dtype)


def plans_of(x, w, config=None) -> set:
    """The kinds of plan conv2d made for calls over x and w (of their facts) with `config`."""
    from skc.blocks import conv
    from skc.blocks.host_plans import facts

    return {type(plan).__name__ for key, (_, plan) in conv._PLANS.items()
            if key[1:3] == (facts(x), facts(w)) and key[-1] == config}


@pytest.mark.parametrize("N, C, H, W, multiplier, R, stride, padding, dilation, bias, activation, dtype", [
    (1, 16, 6, 7, 1, 3, 1, 1, 1, True, "relu", torch.bfloat16),   # 3x3, W no multiple of a thread's 4 pixels
    (2, 24, 7, 6, 1, 3, 2, 1, 1, False, None, torch.bfloat16),    # stride 2
    (1, 8, 8, 9, 1, 5, 1, "same", 1, True, None, torch.float16),  # 5x5 'same', fp16
    (1, 8, 9, 9, 1, 7, 1, 3, 1, False, "relu", torch.bfloat16),   # ConvNeXt's 7x7
    (1, 16, 9, 8, 1, 3, 1, 2, 2, True, None, torch.float16),      # dilation 2
    (1, 16, 6, 6, 1, 3, 1, "valid", 1, False, None, torch.bfloat16),
    (1, 16, 6, 5, 2, 3, 2, 1, 1, True, "relu", torch.bfloat16),   # two filters a channel
    (1, 4, 5, 6, 2, 3, 1, 1, 1, False, None, torch.float16),      # C = 4: vectors of 4 channels
    (1, 136, 3, 5, 1, 3, 1, 1, 1, True, None, torch.bfloat16),    # 17 vectors: two slices of 9, one lane idle
    (2, 3, 5, 6, 8, 3, 2, 1, 1, True, "relu", torch.bfloat16),    # an odd C (RGB), 8 filters each: one channel a thread
])
def test_depthwise_conv2d_is_torchs(hopper_interpreter, N, C, H, W, multiplier, R, stride, padding, dilation, bias,
                                    activation, dtype):
    x, w = ints(N, C, H, W, dtype=dtype), ints(multiplier * C, 1, R, R, dtype=dtype)
    b = ints(multiplier * C, dtype=dtype) if bias else None
    y = conv2d(x, w, b, stride, padding, dilation, activation, groups=C)
    assert y.is_contiguous(memory_format=torch.channels_last) and y.dtype == dtype
    assert torch.equal(y, want(x, w, b, stride, padding, dilation, activation))
    assert plans_of(x, w) == {"_Stencil"}


def test_gelu_and_silu_as_the_gemms_epilogue(hopper_interpreter):
    x, w, b = ints(1, 16, 5, 5), ints(16, 1, 3, 3), ints(16)
    for activation, torch_activation in (("gelu", lambda y: F.gelu(y, approximate="tanh")), ("silu", F.silu)):
        y = conv2d(x, w, b, 1, 1, 1, activation, groups=16)
        expected = torch_activation(want(x, w, b, 1, 1, 1).double())
        torch.testing.assert_close(y.double(), expected, rtol=1e-2, atol=1e-2)


def test_numpy_arrays_an_out_and_a_misaligned_x(hopper_interpreter):
    """NHWC numpy arrays and KRSC filters; a given out; an x one element into its buffer (16-byte loads: the call
    runs over an aligned copy)."""
    import ml_dtypes

    x, w, b = ints(2, 16, 5, 6), ints(16, 1, 3, 3), ints(16)
    nhwc = lambda t: np.ascontiguousarray(t.float().numpy().transpose(0, 2, 3, 1)).astype(ml_dtypes.bfloat16)
    expected = want(x, w, b, 1, 1, 1).float().permute(0, 2, 3, 1).numpy()
    out = np.full((2, 5, 6, 16), np.nan, ml_dtypes.bfloat16)
    y = conv2d(nhwc(x), nhwc(w), b.float().numpy().astype(ml_dtypes.bfloat16), padding=1, out=out, groups=16)
    assert y is out
    np.testing.assert_array_equal(out.astype(np.float32), expected)
    buffer = np.zeros(x.numel() + 1, ml_dtypes.bfloat16)
    shifted = buffer[1:].reshape(2, 5, 6, 16)
    shifted[...] = nhwc(x)
    y = conv2d(shifted, nhwc(w), b.float().numpy().astype(ml_dtypes.bfloat16), padding=1, groups=16)
    np.testing.assert_array_equal(y.astype(np.float32), expected)


def test_skc_arrays(hopper_interpreter):
    """skc's own arrays (no torch or numpy to make block-diagonal filters from) run the direct kernel: they were
    refused as the dense convolution's operands."""
    import ml_dtypes

    x, w, b = ints(2, 8, 5, 6), ints(16, 1, 3, 3), ints(16)
    nhwc = lambda t: skc.to_device(np.ascontiguousarray(t.float().numpy().transpose(0, 2, 3, 1)).astype(
        ml_dtypes.bfloat16))
    y = conv2d(nhwc(x), nhwc(w), skc.to_device(b.float().numpy().astype(ml_dtypes.bfloat16)), padding=1, groups=8)
    np.testing.assert_array_equal(y.numpy().astype(np.float32), want(x, w, b, 1, 1, 1).float().permute(0, 2, 3, 1))


def test_the_plan_conv2d_picks(hopper_interpreter):
    """One channel a group: the direct kernel; with a config (the GEMM's tiles), or groups of 2 channels and one
    filter: the dense convolution by block-diagonal filters, as before."""
    from skc.blocks import MatmulConfig

    x = ints(1, 16, 5, 5)
    w = ints(16, 1, 3, 3)
    conv2d(x, w, padding=1, groups=16)
    assert plans_of(x, w) == {"_Stencil"}
    w2 = ints(8, 2, 3, 3)
    assert torch.equal(conv2d(x, w2, padding=1, groups=8), F.conv2d(x.double(), w2.double(), None, 1, 1, 1,
                                                                       8).bfloat16())
    assert plans_of(x, w2) == {"_BlockDiagonal"}
    config = MatmulConfig(tile_n=64)
    assert torch.equal(conv2d(x, w, padding=1, groups=16, config=config), want(x, w, None, 1, 1, 1))
    assert plans_of(x, w, config) == {"_BlockDiagonal"}


def test_an_out_that_shares_x_is_refused_by_name(hopper_interpreter):
    x, w = ints(1, 16, 5, 5), ints(16, 1, 3, 3)
    with pytest.raises(skc.LaunchError, match="out shares memory with x"):
        conv2d(x, w, padding=1, groups=16, out=x)


def test_the_torch_operator_and_its_derivative(hopper_interpreter):
    x, w, b = ints(2, 16, 5, 6), ints(32, 1, 3, 3), ints(32)
    y = torch.ops.skc.conv2d(x, w, b, (2, 2), (1, 1), groups=16)
    assert torch.equal(y, want(x, w, b, 2, 1, 1))
    xs, ws, bs = (t.clone().requires_grad_() for t in (x, w, b))
    cotangent = ints(2, 32, 5, 6).float()
    got = torch.autograd.grad(conv2d(xs, ws, bs, padding=1, groups=16).float(), (xs, ws, bs), cotangent)
    x, w, b = (t.float().requires_grad_() for t in (x, w, b))
    expected = torch.autograd.grad(F.conv2d(x, w, b, padding=1, groups=16), (x, w, b), cotangent)
    for g, e in zip(got, expected):
        assert torch.equal(g.float(), e.bfloat16().float())


@pytest.mark.parametrize("C, K, R, width, lanes, columns, threads", [
    (32, 32, 3, 8, 4, 4, 128), (144, 144, 3, 8, 9, 4, 126), (96, 96, 3, 8, 12, 4, 120), (384, 384, 3, 8, 16, 4, 128),
    (12, 24, 3, 4, 3, 4, 126),
    (8, 128, 3, 4, 2, 1, 128),   # 16 filters a channel: narrower vectors, one pixel a thread (64 sums at most)
    (96, 96, 7, 8, 12, 8, 252), (384, 384, 7, 8, 16, 8, 256),   # ConvNeXt's 7 x 7: eight pixels a thread
    (32, 64, 5, 8, 4, 4, 256),   # two filters a channel: 64 sums allow four pixels
])
def test_the_tiling_stencil_config_picks(C, K, R, width, lanes, columns, threads):
    conv = ConvShape(1, 8, 8, C, K, R, R, (1, 1), (R // 2, R // 2), (1, 1), groups=C)
    cfg = stencil_config(conv, "bf16", EpilogueSpec())
    assert (cfg.width, cfg.lanes, cfg.columns, cfg.multiplier, cfg.threads) == (width, lanes, columns, K // C, threads)
    assert cfg.width * cfg.multiplier * cfg.columns <= 64


@pytest.mark.parametrize("N, H, C, multiplier, R, stride, dtype, activation", [
    (32, 112, 32, 1, 3, 1, "bf16", None),        # MobileNetV2
    (32, 56, 144, 1, 3, 2, "bf16", "relu"),
    (32, 56, 96, 1, 7, 1, "f16", "gelu"),        # ConvNeXt
    (32, 28, 64, 2, 3, 1, "bf16", "silu"),
    (1, 16, 8, 16, 5, 1, "bf16", None),
])
def test_the_kernel_assembles_without_spills(N, H, C, multiplier, R, stride, dtype, activation):
    conv = ConvShape(N, H, H, C, multiplier * C, R, R, (stride, stride), (R // 2, R // 2), (1, 1), groups=C)
    cfg = stencil_config(conv, dtype, EpilogueSpec(bias=True, activation=activation))
    element = skc.Ptr[getattr(skc, dtype)]
    kernel = stencil_conv_kernel.compile(x=element, w=element, bias=element, out=element, cfg=cfg,
                                           block=cfg.threads, target="sm_90a")
    ptx = kernel.asm("ptx")
    assert "ld.global.v4" in ptx or cfg.width < 8   # (16-byte loads of x)
    _, log = ptx_tools.link_ptx(ptx, "sm_90a", "depthwise")
    (resources,) = ptx_tools.parse_resources(log).values()
    assert resources.spill_stores == 0 and resources.spill_loads == 0, resources


def test_a_depthwise_call_seen_before_is_one_lookup_and_the_driver_call(monkeypatch):
    """The plan's bound launch is keyed by the operands' addresses, looked up before anything else: the overlap and
    alignment checks ran when the addresses were new (they took ~140 of the ~150 us of each call before, on the
    fake driver). Each call still reaches cuLaunchKernel with the operands of that call."""
    from skc.blocks import conv, host_plans
    from skc.runtime import fake_cuda

    conv._PLANS.clear()
    checks = []
    monkeypatch.setattr(conv, "check_no_overlap", lambda *args, **kw: checks.append(args[0]))
    try:
        with fake_cuda.installed() as driver, fake_cuda.torch_installed() as torch:
            N, H, W, C = 2, 8, 8, 16
            channels_last = (H * W * C, 1, W * C, C)
            x = torch.Tensor((N, C, H, W), torch.bfloat16, strides=channels_last)
            w = torch.Tensor((C, 1, 3, 3), torch.bfloat16)
            outs = [torch.Tensor((N, C, H, W), torch.bfloat16, strides=channels_last) for _ in range(2)]
            for out in (outs[0], outs[0], outs[0], outs[1], outs[0]):
                skc.blocks.conv2d(x, w, padding=1, groups=C, out=out)
            (plan,) = conv._PLANS.values()
            assert isinstance(plan[1], conv._Stencil)
            assert len(driver.launches) == 5
            # checked until a key is bound, at its second call (Bindings): outs[0] twice, outs[1] once; then bound
            assert len(checks) == 3
            assert host_plans.torch_type(type(x)) and type(x) in host_plans._VIEWS
    finally:
        conv._PLANS.clear()


def test_arrays_of_other_frameworks_run_and_off_16_bytes_are_refused_by_name():
    """An array the host cannot copy (cupy's: FakeTensor is one) runs the direct kernel (it was refused as the dense
    convolution's operand); one starting off a 16-byte boundary is refused by its name (the aligned copy's
    AttributeError before)."""
    from skc.blocks import conv
    from skc.runtime import fake_cuda
    from skc.runtime.fake_cuda import FakeTensor

    conv._PLANS.clear()
    try:
        with fake_cuda.installed() as driver:
            x, w = FakeTensor((1, 9, 9, 16)), FakeTensor((16, 3, 3, 1))
            conv2d(x, w, padding=1, groups=16)
            assert len(driver.launches) == 1
            with pytest.raises(skc.LaunchError, match=r"conv2d: x starts at address 0x[0-9a-f]+, not on a 16-byte"):
                conv2d(FakeTensor((1, 9, 9, 16), address=x.address + 8), w, padding=1, groups=16)
            with pytest.raises(skc.LaunchError, match=r"conv2d: out starts at .*\.copy\(\) for a cupy array"):
                conv2d(x, w, padding=1, groups=16, out=FakeTensor((1, 9, 9, 16), address=x.address + 0x100004))
    finally:
        conv._PLANS.clear()
