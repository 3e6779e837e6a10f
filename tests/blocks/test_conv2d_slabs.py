"""Grouped conv2d of 4, 8 and 16 channels a group over slabs of conv.SLAB channels (fifty-seventh session; 16 since
the sixty-first): the batched GEMM over C / SLAB groups, each slab's filters block-diagonal, in the interpreter
modelling sm_90a: exact against F.conv2d in float64 (small integers), the plans conv2d picks, and the slab filters
themselves."""
import numpy as np
import pytest

from skc.blocks import conv, conv2d

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from helpers import conv_plan_kinds, small_ints

RNG = np.random.default_rng(57)


def ints(*shape, dtype=None):
    return small_ints(RNG, *shape, dtype=dtype)


@pytest.fixture(autouse=True)
def slabs_at_any_work(monkeypatch):
    """These small problems take slabs as the large ones do (conv.SLAB_WORK is where the default starts)."""
    monkeypatch.setattr(conv, "SLAB_WORK", 0)



@pytest.mark.parametrize("N, C, H, W, K, R, groups, stride, padding, dilation, bias, activation, dtype", [
    (1, 64, 6, 7, 64, 3, 16, 1, 1, 1, True, "relu", torch.bfloat16),     # 4 a group: one slab (a dense conv)
    (1, 128, 5, 6, 128, 3, 16, 2, 1, 1, False, None, torch.float16),    # 8 a group: two slabs, stride 2
    (1, 128, 6, 6, 64, 3, 32, 1, 1, 1, True, None, torch.bfloat16),     # 4 channels and 2 filters a group
    (1, 128, 5, 5, 256, 3, 16, 1, 2, 2, False, None, torch.bfloat16),   # 8 and 16 filters a group, dilation 2
    (2, 64, 5, 4, 16, 1, 16, 1, 0, 1, True, None, torch.bfloat16),      # 4 and 1 filter a group, 1 x 1
    (1, 128, 5, 6, 64, 3, 8, 1, 1, 1, True, None, torch.float16),       # 16 and 8 filters a group: two slabs
])
def test_groups_of_4_8_and_16_channels_run_over_slabs(hopper_interpreter, N, C, H, W, K, R, groups, stride, padding,
                                                    dilation, bias, activation, dtype):
    conv._PLANS.clear()
    x, w = ints(N, C, H, W, dtype=dtype), ints(K, C // groups, R, R, dtype=dtype)
    b = ints(K, dtype=dtype) if bias else None
    y = conv2d(x, w, b, stride, padding, dilation, activation, groups=groups)
    want = F.conv2d(x.double(), w.double(), None if b is None else b.double(), stride, padding, dilation, groups)
    want = want.relu() if activation == "relu" else want
    assert y.is_contiguous(memory_format=torch.channels_last) and y.dtype == dtype
    assert torch.equal(y, want.to(dtype))
    assert "_BlockDiagonal" in conv_plan_kinds() and "_Stencil" not in conv_plan_kinds()
    out = torch.full_like(y, float("nan"))
    assert conv2d(x, w, b, stride, padding, dilation, activation, out=out, groups=groups) is out
    assert torch.equal(out, y)


def test_a_plans_next_call_takes_the_new_filters(hopper_interpreter):
    """The slab filters are made each call (arrays on no GPU): new values in w (the same facts, in place too) give the
    new answer."""
    conv._PLANS.clear()
    x, w = ints(1, 64, 5, 5), ints(64, 8, 3, 3)
    first = conv2d(x, w, padding=1, groups=8)
    w.copy_(ints(64, 8, 3, 3))
    second = conv2d(x, w, padding=1, groups=8)
    assert torch.equal(second, F.conv2d(x.double(), w.double(), None, 1, 1, 1, 8).bfloat16())
    assert not torch.equal(first, second) and len(conv._PLANS) >= 1


def test_each_launch_stream_keeps_its_filters_and_w_is_copied_onto_them_each_call(hopper_interpreter, monkeypatch):
    """Beside torch's CUDA tensors a launch stream's slab filters are kept (zeros made once), w copied onto their
    diagonals each call, so the convolution over them keeps one address. Here conv.keeping_stream names the stream
    (two made-up handles) for the interpreter's tensors: new values in w, in place or a new tensor of the same facts,
    give the new answer; each stream has one set, reused."""
    conv._PLANS.clear()
    stream = [11]
    monkeypatch.setattr(conv, "keeping_stream", lambda x, given: stream[0])
    x, w = ints(1, 64, 5, 5), ints(64, 8, 3, 3)

    def check(w):
        want = F.conv2d(x.double(), w.double(), None, 1, 1, 1, 8).bfloat16()
        assert torch.equal(conv2d(x, w, padding=1, groups=8), want)

    check(w)
    plan, = [gemm for _, gemm in conv._PLANS.values() if isinstance(gemm, conv._BlockDiagonal)]
    kept = plan.kept[11]
    address = kept.filters.data_ptr()
    w.copy_(ints(64, 8, 3, 3))
    check(w)
    check(ints(64, 8, 3, 3))
    assert list(plan.kept) == [11] and plan.kept[11] is kept and kept.filters.data_ptr() == address
    stream[0] = 12
    check(ints(64, 8, 3, 3))
    assert sorted(plan.kept) == [11, 12] and plan.kept[12].filters.data_ptr() != address
    stream[0] = None   # (a call a CUDA graph captures, or arrays other than torch's: filters made for the call)
    check(ints(64, 8, 3, 3))
    assert sorted(plan.kept) == [11, 12]


@pytest.mark.parametrize("C, K, groups, slabs", [
    (64, 64, 16, True), (128, 128, 16, True), (256, 256, 32, True),   # 4, 8, 8 channels a group
    (512, 512, 32, True),    # 16 a group (sixty-first session): 16 filters a group, 64 a slab
    (512, 96, 32, False),    # 16 a group, 3 filters a group: 12 a slab, no multiple of 8
    (96, 96, 24, False),     # 4 a group, C no multiple of 64: the stencil
    (128, 128, 64, False),   # 2 a group: the stencil (1.09-1.3x as fast as slabs)
    (1024, 1024, 32, False),   # 32 a group: the batched GEMM a group (level with slabs)
    (64, 64, 64, False), (64, 64, 1, False),
])
def test_which_groups_run_over_slabs(C, K, groups, slabs):
    assert conv.slab_takes(C, K, groups, 0) is slabs


def test_slabs_start_at_slab_work(monkeypatch):
    """By default slabs start at 2^28 multiply-adds (sixty-first session, H100: with each stream's filters kept the
    slab path costs 50-63 µs a call, and ran faster than the stencil from 4.6e8 on, slower from 3.5e8 down): ResNeXt-50's
    stride-1 28 x 28 x 256 in groups of 8 and 14 x 14 x 512 in groups of 16 at batch 32 take them, the 28 x 28 x 256 of 4
    a group in 64 groups and the 16-a-group stage at batch 8 do not."""
    monkeypatch.undo()
    assert conv.SLAB_WORK == 2 ** 28
    assert conv.slab_work(32, 28, 28, 256, 3, 3, 256, 32, (1, 1)) == 32 * 28 * 28 * 256 * 9 * 8
    assert conv.slab_takes(256, 256, 32, conv.slab_work(32, 28, 28, 256, 3, 3, 256, 32, (1, 1)))
    assert conv.slab_takes(256, 256, 32, conv.slab_work(32, 56, 56, 256, 3, 3, 256, 32, (2, 2)))
    assert conv.slab_takes(512, 512, 32, conv.slab_work(32, 14, 14, 512, 3, 3, 512, 32, (1, 1)))
    assert not conv.slab_takes(256, 256, 64, conv.slab_work(32, 28, 28, 256, 3, 3, 256, 64, (1, 1)))
    assert not conv.slab_takes(512, 512, 32, conv.slab_work(8, 14, 14, 512, 3, 3, 512, 32, (1, 1)))


def test_a_given_config_or_a_stencil_size_keeps_its_path(hopper_interpreter):
    """C = 96 in groups of 4 (no multiple of 64) stays on the stencil; a config given runs the batched GEMM a
    group (8 channels a group) as before."""
    from skc.blocks import MatmulConfig

    conv._PLANS.clear()
    x, w = ints(1, 96, 5, 5), ints(96, 4, 3, 3)
    assert torch.equal(conv2d(x, w, padding=1, groups=24), F.conv2d(x.double(), w.double(), None, 1, 1, 1, 24).bfloat16())
    assert conv_plan_kinds() == {"_Stencil"}
    conv._PLANS.clear()
    x, w = ints(1, 128, 5, 5), ints(128, 8, 3, 3)
    y = conv2d(x, w, padding=1, groups=16, config=MatmulConfig(tile_m=128, tile_n=64, tile_k=64))
    assert torch.equal(y, F.conv2d(x.double(), w.double(), None, 1, 1, 1, 16).bfloat16())
    assert "_BlockDiagonal" not in conv_plan_kinds() and "_Stencil" not in conv_plan_kinds()


@pytest.mark.parametrize("K, C, groups, channels", [(32, 32, 8, 32), (64, 128, 32, 64), (64, 128, 16, 64),
                                                     (12, 12, 3, 12)])
def test_slab_filters_hold_each_group_on_its_slabs_diagonal(K, C, groups, channels):
    """_block_diagonal(w, channels, groups): filter k's C/groups channels at its group's place within its slab of
    `channels` (all C: the dense filters), zeros elsewhere; numpy and torch alike."""
    w = ints(K, C // groups, 3, 2, dtype=torch.float32)
    dense = conv._block_diagonal(w, channels, groups)
    assert tuple(dense.shape) == (K, channels, 3, 2)
    g, filters = C // groups, K // groups
    expected = torch.zeros(K, channels, 3, 2)
    for k in range(K):
        group = k // filters
        start = group * g % channels
        expected[k, start:start + g] = w[k]
    assert torch.equal(dense, expected)
    kept = conv._KeptFilters(w, channels, groups)   # (a launch stream's, kept: zeros once, w copied on at each call)
    assert torch.equal(kept.filters, torch.zeros_like(expected))
    kept.fill(w)
    assert torch.equal(kept.filters, expected)
    krsc = np.ascontiguousarray(w.permute(0, 2, 3, 1).numpy())
    assert np.array_equal(conv._block_diagonal(krsc, channels, groups), expected.permute(0, 2, 3, 1).numpy())
