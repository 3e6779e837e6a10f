"""`@skc.kernel`: a Python function that compiles on first launch and launches as
`kernel[grid, block](*args)`, on the current device (a GPU, or the CPU interpreter).

A launch looks up a ready launcher by a tuple of cheap facts about its arguments (their
types and dtypes); only the first launch of a new specialization compiles (or reads the
disk cache) and loads the module.
"""
from __future__ import annotations

import functools
import inspect

from . import frontend, ir
from .compiler import CompiledKernel, compile_kernel
from .diagnostics import LaunchError, SkcError
from .frontend import CONSTEXPR, POINTER, SCALAR, TENSORMAP, ParamSpec, PtrType, Specialization
from .runtime.devices import Device, _default_device, _selected, current_device, parse_device
from .target import Target, get_target

_MAX_GRID = (2 ** 31 - 1, 65535, 65535)


def _dims(value, what: str) -> tuple:
    if isinstance(value, int):
        dims = (value, 1, 1)
    else:
        try:
            dims = tuple(int(v) for v in value)
        except TypeError:
            raise LaunchError(f"{what} must be an int or a tuple of up to 3 ints, found {value!r}") from None
        if not 1 <= len(dims) <= 3:
            raise LaunchError(f"{what} must have 1 to 3 dimensions, found {value!r}")
        dims = dims + (1,) * (3 - len(dims))
    if any(d <= 0 for d in dims):
        raise LaunchError(f"{what} {value!r} has a dimension of zero or less; every dimension must be at least 1")
    return dims


def _stream(stream) -> int:
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
        return kind
    # a tensor map specializes on its box and swizzle too
    return (kind, arg.spec) if hasattr(kind, "__skc_tensor_map__") else (kind, dtype)


def _key_function(params, annotated):
    """A function of the arguments giving the facts that select a specialization: constexpr values,
    and types and dtypes of arguments the kernel does not declare. () when every parameter is declared."""
    parts = []
    for i, (param, spec) in enumerate(zip(params, annotated)):
        if param.is_constexpr:
            parts.append(f"_constant_key(args[{i}])")
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


def _constant_key(value):
    value = value.value if isinstance(value, frontend.constexpr) else value
    try:
        hash(value)
        return (type(value), value)
    except TypeError:
        return ("unhashable", id(value))


class Kernel:
    """A GPU kernel written in Python (made by `@skc.kernel`)."""

    __skc_kernel__ = True

    def __init__(self, fn, block=None, cluster=None):
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.params = frontend.kernel_parameters(fn)
        self.block = _dims(block, "block") if block is not None else None
        if self.block is not None:
            frontend.kernel.check_block(fn, self.block)
        self.cluster = _dims(cluster, "cluster") if cluster is not None else (1, 1, 1)
        self._annotated = [frontend.annotated_spec(p) for p in self.params]
        self._constexpr = tuple(p.is_constexpr for p in self.params)
        self._runtime_positions = tuple(i for i, c in enumerate(self._constexpr) if not c)
        self._all_runtime = len(self._runtime_positions) == len(self.params)
        self._nparams = len(self.params)
        self.key = _key_function(self.params, self._annotated)
        self._signature = inspect.signature(fn)
        self._launches: dict = {}
        self._compiled: dict = {}
        self._loaded: dict = {}
        self._bound: dict = {}

    def __repr__(self):
        return f"<skc.kernel {self.fn.__qualname__}>"

    def __call__(self, *args, **kwargs):
        raise SkcError(f"launch {self.fn.__name__} with {self.fn.__name__}[grid, block](...)",)

    # -- launching ----------------------------------------------------------------------
    def __getitem__(self, config):
        config = _launch_config(config)
        key = (config, None)
        bound = self._bound.get(key)
        if bound is None:
            bound = self._bind(config, None)
            if len(self._bound) < 256:
                self._bound[key] = bound
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
        return Launch(self, grid, block, device)

    @property
    def interpret(self) -> "DeviceView":
        """`kernel.interpret[grid, block](...)` runs in the CPU interpreter whatever the current device."""
        return DeviceView(self, Device("interpreter"))

    def on(self, device) -> "DeviceView":
        """`kernel.on("cuda:1")[grid, block](...)` launches on that device."""
        return DeviceView(self, parse_device(device))

    def _arguments(self, args, kwargs) -> tuple:
        if kwargs:
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
            found = self._prepare(device, block, args)
            self._launches[launch_key] = found
        return found

    def runtime_arguments(self, args):
        return args if self._all_runtime else [args[i] for i in self._runtime_positions]

    def _prepare(self, device: Device, block: tuple, args):
        target = device.target
        total = block[0] * block[1] * block[2]
        if total > target.max_threads_per_block:
            raise LaunchError(f"block {block} has {total} threads; {target.name} allows at most "
                              f"{target.max_threads_per_block} per block")
        spec = self.specialize(args, block)
        # several argument keys (a torch and a numpy float32, say) can select one specialization:
        # its module is loaded and its launcher made once per device
        loaded = self._loaded.get((device, target.name, spec.key()))
        if loaded is None:
            loaded = self._load(device, spec, block)
            self._loaded[(device, target.name, spec.key())] = loaded
        return loaded

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
            return CudaLauncher(module, compiled.params, compiled.shared_bytes, device, compiled.name, block)
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
        from .runtime.interop import scalar_type, tensor_facts

        name = f"{self.fn.__name__}: argument '{param.name}'"
        if param.is_constexpr:
            return ParamSpec(param.name, CONSTEXPR, value=arg.value if isinstance(arg, frontend.constexpr) else arg)
        if isinstance(arg, frontend.constexpr):
            return ParamSpec(param.name, CONSTEXPR, value=arg.value)
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
        facts = tensor_facts(arg)
        if annotated is not None and annotated.kind == POINTER:
            if facts is None:
                raise LaunchError(f"{name} must be a tensor or array of {annotated.type.elem}, "
                                  f"found {type(arg).__name__}")
            if facts.dtype is not annotated.type.elem:
                raise LaunchError(f"{name} has dtype {facts.dtype}, the kernel declares {annotated.type!r}")
            return annotated
        if annotated is not None and annotated.kind == SCALAR:
            if scalar_type(arg) is None:
                raise LaunchError(f"{name} must be a number ({annotated.type}), found {type(arg).__name__}")
            return annotated
        if facts is not None:
            return ParamSpec(param.name, POINTER, PtrType(facts.dtype))
        scalar = scalar_type(arg)
        if scalar is not None:
            return ParamSpec(param.name, SCALAR, scalar)
        raise LaunchError(f"{name} has type {type(arg).__name__}; a kernel takes tensors or arrays, numbers, "
                          "or skc.constexpr(value) for compile-time values")

    def _compile(self, spec: Specialization, target: Target, for_interpreter: bool) -> CompiledKernel:
        key = (spec.key(), target.name, for_interpreter)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = compile_kernel(self.fn, spec, target, for_interpreter=for_interpreter)
            self._compiled[key] = compiled
        return compiled

    def compile(self, *args, target=None, block=None, cluster=None, **kwargs) -> CompiledKernel:
        """Compile without launching, for inspection. Arguments may be real ones, types (skc.Ptr[skc.f32],
        skc.i32, skc.ir.TensorMapType(...) for a tensor map) or left out where the kernel's annotations and
        defaults say enough."""
        target = get_target(target) if target is not None else _default_target()
        block = _dims(block, "block") if block is not None else (self.block or (128, 1, 1))
        values = self._abstract_arguments(args, kwargs)
        spec = self.specialize(values, block, _dims(cluster, "cluster") if cluster is not None else None)
        return self._compile(spec, target, for_interpreter=False)

    def _abstract_arguments(self, args, kwargs):
        values = list(args) + [None] * (len(self.params) - len(args))
        for i, param in enumerate(self.params):
            if param.name in kwargs:
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
                    raise LaunchError(f"{self.fn.__name__}: give argument '{param.name}' (a value or a type such as "
                                      "skc.Ptr[skc.f32]), or annotate the parameter")
        if kwargs:
            raise LaunchError(f"{self.fn.__name__}: unknown arguments {', '.join(kwargs)}")
        return values


def _default_target() -> Target:
    device = current_device()
    return device.target


class Launch:
    """`kernel[grid, block]`: call it with the kernel's arguments (and stream=...) to launch.

    The call is the per-launch hot path: it remembers the launcher it used last and reuses it while
    the arguments select the same specialization on the same device."""

    __slots__ = ("kernel", "grid", "block", "device", "_key", "_device", "_launch")

    def __init__(self, kernel: Kernel, grid, block, device):
        self.kernel, self.grid, self.block, self.device = kernel, grid, block, device
        self._key = self._device = self._launch = None

    def __call__(self, *args, stream=None, **kwargs):
        kernel = self.kernel
        if kwargs or len(args) != kernel._nparams:
            args = kernel._arguments(args, kwargs)
        device = self.device or _selected[0] or _default_device()  # current_device(), inlined: hot path
        key = kernel.key(args) if kernel.key is not None else ()
        if key != self._key or device is not self._device:
            self._launch = kernel.launcher_for(device, self.block, key, args).launch
            self._key, self._device = key, device
        if kernel._all_runtime:
            self._launch(args, self.grid, 0 if stream is None else _stream(stream))
        else:
            self._launch(kernel.runtime_arguments(args), self.grid, 0 if stream is None else _stream(stream))


class DeviceView:
    """A kernel bound to one device: `view[grid, block](...)`."""

    def __init__(self, kernel: Kernel, device: Device):
        self.kernel, self.device = kernel, device

    def __getitem__(self, config):
        return self.kernel._bind(_launch_config(config), self.device)


def kernel(fn=None, *, block=None, cluster=None):
    """Decorate a kernel: `@skc.kernel` or `@skc.kernel(block=256)`."""
    if fn is None:
        return lambda f: Kernel(f, block=block, cluster=cluster)
    return Kernel(fn, block=block, cluster=cluster)
