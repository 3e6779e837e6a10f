"""attention's first-order backward in bounded memory (skc/torch_attention_backward.py): the gradients of the plain
reference in float64, block boundaries anywhere (query rows, key rows, K/V heads, batches), for both layouts, grouped
heads, the causal mask with Sq != Skv, a scale, and a gradient on the lse; through torch.ops.skc.attention_with_lse,
no tensor as large as the scores (was: the float32 reference's vjp materialised (B, H, Sq, Skv) several times)."""
import itertools

import pytest

torch = pytest.importorskip("torch")
import skc  # noqa: E402
import skc.torch  # noqa: E402,F401
from skc.torch_attention_backward import MIB_ENV, attention_backward, plan_blocks, score_block_elements  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402


def reference(q, k, v, causal, scale, layout):
    """skc.torch's attention reference without its float32 casts: (out, lse) in the inputs' dtype."""
    if layout == "bshd":
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    group = q.shape[1] // k.shape[1]
    k, v = (t.repeat_interleave(group, dim=1) for t in (k, v))
    scores = (q @ k.transpose(-1, -2)) * (q.shape[-1] ** -0.5 if scale is None else scale)
    if causal:
        scores = scores.masked_fill(torch.ones(scores.shape[-2:], dtype=torch.bool).triu(1), -torch.inf)
    out = torch.softmax(scores, dim=-1) @ v
    return (out.transpose(1, 2) if layout == "bshd" else out), torch.logsumexp(scores, dim=-1)


def problem(B, H, Hkv, Sq, Skv, D, layout, seed=0):
    generator = torch.Generator().manual_seed(seed)
    shape = (lambda h, s: (B, h, s, D)) if layout == "bhsd" else (lambda h, s: (B, s, h, D))
    return [torch.randn(*shape(h, s), generator=generator, dtype=torch.float64)
            for h, s in ((H, Sq), (Hkv, Skv), (Hkv, Skv), (H, Sq))] + \
        [torch.randn(B, H, Sq, generator=generator, dtype=torch.float64)]


def want_grads(q, k, v, grad_out, grad_lse, causal, scale, layout, wanted=(True, True, True)):
    inputs = [t.clone().requires_grad_(need) for t, need in zip((q, k, v), wanted)]
    out, lse = reference(*inputs, causal, scale, layout)
    # (lse does not depend on v: with only v wanted and only lse's gradient, v's is zero)
    pairs = [(o, g) for o, g in ((out, grad_out), (lse, grad_lse)) if g is not None and o.grad_fn]
    outputs, cotangents = [o for o, _ in pairs], [g for _, g in pairs]
    asked = [t for t in inputs if t.requires_grad]
    got = iter(torch.autograd.grad(outputs, asked, cotangents, allow_unused=True, materialize_grads=True) if outputs
               else [torch.zeros_like(t) for t in asked])
    return [next(got) if need else None for need in wanted]


BLOCKS = [(1, 1, 3, 4), (2, 2, 16, 16), (1, 2, 2, 3), (2, 1, 16, 2), (1, 1, 1, 1)]


@pytest.mark.parametrize("causal, layout, heads, lengths", list(itertools.product(
    (False, True), ("bhsd", "bshd"), ((2, 2), (4, 2), (3, 1)), ((7, 7), (5, 11), (11, 5)))))
def test_the_blocked_backward_is_the_references(causal, layout, heads, lengths):
    """Every block shape (one query row and one key, rows and keys splitting unevenly, heads and batches a block
    apart, or all in one) gives the reference's gradients in float64, with gradients arriving on out and lse."""
    (H, Hkv), (Sq, Skv) = heads, lengths
    q, k, v, grad_out, grad_lse = problem(2, H, Hkv, Sq, Skv, 8, layout)
    scale = 0.3 if H == 3 else None
    want = want_grads(q, k, v, grad_out, grad_lse, causal, scale, layout)
    for blocks in BLOCKS:
        got = attention_backward(q, k, v, grad_out, grad_lse, causal, scale, layout, (True, True, True), blocks)
        for g, w in zip(got, want):
            assert g.shape == w.shape and g.dtype == torch.float64 and g.is_contiguous()
            assert (g - w).abs().max() <= 1e-12 * (1 + w.abs().max()), blocks


@pytest.mark.parametrize("wanted", [(True, False, False), (False, True, False), (False, False, True),
                                    (False, True, True)])
@pytest.mark.parametrize("arriving", ["out", "lse", "both"])
def test_only_the_wanted_gradients_are_given(wanted, arriving):
    q, k, v, grad_out, grad_lse = problem(1, 4, 2, 9, 6, 8, "bhsd", seed=1)
    grad_out, grad_lse = (grad_out if arriving != "lse" else None), (grad_lse if arriving != "out" else None)
    want = want_grads(q, k, v, grad_out, grad_lse, True, None, "bhsd", wanted)
    for blocks in ((1, 1, 4, 4), None):
        got = attention_backward(q, k, v, grad_out, grad_lse, True, None, "bhsd", wanted, blocks)
        for g, w in zip(got, want):
            assert (g is None) == (w is None)
            assert g is None or (g - w).abs().max() <= 1e-12 * (1 + w.abs().max())


def test_empty_problems_give_zeros():
    """No key (the output is zeros and lse -inf), no query row, no batch: zero gradients, no NaN."""
    for B, Sq, Skv in ((1, 4, 0), (1, 0, 4), (0, 4, 4)):
        q, k, v, grad_out, grad_lse = problem(B, 2, 1, Sq, Skv, 8, "bhsd")
        for blocks in ((1, 1, 1, 1), None):
            got = attention_backward(q, k, v, grad_out, grad_lse, True, None, "bhsd", (True, True, True), blocks)
            assert [g.shape for g in got] == [q.shape, k.shape, v.shape] and not any(g.any() for g in got)


def test_a_block_holds_at_most_the_budget():
    """The planned block's scores number at most the budget; whole rows of keys come first (one pass), keys split only
    where 64 query rows of a group's heads over all keys do not fit, and heads and batches fill what is left."""
    for B, Hkv, group, Sq, Skv, budget in itertools.product((1, 3), (1, 8), (1, 4), (1, 100, 16384), (1, 77, 16384),
                                                           (64, 1 << 20, 1 << 25)):
        batches, heads, rows, cols = plan_blocks(B, Hkv, group, Sq, Skv, budget)
        assert 1 <= batches <= B and 1 <= heads <= Hkv and 1 <= rows <= max(1, Sq) and 1 <= cols <= Skv
        assert batches * heads * group * rows * cols <= max(budget, group)
        if group * min(Sq, 64) * Skv <= budget:
            assert cols == Skv
    assert plan_blocks(1, 16, 1, 16384, 16384, 1 << 25) == (1, 1, 2048, 16384)   # (128 MiB: 2048 rows of one head)
    assert plan_blocks(1, 4, 4, 16384, 1 << 20, 1 << 25) == (1, 1, 64, 131072)   # (a million keys: split in 8)
    assert plan_blocks(8, 32, 1, 512, 512, 1 << 25) == (4, 32, 512, 512)


def test_the_block_size_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(MIB_ENV, raising=False)
    assert score_block_elements() == 1 << 25
    monkeypatch.setenv(MIB_ENV, "0.5")
    assert score_block_elements() == 1 << 17
    for bad in ("lots", "0", "-1", "inf", "nan"):
        monkeypatch.setenv(MIB_ENV, bad)
        with pytest.raises(skc.LaunchError, match=f"{MIB_ENV} is the size in MiB .* a positive number; found '{bad}'"):
            score_block_elements()


class _Largest(TorchDispatchMode):
    """The most elements of a tensor any operation made."""
    def __init__(self):
        super().__init__()
        self.elements = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for t in result if isinstance(result, (tuple, list)) else (result,):
            if isinstance(t, torch.Tensor):
                self.elements = max(self.elements, t.numel())
        return result


def test_the_operators_backward_holds_no_tensor_as_large_as_the_scores(monkeypatch):
    """torch.ops.skc.attention_with_lse's backward (bshd, two query heads on one K/V head, causal, a gradient on
    out and on lse) at a block of 4,096 scores, which splits 128 rows and 128 keys in two each: the largest tensor it
    makes is q's size, not the scores' (1, 2, 128, 128) that the reference's vjp made, and the gradients are those of
    the reference in float64."""
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 128, h, 64, generator=generator).bfloat16().requires_grad_() for h in (2, 1, 1))
    out, lse = torch.ops.skc.attention_with_lse(q, k, v, causal=True, layout="bshd")
    grad_out, grad_lse = torch.randn(out.shape, generator=generator), torch.randn(lse.shape, generator=generator)
    monkeypatch.setenv(MIB_ENV, str(4096 * 4 / 2 ** 20))
    with _Largest() as largest:
        got = torch.autograd.grad((out.float(), lse), (q, k, v), (grad_out, grad_lse))
    assert largest.elements < 2 * 128 * 128
    want = want_grads(*(t.detach().double() for t in (q, k, v)), grad_out.double(), grad_lse.double(), True, None,
                      "bshd")
    for g, w in zip(got, want):
        assert g.dtype == torch.bfloat16 and (g.double() - w).abs().max() <= 0.02 * w.abs().max()


def test_rows_that_see_no_key_of_a_block_give_no_nan():
    """The online statistics start from -inf: a block of keys all hidden from a row (here the first one taken, keys 4
    and 5 of rows 0 and 1) leaves its maximum at -inf, which exp(-inf - -inf) made NaN; and a row that sees no key at
    all gets lse -inf and zero probabilities."""
    from skc.torch_attention_backward import _Problem, _Step

    q, k, v, grad_out, _ = problem(1, 1, 1, 2, 6, 8, "bhsd")
    grads = [torch.zeros_like(t) for t in (q, k, v)]
    step = _Step(_Problem(q, k, v, grad_out, None, grads, True, 0.5, 1, torch.float64), slice(0, 1), slice(0, 1), 0, 2,
                 k, v)
    lse, delta = step.statistics([(4, 6), (0, 2)])
    assert torch.isfinite(lse).all() and torch.isfinite(delta).all()
    scores = (q @ k[..., :2, :].transpose(-1, -2) * 0.5).masked_fill(torch.ones(2, 2, dtype=torch.bool).triu(1),
                                                                     -torch.inf)
    torch.testing.assert_close(lse, torch.logsumexp(scores, -1), rtol=1e-12, atol=1e-12)
    lse, delta = step.statistics([(4, 6), (5, 6)])   # (no key seen at all)
    assert (lse == -torch.inf).all() and (delta == 0).all()
    dq, dk, dv = (torch.zeros_like(t) for t in (step.q, k, v))
    step.gradients(4, 6, (lse, delta), dq, dk, dv)
    step.gradients(4, 6, None, dq, dk, dv)
    assert not any(t.isnan().any() or t.any() for t in (dq, dk, dv))
