"""TileOp: the online softmax of attention (a row-wise softmax over a stream of score blocks). For each block
S of a warpgroup's accumulator rows it keeps the running row maximum m and row sum l, turns S into
P = exp2(S·c - m·c) in place (c = scale · log2(e): the softmax scale folded into exp2; a P under 2^-126 is 0, which
lets NVIDIA GPUs take one MUFU.EX2 for it), and rescales the output
accumulator O by exp2((m_old - m_new)·c) so that O stays Σ P·V of the rows' current maximum. `finish(o)`
divides O by l and gives the rows' log-sum-exp. It reads the layout only through the accumulator's own
description (`rows()`, `row_lanes`, `position`) and its values (`fragment`, indexed as `rows()` says), so it serves
any TileOp whose accumulator says that."""
from __future__ import annotations

import numbers
import operator

import skc
from skc import frontend

from .arguments import check_count, check_flag, check_has, refuse
from .mma import check_written
from .once import earlier_use, falls_through, note_made, repeated

LOG2E = 1.4426950408889634
NEG_INF = float("-inf")


class OnlineSoftmax:
    """Running softmax state of the rows of a warpgroup's accumulator. `scale` multiplies the scores (a
    compile-time float or a run-time f32). The row sums are kept per thread (each holds part of a row) and
    reduced across the row's lanes once, in `finish`."""

    def __init__(self, scale, rows: int = 2, exp2_on_fma: int = 0, tree: bool = False, lazy: float = 0.0,
                 exact: bool = False):
        if not (isinstance(scale, numbers.Real) and not isinstance(scale, bool) or isinstance(scale, frontend.Dyn)
                and getattr(scale.type, "is_scalar", False) and scale.type.is_float):
            refuse("OnlineSoftmax", "scale", "a number (a compile-time float or a run-time f32)", scale,
                   "OnlineSoftmax(1 / math.sqrt(head_dim)), or the kernel's f32 scale parameter")
        check_count("OnlineSoftmax", "rows", rows, hint="rows=2 for wgmma's accumulator (len(acc.rows()))")
        check_count("OnlineSoftmax", "exp2_on_fma", exp2_on_fma, lowest=0,
                    hint="exp2_on_fma=0 (every exp2 on the MUFU), or n for every n-th on the FMA pipe")
        # (a config's flags, AttentionConfig(tree_reductions=1), are truth values: ints 0 and 1 too)
        tree = check_flag("OnlineSoftmax", "tree", tree, "tree=True reduces a row pairwise, False (the default) in "
                                                         "order")
        if not (isinstance(exact, str) and exact in ("far", "checked")):   # (an array's != is no truth value)
            exact = check_flag("OnlineSoftmax", "exact", exact, "exact=True takes each exponent as (s - m)·c, False "
                                                                "(the default) as one fma, \"far\" as one fma while "
                                                                "the warp's row maxima stay under 2^24 in exp2's "
                                                                "units, \"checked\" as one fma, telling whether "
                                                                "they passed it (passed_far)")
        # (a run-time lazy made `moved` a value of some paths only: "'moved' may be undefined here")
        if not (isinstance(lazy, numbers.Real) and not isinstance(lazy, bool) and lazy >= 0):
            refuse("OnlineSoftmax", "lazy", "a compile-time float of 0 or more", lazy,
                   "lazy=0.0 (rescale at every step), or t > 0: move a row's maximum only past 2^t")
        self.scale_log2 = scale * LOG2E
        self.rows_held = rows
        self.exp2_on_fma = exp2_on_fma   # every n-th score of a row takes exp2 on the FMA pipe (0: none)
        self.tree = tree                 # reduce a row's maximum and sum pairwise (a shorter dependent chain)
        # lazy > 0: a row's maximum (the reference of its exponents) moves only when a block's scores pass it by
        # more than 2^lazy in P (FlashAttention-4's conditional rescaling: P stays under 2^lazy, and O is rescaled
        # only when some row of the warp moved: `moved`, warp-uniform, from the last update)
        self.lazy = lazy
        # exact: each exponent is (s - m)·c, two operations a score; else fma(s, c, -RN(m·c)), one, whose reference
        # m·c is rounded: past |m·c| of about 2^31 that rounding passes exp2's range (a row of inf or of 0; past 2^28
        # P passes fp16's 65504). The rounding is the row's for all its exponents and cancels in O / l below that.
        # "far": one fma while the warp's references stay within FAR (the rounding at most 0.5), the exact form for
        # a block whose references pass it (a warp-uniform branch; `_far_update`).
        # "checked": the one fma, and the largest reference kept (`passed_far`: one maximum a row and step), for a
        # caller that computes the rows again with "far" where they passed FAR (the one fma's answer is "far"'s
        # below it, bit for bit)
        self.checked = exact == "checked"
        self.exact = False if self.checked else exact
        self.moved = None
        self.reset()

    def reset(self):
        """Start new rows: the maxima and sums as made (after `finish`, for the next tile's rows)."""
        self.max = skc.full(self.rows_held, NEG_INF, skc.f32)   # run-time vectors: they live in loop-carried
        self.sum = skc.full(self.rows_held, 0.0, skc.f32)       # variables
        if self.checked:
            self.largest = skc.f32(0.0)   # the largest |reference| so far, in exp2's units
        note_made(self, "finished")

    def passed_far(self):
        """(exact="checked") Whether a reference of this thread's rows, m·c, reached FAR since they started (a
        run-time bool). exact="far" decides per warp: where any thread of a warp passed (`skc.vote_any`), "far" took
        another form for all the warp's rows, and gives the one fma's answer bit for bit elsewhere."""
        if not self.checked:
            raise frontend.current().error("passed_far() tells what an OnlineSoftmax(exact=\"checked\") saw; this "
                                           f"one has exact={self.exact!r}", hint="make it OnlineSoftmax(..., "
                                                                                 "exact=\"checked\")")
        return self.largest >= FAR

    def __call__(self, s, o, mask=None):
        """S (its MMAs completed) becomes P in place; O (its MMAs completed) is rescaled to the new row maxima.
        `mask(row, column)`, given, is a run-time test per score (row and column in S's own tile, s.position's: a
        warpgroup's rows from 0, s.corner placing them in the block's): scores where it is false are -inf."""
        if o is s:
            raise frontend.current().error(
                "OnlineSoftmax(s, o) is given one accumulator for S and O: S becomes P in place, and O (Σ P·V, "
                "another accumulator) is rescaled", hint="softmax(scores, acc) with the P·V accumulator as o")
        self.rescale(o, self.update(s, mask))

    def update(self, s, mask=None):
        """The part of a step that needs S only (`mask` as __call__'s): S becomes P, the running maxima and sums move on. Gives the
        factors (a vector, one per row of `s.rows()`) that O must be multiplied by (`rescale`), so that the
        MMAs still writing O may run meanwhile."""
        rows = self.rows_of(s)
        _check_not_finished(self, "update")
        fragment = s.fragment
        if mask is not None:
            fragment = _vector_of({i: skc.where(_kept(mask(*s.position(i))), fragment[i], NEG_INF)
                                   for row, indices in rows for i in indices})
        # every row's maximum first, then the exponentials (the same arithmetic as one row after the other; the
        # kernels' code measured 1.03x at D = 64: benchmarks/NOTES.md, twenty-first session)
        maxima, shifts, moves = [], [], []
        for h, (row, indices) in enumerate(rows):
            block_max = _reduce([fragment[i] for i in indices], skc.maximum, self.tree)
            for lanes in s.row_lanes:
                block_max = skc.maximum(block_max, skc.shfl_xor(block_max, lanes))
            running = skc.maximum(self.max[h], block_max)
            if self.lazy:   # (from -inf any score moves it; -inf to -inf, a row masked so far, stays)
                grew = (running - self.max[h]) * self.scale_log2 > self.lazy
                running = skc.where(grew, running, self.max[h])
                moved = grew if h == 0 else moved | grew
            maxima.append(running)
            # a row that has seen only masked scores keeps maximum -inf: subtract 0 there (no inf - inf)
            if self.exact is True:   # (the reference in the scores' units)
                shifts.append(skc.where(running == NEG_INF, 0.0, running))
                moves.append((self.max[h] - shifts[-1]) * self.scale_log2)
            else:
                shifts.append(skc.where(running == NEG_INF, 0.0, running * self.scale_log2))
                moves.append(self.max[h] * self.scale_log2 - shifts[-1])   # O's and the sum's move, in exp2's units
                if self.checked:
                    self.largest = skc.maximum(self.largest, abs(shifts[-1]))
        if self.exact == "far":
            exponents, moves = self._far_update(fragment, rows, maxima, shifts, moves)
        probabilities = []   # (index, P value): lists grow by append in run-time loops, not by item assignment
        new_sum, factors = [], []
        for h, (row, indices) in enumerate(rows):
            factor = skc.exp2(moves[h], ftz=True)
            row_probabilities = []
            for n, i in enumerate(indices):
                if self.exact == "far":
                    x = exponents[i]
                elif self.exact:
                    x = (fragment[i] - shifts[h]) * self.scale_log2
                else:
                    x = skc.fma(fragment[i], self.scale_log2, -shifts[h])
                fma_pipe = self.exp2_on_fma and n % self.exp2_on_fma == self.exp2_on_fma - 1
                row_probabilities.append(exp2_on_fma(x) if fma_pipe else skc.exp2(x, ftz=True))
                probabilities.append((i, row_probabilities[-1]))
            if self.tree:   # the row's scores pairwise, then the carried sum
                total = self.sum[h] * factor + _reduce(row_probabilities, operator.add, True)
            else:           # the carried sum, then the scores one after the other
                total = _reduce([self.sum[h] * factor, *row_probabilities], operator.add, False)
            new_sum.append(total)
            factors.append(factor)
        s.fragment = _vector_of(dict(probabilities))
        self.max = _vector(maxima)
        self.sum = _vector(new_sum)
        if self.lazy:
            self.moved = skc.vote_any(moved)
        return _vector(factors)

    def _far_update(self, fragment, rows, maxima, shifts, moves):
        """exact="far": the exponents (a vector of fragment's length) and O's moves (a list, one a row) of a step
        whose references `shifts` are RN(m·c) (0 for a row of -inf). While the warp's references stay within FAR
        in exp2's units, before and after the step, the one fma's; else, for every row of the warp, each exponent is
        (s - m)·c + ρ, ρ the part of m·c its rounded reference drops (0 past FAR, where that reference is m itself),
        and O moves by (m_old - m)·c - ρ_old + ρ (the same arithmetic as exact=True's past FAR, and consistent with
        the fma's below it, step for step)."""
        c = self.scale_log2
        before = [skc.where(self.max[h] == NEG_INF, 0.0, self.max[h] * c) for h in skc.static_range(len(rows))]
        far = _past(shifts[0])
        was_far = _past(before[0])
        for h in skc.static_range(1, len(rows)):
            far = far | _past(shifts[h])
            was_far = was_far | _past(before[h])
        if not skc.vote_any(far | was_far):   # (the fma's exponents in a branch of their own: fragment dies in each)
            exponents = skc.fma(fragment, c, -_per_score(rows, shifts))
            move_vector = _vector(moves)
        else:
            far, was_far = skc.vote_any(far), skc.vote_any(was_far)
            references = [skc.where(maxima[h] == NEG_INF, 0.0, maxima[h]) for h in skc.static_range(len(rows))]
            kept = [skc.where(far, 0.0, skc.fma(references[h], c, -shifts[h])) for h in skc.static_range(len(rows))]
            dropped = [skc.where(was_far | (self.max[h] == NEG_INF), 0.0, skc.fma(self.max[h], c, -before[h]))
                       for h in skc.static_range(len(rows))]
            move_vector = _vector([(self.max[h] - references[h]) * c - dropped[h] + kept[h]
                                   for h in skc.static_range(len(rows))])
            exponents = skc.fma(fragment - _per_score(rows, references), c, _per_score(rows, kept))
        return exponents, [move_vector[h] for h in skc.static_range(len(rows))]

    def finish(self, o) -> list:
        """O /= l for each row (0 where a row saw no score); gives each row's log-sum-exp of the scaled scores
        (natural log), one per row of `o.rows()`."""
        self.rows_of(o)
        _check_finish_once(self)
        inverses, lse = [], []
        for h in skc.static_range(self.rows_held):
            total = self.sum[h]
            for lanes in o.row_lanes:
                total = total + skc.shfl_xor(total, lanes)
            inverses.append(skc.where(total > 0.0, 1.0 / total, 0.0))
            lse.append((self.max[h] * self.scale_log2 + skc.log2(total)) / LOG2E)
        self._scale(o, _vector(inverses))
        return lse

    def rescale(self, o, factors):
        """Multiply each row of accumulator o by its factor (a vector, in the order of `o.rows()`); lazily, only
        when some row of the warp moved its maximum at the last update (the factors are 1 otherwise)."""
        if self.moved is None:
            self._scale(o, factors)
        else:
            if self.moved:
                self._scale(o, factors)

    def _scale(self, o, factors):
        fragment = o.fragment
        scaled = {i: fragment[i] * factors[h] for h, (row, indices) in enumerate(self.rows_of(o)) for i in indices}
        o.fragment = _vector_of(scaled)

    def rows_of(self, acc) -> list:
        """acc.rows(), checked against the rows a thread's state keeps (`rows`)."""
        _check_accumulator(acc)
        rows = list(acc.rows())
        if len(rows) != self.rows_held:
            raise frontend.current().error(
                f"this OnlineSoftmax keeps the state of {self.rows_held} row(s) a thread; the accumulator's threads "
                f"hold values of {len(rows)} (its rows())", hint=f"make it OnlineSoftmax(..., rows={len(rows)})")
        return rows


@frontend.host
def _check_not_finished(softmax, step: str):
    """No block of scores comes after `finish` on a path (its rows' sums are then divided out of O)."""
    earlier = earlier_use(softmax, "finished")
    if earlier is not None:
        raise frontend.current().error(
            f"this OnlineSoftmax's {step} comes after its finish(o) at {earlier[0]}{falls_through(earlier)}: finish "
            "divides O by the rows' sums once, after the last block of scores, so a block after it is added to an O "
            "already divided", hint="finish once, after the loop over the key blocks; for new rows (the next tile), "
                                    "call softmax.reset() first, or make a new OnlineSoftmax")


@frontend.host
def _check_finish_once(softmax):
    """finish(o) once a run of rows: a second divides O by the row sums again."""
    found = repeated(softmax, "finished")
    if found is None:
        return
    made_at, earlier = found
    raise frontend.current().error(
        "this OnlineSoftmax is finished " + (f"again (first at {earlier[0]}{falls_through(earlier)})" if earlier
                                            is not None else f"in a run-time loop it is made (or reset) outside of, at "
                                            f"{made_at} (once an iteration)") +
        ": finish divides O by the rows' sums once, after the last block of scores; again, it divides O twice (or a "
        "later block's P is added to an O already divided)",
        hint="finish once, after the loop over the key blocks; for the rows of each tile, make the OnlineSoftmax (or "
             "call softmax.reset()) inside the tile loop")


def _check_accumulator(acc):
    """What OnlineSoftmax reads of an accumulator: its rows (rows(), row_lanes), places (position) and values, once
    the MMAs writing them completed."""
    check_has("OnlineSoftmax", "accumulator", acc, ("rows", "row_lanes", "position", "fragment"),
              "an accumulator that says its rows (a Wgmma's zeros(), or one of yours with rows(), row_lanes, "
              "position and fragment)", "pass the MMA's accumulator: softmax.update(scores) with scores = qk.zeros()")
    check_written("OnlineSoftmax", acc)


# exact="far": the references (row maxima times the scale, in exp2's units) from which on a warp's exponents take the
# exact form; under it the rounding of the reference is at most 0.5 (P at most 2^0.5 times its 1, or lazy's 2^t). A
# reference of 2^24 itself is past: m·c up to 2^24 + 1 rounds to it (a rounding of up to 1, P up to 2^(t + 1), past
# fp16's 65504 at lazy_rescale=15)
FAR = 2.0 ** 24


@skc.func
def _past(reference):
    return abs(reference) >= FAR


def _kept(test):
    """A mask's result: a truth value (a run-time bool, or a compile-time one); a number is no test."""
    if isinstance(test, bool) or isinstance(test, frontend.Dyn) and getattr(test.type, "is_bool", False):
        return test
    refuse("OnlineSoftmax", "mask(row, column)'s result", "a truth value (a comparison such as column < length)",
           test, "return a comparison: mask=lambda row, column: j * KEYS + column < Skv")


# 2^x on the FMA pipe: x = j + f, j the integer nearest x and f in [-0.5, 0.5]; 2^f by a polynomial (of degree 3,
# 1 at f = 0, fitted for the least maximum relative error on [-0.5, 0.5]: 1.01e-4), then j added to its exponent
ROUNDING = 12582912.0   # 1.5 * 2^23: x + this keeps round(x) in the float's low bits (|x| < 2^22)
EXP2_POLYNOMIAL = (1.0, 0.6932829022407532, 0.24221037328243256, 0.05500858277082443)   # of f^0 .. f^3


@skc.func
def exp2_on_fma(x):
    """2^x for x <= 0 without the MUFU (whose 16 results a clock per SM bound the softmax of small heads; the
    trick of FlashAttention-4): a max, three adds, three fmas and two integer operations. The relative error is the
    polynomial's down to x = -126; below, a value under 2^-126; from -127 down (and -inf, a masked score), 0."""
    x = skc.maximum(x, -127.0)
    t = x + ROUNDING
    f = x - (t - ROUNDING)
    c0, c1, c2, c3 = EXP2_POLYNOMIAL
    p = skc.fma(skc.fma(skc.fma(c3, f, c2), f, c1), f, c0)
    return skc.bitcast(skc.bitcast(p, skc.i32) + (skc.bitcast(t, skc.i32) << 23), skc.f32)


def _reduce(values: list, combine, tree: bool):
    """combine over values: left to right, or pairwise (a tree of depth log2 n)."""
    values = list(values)
    if not tree:
        total = values[0]
        for value in values[1:]:
            total = combine(total, value)
        return total
    while len(values) > 1:
        values = [combine(values[i], values[i + 1]) if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


def _per_score(rows: list, values: list):
    """The vector of each score's row's value (values: one a row, in the order of rows)."""
    return _vector_of({i: values[h] for h, (row, indices) in enumerate(rows) for i in indices})


def _vector_of(values: dict):
    """The vector of values[0], values[1], ... (a thread's fragment: every index of its rows())."""
    return _vector([values[i] for i in range(len(values))])


def _vector(values: list):
    """A run-time vector of f32 values (a vector of one too: a thread may hold one row, or one value)."""
    return skc.vector(*values) if len(values) > 1 else skc.full(1, values[0], skc.f32)
