"""The online-softmax TileOp on its own in the interpreter: over a stream of score blocks with tails and causal
masks, O (standing in for P·V by O += P) and the log-sum-exp match numpy's softmax of the whole rows."""
from __future__ import annotations

import numpy as np
import pytest
from attention_kernels import THREADS, d_fragments, online_softmax_kernel

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


@pytest.mark.parametrize("n, blocks, valid, causal", [(64, 3, 192, False), (64, 3, 150, False), (32, 4, 100, True),
                                                      (128, 2, 256, True)])
def test_online_softmax_matches_the_softmax_of_whole_rows(n, blocks, valid, causal):
    scale = 0.125
    scores = (RNG.standard_normal((64, n * blocks)) * 6).astype(np.float32)
    image = np.stack([d_fragments(scores[:, j * n:(j + 1) * n]) for j in range(blocks)])
    out = np.full((THREADS, n // 2), np.nan, np.float32)
    lse = np.full(64, np.nan, np.float32)
    online_softmax_kernel.interpret[(1,), (THREADS,)](image, out, lse, valid, cfg=(n, blocks, scale, causal))
    p, expected_lse = reference(scores, valid, scale, causal)
    expected = p.reshape(64, blocks, n).sum(axis=1)
    np.testing.assert_allclose(out, d_fragments(expected.astype(np.float32)), rtol=2e-6, atol=2e-7)
    np.testing.assert_allclose(lse, expected_lse, rtol=2e-6, atol=2e-6)
