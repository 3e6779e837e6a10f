"""The GPU hang guard (debug mode): every mbarrier.wait gives up after a bounded time and traps, leaving a
record of where it waited for the host to report as a DeadlockError.

A kernel compiled with attrs["debug"] lowers each `mbarrier.wait` as a try_wait loop that reads %globaltimer
(PTX ISA 10.13: a 64-bit nanosecond timer) and, after attrs["hang_timeout_ns"], runs the report path: the
first timing-out thread (it wins an atomic on the module global `__skc_hang_claim`) writes a record with
volatile stores into the memory that the module global `__skc_hang_record` points to (host-mapped pinned
memory the runtime installs after loading; null: no record), fences at system scope (`fence.sc.sys`, so the
host sees the stores although the context dies), marks the record written and traps; every other timing-out
thread first waits (at most MARK_WAIT_NS) until it sees that mark, then traps (a trap ends the grid: a loser
trapping at once would drop the winner's stores in flight). The record is 16 words:

    0: RECORD_WRITTEN once complete   1: the site's code (1 + its index in hang_sites)   2: the parity waited for
    3: the barrier's shared-memory offset   4-6: block id x, y, z   7-9: thread id x, y, z   10: nanoseconds waited (low 32 bits)

`hang_sites(function)` is the table that maps a code back to the source line: the compile driver keeps it
with the kernel (plain data), the runtime reads it.
"""
from __future__ import annotations

from .. import ir
from ..diagnostics import user_location
from .llvm_text import asm_string

RECORD_SYMBOL, CLAIM_SYMBOL = "__skc_hang_record", "__skc_hang_claim"
RECORD_WORDS, RECORD_WRITTEN = 16, 0x5ECD0001
DEFAULT_TIMEOUT_NS = 3_000_000_000
MARK_WAIT_NS = 1_000_000_000   # how long a thread that lost the claim waits for the record before it traps
SHARED = "ptr addrspace(3)"


def guarded_waits(function: ir.Function) -> list:
    """The mbarrier.wait ops the guard covers, in a fixed order (their codes are 1 + the index)."""
    return [op for op in function.walk() if op.name == "mbarrier.wait"]


def hang_sites(function: ir.Function) -> dict:
    """The table the runtime needs to name a hang: each guarded wait's code -> its source location, the
    functions it was inlined through (innermost first) and the shared buffer of its barrier; and the shared
    buffers (offset, bytes, name) to name a barrier's stage from its address."""
    sites = {}
    for index, op in enumerate(guarded_waits(function)):
        loc, shown = op.loc, user_location(op.loc)
        sites[str(index + 1)] = {   # str keys: the table goes through JSON (the disk cache)
            "file": shown.file if shown else "", "line": shown.line if shown else 0,
            "col": shown.col if shown else 0, "function": shown.function if shown else "",
            "frames": [f"{frame.function} ({frame.file}:{frame.line})" for frame in (loc.frames() if loc else ())],
            "buffer": _buffer_name(op.operands[0]),
        }
    buffers = [(op.attrs["offset"], op.attrs["bytes"], op.attrs.get("name", ""), _where(op.loc))
               for op in function.walk() if op.name == "mem.shared"]
    return {"sites": sites, "buffers": sorted(buffers)}


def _where(loc) -> str:
    shown = user_location(loc)
    return f"{shown.file}:{shown.line}" if shown is not None else ""


def _buffer_name(value: ir.Value, depth: int = 0) -> str:
    """The name of the mem.shared buffer a barrier pointer is computed from ('' when not found)."""
    owner = value.owner
    if owner is None or depth > 8 or not hasattr(owner, "name"):
        return ""
    if owner.name == "mem.shared":
        return owner.attrs.get("name", "")
    for operand in owner.operands:
        if isinstance(operand.type, ir.PointerType):
            return _buffer_name(operand, depth + 1)
    return ""


def _declare_globals(lw):
    module = lw.module
    if not getattr(module, "_skc_hang_globals", False):
        module.globals.append(f"@{RECORD_SYMBOL} = addrspace(1) externally_initialized global i64 0, align 8")
        module.globals.append(f"@{CLAIM_SYMBOL} = addrspace(1) externally_initialized global i32 0, align 4")
        module._skc_hang_globals = True


def _code_of(lw, op) -> int:
    codes = getattr(lw, "_hang_codes", None)
    if codes is None:
        codes = lw._hang_codes = {id(w): i + 1 for i, w in enumerate(guarded_waits(lw.fn))}
    return codes[id(op)]


def lower_guarded_wait(lw, op, try_wait):
    """mbarrier.wait as a try_wait loop bounded by %globaltimer; `try_wait(lw, op)` emits one try and gives the i1."""
    _declare_globals(lw)
    text = lw.text
    timeout = int(lw.fn.attrs.get("hang_timeout_ns", DEFAULT_TIMEOUT_NS))
    spin, check, hang, done = (text.new_label(p) for p in ("spin", "waited", "hang", "ready"))
    start = lw.call("llvm.nvvm.read.ptx.sreg.globaltimer", "i64", [])
    text.start_block(spin)
    ready = try_wait(lw, op)
    text.terminate(f"br i1 {ready}, label %{done}, label %{check}")
    text.start_block(check)
    elapsed = text.value(f"sub i64 {lw.call('llvm.nvvm.read.ptx.sreg.globaltimer', 'i64', [])}, {start}")
    late = text.value(f"icmp ugt i64 {elapsed}, {timeout}")
    text.terminate(f"br i1 {late}, label %{hang}, label %{spin}")
    text.start_block(hang)
    _report(lw, op, elapsed)
    text.start_block(done)


def _report(lw, op, elapsed: str):
    """The first thread to time out writes the record (if one is installed) and traps; every other timed-out
    thread waits (bounded) for the record's 'written' mark before it traps: a trap ends the whole grid, and a
    loser that trapped at once (another warp, times out in the same microsecond) would kill the winner before
    its stores reached the host — the H200 showed that for every kernel whose waits time out in several warps."""
    text = lw.text
    claim, write, wait_mark, trap = (text.new_label(p) for p in ("hang_claim", "hang_record", "hang_wait_mark",
                                                                    "hang_trap"))
    record = text.value(f"load volatile ptr, ptr addrspace(1) @{RECORD_SYMBOL}, align 8")
    installed = text.value(f"icmp ne ptr {record}, null")
    text.terminate(f"br i1 {installed}, label %{claim}, label %{trap}")
    text.start_block(claim)
    pair = text.value(f"cmpxchg ptr addrspace(1) @{CLAIM_SYMBOL}, i32 0, i32 1 monotonic monotonic")
    won = text.value(f"extractvalue {{ i32, i1 }} {pair}, 1")
    text.terminate(f"br i1 {won}, label %{write}, label %{wait_mark}")
    text.start_block(write)
    _write_record(lw, op, record, elapsed)
    text.terminate(f"br label %{trap}")
    text.start_block(wait_mark)
    _await_mark(lw, record, trap)
    text.start_block(trap)
    lw.call("llvm.trap", "void", [])
    text.terminate("unreachable")


def _write_record(lw, op, record: str, elapsed: str):
    text = lw.text
    bar = text.value(f"ptrtoint {SHARED} {lw.get(op.operands[0])} to i32")
    base = text.value(f"ptrtoint {SHARED} {lw.target.shared_base(lw)} to i32") if _has_shared(lw) else "0"
    words = [str(_code_of(lw, op)), lw.get(op.operands[1]), text.value(f"sub i32 {bar}, {base}")]
    words += [lw.call(f"llvm.nvvm.read.ptx.sreg.ctaid.{d}", "i32", []) for d in "xyz"]
    words += [lw.call(f"llvm.nvvm.read.ptx.sreg.tid.{d}", "i32", []) for d in "xyz"]
    words.append(text.value(f"trunc i64 {elapsed} to i32"))
    for index, word in enumerate(words, start=1):
        slot = text.value(f"getelementptr i32, ptr {record}, i32 {index}")
        text.emit(f"store volatile i32 {word}, ptr {slot}, align 4")
    _fence_sys(lw)
    text.emit(f"store volatile i32 {RECORD_WRITTEN}, ptr {record}, align 4")
    _fence_sys(lw)


def _await_mark(lw, record: str, trap: str):
    """A loser's wait for the winner's 'written' mark, read from the host-mapped record (ld.volatile: relaxed at
    system scope, PTX ISA 8.5), with a nanosleep between looks; after MARK_WAIT_NS it traps anyway (a winner that
    faulted must not turn a trap into a hang)."""
    text = lw.text
    look, sleep = text.new_label("hang_look"), text.new_label("hang_sleep")
    start = lw.call("llvm.nvvm.read.ptx.sreg.globaltimer", "i64", [])
    text.terminate(f"br label %{look}")
    text.start_block(look)
    mark = text.value(f"load volatile i32, ptr {record}, align 4")
    written = text.value(f"icmp eq i32 {mark}, {RECORD_WRITTEN}")
    text.terminate(f"br i1 {written}, label %{trap}, label %{sleep}")
    text.start_block(sleep)
    # PTX ISA 9.7.19.5 (nanosleep, sm_70+): up to this many ns; keeps the looks from flooding PCIe
    text.emit(f"call void asm sideeffect {asm_string('nanosleep.u32 1000;')}, {asm_string('~{memory}')}()")
    waited = text.value(f"sub i64 {lw.call('llvm.nvvm.read.ptx.sreg.globaltimer', 'i64', [])}, {start}")
    late = text.value(f"icmp ugt i64 {waited}, {MARK_WAIT_NS}")
    text.terminate(f"br i1 {late}, label %{trap}, label %{look}")


def _has_shared(lw) -> bool:
    return bool(lw.fn.attrs.get("shared_bytes", 0))


def _fence_sys(lw):
    # PTX ISA 9.7.13.4 (membar/fence): fence.sc.sys orders the record's stores before the trap for the host too
    lw.text.emit(f"call void asm sideeffect {asm_string('fence.sc.sys;')}, {asm_string('~{memory}')}()")
