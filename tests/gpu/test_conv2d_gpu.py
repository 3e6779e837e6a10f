"""conv2d (the GEMM with the im2col loader) on the GPU against torch.nn.functional.conv2d (cuDNN), outputs
poisoned first. The cases with H != W, stride 2 and asymmetric padding pin down the order of the im2col
map's corner arrays (innermost first) and the bounding-box walk the interpreter models."""
import pytest

import skc

pytestmark = pytest.mark.gpu
torch = pytest.importorskip("torch")


def channels_last(*shape, dtype=torch.bfloat16):
    return torch.randn(*shape, device="cuda", dtype=dtype).to(memory_format=torch.channels_last)


def relative_error(got, expected):
    return ((got.float() - expected).norm() / expected.norm()).item()


def check(N, C, H, W, K, R, S, stride=1, padding=0, dilation=1, dtype=torch.bfloat16, bias=False, activation=None,
          config=None):
    x, w = channels_last(N, C, H, W, dtype=dtype), channels_last(K, C, R, S, dtype=dtype)
    b = torch.randn(K, device="cuda", dtype=dtype) if bias else None
    expected = torch.nn.functional.conv2d(x.float(), w.float(), b.float() if bias else None, stride=stride,
                                          padding=padding, dilation=dilation)
    if activation == "relu":
        expected = torch.relu(expected)
    out = torch.full(expected.shape, float("nan"), device="cuda", dtype=dtype).to(
        memory_format=torch.channels_last)
    y = skc.blocks.conv2d(x, w, bias=b, stride=stride, padding=padding, dilation=dilation, activation=activation,
                          out=out, config=config)
    torch.cuda.synchronize()
    assert y is out and not out.isnan().any()
    assert relative_error(out, expected) <= 1e-2


@pytest.mark.parametrize("N, C, H, W, K, R, stride, padding, dilation", [
    (4, 64, 56, 56, 64, 3, 1, 1, 1),      # 3x3 stride 1 pad 1
    (4, 128, 28, 28, 128, 3, 2, 1, 1),    # stride 2
    (4, 256, 14, 14, 64, 1, 1, 0, 1),     # 1x1
    (2, 64, 20, 20, 64, 3, 1, 2, 2),      # dilation 2
    (3, 64, 15, 13, 96, 3, 1, 1, 1),      # odd H and W, H != W
    (2, 64, 16, 15, 64, 3, 2, 1, 1),      # stride 2 with H != W: different upper corners along h and w
    (1, 32, 9, 11, 72, 3, 1, 1, 1),       # N = 1, C below a channel block
    (1, 8, 7, 7, 16, 3, 1, 1, 1),         # C = 8
    (2, 96, 10, 12, 136, 3, 1, (1, 0), 1),  # asymmetric padding, C = 1.5 channel blocks, K past a tile
    (2, 64, 15, 13, 64, 3, 1, "same", 2),   # torch's padding words
    (1, 32, 9, 11, 40, 5, 1, "valid", 1),
])
def test_conv2d_matches_torch(N, C, H, W, K, R, stride, padding, dilation):
    check(N, C, H, W, K, R, R, stride, padding, dilation)


def test_fp16_bias_and_relu():
    check(2, 64, 14, 14, 128, 3, 3, padding=1, dtype=torch.float16, bias=True, activation="relu")


def test_resnet_stem_sized_batch():
    check(32, 64, 56, 56, 64, 3, 3, padding=1)


def test_numpy_layout_device_arrays_agree_with_torch():
    x, w = channels_last(2, 64, 12, 10), channels_last(64, 64, 3, 3)
    x_nhwc = skc.to_device(x.permute(0, 2, 3, 1).float().cpu().numpy(), dtype=skc.bf16)
    w_krsc = skc.to_device(w.permute(0, 2, 3, 1).float().cpu().numpy(), dtype=skc.bf16)
    y = skc.blocks.conv2d(x_nhwc, w_krsc, padding=1)
    expected = torch.nn.functional.conv2d(x.float(), w.float(), padding=1).permute(0, 2, 3, 1)
    assert relative_error(torch.from_numpy(y.numpy()).cuda(), expected) <= 1e-2


@pytest.mark.parametrize("H, W, R, stride, pad, dilation", [(7, 9, 3, 1, 1, 1), (8, 7, 3, 2, 1, 1), (9, 7, 3, 1, 2, 2),
                                                            (6, 11, 1, 2, 0, 1)])
def test_im2col_boxes_match_the_interpreter(H, W, R, stride, pad, dilation):
    """One TMA im2col copy at a time (the hand-written kernel of tests/runtime/test_tma_im2col.py) on the GPU
    against the documented walk the interpreter models: pins down the corner arrays' order and the walk."""
    import numpy as np
    from runtime.test_tma_im2col import conv_case, im2col_boxes, reference_im2col

    N, C, pixels, channels = 2, 24, 32, 8
    x = np.random.default_rng(3).integers(1, 60000, (N, H, W, C)).astype(np.uint16)
    P, Q, lower, upper = conv_case(N, H, W, C, R, R, stride, pad, dilation)
    tmap = skc.Im2colTensorMap(skc.to_device(x, dtype=skc.u16), channels=channels, pixels=pixels, lower=lower,
                               upper=upper, strides=(stride, stride), swizzle=0)
    for m0, r, s, c0 in [(0, 0, 0, 0), (5, R - 1, 0, 8), (Q + 3, R // 2, R - 1, 16), (N * P * Q - 3, R - 1, R - 1, 8)]:
        n, p, q = m0 // (P * Q), m0 // Q % P, m0 % Q
        base = (n, p * stride - pad, q * stride - pad)
        out = skc.to_device(np.zeros(pixels * channels, np.uint16), dtype=skc.u16)
        im2col_boxes[(1,), (128,)](tmap, out, *base, c0, r * dilation, s * dilation, (pixels, channels))
        expected = reference_im2col(x, pixels, channels, base, c0, (r * dilation, s * dilation), lower, upper,
                                    (stride, stride))
        np.testing.assert_array_equal(out.numpy().reshape(pixels, channels), expected)


def test_pointwise_gemm_path_with_bias_and_relu():
    check(4, 256, 14, 14, 64, 1, 1, bias=True, activation="relu")   # 1x1 stride 1: the plain GEMM
    check(2, 72, 9, 7, 136, 1, 1)                                    # C and K not multiples of a tile


def test_a_ready_plan_follows_new_addresses_and_streams():
    """The second and third calls take the plan of the first: new tensors at new addresses (x's im2col map
    encoded again, the filter's patched) and a side stream must still give the right result."""
    w = channels_last(64, 64, 3, 3)
    stream = torch.cuda.Stream()
    for i in range(3):
        x = channels_last(2, 64, 12, 10)
        out = torch.full((2, 64, 12, 10), float("nan"), device="cuda", dtype=torch.bfloat16).to(
            memory_format=torch.channels_last)
        with torch.cuda.stream(stream if i == 2 else torch.cuda.current_stream()):
            skc.blocks.conv2d(x, w, padding=1, out=out)
        torch.cuda.synchronize()
        expected = torch.nn.functional.conv2d(x.float(), w.float(), padding=1)
        assert relative_error(out, expected) <= 1e-2
        w = channels_last(64, 64, 3, 3) if i == 0 else w


@pytest.mark.parametrize("tiles", [(128, 256), (64, 128), (128, 64), (192, 128)])
def test_configured_tiles(tiles):
    from skc.blocks import MatmulConfig

    cfg = MatmulConfig(tile_m=tiles[0], tile_n=tiles[1], consumers=tiles[0] // 64, stages=3)
    x, w = channels_last(2, 64, 14, 14), channels_last(256, 64, 3, 3)
    expected = torch.nn.functional.conv2d(x.float(), w.float(), padding=1)
    out = skc.blocks.conv2d(x, w, padding=1, config=cfg)
    torch.cuda.synchronize()
    assert relative_error(out, expected) <= 1e-2


def test_three_consumer_tiles_chosen_for_a_deep_small_conv():
    """512x7x7 -> 512 at batch 128: on 132 SMs conv2d picks 192 x 128 tiles (33 x 4 of them, one per SM)."""
    from skc.blocks.conv import _PLANS

    check(128, 512, 7, 7, 512, 3, 3, padding=1)
    (tiles,) = {(gemm.cfg.tile_m, gemm.cfg.tile_n) for conv, gemm in _PLANS.values()
                if (conv.N, conv.C, conv.H, conv.K, conv.R) == (128, 512, 7, 512, 3)}
    assert tiles == (192, 128) or skc.current_device().multiprocessors != 132, tiles


def test_pointwise_with_many_short_tiles_per_block():
    """256x56x56 -> 64 1x1 at batch 128: 3136 tiles of 128 x 64 with 4 k-steps each, so a block's epilogue stores
    come back to back (a staging buffer reused before the store that read it had finished gave 3 % errors)."""
    check(128, 256, 56, 56, 64, 1, 1)
    check(128, 64, 56, 56, 256, 1, 1)


@pytest.mark.parametrize("N, C, H, W, K, R, stride, padding, dilation", [
    (1, 16, 262, 262, 32, 3, 1, 0, 130),   # taps 260 pixels apart: past TMA im2col's reach
    (2, 16, 6, 6, 32, 3, 130, 129, 1),     # padding 129: a corner outside [-128, 127]
])
def test_what_tma_im2col_cannot_reach_loads_with_vectors(N, C, H, W, K, R, stride, padding, dilation):
    check(N, C, H, W, K, R, R, stride, padding, dilation)


def test_the_vector_im2col_loader_when_the_config_asks():
    config = skc.blocks.MatmulConfig(tile_m=128, tile_n=128, consumers=2, stages=4, loader="vector")
    check(4, 64, 30, 30, 96, 3, 3, 2, 1, 1, bias=True, activation="relu", config=config)


@pytest.mark.parametrize("N, C, H, W, K, R, stride, padding, dilation, groups", [
    (2, 128, 28, 28, 128, 3, 1, 1, 1, 2),     # 64 channels a group: TMA im2col
    (2, 256, 14, 14, 256, 3, 1, 1, 1, 2),     # 128 a group
    (2, 128, 15, 13, 96, 3, 2, 1, 1, 4),      # 32 a group: the vector loader; tails
    (2, 512, 14, 14, 512, 3, 1, 1, 1, 32),    # ResNeXt's 16 channels a group: 8 slabs of 64
    (2, 256, 9, 11, 128, 3, 1, 1, 1, 16),     # 16 a group, 8 filters a group, tails: slabs of 32 filters
    (2, 512, 7, 7, 96, 3, 1, 1, 1, 32),       # 16 a group, 3 filters a group: no slabs (12 filters a slab)
    (2, 64, 20, 20, 64, 5, 1, 4, 2, 2),       # dilation
    (2, 256, 14, 14, 256, 1, 1, 0, 1, 8),     # pointwise
    (2, 64, 28, 28, 64, 3, 2, 1, 1, 64),      # depthwise: the direct kernel (stencil.py)
    (2, 32, 14, 14, 64, 3, 1, 1, 1, 32),      # depthwise with two filters a channel
    (2, 64, 14, 14, 64, 3, 1, 1, 1, 16),      # 4 channels a group: one slab of 64 (a dense conv; the stencil before)
    (3, 128, 29, 27, 128, 3, 2, 1, 1, 64),    # 2 a group, stride 2, tails
    (2, 96, 17, 19, 192, 3, 1, 1, 1, 24),     # 4 a group, 8 filters a group: the group stencil (C % 64)
    (2, 256, 15, 15, 256, 3, 1, 1, 1, 32),    # 8 a group: 4 slabs of 64 (the stencil before, the batched GEMM before it)
    (2, 224, 15, 13, 224, 3, 1, 1, 1, 28),    # 8 a group: the group stencil (C % 64)
    (3, 128, 29, 27, 256, 3, 2, 1, 1, 32),    # 4 a group, 8 filters a group, stride 2, tails: slabs
    (2, 128, 14, 14, 64, 3, 1, 1, 1, 16),     # 8 a group, 4 filters a group: slabs of 32 filters
    (2, 1024, 7, 7, 1024, 3, 1, 1, 1, 128),   # 8 a group, 16 slabs
    (2, 64, 21, 18, 64, 7, 2, 3, 1, 8),       # 8 a group, 7 x 7 stride 2: one slab
    (2, 32, 16, 16, 32, 5, 1, 4, 2, 16),      # 2 a group, dilation 2
    (2, 12, 12, 12, 12, 3, 1, 1, 1, 3),       # 4 a group, K = 12 (no multiple of 8: the stencil's stores take it)
])
@pytest.mark.parametrize("bias", [False, True])
def test_grouped_conv2d_matches_torch(N, C, H, W, K, R, stride, padding, dilation, groups, bias, monkeypatch):
    # (fifty-fourth session: one launch over the groups, out stored through a groups x pixels x K/groups map; these
    # small problems take slabs where large ones would: conv.SLAB_WORK)
    monkeypatch.setattr(skc.blocks.conv, "SLAB_WORK", 0)
    x, w = channels_last(N, C, H, W), channels_last(K, C // groups, R, R)
    b = torch.randn(K, device="cuda", dtype=torch.bfloat16) if bias else None
    expected = torch.nn.functional.conv2d(x.float(), w.float(), b.float() if bias else None, stride=stride,
                                          padding=padding, dilation=dilation, groups=groups)
    out = torch.full(expected.shape, float("nan"), device="cuda", dtype=torch.bfloat16).to(
        memory_format=torch.channels_last)
    y = skc.blocks.conv2d(x, w, bias=b, stride=stride, padding=padding, dilation=dilation, out=out, groups=groups)
    torch.cuda.synchronize()
    assert y is out and not out.isnan().any()
    assert relative_error(out, expected) <= 1e-2


@pytest.mark.parametrize("dtype, activation", [(torch.float16, "gelu"), (torch.bfloat16, "silu")])
def test_slabs_of_groups_with_fused_epilogues_and_new_filters(dtype, activation, monkeypatch):
    """Groups of 4 channels over slabs of 64 (fifty-seventh session): fp16 and bf16, bias and activation fused,
    outputs poisoned; a second call with new filters in the same tensor gives the new answer (the slab filters are
    made each call). (Slabs at any work, as for a large problem: conv.SLAB_WORK.)"""
    monkeypatch.setattr(skc.blocks.conv, "SLAB_WORK", 0)
    x, w = channels_last(4, 256, 28, 28, dtype=dtype), channels_last(256, 4, 3, 3, dtype=dtype)
    b = torch.randn(256, device="cuda", dtype=dtype)
    act = {"gelu": lambda t: torch.nn.functional.gelu(t, approximate="tanh"), "silu": torch.nn.functional.silu}
    for _ in range(2):
        expected = act[activation](torch.nn.functional.conv2d(x.float(), w.float(), b.float(), padding=1, groups=64))
        out = torch.full(expected.shape, float("nan"), device="cuda", dtype=dtype).to(memory_format=torch.channels_last)
        y = skc.blocks.conv2d(x, w, bias=b, padding=1, activation=activation, out=out, groups=64)
        torch.cuda.synchronize()
        assert y is out and not out.isnan().any()
        assert relative_error(out, expected) <= 1e-2
        w.copy_(torch.randn_like(w))


def test_slab_filters_kept_per_stream_shared_by_threads_and_captured_by_graphs(monkeypatch):
    """A launch stream keeps its slab filters, w copied onto them each call (conv._KeptFilters): two side streams
    with other filters, launched in turn with no wait between, each give their own answer; two threads on one stream
    (a lock keeps each thread's copy and launch together) too; a CUDA graph captures filters of its own, and its replay
    after w changed in place gives the new answer. (Slabs at any work: conv.SLAB_WORK.)"""
    import threading

    monkeypatch.setattr(skc.blocks.conv, "SLAB_WORK", 0)
    x = channels_last(8, 128, 28, 28)
    ws = [channels_last(128, 4, 3, 3) for _ in range(2)]
    expected = [torch.nn.functional.conv2d(x.float(), w.float(), padding=1, groups=32) for w in ws]
    streams = [torch.cuda.Stream() for _ in range(2)]
    torch.cuda.synchronize()
    outs = [[], []]
    for _ in range(4):
        for i in (0, 1):
            with torch.cuda.stream(streams[i]):
                outs[i].append(skc.blocks.conv2d(x, ws[i], padding=1, groups=32))
    torch.cuda.synchronize()
    for i in (0, 1):
        assert all(relative_error(out, expected[i]) <= 1e-2 for out in outs[i])

    results = [[], []]

    def calls(i):
        for _ in range(20):
            results[i].append(skc.blocks.conv2d(x, ws[i], padding=1, groups=32))

    threads = [threading.Thread(target=calls, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    torch.cuda.synchronize()
    for i in (0, 1):
        assert len(results[i]) == 20 and all(relative_error(out, expected[i]) <= 1e-2 for out in results[i])

    w = ws[0].clone()
    out = torch.full_like(outs[0][0], float("nan"))
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        skc.blocks.conv2d(x, w, padding=1, out=out, groups=32)   # (warm: the plans made outside the capture)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        skc.blocks.conv2d(x, w, padding=1, out=out, groups=32)
    w.copy_(ws[1])
    out.fill_(float("nan"))
    graph.replay()
    torch.cuda.synchronize()
    assert not out.isnan().any() and relative_error(out, expected[1]) <= 1e-2


@pytest.mark.parametrize("N, C, H, W, multiplier, R, stride, padding, dilation, dtype, activation", [
    (4, 32, 57, 61, 1, 3, 1, 1, 1, torch.bfloat16, None),      # 3 x 3: blocks of 128, tails of rows and columns
    (3, 144, 28, 28, 1, 3, 2, 1, 1, torch.bfloat16, "relu"),   # stride 2, two channel slices of 72
    (2, 96, 30, 29, 1, 7, 1, 3, 1, torch.float16, "gelu"),     # 7 x 7 (ConvNeXt): eight pixels a thread
    (2, 40, 19, 17, 1, 5, 2, 4, 2, torch.bfloat16, "silu"),    # 5 x 5, dilation 2, stride 2
    (2, 24, 16, 16, 4, 3, 1, 1, 1, torch.bfloat16, None),      # four filters a channel
])
def test_depthwise_conv2d_matches_torch(N, C, H, W, multiplier, R, stride, padding, dilation, dtype, activation):
    # (fifty-fifth session: the direct kernel on CUDA cores; outputs poisoned, bias fused, against float32 torch)
    x, w = channels_last(N, C, H, W, dtype=dtype), channels_last(multiplier * C, 1, R, R, dtype=dtype)
    b = torch.randn(multiplier * C, device="cuda", dtype=dtype)
    expected = torch.nn.functional.conv2d(x.float(), w.float(), b.float(), stride=stride, padding=padding,
                                          dilation=dilation, groups=C)
    expected = {None: expected, "relu": torch.relu(expected), "silu": torch.nn.functional.silu(expected),
                "gelu": torch.nn.functional.gelu(expected, approximate="tanh")}[activation]
    out = torch.full(expected.shape, float("nan"), device="cuda", dtype=dtype).to(memory_format=torch.channels_last)
    y = skc.blocks.conv2d(x, w, bias=b, stride=stride, padding=padding, dilation=dilation, activation=activation,
                          out=out, groups=C)
    torch.cuda.synchronize()
    assert y is out and not out.isnan().any()
    assert relative_error(out, expected) <= 1e-2
    again = skc.blocks.conv2d(x, w, bias=b, stride=stride, padding=padding, dilation=dilation, activation=activation,
                              groups=C)   # (an out of its own, and the plan's second call)
    assert torch.equal(again, out)


def test_grouped_conv2d_operator_under_torch_compile_equals_eager():
    import skc.torch  # noqa: F401  (registers torch.ops.skc.*)

    x, w = channels_last(2, 128, 14, 14), channels_last(128, 32, 3, 3)
    eager = torch.ops.skc.conv2d(x, w, None, [1, 1], [1, 1], [1, 1], None, 4)
    compiled = torch.compile(lambda x, w: skc.blocks.conv2d(x, w, padding=1, groups=4), fullgraph=True)
    torch.testing.assert_close(compiled(x, w), eager, rtol=0, atol=0)
    expected = torch.nn.functional.conv2d(x.float(), w.float(), padding=1, groups=4)
    assert relative_error(eager, expected) <= 1e-2
