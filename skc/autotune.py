"""`skc.autotune`: pick the fastest of several configurations of a kernel by timing each on the device, once
per device, kernel and key; the winner is kept on disk (JSON in the skc cache dir), so a later process pays
nothing.

    @skc.autotune(configs=[{"BLOCK": 128}, {"BLOCK": 256}, {"BLOCK": 512}], key=lambda x, out, n: n)
    def scale(x, out, n, BLOCK):
        scale_kernel[skc.cdiv(n, BLOCK), BLOCK](x, out, n)

A call `scale(x, out, n)` computes the key; the first call with a new key times `scale(x, out, n, **config)`
for every config (CUDA events on a GPU, the host clock in the interpreter) and remembers the fastest; every
later call runs the winner at once. A config that fails (a CompileError or LaunchError: too much shared
memory, a tile the shape does not allow) is skipped and noted in `tuner.notes`; so is a winner read from disk that
fails so when first run (its kernel changed since), and the configs are timed again. Winners are kept per key and
per the element types of the arguments that have a `dtype`, and are read back only by the code they were timed with
(skc's own source, the file that defines the launch function and those of the skc kernels it names: a winner timed
before an edit there, or by another skc, is timed again) and by a tuner of the same configs (a config added, removed
or changed since: the candidates are timed again). The launch function must be safe to run repeatedly on the
same arguments (tuning runs it several times).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import json
import os
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path
from typing import Callable, Optional, Sequence

try:
    import fcntl
except ImportError:   # (Windows: winners written by two processes at once may lose one's)
    fcntl = None

from .diagnostics import SkcError
from .runtime import cache, cuda, devices

FORMAT = 1


def describe(config) -> object:
    """A JSON value that names a config: dicts and lists of plain values as they are, dataclasses (such as
    MatmulConfig) by their fields, anything else by its repr. Stored configs are matched by it."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {"__type__": type(config).__name__, **{f.name: describe(getattr(config, f.name))
                                                      for f in dataclasses.fields(config)}}
    if isinstance(config, dict):
        return {str(k): describe(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [describe(v) for v in config]
    if config is None or isinstance(config, (bool, int, float, str)):
        return config
    return repr(config)


class Autotuner:
    """The fastest of `configs` (keyword-argument dicts for `fn`) per key; see the module's docstring.

    `timer(run) -> milliseconds` times a no-argument callable (default: CUDA events on the current CUDA device,
    else the host clock); `device_name()` names the device the winners are kept for."""

    def __init__(self, fn: Callable, configs: Sequence[dict], key: Optional[Callable] = None, *, name=None,
                 timer: Optional[Callable] = None, device_name: Optional[Callable] = None, warmup: int = 3,
                 repeats: int = 10):
        what = f"skc.autotune of {getattr(fn, '__name__', fn)}"
        if configs is None:
            raise SkcError(f"{what} needs at least one config: pass configs=[{{...}}, ...], dicts of keyword "
                           "arguments for it")
        if isinstance(configs, (str, bytes, dict)) or not hasattr(configs, "__iter__"):
            raise SkcError(f"{what}: configs is a list of dicts of keyword arguments, found a {type(configs).__name__}")
        try:
            configs = list(configs)
        except TypeError:   # (something with an __iter__ that refuses: a 0-d tensor or array)
            raise SkcError(f"{what}: configs is a list of dicts of keyword arguments, found a "
                           f"{type(configs).__name__}") from None
        if not configs:
            raise SkcError(f"{what} needs at least one config: pass configs=[{{...}}, ...], dicts of keyword "
                           "arguments for it")
        for config in configs:   # (each is passed as fn(*args, **config): a timing run is no place to find out)
            if not isinstance(config, dict) or not all(isinstance(name, str) for name in config):
                raise SkcError(f"{what}: every one of configs is a dict of keyword arguments for it, found "
                               f"{config!r}")
        if key is not None and not callable(key):
            raise SkcError(f"{what}: key is a function of the call's arguments, found {key!r}")
        self.fn, self.configs, self.key = fn, configs, key
        self.name = name or _default_name(fn)
        self.timer = timer or (lambda run: time_ms(run, warmup, repeats))
        self.device_name = device_name or _device_name
        self.best: dict = {}        # (device name, key) -> config
        self.timings: dict = {}     # (device name, key) -> [(description, ms or None)]
        self.notes: list = []       # configs skipped, and why
        self._unproven: set = set()   # (device name, key) whose winner was read from disk and has not run here yet
        self._timed_with: Optional[str] = None   # made_by(), once
        self._candidates = _configs_digest(configs)
        if hasattr(fn, "__name__"):
            self.__name__ = fn.__name__
            self.__doc__ = fn.__doc__

    def __call__(self, *args, **kwargs):
        where = self._where(args, kwargs)
        config = self._choose(where, args, kwargs)
        if where not in self._unproven:
            return self.fn(*args, **kwargs, **config)
        # a winner read from disk, run here for the first time: one that no longer compiles or launches (its kernel
        # edited since it was timed, another skc) is timed again with the rest, as any config that fails is skipped
        self._unproven.discard(where)
        try:
            return self.fn(*args, **kwargs, **config)
        except SkcError:
            config = self.best[where] = self._tune(where, lambda config: self.fn(*args, **kwargs, **config))
        return self.fn(*args, **kwargs, **config)

    def choose(self, *args, **kwargs) -> dict:
        """The winning config for these arguments (timing the candidates the first time)."""
        return self._choose(self._where(args, kwargs), args, kwargs)

    def _where(self, args, kwargs) -> tuple:
        """(device name, key): the key's repr, and the element types of the arguments that have one, as Triton's
        autotuner keys its winners (a config timed for f32 arrays may not run for f64 ones, with twice the shared
        memory)."""
        key = repr(self.key(*args, **kwargs)) if self.key is not None else "()"
        dtypes = [str(dtype) for dtype in (getattr(arg, "dtype", None) for arg in (*args, *kwargs.values()))
                  if dtype is not None]
        return self.device_name(), f"{key} dtypes={','.join(dtypes)}" if dtypes else key

    def _choose(self, where, args, kwargs) -> dict:
        found = self.best.get(where)
        if found is None:
            found = self._stored(*where)
            if found is None:
                found = self._tune(where, lambda config: self.fn(*args, **kwargs, **config))
            else:
                self._unproven.add(where)
            self.best[where] = found
        return found

    def _tune(self, where, run) -> dict:
        self._refuse_capture(where)
        results, best, best_ms = [], None, None
        for config in self.configs:
            try:
                ms = self.timer(lambda config=config: run(config))
            except SkcError as error:  # the config does not fit this problem or device: skip it
                note = f"{self.name}: config {describe(config)} skipped: {str(error).splitlines()[0]}"
                self.notes.append(note)
                warnings.warn(note, stacklevel=3)
                results.append((describe(config), None))
                continue
            results.append((describe(config), ms))
            if best_ms is None or ms < best_ms:
                best, best_ms = config, ms
        self.timings[where] = results
        if best is None:
            raise SkcError(f"{self.name}: every config failed for key {where[1]}:\n  " + "\n  ".join(self.notes[-len(
                self.configs):]))
        self._store(where, best, best_ms)
        return best

    def _refuse_capture(self, where):
        """Timing runs each config (launches a capture would record) and waits for its events (a synchronization
        the capture refuses, which ends it): under a CUDA graph's capture of the stream it times on, the call is
        refused by name before any of it (every config was skipped, each for the driver's refusal)."""
        device = devices.current_device()
        if device.kind == "cuda" and cuda.capturing(_framework_stream(device.index)):
            raise SkcError(f"{self.name}: the first call of key {where[1]} times each config, which a CUDA graph "
                           "capturing the stream cannot hold (its launches would be recorded, its waits are refused): "
                           "make that call once before capturing (the winner is kept: a captured call then runs it)")

    # -- the winners on disk --------------------------------------------------------------------------------
    def path(self) -> Path:
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in self.name)
        return cache.cache_dir() / "autotune" / f"{safe}.json"

    def _read(self) -> dict:
        """The winners file, or {} where it is missing, unreadable or not of the shape this version writes, or where
        SKC_CACHE turns the on-disk cache off."""
        if not cache.cache_enabled():
            return {}
        try:
            data = json.loads(self.path().read_text())
        except (OSError, ValueError, RecursionError):   # (RecursionError: arrays nested past json's depth)
            return {}
        if not (isinstance(data, dict) and data.get("format") == FORMAT and isinstance(data.get("winners"), dict)
                and all(isinstance(v, dict) for v in data["winners"].values())):
            return {}
        return data

    def made_by(self) -> str:
        """A digest of the code a winner is timed with: skc's sources and the files of the launch function and of the
        kernels it names (_source_files). A winner stored under another runs (it is still a candidate), but its timing
        says nothing of the code that runs now: a kernel edited beside the launch function or in its own module, or
        the GEMM of another skc."""
        if self._timed_with is None:
            from .compiler import skc_source_digest

            digest = hashlib.sha256(skc_source_digest().encode())
            for path in _source_files(self.fn):
                try:
                    with open(path, "rb") as file:
                        digest.update(file.read())
                except OSError:   # (a file gone since its module was loaded: the others decide)
                    pass
            self._timed_with = digest.hexdigest()
        return self._timed_with

    def _stored(self, device: str, key: str) -> Optional[dict]:
        from .compiler import skc_as_imported

        if not skc_as_imported():   # (made_by() names files this process does not run)
            return None
        entry = self._read().get("winners", {}).get(device, {}).get(key)
        if (not isinstance(entry, dict) or entry.get("made_by") != self.made_by()
                or entry.get("configs") != self._candidates):
            return None
        stored = _exactly(entry.get("config"))
        for config in self.configs:  # the stored winner, if it is still a candidate (1, 1.0 and True told apart)
            if _exactly(describe(config)) == stored:
                return config
        return None

    def _store(self, where, config, ms):
        from .compiler import skc_as_imported

        # (SKC_CACHE=0, or skc edited since this process imported it: the winner lives in this process alone)
        if not cache.cache_enabled() or not skc_as_imported():
            return
        device, key = where
        path = self.path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with _locked(path):   # (another process tuning other keys keeps its winners)
                data = self._read() or {"format": FORMAT, "kernel": self.name, "winners": {}}
                data["winners"].setdefault(device, {})[key] = {"config": describe(config), "ms": ms,
                                                               "made_by": self.made_by(), "configs": self._candidates}
                handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
                try:
                    with os.fdopen(handle, "w") as file:
                        json.dump(data, file, indent=1, sort_keys=True)
                    os.chmod(temporary, cache.FILE_MODE)   # (mkstemp's files are 0600: other users could not read)
                    os.replace(temporary, path)  # readers never see half a file
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(temporary)
                    raise
        except OSError as error:
            warnings.warn(f"{self.name}: could not keep the autotuning result in {path}: {error}", stacklevel=3)


def _exactly(value) -> str:
    """A JSON value as text, which tells 1, 1.0 and True (and 0.0 and -0.0) apart, as == does not."""
    return json.dumps(value, sort_keys=True)


def _configs_digest(configs) -> str:
    """A digest of the configs a winner is the fastest of, in any order: a winner read back by a tuner of other
    configs (one added where the list is made in another file than the launch function's) says nothing of those it
    was never timed against."""
    return hashlib.sha256(_exactly(sorted(_exactly(describe(config)) for config in configs)).encode()).hexdigest()


def _source_files(fn) -> list:
    """The files whose code a winner of launch function `fn` was timed with, besides skc's: fn's own, and those of the
    skc kernels it names (a global it reads, an attribute of a module it reads, a value it closes over), which may
    live in another module (a kernel edited there kept the winner timed for its old code). None of a callable with no
    source file (one typed at a prompt)."""
    code, values = getattr(fn, "__code__", None), []
    if code is not None:
        names = getattr(fn, "__globals__", {})
        values = [names.get(name) for name in code.co_names]
        modules = [value for value in values if isinstance(value, types.ModuleType)]   # (kernels.add[grid](...))
        values += [getattr(module, name, None) for module in modules for name in code.co_names]
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            values.append(cell.cell_contents)
        except ValueError:   # (a cell not yet bound)
            pass
    functions = [fn] + [value.fn for value in values if getattr(type(value), "__skc_kernel__", False) is True]
    files = set()
    for function in functions:
        try:
            path = inspect.getsourcefile(function)
        except TypeError:   # (a callable instance, a builtin: no source file)
            path = None
        if path:
            files.add(os.path.realpath(path))
    return sorted(files)


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock beside path, where the system has one (the file is read, changed and replaced under it)."""
    if fcntl is None:
        yield
        return
    with open(path.with_suffix(".lock"), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
        except OSError:   # (a file system without locks, as some NFS, CIFS and FUSE mounts: written unlocked)
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _default_name(fn) -> str:
    """A tuner's name, which names its winners file: the function's module and name, and for a script run as
    __main__ (or by `skc run`) the script's path too, since every script shares those module names, and for a closure
    what it closes over (_closed_over)."""
    module = getattr(fn, "__module__", None) or "?"
    name = f"{module}.{getattr(fn, '__qualname__', repr(fn))}"
    code = getattr(fn, "__code__", None)
    if code is not None and (module == "__main__" or module.startswith("_skc_")):
        where = os.path.realpath(code.co_filename)
        name += "-" + hashlib.sha256(where.encode()).hexdigest()[:12]
    cells = getattr(fn, "__closure__", None)
    if cells:
        # launch functions made by one factory share a qualname: what each closes over (the kernel it launches) tells
        # them apart, or one would run the winner timed for another's kernel
        held = [_closed_over(cell) for cell in cells]
        name += "-" + hashlib.sha256(repr(held).encode()).hexdigest()[:12]
    return name


def _closed_over(cell) -> object:
    """What a closure's cell holds, in a form the same in every process: plain values as they are, functions,
    kernels and classes by their module and qualname, other objects by their class."""
    try:
        value = cell.cell_contents
    except ValueError:   # (a cell not yet bound)
        return None
    return _same_in_every_process(value)


def _same_in_every_process(value, depth: int = 0) -> object:
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, (tuple, list)) and depth < 4:
        return [_same_in_every_process(item, depth + 1) for item in value]
    named = getattr(value, "__qualname__", None)
    if isinstance(named, str):
        return f"{getattr(value, '__module__', '?')}.{named}"
    return f"{type(value).__module__}.{type(value).__qualname__}"


def autotune(configs: Sequence[dict], key: Optional[Callable] = None, **options):
    """Decorate a launch function: `@skc.autotune(configs=[...], key=lambda *args: ...)` (see the module)."""
    def wrap(fn):
        return Autotuner(fn, configs, key, **options)
    return wrap


def _device_name() -> str:
    device = devices.current_device()
    return f"{device.name} ({device.target.name})"


def time_ms(run: Callable, warmup: int = 3, repeats: int = 10) -> float:
    """Median milliseconds of `run()`: CUDA events around each run on the current CUDA device (its launches
    must go to the default stream or the current torch/cupy stream), else the host clock."""
    device = devices.current_device()
    for _ in range(warmup):
        run()
    if device.kind != "cuda":
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            samples.append((time.perf_counter() - start) * 1e3)
        return sorted(samples)[len(samples) // 2]
    return cuda.time_ms(run, repeats, device.index, _framework_stream(device.index))


def _framework_stream(index: int) -> int:
    """The stream launches without stream= go to when torch is in use (its current stream), else 0."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return torch.cuda.current_stream(index).cuda_stream
    return 0


class _CallableModule(types.ModuleType):
    """`skc.autotune` is this module and the decorator both: `@skc.autotune(configs=...)`."""

    def __call__(self, *args, **kwargs):
        return autotune(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
