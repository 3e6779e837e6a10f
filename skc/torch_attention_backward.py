"""The first-order backward of torch.ops.skc.attention (and attention_with_lse) in memory bounded independently of
Sq · Skv: FlashAttention's recomputation written in torch operations, block by block.

The float32 reference that skc.torch differentiates materialises the scores (B, H, Sq, Skv) in float32, several
times over in its vector-Jacobian product, and K and V repeated per group of query heads: 34 GB for one score tensor
of B=1, H=32, S=16384, where the backward of torch's scaled_dot_product_attention (flash, memory-efficient) makes no
such tensor. Here the scores are rebuilt a block at a time, a block being some batches, some K/V heads (with every
query head of their groups), some query rows and some key rows, at most `score_block_elements()` float32 numbers
(128 MiB by default, SKC_ATTENTION_BACKWARD_MIB in the environment). Per block, with lse each row's log-sum-exp of
its scaled, masked scores:

    P = exp(S − lse),  dV += Pᵀ dO,  dP = dO Vᵀ,  dS = P ⊙ (dP − δ + d_lse),  dQ += scale·dS K,  dK += scale·dSᵀ Q

where δ = rowsum(P ⊙ dP) (which is rowsum(dO ⊙ O)) and d_lse the gradient arriving on the lse output. lse and δ
are recomputed here in float32 from q, k, v (not read from the kernel's bf16 output), so the gradients are the
reference's up to float32 rounding order. Where a row's keys fit one block (Skv up to 2^25 / (64 · group) keys at the
default size) one pass gives both; longer rows take a first pass over the key blocks that accumulates lse and δ
online, and a second that forms the gradients. A query head's group shares its K/V head's rows in one product (no
repeated K/V), so dK and dV sum over the group as they are formed. Under the causal mask (torch's, top-left aligned:
query i sees keys 0 .. i) a block of query rows reads only the keys its last row sees. All products and sums are
float32 (float64 for float64 inputs, which the tests use); dK and dV accumulate in float32 over the query blocks of
one block of heads at a time, and each gradient is returned in its input's dtype and layout.
"""

import math
import os
from typing import Optional, Sequence

import torch

from .diagnostics import LaunchError

MIB_ENV = "SKC_ATTENTION_BACKWARD_MIB"
DEFAULT_MIB = 128.0
# Query rows a block keeps before its keys are split: fewer rows make a block's products thin, and splitting the keys
# costs a second pass over them (7 products a block instead of 5).
MIN_ROWS = 64


def score_block_elements() -> int:
    """The most float32 scores one block holds: SKC_ATTENTION_BACKWARD_MIB (MiB, default 128) / 4 bytes. A step holds
    about two such blocks at once (P, and dP turning into dS in place)."""
    text = os.environ.get(MIB_ENV, "").strip()
    try:
        mib = float(text) if text else DEFAULT_MIB
    except ValueError:
        mib = math.nan
    if not (0 < mib < math.inf):
        raise LaunchError(f"{MIB_ENV} is the size in MiB of a float32 score block of attention's backward, a positive "
                          f"number; found {text!r}: unset it for {DEFAULT_MIB:g} MiB, or give e.g. 64")
    return max(1, int(mib * (1 << 20)) // 4)


def plan_blocks(B: int, Hkv: int, group: int, Sq: int, Skv: int, budget: int) -> tuple:
    """(batches, kv_heads, rows, cols) of a block, whose scores number batches · kv_heads · group · rows · cols: at
    most `budget` (unless one group's row of one key exceeds it). Whole rows of keys first (one pass) where MIN_ROWS
    rows fit, then as many query rows as fit, then K/V heads, then batches."""
    rows_wanted = max(1, min(Sq, MIN_ROWS))
    cols = max(1, Skv) if group * rows_wanted * Skv <= budget else max(1, budget // (group * rows_wanted))
    rows = min(max(1, Sq), max(1, budget // (group * cols)))
    heads = min(max(1, Hkv), max(1, budget // (group * rows * cols)))
    batches = min(max(1, B), max(1, budget // (heads * group * rows * cols))) if heads >= Hkv else 1
    return batches, heads, rows, cols


def attention_backward(q, k, v, grad_out, grad_lse, causal: bool, scale: Optional[float], layout: str,
                       wanted: Sequence[bool], blocks: Optional[tuple] = None) -> list:
    """[dq, dk, dv] of attention(q, k, v, causal, scale, layout) for the output's cotangent `grad_out` (None: zero)
    and the lse's `grad_lse` ((B, H, Sq), or None), each None where `wanted` says not; in the inputs' dtypes and
    shapes. `blocks` (batches, kv_heads, rows, cols) defaults to plan_blocks' for score_block_elements()."""
    compute = torch.float64 if q.dtype == torch.float64 else torch.float32
    to_bhsd = (lambda t: t.transpose(1, 2)) if layout == "bshd" else (lambda t: t)
    grads = [torch.zeros(x.shape, dtype=x.dtype, device=x.device) if need else None
             for x, need in zip((q, k, v), wanted)]
    (B, H, Sq, D), (Hkv, Skv) = to_bhsd(q).shape, to_bhsd(k).shape[1:3]
    if not any(wanted) or 0 in (B, H, Sq, Skv) or (grad_out is None and grad_lse is None):
        return grads   # (Skv of 0: the output is zeros whatever q is)
    group = H // Hkv
    scale = D ** -0.5 if scale is None else scale
    problem = _Problem(to_bhsd(q), to_bhsd(k), to_bhsd(v), None if grad_out is None else to_bhsd(grad_out), grad_lse,
                       [None if g is None else to_bhsd(g) for g in grads], causal, scale, group, compute)
    batches, heads, rows, cols = blocks or plan_blocks(B, Hkv, group, Sq, Skv, score_block_elements())
    for b0 in range(0, B, batches):
        for h0 in range(0, Hkv, heads):
            problem.run_heads(slice(b0, b0 + batches), slice(h0, h0 + heads), rows, cols)
    return grads


class _Problem:
    """One backward: the inputs and gradients as (B, H, S, D) views, and the work of a block of batches and K/V
    heads, with every query head of their groups."""

    def __init__(self, q, k, v, grad_out, grad_lse, grads, causal, scale, group, compute):
        grouped = lambda t: None if t is None else t.unflatten(1, (t.shape[1] // group, group))   # noqa: E731
        self.q, self.k, self.v, self.grad_out = grouped(q), k, v, grouped(grad_out)
        self.grad_lse = grouped(grad_lse)
        self.dq, self.dk, self.dv = grouped(grads[0]), grads[1], grads[2]
        self.causal, self.scale, self.group, self.compute = causal, scale, group, compute

    def run_heads(self, batch: slice, heads: slice, rows: int, cols: int) -> None:
        """The gradients of one block of batches and K/V heads, over all its query rows."""
        k, v = (t[batch, heads].to(self.compute) for t in (self.k, self.v))
        dk = None if self.dk is None else torch.zeros_like(k)
        dv = None if self.dv is None else torch.zeros_like(v)
        Sq, Skv = self.q.shape[3], k.shape[2]
        for q0 in range(0, Sq, rows):
            q1 = min(Sq, q0 + rows)
            step = _Step(self, batch, heads, q0, q1, k, v)
            keys = min(Skv, q1) if self.causal else Skv   # (the keys the block's last row sees)
            blocks = [(k0, min(keys, k0 + cols)) for k0 in range(0, keys, cols)]
            statistics = step.statistics(blocks) if len(blocks) > 1 else None
            dq = None if self.dq is None else torch.zeros_like(step.q)
            for k0, k1 in blocks:
                step.gradients(k0, k1, statistics, dq, dk, dv)
            if dq is not None:
                self.dq[batch, heads, :, q0:q1] = dq.unflatten(2, (self.group, q1 - q0))
        if dk is not None:
            self.dk[batch, heads] = dk
        if dv is not None:
            self.dv[batch, heads] = dv


class _Step:
    """One block of query rows (q0 .. q1 of each query head of the block's groups, the group's heads stacked into
    the rows of one product with their K/V head) against the key blocks of its K/V heads."""

    def __init__(self, problem: _Problem, batch: slice, heads: slice, q0: int, q1: int, k, v):
        self.problem, self.q0, self.rows, self.k, self.v = problem, q0, q1 - q0, k, v
        rows_of = lambda t: t[batch, heads, :, q0:q1].to(problem.compute).flatten(2, 3)   # noqa: E731
        self.q = rows_of(problem.q)
        self.grad_out = None if problem.grad_out is None else rows_of(problem.grad_out)
        self.grad_lse = None if problem.grad_lse is None else rows_of(problem.grad_lse.unsqueeze(-1)).squeeze(-1)

    def scores(self, k0: int, k1: int):
        """scale · q kᵀ of keys k0 .. k1, -inf where the causal mask hides a key (a new tensor)."""
        scores = torch.matmul(self.q, self.k[:, :, k0:k1].transpose(-1, -2)).mul_(self.problem.scale)
        if self.problem.causal and k1 - 1 > self.q0:   # (some key past some row: key j hidden from row i where j > i)
            device = scores.device
            hidden = torch.arange(k0, k1, device=device) > torch.arange(self.q0, self.q0 + self.rows,
                                                                          device=device).unsqueeze(-1)
            scores.unflatten(2, (self.problem.group, self.rows)).masked_fill_(hidden, -math.inf)
        return scores

    def output_products(self, k0: int, k1: int):
        """dP = dO vᵀ of keys k0 .. k1, or None where no gradient arrives on the output."""
        if self.grad_out is None:
            return None
        return torch.matmul(self.grad_out, self.v[:, :, k0:k1].transpose(-1, -2))

    def statistics(self, blocks) -> tuple:
        """(lse, δ) of each row, accumulated online over the key blocks (the scores' running maximum m, the sum l of
        exp(S − m) and that of exp(S − m) ⊙ dP, rescaled as m grows)."""
        shape = self.q.shape[:-1]
        maximum = torch.full(shape, -math.inf, dtype=self.q.dtype, device=self.q.device)
        total, weighted = torch.zeros_like(maximum), torch.zeros_like(maximum)
        for k0, k1 in blocks:
            scores = self.scores(k0, k1)
            grown = torch.maximum(maximum, scores.amax(-1))
            shift = _finite(grown)   # (a row with no key seen yet stays at -inf, and exp(-inf - 0) is 0, not NaN)
            rescale = torch.exp(maximum - shift)
            weights = scores.sub_(shift.unsqueeze(-1)).exp_()
            total = total * rescale + weights.sum(-1)
            products = self.output_products(k0, k1)
            if products is not None:
                weighted = weighted * rescale + _row_dot(weights, products)
            maximum = grown
        lse = _finite(maximum) + torch.log(total)    # (a row that sees no key: log 0 = -inf)
        delta = torch.where(total > 0, weighted / total, torch.zeros_like(total))
        return lse, delta

    def gradients(self, k0: int, k1: int, statistics, dq, dk, dv) -> None:
        """Add keys k0 .. k1's share to dq (this step's rows), dk and dv (the block of heads'); `statistics` are
        (lse, δ) of the rows, or None where these keys are all the rows see (both are then computed here)."""
        scores = self.scores(k0, k1)
        if statistics is None:   # (softmax in the scores' memory, as the reference computes it)
            probabilities = scores.sub_(_finite(scores.amax(-1)).unsqueeze(-1)).exp_()
            total = probabilities.sum(-1)
            probabilities.div_(total.masked_fill(total == 0, 1.0).unsqueeze(-1))   # (a row that sees no key: zeros)
        else:
            lse, delta = statistics
            probabilities = scores.sub_(_finite(lse).unsqueeze(-1)).exp_()   # (P, in the scores' memory)
        if dv is not None and self.grad_out is not None:
            dv[:, :, k0:k1] += torch.matmul(probabilities.transpose(-1, -2), self.grad_out)
        if dq is None and dk is None:
            return
        products = self.output_products(k0, k1)
        if statistics is None:
            delta = probabilities.new_zeros(probabilities.shape[:-1]) if products is None else \
                _row_dot(probabilities, products)
        if self.grad_lse is not None:
            delta = delta - self.grad_lse   # (lse's gradient: d lse / d S = P, row by row)
        if products is None:
            products = torch.zeros_like(probabilities)
        score_grads = products.sub_(delta.unsqueeze(-1)).mul_(probabilities)   # (dS, in dP's memory)
        del scores, probabilities   # (P's block freed before the products below allocate theirs)
        if dq is not None:
            dq += torch.matmul(score_grads, self.k[:, :, k0:k1]).mul_(self.problem.scale)
        if dk is not None:
            dk[:, :, k0:k1] += torch.matmul(score_grads.transpose(-1, -2), self.q).mul_(self.problem.scale)


def _finite(lse):
    """lse with -inf (a row that sees no key) as 0, to subtract from scores that are all -inf there."""
    return lse.masked_fill(lse == -math.inf, 0.0)


def _row_dot(a, b):
    """Σ_j a_ij b_ij of each row, as a batch of row-by-column products (no block-sized temporary)."""
    return torch.matmul(a.unsqueeze(-2), b.unsqueeze(-1)).squeeze(-1).squeeze(-1)
