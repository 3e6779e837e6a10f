"""TileOp: the online softmax of attention (a row-wise softmax over a stream of score blocks). For each block
S of a warpgroup's accumulator rows it keeps the running row maximum m and row sum l, turns S into
P = exp2(S·c - m·c) in place (c = scale · log2(e): the softmax scale folded into exp2), and rescales the output
accumulator O by exp2((m_old - m_new)·c) so that O stays Σ P·V of the rows' current maximum. `finish(o)`
divides O by l and gives the rows' log-sum-exp. It reads the layout only through the accumulator's own
description (`rows()`, `row_lanes`, `position`), so it serves any TileOp whose accumulator says that."""
from __future__ import annotations

import skc

LOG2E = 1.4426950408889634
NEG_INF = float("-inf")


class OnlineSoftmax:
    """Running softmax state of the rows of a warpgroup's accumulator. `scale` multiplies the scores (a
    compile-time float or a run-time f32). The row sums are kept per thread (each holds part of a row) and
    reduced across the row's lanes once, in `finish`."""

    def __init__(self, scale, rows: int = 2):
        self.scale_log2 = scale * LOG2E
        self.rows_held = rows
        self.max = skc.full(rows, NEG_INF, skc.f32)   # run-time vectors: they live in loop-carried variables
        self.sum = skc.full(rows, 0.0, skc.f32)

    def reset(self):
        self.max = skc.full(self.rows_held, NEG_INF, skc.f32)
        self.sum = skc.full(self.rows_held, 0.0, skc.f32)

    def __call__(self, s, o, mask=None):
        """S (its MMAs completed) becomes P in place; O (its MMAs completed) is rescaled to the new row maxima.
        `mask(row, column)`, given, is a run-time test per score (row and column in S's tile): scores where it
        is false are -inf."""
        self.rescale(o, self.update(s, mask))

    def update(self, s, mask=None):
        """The part of a step that needs S only: S becomes P, the running maxima and sums move on. Gives the
        factors (a vector, one per row of `s.rows()`) that O must be multiplied by (`rescale`), so that the
        MMAs still writing O may run meanwhile."""
        fragment = s.fragment
        probabilities = []   # (index, P value): lists grow by append in run-time loops, not by item assignment
        new_max, new_sum, factors = [], [], []
        for h, (row, indices) in enumerate(s.rows()):
            values = [fragment[i] for i in indices]
            if mask is not None:
                values = [skc.where(mask(*s.position(i)), value, NEG_INF) for i, value in zip(indices, values)]
            block_max = values[0]
            for value in values[1:]:
                block_max = skc.maximum(block_max, value)
            for lanes in s.row_lanes:
                block_max = skc.maximum(block_max, skc.shfl_xor(block_max, lanes))
            running = skc.maximum(self.max[h], block_max)
            # a row that has seen only masked scores keeps maximum -inf: subtract 0 there (no inf - inf)
            shift = skc.where(running == NEG_INF, 0.0, running * self.scale_log2)
            factor = skc.exp2(self.max[h] * self.scale_log2 - shift)
            total = self.sum[h] * factor
            for i, value in zip(indices, values):
                p = skc.exp2(skc.fma(value, self.scale_log2, -shift))
                total = total + p
                probabilities.append((i, p))
            new_max.append(running)
            new_sum.append(total)
            factors.append(factor)
        s.fragment = _vector_of(dict(probabilities), s.n // 2)
        self.max = skc.vector(*new_max)
        self.sum = skc.vector(*new_sum)
        return skc.vector(*factors)

    def finish(self, o) -> list:
        """O /= l for each row (0 where a row saw no score); gives each row's log-sum-exp of the scaled scores
        (natural log), one per row of `o.rows()`."""
        inverses, lse = [], []
        for h in skc.static_range(self.rows_held):
            total = self.sum[h]
            for lanes in o.row_lanes:
                total = total + skc.shfl_xor(total, lanes)
            inverses.append(skc.where(total > 0.0, 1.0 / total, 0.0))
            lse.append((self.max[h] * self.scale_log2 + skc.log2(total)) / LOG2E)
        self.rescale(o, skc.vector(*inverses))
        return lse

    def rescale(self, o, factors):
        """Multiply each row of accumulator o by its factor (a vector, in the order of `o.rows()`)."""
        fragment = o.fragment
        scaled = {i: fragment[i] * factors[h] for h, (row, indices) in enumerate(o.rows()) for i in indices}
        o.fragment = _vector_of(scaled, o.n // 2)


def _vector_of(values: dict, count: int):
    """The vector of values[0], ..., values[count - 1]."""
    return skc.vector(*[values[i] for i in range(count)])
