"""The online-softmax TileOp on its own in the interpreter: over a stream of score blocks with tails and causal
masks, O (standing in for P·V by O += P) and the log-sum-exp match numpy's softmax of the whole rows."""
from __future__ import annotations

import numpy as np
import pytest
from attention_kernels import THREADS, d_fragments, online_softmax_kernel
from helpers import OneRowAccumulator

import skc
from skc.blocks import OnlineSoftmax

RNG = np.random.default_rng(7)


def reference(scores: np.ndarray, valid: int, scale: float, causal: bool):
    """(Σ_j P[:, j-th block], log-sum-exp) of the softmax of scale · scores over each whole row."""
    rows, total = scores.shape
    column = np.arange(total)[None, :]
    keep = column < valid
    if causal:
        keep = keep & (column <= np.arange(rows)[:, None])
    x = np.where(keep, scores.astype(np.float64) * scale, -np.inf)
    top = x.max(axis=1, keepdims=True)
    e = np.exp(x - top)
    p = e / e.sum(axis=1, keepdims=True)
    lse = (top[:, 0] + np.log(e.sum(axis=1)))
    return p, lse


@pytest.mark.parametrize("n, blocks, valid, causal, exp2_on_fma, tree, lazy, climb", [
    (64, 3, 192, False, 0, False, 0.0, 0), (64, 3, 150, False, 0, False, 0.0, 0),
    (32, 4, 100, True, 0, False, 0.0, 0), (128, 2, 256, True, 0, False, 0.0, 0),
    (64, 3, 150, False, 4, False, 0.0, 0),   # every 4th exp2 of a row on the FMA pipe
    (32, 4, 100, True, 1, True, 0.0, 0),     # all of them, and the rows reduced pairwise
    (128, 2, 256, True, 0, True, 0.0, 0),
    # a row's maximum moves only past 2^8 in P: never after the first block, or (scores climbing by 60 a block,
    # 10.8 in exp2) at every block
    (64, 3, 150, False, 0, False, 8.0, 0), (32, 4, 100, True, 0, False, 8.0, 60), (64, 3, 192, False, 0, True, 8.0, 60),
])
def test_online_softmax_matches_the_softmax_of_whole_rows(n, blocks, valid, causal, exp2_on_fma, tree, lazy, climb):
    scale = 0.125
    scores = (RNG.standard_normal((64, n * blocks)) * 6 + climb * (np.arange(n * blocks) // n)).astype(np.float32)
    image = np.stack([d_fragments(scores[:, j * n:(j + 1) * n]) for j in range(blocks)])
    out = np.full((THREADS, n // 2), np.nan, np.float32)
    lse = np.full(64, np.nan, np.float32)
    online_softmax_kernel.interpret[(1,), (THREADS,)](image, out, lse, valid,
                                                      cfg=(n, blocks, scale, causal, exp2_on_fma, tree, lazy))
    p, expected_lse = reference(scores, valid, scale, causal)
    expected = p.reshape(64, blocks, n).sum(axis=1)
    # the polynomial's relative error (1.01e-4) where exp2 runs on the FMA pipe; f32 rounding otherwise
    rtol, atol = (2.5e-4, 2e-6) if exp2_on_fma else (2e-6, 2e-7)
    np.testing.assert_allclose(out, d_fragments(expected.astype(np.float32)), rtol=rtol, atol=atol)
    np.testing.assert_allclose(lse, expected_lse, rtol=rtol, atol=2e-6 if not exp2_on_fma else 2e-4)
    if exp2_on_fma or tree or lazy:   # the options took effect: other exp2s, other sums than the plain softmax's
        plain = np.full_like(out, np.nan)
        online_softmax_kernel.interpret[(1,), (THREADS,)](image, plain, np.full_like(lse, np.nan), valid,
                                                          cfg=(n, blocks, scale, causal))
        assert not np.array_equal(out, plain)


def test_exp2_on_the_fma_pipe():
    """2^x through the polynomial: relative error at most 1.02e-4 over the softmax's range, exactly 1 at 0, exactly 0
    from -127 down (and for -inf: masked scores), powers of two exact."""
    from attention_kernels import exp2_on_fma_kernel

    x = np.concatenate([np.linspace(-126, 0, 200001, dtype=np.float32), -np.arange(0, 127, dtype=np.float32),
                        np.array([-127, -127.4, -200, -1e30, -np.inf], np.float32)])
    y = np.full_like(x, np.nan)
    exp2_on_fma_kernel.interpret[(-(-len(x) // 256),), (256,)](x, y, len(x))
    finite = x >= -126
    relative = np.abs(y[finite].astype(np.float64) / np.exp2(x[finite].astype(np.float64)) - 1)
    assert relative.max() <= 1.02e-4
    whole = (x == np.round(x)) & finite
    np.testing.assert_array_equal(y[whole], np.exp2(x[whole]))
    assert (y[x <= -127] == 0).all()
    between = np.linspace(-127, -126, 1001, dtype=np.float32)
    tiny = np.full_like(between, np.nan)
    exp2_on_fma_kernel.interpret[(4,), (256,)](between, tiny, len(between))
    assert ((tiny >= 0) & (tiny < 2.0 ** -125)).all()


def softmax_run(scores, valid, scale, causal, exp2_on_fma=0, lazy=0.0, exact=False):
    """(O / l as fragments, lse) of online_softmax_kernel over the 64 x (64 · blocks) scores, in the interpreter."""
    n = 64
    image = np.stack([d_fragments(scores[:, j * n:(j + 1) * n]) for j in range(scores.shape[1] // n)])
    out = np.full((THREADS, n // 2), np.nan, np.float32)
    lse = np.full(64, np.nan, np.float32)
    online_softmax_kernel.interpret[(1,), (THREADS,)](
        image, out, lse, valid, cfg=(n, scores.shape[1] // n, scale, causal, exp2_on_fma, False, lazy, exact))
    return out, lse


def assert_whole_rows(scores, valid, scale, causal, out, lse, rtol=2e-6):
    """out and lse are numpy's softmax of the whole rows (within rtol, and 1e-6 for lse); gives the expected out."""
    p, expected_lse = reference(scores, valid, scale, causal)
    expected = d_fragments(p.reshape(64, -1, 64).sum(axis=1).astype(np.float32))
    np.testing.assert_allclose(out, expected, rtol=rtol, atol=2e-7)
    np.testing.assert_allclose(lse, expected_lse, rtol=1e-6)
    return expected


@pytest.mark.parametrize("offset, scale, causal, lazy", [
    (2.0 ** 20, 0.125, False, 0.0), (-2.0 ** 20, 0.125, True, 0.0), (2.0 ** 20, 0.125, False, 2.0),
])
def test_online_softmax_of_scores_far_from_zero(offset, scale, causal, lazy):
    """Scores around ±2^20 (|m·c| about 1.9e5 in exp2's units, where one fma's m·c rounded to f32 is off by up
    to 2^-7): the softmax still matches numpy's, every P mattering. (Past about 2^31 that rounding passes exp2's
    range and rows read NaN: README, "Reliability".)"""
    steps = RNG.integers(-40, 1, (64, 64 * 3))
    scores = (offset + 0.125 * steps).astype(np.float32)
    assert np.array_equal(scores.astype(np.float64), offset + 0.125 * steps)   # exact in f32
    out, lse = softmax_run(scores, 170, scale, causal, lazy=lazy)
    assert_whole_rows(scores, 170, scale, causal, out, lse, rtol=2e-5)


@pytest.mark.parametrize("scale, causal, exp2_on_fma, lazy", [
    (1e10, False, 0, 0.0), (1e10, True, 4, 0.0), (3e9, False, 0, 2.0), (1e12, True, 0, 8.0)])
def test_exact_exponents_past_the_range_of_one_fma(scale, causal, exp2_on_fma, lazy):
    """scale 1e9-1e12 on scores of about ±20 (|m·c| up to 2^46 in exp2's units): one fma's reference m·c, rounded
    to f32, is off by more than exp2's range, so rows come out NaN or 0; each exponent as (s - m)·c (`exact`) gives
    numpy's softmax, which at such scales keeps a row's largest scores (ties on purpose: scores on a grid of 1/8)."""
    scores = (RNG.integers(-160, 161, (64, 64 * 3)) * 0.125).astype(np.float32)
    out, lse = softmax_run(scores, 170, scale, causal, exp2_on_fma, lazy, exact=True)
    expected = assert_whole_rows(scores, 170, scale, causal, out, lse, rtol=2.5e-4 if exp2_on_fma else 2e-6)
    fast = softmax_run(scores, 170, scale, causal, exp2_on_fma, lazy)[0]
    assert not np.allclose(fast, expected, rtol=1e-2, atol=1e-2, equal_nan=False)   # one fma's rows: NaN or 0


@pytest.mark.parametrize("scale, offset, causal, exp2_on_fma, lazy", [
    (1e10, 0.0, False, 0, 0.0), (1e10, 0.0, True, 4, 0.0), (3e9, 0.0, False, 0, 2.0),   # as exact=True's test
    (16.0, 2.0 ** 27, False, 0, 0.0), (16.0, -2.0 ** 27, True, 0, 2.0),   # a scale of 16 on raw scores of 1.3e8
    (0.125, 0.0, False, 4, 0.0), (0.125, 2.0 ** 20, True, 0, 8.0),        # within FAR: the one fma's, bit for bit
])
def test_far_exponents_are_exact_past_the_range_of_one_fma(scale, offset, causal, exp2_on_fma, lazy):
    """exact="far": one fma while a warp's references m·c stay within 2^24 in exp2's units, (s - m)·c past it. At
    scales of 1e9-1e10, and at a scale of 16 on scores about ±2^27 (|m·c| about 3e9), it gives numpy's softmax where
    one fma's rows are NaN or 0; below 2^24 its output is the one fma's, bit for bit."""
    n, blocks, valid = 64, 3, 170
    grid = 16.0 if offset else 0.125   # (scores exact in f32: 2^27's ulp is 16)
    steps = RNG.integers(-160, 161, (64, n * blocks))
    scores = (offset + steps * grid).astype(np.float32)
    assert np.array_equal(scores.astype(np.float64), offset + steps * grid)   # exact in f32
    far = softmax_run(scores, valid, scale, causal, exp2_on_fma, lazy, exact="far")
    fast = softmax_run(scores, valid, scale, causal, exp2_on_fma, lazy)
    if abs(offset) * scale * 1.4427 > 2.0 ** 24 or scale > 1e3:
        assert_whole_rows(scores, valid, scale, causal, *far, rtol=2.5e-4 if exp2_on_fma else 2e-6)
        assert not np.allclose(fast[0], far[0], rtol=1e-2, atol=1e-2)   # one fma's rows: NaN, 0 or inf
    else:
        np.testing.assert_array_equal(far[0], fast[0])
        np.testing.assert_array_equal(far[1], fast[1])


BOUND = 2.0 ** 24 / float(np.float32(1.4426950408889634))   # FAR in the scores' units at scale 1


@pytest.mark.parametrize("start, causal, lazy", [(-BOUND - 7, False, 0.0), (BOUND - 9, False, 0.0),
                                                 (-BOUND - 7, True, 2.0), (BOUND - 9, True, 0.0)])
def test_far_exponents_across_the_bound(start, causal, lazy):
    """Rows whose maxima cross FAR (2^24 in exp2's units) between blocks, from past it to within it and from within
    to past it, while the blocks before keep weights of 2^-1 to 2^-17: each step moves O from one reference to the
    next, the rounding that the fma's reference drops (up to 0.5 in exp2's units here) accounted for on either side.
    Scale 1; integer scores, exact in f32."""
    n, blocks, valid = 64, 4, 250
    steps = np.arange(n * blocks)[None, :] // n * 4   # each block's maximum 4 higher (5.8 in exp2's units)
    exact = np.round(start) + steps - RNG.integers(0, 12, (64, n * blocks))
    scores = exact.astype(np.float32)
    assert np.array_equal(scores.astype(np.float64), exact)   # integers, exact in f32
    out, lse = softmax_run(scores, valid, 1.0, causal, lazy=lazy, exact="far")
    assert_whole_rows(scores, valid, 1.0, causal, out, lse, rtol=4e-6)


@skc.kernel(block=THREADS)
def one_row_softmax(scores: skc.Ptr[skc.f32], out: skc.Ptr[skc.f32], lse: skc.Ptr[skc.f32], p: skc.Ptr[skc.f32],
                    blocks: skc.i32, cfg: skc.constexpr):
    """O = Σ_j P_j over `blocks` 64 x 16 blocks of row-major 64 x 16·blocks scores, each row's log-sum-exp, and the
    last block's P; cfg: OnlineSoftmax's (rows, scale, lazy, exact)."""
    rows, scale, lazy, exact = cfg
    s, o = OneRowAccumulator(), OneRowAccumulator()
    softmax = OnlineSoftmax(scale, rows=rows, lazy=lazy, exact=exact)
    row, column = s.position(0)
    for j in range(blocks):
        first = scores + (row * 16 * blocks + j * 16 + column)
        s.fragment = skc.vector(*[first[i] for i in range(8)])
        softmax(s, o)
        o.fragment = o.fragment + s.fragment
    total = softmax.finish(o)
    for i in skc.static_range(8):
        out[row * 16 + column + i] = o.fragment[i]
        p[row * 16 + column + i] = s.fragment[i]
    if column == 0:
        lse[row] = total[0]


def test_online_softmax_of_an_accumulator_of_one_row_a_thread():
    """The TileOp read `n` of its accumulators, which the accumulator interface does not name (an AttributeError
    inside the block), and a thread's state of one row was a vector of one, which skc.vector refuses: a layout of
    one row a thread could not be used. A `rows` that is not the accumulator's is a compile error naming both."""
    blocks = 3
    scores = (RNG.standard_normal((64, 16 * blocks)) * 4).astype(np.float32)
    out, lse, p_last = np.full((64, 16), np.nan, np.float32), np.full(64, np.nan, np.float32), np.zeros((64, 16), np.float32)
    one_row_softmax[1, THREADS](scores, out, lse, p_last, blocks, (1, 0.5, 0.0, False))
    p, expected_lse = reference(scores, 16 * blocks, 0.5, False)
    np.testing.assert_allclose(out, p.reshape(64, blocks, 16).sum(axis=1), rtol=2e-6, atol=2e-7)
    np.testing.assert_allclose(lse, expected_lse, rtol=2e-6, atol=2e-6)
    with pytest.raises(skc.CompileError, match=r"state of 2 row\(s\) a thread; the accumulator's threads hold "
                                               r"values of 1") as info:
        one_row_softmax[1, THREADS](scores, out, lse, p_last, blocks, (2, 0.5, 0.0, False))
    assert "test_online_softmax.py:" in str(info.value).splitlines()[0] and "rows=1" in str(info.value)


def test_far_exponents_at_a_reference_of_two_to_the_24():
    """m·c just under 2^24 + 1 rounds to the reference 2^24 (a rounding ρ of almost 1, where FAR's comment promises at
    most 0.5): "far" took it as within FAR (|reference| > FAR), so a later score that lazy=15 keeps under the reference,
    (s - m)·c = 15, got P = 2^(15 + ρ), 65535.9, past fp16's 65504 (attention with f16 and lazy_rescale=15: rows of
    inf). A reference of 2^24 itself is past FAR: P = 2^15, as exact=True's. c = 12582909 / 2^23, m = 11184814,
    s = m + 10: integers exact in f32, m·c = 2^24 + 1 - 1.2e-6."""
    c = np.float32(12582909 / 2.0 ** 23)
    scale = float(c) / 1.4426950408889634
    assert np.float32(scale * 1.4426950408889634) == c
    m, s = 11184814.0, 11184824.0
    assert np.float32(m) * c == 2.0 ** 24 and float(np.float32(s - m) * c) <= 15.0   # lazy keeps m at the 2nd block
    blocks = 2
    scores = np.full((64, 16 * blocks), -np.inf, np.float32)
    scores[:, 0], scores[:, 16] = m, s
    for exact in ("far", True):
        p, out, lse = np.full((64, 16), np.nan, np.float32), np.zeros((64, 16), np.float32), np.zeros(64, np.float32)
        one_row_softmax[1, THREADS](scores, out, lse, p, blocks, (1, scale, 15.0, exact))
        assert np.all(p[:, 1:] == 0.0)
        np.testing.assert_allclose(p[:, 0], 2.0 ** 15, rtol=1e-5)   # 2^((s - m)·c): finite in fp16
        assert np.all(np.isfinite(p.astype(np.float16)))
