"""Attention composed from the blocks, in the interpreter: against a float64 reference (within bf16 rounding)
and against a numpy model of the same online algorithm (P rounded to bf16 per key block) to a few f32 ulps
before the output's bf16 rounding; tails, causal, grouped-query heads, (B, H, S, D) and (B, S, H, D) tensors,
the log-sum-exp. On sm_90a the kernel compiles without spills."""
from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest
from helpers import spills_in_the_mma_loop

import skc
from skc.backends import ptx_tools
from skc.blocks.attention_kernel import AttentionConfig, attention_kernel
from skc.blocks.attention_host import attention, compile_arguments
from skc.runtime.dtypes import bf16_bits_to_float32, float32_to_bf16_bits

RNG = np.random.default_rng(3)
needs_nvjitlink = pytest.mark.skipif(not ptx_tools.have_nvjitlink(), reason="nvJitLink is not installed")


def bf16(x: np.ndarray) -> np.ndarray:
    return bf16_bits_to_float32(float32_to_bf16_bits(np.asarray(x, np.float32)))


def exact_reference(q, k, v, causal):
    """(O, log-sum-exp) in float64, K/V heads repeated for grouped-query attention."""
    group = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, group, axis=1).astype(np.float64), np.repeat(v, group, axis=1).astype(np.float64)
    s = np.einsum("bhqd,bhkd->bhqk", q.astype(np.float64), k) / math.sqrt(q.shape[-1])
    if causal:
        s = np.where(np.arange(k.shape[2])[None, :] <= np.arange(q.shape[2])[:, None], s, -np.inf)
    top = s.max(-1, keepdims=True)
    e = np.exp(s - top)
    return (e / e.sum(-1, keepdims=True)) @ v, top[..., 0] + np.log(e.sum(-1))


def online_model(q, k, v, causal, block_n):
    """The kernel's algorithm in numpy (f32): per key block, running max m, P = exp2(S c - m c) rounded to bf16
    for the P·V product (the row sums use P before rounding), O rescaled by exp2((m_old - m) c); O / l at the end."""
    group = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    c = np.float32(1 / math.sqrt(q.shape[-1]) * 1.4426950408889634)
    Sq, Skv = q.shape[2], k.shape[2]
    m = np.full(q.shape[:3] + (1,), -np.inf, np.float32)
    l = np.zeros(q.shape[:3] + (1,), np.float32)
    o = np.zeros(q.shape, np.float64)
    for first in range(0, Skv, block_n):
        keys = np.arange(first, min(first + block_n, Skv))
        s = np.einsum("bhqd,bhkd->bhqk", q.astype(np.float64), k[:, :, keys].astype(np.float64)).astype(np.float32)
        if causal:
            s = np.where(keys[None, :] <= np.arange(Sq)[:, None], s, -np.inf)
        new = np.maximum(m, s.max(-1, keepdims=True))
        shift = np.where(new == -np.inf, 0, new * c)
        alpha = np.exp2(m * c - shift)
        p = np.exp2(s * c - shift)
        l = l * alpha + p.sum(-1, keepdims=True)
        o = o * alpha + bf16(p).astype(np.float64) @ v[:, :, keys].astype(np.float64)
        m = new
    return o / l


CASES = [  # (B, H, H_kv, Sq, Skv, D, causal, layout, persistent, overlap[, pingpong])
    (1, 2, 1, 80, 100, 64, False, "bhsd", False, False),
    (1, 2, 1, 80, 200, 64, False, "bhsd", False, False, True),   # the warpgroups take turns (WarpgroupTurns)
    (1, 1, 1, 130, 140, 64, True, "bshd", False, True, True),    # turns with the overlapped loop, causal
    (2, 2, 1, 200, 150, 64, True, "bhsd", True, True, True),     # and persistent
    (1, 2, 2, 130, 70, 64, True, "bshd", False, False),
    (2, 1, 1, 64, 200, 128, False, "bshd", False, False),
    (1, 2, 1, 96, 96, 128, True, "bhsd", False, False),
    (1, 2, 1, 80, 200, 64, False, "bshd", False, True),
    (1, 1, 1, 70, 90, 256, True, "bhsd", False, False),
    (2, 2, 1, 200, 150, 64, True, "bhsd", True, True),   # more tiles than the interpreter's SMs: blocks loop
    (1, 5, 1, 256, 200, 64, True, "bshd", True, True),   # 10 tiles on 4 blocks: a reversed round, a partial one
]


@pytest.mark.parametrize("B, H, Hkv, Sq, Skv, D, causal, layout, persistent, overlap, pingpong",
                         [case + (False,) * (11 - len(case)) for case in CASES])
def test_attention_in_the_interpreter(B, H, Hkv, Sq, Skv, D, causal, layout, persistent, overlap, pingpong):
    rng = np.random.default_rng([B, H, Hkv, Sq, Skv, D])   # each case its own data, whichever cases run before it
    q = bf16(rng.standard_normal((B, H, Sq, D)))
    k = bf16(rng.standard_normal((B, Hkv, Skv, D)))
    v = bf16(rng.standard_normal((B, Hkv, Skv, D)))
    swap = (lambda x: np.ascontiguousarray(np.swapaxes(x, 1, 2))) if layout == "bshd" else (lambda x: x)
    block_n = 64
    config = AttentionConfig(head_dim=D, block_n=block_n, causal=causal, lse=True, persistent=persistent,
                             overlap=overlap, pingpong=pingpong)
    out, lse = attention(swap(q), swap(k), swap(v), causal=causal, layout=layout, return_lse=True, config=config)
    out = swap(out)   # back to (B, H, S, D)
    exact, exact_lse = exact_reference(q, k, v, causal)
    model = online_model(q, k, v, causal, block_n)
    # the kernel matches its algorithm up to f32 rounding, then the output's rounding to bf16 (half an ulp: at most
    # 2**-8 relative); f32 rounding may also flip a P's bf16 rounding (one value moved by 2**-8 of itself, which
    # moves an output by up to 2**-8 |v|): a few outputs in 10,000, within 1e-2 (a wrong tile would be off everywhere)
    close = np.isclose(out, model, rtol=2 ** -8, atol=2e-4)
    assert close.mean() >= 0.9999, np.argwhere(~close)[:8]
    assert np.abs(out - model).max() < 1e-2
    assert np.abs(out - exact).max() < 1e-2
    np.testing.assert_allclose(lse, exact_lse, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("D, causal, fields", [(64, True, dict(exp2_on_fma=4, tree_reductions=True)),
                                               (128, False, dict(exp2_on_fma=2)),
                                               (128, True, dict(lazy_rescale=8.0)), (128, False, dict(lazy_rescale=8.0))])
def test_softmax_options_in_the_interpreter(D, causal, fields):
    """Every n-th exp2 on the FMA pipe, pairwise row reductions, lazy rescaling: the same attention up to the
    polynomial's relative error (1e-4, below P's bf16 rounding) or other roundings of P."""
    rng = np.random.default_rng(D + causal)   # its own data, whatever ran before
    q, k, v = (bf16(rng.standard_normal((1, 2, 100, D))) for _ in range(3))
    config = AttentionConfig(head_dim=D, block_n=64, causal=causal, lse=True, overlap=True, **fields)
    out, lse = attention(q, k, v, causal=causal, return_lse=True, config=config)
    exact, exact_lse = exact_reference(q, k, v, causal)
    # P's bf16 rounding flips where the polynomial moved P across a rounding boundary (about 1 value in 40)
    np.testing.assert_allclose(out, online_model(q, k, v, causal, 64), rtol=2 ** -7, atol=5e-3)
    plain, plain_lse = attention(q, k, v, causal=causal, return_lse=True,
                                 config=AttentionConfig(head_dim=D, block_n=64, causal=causal, lse=True, overlap=True))
    assert np.abs(out - exact).max() <= 1.5 * np.abs(plain - exact).max()
    np.testing.assert_allclose(lse, exact_lse, rtol=1e-4, atol=1e-4)
    assert not np.array_equal(lse, plain_lse)   # the options took effect (other exp2s, other sums)


def test_a_key_standing_out_late_in_a_row_keeps_its_exact_weight():
    """Lazy rescaling keeps a row's maximum until a block passes it by 2^lazy_rescale in P. A key of the second
    block standing out by 3.5-7 (in exp2) from the first's scores passed 2^2, so the default moves the maximum and
    that key's P is exactly 1, as without lazy rescaling: the error is the output's own bf16 rounding. Kept at 2^8,
    the maximum stays and the key's P, rounded to bf16 anywhere in its binade, adds 40 % to the RMS error."""
    rng = np.random.default_rng(5)
    B, H, S, D = 1, 2, 256, 128
    u = np.ones(D) / math.sqrt(D)
    k = rng.standard_normal((B, H, S, D)) * 0.5
    k[:, :, 200] = u * 8
    q = rng.standard_normal((B, H, S, D)) * 0.5 + u * rng.uniform(0.6, 1.1, (B, H, S, 1)) * 8
    q, k, v = bf16(q), bf16(k), bf16(rng.standard_normal((B, H, S, D)))
    exact, _ = exact_reference(q, k, v, False)

    def rms_error(out):
        return np.sqrt(((out - exact) ** 2).mean())

    floor = rms_error(bf16(exact))
    default = rms_error(attention(q, k, v))
    assert default < 1.02 * floor
    kept = rms_error(attention(q, k, v, config=AttentionConfig(head_dim=D, block_n=128, overlap=True, lazy_rescale=8.0)))
    assert kept > 1.25 * floor


@pytest.mark.parametrize("D, causal", [(64, False), (64, True), (128, True), (128, False)])
def test_the_default_configurations_in_the_interpreter(D, causal, monkeypatch):
    """attention() without a config: for D = 64, three consumer warpgroups taking turns (not causal) or two, rows
    reduced in order (causal: few tiles here, one a block; not causal: persistent blocks); for D = 128, lazy
    rescaling and persistent blocks, which take their tiles from a counter where causal (8 short tiles on the
    interpreter's 4 SMs: many)."""
    from skc.blocks import attention_host

    launched = []

    class Recording:   # the kernel, noting the configuration each launch passes (its last argument)
        def __getitem__(self, shape):
            launch = attention_kernel[shape]
            return lambda *args, **options: (launched.append(args[-1]), launch(*args, **options))[1]

    monkeypatch.setattr(attention_host, "attention_kernel", Recording())
    heads = 4 if (D, causal) == (128, True) else 2
    q, k, v = (bf16(RNG.standard_normal((1, heads, 230, D))) for _ in range(3))
    out = attention(q, k, v, causal=causal)
    assert launched == [attention_host.default_config(D, "bf16", causal, False, problem=(heads, 230),
                                                      multiprocessors=skc.current_device().multiprocessors)]
    assert launched[0].persistent == (D == 128 or not causal)
    assert launched[0].fetch_tiles == (D == 128 and causal)
    assert launched[0].lazy_rescale == (2.0 if D == 128 else 0.0)
    assert not launched[0].tree_reductions
    exact, _ = exact_reference(q, k, v, causal)
    assert np.abs(out - exact).max() < 1e-2
    np.testing.assert_allclose(out, online_model(q, k, v, causal, 128), rtol=2 ** -7, atol=2e-3)


def test_causal_head_dim_64_fetches_many_short_tiles():
    """Causal D = 64: persistent blocks taking their tiles from a counter where the tiles are many (two an SM) and
    short (at most 32 query blocks a head), with or without the log-sum-exp; a tile a block otherwise, and where the
    device is unknown. Not causal, persistent blocks taking a fixed share where a head has at most 16 tiles of 192
    queries. The persistent configuration runs exactly in the interpreter (three tiles on two blocks)."""
    from skc.blocks.attention_host import default_config, fetches_short_tiles

    assert fetches_short_tiles(16 * 16, 1024, 132) and fetches_short_tiles(11 * 8, 443, 132)
    assert not fetches_short_tiles(16, 1630, 132)        # 208 tiles
    assert not fetches_short_tiles(8, 6208, 132)         # 49 query blocks a head
    assert not fetches_short_tiles(4096, 1024, None)
    for lse in (False, True):
        many = default_config(64, "bf16", True, lse, problem=(256, 1024), multiprocessors=132)
        assert many.persistent and many.fetch_tiles and not many.tree_reductions and many.pingpong
        few = default_config(64, "bf16", True, lse, problem=(16, 1630), multiprocessors=132)
        assert not few.persistent and not few.fetch_tiles
    for problem, persistent in (((256, 1024), True), ((128, 3072), True), ((16, 3073), False), (None, False)):
        config = default_config(64, "bf16", False, False, problem=problem, multiprocessors=132)
        assert config.persistent == persistent and not config.fetch_tiles and config.block_m == 192
    q, k, v = (bf16(RNG.standard_normal((1, 3, 100, 64))) for _ in range(3))
    config = default_config(64, "bf16", True, True, problem=(3, 100), multiprocessors=1)
    assert config.persistent and config.fetch_tiles
    out, lse = attention(q, k, v, causal=True, config=config, return_lse=True)
    exact, exact_lse = exact_reference(q, k, v, True)
    assert np.abs(out - exact).max() < 1e-2 and np.abs(lse - exact_lse).max() < 1e-3
    np.testing.assert_allclose(out, online_model(q, k, v, True, 128), rtol=2 ** -7, atol=2e-3)


def test_causal_head_dim_128_fetches_its_tiles_only_where_they_are_many():
    """Causal D = 128 without the log-sum-exp: persistent blocks taking tiles from a counter where the tiles are
    very many (8 an SM: the issue's causal rows) or many (2 an SM) and short (at most 16 query blocks a head); a tile
    a block for few or long ones; fetching where the device is unknown. With the log-sum-exp, a tile a block."""
    from skc.blocks.attention_host import default_config, fetches_tiles_of_128

    assert fetches_tiles_of_128(8 * 16, 4096, 132) and fetches_tiles_of_128(4 * 32, 8192, 132)   # 4096, 8192 tiles
    assert fetches_tiles_of_128(2 * 32, 700, 132) and fetches_tiles_of_128(3 * 16, 900, 132)     # 384, 6 and 8 long
    assert not fetches_tiles_of_128(8, 3264, 132) and not fetches_tiles_of_128(32, 514, 132)     # 208, 160 tiles
    assert not fetches_tiles_of_128(12, 4096, 132)        # 384 tiles of 32 blocks
    assert not fetches_tiles_of_128(8, 8192, 132)         # 512 tiles of 64 blocks
    assert not fetches_tiles_of_128(16, 16384, 132)       # 2048 tiles of 128 blocks
    assert fetches_tiles_of_128(12, 4096, None)
    for problem, fetched in (((128, 4096), True), ((12, 4096), False), ((64, 700), True), ((8, 3264), False)):
        config = default_config(128, "bf16", True, False, problem=problem, multiprocessors=132)
        assert (config.persistent, config.fetch_tiles) == (fetched, fetched), problem
        assert not config.tree_reductions and config.lazy_rescale == 2.0
        with_lse = default_config(128, "bf16", True, True, problem=problem, multiprocessors=132)
        assert not with_lse.persistent and with_lse.tree_reductions
    config = default_config(128, "bf16", True, False)
    assert config.persistent and config.fetch_tiles


def assert_float64_softmax(out, lse, q, k, v, scale: float, causal: bool):
    """out and lse are the float64 softmax's of scale · q kᵀ (torch's causal mask) within bf16 rounding."""
    Sq, Skv = q.shape[2], k.shape[2]
    s = np.einsum("bhqd,bhkd->bhqk", q.astype(np.float64), k.astype(np.float64)) * scale
    if causal:
        s = np.where(np.arange(Skv)[None, :] <= np.arange(Sq)[:, None], s, -np.inf)
    top = s.max(-1, keepdims=True)
    e = np.exp(s - top)
    np.testing.assert_allclose(out, (e / e.sum(-1, keepdims=True)) @ v.astype(np.float64), rtol=2 ** -7, atol=2e-3)
    np.testing.assert_allclose(lse, top[..., 0] + np.log(e.sum(-1)), rtol=1e-5)


@pytest.mark.parametrize("D, causal", [(64, False), (64, True), (128, True), (128, False)])
def test_a_large_scale(D, causal):
    """scale = 3e4: scaled scores near 1e5 in exp2's units, where each row's m·c rounded to f32 is off by up to
    2^-8 and only a row's few largest scores matter: the float64 softmax within bf16 rounding (the default
    configurations: exp2 on the FMA pipe for D = 64, lazy rescaling for D = 128)."""
    scale = 3e4
    q, k, v = (bf16(RNG.standard_normal((1, 2, 150, D)) * 0.25) for _ in range(3))
    out, lse = attention(q, k, v, causal=causal, scale=scale, return_lse=True)
    assert_float64_softmax(out, lse, q, k, v, scale, causal)


@pytest.mark.parametrize("D, causal, given", [(64, False, False), (128, True, False), (128, False, True)])
def test_a_huge_scale_takes_exact_exponents(D, causal, given):
    """scale = 1e10 (scaled scores near 1e11 in exp2's units, past one fma's range, where rows read NaN or 0): the
    call takes AttentionConfig.exact_exponents, a given configuration too, and gives the float64 softmax, which
    there is the mean of V over each row's largest scores."""
    from skc.blocks.attention_host import EXACT_EXPONENTS_SCALE, _Problem, default_config

    scale = 1e10
    q, k, v = (bf16(RNG.standard_normal((1, 2, 150, D)) * 0.25) for _ in range(3))
    config = default_config(D, "bf16", causal, True) if given else None
    assert config is None or not config.exact_exponents
    problem = _Problem(q, k, v, None, causal, scale, "bhsd", True, config)
    assert problem.config.exact_exponents
    small = _Problem(q, k, v, None, causal, EXACT_EXPONENTS_SCALE, "bhsd", True, config)
    assert not small.config.exact_exponents
    out, lse = attention(q, k, v, causal=causal, scale=scale, return_lse=True, config=config)
    assert_float64_softmax(out, lse, q, k, v, scale, causal)


@pytest.mark.parametrize("D, causal, scale, size", [(64, False, 16.0, 2048.0), (128, True, 1.0, 8192.0),
                                                     (128, False, 0.125, 0.25)])
def test_far_exponents_in_the_kernel(D, causal, scale, size):
    """AttentionConfig(exact_exponents="far") in the kernel: raw scores of 1e7-1e9 under scales of 16 and 1 (the
    references past 2^24 in exp2's units, where one fma's rows are inf or NaN) give the float64 softmax; at ordinary
    scores its output is the one fma's, bit for bit. A value other than True, False or "far" is refused by name."""
    from skc.blocks.attention_host import default_config

    q, k = (bf16(np.round(RNG.standard_normal((1, 2, 150, D)) * 2) * size) for _ in range(2))
    v = bf16(RNG.standard_normal((1, 2, 150, D)))
    base = default_config(D, "bf16", causal, True)
    far = dataclasses.replace(base, exact_exponents="far")
    out, lse = attention(q, k, v, causal=causal, scale=scale, return_lse=True, config=far)
    assert_float64_softmax(out, lse, q, k, v, scale, causal)
    fast, fast_lse = attention(q, k, v, causal=causal, scale=scale, return_lse=True, config=base)
    if size > 1:
        assert not np.allclose(fast.astype(np.float64), out.astype(np.float64), rtol=1e-2, atol=1e-2)
    else:
        np.testing.assert_array_equal(fast, out)
        np.testing.assert_array_equal(fast_lse, lse)
    with pytest.raises(ValueError, match="exact_exponents must be True, False, \"far\" or \"checked\", found 'near'"):
        dataclasses.replace(base, exact_exponents="near")
    for wrong in (dict(exact_exponents="checked"), dict(exact_exponents="far", fetch_tiles=True, persistent=True)):
        with pytest.raises(ValueError, match=f"flagged_only computes again.*found exact_exponents="
                                             f"'{wrong['exact_exponents']}', fetch_tiles={'fetch_tiles' in wrong}"):
            dataclasses.replace(base, flagged_only=True, **wrong)


@pytest.mark.parametrize("D, causal, lse, persistent", [(128, False, True, True), (128, True, False, True),
                                                       (128, True, True, False), (64, False, False, True),
                                                       (64, True, False, False), (256, False, True, False)])
def test_checked_exponents_compute_the_flagged_tiles_again(D, causal, lse, persistent, monkeypatch):
    """AttentionConfig(exact_exponents="checked"): one fma, each warp flagging whether its rows' references passed
    2^24 in exp2's units, then a second launch computing the flagged tiles again with "far". One head's raw scores
    reach 1e7-1e9 (the one fma's rows there inf or NaN), the other's are ordinary: the flags mark every tile of the
    first head (the warps holding only rows past the queries' end excepted) and none of the second, and the output
    and log-sum-exp are "far"'s bit for bit (the one fma's on the ordinary head). Persistent blocks (their fixed
    share; fetched tiles are computed again from the share; blocks of one tile again in persistent blocks where they
    fit), three consumers, and blocks of one tile."""
    from skc.blocks import attention_host

    launched, swapped = [], []

    class Recording:   # the kernel, noting each launch's configuration and flags (swapping the heads' for the second)
        def __getitem__(self, shape):
            def launch(*args, **options):
                launched.append((args[-1], args[6]))
                if swapped and args[-1].flagged_only:
                    args[6][...] = args[6].reshape(2, -1)[::-1].reshape(-1)
                return attention_kernel[shape](*args, **options)
            return launch

    q, k = (RNG.standard_normal((1, 2, 300, D)) for _ in range(2))
    q[0, 1], k[0, 1] = (np.round(RNG.standard_normal((300, D)) * 2) * 2048 for _ in range(2))
    q, k = bf16(q), bf16(k)
    v = bf16(RNG.standard_normal((1, 2, 300, D)))
    base = attention_host.default_config(D, "bf16", causal, lse, problem=(2, 300))   # (fetching where causal D = 128)
    assert base.persistent == persistent

    def run(exact):
        launched.clear()
        result = attention(q, k, v, causal=causal, scale=16.0, return_lse=True,
                           config=dataclasses.replace(base, exact_exponents=exact, lse=True))
        return result, list(launched)

    far, _ = run("far")
    fast, _ = run(False)
    monkeypatch.setattr(attention_host, "attention_kernel", Recording())
    checked, launches = run("checked")
    assert [(config.exact_exponents, config.flagged_only, config.fetch_tiles) for config, _ in launches] == [
        ("checked", False, base.fetch_tiles), ("far", True, False)]
    assert launches[1][0].persistent == (persistent or D == 64)   # (in persistent blocks where they fit)
    per_tile = launches[0][1].reshape(2, -1, base.consumers * 4)
    assert per_tile[1].any(axis=1).all() and not per_tile[0].any()
    for got, want in zip(checked, far):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(checked[0][:, 0], fast[0][:, 0])
    assert not np.allclose(fast[0][:, 1], far[0][:, 1], rtol=1e-2, atol=1e-2)
    # the heads' flags swapped: the second launch computes the ordinary head's tiles again ("far"'s answer there is
    # the one fma's) and leaves the other's as the one fma left them (unflagged tiles are not computed again)
    swapped.append(True)
    for got, want in zip(run("checked")[0], fast):
        np.testing.assert_array_equal(got, want)


def test_checked_exponents_in_place_alone_and_past_scale_16(monkeypatch):
    """A review's findings (sixty-seventh session): with out=q (q's own view, which attention takes) the second launch
    read Q where the first had written O (NaN where "far" is right): "far" now runs alone there. A flagged_only
    configuration given to attention read flags past its 4-byte stand-in: refused by name, as recomputing() of a
    configuration not "checked" is. Past scale 16 "checked" would flag every tile: the exact form runs, as for
    False."""
    torch = pytest.importorskip("torch")
    from skc.blocks import attention_host

    launched = []

    class Recording:   # the kernel, noting each launch's configuration
        def __getitem__(self, shape):
            return lambda *args, **options: (launched.append(args[-1]), attention_kernel[shape](*args, **options))[1]

    generator = torch.Generator().manual_seed(67)
    q, k = ((torch.randn(1, 1, 128, 64, generator=generator) * 2).round().mul(2048).bfloat16() for _ in range(2))
    v = torch.randn(1, 1, 128, 64, generator=generator).bfloat16()
    base = attention_host.default_config(64, "bf16", False, False)
    checked, far = (dataclasses.replace(base, exact_exponents=exact) for exact in ("checked", "far"))
    expected = attention(q, k, v, scale=16.0, config=far)
    assert not expected.isnan().any()
    monkeypatch.setattr(attention_host, "attention_kernel", Recording())
    in_place = q.clone()
    assert torch.equal(attention(in_place, k, v, scale=16.0, out=in_place, config=checked), expected)
    assert [config.exact_exponents for config in launched] == ["far"]
    with pytest.raises(skc.LaunchError, match=r'a flagged_only configuration is the second launch of an '
                                              r'exact_exponents="checked" one, which attention\(\) makes itself'):
        attention(q, k, v, scale=16.0, config=checked.recomputing())
    with pytest.raises(ValueError, match=r'recomputing\(\) is the second launch of an exact_exponents="checked" '
                                         r"configuration; this one has exact_exponents='far'"):
        far.recomputing()
    launched.clear()
    attention(q, k, v, scale=17.0, config=checked)
    assert [config.exact_exponents for config in launched] == [True]


def test_a_configs_flags_given_as_ints_reach_the_softmax():
    """AttentionConfig takes its yes-or-no fields as ints 0 and 1 too (roles.check_flags); OnlineSoftmax's own
    checks of `tree` and `exact` take them as the config does (1 was refused inside the kernel), and give the same
    answer as True; a flag that is no truth value is refused by name."""
    from skc.blocks.attention_host import default_config

    q, k, v = (bf16(RNG.standard_normal((1, 2, 70, 64))) for _ in range(3))
    base = default_config(64, "bf16", True, True)
    as_bools = dataclasses.replace(base, tree_reductions=True, exact_exponents=True)
    as_ints = dataclasses.replace(base, tree_reductions=1, exact_exponents=1)
    want = attention(q, k, v, causal=True, return_lse=True, config=as_bools)
    got = attention(q, k, v, causal=True, return_lse=True, config=as_ints)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    from skc.blocks import OnlineSoftmax

    with pytest.raises(skc.SkcError, match="tree"):
        OnlineSoftmax(0.125, tree="yes")
    for exact in ("near", np.array([True, False])):   # (an array's == "far" had raised numpy's own error)
        with pytest.raises(skc.SkcError, match="exact"):
            OnlineSoftmax(0.125, exact=exact)


@needs_nvjitlink
@pytest.mark.parametrize("D", [64, 128, 256])
@pytest.mark.parametrize("causal, lse", [(False, False), (True, True), (True, False)])
@pytest.mark.parametrize("exact", [False, "far", "checked"])
def test_the_default_configurations_keep_spills_out_of_the_key_block_loop(D, causal, lse, exact):
    """No spill in the loop of wgmmas over the key blocks, and few bytes outside it, in each configuration the shape
    can choose, with the one fma's exponents (the default) and with exact_exponents="far": causal D = 64 fetches
    many short tiles (256 heads of 1024 queries), and takes a tile a block for few; so does causal D = 128 without
    the log-sum-exp; D = 64 not causal runs persistent blocks up to 16 tiles a head, a tile a block past it (8192
    queries). ptxas 13.5 spills nowhere with the one fma; with "far", 24 bytes in the persistent three-consumer
    D = 64 tile, addresses of the epilogue's stores kept from the prologue and loaded once a tile (the SASS,
    fifty-ninth session); with "checked", 4 there and 4 in the causal D = 128 tile fetching its tiles, and its
    second launch ("far" over the flagged tiles) none in the loop. Before, the three-consumer tile kept 12 bytes of
    loop state there (benchmarks/NOTES.md, seventh session) and the causal D = 128 tile fetching its tiles 4
    (fifteenth session): the bound allows them."""
    from skc.blocks.attention_host import default_config

    configs = {default_config(D, "bf16", causal, lse, problem=problem, multiprocessors=132)
               for problem in ((256, 1024), (16, 1630), (16, 8192))}
    assert len(configs) == (2 if D == 64 or (D, causal, lse) == (128, True, False) else 1)
    for config in configs:
        three = (D, causal) == (64, False)
        assert (config.block_m, config.consumers) == ((192, 3) if three else (128, 2))
        config = dataclasses.replace(config, exact_exponents=exact)
        compiled = attention_kernel.compile(**compile_arguments(config), target="sm_90a")
        resources = compiled.resources
        allowed = 24 if three and exact == "far" else 12 if three else 4 if config.fetch_tiles else 0
        assert resources["spill_stores"] <= allowed and resources["stack_bytes"] <= -(-allowed // 8) * 8, resources
        if ptx_tools.nvdisasm_path() is not None:
            assert spills_in_the_mma_loop(compiled.asm("sass")) == []
            if exact == "checked":
                again = attention_kernel.compile(**compile_arguments(config.recomputing()), target="sm_90a")
                assert spills_in_the_mma_loop(again.asm("sass")) == []


def test_spills_in_the_mma_loop_finds_a_spill_in_the_loop_only():
    """The helper the spill test trusts: a spill inside the loop of wgmmas is found, one in the prologue or after
    the loop is not, and a retry stub past the last EXIT that jumps back into the code makes no loop."""
    def sass(prologue="", loop="", after=""):   # (the loop longer than the stretch from the last wgmma's wait on)
        return "\n".join(["        /*0000*/  MOV R1, c[0x0][0x28] ;", prologue, ".L_x_1:",
                          "        /*0010*/  HGMMA.64x128x16.F32.BF16 R24, gdesc[UR8], R24 ;", loop,
                          *["        /*0020*/  FADD R0, R0, R0 ;"] * 8, "        /*0030*/  @P0 BRA `(.L_x_1) ;",
                          ".L_x_2:", "        /*0040*/  SYNCS.PHASECHK.TRANS64.TRYWAIT P1, [UR8], R0 ;",
                          "        /*0050*/  @!P1 BRA `(.L_x_3) ;", ".L_x_4:",
                          "        /*0060*/  HGMMA.64x128x16.F32.BF16 R24, gdesc[UR8], R24 ;", after,
                          "        /*0070*/  EXIT ;", ".L_x_3:", "        /*0080*/  BRA `(.L_x_2) ;"])
    assert spills_in_the_mma_loop(sass(prologue="STL [R1], R2 ;", after="LDL R2, [R1] ;")) == []
    assert spills_in_the_mma_loop(sass(loop="@!P2 LDL.LU R18, [R1+0x14] ;")) == ["@!P2 LDL.LU R18, [R1+0x14] ;"]


@pytest.mark.parametrize("scale, message", [(0.0, "positive and finite, found 0.0"), (-0.125, "found -0.125"),
                                            (float("nan"), "found nan"), ("0.1", "must be a number, found str"),
                                            (10**400, "positive and finite, found inf"),
                                            (np.complex64(0.125 + 1j), "must be a number, found complex64"),
                                            (np.array(0.125 + 1j), "must be a number, found ndarray"),
                                            (np.timedelta64(1, "s"), "must be a number, found timedelta64")])
def test_attention_refuses_a_scale_its_softmax_cannot_take(scale, message):
    """The online softmax tracks each row's largest raw score: the largest scaled one only for a positive scale
    (a zero or negative one gave NaN, or with lazy rescaling wrong values). A numpy complex scale ran with its real
    part, a duration with its count."""
    import skc

    q = bf16(RNG.standard_normal((1, 1, 64, 64)))
    with pytest.raises(skc.LaunchError, match=message):
        attention(q, q, q, scale=scale)


def test_attention_refuses_a_complex_tensor_scale_by_name():
    """float() of a complex torch tensor raised torch's RuntimeError ("value cannot be converted to type double")."""
    torch = pytest.importorskip("torch")
    q = bf16(RNG.standard_normal((1, 1, 64, 64)))
    with pytest.raises(skc.LaunchError, match="scale must be a number, found Tensor"):
        attention(q, q, q, scale=torch.tensor(0.125 + 1j))


@pytest.mark.parametrize("group", [1, 2, 4, 7])
def test_causal_tiles_go_longest_first_across_a_group_of_heads(group):
    """Every (head, query block) once; within each group of `group` heads (the last one smaller) the query blocks
    from the last to the first, the group's heads taking turns at each."""
    from skc.blocks.attention_kernel import HeadTiles

    batch_heads, blocks = 6, 5
    tiles = HeadTiles(blocks * 128, blocks * 128, batch_heads, 3, AttentionConfig(causal=True, head_group=group))
    order = [tiles.longest_first(i) for i in range(tiles.count)]
    assert sorted(order) == [(h, b) for h in range(batch_heads) for b in range(blocks)]
    expected = [(h, b) for first in range(0, batch_heads, group) for b in reversed(range(blocks))
                for h in range(first, min(first + group, batch_heads))]
    assert order == expected


def test_head_group_is_a_positive_int_for_causal_tiles():
    for group in (0, True, 2.0):
        with pytest.raises(ValueError, match="head_group must be a positive int"):
            AttentionConfig(causal=True, head_group=group)
    with pytest.raises(ValueError, match="head_group orders causal tiles"):
        AttentionConfig(head_group=2)
    assert AttentionConfig(causal=True, head_group=2).head_group == 2


@pytest.mark.parametrize("persistent", [False, True])
def test_causal_attention_over_head_groups_in_the_interpreter(persistent):
    """Groups of 4 heads over 6 (a last group of 2), three query blocks each: the same attention."""
    rng = np.random.default_rng(11)
    q, k, v = (bf16(rng.standard_normal((2, 3, 300, 64))) for _ in range(3))
    config = AttentionConfig(head_dim=64, block_n=64, causal=True, head_group=4, persistent=persistent,
                             overlap=True)
    out = attention(q, k, v, causal=True, config=config)
    exact, _ = exact_reference(q, k, v, True)
    assert np.abs(out - exact).max() < 1e-2
    close = np.isclose(out, online_model(q, k, v, True, 64), rtol=2 ** -8, atol=2e-4)
    assert close.mean() >= 0.9999, np.argwhere(~close)[:8]


def test_a_query_tile_is_one_tma_box():
    """Five consumer warpgroups (320 query rows) made a configuration that compiled, then every launch failed to
    encode Q's tensor map ("every box dimension must be 1 to 256")."""
    with pytest.raises(ValueError, match="at most 256 rows: at most 4 consumer warpgroups, found 5"):
        AttentionConfig(head_dim=64, consumers=5, block_m=320)
    assert AttentionConfig(head_dim=64, consumers=4, block_m=256).threads == 640


def test_lazy_rescale_stays_where_p_is_finite():
    # (a list or a string raised a bare TypeError from the comparison; True was taken as 1)
    for lazy in (16.0, float("nan"), [1.0], "2", True):
        with pytest.raises(ValueError, match="lazy_rescale must be 0 to 15"):
            AttentionConfig(head_dim=128, lazy_rescale=lazy)
    assert AttentionConfig(head_dim=128, lazy_rescale=15.0).lazy_rescale == 15.0


@pytest.mark.parametrize("B, H, Sq, Skv, D, causal, consumers", [
    (1, 3, 300, 300, 128, True, 2), (2, 2, 200, 150, 64, True, 2), (1, 5, 256, 200, 64, False, 2),
    (1, 4, 400, 300, 64, True, 3)])
def test_blocks_fetching_their_tiles_in_the_interpreter(B, H, Sq, Skv, D, causal, consumers, monkeypatch):
    """Persistent blocks taking their tiles from a counter (cfg.fetch_tiles): 6 to 10 tiles on the interpreter's
    4 blocks, each computed once, as by a block a tile; the counter is zero again after each launch. With three
    consumer warpgroups taking turns, the slot's barrier waits for all three (384 arrivals) before each reuse."""
    from skc.blocks import attention_host

    counter = np.zeros(1, np.int32)
    monkeypatch.setattr(attention_host, "tile_counter", lambda a: counter)
    rng = np.random.default_rng([B, H, Sq, Skv, D])
    q = bf16(rng.standard_normal((B, H, Sq, D)))
    k, v = (bf16(rng.standard_normal((B, H, Skv, D))) for _ in range(2))
    block_n = 64
    fields = dict(head_dim=D, block_n=block_n, causal=causal, lse=True, overlap=True, lazy_rescale=2.0)
    if consumers == 3:
        fields.update(block_m=192, consumers=3, pingpong=True, producer_registers=24, consumer_registers=160)
    fetched = AttentionConfig(persistent=True, fetch_tiles=True, **fields)
    for _ in range(2):
        out, lse = attention(q, k, v, causal=causal, return_lse=True, config=fetched)
        assert counter[0] == 0
    plain, plain_lse = attention(q, k, v, causal=causal, return_lse=True, config=AttentionConfig(**fields))
    np.testing.assert_array_equal(out, plain)
    np.testing.assert_array_equal(lse, plain_lse)
    exact, exact_lse = exact_reference(q, k, v, causal)
    assert np.abs(out - exact).max() < 1e-2
    np.testing.assert_allclose(lse, exact_lse, rtol=1e-5, atol=1e-5)


def test_fetched_tiles_are_for_persistent_blocks():
    with pytest.raises(ValueError, match="fetch_tiles=True is how persistent blocks share the tiles"):
        AttentionConfig(head_dim=128, overlap=True, fetch_tiles=True)


def test_the_ab_benchmarks_variants_fit_each_of_its_shapes():
    """benchmarks/attention_ab.py times each variant's fields over the default configuration of each of its shapes
    (read from its source: it imports torch): each makes a configuration, the causal D = 128 one, whose blocks fetch
    their tiles, too."""
    import ast
    import dataclasses
    import pathlib

    from skc.blocks.attention_host import default_config

    source = pathlib.Path(__file__).parents[2] / "benchmarks" / "attention_ab.py"
    found = {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(source.read_text()).body
             if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) in ("SHAPES", "VARIANTS")}
    for B, H, S, D, causal in found["SHAPES"]:
        for name, fields in found["VARIANTS"].items():
            dataclasses.replace(default_config(D, "bf16", causal, False), **fields)   # (a ValueError names it)


def test_a_persistent_configuration_needs_the_overlapped_loop():
    with pytest.raises(ValueError, match="persistent=True needs overlap=True"):
        AttentionConfig(persistent=True)


def test_attention_checks_its_tensors():
    import skc

    q = np.zeros((1, 3, 64, 64), np.float32)
    kv = np.zeros((1, 2, 64, 64), np.float32)
    with pytest.raises(skc.LaunchError, match="K/V heads dividing Q heads: 3 and 2"):
        attention(q, kv, kv)
    with pytest.raises(skc.LaunchError, match="layout must be one of"):
        attention(q, q, q, layout="sbhd")
    no_kv_heads = np.zeros((1, 0, 64, 64), np.float32)
    with pytest.raises(skc.LaunchError, match="K/V heads dividing Q heads: 3 and 0"):
        attention(q, no_kv_heads, no_kv_heads)
    no_dim = np.zeros((1, 3, 64, 0), np.float32)   # (was named as a stride no multiple of 16 bytes)
    with pytest.raises(skc.LaunchError, match="head dimensions 64, 128 and 256; .* have 0"):
        attention(no_dim, no_dim, no_dim)


@pytest.mark.parametrize("q_shape, kv_shape", [((0, 2, 8, 64), (0, 2, 8, 64)), ((1, 0, 8, 64), (1, 0, 8, 64)),
                                               ((1, 2, 0, 64), (1, 2, 8, 64)), ((1, 0, 8, 64), (1, 2, 8, 64)),
                                               ((1, 2, 8, 64), (1, 2, 0, 64)), ((2, 4, 8, 128), (2, 2, 0, 128))])
@pytest.mark.parametrize("causal", [False, True])
def test_empty_attention_is_torchs(q_shape, kv_shape, causal):
    """No query row: an empty out and log-sum-exp; no key: zeros, each row a weighted sum of no values (torch's
    scaled_dot_product_attention, CPU and math alike), and -inf, the log of an empty sum (torch.logsumexp). Both
    with no launch (was: refused, 'every dimension must be at least 1'; the kernel would wait for a key block)."""
    torch = pytest.importorskip("torch")
    q = torch.randn(q_shape).bfloat16()
    k, v = torch.randn(kv_shape).bfloat16(), torch.randn(kv_shape).bfloat16()
    out, lse = attention(q, k, v, causal=causal, return_lse=True)
    group = q.shape[1] // k.shape[1] if k.shape[1] else 1
    expected = torch.nn.functional.scaled_dot_product_attention(
        q.float(), k.float().repeat_interleave(group, 1), v.float().repeat_interleave(group, 1), is_causal=causal)
    scores = q.float() @ k.float().repeat_interleave(group, 1).transpose(-1, -2)
    assert out.shape == q.shape and out.dtype == q.dtype and torch.equal(out.float(), expected)
    assert lse.dtype == torch.float32 and torch.equal(lse, torch.logsumexp(scores, -1))
    given = torch.full(q.shape, 7.0, dtype=q.dtype).transpose(1, 2)   # (bshd: written in place, as given)
    bshd = [x.transpose(1, 2) for x in (q, k, v)]
    assert attention(*bshd, causal=causal, out=given, layout="bshd") is given
    assert torch.equal(given.transpose(1, 2).float(), expected)
    with pytest.raises(skc.LaunchError, match="out must be like q"):
        attention(q, k, v, out=torch.empty(q.shape))
    host = attention(q.float().numpy(), k.float().numpy(), v.float().numpy(), return_lse=True)
    assert host[0].shape == q.shape and np.array_equal(host[0], expected.numpy())
    assert np.array_equal(host[1], lse.numpy())


@needs_nvjitlink
@pytest.mark.parametrize("D, causal, persistent, overlap, pingpong", [
    (64, False, False, False, False), (128, True, False, False, False), (128, False, True, True, False),
    (128, True, False, True, False), (128, False, False, False, True), (128, False, False, True, True)])
def test_attention_compiles_for_sm_90a_without_spills(D, causal, persistent, overlap, pingpong):
    config = AttentionConfig(head_dim=D, causal=causal, dtype="bf16", persistent=persistent, overlap=overlap,
                             pingpong=pingpong)
    compiled = attention_kernel.compile(target="sm_90a", **compile_arguments(config))
    ptx = compiled.asm("ptx")
    shared_a = re.findall(rf"wgmma\.mma_async\.sync\.aligned\.m64n{config.block_n}k16\.f32\.bf16\.bf16 \{{[^}}]*\}}, "
                          r"%rd\d+, %rd\d+", ptx)
    register_a = re.findall(rf"wgmma\.mma_async\.sync\.aligned\.m64n{D}k16\.f32\.bf16\.bf16 \{{[^}}]*\}}, "
                            r"\{%r\d+, %r\d+, %r\d+, %r\d+\}, %rd\d+", ptx)
    # overlapped: S = Q Kᵀ for the first key block and in the loop; P·V in the loop (during the next softmax) and
    # last; else each once in the loop
    copies = 2 if overlap else 1
    assert len(shared_a) == copies * (D // 16) and len(register_a) == copies * (config.block_n // 16), \
        (len(shared_a), len(register_a))
    # each warpgroup waits for its turn (bar.sync at 8 + its index, a register) and passes it on (bar.arrive) around
    # its MMAs; the last warpgroup gives the first turn (bar.arrive 8)
    turns = re.findall(r"bar\.(sync|arrive)\s+(%r\d+|\d+), 256;", ptx)
    kinds = sorted({(kind, "reg" if where.startswith("%") else where) for kind, where in turns})
    assert kinds == ([("arrive", "8"), ("arrive", "reg"), ("sync", "reg")] if pingpong else []), turns
    _, log = ptx_tools.link_ptx(ptx, "sm_90a")
    assert "serialized" not in log, log   # ptxas would serialize wgmmas whose registers are touched in flight
    resources = compiled.resources
    if not persistent:   # the persistent form spills a few registers (60 bytes at D = 128): measured on the GPU
        assert resources["spill_stores"] == 0 and resources["stack_bytes"] == 0, resources


def test_two_blocks_an_sm_plan_registers_and_shared_memory_for_both():
    """blocks_per_sm=2 (one consumer warpgroup a block): ptxas plans 128 registers a thread at entry (two blocks of
    256 threads fill the file), setmaxnreg moves them to the consumer (24 / 232), and a configuration whose shared
    memory two blocks cannot both have is refused by name."""
    config = AttentionConfig(consumers=1, block_m=64, block_n=64, overlap=True, stages=2, value_stages=3,
                             blocks_per_sm=2)
    assert (config.producer_registers, config.consumer_registers) == (24, 232)
    compiled = attention_kernel.compile(**compile_arguments(config), target="sm_90a")
    ptx = compiled.asm("ptx")
    assert ".minnctapersm 2" in ptx and re.search(r"setmaxnreg.inc.sync.aligned.u32\s+232;", ptx)
    assert re.search(r"setmaxnreg.dec.sync.aligned.u32\s+24;", ptx)
    assert compiled.resources["registers"] <= 128 and compiled.resources["spill_stores"] == 0
    with pytest.raises(ValueError, match="2 blocks a SM have 115712 bytes"):
        AttentionConfig(consumers=1, block_m=64, block_n=128, overlap=True, stages=1, value_stages=2,
                        blocks_per_sm=2)
    with pytest.raises(ValueError, match="blocks_per_sm must be 1, or 2"):
        AttentionConfig(consumers=3, block_m=192, blocks_per_sm=2)


@pytest.mark.parametrize("fields, message", [
    (dict(block_m=64), "block_m must be 64 per consumer warpgroup, 128 for consumers=2, found 64: pass consumers=1"),
    (dict(block_m=192), "128 for consumers=2, found 192: pass consumers=3 with it"),
    (dict(block_m=96, consumers=1), "64 for consumers=1, found 96: a multiple of 64"),
])
def test_a_query_tile_of_other_rows_than_its_consumers_names_both(fields, message):
    """block_m is 64 rows a consumer warpgroup: a block_m of 64 beside the default two consumers was refused with
    "block_m must be 64 per consumer warpgroup, found 64", naming neither the consumers nor what to pass."""
    with pytest.raises(ValueError, match=re.escape(message)):
        AttentionConfig(head_dim=64, **fields)
    assert AttentionConfig(head_dim=64, block_m=64, consumers=1).threads == 256
