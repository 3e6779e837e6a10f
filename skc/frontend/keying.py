"""Exact keys of compile-time values: the text that stands for a value in the cache key (constexpr
arguments) and in the dependencies checked when a cached kernel is loaded (globals, helpers).

A key is exact or it is not made: a value skc cannot key exactly raises `Unkeyable`, and the caller
turns that into an error (a constexpr) or into a kernel that is not served from the disk cache (a
global). Nothing is keyed by `id()` or by a repr that may be truncated (numpy's, past 1000 elements).

Code that belongs to skc itself is keyed by its name: the compiler's source digest is a part of
every cache key. Code of the standard library and of the array libraries is keyed by name too: it
changes only with an installation. Everything else (the user's modules and scripts, other packages)
is keyed by content: a function by its code and source text, defaults, closure and the globals its code names.
"""
from __future__ import annotations

import array
import collections
import dataclasses
import enum
import functools
import dis
import gc
import hashlib
import importlib
import importlib.util
import operator
import os
import site
import struct
import sys
import sysconfig
import types

KEYABLE = ("ints, floats, bools, strings, bytes, None; tuples, lists, dicts and sets of those; enums; "
           "dataclasses and plain objects of your own classes whose fields are keyable; skc dtypes and types; "
           "torch dtypes; numpy scalars and arrays (keyed by their full content); classes, modules, and functions "
           "(keyed by code, defaults, closure and the globals they read)")

ATOMS = (type(None), bool, int, float, complex, str, bytes)
_DESCRIPTORS = (types.MemberDescriptorType, types.GetSetDescriptorType, types.WrapperDescriptorType,
                types.MethodDescriptorType, types.ClassMethodDescriptorType)
_NOT_STATE = {"__module__", "__qualname__", "__doc__", "__dict__", "__weakref__", "__annotations__",
              "__dataclass_fields__", "__dataclass_params__", "__match_args__", "__static_attributes__",
              "__firstlineno__", "__orig_bases__", "__parameters__", "__slotnames__", "__hash__",
              "__annotate_func__", "__annotations_cache__"}


# what functools.wraps (and skc's @skc.func, a wrapper of the def) set on a function: no attributes of the user's
_WRAPPER_STATE = frozenset(functools.WRAPPER_ASSIGNMENTS) | {"__wrapped__", "__type_params__", "_skc_function"}

# what enum itself sets on a member (its value is keyed with its class)
ENUM_MEMBER_STATE = frozenset({"_value_", "_name_", "__objclass__", "_sort_order_"})
# an enum class's tables of its members, which its members (class attributes) give, and which a Flag's combinations
# made later (`Perm.R | Perm.W`) add to: no state of the user's
ENUM_CLASS_TABLES = frozenset({"_member_map_", "_value2member_map_", "_member_names_", "_unhashable_values_",
                               "_hashable_values_"})

# the dependency key of a name a kernel looked up in a module that does not bind it (it found a builtin): a later
# binding of that name in the module changes what the code means
ABSENT = "absent"
ABSENT_BINDING = object()   # what such a name is bound to, for a launch's identity check (jit.py)


class CellView:
    """A closure cell seen as a namespace of one name, for the bindings a launch watches by identity (jit.py)."""

    __slots__ = ("cell",)

    def __init__(self, cell):
        self.cell = cell

    def get(self, name, default=None):
        try:
            return self.cell.cell_contents
        except ValueError:
            return default


class AttributeView:
    """An object seen as a namespace of the attributes a compile read of it, for a launch's identity check: an object
    of a class of the user's built on a library's (a torch.nn.Module), which the keyer watches by its own fields alone,
    serves attributes from its library's tables (`model.scale`, a parameter, from `_parameters`)."""

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def get(self, name, default=None):
        try:
            return getattr(self.obj, name, default)
        except Exception:   # (a property that fails now: a change all the same, which the compile after it reports)
            return default


def watched_by_fields(obj) -> bool:
    """Whether the keyer keys an object by nothing and watches its own fields by identity, not what they hold or what
    its class serves: an object of a class of the user's built on a library's (torch.nn.Module, abc.ABC)."""
    cls = type(obj)
    return (not _trusted(cls) and type(getattr(obj, "__dict__", None)) is dict and cls.__module__ != "collections"
            and not isinstance(obj, (type, types.FunctionType, enum.Enum)) and not dataclasses.is_dataclass(cls)
            and not _own_class(cls))


class ContentsView:
    """What a mutable value a compile keyed holds (a list's or set's items here; a dict's, a numpy array's data and an
    object's slots in the subclasses) seen as a namespace of one name, for a launch's identity check, as CellView a
    closure cell: `get` gives the view itself while the value holds what it held when the view was made (the same
    objects, in order: a set whose items came back in another order counts as changed, and the launch compares keys),
    and a new object once it was changed in place (`SIZES.append(8)`, `TABLE["k"] = 2`, `ARRAY[0] = 1`), which rebinds
    no name a namespace holds. `contents_view(value)` makes the one for a value. (Each `get` is one launch's cost.)"""

    __slots__ = ("value", "contents")

    def __init__(self, value):
        self.value = value
        self.contents = self.taken()

    def taken(self):
        return tuple(self.value)

    def get(self, name, default=None):
        value, contents = self.value, self.contents
        if len(value) == len(contents) and all(map(operator.is_, value, contents)):
            return self
        return self if self.renew_if_same() else object()

    def renew_if_same(self) -> bool:
        """Whether the value holds what it held, some items other objects of the same key (`TABLE["lr"] = float(lr)`
        at every step, an int or float made anew): then the view takes them, so that the next launch finds them by
        identity again (compared by keys, 0.0 is not -0.0, 1 not 1.0 or True)."""
        now = self.taken()
        if len(now) != len(self.contents) or not all(map(_same_atom, now, self.contents)):
            return False
        self.contents = now
        return True

    def renewed(self) -> "ContentsView":
        """A view of the value as it is now."""
        return type(self)(self.value)


class _DictView(ContentsView):
    """A dict's keys, then its values, by identity, in order."""

    __slots__ = ()

    def taken(self):
        return (*self.value, *self.value.values())

    def get(self, name, default=None):
        value, contents = self.value, self.contents
        same = 2 * len(value) == len(contents) and all(map(operator.is_, (*value, *value.values()), contents))
        return self if same or self.renew_if_same() else object()


def _same_atom(a, b) -> bool:
    """Whether two items are one object, or atoms (numbers, strings, bytes, None) of one key."""
    if a is b:
        return True
    if type(a) is not type(b) or type(a) not in ATOMS:
        return False
    if type(a) is float or type(a) is complex:   # (by repr: 0.0 is not -0.0; a NaN by its bits)
        if a != a or b != b:
            return a != a and b != b and nan_bits(a) == nan_bits(b)
        return repr(a) == repr(b)
    return a == b


class _EqualView(ContentsView):
    """A value whose contents are compared whole, by ==."""

    __slots__ = ()

    def get(self, name, default=None):
        return self if self.taken() == self.contents else object()


class _ArrayView(_EqualView):
    """A numpy array's shape, dtype and bytes; a large one's (past WATCHED_ARRAY_BYTES) strides instead of its bytes:
    read at every launch they would cost more than the launch (a `W.shape` read of a large array keys its data all
    the same)."""

    __slots__ = ()

    def taken(self):
        value = self.value
        if value.nbytes > WATCHED_ARRAY_BYTES:
            return value.shape, value.dtype, value.strides
        return value.shape, value.dtype, value.tobytes()


class _SlotsView(ContentsView):
    """An object's slots, by identity."""

    __slots__ = ()

    def taken(self):
        value = self.value
        return tuple(getattr(value, slot, ABSENT_BINDING) for cls in type(value).__mro__ for slot in slot_names(cls))

    def get(self, name, default=None):
        return self if all(map(operator.is_, self.taken(), self.contents)) or self.renew_if_same() else object()


class _FunctionView(ContentsView):
    """Functions' code, defaults, closures and what their cells hold, by identity: replaced in place (IPython's
    autoreload and jurigged set `__code__`; `f.__defaults__ = (7.0,)`; `nonlocal` in the function that made it), which
    rebinds no name. The keyer makes one a function; a compile's are merged into one view of them all
    (`merged_functions`: a class's methods would each cost a launch a call of this one's `get`)."""

    __slots__ = ()

    def __init__(self, value):
        super().__init__(value if isinstance(value, tuple) else (value,))

    def taken(self):
        return tuple((fn, *_FUNCTION_PARTS(fn), tuple(map(_cell_contents, fn.__closure__ or ()))) for fn in self.value)

    def get(self, name, default=None):
        for fn, code, defaults, keywords, closure, cells in self.contents:
            if (fn.__code__ is not code or fn.__defaults__ is not defaults or fn.__kwdefaults__ is not keywords
                    or fn.__closure__ is not closure):
                return object()
            if cells and not all(map(operator.is_, map(_cell_contents, closure), cells)):
                return self if self.renew_if_same() else object()
        return self

    def renew_if_same(self) -> bool:
        """Whether the cells hold what they held, some items other objects of the same key (a counter bound again to
        an equal int): then the view takes them."""
        now = self.taken()
        if not all(_same_atom(a, b) for f, g in zip(now, self.contents) for a, b in zip(f[-1], g[-1])):
            return False
        self.contents = now
        return True


_FUNCTION_PARTS = operator.attrgetter("__code__", "__defaults__", "__kwdefaults__", "__closure__")


def _cell_contents(cell):
    try:
        return cell.cell_contents
    except ValueError:   # (an emptied cell: `del` of the variable)
        return ABSENT_BINDING


def merged_functions(entries) -> list:
    """Watch entries with their functions' views (`_FunctionView`, one a function) merged into one, placed first."""
    functions = {}
    rest = []
    for entry in entries:
        if isinstance(entry[0], _FunctionView):
            functions.update((id(fn), fn) for fn in entry[0].value)
        else:
            rest.append(entry)
    if not functions:
        return rest
    view = _FunctionView(tuple(functions.values()))
    return [(view, CODE, view), *rest]


class _CacheView(ContentsView):
    """An lru_cache's misses and size, changed where either went down (`cache_clear()`: the next call computes anew);
    not where they grew (a call with other arguments, by host code) or its hits (a call that found its value)."""

    __slots__ = ()

    def taken(self):
        info = self.value.cache_info()
        return info.misses, info.currsize

    def get(self, name, default=None):
        now = self.taken()
        if now[0] < self.contents[0] or now[1] < self.contents[1]:
            return object()
        self.contents = now
        return self


class NamesView(ContentsView):
    """The names a namespace binds (a module's, a class's or an object's dict; not their values, each watched as a
    binding of its own): a name bound there later may be one the code looked for (`vars(cfg).get("EXTRA", 2.0)`,
    `getattr(C, "V", 2.0)`) or hide its class's (`cfg.scale = 3.0` where the class sets `scale = 2.0`)."""

    __slots__ = ()

    def taken(self):
        return frozenset(self.value)

    def get(self, name, default=None):
        return self if self.value.keys() == self.contents else object()


class _BytesView(_EqualView):
    """A bytearray's, an array.array's or a memoryview's bytes; a memoryview larger than WATCHED_ARRAY_BYTES by its
    shape, format and strides, as a numpy array (it is often one's). A released one counts as changed (the compile
    after it names the problem)."""

    __slots__ = ()

    def taken(self):
        value = self.value
        try:
            if isinstance(value, memoryview) and value.nbytes > WATCHED_ARRAY_BYTES:
                return value.shape, value.format, value.strides
            return bytes(value)
        except ValueError:
            return object()


class _TensorView(ContentsView):
    """A torch tensor as a numpy array: a small CPU one (up to WATCHED_ARRAY_BYTES) by its bytes, through a numpy array
    over its memory (read only while the facts before are unchanged), and its version counter, which torch's in-place
    writes advance (`W[0] = 1`, `W.add_(1)`); any by where its data lives and its geometry. A larger or GPU tensor's
    values are not watched: one read for its shape and written in place (a cache, an accumulator) would compile the
    kernel again at every step."""

    __slots__ = ("array",)

    def __init__(self, value):
        self.array = _memory_of(value)
        super().__init__(value)

    def facts(self):
        value = self.value
        version = None
        if self.array is not None:
            try:
                version = value._version
            except RuntimeError:   # (an inference tensor)
                pass
        try:
            return version, value.data_ptr(), value.shape, value.stride(), value.storage_offset()
        except (RuntimeError, NotImplementedError, TypeError):   # (no storage: a meta, fake or nested tensor)
            try:
                return version, None, tuple(value.shape)
            except (RuntimeError, NotImplementedError, TypeError):
                return version, None, None

    def taken(self):
        return self.facts(), None if self.array is None else self.array.tobytes()

    def get(self, name, default=None):
        contents = self.contents
        if self.facts() != contents[0] or (self.array is not None and self.array.tobytes() != contents[1]):
            return object()
        return self


def _memory_of(tensor):
    """A numpy array over a small CPU tensor's memory (its elements as integers of their width: numpy has no bf16),
    or None."""
    torch = sys.modules["torch"]
    try:
        if tensor.device.type != "cpu" or tensor.nbytes > WATCHED_ARRAY_BYTES or tensor.is_sparse:
            return None
        plain = tensor.detach()
        if plain.dtype.is_floating_point or plain.dtype.is_complex:
            width = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64, 16: None}[plain.element_size()]
            if width is None:
                width = torch.float64   # (a complex128's halves, as doubles: its bits unchanged by the view)
                plain = torch.view_as_real(plain)
            plain = plain.view(width)
        return plain.numpy()
    except (RuntimeError, TypeError, ValueError, KeyError):
        return None


def contents_view(value) -> ContentsView:
    """The view of a list, set, deque, dict or mapping proxy, numpy array, torch tensor, bytearray, array.array,
    memoryview or object with slots."""
    if isinstance(value, (dict, types.MappingProxyType)):
        return _DictView(value)
    if isinstance(value, (list, set, collections.deque)):
        return ContentsView(value)
    if isinstance(value, (bytearray, array.array, memoryview)):
        return _BytesView(value)
    if _is_tensor(value):
        return _TensorView(value)
    numpy = sys.modules.get("numpy")
    return _ArrayView(value) if numpy is not None and isinstance(value, numpy.ndarray) else _SlotsView(value)


def environment_view(value):
    """The view a launch watches of the environment where a compile read it (`os.environ["SCALE"]`, `os.getenv`):
    os.environ's own dict of encoded names and values (as keyed, it costs a launch about 1 µs for 50 variables;
    decoded, 20 µs). None for any other value."""
    data = getattr(os.environ, "_data", None)
    if (value is os.environ or value is os.getenv) and type(data) is dict:
        return _DictView(data)
    return None


def plain_namespace(cls: type) -> bool:
    """Whether objects of a library's class hold nothing but their fields, keyed and watched as an object of the
    user's: a SimpleNamespace, an argparse.Namespace (`ARGS.scale = 7.0` after a launch kept the kernel)."""
    return cls is types.SimpleNamespace or cls is getattr(sys.modules.get("argparse"), "Namespace", None)


def _is_tensor(value) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, getattr(torch, "Tensor", ()))


# values with no key whose contents a launch watches all the same (watched by identity, a kernel kept old ones)
_WATCHED_UNKEYABLE = (bytearray, array.array, collections.deque, memoryview, types.MappingProxyType)
CONTENTS = "<contents>"   # the one name a ContentsView binds
NAMES = "<names>"         # a NamesView's
SLOTS = "<slots>"         # a _SlotsView's (an object may have contents, a dict subclass's items, and slots)
CODE = "<code>"           # a _FunctionView's
CACHE = "<cache>"         # a _CacheView's
WATCHED_ARRAY_BYTES = 4096   # a numpy array larger than this is watched by its shape, dtype and strides alone


def as_left(bindings) -> tuple:
    """Watch entries with the contents they view as a compile left them: what the compile itself changed (a helper's
    memo filled, an item a kernel appended at compile time) is no change a launch compiles anew for."""
    left = []
    for space, name, value in merged_functions(bindings):
        if isinstance(space, ContentsView):
            space = value = space.renewed()
        left.append((space, name, value))
    return tuple(left)


class Unkeyable(Exception):
    """A value has no exact key; the message says which value and why."""


def value_key(value, reads: list = None) -> str:
    """The exact key of a compile-time value (Unkeyable when there is none). `reads`, a list, gets the module-level
    bindings the key covers, as (namespace, name, value): the globals functions in it read, the attributes of the
    user's modules they name (what a launch watches in memory to see one bound to another value)."""
    try:
        return _Keyer(reads).key(value)
    except RecursionError:
        raise Unkeyable(f"a {type(value).__name__} nested too deeply to key") from None


def module_key(module, reads: list = None) -> str:
    """The exact key of a module of the user's whole, for code that may read any attribute of it (vars(cfg),
    operator.attrgetter(name)(cfg)): each attribute it binds (not its dunders; its `__getattr__`), and the modules those
    reach, whole too. `reads` as value_key's."""
    keyer = _Keyer(reads)
    keyer.names.append(None)   # (the names the code may read of each module it reaches: any)
    try:
        return keyer.key(module)
    except RecursionError:
        raise Unkeyable(f"module {module.__name__} nested too deeply to key") from None


def dependency_key(value, reads: list = None) -> str:
    """The key of a global (or module attribute) a kernel read. A DSL function or kernel is keyed by which
    one it is: its source and what it reads are dependencies of their own once it is inlined."""
    dsl = getattr(value, "__skc_function__", None)
    if dsl is None and getattr(value, "__skc_kernel__", False):
        dsl = value.fn
    if isinstance(dsl, types.FunctionType):
        return _dsl_key(dsl) + _Keyer(reads).attributes_of_dsl(value, dsl)
    return value_key(value, reads)


def _dsl_key(dsl: types.FunctionType) -> str:
    """A DSL function by its name and, of the user's, its source and defaults: the check of the functions a cached
    kernel inlined finds each by its name as bound now, which is another function where a name bound to the one
    inlined is not the one it was defined under (`double = act`, then `def act` again: the first act's text given to
    the second was served from disk as the first)."""
    name = f"dsl:{dsl.__module__}.{dsl.__qualname__}"
    if trusted_module(dsl.__module__ or ""):
        return name   # (skc's blocks: the compiler's source digest keys them)
    from .source import source_digest

    digest = source_digest(dsl)
    try:
        return f"{name}:{inlined_function_key(dsl, digest)}"
    except Unkeyable:   # (defaults with no exact key: a kernel that inlines it is never stored)
        return f"{name}:{digest}"


def inlined_function_key(fn, digest: str, reads: list = None) -> str:
    """An inlined function's dependency: its source digest and the values of its defaults (evaluated
    when the def ran, so a changed global can change them with the source unchanged). `reads` as value_key's (a
    default list changed in place: `def f(t=TABLE)`, then `TABLE.append(3.0)`)."""
    if not fn.__defaults__ and not fn.__kwdefaults__:
        return digest
    return digest + ":" + hashlib.sha256(value_key((fn.__defaults__, fn.__kwdefaults__), reads).encode()).hexdigest()


def record_defaults(deps, fn, source):
    """Record an inlined function (or a kernel) in `deps` (context.Dependencies) by its source and defaults, and the
    bindings the defaults' key covers, which a launch watches."""
    where, reads = (source.module, source.qualname), []
    try:
        deps.functions[where] = inlined_function_key(fn, source.digest, reads)
    except Unkeyable as e:
        deps.functions[where] = source.digest
        deps.unkeyable.append(f"defaults of {source.module}.{source.qualname}: {e}")
        record_bindings(deps.unkeyed, reads)
    else:
        record_bindings(deps.bindings, reads)


# -- where code comes from -----------------------------------------------------------------------
# Libraries whose functions and classes a kernel may name, keyed by name (their versions change
# only with an installation; numpy's and llvmlite's are parts of the key).
_LIBRARIES = {"skc", "builtins", "numpy", "torch", "cupy", "llvmlite", "cuda", "hip"}
# of those, names a project's own module may well have: trusted only where loaded from an installation
_COMMON_NAMES = frozenset({"cuda", "hip"})

# Standard modules that hold the process's state rather than code: what code reads from them at compile time (os.environ,
# os.getenv(), sys.argv, the clock, a random number, a file) changes from one run to the next with every source the
# same, so it has no exact key (trusted by name, they were keyed as unchanged: a kernel compiled with MY_SCALE=2 was
# served from disk to a process with MY_SCALE=5). Likewise the builtins that read the world.
_PROCESS_STATE = frozenset({"os", "posix", "nt", "posixpath", "ntpath", "genericpath", "sys", "time", "random",
                            "_random", "io", "_io", "pathlib", "datetime", "subprocess", "socket", "platform",
                            "tempfile", "glob", "shutil", "uuid", "secrets", "getpass", "locale", "fileinput",
                            "numpy.random",
                            # the libraries' modules of settings, devices, random state and ranks (trusted by name,
                            # they were keyed as unchanged: a kernel that read torch.backends.cuda.matmul.allow_tf32 as
                            # True was served from disk to a process where it is False, one that read the current
                            # device's SM count to another machine's)
                            "torch.backends", "torch.cuda", "torch.distributed", "torch.random", "torch.accelerator",
                            "torch.mps", "torch.xpu", "cupy.cuda", "cupy.random", "cuda", "hip",
                            # modules that read files by the names given them (a data file edited between two runs)
                            "linecache", "importlib.resources", "importlib.metadata", "torch.serialization",
                            "configparser", "shelve", "dbm", "sqlite3", "zipfile", "tarfile", "gzip", "bz2", "lzma",
                            "mmap", "pkgutil", "netrc",
                            # the process's contexts, clocks and machine
                            "decimal", "_decimal", "_pydecimal", "timeit", "multiprocessing", "concurrent",
                            "threading", "contextvars", "resource", "signal", "selectors", "select", "sched",
                            "skc.runtime.devices", "skc.runtime.cuda", "skc.runtime.hip"})
STATE_BUILTINS = frozenset({"open", "input"})
# functions of the libraries, in modules that hold code, that read such state
_STATE_READERS = frozenset(
    [f"torch.{name}" for name in (
        "get_default_dtype", "get_default_device", "are_deterministic_algorithms_enabled",
        "is_deterministic_algorithms_warn_only_enabled", "get_deterministic_debug_mode", "get_float32_matmul_precision",
        "is_grad_enabled", "is_inference_mode_enabled", "is_anomaly_enabled", "get_num_threads",
        "get_num_interop_threads", "is_autocast_enabled", "is_autocast_cpu_enabled", "get_autocast_dtype",
        "get_autocast_gpu_dtype", "get_autocast_cpu_dtype", "initial_seed", "seed", "get_rng_state", "rand", "randn",
        "randint", "randperm", "rand_like", "randn_like", "randint_like", "normal", "bernoulli", "multinomial",
        "poisson", "load")]
    + [f"numpy.{name}" for name in ("geterr", "geterrcall", "getbufsize", "get_printoptions",
                                    # (numpy's readers of files by name)
                                    "loadtxt", "genfromtxt", "fromfile", "load", "fromregex", "memmap")]
    + ["skc.current_device", "skc.gpu_available"])


def process_state(module: str, name: str = "") -> bool:
    """Whether module `module` is one whose attributes are the process's state (see _PROCESS_STATE), or, given a
    name, `module.name` a function that reads it (_STATE_READERS)."""
    parts = (module or "").split(".")
    return (any(".".join(parts[:n]) in _PROCESS_STATE for n in range(1, len(parts) + 1))
            or bool(name) and f"{module}.{name}" in _STATE_READERS)


def trusted_module(name: str) -> bool:
    """Whether code of the module `name` is keyed by name: skc itself and the array libraries above, and the
    standard library loaded from where it is installed. Any other module (the user's, another installed package,
    a user's file that has a standard module's name, such as `profile.py`) is keyed by content."""
    top = (name or "").split(".")[0]
    if top in _LIBRARIES and top not in _COMMON_NAMES:
        return True   # (names no project of its own takes: numpy may sit outside site-packages, as pip --target puts it)
    if top in _COMMON_NAMES:   # (a user's cuda.py or hip/ beside the script: keyed by content)
        module = sys.modules.get(top)
        # (cuda-python's `cuda` is a namespace package: no __file__, its directory in __path__)
        where = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", None) or ()), None)
        return module is not None and where is not None and _installed(top, where)
    if top not in sys.stdlib_module_names:
        return False
    module = sys.modules.get(top)
    return module is not None and _installed(top, getattr(module, "__file__", None))


def _library_defaults(module: str) -> str:
    """What a library's code keyed by name reads besides its arguments: torch's default dtype and device
    (`torch.ones(()).element_size()` is 4 or 8 as the process set it), keyed beside any of torch's functions,
    classes and modules; "" for other libraries."""
    if (module or "").split(".")[0] != "torch":
        return ""
    torch = sys.modules.get("torch")
    dtype, device = getattr(torch, "get_default_dtype", None), getattr(torch, "get_default_device", None)
    return "" if dtype is None else f"[defaults {dtype()} {device() if device is not None else ''}]"


@functools.lru_cache(maxsize=None)
def _installed(top: str, file) -> bool:
    """Whether the standard module `top`, loaded from `file`, is the installed one: from the standard library's or
    the site-packages directories (or built in)."""
    if file is None:
        return top in sys.stdlib_module_names or top == "builtins"   # built into the interpreter
    path = os.path.realpath(file)
    return any(path.startswith(place + os.sep) for place in _install_dirs())


@functools.lru_cache(maxsize=1)
def _install_dirs() -> tuple:
    paths = sysconfig.get_paths()
    places = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    try:
        places.update(site.getsitepackages())
        places.add(site.getusersitepackages())
    except AttributeError:   # (an embedded interpreter's site module may lack them)
        pass
    return tuple(sorted({os.path.realpath(p) for p in places if p}))


def _trusted(obj) -> bool:
    return trusted_module(getattr(obj, "__module__", None) or "")


def class_namespace(cls: type):
    """The dict that holds a class's attributes, which `vars(cls)` shows through a read-only proxy made anew at each
    call: a namespace a launch watches by identity, with the same dict lookups as a module's (the native call's
    too, which reads dicts alone). The proxy itself where the dict cannot be reached (an interpreter other than
    CPython, whose gc does not give what an object refers to)."""
    proxy = vars(cls)
    found = [d for d in gc.get_referents(proxy) if type(d) is dict]
    return found[0] if len(found) == 1 else proxy


def record_bindings(into: list, reads):
    """The reads that are module-level bindings of the user's code as bound now (not `vars(module)`'s "__dict__"),
    or names a namespace is read not to bind (ABSENT_BINDING: a class's that its base binds)."""
    for namespace, name, value in reads:
        if isinstance(namespace, ContentsView) or (isinstance(namespace, dict) and namespace.get(name, ABSENT_BINDING)
                                                   is value and not _trusted_namespace(namespace)):
            into.append((namespace, name, value))


def _trusted_namespace(namespace: dict) -> bool:
    """Whether a namespace is the dict of a module whose code is keyed by name (skc's, a library's). Not the dict of
    an @skc.func or a kernel, whose `__name__` functools.wraps copied there: one named `select` or `copy` was taken
    for that standard module's, and its attributes went unwatched."""
    name = namespace.get("__name__")
    module = sys.modules.get(name) if type(name) is str else None
    return module is not None and getattr(module, "__dict__", None) is namespace and trusted_module(name)


# -- keying --------------------------------------------------------------------------------------
class _Keyer:
    """Keys one value; objects met twice (shared or cyclic) are keyed once and referred to after."""

    def __init__(self, reads: list = None):
        self.seen: dict = {}   # id -> index of the object in the walk
        self.alive: list = []  # keeps walked objects alive so their ids stay unique
        self.reads = reads     # (namespace, name, value) of each module-level binding keyed, if a list
        # the attribute names the function being keyed may read (innermost last; None: any), and the index of each
        # user's module keyed with its attributes, by the module and those names: met again with the same names (a
        # module that holds itself, modules that hold each other, one reached by many ways) it is referred to as
        # `module:name@n`, so the walk is linear in the modules, not in the ways to them
        self.names: list = []
        self.modules: dict = {}
        self.inside_skc = 0    # how many of skc's own objects the walk is inside (parts)

    def key(self, value) -> str:
        kind = type(value)
        if kind in ATOMS:
            if (kind is float or kind is complex) and value != value:
                # NaNs differ in sign and payload, which repr (and ==) do not tell: copysign(1.0, x) is code
                return f"{kind.__name__}:{nan_bits(value)}"
            return f"{kind.__name__}:{value!r}"
        if kind is types.ModuleType or isinstance(value, types.ModuleType):
            # (never an `@n`: which attributes are keyed depends on the function that reaches it, not on where the
            # walk met it first)
            return self._module(value)
        if id(value) in self.seen:
            return f"@{self.seen[id(value)]}"
        self.seen[id(value)] = len(self.seen)
        self.alive.append(value)
        return self._compound(value)

    def _alone(self, value) -> str:
        """The key of a value by itself (a set's element): the objects it shares with the other elements spelled out,
        not referred to, as the elements are walked in an order that may differ from run to run. The objects walked
        before it (the set itself, what holds it) are referred to as in the walk: an element that reaches back to
        them is no endless walk. (What the element adds to the walk is taken back after it, newest first.)"""
        if type(value) in ATOMS:
            return self.key(value)
        objects, modules = len(self.seen), len(self.modules)
        try:
            return self.key(value)
        finally:
            while len(self.seen) > objects:
                self.seen.popitem()
            while len(self.modules) > modules:
                self.modules.popitem()

    def within(self, what: str, value) -> str:
        """The key of a part of a value; an Unkeyable part names the way to it."""
        try:
            return self.key(value)
        except Unkeyable as e:
            raise Unkeyable(f"{what}: {e}") from None

    def _compound(self, value) -> str:
        numpy = sys.modules.get("numpy")
        if numpy is not None and isinstance(value, (numpy.ndarray, numpy.generic, numpy.dtype)):
            if isinstance(value, numpy.ndarray):
                self._watch_contents(value)
            if type(value) is numpy.ndarray or isinstance(value, (numpy.generic, numpy.dtype)):
                return _numpy_key(numpy, value)
            # a subclass (numpy.matrix, a masked array, the user's) computes with methods of its own and may hold
            # state beside its data (a masked array's mask): its class and fields too (keyed as an array alone, one
            # was given the kernel compiled for the other)
            return f"{_numpy_key(numpy, value)}:{self.key(type(value))}{self._state(value)}"
        torch_dtype = getattr(sys.modules.get("torch"), "dtype", None)   # (a stand-in torch may have none)
        if torch_dtype is not None and type(value) is torch_dtype:
            # by its name: one object per type, which the frontend takes where an skc dtype goes (skc.cast(x, T));
            # refused, a kernel given x.dtype as a constexpr could not launch, and one reading it as a global never
            # came from the disk cache
            return f"torch.dtype:{value}"
        if isinstance(value, tuple) and isinstance(getattr(type(value), "_fields", None), tuple):
            # a namedtuple: by its class whole, as any object of the user's (typing.NamedTuple's methods and class
            # attributes, a subclass's, live there: keyed by name and fields alone, an edited method, or a class made
            # anew with another attribute, kept the code compiled for the old one)
            return (f"namedtuple:{self.key(type(value))}(" + ",".join(self.key(v) for v in value) + ")"
                    + self._state(value))
        if type(value).__name__ == "_tuplegetter" and type(value).__module__ in ("collections", "_collections"):
            # a namedtuple field's accessor: its index and doc (what its __reduce__ gives)
            return f"tuplegetter:{self.key(value.__reduce__()[1])}"
        if isinstance(value, (tuple, list)):
            if isinstance(value, list):
                self._watch_contents(value)
            items = ",".join(self.parts((None, v) for v in value))
            return f"{_name(type(value))}(" + items + ")" + self._subclass(value)
        if isinstance(value, dict):
            # in insertion order, which code sees (`list(d)[0]`), and the order the walk numbers shared objects in: items
            # sorted after the walk let `@n` name another object ({"b": x, "a": y, "c": x} keyed as {"a": y, "b": x,
            # "c": y})
            self._watch_contents(value)
            keys = self.parts((None, part) for item in value.items() for part in item)
            items = ",".join(f"{k}={v}" for k, v in zip(keys[::2], keys[1::2]))
            return f"{_name(type(value))}{{" + items + "}" + self._subclass(value)
        if isinstance(value, (set, frozenset)):
            # sorted (iteration follows hashes, which may differ from run to run), so each element is keyed on its own:
            # a reference (`@n`) into an element walked in another order would name another object
            if isinstance(value, set):
                self._watch_contents(value)
            return (f"{_name(type(value))}{{" + ",".join(sorted(self._alone(v) for v in value)) + "}"
                    + self._subclass(value))
        if isinstance(value, enum.Enum):
            # its own attributes too (`Act.LEAKY.slope = 0.1` after the class, or set by its __init__): the class's
            # key holds its value
            own = sorted((name, v) for name, v in vars(value).items() if name not in ENUM_MEMBER_STATE)
            if self.reads is not None and not self.inside_skc:   # (`Act.LEAKY.slope = 7.0` after a launch)
                self.reads.extend((vars(value), name, v) for name, v in own)
            attributes = ",".join(f"{name}={self.within(f'attribute {name}', v)}" for name, v in own)
            # (a Flag's value of bits no member names has no name: by its value, where its class is keyed by name)
            name = value.name if value.name is not None else f"({self.key(value._value_)})"
            # (and its value: the class's key leaves out its tables of members, and a member's value may be a list)
            member = f"enum:{self.key(type(value))}.{name}={self.key(value._value_)}"
            return member + (f"{{{attributes}}}" if own else "")
        if isinstance(value, type):
            return self._class(value)
        if isinstance(value, types.FunctionType):
            return self._function(value)
        if isinstance(value, (types.BuiltinFunctionType, types.BuiltinMethodType)):
            owner = getattr(value, "__self__", None)
            module = getattr(value, "__module__", None) or ""
            if process_state(module, value.__name__) or (module == "builtins" and value.__name__ in STATE_BUILTINS):
                raise Unkeyable(state_message(f"{getattr(value, '__module__', '')}.{value.__qualname__}"))
            if owner is None or isinstance(owner, types.ModuleType):
                return f"builtin:{module}.{value.__qualname__}{_library_defaults(module)}"
            return f"builtin-method:{value.__qualname__}:{self.key(owner)}"
        if isinstance(value, types.MethodType):
            return f"method:{self.key(value.__func__)}:{self.key(value.__self__)}"
        if isinstance(value, (staticmethod, classmethod)):
            return f"{type(value).__name__}:{self.key(value.__func__)}"
        if isinstance(value, property):
            return f"property:{self.key((value.fget, value.fset, value.fdel))}"
        if type(value).__name__ == "_lru_cache_wrapper" and type(value).__module__ == "functools" \
                and isinstance(getattr(value, "__wrapped__", None), types.FunctionType):
            # a function under functools.lru_cache or cache: what it caches is state, so no key, but the globals its
            # function reads and its cache's size and misses are watched (`helper.cache_clear()` after a global
            # changed, the next call computes anew: watched by identity alone, the kernel kept the first value)
            self._watch_contents(value, _CacheView(value), CACHE)
            self.key(value.__wrapped__)
            raise Unkeyable(f"{_name(value.__wrapped__)} caches its results (functools.lru_cache): they have no key")
        if isinstance(value, functools.partial):
            return f"partial:{self.key((value.func, value.args, value.keywords))}"
        if isinstance(value, types.CodeType):
            return self._code(value)
        if isinstance(value, _DESCRIPTORS):
            return f"descriptor:{type(value).__name__}:{_name(getattr(value, '__objclass__', None))}.{value.__name__}"
        if isinstance(value, types.CellType):
            try:
                return f"cell:{self.key(value.cell_contents)}"
            except ValueError:
                return "cell:empty"
        kernel_function = getattr(value, "fn", None) if getattr(value, "__skc_kernel__", False) is True else None
        if isinstance(kernel_function, types.FunctionType):
            # a kernel an object holds (a class's `self.k`): which kernel it is and the user's attributes on it, as
            # dependency_key keys one read as a global. Walked as an object, its launcher's state (its compiled code,
            # a lock: no key) was watched, and each launch, which rebinds it, compiled the kernel reading it anew
            return _dsl_key(kernel_function) + self.attributes_of_dsl(value)
        if getattr(value, "__skc_launch__", False) is True:
            # a launch object (`k[grid, block]`) an object holds: which kernel, grid, block and device (walked as an
            # object, its state, rebuilt by its launches, was watched, and each of them compiled the reader anew)
            device = getattr(value.device, "index", None)
            return f"launch:{self.key(value.kernel)}:{self.key((value.grid, value.block, device))}"
        special = getattr(value, "__skc_cache_key__", None)
        if special is not None and _trusted(type(value)):
            return f"{_name(type(value))}:{special()}"
        return self._object(value)

    def _watch_contents(self, value, view=None, name: str = CONTENTS):
        """A list, dict, set, array or slotted object keyed may be changed in place after the compile, which rebinds no
        name: its contents are watched as a binding of their own (ContentsView; `view`: another than contents_view's).
        Not inside skc's own objects, whose state is skc's (a launch object's, rebuilt by its launches)."""
        if self.reads is not None and not self.inside_skc:
            view = view or contents_view(value)
            self.reads.append((view, name, view))

    def parts(self, parts) -> list:
        """The keys of a value's parts, (what, value) pairs (`what` names the part in an Unkeyable's message, None: not
        named). Where the walk records what it reads, a part with no key does not end it: the parts after it are read
        (and watched) all the same, and the first part's Unkeyable is raised after them; not inside skc's own objects
        (`inside_skc`: a run-time value another compile left holds that compile's whole state)."""
        keys, error = [], None
        for what, value in parts:
            try:
                keys.append(self.key(value) if what is None else self.within(what, value))
            except Unkeyable as e:
                if self.reads is None or self.inside_skc:
                    raise
                error = error or e
        if error is not None:
            raise error
        return keys

    def _watch_names(self, space):
        """The names a namespace binds (a module's, a class's, an object's), which a name bound later changes: a
        binding of their own (NamesView)."""
        if self.reads is not None and not self.inside_skc:
            view = NamesView(space)
            self.reads.append((view, NAMES, view))

    def _subclass(self, value) -> str:
        """A tuple, list, dict or set subclass may carry attributes besides its items, and methods; a defaultdict its
        factory, which makes the value of a missing key (kept in C, out of its __dict__)."""
        if type(value) in (tuple, list, dict, set, frozenset):
            return ""
        factory = (f"[factory={self.key(value.default_factory)}]"
                   if isinstance(value, collections.defaultdict) else "")
        return self.key(type(value)) + factory + self._state(value)

    def _object(self, value) -> str:
        cls = type(value)
        environment = environment_view(value)
        if isinstance(value, _WATCHED_UNKEYABLE) or _is_tensor(value) or environment is not None:
            self._watch_contents(value, environment)   # (its contents watched all the same: no key, no disk cache)
        if not dataclasses.is_dataclass(cls) and not _own_class(cls) and not plain_namespace(cls):
            if self.reads is not None and cls.__module__ == "collections":
                try:   # (its fields watched all the same: a UserList's data, a ChainMap's maps; not a library's
                    # object's, a logger's, which hold the library's state)
                    self._state(value)
                except Unkeyable:
                    pass
            elif self.reads is not None and watched_by_fields(value):
                # a class of the user's built on a library's (abc.ABC, typing.Generic, torch.nn.Module): its own
                # fields watched by identity, and the names it binds, not what they hold (a torch module's tables)
                fields = value.__dict__
                self.reads.extend((fields, name, v) for name, v in fields.items())
                self._watch_names(fields)
            raise Unkeyable(f"a {_name(cls)} object has no exact key")
        try:
            kind = self.key(cls)
        except Unkeyable:
            if self.reads is not None:   # (its fields watched all the same: a class of no key, an ABC's)
                try:
                    self._state(value)
                except Unkeyable:
                    pass
            raise
        return f"obj:{kind}{self._state(value)}"

    def _state(self, value) -> str:
        fields = dict(getattr(value, "__dict__", {}))
        skc_object = (getattr(type(value), "__module__", None) or "").split(".")[0] == "skc"
        self.inside_skc += skc_object
        try:
            if self.reads is not None and type(getattr(value, "__dict__", None)) is dict:   # (`cfg.n = 8`, `C.V = 6`)
                self.reads.extend((value.__dict__, name, v) for name, v in fields.items())
                self._watch_names(value.__dict__)   # (one set later may hide its class's: `cfg.scale = 3.0`)
            slotted = False
            for cls in type(value).__mro__:
                for slot in slot_names(cls):
                    slotted = True
                    if hasattr(value, slot):
                        fields[slot] = getattr(value, slot)
            if slotted:   # (`cfg.n = 8` on an object with __slots__: no __dict__ shows it; a dict subclass's too)
                self._watch_contents(value, _SlotsView(value), SLOTS)
            named = sorted(fields.items())
            keys = self.parts((f"field {name}", v) for name, v in named)
        finally:
            self.inside_skc -= skc_object
        return "{" + ",".join(f"{name}={key}" for (name, _), key in zip(named, keys)) + "}"

    def _class(self, cls: type) -> str:
        if _trusted(cls):
            if process_state(cls.__module__ or "", cls.__name__):   # (numpy.memmap reads a file)
                raise Unkeyable(state_message(_name(cls)))
            return f"class:{_name(cls)}{_library_defaults(cls.__module__)}"
        bases = ",".join(self.key(b) for b in cls.__bases__)
        tables = ENUM_CLASS_TABLES if issubclass(cls, enum.Enum) else ()
        state = [(name, v) for name, v in sorted(vars(cls).items())
                 if name not in _NOT_STATE and name not in tables and not _made_by_dataclass(cls, v)]
        if self.reads is not None:   # (`C.V = 6` after a launch read C.V: a binding of its own, as a module's)
            space = class_namespace(cls)
            self.reads.extend((space, name, v) for name, v in state)
            # and the names its bases bind that it does not: bound in it later, they hide the base's
            inherited = {name for base in cls.__mro__[1:] if not _trusted(base) for name in vars(base)
                         if name not in _NOT_STATE and name not in space}
            self.reads.extend((space, name, ABSENT_BINDING) for name in sorted(inherited))
            self._watch_names(space)   # (a name bound later: `getattr(C, "V", 2.0)` then `C.V = 3.0`)
        body = ",".join(f"{name}={self.key(v)}" for name, v in state)
        meta = "" if type(cls) is type else f"[meta={self.key(type(cls))}]"   # (its properties are the class's)
        if tables:   # (the members' order, and which name each alias gives: `list(E)`, `E["B"]`)
            names = ",".join(f"{name}>{cls._member_map_[name]._name_}" for name in cls._member_map_)
            body += f";members[{','.join(cls._member_names_)}|{names}]"
        return f"class:{_name(cls)}({bases}){meta}{{{body}}}{self._dataclass_fields(cls)}"

    def _dataclass_fields(self, cls: type) -> str:
        """The fields and options of a dataclass: they determine the methods `dataclass` wrote."""
        if "__dataclass_fields__" not in vars(cls):
            return ""
        fields = []
        for f in vars(cls)["__dataclass_fields__"].values():
            default = "-" if f.default is dataclasses.MISSING else self.key(f.default)
            factory = "-" if f.default_factory is dataclasses.MISSING else self.key(f.default_factory)
            metadata = tuple(f.metadata.items())   # (a read-only mapping: no dict a launch would watch)
            # (compare, repr and hash decide the methods dataclass writes; metadata is the user's, read by fields())
            fields.append(f"{f.name}:{f._field_type!r}:{default}:{factory}:{f.init}:{f.kw_only!r}:{f.compare}:"
                          f"{f.repr}:{f.hash!r}:{self.within(f'metadata of field {f.name}', metadata)}")
        return f"dataclass[{vars(cls).get('__dataclass_params__')!r};{';'.join(fields)}]"

    def _function(self, fn: types.FunctionType) -> str:
        if _trusted(fn):
            if process_state(fn.__module__ or "", fn.__name__):
                raise Unkeyable(state_message(_name(fn)))
            return (f"fn:{_name(fn)}:{self.key((fn.__defaults__, fn.__kwdefaults__, fn.__closure__))}"
                    f"{_library_defaults(fn.__module__)}")
        self._watch_contents(fn, _FunctionView(fn), CODE)
        names = names_read(fn.__code__)
        dynamic = names & _DYNAMIC_READS
        if dynamic:
            self._watch_names(fn.__globals__)   # (a name bound there later may be one it reads: globals().get("N"))
            raise Unkeyable(f"{_name(fn)} reads names its code does not spell out ({', '.join(sorted(dynamic))}())")
        world = {name for name in names & STATE_BUILTINS if name not in fn.__globals__}
        if world:
            raise Unkeyable(state_message(f"{', '.join(sorted(world))}() (called by {_name(fn)})"))
        # attributes of the user's modules it reaches: those its code names, or every one where it reads them by
        # names it computes (getattr(cfg, name), vars(cfg), cfg.__dict__)
        self.names.append(None if names & _DYNAMIC_ATTRIBUTES else frozenset(names))
        try:
            extra = self.key((fn.__defaults__, fn.__kwdefaults__, fn.__closure__))
            reads = []
            for module in sorted(_imported(fn.__code__, fn.__globals__.get("__package__") or "")):
                # `import cfg` inside the function: the attributes of it its code names (loaded here if the function
                # has not run yet: it imports it whenever it runs, and the key must not depend on whether it ran)
                top = module.split(".")[0]
                if process_state(module):
                    raise Unkeyable(state_message(f"module {module} (imported by {_name(fn)})"))
                if module not in sys.modules and (top in _LIBRARIES or top in sys.stdlib_module_names):
                    continue   # (keyed by name, as loaded)
                loaded = _load(module, fn)
                if not trusted_module(module):
                    reads.append(f"import {module}:" + self._module(loaded))
            for name in sorted(names):
                if name in fn.__globals__:
                    value = fn.__globals__[name]
                    if self.reads is not None:
                        self.reads.append((fn.__globals__, name, value))
                    reads.append(f"{name}={self.within(f'global {name} of {_name(fn)}', value)}")
            if self.reads is not None:   # (a global it looks up that its module binds later: `try: return EXTRA`,
                # a `max` of the module's shadowing the builtin)
                self.reads.extend((fn.__globals__, name, ABSENT_BINDING)
                                  for name in sorted(global_loads(fn.__code__)) if name not in fn.__globals__)
        finally:
            self.names.pop()
        return (f"fn:{_name(fn)}:{self._code(fn.__code__)}:{_source_key(fn)}:{extra}:"
                f"globals[{';'.join(reads)}]{self._attributes(fn)}")

    def attributes_of_dsl(self, value, dsl=None) -> str:
        """The own attributes of a DSL function (`@skc.func`) or kernel, set on it outside its def (`act.scale = 2.0`,
        `k.scale = 2.0`, which k's own body may read) or on the def before the decorator, which code may read at
        compile time: no part of _dsl_key, which keys which function it is. "" for anything else."""
        if getattr(value, "__skc_kernel__", False) is True:
            # (its __dict__ holds its launcher's state too, under the names it gives; a kernel-like object that gives
            # none is keyed as before, by which function it is)
            launcher = getattr(value, "_launcher_state", None)
            return self._attributes(value, launcher) if isinstance(launcher, frozenset) else ""
        dsl = dsl if dsl is not None else getattr(value, "__skc_function__", None)
        if not isinstance(dsl, types.FunctionType):
            return ""
        return self._attributes(dsl) + (self._attributes(value) if value is not dsl else "")

    def _attributes(self, holder, launcher: frozenset = frozenset()) -> str:
        """A function's (or a kernel's) own attributes: its __dict__, less what functools.wraps and skc put there (a
        kernel's `launcher` state); "" where it has none. Each is a binding a launch watches in memory, as an object's
        field is."""
        space = getattr(holder, "__dict__", None)
        if type(space) is not dict:
            return ""
        own = sorted(((name, v) for name, v in space.items() if name not in _WRAPPER_STATE and name not in launcher),
                     key=lambda item: item[0])
        if not own:
            return ""
        if self.reads is not None:
            self.reads.extend((space, name, v) for name, v in own)
        return "attributes{" + ",".join(f"{name}={self.within(f'attribute {name}', v)}" for name, v in own) + "}"

    def _module(self, module) -> str:
        """A module by its name; a module of the user's reached by a function's code with the attributes that code
        may read (`consts.S`), wherever the code finds it: a global, an attribute of a class or of another module,
        an item of a dict (`MODS["a"].S`). Its `__getattr__` (PEP 562) makes the names it does not bind."""
        if process_state(module.__name__):
            raise Unkeyable(state_message(f"module {module.__name__}"))
        if not self.names or trusted_module(module.__name__):
            # (a library's module keyed by name: the names the function's code may read of it are no state of the
            # process's, `torch.get_default_dtype()`, `torch.backends.cuda.matmul.allow_tf32`)
            state = [name for name in self.names[-1] or () if process_state(module.__name__, name)
                     or process_state(f"{module.__name__}.{name}")] if self.names else ()
            if state:
                raise Unkeyable(state_message(f"{module.__name__}.{state[0]}"))
            return f"module:{module.__name__}{_library_defaults(module.__name__)}"
        names = self.names[-1]
        which = (id(module), names)
        if which in self.modules:
            return f"module:{module.__name__}@{self.modules[which]}"
        self.modules[which] = len(self.modules)
        self.alive.append(module)
        space = vars(module)
        chosen = (sorted(n for n in space if not (n.startswith("__") and n.endswith("__"))) if names is None
                  else sorted(n for n in names if n in space))
        if names is None:   # (read whole: a name bound later too)
            self._watch_names(space)
        if "__getattr__" in space:
            chosen.append("__getattr__")
        found = []
        for name in chosen:
            value = space[name]
            if self.reads is not None:
                self.reads.append((space, name, value))
            found.append(f"{name}={self.within(f'{module.__name__}.{name}', _dsl_or(value))}"
                         + self.attributes_of_dsl(value))
        return f"module:{module.__name__}[{';'.join(found)}]"

    def _code(self, code: types.CodeType) -> str:
        consts = ",".join(self.key(c) for c in code.co_consts)
        digest = hashlib.sha256(code.co_code).hexdigest()
        return (f"code:{code.co_name}:{digest}:{code.co_names}:{code.co_varnames}:{code.co_freevars}:"
                f"{code.co_cellvars}:{code.co_argcount}:{code.co_kwonlyargcount}:{code.co_flags}:[{consts}]")


def _source_key(fn: types.FunctionType) -> str:
    """A function's source text, by digest: the frontend compiles it from its source where it is a DSL function or a
    method it inlines, and the code object leaves out what Python does not run (a local variable's annotation,
    `v: skc.f64 = ...`). A lambda has none of that (its code is all of it), and its source is the lines it sits on,
    which equal lambdas on other lines do not share: none."""
    if fn.__code__.co_name == "<lambda>":
        return ""
    from .source import source_digest

    return source_digest(fn)


def slot_names(cls: type) -> list:
    """The attributes the slots a class declares hold values in (not `__dict__` and `__weakref__`): `__slots__` may be
    one string, which names one slot, and a private name is stored mangled (`__s` of class C as `_C__s`)."""
    slots = cls.__dict__.get("__slots__", ())
    names = []
    for slot in (slots,) if isinstance(slots, str) else slots:
        if slot in ("__dict__", "__weakref__"):
            continue
        owner = cls.__name__.lstrip("_")
        names.append(f"_{owner}{slot}" if slot.startswith("__") and not slot.endswith("__") and owner else slot)
    return names


def state_message(what: str) -> str:
    return (f"{what} reads the process's state (its environment, arguments, files, clock, a library's settings, the "
            "devices), which can differ in the "
            "next run with every source the same")


def nan_bits(value) -> str:
    """A float or complex holding a NaN by its bits (repr gives 'nan' for all of them)."""
    parts = (value.real, value.imag) if isinstance(value, complex) else (value,)
    return "nan:" + ":".join(struct.pack("<d", part).hex() for part in parts)


# builtins through which a function reads names its code does not spell out (importlib.import_module("cfg"): a module
# its code does not name, whose attributes the key would not hold)
_DYNAMIC_READS = {"globals", "eval", "exec", "__import__", "import_module"}

# what reads a module's attributes by names the code computes: a module of the user's such code reaches is keyed whole
_DYNAMIC_ATTRIBUTES = {"getattr", "vars", "__dict__", "dir", "__getattribute__", "attrgetter", "getattr_static",
                       "getmembers"}


def _dsl_or(value):
    """A DSL function or kernel found in a module stands for which one it is (dependency_key): its source is keyed
    where it is inlined. Anything else stands for itself."""
    dsl = getattr(value, "__skc_function__", None)
    if dsl is None and getattr(value, "__skc_kernel__", False) is True:
        dsl = value.fn
    return _dsl_key(dsl) if isinstance(dsl, types.FunctionType) else value


def _imported(code: types.CodeType, package: str) -> set:
    """The modules the code (and the code nested in it) imports, by their full names (a relative import resolved
    against `package`)."""
    found = set()
    instructions = list(dis.get_instructions(code))
    for i, instruction in enumerate(instructions):
        if instruction.opname != "IMPORT_NAME":
            continue
        level = instructions[i - 2].argval if i >= 2 and instructions[i - 2].opname == "LOAD_CONST" else 0
        name = instruction.argval
        if isinstance(level, int) and level > 0:
            try:
                name = importlib.util.resolve_name("." * level + name, package)
            except (ImportError, ValueError):
                raise Unkeyable(f"a relative import of {name!r} outside a package") from None
        found.add(name)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found |= _imported(const, package)
    return found


def _load(module: str, fn):
    """The module `module`, imported if it is not yet."""
    found = sys.modules.get(module)
    if found is not None:
        return found
    try:
        return importlib.import_module(module)
    except Exception as error:   # (whatever its import raises: the function would raise it too)
        raise Unkeyable(f"{_name(fn)} imports {module}, which cannot be imported here ({error})") from None


def global_loads(code: types.CodeType) -> set:
    """The names the code (and the code nested in it) looks up as globals, not as attributes."""
    names = {i.argval for i in dis.get_instructions(code) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= global_loads(const)
    return names


def names_read(code: types.CodeType) -> set:
    """Every global or attribute name the code (and the code nested in it) may read."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= names_read(const)
    return names


_DATACLASS_METHODS = {"__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__", "__lt__",
                      "__le__", "__gt__", "__ge__", "__getstate__", "__setstate__"}


def _made_by_dataclass(cls: type, value) -> bool:
    """A method `dataclass` generated (its code is not in the class's file): keyed by the fields instead."""
    if "__dataclass_fields__" not in vars(cls) or getattr(value, "__name__", None) not in _DATACLASS_METHODS:
        return False
    code = getattr(getattr(value, "__wrapped__", value), "__code__", None)
    module = sys.modules.get(cls.__module__)
    return code is not None and code.co_filename != getattr(module, "__file__", None)


def _own_class(cls: type) -> bool:
    """Instances of classes written in Python, in skc or by the user, are keyed by their fields; a
    class of another package (or built on one) may keep state Python cannot see."""
    if cls is object:
        return False  # a bare object() is identity only
    for base in cls.__mro__:
        if base is object:
            continue
        module = getattr(base, "__module__", "") or ""
        if module == "builtins" or (module.split(".")[0] != "skc" and trusted_module(module)):
            return False
    return True


def _numpy_key(numpy, value) -> str:
    if isinstance(value, numpy.dtype):
        if value.hasobject:
            raise Unkeyable("a numpy dtype holding Python objects has no exact key")
        if value.subdtype is not None:
            # (descr gives a subarray dtype by its size alone, '|V8' for ('f4', (2,)) as for ('u2', (4,)))
            base, shape = value.subdtype
            return f"np.dtype:{_numpy_key(numpy, base)}{shape!r}"
        # (an aligned struct's descr is that of the same fields at the same offsets unaligned, whose alignment is 1;
        # descr gives a type numpy does not define by its size alone, '<V1' for each of ml_dtypes' float8_e4m3fn,
        # float8_e4m3fnuz, float8_e5m2fnuz and int4: its scalar type names it)
        return (f"np.dtype:{value.descr!r}:{_name(value.type)}" + (":aligned" if value.isalignedstruct else ""))
    if value.dtype.hasobject:
        raise Unkeyable("a numpy array of Python objects has no exact key")
    # (by its dtype's key: a structured dtype's str is only its size, '|V8', and an ml_dtypes type's too, '<V1')
    dtype = _numpy_key(numpy, value.dtype)
    if isinstance(value, numpy.generic):
        return f"np.{dtype}:{value.tobytes().hex()}"
    data = numpy.ascontiguousarray(value).tobytes()
    return f"np.ndarray:{dtype}:{value.shape}:{hashlib.sha256(data).hexdigest()}"


def _name(obj) -> str:
    return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"
