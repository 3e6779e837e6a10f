"""`@skc.kernel`: a Python function that compiles on first launch and launches as
`kernel[grid, block](*args)`, on the current device (a GPU, or the CPU interpreter).

A launch looks up a ready launcher by a tuple of cheap facts about its arguments (their
types and dtypes); only the first launch of a new specialization compiles (or reads the
disk cache) and loads the module.
"""
from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
import inspect
import numbers
import operator
import os
import sys
import threading
import types
import warnings
import weakref

from . import frontend, ir
from .compiler import CompiledKernel, compile_kernel, dependencies_current, resolve
from .diagnostics import (CompileError, DeviceError, LaunchError, Location, SkcError, VerificationError,
                          is_library_file)
from .frontend import CONSTEXPR, POINTER, SCALAR, TENSORMAP, ParamSpec, PtrType, Specialization
from .runtime import devices, native
from .runtime.devices import Device, current_device, parse_device
from .target import TARGETS, Target, get_target, launch_dims

# The runtime's launchers, interop, hang guard and drivers are imported where a launch first needs them: they
# pull numpy and ctypes layouts into `import skc` otherwise (measured: runtime.launcher 42 ms, runtime.interop
# 75 ms, runtime.hang_guard 36 ms, against about 90 ms for all of `import skc`).

# A launch is checked before its device (and target) is known: against the smallest limit of any target.
_MAX_GRID = tuple(min(t.max_grid[axis] for t in TARGETS.values()) for axis in range(3))


def _dims(value, what: str) -> tuple:
    try:
        return launch_dims(value)
    except ValueError as e:
        empty = what == "grid" and "zero or less" in str(e)
        raise LaunchError(f"{what} {e}" + ("; a grid of no blocks is a problem with nothing to do: skip the launch "
                                           "(`if n > 0:`)" if empty else "")) from None


def _exact_ints(config) -> bool:
    """Whether a launch's brackets hold integers alone (`4`, `(4, 128)`, `((4, 2), 128)`; Python's, numpy's, any
    numbers.Integral but a bool): what the cache of bound launches keys, each the size it equals (a float, a bool or
    an array equal to an int would find that int's launch)."""
    kind = type(config)
    if kind is int:
        return True
    if kind is not tuple:
        return _integer(config)
    for part in config:
        kind = type(part)
        if kind is tuple:
            for size in part:
                if type(size) is not int and not _integer(size):
                    return False
        elif kind is not int and not _integer(part):
            return False
    return True


def _integer(value) -> bool:
    # (numpy's integers, an IntEnum's members: _dims takes each as the int it equals)
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _stream(stream) -> int:
    if type(stream) is int:
        return stream
    from .runtime.launcher import normalize_stream

    return normalize_stream(stream)


def _launch_config(config) -> tuple:
    """`k[grid, block]` gives (grid, block); `k[grid]` gives (grid,). A grid of several dimensions is a
    tuple inside: `k[(gx, gy), block]` (as in Numba: `k[4, 128]` is grid 4, block 128)."""
    if isinstance(config, tuple):
        if len(config) != 2:
            raise LaunchError(f"launch with kernel[grid, block], found {len(config)} items in the brackets")
        return config
    return (config,)


def _key_part(arg):
    kind = type(arg)
    if kind is int:
        return "i32" if -2147483648 <= arg <= 2147483647 else ("i64" if -2 ** 63 <= arg < 2 ** 63 else "u64")
    if kind is float:
        return "f32"
    if kind is bool:
        return "i1"
    dtype = getattr(arg, "dtype", None)
    if dtype is None:
        if kind is frontend.constexpr:   # a compile-time value given to an unannotated parameter
            return (kind, _constant_key(arg))
        if isinstance(arg, numbers.Integral) and not isinstance(arg, bool):
            # an int of another class (an IntEnum member, a subclass) takes the type of its value, as an int does
            return (kind, _key_part(int(arg)))
        from .runtime.interop import tensor_facts

        # an array that says its element type through __cuda_array_interface__ (or DLPack) alone: by that type
        facts = tensor_facts(arg)
        return kind if facts is None else (kind, facts.dtype)
    # a tensor map specializes on its box and swizzle too
    return (kind, arg.spec) if hasattr(kind, "__skc_tensor_map__") else (kind, dtype)


def _key_function(params, annotated, kernel_name: str = ""):
    """A function of the arguments giving the facts that select a specialization: constexpr values,
    and types and dtypes of arguments the kernel does not declare. () when every parameter is declared."""
    parts = []
    for i, (param, spec) in enumerate(zip(params, annotated)):
        if param.is_constexpr:
            parts.append(f"_constant_key(args[{i}], {param.name!r}, {kernel_name!r})")
        elif spec is not None and spec.kind == TENSORMAP:
            parts.append(f"getattr(args[{i}], 'spec', None)")
        elif spec is None:
            parts.append(f"_key_part(args[{i}])")
    if not parts:
        return None  # every parameter declared: the arguments never change the specialization
    source = "def key(args):\n    return (" + "".join(p + ", " for p in parts) + ")\n"
    namespace = {"_constant_key": _constant_key, "_key_part": _key_part}
    exec(compile(source, "<skc launch key>", "exec"), namespace)
    return namespace["key"]


_VALUE_TYPES = (int, float, bool, str, bytes, type(None))
_equal_by_value: dict = {}   # type -> whether == on it compares everything that keys it


def _constant_key(value, name: str = "?", kernel: str = ""):
    """The launch key of a constexpr argument: the value itself where == compares the whole value and
    hashing is cheap (numbers, strings, enums, frozen dataclasses of those, tuples of numbers), a
    function by identity (the key keeps it alive), anything else by its exact key (keying.py),
    computed at each launch (an array changed in place is a new value)."""
    value = value.value if isinstance(value, frontend.constexpr) else value
    kind = type(value)
    if kind is types.FunctionType:
        # (its closure's cells may be bound to other values since: what they hold now, by identity; and its code and
        # defaults, which may be set anew: `f.__defaults__ = (2.0,)`)
        return (kind, value, _Identities(tuple(frontend.keying.CellView(c).get("", _MISSING) for c in value.__closure__))
                if value.__closure__ else None, _Identities((value.__code__, value.__defaults__, value.__kwdefaults__)))
    plain = _plain_key(value)
    if plain is not None:
        return (kind, plain)
    return (kind, constexpr_key(value, name, kernel))


class _Identities:
    """Objects compared by identity, kept alive (so their ids stay theirs): what a function's closure holds."""

    __slots__ = ("objects", "_hash")

    def __init__(self, objects: tuple):
        self.objects = objects
        self._hash = hash(tuple(map(id, objects)))   # (once: a launch key holding it is hashed every launch)

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        return (isinstance(other, _Identities) and len(other.objects) == len(self.objects)
                and all(a is b for a, b in zip(self.objects, other.objects)))


def _plain_key(value):
    """A value made of numbers, strings, enums, skc types, tuples and frozen dataclasses of those, as a hashable
    key that tells apart what == does not but the kernel may (-0.0 and 0.0; 1, 1.0 and True inside a tuple or a
    field); None for anything else."""
    kind = type(value)
    if kind is float:   # (a NaN by its bits: hex() gives 'nan' whatever its sign and payload)
        return value.hex() if value == value else frontend.keying.nan_bits(value)
    if kind in _VALUE_TYPES or kind in (frontend.DType, frontend.PtrType):
        return value
    if isinstance(value, enum.Enum):
        # (a member has each of what enum sets, so one of as many entries has nothing else: a len() a launch)
        own, state = value.__dict__, frontend.keying.ENUM_MEMBER_STATE
        if len(own) != len(state) and any(name not in state for name in own):
            return None   # (attributes of the member's own, which its exact key holds: keyed whole)
        return (value, _class_state(kind))
    if kind is tuple:
        parts = value
    elif isinstance(value, tuple) and isinstance(getattr(kind, "_fields", None), tuple):
        if getattr(value, "__dict__", None):
            return None   # (a subclass's instance with attributes of its own: keyed whole)
        parts = [*value, _class_state(kind)]   # a namedtuple: its items, and what its class binds (its methods)
    elif _compares_whole_value(kind):
        fields = dataclasses.fields(kind)
        if len(getattr(value, "__dict__", ())) > len(fields):
            return None   # (state besides its fields, set with object.__setattr__: keyed whole)
        parts = [getattr(value, f.name) for f in fields] + [_class_state(kind)]
    else:
        return None
    keys = []
    for part in parts:
        if type(part) is _Identities:
            keys.append(part)
            continue
        key = _plain_key(part)
        if key is None:
            return None
        keys.append((type(part), key))
    return tuple(keys)


_user_classes: dict = {}   # type -> [(namespace, its size, the names watched in it)] of the user's classes it reads
# what enum and dataclass write into a class: the same for every class of the same definition (keyed by its source)
_MACHINERY = frozenset({"_member_names_", "_member_map_", "_value2member_map_", "_unhashable_values_", "_member_type_",
                        "_value_repr_", "_new_member_", "_use_args_", "_generate_next_value_", "_missing_",
                        "_hashable_values_", "_add_alias_", "_add_value_alias_", "_singles_mask_", "_all_bits_",
                        "_flag_mask_", "_inverted_", "_boundary_", "_numeric_repr_", "_iter_member_",
                        "_iter_member_by_value_", "_iter_member_by_def_"})


def _class_state(kind):
    """What the class of an enum member or a frozen dataclass instance binds now (its attributes, methods and
    properties, its bases' and its metaclass's, dunders and what enum and dataclass wrote aside), by identity: a
    kernel reads them at compile time (`c.SCALE`, `c.scaled`), and the exact key (keying.py) holds them, so the
    launch key must tell a class attribute bound to another value (`Cfg.SCALE = 3.0` after a launch ran the kernel
    compiled for 2.0). Classes of skc and the libraries, keyed by name, are left out. A few dict lookups a launch."""
    spaces = _user_classes.get(kind)
    if spaces is None or any(len(space) != size for space, size, _ in spaces):
        classes = [c for c in (*kind.__mro__, *type(kind).__mro__) if c is not object and c is not type
                   and not frontend.trusted_module(getattr(c, "__module__", "") or "")]
        spaces = _user_classes[kind] = [
            (vars(c), len(vars(c)), tuple(n for n in vars(c) if n not in _MACHINERY
                                          and not (n.startswith("__") and n.endswith("__")))) for c in classes]
    values = [space.get(name) for space, _, names in spaces for name in names]
    last = _class_states.get(kind)
    if last is not None and len(last.objects) == len(values) and all(map(operator.is_, values, last.objects)):
        return last   # (the same object as the key holds: the key's compare takes it by identity, not __eq__)
    state = _class_states[kind] = _Identities(tuple(values))
    return state


_class_states: dict = {}   # type -> the _Identities _class_state gave last


def _compares_whole_value(kind) -> bool:
    by_value = _equal_by_value.get(kind)
    if by_value is None:
        params = getattr(kind, "__dataclass_params__", None)
        fields = dataclasses.fields(kind) if params is not None else ()
        by_value = _equal_by_value[kind] = bool(
            params is not None and params.frozen and params.eq
            and all(f.compare for f in fields) and "__eq__" not in _own_methods(kind)
            # (a slot besides the fields, a subclass's, holds state that == does not compare: keyed whole)
            and {s for c in kind.__mro__ for s in frontend.keying.slot_names(c)} <= {f.name for f in fields})
    return by_value


def _own_methods(kind) -> set:
    """Methods a dataclass's author wrote (dataclass writes __eq__ only where the class has none)."""
    return {name for name, v in vars(kind).items()
            if getattr(getattr(v, "__code__", None), "co_filename", "<")[:1] != "<"}


def constexpr_key(value, name: str, kernel: str = ""):
    """The exact key of a constexpr argument, or a LaunchError naming the parameter."""
    try:
        return frontend.value_key(value)
    except frontend.Unkeyable as e:
        where = f"{kernel}: " if kernel else ""
        raise LaunchError(f"{where}constexpr argument '{name}' cannot be keyed exactly for the compile cache ({e}); "
                          f"constexpr values may be {frontend.KEYABLE}") from None


class Kernel:
    """A GPU kernel written in Python (made by `@skc.kernel`)."""

    __skc_kernel__ = True

    def __init__(self, fn, block=None, cluster=None, debug=None):
        from .runtime.hang_guard import debug_enabled, hang_timeout_ns

        fn = frontend.definition(fn, "kernel")   # (the def under functools.wraps wrappers that pass the call through)
        functools.update_wrapper(self, fn)
        copied = dict(vars(self))   # (the def's own attributes among them: the user's)
        self.fn = fn
        # debug (or SKC_DEBUG=1): GPU mbarrier waits time out and raise DeadlockError (runtime/hang_guard.py)
        self.debug = debug_enabled(debug)
        self.options = {"debug": True, "hang_timeout_ns": hang_timeout_ns()} if self.debug else {}
        self.params = frontend.kernel_parameters(fn)
        _check_parameter_names(fn, self.params)
        self.block = _dims(block, "block") if block is not None else None
        if self.block is not None:
            frontend.kernel.check_block(fn, self.block)
        self.cluster = _dims(cluster, "cluster") if cluster is not None else (1, 1, 1)
        self._annotated = [frontend.annotated_spec(p) for p in self.params]
        self._constexpr = tuple(p.is_constexpr for p in self.params)
        self._runtime_positions = tuple(i for i, c in enumerate(self._constexpr) if not c)
        self._all_runtime = len(self._runtime_positions) == len(self.params)
        self._signature = inspect.signature(fn)
        # keyword-only parameters are bound by name alone: such a kernel's calls always go through _arguments
        self._keyword_only = any(p.kind is p.KEYWORD_ONLY for p in self._signature.parameters.values())
        self._nparams = -1 if self._keyword_only else len(self.params)
        self.key = _key_function(self.params, self._annotated, fn.__name__)
        self._launches: dict = {}
        self._compiled: dict = {}
        self._loaded: dict = {}
        self._bound: dict = {}
        # the user's module-level bindings the compiled specializations read, as (namespace, name, value) when read:
        # a launch checks them (rebound()), which sends every launch object made (weakly held) back to its slow path
        self._watch: tuple = ()
        self._recompiles = 0   # how many times rebound() dropped the specializations (a global changed value)
        self._launch_objects = weakref.WeakSet()
        self._launch_objects_lock = threading.Lock()   # (a launch object made on one thread while another forgets)
        # Held while a specialization is compiled and loaded: threads that launch a new one at once (a threaded
        # server's first requests) compile it once, the others wait and take it. Re-entrant: a finalizer the
        # garbage collector runs inside the compile may launch this kernel on the same thread.
        self._compiling = threading.RLock()
        _KERNELS.add(self)
        # the names the launcher keeps its own state under, those set here; any other attribute but functools.wraps'
        # is the user's (`k.scale = 2.0`, or one the def had before the decorator), which code may read at compile
        # time (k's own body too), keyed with the kernel (keying.py)
        self._launcher_state = frozenset({name for name, value in vars(self).items()
                                          if name not in copied or copied[name] is not value} | {"_launcher_state"})

    def __repr__(self):
        return f"<skc.kernel {self.fn.__qualname__}>"

    def __reduce__(self):
        """A kernel pickles as a function does (a spawned worker, a DataLoader's): one bound at the top level of its
        module by its name, by reference (the worker imports the module and finds it); any other by its function
        and decorator arguments, which pickle refuses for a function local to another (cloudpickle takes it by
        value). Never what it compiled or loaded: compiled code, modules and launchers are the process's own."""
        found = sys.modules.get(self.__module__)
        for part in self.__qualname__.split("."):
            found = getattr(found, part, None)
        if found is self:
            return self.__qualname__
        return _rebuilt_kernel, (self.fn, self.block, self.cluster, self.debug)

    def __call__(self, *args, **kwargs):
        raise SkcError(f"launch {self.fn.__name__} with {self.fn.__name__}[grid, block](...)",)

    # -- launching ----------------------------------------------------------------------
    def __getitem__(self, config):
        # the bound launches are kept by the brackets' contents as they are given; a hit is taken only for integers
        # (the identical object, or one checked now), as the first launch is: 4.0 == 4 and True == 1 are the same
        # key, and would otherwise find the launch of the grid (4,) or (1,) that _dims refuses them as
        try:
            found = self._bound.get(config)
        except TypeError:   # a grid or block that is no tuple of ints (an array): bound each time, or refused by name
            return self._bind(_launch_config(config), None)
        # (k[grid, block] of two ints tested inline: the call to _exact_ints costs as much as the test)
        if found is not None and (found[0] is config or type(config) is tuple and len(config) == 2
                                  and type(config[0]) is int and type(config[1]) is int or _exact_ints(config)):
            return found[1]
        bound = self._bind(_launch_config(config), None)
        if len(self._bound) < 256 and _exact_ints(config):
            self._bound[config] = (config, bound)
        return bound

    def _bind(self, config, device) -> "Launch":
        grid = _dims(config[0], "grid")
        for size, limit, axis in zip(grid, _MAX_GRID, "xyz"):
            if size > limit:
                raise LaunchError(f"grid {config[0]!r} exceeds the limit of {limit} blocks along {axis}")
        if len(config) > 1:
            block = _dims(config[1], "block")
        elif self.block is not None:
            block = self.block
        else:
            raise LaunchError(f"{self.fn.__name__}[grid] needs a block size: {self.fn.__name__}[grid, block](...) "
                              "or @skc.kernel(block=...)")
        launch = (_PlainLaunch if self.key is None and self._all_runtime else Launch)(self, grid, block, device)
        with self._launch_objects_lock:
            self._launch_objects.add(launch)
        return launch

    @property
    def interpret(self) -> "DeviceView":
        """`kernel.interpret[grid, block](...)` runs in the CPU interpreter whatever the current device."""
        return DeviceView(self, Device("interpreter"))

    def on(self, device) -> "DeviceView":
        """`kernel.on("cuda:1")[grid, block](...)` launches on that device."""
        return DeviceView(self, parse_device(device))

    def _arguments(self, args, kwargs) -> tuple:
        if kwargs or self._keyword_only:
            try:
                bound = self._signature.bind(*args, **kwargs)
            except TypeError as e:
                raise LaunchError(f"{self.fn.__name__}: {e}") from None
            bound.apply_defaults()
            return tuple(bound.arguments.values())
        if len(args) != len(self.params):
            missing = [p for p in self.params[len(args):] if p.default is not inspect.Parameter.empty]
            if len(args) < len(self.params) and len(args) + len(missing) == len(self.params):
                return tuple(args) + tuple(p.default for p in missing)
            names = ", ".join(p.name for p in self.params)
            raise LaunchError(f"{self.fn.__name__} takes {len(self.params)} arguments ({names}), "
                              f"{len(args)} given")
        return args

    def launcher_for(self, device: Device, block: tuple, key: tuple, args):
        """The launcher of this specialization (compiled and loaded the first time)."""
        # the target is part of the key: the interpreter's (SKC_INTERPRETER_TARGET) may change between launches
        launch_key = (device, device.target.name, block, key)
        found = self._launches.get(launch_key)
        if found is None:
            with _compile_lock(self._compiling):
                found = self._launches.get(launch_key)   # (made by another thread while this one waited)
                if found is None:
                    found = self._prepare(device, block, args)
                    self._launches[launch_key] = found
        return found

    def runtime_arguments(self, args):
        return args if self._all_runtime else tuple([args[i] for i in self._runtime_positions])

    def _prepare(self, device: Device, block: tuple, args):
        target = device.target
        total = block[0] * block[1] * block[2]
        if total > target.max_threads_per_block:
            raise LaunchError(f"block {block} has {total} threads; {target.name} allows at most "
                              f"{target.max_threads_per_block} per block")
        if any(n > most for n, most in zip(block, target.max_block)):
            raise LaunchError(f"block {block} is larger than {target.name} allows along x, y, z: "
                              f"{target.max_block}; lay the threads out along another dimension")
        spec = self.specialize(args, block)
        # unannotated parameters given skc.constexpr(...) values: the launch passes them with the run-time arguments
        keep = tuple(j for j, i in enumerate(self._runtime_positions) if spec.params[i].kind != CONSTEXPR)
        # several argument keys (a torch and a numpy float32, say) can select one specialization:
        # its module is loaded and its launcher made once per device. Its key is taken once, before the compile: the
        # kernel's compile-time code may change a constexpr it is given (`cfg.append(0)`), and the key taken after
        # it gave a later launch of the value as changed the kernel compiled from the value before, a wrong answer
        specialization = (device, target.name, spec.key())
        loaded = self._loaded.get(specialization)
        if loaded is None:
            loaded = self._load(device, spec, block)
            self._loaded[specialization] = loaded
        return loaded if len(keep) == len(self._runtime_positions) else _WithoutConstants(loaded, keep)

    def _load(self, device: Device, spec: Specialization, block: tuple):
        from .runtime.launcher import CudaLauncher, InterpreterLauncher

        target = device.target
        compiled = self._compile(spec, target, device.is_interpreter)
        if device.is_interpreter:
            return InterpreterLauncher(compiled.module.functions[0], compiled.params, target, block)
        if device.kind == "cuda":
            from .runtime import cuda

            image = compiled.binary if compiled.binary is not None else compiled.stages["ptx"].encode()
            module = cuda.Module(image, compiled.name, device.index, compiled.shared_bytes)
            launcher = CudaLauncher(module, compiled.params, compiled.shared_bytes, device, compiled.name, block)
            if "hang_sites" in compiled.metadata:   # debug mode: synchronize and report a timed-out wait
                from .runtime.hang_guard import HangGuardLauncher

                return HangGuardLauncher(launcher, module, compiled.metadata["hang_sites"], compiled.name)
            return launcher
        from .runtime.hip_launcher import HipLauncher

        return HipLauncher(compiled, device)

    # -- specializing and compiling -----------------------------------------------------
    def specialize(self, args, block, cluster=None) -> Specialization:
        """The specialization these arguments select (errors for arguments the kernel cannot take)."""
        params = []
        for param, annotated, arg in zip(self.params, self._annotated, args):
            params.append(self._param_spec(param, annotated, arg))
        return Specialization(tuple(params), tuple(block), tuple(cluster or self.cluster))

    def _param_spec(self, param, annotated, arg) -> ParamSpec:
        from .runtime.interop import check_torch_readable, is_torch_tensor_type, scalar_type, tensor_facts

        name = f"{self.fn.__name__}: argument '{param.name}'"
        if isinstance(arg, frontend.constexpr) and annotated is not None and not param.is_constexpr:
            # (the launch key of a declared parameter never looks at its argument: a compile-time one would stick)
            raise LaunchError(f"{name} is declared {param.annotation!r}, a run-time value; pass it as it is, or "
                              "annotate the parameter skc.constexpr for a compile-time value")
        if param.is_constexpr or isinstance(arg, frontend.constexpr):
            value = arg.value if isinstance(arg, frontend.constexpr) else arg
            constexpr_key(value, param.name, self.fn.__name__)  # an error now, not a wrong kernel later
            return ParamSpec(param.name, CONSTEXPR, value=value)
        if isinstance(arg, PtrType):
            return ParamSpec(param.name, POINTER, arg)
        if isinstance(arg, frontend.DType):
            return ParamSpec(param.name, SCALAR, arg.ir)
        if isinstance(arg, ir.TensorMapType):  # the abstract type of a tensor-map argument (compile)
            return ParamSpec(param.name, TENSORMAP, arg)
        spec = getattr(arg, "spec", None)
        if isinstance(spec, ir.TensorMapType):
            return ParamSpec(param.name, TENSORMAP, spec)
        if annotated is not None and annotated.kind == TENSORMAP:
            raise LaunchError(f"{name} must be an skc.TensorMap, found {type(arg).__name__}")
        if is_torch_tensor_type(type(arg)):   # (named here: tensor_facts says "a tensor")
            check_torch_readable(arg, name)
        facts = tensor_facts(arg, name)
        if annotated is not None and annotated.kind == POINTER:
            if facts is None:
                raise LaunchError(f"{name} must be a tensor or array of {annotated.type.elem}, "
                                  f"found {type(arg).__name__}")
            if facts.dtype is not annotated.type.elem:
                raise LaunchError(f"{name} has dtype {facts.dtype}, the kernel declares {annotated.type!r}")
            return annotated
        if annotated is not None and annotated.kind == SCALAR:
            from .runtime.launcher import check_scalar

            check_scalar(self.fn.__name__, annotated, arg)   # (the launcher's own check: every launch takes the same)
            return annotated
        if facts is not None:
            return ParamSpec(param.name, POINTER, PtrType(facts.dtype))
        scalar = scalar_type(arg)
        if scalar is not None:
            return ParamSpec(param.name, SCALAR, scalar)
        if isinstance(arg, int):
            raise LaunchError(f"{name} = {arg} does not fit in any integer type a kernel takes "
                              f"({-2 ** 63}..{2 ** 64 - 1})")
        raise LaunchError(f"{name} has type {type(arg).__name__}; a kernel takes tensors or arrays, numbers, "
                          "or skc.constexpr(value) for compile-time values")

    def _compile(self, spec: Specialization, target: Target, for_interpreter: bool) -> CompiledKernel:
        key = (spec.key(), target, for_interpreter)   # (the whole target: one of the same name may differ)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = compile_kernel(self.fn, spec, target, for_interpreter=for_interpreter,
                                      options=None if for_interpreter else self.options)
            self._compiled[key] = compiled
            watched = {_watch_key(space, name): i for i, (space, name, _) in enumerate(self._watch)}
            watch = list(self._watch)
            for w in _watched(compiled):
                at = watched.get(_watch_key(w[0], w[1]))
                if at is None:
                    watched[_watch_key(w[0], w[1])] = len(watch)
                    watch.append(w)
                elif isinstance(w[0], frontend.keying.ContentsView):
                    watch[at] = w   # (contents as this compile left them: it may have changed them, a memo filled)
            self._watch = tuple(watch)
        return compiled

    def check_watched(self):
        """What a launch checks first (inline, in Launch.__call__): a global the compiled specializations read bound to
        another object since. The ways to a specialization that are no launch (compile(), ready()) check it here."""
        for space, name, value in self._watch:
            if space.get(name, _MISSING) is not value:
                self.rebound()
                return

    def rebound(self) -> bool:
        """A launch found a module-level global or function of the user's that a compiled specialization read bound
        to another object (its identity check, in Launch.__call__). Whether that is another value (`N = 8` after a
        launch compiled with `N = 4`): then every specialization in memory is dropped, so that the next launch
        compiles (or loads from the disk cache) against the new value, and it is True. Bound again to an equal
        value (another int object of the same value), the kernels are kept and the new objects watched."""
        # (the values taken before they are checked: one bound again meanwhile, by another thread, is checked later)
        now = tuple(_bound_now(space, name) for space, name, _ in self._watch)
        compiled = list(self._compiled.values())
        if all(dependencies_current(c.metadata.get("deps")) and _same_objects(c) for c in compiled):
            self._watch = now
            return False
        self._recompiles += 1
        if self._recompiles == RECOMPILE_WARNING:
            _warn_recompiles(self.fn.__name__, self._recompiles, compiled)
        self._launches.clear()
        self._compiled.clear()
        self._loaded.clear()
        self._watch = ()
        with self._launch_objects_lock:
            for launch in list(self._launch_objects):
                launch.forget()
        return True

    def compile(self, *args, target=None, block=None, cluster=None, **kwargs) -> CompiledKernel:
        """Compile without launching, for inspection. Arguments may be real ones, types (skc.Ptr[skc.f32],
        skc.i32, skc.ir.TensorMapType(...) for a tensor map) or left out where the kernel's annotations and
        defaults say enough."""
        self.check_watched()
        target = get_target(target) if target is not None else _default_target()
        block = _dims(block, "block") if block is not None else (self.block or (128, 1, 1))
        values = self._abstract_arguments(args, kwargs)
        spec = self.specialize(values, block, _dims(cluster, "cluster") if cluster is not None else None)
        with _compile_lock(self._compiling):
            try:
                return self._compile(spec, target, for_interpreter=False)
            except CompileError as error:
                raise _as_users(error)

    def unknown_parameters(self, given=()) -> list:
        """The parameters `compile()` must be given (their names), beyond those named in `given`: those neither
        annotated with a type nor given a default, with what each needs ("a type such as skc.Ptr[skc.f32]",
        "its compile-time value")."""
        return [(param.name, self._what_to_give(i)) for i, param in enumerate(self.params)
                if param.name not in given and param.default is inspect.Parameter.empty
                and (self._annotated[i] is None or self._annotated[i].kind not in (POINTER, SCALAR))]

    def _what_to_give(self, i: int) -> str:
        if self.params[i].is_constexpr:
            return "its value: a skc.constexpr parameter without a default is known only from its argument"
        return "a value or a type such as skc.Ptr[skc.f32]; or annotate the parameter"

    def _abstract_arguments(self, args, kwargs):
        if len(args) > len(self.params):   # (as a launch refuses them: they were dropped)
            raise LaunchError(f"{self.fn.__name__} takes {len(self.params)} arguments "
                              f"({', '.join(p.name for p in self.params)}), {len(args)} given")
        values = list(args) + [None] * (len(self.params) - len(args))
        for i, param in enumerate(self.params):
            if param.name in kwargs:
                if i < len(args):   # (Python's rule: the keyword took the place of the positional one)
                    raise LaunchError(f"{self.fn.__name__}: argument '{param.name}' is given twice, by position "
                                      "and by name: give it once")
                values[i] = kwargs.pop(param.name)
            elif i >= len(args):
                annotated = self._annotated[i]
                if param.default is not inspect.Parameter.empty:
                    values[i] = param.default
                elif annotated is not None and annotated.kind == POINTER:
                    values[i] = annotated.type
                elif annotated is not None and annotated.kind == SCALAR:
                    values[i] = frontend.DTYPES[annotated.type.name]
                else:
                    raise LaunchError(f"{self.fn.__name__}: give argument '{param.name}' "
                                      f"({self._what_to_give(i)})")
        if kwargs:
            raise LaunchError(f"{self.fn.__name__}: unknown arguments {', '.join(kwargs)}")
        return values


_MISSING = frontend.keying.ABSENT_BINDING   # (a name a module does not bind; a builtin read there)
_CHANGED = object()   # the value of a watched binding not known to be the one compiled: never the one bound


def _watched(compiled) -> tuple:
    """(namespace, name, value) of each module-level global and function of the user's code (not skc's, the
    standard library's or the array libraries', whose code the cache keys by name) that a compile read, directly or
    through a function keyed by its content (a helper run at compile time reads globals of its own): what a launch
    checks to tell that one was bound to another value since. A compile in this process recorded the objects it
    read; for a kernel from the disk cache they are the ones bound now, if they are still the ones it was made for."""
    meta = compiled.metadata
    if "bindings" in meta:
        found = [w for w in meta["bindings"] + meta.get("unkeyed_bindings", ()) if _watchable(w[2])]
        return tuple(found)
    deps = meta.get("deps")
    found = []
    for part in ("globals", "functions", "helpers"):
        for module, name, key in (deps or {}).get(part, ()):
            if frontend.trusted_module(module) or module not in sys.modules:
                continue
            space = vars(sys.modules[module])
            if part == "globals" and key == frontend.keying.ABSENT:
                found.append((space, name, _MISSING if name not in space else _CHANGED))
                continue
            reads = []
            if "." not in name and name in space:
                reads.append((space, name, space[name]))
            if part == "functions" and resolve(module, name) is not None:   # (what its defaults hold)
                try:
                    frontend.inlined_function_key(resolve(module, name), "", reads)
                except frontend.Unkeyable:
                    pass
            if part != "functions":   # the bindings its key covers (the globals of a helper run at compile time)
                value = space.get(name, _MISSING) if part == "globals" else resolve(module, name)
                try:
                    frontend.dependency_key(value, reads) if part == "globals" else frontend.value_key(value, reads)
                except frontend.Unkeyable:
                    pass
            found_here = []
            frontend.keying.record_bindings(found_here, reads)
            found += [w for w in found_here if _watchable(w[2])]
    found = frontend.keying.merged_functions(found)
    if found and not dependencies_current(deps):
        # one was bound to another value after the compile read it (by another thread): the values taken now are
        # not the compiled ones, so none is kept, and the next launch finds them changed and compiles again
        found = [(space, name, _CHANGED) for space, name, _ in found]
    return tuple(found)


def _watch_key(space, name) -> tuple:
    """Which binding a watch entry is: a namespace's name, a closure cell or a value's contents (each compile views
    them anew)."""
    if isinstance(space, frontend.keying.CellView):
        return id(space.cell), name
    if isinstance(space, frontend.keying.AttributeView):
        return "attribute", id(space.obj), name
    if name == frontend.keying.CODE:   # (the functions a compile read, in one view: the same ones, the same entry)
        return tuple(map(id, space.value)), name
    return (id(space.value) if isinstance(space, frontend.keying.ContentsView) else id(space)), name


# what a native call's watch reads besides dicts
_VIEWS = (frontend.keying.CellView, frontend.keying.ContentsView, frontend.keying.AttributeView)


def _bound_now(space, name) -> tuple:
    """A watch entry as bound now: a value's contents viewed anew (the view is what its entry holds)."""
    if isinstance(space, frontend.keying.ContentsView):
        space = space.renewed()
        return space, name, space
    return space, name, space.get(name, _MISSING)


def _watchable(value) -> bool:
    """Whether a launch watches a binding: not one of a library's modules (`np`, `skc`: bound to another module, it
    would be no library's); one of the user's is (`import cfg_b as cfg` after a launch read `cfg.X` kept the kernel
    compiled for cfg_a's X), as a kernel is (another `@skc.kernel def other`, in a notebook's cell run again)."""
    return not isinstance(value, types.ModuleType) or not frontend.trusted_module(value.__name__)


def _same_objects(compiled) -> bool:
    """Whether the globals a compile read that have no exact key (only their identity tells them apart) are still
    bound to the objects it read."""
    return all(space.get(name, _MISSING) is value for space, name, value in compiled.metadata.get("unkeyed_bindings", ()))


RECOMPILE_WARNING = 8   # rebound() warns once, at this many drops, of a kernel compiled anew for changed globals


def _warn_recompiles(kernel: str, count: int, compiled: list):
    """The one warning of a kernel that globals changing value made compile anew `count` times (each a correct
    recompile, and a slow one: a launch that changes a global every time compiles every time), naming the globals
    that changed now. A value that changes between launches is an argument's: a constexpr one is compiled once per
    value and kept, where a changed global drops every specialization compiled before."""
    names = []
    for entry in compiled:
        for module, name, key in (entry.metadata.get("deps") or {}).get("globals", ()):
            space = vars(sys.modules[module]) if module in sys.modules else {}
            try:
                same = name in space and frontend.dependency_key(space[name]) == key
            except frontend.Unkeyable:
                same = False
            if not same and name not in names:
                names.append(name)
    which = (f"the global{'s' if len(names) > 1 else ''} {', '.join(names)}" if names else
             "values it reads at compile time (a global, or a list, dict, array, tensor or object a global holds, "
             "changed in place)")
    warnings.warn(f"skc: kernel {kernel} has compiled again {count} times because {which} changed value between "
                  "launches (each change compiles it anew and drops what it had compiled); pass a value that changes "
                  "as an argument: a run-time one, or an skc.constexpr parameter (compiled once per value and kept)",
                  stacklevel=_user_stacklevel())


def _user_stacklevel() -> int:
    """The stacklevel of warnings.warn, called by the caller of this function, at the innermost frame outside skc:
    the user's launch (through a launch call, ready() or compile())."""
    frame, level = sys._getframe(2), 2
    while frame is not None and is_library_file(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    return level


def _default_target() -> Target:
    device = current_device()
    return device.target


def _as_users(error: CompileError) -> CompileError:
    """A compile error as a launch or compile() raises it to the user: its message already points at the kernel's
    line (and the inlined calls that led there), so the frames of skc's compiler it came through are dropped, and
    its traceback ends at the user's call and skc's entry point. An IR verifier's error, a fault of skc's own, keeps
    them for its report."""
    if isinstance(error, VerificationError):
        return error
    return error.with_traceback(None)


class Launch:
    """`kernel[grid, block]`: call it with the kernel's arguments (and stream=...) to launch. Without stream=,
    the launch goes to the current stream of the framework whose tensors it is given (torch, cupy), else to
    the default stream, so it orders with the caller's work and CUDA graphs capture it.

    The call is the per-launch hot path: it remembers the launcher it used last and reuses it while
    the arguments select the same specialization on the same device (_PlainLaunch: where no argument selects
    one, a native call that checks the rest)."""

    __skc_launch__ = True   # (keyed as which launch it is where a value read at compile time holds it)

    __slots__ = ("kernel", "grid", "block", "device", "_chosen", "_nparams", "_keyed", "_runtime", "_fast",
                 "__weakref__")

    def __init__(self, kernel: Kernel, grid, block, device):
        self.kernel, self.grid, self.block, self.device = kernel, grid, block, device
        # (device, key, launcher) of the specialization chosen last, one tuple: threads share a launch object (kept by
        # its brackets), and a call reads it once, so another thread's choice between its check and its launch
        # replaces it whole (the launcher of another constexpr value with this call's arguments: a wrong answer)
        self._chosen = _UNCHOSEN
        self._fast = None
        # read once here rather than through the kernel at every call
        self._nparams, self._keyed = kernel._nparams, kernel.key
        self._runtime = None if kernel._all_runtime else kernel._runtime_positions

    def _call(self, *args, stream=None, **kwargs):
        if kwargs or len(args) != self._nparams:
            args = self.kernel._arguments(args, kwargs)
        selected = devices.selected()
        device = self.device or selected or devices.default_device()
        kernel = self.kernel
        for space, name, value in kernel._watch:   # a global the kernel read bound to another value: compile again
            if space.get(name, _MISSING) is not value:
                kernel.rebound()
                break
        chosen = self._chosen
        if device is not chosen[0] or (self._keyed is not None and self._keyed(args) != chosen[1]):
            launch = self._select(device, args, selected)
        else:
            launch = chosen[2]
            if self._fast is not None:   # (a plain launch: its state made again where what it names changed)
                self._renew(chosen, selected)
        # stream None: the launcher uses the current stream of the arguments' framework (torch, cupy), else 0
        if stream is not None and type(stream) is not int:
            stream = _stream(stream)
        runtime = self._runtime
        launch(args if runtime is None else tuple([args[i] for i in runtime]), self.grid, stream)

    __call__ = _call

    def _select(self, device, args, selected):
        """Compile or find the launcher these arguments select on `device` (the call's slow path), and give its
        launch; `selected`: the device selection `device` was read from."""
        key = self._keyed(args) if self._keyed is not None else ()
        try:
            launch = self.kernel.launcher_for(device, self.block, key, args).launch
        except CompileError as error:
            raise _as_users(error)
        chosen = self._chosen = (device, key, launch)
        self._keep_state(chosen, self._ready_state(launch, selected))
        return launch

    def _keep_state(self, chosen, fast):
        """Keep the ready state `fast`, made for the choice `chosen`, unless another thread's forget() or choice
        replaced it meanwhile (the state would name a launcher from before: the native call would keep it)."""
        self._fast = fast
        if self._chosen is not chosen:   # (forget() drops the choice first, then the state)
            self._fast = None

    def _ready_state(self, launch, selected):
        """What a native call may launch with (_PlainLaunch): none here."""

    def __reduce__(self):
        # (`k[grid, block]` handed to a worker: made again there from its kernel, which pickles as a function does)
        return _rebuilt_launch, (self.kernel, self.grid, self.block, self.device)

    def forget(self):
        """The kernel's specializations were dropped: the next call selects again. (A call on another thread that
        has already read the choice before calls its launcher next.)"""
        self._chosen = _UNCHOSEN
        self._fast = None

    def ready(self, *args) -> "ReadyLaunch":
        """This launch's specialization for these arguments, compiled and loaded, as a function of the run-time
        arguments alone (constexpr ones left out): `ready(runtime_args, stream=None)`. For host code that
        launches one specialization many times and has checked what selects it (the GEMM's plans)."""
        kernel = self.kernel
        if len(args) != kernel._nparams:
            args = kernel._arguments(args, {})
        device = self.device or current_device()
        kernel.check_watched()
        key = kernel.key(args) if kernel.key is not None else ()
        try:
            launcher = kernel.launcher_for(device, self.block, key, args)
        except CompileError as error:
            raise _as_users(error)
        if isinstance(launcher, _WithoutConstants):   # the ready launch takes the run-time arguments alone
            launcher = launcher.launcher
        return ReadyLaunch(launcher, self.grid)


class _PlainLaunch(Launch):
    """The launch of a kernel whose arguments never select its specialization (every parameter declared, each a
    run-time one). Where the kernel's globals are a module's, it keeps a ready state (`_fast`), which its call, the
    native one where the host can make it (runtime.native.launch_method), checks and launches with, with no
    Python run on the way; the Python call (`_call`) does it all in full and makes the state again."""

    __slots__ = ()

    def _ready_state(self, launch, selected):
        """What the native call launches with while nothing it checks changed: (launch, grid, kernel, watched
        globals, device selection, argument count); None where this launch cannot have one."""
        kernel, watch = self.kernel, self.kernel._watch
        if any(type(w[0]) is not dict and not isinstance(w[0], _VIEWS) for w in watch) or not _native_call():
            return None
        return launch, self.grid, kernel, watch, self._selection(selected), self._nparams

    def _selection(self, selected):
        """What the state names as the device selection: `selected`, or _ANYWHERE for a device of the launch's own."""
        return _ANYWHERE if self.device is not None else selected

    def _renew(self, chosen, selected):
        """The state made again, for the choice `chosen` the call found, where the globals the kernel watches or the
        device selection are others than the ones it names (the native call would hand every call to the Python
        one)."""
        fast = self._fast
        if fast is None or self._chosen is not chosen:   # (forgotten or chosen anew meanwhile, by another thread)
            return
        if fast[3] is not self.kernel._watch or fast[4] is not self._selection(selected):
            self._keep_state(chosen, self._ready_state(chosen[2], selected))


def _rebuilt_kernel(fn, block, cluster, debug) -> Kernel:
    """A kernel unpickled from its function and decorator arguments (Kernel.__reduce__)."""
    return Kernel(fn, block=block, cluster=cluster, debug=debug)


def _rebuilt_launch(kernel: Kernel, grid, block, device) -> Launch:
    """A launch object unpickled (Launch.__reduce__)."""
    return kernel._bind((grid, block), device)


@contextlib.contextmanager
def _compile_lock(lock):
    """A kernel's compile lock held through the block; inside another kernel's compile on this thread (a helper run
    at compile time that compiles or launches this kernel), only if it is free now: that other kernel's lock is held
    here, and the thread holding this one may wait for it (two kernels whose compiles compile each other, on two
    threads at once: each waited for the other's for ever). Not held, the specialization may be compiled twice."""
    held = lock.acquire(blocking=not frontend.context.active())
    try:
        yield
    finally:
        if held:
            lock.release()


_KERNELS = weakref.WeakSet()   # every kernel made (weakly): a forked child renews their locks


def _after_fork_in_child():
    """A child forked while a thread of its parent held a kernel's lock (compiling a specialization) has the lock held
    by a thread it lacks: its own first launch of that kernel would wait for ever. Each kernel's locks are new there
    (what that thread was compiling, the child compiles again)."""
    for kernel in list(_KERNELS):
        kernel._compiling = threading.RLock()
        kernel._launch_objects_lock = threading.Lock()


if hasattr(os, "register_at_fork"):   # (POSIX only)
    os.register_at_fork(after_in_child=_after_fork_in_child)


_UNCHOSEN = (None, None, None)   # a launch object's choice before its first call (and once forgotten)
_ANYWHERE = object()       # a ready state's selection where the launch's device is its own (kernel.on(...))
_NATIVE_CALL = [None]      # whether _PlainLaunch's call is the native one (None: not tried yet)


def _native_call() -> bool:
    """Whether _PlainLaunch's call is the native one: made and put in place at the first launch that can use it (never
    at import, which it would slow down); False where the host cannot make it."""
    made = _NATIVE_CALL[0]
    if made is None:
        made = False
        if native.supported():
            try:
                _PlainLaunch.__call__ = native.launch_method(_PlainLaunch, Launch._call,
                                                             (devices, devices.SELECTION_ATTRIBUTE), _ANYWHERE, _MISSING)
                made = True
            except DeviceError:
                pass
        _NATIVE_CALL[0] = made
    return made


class _WithoutConstants:
    """The launcher of a specialization in which unannotated parameters took skc.constexpr(...) values: it leaves
    those out of the run-time arguments a launch passes (the kernel has no parameters for them)."""

    __slots__ = ("launcher", "keep")

    def __init__(self, launcher, keep: tuple):
        self.launcher, self.keep = launcher, keep

    def launch(self, args, grid, stream=None):
        self.launcher.launch(tuple([args[i] for i in self.keep]), grid, stream)

    def bind(self, args, grid):
        return self.launcher.bind(tuple([args[i] for i in self.keep]), grid)


class ReadyLaunch:
    """A loaded specialization and its grid: `ready(runtime_args, stream=None)` launches with no lookup (the
    launcher still checks every argument's type, dtype and range); `ready.bind(runtime_args)` checks them once and
    gives a bound launch of those arguments, `bound(stream=None)` (CUDA devices)."""

    __slots__ = ("launcher", "launch", "grid")

    def __init__(self, launcher, grid):
        self.launcher, self.launch, self.grid = launcher, launcher.launch, grid

    def __call__(self, args, stream=None):
        self.launch(args, self.grid, stream if stream is None or type(stream) is int else _stream(stream))

    def bind(self, args):
        """These run-time arguments checked and packed once: a function `bound(stream=None)` that only picks the
        stream (by default the arguments' framework's current one, its reading function chosen now) and launches.
        It keeps none of the arguments alive: a tensor map's bytes are copied, a tensor's address taken, so the
        caller keeps the memory it names alive while it launches it."""
        bind = getattr(self.launcher, "bind", None)
        if bind is None:
            raise LaunchError(f"a bound launch packs CUDA kernel parameters; {type(self.launcher).__name__} launches "
                              "take their arguments at each call (call the ready launch instead)")
        return bind(args, self.grid)


class DeviceView:
    """A kernel bound to one device: `view[grid, block](...)`."""

    def __init__(self, kernel: Kernel, device: Device):
        self.kernel, self.device = kernel, device

    def __getitem__(self, config):
        return self.kernel._bind(_launch_config(config), self.device)


_LAUNCH_KEYWORDS = ("stream",)   # what a launch call takes by name besides the kernel's parameters (Launch._call)


def _check_parameter_names(fn, params):
    """A CompileError for a parameter named as a launch's own keyword: `k[g, b](x, stream=5)` gives the launch its
    stream, never the parameter (a default of its own would run in its place, silently)."""
    for param in params:
        if param.name in _LAUNCH_KEYWORDS:
            code = fn.__code__
            raise CompileError(f"kernel {fn.__qualname__} has a parameter named '{param.name}', the keyword a launch "
                               f"takes its CUDA {param.name} by ({fn.__name__}[grid, block](..., {param.name}=s))",
                               Location(code.co_filename, code.co_firstlineno, 0, fn.__qualname__),
                               hint=f"rename the parameter ('{param.name}_', say)")


def kernel(fn=None, *, block=None, cluster=None, debug=None):
    """Decorate a kernel: `@skc.kernel` or `@skc.kernel(block=256)`. `debug=True` (default: SKC_DEBUG=1) bounds
    every mbarrier wait on the GPU: a wait that never completes raises skc.DeadlockError at its line."""
    if fn is None:
        return lambda f: kernel(f, block=block, cluster=cluster, debug=debug)
    if not callable(fn):   # (@skc.kernel(128), as if the block came first)
        raise SkcError(f"skc.kernel decorates a function written with def, found {type(fn).__name__} {fn!r}; the "
                       "block size is a keyword: @skc.kernel(block=128)")
    return Kernel(fn, block=block, cluster=cluster, debug=debug)
