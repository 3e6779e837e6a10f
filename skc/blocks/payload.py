"""Payloads: what one pipeline stage holds (for a GEMM, an A tile and a B tile), laid out as
`stages` copies in shared memory. A payload is generic: a block-scaled GEMM adds its scale tiles
here and nothing else changes."""
from __future__ import annotations

import skc
from skc import frontend

from .layout import OperandLayout


class SmemTile:
    """One operand tile of one stage: its shared address, its layout, and the lease it belongs to
    (using it after the `with` that acquired the stage ended is a compile-time error)."""

    def __init__(self, name: str, address, layout: OperandLayout, lease=None):
        self.name, self.address, self.layout, self.lease = name, address, layout, lease

    def check_live(self):
        if self.lease is not None and not frontend.inside_with(self.lease):
            raise frontend.current().error(
                f"tile '{self.name}' of a pipeline stage is used after the `with ... acquire()` block that "
                "acquired the stage ended; the stage may already hold other data",
                hint="use the stage's tiles inside the with-block")

    def descriptor(self, k_step: int, row0: int = 0):
        self.check_live()
        return self.layout.descriptor(self.address, k_step, row0)


class TilePayload:
    """Named operand layouts (`TilePayload(a=OperandLayout(...), b=OperandLayout(...))`), one copy per stage."""

    def __init__(self, **layouts):
        self.layouts = layouts
        for layout in layouts.values():
            layout.check()

    @property
    def stage_bytes(self) -> int:
        return sum(layout.bytes for layout in self.layouts.values())

    def allocate(self, stages: int):
        """Shared memory for every stage (1024-byte aligned, as the 128-byte swizzle needs)."""
        buffer = skc.shared((stages * self.stage_bytes,), skc.u8, align=1024)
        self.base = skc.hopper.shared_address(buffer)
        self.stages = stages
        return self

    def tiles(self, stage, lease=None) -> dict:
        """The tiles of `stage` (a run-time index) by name."""
        address = self.base + stage * self.stage_bytes
        tiles, offset = {}, 0
        for name, layout in self.layouts.items():
            tiles[name] = SmemTile(name, address + offset, layout, lease)
            offset += layout.bytes
        return tiles
