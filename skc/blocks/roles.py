"""Warp roles: warpgroup 0 produces (issues the copies) with its registers lowered, the other
warpgroups consume (compute) with theirs raised. The role test is a run-time `if`; skc remembers
which condition means which role, so a block used in the wrong branch is a compile-time error."""
from __future__ import annotations

import dataclasses
import numbers

import skc
from skc import frontend
from skc.diagnostics import user_location


def needs_hopper(what: str):
    """A compile-time error naming what a target without wgmma lacks, at the top of a warp-specialized Hopper
    composition: the blocks' own checks deeper in named a symptom instead (on AMD the stages' shared memory, too
    large for LDS, or mbarrier_init)."""
    target = skc.current_target()
    if not target.has("wgmma"):
        raise frontend.current().error(f"{what} is Hopper's (TMA loads, an mbarrier pipeline, wgmma): it needs sm_90a; "
                                       f"{target.name} has no wgmma",
                                       hint="build AMD kernels from the AMD blocks (LdsLoader, LdsPipeline, Mfma); "
                                            "skc.blocks.matmul runs on gfx90a and gfx942" if target.has("mfma") else "")


def role_tests() -> dict:
    """This compilation's role tests: id of the IR value of a role test -> (value, role when true, role when
    false). They live in the compilation (frontend.current().facts), so they vanish with it."""
    return frontend.current().facts(__name__)


def current_role():
    """'producer', 'consumer' or None: the role of the code being compiled, from the enclosing `if`s."""
    role, tests = None, role_tests()
    for condition, taken in frontend.enclosing_conditions():
        entry = tests.get(id(condition.value))
        if entry is not None and entry[0] is condition.value:
            role = entry[1] if taken else entry[2]
    return role


def check_role(block: str, wanted: str, hint: str):
    """A compile error where `block` (what the user called) is used in code that runs as the other role: a TileOp in
    the producer's branch, a loader or an epilogue in the consumers' (each would wait on, or write into, stages the
    other role holds)."""
    role = current_role()
    if role is not None and role != wanted:
        raise frontend.current().error(f"{block} is the {wanted}'s, used in code that runs as the {role}", hint=hint)


@frontend.host
def claim_named_barriers(first: int, count: int, threads: int, block: str, hint: str):
    """Named barriers first .. first + count - 1 are used by `block` with `threads` threads each. Two blocks that
    use one barrier id with other thread counts are refused (the PTX ISA leaves that undefined: one's arrivals
    complete the other's barrier early, a race, or are lost, a hang)."""
    claimed = frontend.current().facts(__name__ + ".named_barriers")
    where = user_location(frontend.current().loc)
    for barrier in range(first, first + count):
        other = claimed.setdefault(barrier, (threads, block, where))
        if other[0] != threads:
            raise frontend.current().error(
                f"{block} synchronizes on named barrier {barrier} with {threads} threads, and {other[1]} (at "
                f"{other[2]}) uses barrier {barrier} with {other[0]}: one barrier id waited on with two thread counts "
                "is undefined (one's arrivals complete the other's barrier early, a race on what it guards, or are "
                "lost, a hang)",
                hint=hint)


def kernel_consumers():
    """The consumer warpgroups of the kernel's WarpRoles (None before one is made, or in a kernel without)."""
    return frontend.current().facts(__name__ + ".warp_roles").get("consumers")


def every_warpgroup_of_role() -> bool:
    """Whether the code being compiled runs in every warpgroup of its role: no run-time `if` encloses it but role
    tests (a piece of shared memory or a barrier of one warpgroup's, used there, is used by all of them)."""
    tests = role_tests()
    return all(tests.get(id(condition.value), (None,))[0] is condition.value
               for condition, _ in frontend.enclosing_conditions())


REGISTER_FILE = 65536   # registers of an SM (sm_90a), shared by the block's warpgroups of 128 threads


def register_shares(consumers: int, blocks_per_sm: int = 1) -> tuple:
    """(producer, consumer) registers a thread after setmaxnreg for a block of 1 + consumers warpgroups, `blocks_per_sm`
    of them sharing an SM: 40 and 232 for one or two consumers alone on the SM; else 24 for the producer and what
    the block's registers leave each consumer (a multiple of 8: 160 for three, 112 for four, 232 for one of two
    blocks). A block holds the registers ptxas compiled its threads for (an even share of the file, a multiple of
    8) from launch to exit; setmaxnreg only moves them between its warpgroups, and a request past them waits for
    ever."""
    if consumers <= 2 and blocks_per_sm == 1:
        return 40, 232
    return 24, min(256, (held_registers(consumers, blocks_per_sm) // 128 - 24) // consumers // 8 * 8)


def held_registers(consumers: int, blocks_per_sm: int = 1) -> int:
    """The registers a block of 1 + consumers warpgroups holds (ptxas's even share of the file for its threads):
    what its warpgroups' setmaxnreg counts may add up to."""
    threads = 128 * (1 + consumers)
    return threads * (REGISTER_FILE // blocks_per_sm // threads // 8 * 8)


def whole(value) -> bool:
    """An int, and no bool (True is an int to Python, never a count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_counts(config, **lowest):
    """Refuse a config's count fields (name=lowest value) that are not ints (a bool, a float) or are under their
    lowest value: they would fail late, inside a block (a grid of floats, a pipeline of no stages). Its flags too
    (check_flags)."""
    for name, low in lowest.items():
        value = getattr(config, name)
        if not whole(value) or value < low:
            raise ValueError(f"{name} must be an int of at least {low}, found {value!r}")
    check_flags(config)


def check_flags(config):
    """Refuse a config's yes-or-no fields (annotated bool) that are no truth value (`a_k_major=[1]` was taken, and
    failed inside matmul's plan cache as an unhashable list)."""
    for spec in dataclasses.fields(config):
        value = getattr(config, spec.name)
        if spec.type in ("bool", bool) and not is_flag(value):
            raise ValueError(f"{spec.name} must be True or False, found {value!r}")


def is_flag(value) -> bool:
    """A truth value a config takes: True, False, 0 or 1 (an integral one; not a list, a float or a string)."""
    return isinstance(value, numbers.Integral) and value in (0, 1)


def fill_register_shares(config):
    """Give a frozen config's producer_registers / consumer_registers left None the shares of its consumer count
    (and its blocks per SM, where it has that field); refuse counts that add up to more than the block holds."""
    blocks_per_sm = getattr(config, "blocks_per_sm", 1)
    if not isinstance(config.consumers, int) or config.consumers < 1:
        raise ValueError(f"consumers is the number of consumer warpgroups, 1 or more, found {config.consumers!r}")
    if blocks_per_sm not in (1, 2):
        raise ValueError(f"blocks_per_sm must be 1 or 2, found {blocks_per_sm!r}")
    producer, consumer = register_shares(config.consumers, blocks_per_sm)
    if config.producer_registers is None:
        object.__setattr__(config, "producer_registers", producer)
    if config.consumer_registers is None:
        object.__setattr__(config, "consumer_registers", consumer)
    check_registers(config.producer_registers, config.consumer_registers, config.consumers, blocks_per_sm)


def check_registers(producer_registers, consumer_registers, consumers: int, blocks_per_sm: int = 1):
    """A ValueError unless the warpgroups' setmaxnreg counts are counts it sets and fit the registers a block holds."""
    for name, count in (("producer_registers", producer_registers), ("consumer_registers", consumer_registers)):
        if not whole(count) or not 24 <= count <= 256 or count % 8:   # (PTX ISA setmaxnreg: 24 to 256, by 8)
            raise ValueError(f"{name} is a count setmaxnreg sets: a multiple of 8 from 24 to 256, found {count!r}")
    held = held_registers(consumers, blocks_per_sm)
    if 128 * (producer_registers + consumers * consumer_registers) > held:
        raise ValueError(f"the warpgroups' registers ({producer_registers} a producer thread, "
                         f"{consumer_registers} a consumer thread) exceed the {held} a block of "
                         f"{128 * (1 + consumers)} threads holds with {blocks_per_sm} block(s) an SM "
                         f"(setmaxnreg past them would wait for ever): use "
                         f"{register_shares(consumers, blocks_per_sm)}")


@frontend.host
def _check_roles_registers(producer_registers, consumer_registers, consumers: int, blocks_per_sm: int):
    """check_registers, as a compile error at the kernel's line."""
    try:
        check_registers(producer_registers, consumer_registers, consumers, blocks_per_sm)
    except ValueError as error:
        raise frontend.current().error(str(error), hint="give WarpRoles counts that fit, or leave them out (the "
                                                        "shares of its consumers)") from None


class WarpRoles:
    """Warpgroup 0 is the producer; warpgroups 1.. are consumers: the block has 1 + consumers warpgroups. The
    registers after setmaxnreg are `register_shares(consumers, blocks_per_sm)` unless given; ptxas plans the kernel's
    registers for `blocks_per_sm` blocks on an SM."""

    def __init__(self, consumers: int, producer_registers: int = None, consumer_registers: int = None,
                 blocks_per_sm: int = 1):
        if not isinstance(consumers, numbers.Integral) or isinstance(consumers, bool) or consumers < 1:
            raise frontend.current().error(f"WarpRoles' consumers is a compile-time int of 1 or more, found "
                                           f"{consumers!r}", hint="WarpRoles(n) for n consumer warpgroups beside the "
                                                                  "producer's")
        consumers = int(consumers)   # (a numpy integer, as before the check)
        threads = skc.num_threads()
        self.size = skc.current_target().warpgroup_size
        if not self.size:
            raise frontend.current().error(f"warp roles are warpgroups, which {skc.current_target().name} lacks",
                                           hint="compile for sm_90a")
        if threads != self.size * (1 + consumers):
            raise frontend.current().error(
                f"warp roles for 1 producer and {consumers} consumer warpgroups need "
                f"{self.size * (1 + consumers)} threads per block, the kernel has {threads}",
                hint=f"launch blocks of {self.size * (1 + consumers)} threads, or make WarpRoles(consumers) of the "
                     f"block's warpgroups less the producer's" + (f": WarpRoles({threads // self.size - 1})"
                                                                   if threads % self.size == 0 and
                                                                   threads > self.size else ""))
        if frontend.enclosing_conditions():
            raise frontend.current().error(
                "WarpRoles is made inside a run-time `if`: it reads the warpgroup index with a warp shuffle, which "
                "needs every lane of the warp", hint="make WarpRoles where the whole block runs, before any "
                "run-time branch")
        self.consumers = consumers
        frontend.current().facts(__name__ + ".warp_roles")["consumers"] = consumers   # (kernel_consumers)
        shares = register_shares(consumers, blocks_per_sm)
        self.producer_registers = shares[0] if producer_registers is None else producer_registers
        self.consumer_registers = shares[1] if consumer_registers is None else consumer_registers
        # (the interpreter does not model register counts: a request past them would hang on the GPU alone)
        _check_roles_registers(self.producer_registers, self.consumer_registers, consumers, blocks_per_sm)
        # the same in every lane of a warp, but ptxas cannot tell from the thread index alone: taken from lane 0
        # by a shuffle, it is, and what derives from it (the stage addresses, the wgmma descriptors) lives in
        # uniform registers instead of being moved into them before every wgmma
        self.warpgroup = skc.shfl_idx(skc.thread_index() // self.size, 0)
        # setmaxnreg needs a register cap at entry: the file's share of each of blocks_per_sm blocks
        skc.hopper.kernel_attributes(min_blocks=blocks_per_sm)

    def is_producer(self):
        condition = self.warpgroup == 0
        role_tests()[id(condition.value)] = (condition.value, "producer", "consumer")
        return condition

    def consumer_index(self):
        """Which consumer this warpgroup is (0 ..): its share of the block's tile."""
        return self.warpgroup - 1

    def enter_producer(self):
        check_role("enter_producer()", "producer", hint="call roles.enter_producer() in the producer's branch and "
                   "roles.enter_consumer() in the consumers'")
        skc.hopper.setmaxnreg(self.producer_registers, increase=False)

    def enter_consumer(self):
        # (in the producer's code it raised the producer's registers to the consumers': with the consumers' own,
        # more than the block holds, and setmaxnreg waits for them for ever)
        check_role("enter_consumer()", "consumer", hint="call roles.enter_consumer() in the consumers' branch and "
                   "roles.enter_producer() in the producer's")
        skc.hopper.setmaxnreg(self.consumer_registers, increase=True)


class WarpgroupTurns:
    """Consumer warpgroups that take turns at the tensor cores (FlashAttention-3's ping-pong): `with turns:` around
    a warpgroup's MMA issue waits for its turn and, leaving, passes the turn to the next consumer, so that one
    warpgroup's other work (a softmax) runs while the next one's MMAs do. Turn i is named barrier first_id + i (a
    run-time id: no branch on the warpgroup, which would make ptxas serialize the wgmmas), completed by consumer i
    waiting and consumer i - 1 arriving; the last consumer gives the first turn. With one consumer (or
    `enabled=False`) a turn is free."""

    def __init__(self, consumers: int, warpgroup, first_id: int = 8, enabled: bool = True):
        if not isinstance(consumers, int) or isinstance(consumers, bool) or consumers < 1:
            raise frontend.current().error(f"WarpgroupTurns' consumers is a compile-time count of 1 or more, found "
                                           f"{consumers!r}", hint="the kernel's consumer warpgroups (WarpRoles')")
        known = kernel_consumers()
        if enabled and known is not None and consumers > known:   # (a turn no warpgroup takes: every one waits)
            raise frontend.current().error(
                f"WarpgroupTurns({consumers}, ...) takes turns among {consumers} consumer warpgroups, and the "
                f"kernel's WarpRoles has {known}: a turn would pass to a warpgroup that does not exist and never come "
                "back", hint=f"WarpgroupTurns({known}, ...), the WarpRoles' consumers")
        self.consumers = consumers if enabled else 1
        if isinstance(warpgroup, numbers.Integral) and not 0 <= warpgroup < self.consumers:
            raise frontend.current().error(
                f"WarpgroupTurns' warpgroup is {warpgroup}, and the turns pass among {self.consumers} consumer "
                f"warpgroup(s) (0 to {self.consumers - 1}): its turn would never come",
                hint="WarpgroupTurns(consumers, roles.consumer_index())")
        self.warpgroup, self.first_id = warpgroup, first_id
        self.threads = 2 * skc.current_target().warpgroup_size
        if self.consumers > 1:
            if not isinstance(first_id, numbers.Integral) or first_id < 1 or first_id + self.consumers > 16:
                raise frontend.current().error(f"{self.consumers} turns from named barrier {first_id!r} pass 1 to 15",
                                               hint="WarpgroupTurns(..., first_id=8), the default")
            claim_named_barriers(first_id, self.consumers, self.threads, "WarpgroupTurns",
                                 "give each block its own named barriers: WarpgroupTurns(..., first_id=8) (the "
                                 "default) past the epilogues' 1 + warpgroup")
            if self.warpgroup == self.consumers - 1:
                skc.barrier_arrive(self.first_id, self.threads)

    def __enter__(self):
        if self.consumers > 1:
            skc.barrier_named(self.first_id + self.warpgroup, self.threads)
        return self

    def __exit__(self, *exc):
        if self.consumers > 1:
            skc.barrier_arrive(self.first_id + (self.warpgroup + 1) % self.consumers, self.threads)
        return False

    def close(self, turns):
        """After `turns` turns in all (taken round-robin), the last one passed on waits at warpgroup turns %
        consumers: that warpgroup takes it, so that the block exits with no arrival pending at a barrier."""
        if self.consumers > 1:
            if self.warpgroup == turns % self.consumers:
                skc.barrier_named(self.first_id + self.warpgroup, self.threads)
