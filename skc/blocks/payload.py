"""Payloads: what one pipeline stage holds (for a GEMM, an A tile and a B tile), laid out as
`stages` copies in shared memory. A payload is generic: a block-scaled GEMM adds its scale tiles
here and nothing else changes."""
from __future__ import annotations

import skc
from skc import frontend

from .arguments import describe, invalid
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

    def pointer(self, row, column, dtype):
        """A shared-memory pointer to element (row, column) of the tile (column along k), where the layout put it
        (swizzle included): for a consumer that reads the stage itself rather than through an MMA (a row-wise
        reduction). A vector of up to 16 bytes that starts at a multiple of its size reads from it whole:
        `skc.load(tile.pointer(row, column, skc.bf16), width=8)` with column a multiple of 8."""
        self.check_live()
        if not hasattr(self.layout, "offset"):
            raise frontend.current().error(f"tile '{self.name}' is a {type(self.layout).__name__}, which says no "
                                           "element's place (offset(row, column))",
                                           hint="read it as its TileOp does, or give its layout an offset method")
        elem_bytes = getattr(self.layout, "elem_bytes", None)
        if getattr(dtype, "itemsize", None) != elem_bytes:
            raise frontend.current().error(f"tile '{self.name}' holds elements of {elem_bytes} bytes; {dtype} is no "
                                           "element type of that size", hint="read it as a type of its elements' size "
                                           "(skc.bf16 or skc.f16 for 2 bytes, skc.f8e4m3 for 1, ...)")
        self.check_place(row, column)
        return skc.int_to_ptr(self.address + self.layout.offset(row, column), dtype, "shared")

    def check_place(self, row, column, width: int = 1):
        """A place known at compile time lies inside the tile (past its rows or its k, the layout's offset is
        another tile's element, or the next stage's); a run-time one is the caller's to keep inside."""
        for name, value, extent in (("row", row, getattr(self.layout, "rows", None)),
                                    ("column", column, getattr(self.layout, "k", None))):
            if isinstance(value, float) or (isinstance(value, frontend.Dyn) and
                                            not getattr(value.type, "is_int", False)):
                raise frontend.current().error(f"tile '{self.name}' is read at an integer {name}, found "
                                               f"{describe(value)}", hint=f"give the {name} as an integer")
            reach = width if name == "column" else 1
            if isinstance(value, int) and isinstance(extent, int) and not 0 <= value <= extent - reach:
                raise frontend.current().error(
                    f"tile '{self.name}' has {extent} {'rows' if name == 'row' else 'columns (its k)'}; "
                    f"{name} {value}{f' to {value + reach - 1}' if reach > 1 else ''} lies outside it (the place "
                    "would be another tile's element, or the next stage's)",
                    hint=f"read {name}s 0 to {extent - 1}")

    def load(self, row, column, dtype, width: int = 1):
        """`width` elements of the tile from (row, column), as `pointer` says (a vector of up to 16 bytes)."""
        if width * getattr(dtype, "itemsize", 0) > 16:
            raise frontend.current().error(f"tile '{self.name}' keeps 16 bytes together (its swizzle moves 16-byte "
                                           f"pieces): {width} elements of {dtype} cross a piece",
                                           hint=f"load at most {16 // dtype.itemsize} at a time")
        self.check_place(row, column, width if isinstance(width, int) else 1)
        return skc.load(self.pointer(row, column, dtype), width=width)


@frontend.host
def note_elements(payload, elements: dict):
    """The element types a loader's tensor maps bring into the payload's tiles (a layout says their size only: bf16
    and f16 tiles, or e4m3 and e5m2 ones, are alike to it), for the TileOps that read them."""
    frontend.current().facts(__name__ + ".elements")[id(payload)] = (payload, dict(elements))


@frontend.host
def loaded_element(tile):
    """The element type the loader of `tile`'s payload brings into it (None where no loader said)."""
    role = getattr(getattr(tile, "lease", None), "role", None)
    payload = getattr(getattr(role, "pipeline", None), "payload", None)
    record = frontend.current().facts(__name__ + ".elements").get(id(payload))
    return record[1].get(tile.name) if record is not None and record[0] is payload else None


@frontend.host
def _allocate_once(payload):
    allocated = frontend.current().facts(__name__)   # (of this compilation: a payload may be a module's global)
    if id(payload) in allocated and allocated[id(payload)] is payload:
        raise frontend.current().error(
            "this TilePayload already holds another pipeline's stages: both pipelines' tiles would be at the second "
            "one's addresses, each overwriting the other's", hint="make a TilePayload for each pipeline (the "
            "layouts may be the same)")
    allocated[id(payload)] = payload


def _alignment(layout) -> int:
    """Where a tile may start: a swizzled operand tile at a multiple of 1024 bytes (the 128-byte swizzle's
    repeat, PTX ISA 9.7.15.5.1.2), another tile where it says (`align`), else anywhere."""
    return getattr(layout, "align", None) or (8 * layout.swizzle if getattr(layout, "swizzle", 0) else 1)


def _aligned(size: int, align: int) -> int:
    return -(-size // align) * align


class TilePayload:
    """Named tile layouts (`TilePayload(a=OperandLayout(...), b=OperandLayout(...))`), one copy per stage. A
    layout is anything with `bytes` and `check()` (operand tiles, scale vectors); tiles are placed in order,
    each at its alignment, and a stage is padded to the largest alignment of its tiles."""

    def __init__(self, **layouts):
        if not layouts:
            raise invalid("a payload holds at least one tile", hint="name each tile: TilePayload(a=OperandLayout(...), "
                                                                     "b=OperandLayout(...))")
        for name, layout in layouts.items():
            if not (hasattr(layout, "bytes") and hasattr(layout, "check")):
                raise invalid(f"payload tile '{name}' is {layout!r}: a tile's layout has `bytes` and `check()` (an "
                              "OperandLayout, a ScaleLayout or one of the user's)",
                              hint=f"{name}=OperandLayout(rows, k) for an MMA operand's tile of rows x k elements")
            layout.check()
        self.layouts = layouts

    def offsets(self) -> dict:
        """Each tile's byte offset in its stage."""
        offsets, offset = {}, 0
        for name, layout in self.layouts.items():
            offsets[name] = offset = _aligned(offset, _alignment(layout))
            offset += layout.bytes
        return offsets

    @property
    def stage_bytes(self) -> int:
        last = list(self.layouts)[-1]
        return _aligned(self.offsets()[last] + self.layouts[last].bytes,
                        max(_alignment(layout) for layout in self.layouts.values()))

    def allocate(self, stages: int):
        """Shared memory for every stage (1024-byte aligned, as the 128-byte swizzle needs). A payload is one
        pipeline's: a second pipeline of it would take its tiles' addresses over from the first."""
        _allocate_once(self)
        buffer = skc.shared((stages * self.stage_bytes,), skc.u8, align=1024)
        self.base = skc.hopper.shared_address(buffer)
        self.stages = stages
        return self

    def tiles(self, stage, lease=None) -> dict:
        """The tiles of `stage` (a run-time index) by name."""
        address = self.base + stage * self.stage_bytes
        offsets = self.offsets()
        return {name: SmemTile(name, address + offsets[name], layout, lease) for name, layout in self.layouts.items()}
