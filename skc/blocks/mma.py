"""TileOp: the warpgroup MMA (wgmma, sm_90a). A consumer warpgroup multiplies its 64-row share of
the A tile by the whole B tile, 16 deep at a time, into an f32 accumulator fragment held in
registers (each thread n/2 values, in the layout PTX ISA 9.7.15.5.1.1 defines); the accumulator
says which element of the tile each of its values is, so epilogues need not know that layout."""
from __future__ import annotations

import numbers
from contextlib import nullcontext

import skc
from skc import frontend
from skc.ir.ops_async import WGMMA_K   # operand type -> k of one wgmma (32 bytes of K)

from .arguments import check_has, refuse
from .payload import loaded_element
from .pipeline import note_rows_read
from .roles import check_role

NO_TURN = nullcontext()   # MMAs issued whenever the warpgroup gets there (no turns taken)


class Accumulator:
    """A warpgroup's 64 x n f32 accumulator: each thread's fragment of n/2 values. MMAs into it may
    still be running: `wait()` before reading the fragment."""

    def __init__(self, op, n: int):
        self.op = op
        self.n = n
        self.fragment = skc.full(n // 2, 0.0, skc.f32)

    @property
    def shape(self) -> tuple:
        """(rows, columns) of the accumulator's tile."""
        return self.op.rows_per_warpgroup, self.n

    @property
    def corner(self) -> tuple:
        """(row, column) of the accumulator's tile in the block's output tile."""
        return self.op.row0, 0

    def zero(self):
        self.fragment = skc.full(self.n // 2, 0.0, skc.f32)

    def wait(self):
        self.op.retire(0)

    @property
    def parts(self) -> list:
        """The 64-row accumulators this one is made of (itself; a StackedAccumulator's are several)."""
        return [self]

    def position(self, i: int):
        """(row, column) in the 64 x n tile of value i of this thread's fragment (PTX ISA 9.7.15.5.1.1,
        wgmma D fragments: thread t holds rows 16 (t / 32) + (t % 32) / 4 (+ 8), columns 2 (t % 4) + {0, 1}
        of every 8 columns)."""
        thread, within = self.op.thread, i % 4
        row = 16 * (thread // 32) + (thread % 32) // 4 + 8 * (within // 2)
        column = 8 * (i // 4) + 2 * (thread % 4) + within % 2
        return row, column

    def runs(self, first_column: int = 0, columns: int = None) -> list:
        """(values, row, column) of this thread's values in columns first_column .. first_column + columns - 1
        of the tile, in runs of values that lie next to each other in one row (here pairs): values[j] is
        element (row, column + j)."""
        columns = self.n - first_column if columns is None else columns
        if first_column % 8 or columns % 8:
            raise frontend.current().error(f"wgmma accumulators hold columns in groups of 8; columns "
                                           f"{first_column}..{first_column + columns - 1} split a group")
        found = []
        for i in skc.static_range(first_column // 2, (first_column + columns) // 2, 2):
            row, column = self.position(i)
            found.append(([self.fragment[i], self.fragment[i + 1]], row, column))
        return found

    # Threads that hold values of one row: 4 neighbouring lanes (t % 4 picks the column pair), so a row's
    # reduction is two shuffles, xor 1 and xor 2 (PTX ISA 9.7.15.5.1.1).
    row_lanes = (1, 2)

    def rows(self) -> list:
        """(row, indices) for each row this thread holds values of: the row in the tile and the indices of the
        thread's values in it (compile-time), in column order. With `row_lanes` (the lane xor-masks of the other
        threads holding the same row) this is what a row-wise TileOp (softmax) needs of the layout."""
        found = []
        for half in skc.static_range(2):
            indices = [i for i in range(self.n // 2) if (i % 4) // 2 == half]
            found.append((self.position(indices[0])[0], indices))
        return found

    def values(self) -> list:
        """(value, row, column) of every value of this thread, row and column in the accumulator's tile."""
        return [(value, row, column + j) for values, row, column in self.runs()
                for j, value in enumerate(values)]


class _WarpgroupMma:
    """What the wgmma TileOps share: n columns (8 to 256 in steps of 8) over the warpgroup's 64 rows from row0 =
    64 · `warpgroup` of the A tile, their accumulator, and retiring the MMAs in flight."""

    rows_per_warpgroup = 64  # wgmma's m (PTX ISA 9.7.15.5: every shape is m64nNk16, or m64nNk32 for fp8)

    # wgmma runs asynchronously: the consumer keeps this many stages' MMAs running while it waits for the
    # next stage; a stage may be released once `retire` has seen the MMAs reading it complete.
    stages_in_flight = 1

    def __init__(self, n: int, k: int, dtype, warpgroup=0):
        target = skc.current_target()
        if not target.has("wgmma"):   # (a warpgroup of no threads: each thread's place in it divided by zero)
            raise frontend.current().error(
                f"{type(self).__name__} issues Hopper's wgmma, which {target.name} lacks",
                hint="compile for sm_90a" + ("; on AMD, multiply with Mfma" if target.has("mfma") else ""))
        if not _whole(n) or n % 8 or not 8 <= n <= 256:   # (a float n made a fragment of n / 2 values, a float)
            raise frontend.current().error(f"wgmma computes 8 to 256 columns in steps of 8, not {n!r}",
                                           hint="give n as a compile-time int")
        if not _whole(k) or k < 1:
            raise frontend.current().error(f"a stage's k-depth is a compile-time int of 1 or more, found {k!r}")
        # (a negative warpgroup's rows lay before the A tile: its descriptors read whatever shared memory was there)
        if _whole(warpgroup) and warpgroup < 0 or isinstance(warpgroup, (bool, float)):
            raise frontend.current().error(
                f"warpgroup is which 64-row share of the A tile this TileOp multiplies, 0 or more, found {warpgroup!r}",
                hint="give the consumer's index (roles.consumer_index()), or a compile-time int of 0 or more")
        _check_consumer_role(f"{type(self).__name__} (a TileOp)")
        self.n, self.k, self.dtype = n, k, dtype
        self.warpgroup = warpgroup
        self.row0 = warpgroup * self.rows_per_warpgroup
        self.thread = skc.thread_index() % skc.current_target().warpgroup_size

    def zeros(self) -> Accumulator:
        return Accumulator(self, self.n)

    def retire(self, pending: int):
        """Wait until at most `pending` groups of this warpgroup's MMAs are still running."""
        skc.hopper.wgmma_wait(pending)
        _note_retire(pending)

    def commit(self):
        """Close the group of the MMAs issued since the last commit (what `retire` counts)."""
        skc.hopper.wgmma_commit()
        _note_commit()

    def check_accumulator(self, acc):
        """acc holds this op's 64 x n outputs (the wgmma's n is acc's: a narrower one got B's first columns only, a
        wider one columns no MMA wrote), and says the rows this op multiplies (its corner places them)."""
        n = getattr(acc, "n", self.n)   # (an accumulator of the user's may not say)
        if n != self.n:
            raise frontend.current().error(
                f"the accumulator holds {n} columns; this {type(self).__name__} computes {self.n}",
                hint="take the accumulator from this TileOp's zeros()")
        self.check_rows("the accumulator", acc, "take the accumulator from this TileOp's zeros()")

    def check_rows(self, what: str, acc, hint: str):
        """acc (an accumulator) is for the rows this op multiplies (a warpgroup's of another: its corner placed the
        result in rows no store writes)."""
        row0 = getattr(getattr(acc, "op", self), "row0", self.row0)
        if isinstance(row0, int) and isinstance(self.row0, int) and row0 != self.row0:
            raise frontend.current().error(
                f"{what} is for rows {row0} to {row0 + self.rows_per_warpgroup - 1} of the tile; this "
                f"{type(self).__name__} multiplies rows {self.row0} to {self.row0 + self.rows_per_warpgroup - 1}",
                hint=hint)


class Wgmma(_WarpgroupMma):
    """acc += A[row0 : row0 + 64, :] · B for a stage's A (m x k) and B (k x n) tiles, with m64nNk16
    wgmma (f16, bf16) or m64nNk32 (f8e4m3, f8e5m2; dtype_b for a B of the other fp8 type; K-major tiles
    only), where row0 = 64 · `warpgroup` is this warpgroup's first row of the A tile."""

    # an instance's K (k of one instruction) is its dtype's: 16 for f16/bf16, 32 for fp8 (set in __init__, with
    # no class default: a TileOp made inside run-time control flow may not change a class's value)

    def __init__(self, n: int, k: int, dtype, warpgroup=0, dtype_b=None):
        super().__init__(n, k, dtype, warpgroup)
        self.dtype_b = dtype if dtype_b is None else dtype_b
        self.K, self.fp8 = _instruction_k(dtype, self.dtype_b)
        if k % self.K:
            raise frontend.current().error(f"the k-depth of a stage must be a multiple of {self.K} for "
                                           f"{_type_name(dtype)}, found {k}")

    def consume(self, acc: Accumulator, stage, tile=None, turn=NO_TURN):
        """The MMAs of one pipeline stage (its `a` and `b` tiles) for output tile `tile`, into acc, issued inside
        `turn` (a context: the consumers' turns at the tensor cores, roles.WarpgroupTurns). A TileOp whose payload
        carries more (scales) reads it here."""
        with turn:
            self(acc, stage.a, stage.b)

    def __call__(self, acc: Accumulator, a, b, accumulate: bool = True, k0: int = 0, k: int = 0):
        """acc += A · B (acc = A · B without `accumulate`: acc's registers are then not read, nor zeroed first);
        over the stage's k from `k0`, `k` deep (0: all of it; compile-time ints, multiples of the instruction's)."""
        _check_consumer_role("this Wgmma")
        _check_operands(type(self).__name__, acc, a=a, b=b)
        self.check(a, b)
        self.check_accumulator(acc)
        skc.hopper.wgmma_fence()
        self.issue(acc, a, b, accumulate, k0=k0, k=k)
        self.commit()

    def issue(self, acc: Accumulator, a, b, accumulate: bool = True, column0: int = 0, k0: int = 0, k: int = 0):
        """The wgmma instructions of acc += A · B, without the fence before them and the commit after them; acc
        may cover acc.n of B's columns from `column0` on, and the stage's k from `k0`, `k` deep (0: to its end;
        compile-time ints)."""
        if not isinstance(accumulate, bool):   # (a run-time flag was refused by wgmma; "yes" was taken as true)
            refuse(type(self).__name__, "accumulate", "a compile-time bool", accumulate,
                   "accumulate=False overwrites acc with the product, True (the default) adds to it")
        fragment = acc.fragment
        steps = self.steps(k0, k)
        _note_reads(self, a, b)
        _note_writes(acc)
        _note_rows(self, a)
        for step in skc.static_range(steps.start, steps.stop):
            fragment = skc.hopper.wgmma(fragment, a.descriptor(step, self.row0), b.descriptor(step, column0),
                                        acc.n, self.dtype, trans_a=int(not a.layout.k_major),
                                        trans_b=int(not b.layout.k_major), dtype_b=self.dtype_b,
                                        zero_acc=not accumulate and step == steps.start)
        acc.fragment = fragment

    def steps(self, k0: int, k: int) -> range:
        """The instructions' k-steps of the stage's k from k0, k deep (0: to its end): whole instructions inside the
        stage, known at compile time (a part past the tile would read the next one; a partial one, other columns)."""
        whole = all(isinstance(x, numbers.Integral) and not isinstance(x, bool) for x in (k0, k))
        depth = (k or self.k - k0) if whole else 0
        if not whole or k0 < 0 or depth <= 0 or k0 % self.K or depth % self.K or k0 + depth > self.k:
            raise frontend.current().error(
                f"this Wgmma multiplies k={k!r} of the stage's k from k0={k0!r} (k=0: the rest): it takes compile-time "
                f"ints, whole instructions of {self.K}, inside the stage's {self.k}",
                hint=f"give k0 and k as multiples of {self.K} with k0 + k <= {self.k}")
        return range(k0 // self.K, (k0 + depth) // self.K)

    def check(self, a, b):
        """The payload's tiles must be what this op was built for."""
        if a.layout.k != self.k or b.layout.k != self.k:
            raise frontend.current().error(
                f"the stage's tiles are {a.layout.k} and {b.layout.k} deep in k; this Wgmma was made for {self.k}",
                hint="build the payload and the TileOp from the same config")
        if b.layout.rows != self.n:
            raise frontend.current().error(
                f"the stage's B tile has {b.layout.rows} columns; this Wgmma computes {self.n}",
                hint="build the payload and the TileOp from the same config")
        _check_elements("A", a, self.dtype)
        _check_elements("B", b, self.dtype_b)
        if a.layout.rows % self.rows_per_warpgroup:
            raise frontend.current().error(f"the A tile has {a.layout.rows} rows, not a multiple of "
                                           f"{self.rows_per_warpgroup}")
        if isinstance(self.row0, int) and self.row0 + self.rows_per_warpgroup > a.layout.rows:   # (known here)
            raise frontend.current().error(
                f"this Wgmma multiplies rows {self.row0} to {self.row0 + self.rows_per_warpgroup - 1} of the A tile, "
                f"which has {a.layout.rows}", hint="give each consumer warpgroup rows of the tile (warpgroup=...), "
                "or make the tile taller")
        if self.fp8 and not (a.layout.k_major and b.layout.k_major):
            raise frontend.current().error(
                f"wgmma reads fp8 ({_type_name(self.dtype)}) tiles K-major only; the stage's "
                f"{'A' if not a.layout.k_major else 'B'} tile is MN-major",
                hint="store fp8 operands K-major (A as M x K, B as N x K), transposing them beforehand if needed")


class StackedWgmma:
    """acc += A · B for `parts` x 64 rows of the stage's A tile in one warpgroup, from 64-row part `first` on (a
    pingpong consumer's 128-row tile, or a consumer's half of a cooperative 256-row tile): a Wgmma per 64-row part,
    all of a stage's MMAs one group (one fence, one commit), into a StackedAccumulator whose `parts` are the parts'
    accumulators."""

    stages_in_flight = 1

    def __init__(self, n: int, k: int, dtype, parts: int = 2, dtype_b=None, first=0):
        self.parts = [Wgmma(n, k, dtype, warpgroup=first + part, dtype_b=dtype_b) for part in range(parts)]

    def zeros(self) -> "StackedAccumulator":
        return StackedAccumulator([part.zeros() for part in self.parts])

    def retire(self, pending: int):
        self.parts[0].retire(pending)

    def consume(self, acc: "StackedAccumulator", stage, tile=None, turn=NO_TURN):
        self.parts[0].check(stage.a, stage.b)   # (the parts are one op at different rows: one check covers them)
        with turn:
            skc.hopper.wgmma_fence()
            for part, piece in zip(self.parts, acc.parts):
                part.issue(piece, stage.a, stage.b)
            self.parts[0].commit()


class StackedAccumulator:
    """The 64-row accumulators of a StackedWgmma, top to bottom (each says where it lies: `corner`)."""

    def __init__(self, parts: list):
        self.parts = parts

    def zero(self):
        for part in self.parts:
            part.zero()

    def wait(self):
        self.parts[0].wait()


class InFlight:
    """The last group of wgmma that read a stage's tiles, noted on the stage's lease (or run) as it is issued, with the
    run-time scope it was issued in. A consumer with no reader that keeps stages in flight (`pipe.consumer()`) settles
    it before releasing the stage: where the code did not retire that group itself on every path that issued it, it
    is retired there, so the producer never refills a stage that MMAs still read."""

    def __init__(self, op, group: int, scope: tuple):
        self.op, self.group, self.scope = op, group, scope

    def settle(self):
        if _unretired(self.group, self.scope):
            self.op.retire(0)


def _groups() -> dict:
    """The wgmma groups the consumer code committed so far, and its retires (how many groups each had completed, in
    which run-time scope), counted in the order it is compiled (one warpgroup's sequence; a loop's body once: what it
    issues and retires in each pass)."""
    return frontend.current().facts(__name__ + ".groups")


@frontend.host
def _note_reads(op, *tiles):
    group = _groups().get("committed", 0) + 1   # (the group the next commit closes)
    for tile in tiles:
        holder = getattr(tile, "lease", None)   # (a tile of the user's own may have none)
        if holder is not None:
            holder.async_reads = InFlight(op, group, frontend.runtime_scope())


@frontend.host
def _note_rows(op, a):
    """The 64-row part of a stage's A tile op multiplies, for the pipeline's check that the parts cover the tile: a
    compile-time index, or op itself where its index is a run-time value (one part a warpgroup)."""
    note_rows_read(a, int(op.warpgroup) if _whole(op.warpgroup) else op, op.rows_per_warpgroup)


@frontend.host
def _note_commit():
    groups = _groups()
    groups["committed"] = groups.get("committed", 0) + 1


@frontend.host
def _note_retire(pending: int):
    groups = _groups()
    if isinstance(pending, int):   # (a run-time count: which groups completed is not known here)
        groups.setdefault("retired", []).append((groups.get("committed", 0) - pending, frontend.runtime_scope()))


@frontend.host
def _note_writes(acc):
    """The wgmma group the next commit closes writes acc's registers (asynchronously, until it is retired)."""
    groups = _groups()
    groups.setdefault("writes", {})[id(acc)] = (acc, groups.get("committed", 0) + 1, frontend.runtime_scope())


@frontend.host
def check_written(reader: str, acc):
    """Code that reads acc's values (not an MMA into it) comes after a retire of the wgmma group that last wrote them,
    on every path: before, the registers still change under it (the interpreter, which computes each wgmma at once,
    gave the right answer; a GPU, a wrong one)."""
    record = _groups().get("writes", {}).get(id(acc))
    # (a retire before the read in a scope enclosing it runs on every path to the read: `if ...: mma.retire(0)` then
    # the read, in that branch, was refused as unretired)
    if record is not None and record[0] is acc and _unretired(record[1], record[2], frontend.runtime_scope()):
        raise frontend.current().error(
            f"{reader} reads an accumulator that a wgmma may still be writing: no retire of its MMAs comes before, so "
            "its registers are not yet the product", hint="retire them first: mma.retire(0) (or acc.wait()) after "
                                                          "the MMAs and before reading the accumulator")


@frontend.host
def _unretired(group: int, scope: tuple, reader: tuple = None) -> bool:
    """Whether no retire completed `group` on every path that issued it: one compiled after it whose run-time scope
    encloses the issue's (a retire in a branch the issue is not inside, or past a jump, runs on some paths only), or,
    given the `reader`'s scope (code compiled now), the reader's: a retire compiled before it there runs on every path
    that reaches it."""
    return not any(done >= group and (scope[:len(where)] == where or reader is not None and
                                      reader[:len(where)] == where)
                   for done, where in _groups().get("retired", []))


def _check_operands(block: str, acc, **tiles):
    """An MMA's call: its accumulator (zeros()) and shared-memory tiles (a stage's, `stage.a`)."""
    check_has(block, "accumulator", acc, ("fragment",), "an accumulator (this TileOp's zeros())",
              "acc = mma.zeros() once, then mma(acc, stage.a, stage.b)")
    for name, tile in tiles.items():
        check_has(block, f"{name} operand", tile, ("layout", "descriptor"),
                  "a tile in shared memory (a stage's, such as stage.a)",
                  "pass the stage's tile: mma(acc, stage.a, stage.b) inside `with consumer.acquire() as stage:`")


def _check_elements(name: str, tile, dtype):
    """A stage's tile holds elements of the size the TileOp multiplies (the descriptors step through it by 32 bytes
    of K: another size reads other elements, or past the tile)."""
    elem_bytes = getattr(tile.layout, "elem_bytes", None)   # (a layout of the user's may not say)
    size = 32 // WGMMA_K[_type_name(dtype)]   # (one wgmma's k covers 32 bytes; the type may be a DSL dtype or its name)
    if elem_bytes is not None and elem_bytes != size:
        raise frontend.current().error(
            f"the stage's {name} tile holds {elem_bytes}-byte elements; this TileOp multiplies {_type_name(dtype)} "
            f"({size}-byte)", hint="build the payload and the TileOp from the same config")
    loaded = loaded_element(tile)
    if loaded is not None and str(loaded) != _type_name(dtype):
        # (bf16 read as f16, or e4m3 as e5m2: the same bytes, other numbers, silently)
        raise frontend.current().error(
            f"the stage's {name} tile is loaded from a tensor map of {loaded}; this TileOp multiplies "
            f"{_type_name(dtype)}", hint=f"make the TileOp of the operands' type ({_type_name(loaded)}), or the "
                                         "operand's tensor of the TileOp's")


def _whole(value) -> bool:
    """A compile-time int (numpy's too), and no bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_consumer_role(block: str):
    check_role(block, "consumer", hint="make and call the TileOp in the consumer branch (`else:` of "
                                       "`if roles.is_producer():`); the producer fills stages with a loader")


def _type_name(dtype) -> str:
    return dtype.ir.name if hasattr(dtype, "ir") else str(dtype)


def _instruction_k(dtype, dtype_b) -> tuple:
    """(k of one wgmma, whether the operands are fp8) for A and B types; only the fp8 types may mix."""
    a, b = _type_name(dtype), _type_name(dtype_b)
    if a not in WGMMA_K or b not in WGMMA_K:
        raise frontend.current().error(f"wgmma multiplies {', '.join(WGMMA_K)}, not {a if a not in WGMMA_K else b}")
    fp8 = WGMMA_K[a] == 32
    if a != b and not (fp8 and WGMMA_K[b] == 32):
        raise frontend.current().error(f"wgmma's A is {a} and B {b}: only e4m3 and e5m2 may mix")
    return WGMMA_K[a], fp8


class WgmmaRegA(_WarpgroupMma):
    """acc += P · B where P, the warpgroup's 64 x k left operand, comes from registers (the register-A form of
    wgmma, m64nNk16, f16/bf16) and B, a k x n tile, from shared memory. P is typically an f32 accumulator of an
    earlier MMA (S = Q·Kᵀ in attention): `operand(p)` converts it to `dtype` (the A fragments, 8 values per 16
    columns).
    An m64 accumulator's values 8j .. 8j + 7 are exactly the A fragment of its columns 16j .. 16j + 15 (the D and
    A register layouts of PTX ISA 9.7.15.5.1.1 line up), so the conversion moves no value between threads."""

    K = 16

    def __init__(self, n: int, k: int, dtype, warpgroup=0):
        super().__init__(n, k, dtype, warpgroup)
        if _type_name(dtype) not in ("bf16", "f16"):
            raise frontend.current().error(f"the register-A wgmma multiplies bf16 or f16, not {_type_name(dtype)}")
        if k % self.K:
            raise frontend.current().error(f"the k-depth of a register-A MMA must be a multiple of 16, found {k}")

    def operand(self, p):
        """This thread's part of the left operand: accumulator p (64 x k, its MMAs completed) converted to
        `dtype`, one vector of k/2 values (8 per 16 columns: value 8j + i is element i of the A fragment of k-step
        j). A vector, so that it can live in a loop-carried variable while the MMAs that read it run."""
        check_has(type(self).__name__, "operand(p)'s p", p, ("n", "fragment"), "an accumulator (a Wgmma's zeros())",
                  "pass the accumulator of the MMA that computed P (scores = qk.zeros(); qk(scores, ...))")
        check_written("WgmmaRegA.operand(p)", p)
        if p.n != self.k:
            raise frontend.current().error(f"P has {p.n} columns; this MMA was made for k = {self.k}",
                                           hint=f"make P's MMA {self.k} columns wide, or this one k={p.n}")
        self.check_rows("P", p, "make both MMAs for one warpgroup (warpgroup= the same consumer index)")
        return skc.vector(*[self.dtype(p.fragment[i]) for i in range(self.k // 2)])

    def __call__(self, acc: Accumulator, operand, b):
        """acc += P · B, P as `operand(p)` gave it; B a k x n tile in shared memory (K- or MN-major)."""
        _check_consumer_role("this WgmmaRegA")
        _check_operands(type(self).__name__, acc, b=b)
        self.check_accumulator(acc)
        if not (isinstance(operand, frontend.Dyn) and getattr(operand.type, "is_vector", False)
                and operand.type.count == self.k // 2):
            refuse(type(self).__name__, "left operand", f"this op's operand(p): a vector of {self.k // 2} values",
                   operand, "convert the accumulator first: mma(acc, mma.operand(p), stage.b)")
        if b.layout.k != self.k or b.layout.rows != self.n:
            raise frontend.current().error(
                f"the B tile is {b.layout.k} x {b.layout.rows}; this register-A MMA was made for {self.k} x {self.n}",
                hint="build the payload and the TileOp from the same config")
        _check_elements("B", b, self.dtype)
        pieces = [skc.vector(*[operand[8 * step + i] for i in range(8)]) for step in range(self.k // self.K)]
        skc.hopper.wgmma_fence()   # the fragments were just written by ordinary instructions
        _note_reads(self, b)
        _note_writes(acc)
        fragment = acc.fragment
        for step in skc.static_range(self.k // self.K):
            fragment = skc.hopper.wgmma_rs(fragment, pieces[step], b.descriptor(step), self.n, self.dtype,
                                           trans_b=int(not b.layout.k_major))
        acc.fragment = fragment
        self.commit()
