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
(skc's own source, the files of the launch function, of its key and of its configs' values, and of the skc kernels,
functions and classes of yours their code reaches, through modules, helpers, class attributes and closures; the
launch function's own as imported: a winner timed before an edit there, or by another skc, is timed again) and by a
tuner of the same configs (a config added, removed or changed since: the candidates are timed again). The launch
function must be safe to run repeatedly on the same arguments (tuning runs it several times).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import inspect
import json
import os
import stat
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
    MatmulConfig) by their fields, functions, kernels and classes by their module and qualified name, anything else
    by its repr. Stored configs are matched by it."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {"__type__": type(config).__name__, **{f.name: describe(getattr(config, f.name))
                                                      for f in dataclasses.fields(config)}}
    if isinstance(config, dict):
        return {str(k): describe(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [describe(v) for v in config]
    if config is None or isinstance(config, (bool, int, float, str)):
        return config
    named = _named(config)
    return named if named is not None else repr(config)


def _named(value) -> Optional[str]:
    """A function's, a kernel's or a class's module and qualified name (a lambda's with its line): the same in every
    process, and other for two kernels of one name in two modules, whose reprs are alike; None for other values."""
    qualname = getattr(value, "__qualname__", None)
    if not isinstance(qualname, str) or not isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)) \
            and getattr(type(value), "__skc_kernel__", False) is not True:
        return None
    name = f"{getattr(value, '__module__', None) or '?'}.{qualname}"
    code = getattr(getattr(value, "fn", value), "__code__", None)
    if code is not None and "<lambda>" in qualname:   # (two lambdas of one scope share a qualname)
        name += f":{code.co_firstlineno}:" + hashlib.sha256(code.co_code + repr(code.co_names).encode()).hexdigest()[:8]
    return name


class Autotuner:
    """The fastest of `configs` (keyword-argument dicts for `fn`) per key; see the module's docstring.

    `timer(run) -> milliseconds` times a no-argument callable (default: CUDA events on the current CUDA device,
    else the host clock); `device_name()` names the device the winners are kept for."""

    def __init__(self, fn: Callable, configs: Sequence[dict], key: Optional[Callable] = None, *, name=None,
                 timer: Optional[Callable] = None, device_name: Optional[Callable] = None, warmup: int = 3,
                 repeats: int = 10):
        if not callable(fn):
            raise SkcError(f"skc.autotune decorates a launch function (a def that launches the kernel), found "
                           f"{type(fn).__name__} {fn!r}")
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
        _check_config_names(fn, configs, what)
        for option, value, lowest in (("warmup", warmup, 0), ("repeats", repeats, 1)):
            if type(value) is not int or value < lowest:
                raise SkcError(f"{what}: {option} is an int of {lowest} or more, found {value!r}")
        if name is not None and (not isinstance(name, str) or not name):
            raise SkcError(f"{what}: name is a string that names its winners file, found {name!r}")
        for option, value in (("timer", timer), ("device_name", device_name)):
            if value is not None and not callable(value):
                raise SkcError(f"{what}: {option} is a function, found {value!r}")
        self.fn, self.configs, self.key = fn, configs, key
        self._chosen_names = frozenset(name for config in configs for name in config)
        self.name = name or _default_name(fn)
        self.timer = timer or (lambda run: time_ms(run, warmup, repeats))
        self.device_name = device_name or _device_name
        self.best: dict = {}        # (device name, key) -> config
        self.timings: dict = {}     # (device name, key) -> [(description, ms or None)]
        self.notes: list = []       # configs skipped, and why
        self._unproven: set = set()   # (device name, key) whose winner was read from disk and has not run here yet
        self._timed_with: Optional[str] = None   # made_by(), once
        self._candidates = _configs_digest(configs)
        # the launch function's own files as they are now, as imported: one saved while this process runs is another
        # code than the one a winner is timed with here
        self._early = {path: _file_digest(path) for path in _source_files(fn, own=True)}
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
        """The winning config for these arguments (timing the candidates the first time): a copy, which the caller may
        change."""
        return dict(self._choose(self._where(args, kwargs), args, kwargs))

    def _where(self, args, kwargs) -> tuple:
        """(device name, key): the key's repr, and the element types of the arguments that have one, as Triton's
        autotuner keys its winners (a config timed for f32 arrays may not run for f64 ones, with twice the shared
        memory)."""
        if kwargs and not self._chosen_names.isdisjoint(kwargs):
            given = ", ".join(sorted(self._chosen_names.intersection(kwargs)))
            raise SkcError(f"{self.name}: the call passes {given}, which the tuner chooses (its configs name it): "
                           "leave it out of the call, or call the undecorated function with it")
        key = repr(self._key(args, kwargs)) if self.key is not None else "()"
        dtypes = [str(dtype) for dtype in (getattr(arg, "dtype", None) for arg in (*args, *kwargs.values()))
                  if dtype is not None]
        device = self.device_name()
        if not isinstance(device, str) or not device:   # (an int was kept as "0" on disk and missed ever after)
            raise SkcError(f"{self.name}: device_name() names the device its winners are kept for, a non-empty "
                           f"string, found {device!r}")
        return device, f"{key} dtypes={','.join(dtypes)}" if dtypes else key

    def _key(self, args, kwargs):
        """The key of the call's arguments; a key function that cannot take them is an error that says so."""
        try:
            return self.key(*args, **kwargs)
        except TypeError:
            try:
                inspect.signature(self.key).bind(*args, **kwargs)
            except TypeError as error:
                raise SkcError(f"{self.name}: its key cannot take the call's arguments ({error}): give it the launch "
                               "function's parameters, as key=lambda x, out, n: n") from None
            except ValueError:   # (no signature to read: the key's own TypeError stands)
                pass
            raise

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
            ms = _milliseconds(self.name, ms)
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
            data = json.loads(cache.read_regular(self.path()))   # (a FIFO in its place blocked the call for ever)
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
            for path in _source_files((self.fn, self.key, [list(config.values()) for config in self.configs])):
                found = self._early.get(path) or _file_digest(path)
                if found:   # (a file gone since its module was loaded: the others decide)
                    digest.update(found.encode())
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


def _source_files(reached, own: bool = False) -> list:
    """The files whose code a winner is timed with, besides skc's: those of the launch function (through a partial, a
    callable object's __call__ and functools.wraps wrappers), its key, its configs' values, and what their code reaches
    (the skc kernels, functions and classes of the user's it names: a global, an attribute of a module, of a module's
    module or of a class it reads, a value it closes over), which may live in other modules (a kernel edited there
    kept the winner timed for its old code). `own`: the launch function's own files only. None of a callable with no
    source file (one typed at a prompt), nor the libraries' (skc's are in its source digest)."""
    from .frontend.keying import names_read

    files, seen = set(), set()

    def add(value):
        try:
            path = inspect.getsourcefile(value)
        except (TypeError, OSError):   # (a builtin, a class made at a prompt: no source file)
            path = None
        if path:
            files.add(os.path.realpath(path))

    def visit(value, depth, names=None):
        if depth > _REACH or id(value) in seen or value is None or isinstance(value, (bool, int, float, str, bytes)):
            return
        seen.add(id(value))
        try:
            reach(value, depth, names)
        except Exception:   # (an object whose attributes raise: what it reaches is left out, as a file with no source)
            pass

    def reach(value, depth, names):
        if getattr(type(value), "__skc_kernel__", False) is True:
            return visit(value.fn, depth)
        inner = getattr(value, "__skc_function__", None) or getattr(value, "kernel", None)   # (@skc.func; a view)
        if isinstance(inner, types.FunctionType) or getattr(type(inner), "__skc_kernel__", False) is True:
            return visit(inner, depth)
        if isinstance(value, functools.partial):
            visit(value.func, depth)
            for item in (*value.args, *value.keywords.values()):
                visit(item, depth + 1)
        elif isinstance(value, types.MethodType):
            visit(value.__func__, depth)
            visit(value.__self__, depth + 1)
        elif isinstance(value, types.FunctionType):
            if _library(value.__module__):
                return
            add(value)
            wrapped = value.__dict__.get("__wrapped__")
            if wrapped is not None:
                visit(wrapped, depth)
            if own:
                return
            read = names_read(value.__code__)
            for name in read:
                if name in value.__globals__:
                    visit(value.__globals__[name], depth + 1, read)
            for cell in value.__closure__ or ():
                try:
                    visit(cell.cell_contents, depth + 1, read)
                except ValueError:   # (a cell not yet bound)
                    pass
        elif isinstance(value, types.ModuleType):
            if names and not _library(value.__name__):   # (the attributes the reaching code names: kernels.add)
                space = vars(value)
                for name in names:
                    if name in space:
                        visit(space[name], depth + 1, names)
        elif isinstance(value, type):
            if _library(value.__module__):
                return
            add(value)
            for name in {"__call__", *(names or ())}:   # (a callable object's; the attributes code names: Ops.scale)
                if name in vars(value):
                    visit(vars(value)[name], depth + 1, names)
        elif isinstance(value, (list, tuple, set, frozenset)):
            for item in value:
                visit(item, depth + 1, names)
        elif isinstance(value, dict):
            for item in value.values():
                visit(item, depth + 1, names)
        elif callable(value) and not _library(type(value).__module__):   # (a callable object: its class's __call__)
            visit(type(value), depth, names)
            if not own:
                visit(getattr(value, "__dict__", None), depth + 1, names)

    visit(reached, 0)
    return sorted(files)


_REACH = 6   # how many steps from the launch function _source_files follows (a kernel behind helpers and modules)


def _library(module) -> bool:
    """Whether code of `module` is a library's (skc's, the standard library's, numpy's, torch's: keyed by name)."""
    from .frontend.keying import trusted_module

    return trusted_module(module or "")


def _file_digest(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as file:
            return hashlib.sha256(file.read()).hexdigest()
    except OSError:
        return None


def _milliseconds(name: str, ms) -> float:
    """A timer's result as a float of milliseconds (numpy's and torch's scalars too: a numpy float32 failed to be
    written as JSON, and every call timed every config again)."""
    try:
        ms = float(ms)
    except (TypeError, ValueError):
        ms = None
    if ms is None or not ms >= 0 or ms == float("inf"):
        raise SkcError(f"{name}: its timer gives the milliseconds a config took, a number of 0 or more, found "
                          f"{ms!r}")
    return ms


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock beside path, where the system has one (the file is read, changed and replaced under it).
    The lock file must be a regular file (a FIFO in its place blocked the open for ever): else OSError."""
    if fcntl is None:
        yield
        return
    handle = os.open(path.with_suffix(".lock"), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NONBLOCK |
                     getattr(os, "O_NOFOLLOW", 0), cache.FILE_MODE)
    if not stat.S_ISREG(os.fstat(handle).st_mode):
        os.close(handle)
        raise OSError(f"{path.with_suffix('.lock')} is not a regular file")
    with os.fdopen(handle, "a") as lock:
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
    if isinstance(fn, functools.partial):   # (by the function it calls and what it binds)
        bound = _same_in_every_process([list(fn.args), sorted(fn.keywords.items())])
        return _default_name(fn.func) + "-" + hashlib.sha256(repr(bound).encode()).hexdigest()[:12]
    if not isinstance(getattr(fn, "__qualname__", None), str):   # (a callable object: by its __call__ and fields)
        call = getattr(type(fn), "__call__", None)
        held = _same_in_every_process(getattr(fn, "__dict__", None))
        base = _default_name(call if isinstance(call, types.FunctionType) else type(fn))
        return f"{base}-" + hashlib.sha256(repr(held).encode()).hexdigest()[:12]
    module = getattr(fn, "__module__", None) or "?"
    name = _named(fn) or f"{module}.{fn.__qualname__}"
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
    """value in a form the same in every process: plain values as they are, sequences and dicts item by item, functions,
    kernels and classes by their names, a kernel's device view by its kernel, arrays by their type, shape and (small
    ones) content, other objects by their class and fields (an object whose attributes raise: by its class)."""
    try:
        return _in_every_process(value, depth)
    except Exception:
        return f"{type(value).__module__}.{type(value).__qualname__}"


def _in_every_process(value, depth: int) -> object:
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if depth >= 4:
        return type(value).__qualname__
    if isinstance(value, (tuple, list)):
        return [_same_in_every_process(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return sorted((repr(_same_in_every_process(k, depth + 1)), _same_in_every_process(v, depth + 1))
                      for k, v in value.items())
    named = getattr(value, "__qualname__", None)
    if isinstance(named, str):
        return _named(value) or f"{getattr(value, '__module__', '?')}.{named}"
    kernel = getattr(value, "kernel", None)
    if getattr(type(kernel), "__skc_kernel__", False) is True:   # (kernel.interpret, kernel.on(device))
        return ["view", _named(kernel), str(getattr(value, "device", ""))]
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if isinstance(shape, tuple) and dtype is not None:   # (an array or tensor: small numpy ones by their content too)
        size = getattr(value, "nbytes", None)
        small = type(size) is int and size <= 1 << 16 and callable(getattr(value, "tobytes", None))
        return [kind, str(dtype), list(shape), hashlib.sha256(value.tobytes()).hexdigest()[:12] if small else ""]
    fields = getattr(value, "__dict__", None)
    return [kind, _same_in_every_process(fields, depth + 1)] if isinstance(fields, dict) else kind


def autotune(configs: Sequence[dict] = None, key: Optional[Callable] = None, **options):
    """Decorate a launch function: `@skc.autotune(configs=[...], key=lambda *args: ...)` (see the module)."""
    if isinstance(configs, types.FunctionType) and key is None and not options:   # (@skc.autotune over a def)
        raise SkcError(f"skc.autotune takes the configs first: write @skc.autotune(configs=[{{...}}, ...], key=...) "
                       f"above {configs.__name__}, with the parentheses")
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise SkcError(f"skc.autotune takes no option {', '.join(unknown)}: its options are configs, key, "
                       f"{', '.join(sorted(_OPTIONS))}")

    def wrap(fn):
        return Autotuner(fn, configs, key, **options)
    return wrap


_OPTIONS = frozenset({"name", "timer", "device_name", "warmup", "repeats"})


def _check_config_names(fn, configs, what: str):
    """Each config names parameters fn takes by name (a timing run is no place to find out)."""
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):   # (no signature to read)
        return
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return
    takes = {name for name, p in parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    for config in configs:
        unknown = sorted(set(config) - takes)
        if unknown:
            raise SkcError(f"{what}: config {config!r} names {', '.join(unknown)}, which it takes no parameter of "
                           f"(its parameters: {', '.join(parameters) or 'none'})")


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
