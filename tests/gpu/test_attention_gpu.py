"""Attention composed from the blocks, on the GPU (outputs poisoned first): against a float32 reference, no worse
than torch's flash backend on the same data (where torch has one), causal and not, D 64 and 128, tails, grouped-
query heads, (B, H, S, D) and (B, S, H, D) tensors, the log-sum-exp."""
import math

import pytest

from skc.blocks.attention_host import attention

pytestmark = pytest.mark.gpu
torch = pytest.importorskip("torch")


def reference(q, k, v, causal):
    """(O, log-sum-exp) in float32, (B, H, S, D) tensors."""
    group = q.shape[1] // k.shape[1]
    k, v = k.float().repeat_interleave(group, 1), v.float().repeat_interleave(group, 1)
    s = (q.float() @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if causal:
        keep = torch.ones(q.shape[2], k.shape[2], dtype=torch.bool, device=q.device).tril()
        s = s.masked_fill(~keep, float("-inf"))
    return torch.softmax(s, -1) @ v, torch.logsumexp(s, -1)


def flash_error(q, k, v, causal, expected):
    """torch's flash-backend error on the same data (None where it cannot run these shapes)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    try:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            got = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal,
                                                                    enable_gqa=k.shape[1] != q.shape[1])
    except RuntimeError:
        return None
    return (got.float() - expected).abs().max().item()


CASES = [  # (B, H, H_kv, Sq, Skv, D, causal)
    (2, 4, 4, 256, 256, 128, False), (2, 4, 4, 256, 256, 128, True), (1, 8, 2, 1000, 1000, 128, False),
    (1, 4, 4, 333, 517, 64, False), (1, 4, 1, 700, 700, 64, True), (2, 2, 2, 64, 2048, 128, False),
    (1, 2, 2, 2048, 2048, 64, True), (3, 3, 3, 129, 129, 128, True), (1, 4, 2, 300, 300, 256, True),
    (2, 2, 2, 512, 700, 256, False),
]


@pytest.mark.parametrize("B, H, Hkv, Sq, Skv, D, causal", CASES)
@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_attention_on_the_gpu(B, H, Hkv, Sq, Skv, D, causal, layout, dtype):
    torch.manual_seed(B * 1000 + Sq + D)
    q = torch.randn(B, H, Sq, D, device="cuda", dtype=dtype)
    k = torch.randn(B, Hkv, Skv, D, device="cuda", dtype=dtype)
    v = torch.randn(B, Hkv, Skv, D, device="cuda", dtype=dtype)
    expected, expected_lse = reference(q, k, v, causal)
    args = [x.transpose(1, 2).contiguous() if layout == "bshd" else x for x in (q, k, v)]
    out = torch.full_like(args[0], float("nan"))
    got, lse = attention(*args, causal=causal, out=out, layout=layout, return_lse=True)
    assert got is out
    got = got.transpose(1, 2) if layout == "bshd" else got
    error = (got.float() - expected).abs().max().item()
    flash = flash_error(q, k, v, causal, expected) if Sq == Skv or not causal else None
    limit = max(2 * flash, 1e-2) if flash is not None else 2e-2
    assert error <= limit, (error, flash)
    assert (lse - expected_lse).abs().max().item() < 1e-3


@pytest.mark.parametrize("block_n, stages, persistent, overlap, pingpong", [
    (112, 2, False, False, False), (64, 4, False, True, False), (128, 2, False, True, False),
    (128, 2, True, True, False), (128, 2, False, False, True), (128, 2, False, True, True), (128, 2, True, True, True)])
@pytest.mark.parametrize("causal", [False, True])
def test_attention_configurations_on_the_gpu(block_n, stages, persistent, overlap, pingpong, causal):
    """Key blocks that do not divide the sequence, deeper pipelines, other register splits, persistent blocks,
    consumer warpgroups taking turns."""
    from skc.blocks.attention_kernel import AttentionConfig

    torch.manual_seed(block_n + causal)
    q, k, v = (torch.randn(2, 4, 1000, 128, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    expected, reference_lse = reference(q, k, v, causal)
    config = AttentionConfig(head_dim=128, block_n=block_n, stages=stages, causal=causal, producer_registers=24,
                             consumer_registers=240, persistent=persistent, overlap=overlap, pingpong=pingpong,
                             lse=True)
    out, lse = attention(q, k, v, causal=causal, out=torch.full_like(q, float("nan")), config=config, return_lse=True)
    assert (lse - reference_lse).abs().max().item() < 1e-3
    error = (out.float() - expected).abs().max().item()
    flash = flash_error(q, k, v, causal, expected)
    assert error <= max(2 * flash, 1e-2), (error, flash)


@pytest.mark.parametrize("persistent", [False, True])
@pytest.mark.parametrize("group", [3, 8])
def test_causal_tiles_across_head_groups_on_the_gpu(persistent, group):
    """Causal query blocks interleaved over groups of heads (5 x 3 heads: a smaller last group): every tile computed
    once, as accurate as the flash backend."""
    from skc.blocks.attention_kernel import AttentionConfig

    torch.manual_seed(group + persistent)
    q, k, v = (torch.randn(5, 3, 1000, 128, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    expected, reference_lse = reference(q, k, v, True)
    config = AttentionConfig(head_dim=128, causal=True, overlap=True, value_stages=3, lse=True, head_group=group,
                             persistent=persistent)
    out, lse = attention(q, k, v, causal=True, out=torch.full_like(q, float("nan")), config=config, return_lse=True)
    assert (lse - reference_lse).abs().max().item() < 1e-3
    error = (out.float() - expected).abs().max().item()
    assert error <= max(2 * flash_error(q, k, v, True, expected), 1e-2), error


@pytest.mark.parametrize("causal", [False, True])
def test_blocks_fetching_their_tiles_on_the_gpu(causal):
    """Persistent blocks taking their tiles from a counter: 192 tiles on the GPU's SMs, three launches in a row and
    two replays of a captured CUDA graph, each right (the counter is zero again after every launch)."""
    from skc.blocks.attention_kernel import AttentionConfig

    torch.manual_seed(11 + causal)
    q, k, v = (torch.randn(2, 8, 1500, 128, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    expected, reference_lse = reference(q, k, v, causal)
    limit = max(2 * flash_error(q, k, v, causal, expected), 1e-2)
    config = AttentionConfig(head_dim=128, causal=causal, overlap=True, value_stages=3, lse=True, persistent=True,
                             fetch_tiles=True, lazy_rescale=2.0, tree_reductions=causal)

    def check(out, lse):
        assert (lse - reference_lse).abs().max().item() < 1e-3
        error = (out.float() - expected).abs().max().item()
        assert error <= limit, error

    for _ in range(3):
        check(*attention(q, k, v, causal=causal, out=torch.full_like(q, float("nan")), config=config,
                         return_lse=True))
    out = torch.empty_like(q)
    attention(q, k, v, causal=causal, out=out, config=config, return_lse=True)   # (compiled before the capture)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        _, lse = attention(q, k, v, causal=causal, out=out, config=config, return_lse=True)
    for _ in range(2):
        out.fill_(float("nan"))
        lse.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        check(out, lse)


@pytest.mark.parametrize("D, causal", [(64, False), (64, True), (128, False)])
@pytest.mark.parametrize("fields", [dict(exp2_on_fma=4), dict(exp2_on_fma=2, tree_reductions=True),
                                    dict(tree_reductions=True)])
def test_softmax_options_on_the_gpu(D, causal, fields):
    """Every n-th exp2 on the FMA pipe, rows reduced pairwise: as accurate as the flash backend."""
    from skc.blocks.attention_kernel import AttentionConfig

    torch.manual_seed(D + causal)
    q, k, v = (torch.randn(2, 4, 1000, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    expected, reference_lse = reference(q, k, v, causal)
    config = AttentionConfig(head_dim=D, causal=causal, overlap=True, value_stages=3, lse=True, **fields)
    out, lse = attention(q, k, v, causal=causal, out=torch.full_like(q, float("nan")), config=config, return_lse=True)
    assert (lse - reference_lse).abs().max().item() < 1e-3
    error = (out.float() - expected).abs().max().item()
    flash = flash_error(q, k, v, causal, expected)
    assert error <= max(2 * flash, 1e-2), (error, flash)


def test_exp2_on_the_fma_pipe_is_the_interpreters_to_the_bit():
    import os
    import sys

    import numpy as np

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "blocks"))
    from attention_kernels import exp2_on_fma_kernel

    x = np.concatenate([np.linspace(-130, 0.5, 100001, dtype=np.float32), np.array([-np.inf, -1e30], np.float32)])
    on_cpu = np.full_like(x, np.nan)
    exp2_on_fma_kernel.interpret[(-(-len(x) // 256),), (256,)](x, on_cpu, len(x))
    device_x = torch.from_numpy(x).cuda()
    on_gpu = torch.full_like(device_x, float("nan"))
    exp2_on_fma_kernel[(-(-len(x) // 256),), (256,)](device_x, on_gpu, len(x))
    np.testing.assert_array_equal(on_gpu.cpu().numpy().view(np.uint32), on_cpu.view(np.uint32))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("fields", [{}, dict(pingpong=True), dict(stages=3, value_stages=4)])
def test_three_consumer_warpgroups_for_small_heads(causal, fields):
    """head_dim 64 with 192-row query tiles (three consumer warpgroups, 160 registers each)."""
    from skc.blocks.attention_kernel import AttentionConfig

    torch.manual_seed(3 + causal)
    q, k, v = (torch.randn(2, 3, 1000, 64, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    expected, _ = reference(q, k, v, causal)
    three = dict(block_m=192, consumers=3, producer_registers=24, consumer_registers=160, value_stages=3)
    config = AttentionConfig(head_dim=64, causal=causal, overlap=True, **dict(three, **fields))
    out = attention(q, k, v, causal=causal, out=torch.full_like(q, float("nan")), config=config)
    error = (out.float() - expected).abs().max().item()
    flash = flash_error(q, k, v, causal, expected)
    assert error <= max(2 * flash, 1e-2), (error, flash)


@pytest.mark.parametrize("D, causal", [(64, False), (64, True), (128, False), (128, True), (256, True)])
def test_a_large_scale_on_the_gpu(D, causal):
    """scale = 3e4 (scaled scores near 1e5 in exp2's units): the float64 softmax, within S's f32 rounding (0.03 in
    exp2's units there), in the default configurations."""
    scale = 3e4
    torch.manual_seed(D + causal)
    q, k, v = (torch.randn(2, 4, 1000, D, device="cuda", dtype=torch.bfloat16) * 0.25 for _ in range(3))
    s = (q.double() @ k.double().transpose(-1, -2)) * scale
    if causal:
        s = s.masked_fill(~torch.ones(1000, 1000, dtype=torch.bool, device="cuda").tril(), float("-inf"))
    expected, expected_lse = torch.softmax(s, -1) @ v.double(), torch.logsumexp(s, -1)
    out = torch.full_like(q, float("nan"))
    got, lse = attention(q, k, v, causal=causal, scale=scale, out=out, return_lse=True)
    torch.testing.assert_close(got.double(), expected, rtol=2 ** -7, atol=1e-2)
    torch.testing.assert_close(lse.double(), expected_lse, rtol=1e-5, atol=0)


def largest_scores_mean(q, k, v, causal: bool):
    """(each row's mean of V over its largest scores q·k (torch's causal mask), the largest score, how many tie
    there), in float64: the softmax at a scale past the gaps between the scores."""
    s = (q.double() @ k.double().transpose(-1, -2))
    if causal:
        s = s.masked_fill(~torch.ones(s.shape[-2], s.shape[-1], dtype=torch.bool, device=s.device).tril(),
                          float("-inf"))
    top = s.amax(-1, keepdim=True)
    largest = (s == top).double()
    return (largest / largest.sum(-1, keepdim=True)) @ v.double(), top[..., 0], largest.sum(-1)


@pytest.mark.parametrize("scale", [1e9, 1e10, 1e30])
@pytest.mark.parametrize("D, causal, dtype", [(64, False, "bfloat16"), (64, True, "float16"), (128, False, "bfloat16"),
                                              (128, True, "bfloat16"), (128, False, "float16"), (256, True, "bfloat16")])
def test_a_huge_scale_on_the_gpu(D, causal, dtype, scale):
    """scale 1e9 to 1e30 (one fma's rounded reference m·c passes exp2's range there: rows of NaN, 0 or inf before):
    exact exponents give the float64 softmax, the mean of V over each row's largest scores. Q and K on a grid of
    1/4 with small integers, so that S is exact in f32 and the largest scores (ties included) are the float64 ones."""
    torch.manual_seed(D + causal + int(math.log10(scale)))
    dtype = getattr(torch, dtype)
    q, k = (torch.randint(-3, 4, (2, 4, 1000, D), device="cuda").to(dtype) * 0.25 for _ in range(2))
    v = torch.randn(2, 4, 1000, D, device="cuda", dtype=dtype)
    expected, top, ties = largest_scores_mean(q, k, v, causal)
    out = torch.full_like(q, float("nan"))
    got, lse = attention(q, k, v, causal=causal, scale=scale, out=out, return_lse=True)
    torch.testing.assert_close(got.double(), expected, rtol=2 ** -7, atol=1e-2)
    expected_lse = top * scale + torch.log(ties)
    torch.testing.assert_close(lse.double(), expected_lse, rtol=1e-5, atol=0)


@pytest.mark.parametrize("exact", ["far", "checked"])
@pytest.mark.parametrize("scale, step", [(16.0, 512.0), (1.0, 2048.0), (1e10, 0.25)])
@pytest.mark.parametrize("D, causal, dtype", [(64, False, "bfloat16"), (128, True, "float16"), (128, False, "bfloat16")])
def test_far_exponents_on_the_gpu(D, causal, dtype, scale, step, exact):
    """AttentionConfig(exact_exponents="far"): one fma while a warp's references stay within 2^24 in exp2's units,
    the exact form past it; "checked": one fma, and the tiles whose references passed 2^24 computed again with
    "far". Raw scores q·k of up to 1e8-1e9 (Q and K small integers times `step`, S exact in f32)
    under scales of 1 and 16 (where one fma gives rows of inf or NaN), and scale 1e10: each row's mean of V over its
    largest scores, as float64's softmax gives."""
    import dataclasses

    from skc.blocks.attention_host import default_config

    torch.manual_seed(D + causal + int(step))
    dtype = getattr(torch, dtype)
    q, k = (torch.randint(-3, 4, (2, 4, 1000, D), device="cuda").to(dtype) * step for _ in range(2))
    v = torch.randn(2, 4, 1000, D, device="cuda", dtype=dtype)
    expected, top, ties = largest_scores_mean(q, k, v, causal)
    config = dataclasses.replace(default_config(D, "bf16" if dtype == torch.bfloat16 else "f16", causal, True),
                                 exact_exponents=exact)
    out = torch.full_like(q, float("nan"))
    got, lse = attention(q, k, v, causal=causal, scale=scale, out=out, return_lse=True, config=config)
    torch.testing.assert_close(got.double(), expected, rtol=2 ** -7, atol=1e-2)
    expected_lse = top * scale + torch.log(ties)
    torch.testing.assert_close(lse.double(), expected_lse, rtol=1e-5, atol=0)


@pytest.mark.parametrize("D, causal, lse", [(64, False, False), (64, True, False), (128, False, True),
                                           (128, True, False), (128, True, True), (256, False, False)])
def test_checked_exponents_are_far_s_on_the_gpu(D, causal, lse):
    """exact_exponents="checked" in each kind of configuration the shape can choose (persistent blocks, fetched
    tiles, three consumers, a tile a block): where two heads' raw scores reach about 1e8 under scale 16 and the
    others' are ordinary, the output and log-sum-exp are "far"'s bit for bit (the one fma's on the ordinary heads), in
    three calls in a row (the plan binds its two launches from the second), replayed from a CUDA graph, and in place
    (out=q)."""
    import dataclasses

    from skc.blocks.attention_host import default_config

    torch.manual_seed(D + 2 * causal + lse)
    q, k = (torch.randn(2, 4, 700, D, device="cuda").to(torch.bfloat16) for _ in range(2))
    for x in (q, k):
        x[:, 1] = torch.randint(-3, 4, (2, 700, D), device="cuda").to(torch.bfloat16) * 512
    v = torch.randn(2, 4, 700, D, device="cuda", dtype=torch.bfloat16)
    base = default_config(D, "bf16", causal, lse, problem=(8, 700))   # (causal D = 128 without lse: fetching)
    fetching = causal and D == 128 and not lse
    assert base.fetch_tiles == fetching and base.persistent == (D < 256 and (not causal or fetching))

    def run(exact, out):
        config = dataclasses.replace(base, exact_exponents=exact)
        return attention(q, k, v, causal=causal, scale=16.0, out=out, return_lse=lse, config=config)

    far, fast = (run(exact, torch.full_like(q, float("nan"))) for exact in ("far", False))
    far, fast = (result if lse else (result, None) for result in (far, fast))
    assert not torch.allclose(fast[0][:, 1].float(), far[0][:, 1].float(), rtol=1e-2, atol=1e-2)
    assert torch.equal(fast[0][:, 0], far[0][:, 0])

    def check(result):
        got, got_lse = result if lse else (result, None)
        assert torch.equal(got, far[0])
        if lse:
            assert torch.equal(got_lse, far[1])

    for _ in range(3):
        check(run("checked", torch.full_like(q, float("nan"))))
    out = torch.empty_like(q)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        result = run("checked", out)
    for _ in range(2):
        out.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        check(result)
    in_place = q.clone()   # (out=q: "far" alone, the second launch would read Q where the first wrote O)
    check(attention(in_place, k, v, causal=causal, scale=16.0, out=in_place, return_lse=lse,
                    config=dataclasses.replace(base, exact_exponents="checked")))


@pytest.mark.parametrize("lse", [False, True])
@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
def test_causal_head_dim_64_fetching_many_short_tiles_on_the_gpu(lse, layout):
    """Causal D = 64 over many short tiles (4 x 24 heads of 400 queries, three to a K/V head): the default
    configuration's persistent blocks take their tiles from a counter; three calls in a row, outputs poisoned first,
    against float32 and no worse than twice flash's error, the log-sum-exp too."""
    from skc.blocks.attention_host import default_config

    SMs = torch.cuda.get_device_properties(0).multi_processor_count
    assert default_config(64, "bf16", True, lse, problem=(4 * 24, 400), multiprocessors=SMs).fetch_tiles
    torch.manual_seed(27)
    q = torch.randn(4, 24, 400, 64, device="cuda", dtype=torch.bfloat16)
    k, v = (torch.randn(4, 8, 400, 64, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    expected, reference_lse = reference(q, k, v, True)
    limit = max(2 * flash_error(q, k, v, True, expected), 1e-2)
    args = [x.transpose(1, 2).contiguous() if layout == "bshd" else x for x in (q, k, v)]
    for _ in range(3):
        out = torch.full_like(args[0], float("nan"))
        result = attention(*args, causal=True, out=out, layout=layout, return_lse=lse)
        got, got_lse = result if lse else (result, None)
        got = got.transpose(1, 2) if layout == "bshd" else got
        error = (got.float() - expected).abs().max().item()
        assert error <= limit, error
        if lse:
            assert (got_lse - reference_lse).abs().max().item() < 1e-3
