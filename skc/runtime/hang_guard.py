"""The host side of the GPU hang guard (debug mode): a record in host-mapped pinned memory that a timed-out
mbarrier wait fills before it traps, and the launcher wrapper that turns the failed launch into a DeadlockError.

A trap kills the CUDA context, so nothing can be read from device memory afterwards: the record lives in
pinned host memory mapped into the device's address space (cuMemHostAlloc with DEVICEMAP), and its device
address is written into the module global `__skc_hang_record` once the module is loaded. The layout of the
record is the backend's (skc/backends/nvptx_debug.py); the compiler's table (`hang_sites`, plain data) maps
its code back to the source line, the barrier's shared buffer and the functions the wait was inlined through.
"""
from __future__ import annotations

import ctypes
import os
from typing import Optional

import numpy as np

from ..diagnostics import DeadlockError, DeviceError, Location

RECORD_SYMBOL = b"__skc_hang_record"
RECORD_WORDS, RECORD_WRITTEN = 16, 0x5ECD0001
MBARRIER_BYTES = 8


def debug_enabled(flag: Optional[bool] = None) -> bool:
    """`debug=True` on the kernel, else SKC_DEBUG=1 in the environment."""
    if flag is not None:
        return bool(flag)
    return os.environ.get("SKC_DEBUG", "").strip().lower() not in ("", "0", "false", "no", "off")


def hang_timeout_ns() -> int:
    """SKC_HANG_TIMEOUT (seconds, default 3): how long a debug-mode wait waits before it gives up."""
    text = os.environ.get("SKC_HANG_TIMEOUT", "").strip()
    try:
        seconds = float(text) if text else 3.0
    except ValueError:
        raise DeviceError(f"SKC_HANG_TIMEOUT must be a number of seconds, found {text!r}") from None
    # (the kernel compares a u64 of nanoseconds: NaN and infinities had no int, and 2^64 ns and more wrapped around
    # to a timeout of a fraction of a second, or none)
    if not 0 < seconds <= MAX_HANG_TIMEOUT_S:
        raise DeviceError(f"SKC_HANG_TIMEOUT must be a number of seconds above 0 and at most {MAX_HANG_TIMEOUT_S:.0f} "
                          f"(a year), found {text!r}")
    return max(1, int(seconds * 1e9))


MAX_HANG_TIMEOUT_S = 365 * 24 * 3600.0


class HangRecord:
    """RECORD_WORDS int32 words of host-mapped pinned memory, readable after the context has died."""

    def __init__(self, device: int):
        from . import cuda

        cuda.make_current(device)
        module = cuda.driver()
        nbytes = RECORD_WORDS * 4
        self.host = int(cuda.call("cuMemHostAlloc", nbytes, module.CU_MEMHOSTALLOC_DEVICEMAP |
                                  module.CU_MEMHOSTALLOC_PORTABLE))
        self.device_address = int(cuda.call("cuMemHostGetDevicePointer", self.host, 0))
        self.words = np.ctypeslib.as_array((ctypes.c_int32 * RECORD_WORDS).from_address(self.host))
        self.clear()

    def clear(self):
        self.words[:] = 0

    def install(self, module_handle):
        """Write the record's device address into the module's `__skc_hang_record` global."""
        from . import cuda

        address, size = cuda.call("cuModuleGetGlobal", module_handle, RECORD_SYMBOL)
        value = ctypes.c_uint64(self.device_address)
        cuda.copy_to_device(int(address), ctypes.addressof(value), min(int(size), 8))

    def read(self) -> Optional[np.ndarray]:
        words = self.words.copy()
        return words if words[0] == RECORD_WRITTEN else None


def describe(words: np.ndarray, table: dict, kernel: str) -> DeadlockError:
    """The DeadlockError for a record: the barrier, its stage and the parity, the role, the source line."""
    code, parity, offset = int(words[1]), int(words[2]), int(words[3])
    block, thread, waited = tuple(int(w) for w in words[4:7]), tuple(int(w) for w in words[7:10]), words[10]
    site = table.get("sites", {}).get(str(code), {})
    barrier, stage = _barrier(offset, table.get("buffers", ()))
    where = " <- ".join(site.get("frames", ())) or "unknown"
    message = (f"deadlock on the GPU in kernel '{kernel}': an mbarrier wait (hang-guard site {code}) gave up after "
               f"{(int(waited) & 0xFFFFFFFF) / 1e9:.1f} s waiting for the phase of parity {parity} (phase {parity} mod 2) "
               f"of {barrier}{stage}; first seen in block {block}, thread {thread}; role: the code inlined through "
               f"{where}")
    loc = Location(site["file"], site["line"], site.get("col", 0), site.get("function", "")) if site.get("file") \
        else None
    return DeadlockError(message, loc, "the wait's phase never completed: a producer that arrives fewer times than "
                                       "the consumer waits (different trip counts), a wrong expect_tx byte count, or a "
                                       "missing arrive. Run the kernel in the interpreter (kernel.interpret[...]) "
                                       "for a report of every waiting thread; SKC_HANG_TIMEOUT=seconds changes the "
                                       "time limit")


def _barrier(offset: int, buffers) -> tuple:
    for start, nbytes, name, declared in buffers:
        if start <= offset < start + nbytes:
            label = (f"'{name}'" if name else f"the shared buffer of {nbytes} bytes at offset {start}") + \
                (f", declared at {declared}" if declared else "")
            return (f"the mbarrier at shared offset {offset:#x} (in {label})",
                    f", stage {(offset - start) // MBARRIER_BYTES}")
    return f"the mbarrier at shared offset {offset:#x}", ""


class HangGuardLauncher:
    """Wraps a CUDA launcher in debug mode: after each launch it synchronizes; a failed launch with a filled
    record becomes a DeadlockError at the waiting line, any other failure a DeviceError."""

    def __init__(self, inner, module, table: dict, kernel: str):
        self.inner, self.table, self.kernel = inner, table, kernel
        self.device = module.device
        self.record = HangRecord(module.device)
        self.record.install(module.handle)

    def __call__(self, args, grid, stream=0):
        self.launch(args, grid, stream)

    def launch(self, args, grid, stream=0):
        self.record.clear()
        self.inner.launch(args, grid, stream)
        self._wait()

    def bind(self, args, grid):
        """The inner launcher's bound launch (CudaLauncher.bind), each launch waited for and checked."""
        inner = self.inner.bind(args, grid)

        def bound(stream=None):
            self.record.clear()
            inner(stream)
            self._wait()

        bound.arguments, bound.grid, bound.memory = inner.arguments, inner.grid, inner
        return bound

    def _wait(self):
        from . import cuda

        result = cuda.driver().cuCtxSynchronize()[0]   # debug mode: wait for everything, whatever the stream
        if int(result) == 0:
            return
        words = self.record.read()
        if words is not None:
            raise describe(words, self.table, self.kernel)
        raise DeviceError(no_record_message(self.kernel, cuda.error_text(result), self.table))


def no_record_message(kernel: str, error: str, table: dict) -> str:
    """A debug launch failed and left no record: not a timed-out wait of the guard (or one whose record could
    not reach the host). Name every guarded wait, so the reader knows which barriers could have been involved."""
    sites = table.get("sites", {})
    listed = [f"site {code}: {_site_text(site)}" for code, site in sorted(sites.items(), key=lambda s: int(s[0]))]
    waits = ("; the kernel's bounded mbarrier waits (none of them left a record) are " + "; ".join(listed)) \
        if listed else "; the kernel has no mbarrier wait"
    return (f"{kernel} failed in debug mode with no hang record: {error}{waits}. A timed-out wait writes its record "
            f"before it traps, so this is most likely a fault that is not a hang (an illegal address, a TMA "
            f"descriptor or coordinate the hardware refuses, a trap of the kernel's own); run the kernel in the "
            f"interpreter (kernel.interpret[...]) to check its accesses, or under compute-sanitizer")


def _site_text(site: dict) -> str:
    where = f"{site['file']}:{site['line']}" if site.get("file") else "unknown line"
    buffer = f" on the barrier in '{site['buffer']}'" if site.get("buffer") else ""
    frames = site.get("frames") or ()
    inlined = f" (inlined through {' <- '.join(frames)})" if len(frames) > 1 else ""
    return f"{where}{buffer}{inlined}"
