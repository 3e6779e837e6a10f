"""Warp roles: warpgroup 0 produces (issues the copies) with its registers lowered, the other
warpgroups consume (compute) with theirs raised. The role test is a run-time `if`; skc remembers
which condition means which role, so a block used in the wrong branch is a compile-time error."""
from __future__ import annotations

import skc
from skc import frontend

_ROLE_OF_CONDITION: dict = {}  # id of the IR value of a role test -> (value, role when true, role when false)


def current_role():
    """'producer', 'consumer' or None: the role of the code being compiled, from the enclosing `if`s."""
    role = None
    for condition, taken in frontend.enclosing_conditions():
        entry = _ROLE_OF_CONDITION.get(id(condition.value))
        if entry is not None and entry[0] is condition.value:
            role = entry[1] if taken else entry[2]
    return role


class WarpRoles:
    """Warpgroup 0 is the producer; warpgroups 1.. are consumers. `threads` = 128 x (1 + consumers)."""

    WARPGROUP = 128

    def __init__(self, consumers: int, producer_registers: int = 40, consumer_registers: int = 232):
        threads = skc.num_threads()
        if threads != self.WARPGROUP * (1 + consumers):
            raise frontend.current().error(
                f"warp roles for 1 producer and {consumers} consumer warpgroups need "
                f"{self.WARPGROUP * (1 + consumers)} threads per block, the kernel has {threads}")
        self.consumers = consumers
        self.producer_registers = producer_registers
        self.consumer_registers = consumer_registers
        self.warpgroup = skc.thread_index() // self.WARPGROUP
        skc.hopper.kernel_attributes(min_blocks=1)  # setmaxnreg needs a register cap at entry

    def is_producer(self):
        condition = self.warpgroup == 0
        _ROLE_OF_CONDITION[id(condition.value)] = (condition.value, "producer", "consumer")
        return condition

    def consumer_index(self):
        """Which consumer this warpgroup is (0 ..): its share of the block's tile."""
        return self.warpgroup - 1

    def enter_producer(self):
        skc.hopper.setmaxnreg(self.producer_registers, increase=False)

    def enter_consumer(self):
        skc.hopper.setmaxnreg(self.consumer_registers, increase=True)

    def is_first_warp(self):
        """The first warp of this warpgroup."""
        return skc.thread_index() % self.WARPGROUP < 32

    def is_leader(self):
        """The first thread of this warpgroup (the one that issues copies or arrives for the group)."""
        return skc.thread_index() % self.WARPGROUP == 0
