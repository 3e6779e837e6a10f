"""Devices kernels run on: a CUDA GPU, an AMD GPU (HIP), or the CPU interpreter.

The current device is `SKC_DEVICE` (cuda, cuda:N, hip, hip:N, interpreter) when set, else the
first CUDA GPU when there is one, else the interpreter.
"""
from __future__ import annotations

import contextlib
import functools
import os
import threading
from dataclasses import dataclass
from typing import Optional

from ..diagnostics import DeviceError
from ..target import Target, UnknownTargetError, get_target

# runtime.cuda and runtime.hip are imported inside the functions that talk to a driver: this module is on the
# `import skc` path, and they add about 1.7 ms to it (measured) for programs that never touch a GPU.
INTERPRETER_TARGET_ENV = "SKC_INTERPRETER_TARGET"
INTERPRETER_SMS_ENV = "SKC_INTERPRETER_SMS"
INTERPRETER_SMS = 4   # the interpreter's SMs by default: persistent grids stay small on the CPU
_DEVICES: dict = {}


@dataclass(frozen=True, eq=False)
class Device:
    """A device. There is one object per device (`get_device`), so identity is equality: launches
    compare devices with `is`."""

    kind: str          # "cuda", "hip" or "interpreter"
    index: int = 0

    def __new__(cls, kind: str, index: int = 0):
        key = (kind, index)
        found = _DEVICES.get(key)
        if found is None:
            found = object.__new__(cls)
            _DEVICES[key] = found
        return found

    def __reduce__(self):
        return (Device, (self.kind, self.index))

    @property
    def is_interpreter(self) -> bool:
        return self.kind == "interpreter"

    @property
    def target(self) -> Target:
        return _target_of(self)

    @property
    def name(self) -> str:
        if self.kind == "cuda":
            from . import cuda

            return cuda.device_name(self.index)
        if self.kind == "hip":
            from . import hip

            return hip.device_name(self.index)
        return f"skc CPU interpreter (modelling {self.target.name})"

    @property
    def multiprocessors(self) -> int:
        """SMs (CUs on AMD) that run blocks at once; the interpreter counts SKC_INTERPRETER_SMS (default 4, to keep
        persistent grids small; 132 makes the host paths choose an H100's configurations)."""
        if self.kind == "cuda":
            from . import cuda

            return cuda.attribute(self.index, "MULTIPROCESSOR_COUNT")
        if self.kind == "hip":
            from . import hip

            return int(hip.properties(self.index).multiProcessorCount)
        return _interpreter_sms()

    def cluster_blocks(self, size: int) -> int:
        """Blocks of one SM each that run at once in clusters of `size` (a persistent grid's most): on a CUDA GPU the
        driver's count of resident clusters times `size`, elsewhere the SMs in whole clusters."""
        if self.kind == "cuda":
            from . import cuda

            return cuda.resident_clusters(self.index, size) * size
        return self.multiprocessors // size * size

    def __str__(self):
        return "interpreter" if self.is_interpreter else f"{self.kind}:{self.index}"


def _interpreter_sms() -> int:
    """SKC_INTERPRETER_SMS (a whole number from 1), else INTERPRETER_SMS. Read at each ask: the plans of the host
    paths read it when they are made, so it is set before a process's first call of a shape."""
    text = os.environ.get(INTERPRETER_SMS_ENV, "").strip()
    if not text:
        return INTERPRETER_SMS
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise DeviceError(f"{INTERPRETER_SMS_ENV} is how many SMs the interpreter models, a whole number from 1 (132: "
                          f"an H100 SXM's), found {text!r}")
    return count


@functools.lru_cache(maxsize=None)
def _target_of(device: Device) -> Target:
    if device.kind == "interpreter":
        name = os.environ.get(INTERPRETER_TARGET_ENV, "sm_90a")
        try:
            return get_target(name)
        except UnknownTargetError as error:   # (named without the variable that gave it)
            raise UnknownTargetError(f"{INTERPRETER_TARGET_ENV}={name!r}: {error}") from None
    if device.kind == "cuda":
        from . import cuda

        major, minor = cuda.compute_capability(device.index)
        if (major, minor) == (9, 0):
            return get_target("sm_90a")
        if major == 8:
            return get_target("sm_80")
        raise DeviceError(f"CUDA device {device.index} ({cuda.device_name(device.index)}) has compute capability "
                          f"{major}.{minor}; skc generates code for sm_80 (8.x) and sm_90a (9.0)")
    from . import hip

    return get_target(hip.architecture(device.index))


def parse_device(spec) -> Device:
    if isinstance(spec, Device):
        return spec
    text = str(spec).strip().lower()
    if text in ("interpreter", "cpu", "interp"):
        return Device("interpreter")
    kind, _, index = text.partition(":")
    if kind in ("cuda", "gpu", "hip", "rocm"):
        kind = "hip" if kind in ("hip", "rocm") else "cuda"
        try:
            return Device(kind, int(index) if index else 0)
        except ValueError:
            pass
    raise DeviceError(f"unknown device {spec!r}; use 'cuda', 'cuda:N', 'hip', 'hip:N' or 'interpreter'")


# The selection: set_device's for the process, using_device's for a thread (torch's current device is a thread's too:
# torch.nn.DataParallel runs one thread a GPU). `_selected` holds the process's, or _PER_THREAD while some thread is
# inside using_device, the process's then in `_outside`; a launch's native call, which reads `_selected` alone, never
# matches _PER_THREAD and leaves such launches to the Python call, which reads the thread's.
_selected: list[Optional[Device]] = [None]
_PER_THREAD = object()
_outside: list[Optional[Device]] = [None]
_thread = threading.local()   # .blocks: the thread's open using_device blocks, innermost last (absent: none yet)
_inside = [0]                 # using_device blocks open, on all threads
_lock = threading.Lock()


def _after_fork_in_child():
    """The lock is new in a forked child: a thread of the parent's that held it at the fork (selecting a device) is
    not there, and the child's own selection waited for it for ever."""
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):   # (POSIX only)
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Block:
    """An open using_device block: the device it selects (set_device's inside it). Blocks are told apart by identity:
    one that ends out of order (two asyncio tasks' blocks on one thread, a generator's closed later) leaves its own
    place in its thread's list, wherever that is and whichever thread ends it."""

    __slots__ = ("device",)

    def __init__(self, device: Device):
        self.device = device


def _thread_device() -> Optional[Device]:
    """The device of this thread's innermost open block, or None."""
    try:
        return _thread.blocks[-1].device
    except (AttributeError, IndexError):   # (none yet, or none now: another thread may end one of this thread's)
        return None


def set_device(spec) -> Device:
    """Make `spec` ('cuda', 'cuda:1', 'interpreter', ...) the device kernels launch on: the process's, or inside a
    using_device block the thread's until the block ends."""
    device = parse_device(spec)
    _check_present(device)
    try:
        _thread.blocks[-1].device = device
        return device
    except (AttributeError, IndexError):   # (no block open on this thread: the process's)
        pass
    with _lock:
        (_outside if _selected[0] is _PER_THREAD else _selected)[0] = device
    return device


def _check_present(device: Device):
    if device.kind == "cuda":
        from . import cuda

        cuda.device_handle(device.index)
    elif device.kind == "hip":
        from . import hip

        hip.device_count()


@functools.lru_cache(maxsize=None)
def _default_device() -> Device:
    env = os.environ.get("SKC_DEVICE", "").strip()
    if env and env.lower() != "auto":
        device = parse_device(env)
        _check_present(device)
        return device
    from . import cuda

    return Device("cuda", 0) if cuda.available() else Device("interpreter")


def current_device() -> Device:
    return selected() or _default_device()


# the device launches go to while none is selected (SKC_DEVICE, else CUDA device 0 where there is one, else the
# interpreter; read once): the cached function itself, so a launch's call takes no Python frame for it
default_device = _default_device


def selected() -> Optional[Device]:
    """The device this thread's using_device block or else set_device selected (None: none, the default device)."""
    device = _selected[0]
    if device is _PER_THREAD:
        return _thread_device() or _outside[0]
    return device


# where the selection lives, for code that reads it with no Python (a launch's native call): this module's
# attribute of this name, a list of one item (read anew at each call: a test may put another list there); its item is
# _PER_THREAD, which no launch's selection is, while a thread is inside using_device
SELECTION_ATTRIBUTE = "_selected"


def swap_selection(device: Optional[Device]) -> Optional[Device]:
    """Select `device` (or no device: the default) for the process without checking it is present, as a fake driver's
    tests do; gives the previous selection, to swap back."""
    with _lock:
        slot = _outside if _selected[0] is _PER_THREAD else _selected
        previous, slot[0] = slot[0], device
    return previous


def forget_targets():
    """Drop the cached target of each device (after the driver behind them changed)."""
    _target_of.cache_clear()


@contextlib.contextmanager
def using_device(spec):
    """The block's launches on this thread go to `spec` (other threads keep theirs); its selection before (an outer
    block's, or none: the process's) comes back after it."""
    device = parse_device(spec)
    _check_present(device)
    blocks = getattr(_thread, "blocks", None)
    if blocks is None:
        blocks = _thread.blocks = []
    block = _Block(device)
    with _lock:
        if not _inside[0]:
            _outside[0], _selected[0] = _selected[0], _PER_THREAD
        _inside[0] += 1
    blocks.append(block)
    try:
        yield device
    finally:
        # (its own place, not the last one's: it was the selection before the block that came back, which left the
        # device of a block that ended out of order as the thread's for good, and set_device the thread's from then)
        blocks.remove(block)
        with _lock:
            _inside[0] -= 1
            if not _inside[0]:
                _selected[0] = _outside[0]


def gpu_available() -> bool:
    from . import cuda

    return cuda.available()
