"""Grouped conv2d of 2, 4 and 8 channels a group as the group stencil of skc/blocks/stencil.py (each output channel
reads its group's channels; the depthwise kernel's blocks with `group_channels`), in the interpreter modelling
sm_90a: exact against F.conv2d in float64 (small integers), the plan conv2d picks, which groups the stencil takes and
its tiling, and the PTX through ptxas with few spills."""
import numpy as np
import pytest

import skc
from skc.backends import ptx_tools
from skc.blocks import ConvShape, conv2d
from skc.blocks.epilogue import EpilogueSpec
from skc.blocks.stencil import LIVE_VALUES, live_values, stencil_config, stencil_conv_kernel, takes

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from helpers import conv_plan_kinds, small_ints

RNG = np.random.default_rng(56)


def ints(*shape, dtype=None):
    return small_ints(RNG, *shape, dtype=dtype)



@pytest.mark.parametrize("N, C, H, W, K, R, groups, stride, padding, dilation, bias, activation, dtype", [
    (1, 16, 6, 7, 16, 3, 4, 1, 1, 1, True, "relu", torch.bfloat16),     # 4 channels a group
    (2, 8, 5, 6, 8, 3, 4, 2, 1, 1, False, None, torch.float16),        # 2 a group, stride 2
    (1, 16, 7, 7, 32, 3, 8, 1, 1, 1, True, None, torch.bfloat16),      # 2 a group, 4 filters a group
    (1, 12, 6, 9, 12, 3, 3, 1, 2, 2, True, None, torch.bfloat16),      # 4 a group, dilation 2, K = 12
    (1, 4, 5, 5, 4, 3, 2, 1, 1, 1, False, None, torch.bfloat16),       # C = 4: one vector of two groups
    (1, 8, 9, 9, 8, 7, 4, 1, 3, 1, False, None, torch.bfloat16),       # 7 x 7, 2 a group
    (1, 32, 6, 6, 32, 3, 4, 1, 1, 1, True, "gelu", torch.bfloat16),    # 8 a group (the batched GEMM before)
    (2, 16, 9, 7, 16, 5, 2, 2, 2, 1, False, None, torch.float16),      # 8 a group, 5 x 5 stride 2
])
def test_grouped_conv2d_is_torchs(hopper_interpreter, N, C, H, W, K, R, groups, stride, padding, dilation, bias,
                                  activation, dtype):
    from skc.blocks import conv

    conv._PLANS.clear()
    x, w = ints(N, C, H, W, dtype=dtype), ints(K, C // groups, R, R, dtype=dtype)
    b = ints(K, dtype=dtype) if bias else None
    y = conv2d(x, w, b, stride, padding, dilation, activation, groups=groups)
    want = F.conv2d(x.double(), w.double(), None if b is None else b.double(), stride, padding, dilation, groups)
    want = {None: want, "relu": want.relu(), "gelu": F.gelu(want, approximate="tanh")}[activation]
    assert y.is_contiguous(memory_format=torch.channels_last) and y.dtype == dtype
    if activation == "gelu":   # (tanh's approximation in f32 against float64's: not exact)
        assert torch.allclose(y.double(), want.to(dtype).double(), rtol=1e-2, atol=1e-2)
    else:
        assert torch.equal(y, want.to(dtype))
    assert conv_plan_kinds() == {"_Stencil"}


@pytest.mark.parametrize("C, K, groups, R, stride, dilation, taken", [
    (64, 64, 64, 3, 1, 1, True),      # depthwise
    (64, 64, 32, 3, 1, 1, True),      # 2 channels a group
    (64, 64, 16, 7, 2, 1, True),      # 4
    (64, 64, 8, 3, 1, 1, True),       # 8
    (64, 128, 8, 3, 1, 1, True),      # 8 channels and 16 filters a group: one pixel a thread
    (64, 256, 8, 3, 1, 1, False),     # 8 channels and 32 filters a group: a thread's values past LIVE_VALUES
    (64, 64, 4, 3, 1, 1, False),      # 16 a group: the GEMM's tensor cores
    (48, 48, 8, 3, 1, 1, False),      # 6 a group: no power of 2 (block-diagonal filters)
    (64, 32, 16, 3, 1, 1, False),     # 4 channels and 2 filters a group: a filter per channel is no whole number
    (64, 64, 1, 3, 1, 1, False),      # no groups
])
def test_which_groups_the_stencil_takes(C, K, groups, R, stride, dilation, taken):
    assert takes(C, K, groups, R, R, stride, dilation) is taken


@pytest.mark.parametrize("C, K, groups, R, stride, width, columns", [
    (128, 128, 32, 3, 1, 8, 4),     # 4 a group: as depthwise
    (256, 256, 32, 3, 1, 8, 4),     # 8 a group
    (256, 256, 32, 3, 2, 8, 4),     # 8 a group, stride 2 (spilling 60 bytes, faster than two pixels a thread)
    (128, 256, 32, 3, 1, 8, 4),     # 4 a group, 8 filters a group
    (64, 64, 8, 7, 2, 8, 2),        # 8 a group, 7 x 7 stride 2: two pixels a thread
    (64, 128, 8, 3, 1, 8, 1),       # 8 a group, 16 filters a group: one pixel a thread
    (12, 12, 3, 3, 1, 4, 4),        # C = 12: vectors of 4 (one group)
])
def test_the_tiling_stencil_config_picks(C, K, groups, R, stride, width, columns):
    conv = ConvShape(4, 16, 16, C, K, R, R, (stride, stride), (R // 2, R // 2), (1, 1), groups=groups)
    cfg = stencil_config(conv, "bf16", EpilogueSpec())
    assert (cfg.group_channels, cfg.width, cfg.columns, cfg.multiplier) == (C // groups, width, columns, K // C)
    assert 256 - cfg.lanes < cfg.threads <= 256   # (blocks of about 256 threads: GROUP_THREADS)
    assert live_values(C // groups, K // C, cfg.width, cfg.columns, R, stride, 1) <= LIVE_VALUES


@pytest.mark.parametrize("g, multiplier, R, stride", [
    (2, 1, 3, 1), (4, 1, 3, 2), (8, 1, 3, 1), (8, 1, 3, 2), (4, 2, 3, 1), (2, 2, 5, 1), (4, 1, 7, 1), (8, 1, 7, 2),
])
def test_the_kernel_assembles_with_few_spills(g, multiplier, R, stride):
    C = 256
    conv = ConvShape(8, 28, 28, C, multiplier * C, R, R, (stride, stride), (R // 2, R // 2), (1, 1), groups=C // g)
    cfg = stencil_config(conv, "bf16", EpilogueSpec(bias=True, activation="gelu"))
    element = skc.Ptr[skc.bf16]
    kernel = stencil_conv_kernel.compile(x=element, w=element, bias=element, out=element, cfg=cfg,
                                         block=cfg.threads, target="sm_90a")
    _, log = ptx_tools.link_ptx(kernel.asm("ptx"), "sm_90a", "stencil")
    (resources,) = ptx_tools.parse_resources(log).values()
    # (none but 8 channels 3 x 3 stride 2: 60 bytes stored, 68 loaded, with four pixels a thread, which ran 1.30x
    # as fast as two without a spill on an H100, fifty-sixth session; a spill of hundreds of bytes fails here)
    spilled = (g, multiplier, R, stride) == (8, 1, 3, 2)
    assert resources.spill_stores <= (64 if spilled else 0) and resources.spill_loads <= (72 if spilled else 0), \
        resources


def shifted(t, by: int):
    """t's values in a view `by` elements into a buffer of its own (channels_last strides): off the 16-byte boundary
    the stencil's vectors load and store at."""
    buffer = torch.zeros(t.numel() + by, dtype=t.dtype)
    view = buffer[by:].as_strided(t.shape, t.stride())
    view.copy_(t)
    return view


@pytest.mark.parametrize("C, K, groups, R, S, stride, padding, dilation, x_by, out_by", [
    (16, 32, 4, 3, 5, (2, 1), (1, 2), (1, 2), 1, 0),    # 4 a group, 8 filters a group; x one element in
    (8, 8, 4, 2, 3, (1, 2), (0, 1), (2, 1), 0, 3),      # 2 a group; out three elements in
    (24, 24, 3, 3, 3, (1, 1), (2, 0), (2, 1), 2, 1),    # 8 a group; both
])
def test_grouped_conv2d_of_views_off_the_vectors_boundary(hopper_interpreter, C, K, groups, R, S, stride, padding,
                                                          dilation, x_by, out_by):
    """x and out that start off a 16-byte boundary (views into their buffers), h and w of other strides, paddings
    and dilations: the call runs over aligned copies and gives torch's answer in the caller's out."""
    from skc.blocks import conv

    conv._PLANS.clear()
    x, w, b = ints(2, C, 7, 9), ints(K, C // groups, R, S), ints(K)
    want = F.conv2d(x.double(), w.double(), b.double(), stride, padding, dilation, groups).bfloat16()
    x = shifted(x, x_by) if x_by else x
    out = shifted(torch.full(want.shape, float("nan"), dtype=torch.bfloat16).to(memory_format=torch.channels_last),
                  out_by) if out_by else None
    y = conv2d(x, w, b, stride, padding, dilation, groups=groups, out=out)
    assert torch.equal(y, want) and (out is None or y.data_ptr() == out.data_ptr())
    assert conv_plan_kinds() == {"_Stencil"}


@pytest.mark.parametrize("C, K, groups, R, S, lane_bytes", [
    (16, 16 * 256, 16, 7, 7, 25088),      # depthwise, 256 filters a channel: a lane of one channel
    (16, 16 * 4096, 16, 7, 7, 401408),    # 4,096 filters a channel (block-diagonal filters instead)
    (16, 16, 2, 13, 13, 21632),           # 8 a group, 13 x 13: a lane of one group
    (16, 16, 2, 140, 13, 232960),         # 8 a group, 140 x 13 (S alone was asked before)
])
def test_the_stencil_takes_only_filters_a_block_can_stage(C, K, groups, R, S, lane_bytes):
    """A block of one lane of one vector (a group wide) stages lane_bytes of filters: within the device's shared
    memory (sm_90a's by default), the stencil takes the convolution."""
    assert takes(C, K, groups, R, S) is (lane_bytes <= 232448)
    assert takes(C, K, groups, R, S, max_shared_bytes=lane_bytes) and not takes(C, K, groups, R, S, 1, 1,
                                                                                 lane_bytes - 1)


@pytest.mark.parametrize("C, K, groups, R, lanes", [
    (128, 1024, 128, 11, 8),    # depthwise, 8 filters a channel, 11 x 11: 16 lanes took 247,808 bytes
    (64, 1024, 64, 11, 8),      # 16 filters a channel (vectors of 4): likewise
    (128, 128, 16, 13, 8),      # 8 a group, 13 x 13: 16 lanes took 346,112 bytes
    (16, 16 * 256, 16, 7, 8),   # 256 filters a channel, 7 x 7: 25,088 bytes a lane; 16 lanes took 401,408
])
def test_a_blocks_filters_fit_in_shared_memory(C, K, groups, R, lanes):
    """stencil_config gives a block fewer lanes where its slice's filters would pass the device's shared memory (the
    kernel's compile failed: 'shared memory of 247808 bytes exceeds the 232448 bytes a block may use on sm_90a',
    at ChannelTapsLoader)."""
    conv = ConvShape(1, 16, 16, C, K, R, R, (1, 1), (R // 2, R // 2), (1, 1), groups=groups)
    cfg = stencil_config(conv, "bf16", EpilogueSpec())
    assert cfg.lanes == lanes and cfg.shared_bytes <= skc.get_target("sm_90a").max_shared_bytes
    small = stencil_config(conv, "bf16", EpilogueSpec(), max_shared_bytes=48 * 1024)
    assert small.shared_bytes <= 48 * 1024 or small.lanes == 1


def test_a_depthwise_conv2d_of_many_filters_and_large_taps_runs(hopper_interpreter):
    """Depthwise, 16 filters a channel, 11 x 11 (the compile error above before): exact, on the stencil."""
    from skc.blocks import conv

    x, w, b = ints(1, 64, 3, 4), ints(1024, 1, 11, 11), ints(1024)
    y = conv2d(x, w, b, padding=5, groups=64)
    assert torch.equal(y, F.conv2d(x.double(), w.double(), b.double(), padding=5, groups=64).bfloat16())
    assert conv_plan_kinds() == {"_Stencil"}
    (_, plan), = conv._PLANS.values()
    assert plan.cfg.lanes == 8


def test_the_stencil_fits_the_devices_shared_memory(monkeypatch):
    """On a device of 64 KB a block (gfx942, in the interpreter), a depthwise 7 x 7 of 8 filters a channel over 128
    channels stages its filters in 8 lanes, not 16 (100,352 bytes: the compile failed, 'shared memory of 100352
    bytes exceeds the 65536 bytes a block may use on gfx942')."""
    from skc.blocks import conv
    from skc.runtime import devices

    monkeypatch.setenv("SKC_INTERPRETER_TARGET", "gfx942")
    monkeypatch.setattr(devices, "_selected", [devices.Device("interpreter")])
    devices._target_of.cache_clear()
    conv._PLANS.clear()
    try:
        assert skc.current_device().target.max_shared_bytes == 65536
        x, w = ints(1, 128, 3, 4), ints(1024, 1, 7, 7)
        y = conv2d(x, w, padding=3, groups=128)
        assert torch.equal(y, F.conv2d(x.double(), w.double(), padding=3, groups=128).bfloat16())
        (_, plan), = conv._PLANS.values()
        assert type(plan).__name__ == "_Stencil" and plan.cfg.lanes == 8 and plan.cfg.shared_bytes <= 65536
    finally:
        conv._PLANS.clear()
        devices._target_of.cache_clear()
