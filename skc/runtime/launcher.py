"""Launchers: turn a call's arguments into a kernel launch.

The GPU launchers share a generated argument path (DeviceLauncher). The CUDA launcher keeps one
ctypes slot per parameter and a ready array of pointers to them, so a launch only writes each
argument into its slot and calls cuLaunchKernel; its `bind` copies one checked set of arguments
into an image of their own, for a bound launch that only picks the stream and calls the driver.
The HIP launcher (hip_launcher.py) writes them straight into the kernel-argument image. The
interpreter launcher maps host arrays into the interpreter's memory and runs the tile IR. Every
check that can fail happens before anything is launched.
"""
from __future__ import annotations

import ctypes
import functools
import operator
import numbers
import threading

import numpy as np

from .. import ir
from ..diagnostics import DeviceError, LaunchError
from . import cuda, dtypes
from .arrays import DeviceArray
from .devices import Device
from .interop import CAI_TYPES, check_torch_readable, is_torch_tensor_type, tensor_facts
from .signature import POINTER, SCALAR, TENSORMAP, LaunchParam  # noqa: F401  (LaunchParam re-exported)
from .tma import EncodedTensorMap


CTYPES = {"i1": ctypes.c_uint8, "i8": ctypes.c_int8, "i16": ctypes.c_int16, "i32": ctypes.c_int32,
          "i64": ctypes.c_int64, "u8": ctypes.c_uint8, "u16": ctypes.c_uint16, "u32": ctypes.c_uint32,
          "u64": ctypes.c_uint64, "f16": ctypes.c_uint16, "bf16": ctypes.c_uint16, "f32": ctypes.c_float,
          "f64": ctypes.c_double, "f8e4m3": ctypes.c_uint8, "f8e5m2": ctypes.c_uint8,
          "f8e4m3fnuz": ctypes.c_uint8, "f8e5m2fnuz": ctypes.c_uint8}


def normalize_stream(stream) -> int:
    """A CUstream handle from None, an int, a torch or cupy stream, or a `__cuda_stream__` object."""
    if stream is None:
        return 0
    if type(stream) is int:   # (the common handle first: the ABC test below costs more)
        return stream
    if isinstance(stream, numbers.Integral) and not isinstance(stream, bool):
        check_stream(int(stream))
        return int(stream)
    if not isinstance(stream, type):   # (a class, `torch.cuda.Stream` without its parentheses, is no stream)
        for attribute in ("cuda_stream", "ptr", "handle"):
            value = getattr(stream, attribute, None)
            if isinstance(value, int):
                return value
        protocol = getattr(stream, "__cuda_stream__", None)
        if protocol is not None:
            return int(protocol()[1])
        if getattr(getattr(stream, "device", None), "type", None) == "cuda":   # (torch.Stream: torch.accelerator's)
            handle = getattr(stream, "native_handle", None)
            if isinstance(handle, int):
                return handle
    raise LaunchError(f"cannot use {stream!r} as a CUDA stream; pass a torch/cupy stream object or a stream handle "
                      "(an int)")


def check_stream(stream):
    """A LaunchError for a stream handle that no CUstream is (a negative int, or one past 64 bits), which the driver
    call's conversion refused with an OverflowError (checked there, not before every launch)."""
    if isinstance(stream, int) and not 0 <= stream < 2 ** 64:
        raise LaunchError(f"stream {stream} is no CUDA stream handle (an int from 0 to 2**64 - 1); pass a torch/cupy "
                          "stream object, its handle, or 0 for the default stream") from None


# -- the stream a launch without stream= goes to ---------------------------------------------------------
_STREAM_OF: dict = {}   # argument type -> function(arg, device index) giving its framework's current stream, or None
_TORCH_STREAM: list = []


def _torch_stream(arg, index: int) -> int:
    if not _TORCH_STREAM:  # looked up once: torch.cuda.current_stream(i).cuda_stream costs microseconds
        import torch

        raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)
        _TORCH_STREAM.append(raw if raw is not None else lambda i: torch.cuda.current_stream(i).cuda_stream)
    return _TORCH_STREAM[0](index)


def forget_torch_stream():
    """Look torch's current-stream function up again at the next launch (after torch itself was swapped)."""
    _TORCH_STREAM.clear()


def _cupy_stream(arg, index: int) -> int:
    import cupy

    return cupy.cuda.get_current_stream().ptr


_TENSOR_MAP_STREAM = object()   # a tensor map's stream source: that of the tensor it was made of (_first_source)


def _stream_source(kind: type):
    found = _STREAM_OF.get(kind, ...)
    if found is ...:
        root = kind.__module__.split(".")[0]
        if is_torch_tensor_type(kind):
            found = _torch_stream
        elif root == "cupy" and hasattr(kind, "__cuda_array_interface__"):
            found = _cupy_stream
        elif hasattr(kind, "__skc_tensor_map__"):
            found = _TENSOR_MAP_STREAM
        else:
            found = None
        _STREAM_OF[kind] = found
    return found


def _first_source(args) -> tuple:
    """(the current-stream function of the first argument whose framework has one, that argument: a tensor map's
    own tensor), or (None, None)."""
    for arg in args:
        source = _STREAM_OF.get(type(arg), ...)
        if source is ...:
            source = _stream_source(type(arg))
        if source is _TENSOR_MAP_STREAM:  # a tensor map follows the framework of the tensor it was made of
            arg = getattr(arg, "tensor", None)
            source = _stream_source(type(arg))
        if source is not None:
            return source, arg
    return None, None


def current_stream(args, index: int) -> int:
    """The stream a launch without stream= goes to: the current stream of the framework (torch, cupy) whose tensors
    are among the arguments (as Triton does), so launches order with the caller's work and CUDA graphs capture
    them; else the default stream (0)."""
    source, arg = _first_source(args)
    return 0 if source is None else source(arg, index)


def stream_reader(args, index: int, order=None):
    """A function of no arguments giving the stream `current_stream(args, index)` gives for arguments of these types
    (those at the positions `order`, if given), chosen once: what a bound launch calls at each launch without
    stream=. It keeps none of `args` (torch's function is read through _torch_stream, which follows
    forget_torch_stream)."""
    source, _ = _first_source(args if order is None else [args[i] for i in order])
    return _default_stream if source is None else functools.partial(source, None, index)


def _default_stream() -> int:
    return 0


class DeviceLauncher:
    """Launches one loaded GPU kernel. `launch(args, grid, stream)` is a function generated for this kernel's
    parameters (grid a tuple of three ints; stream an int, or None: the arguments' framework's current stream, see
    current_stream): for each argument one type test on the fast path (a torch tensor or an skc array of the right
    dtype on the right device) and a read of its value, then the writes into the slots and the vendor's launch
    call. Anything else takes a slow path that checks it fully and explains what is wrong. A vendor's launcher
    makes the slots (`self.slots`, one ctypes object per parameter) and the launch call.

    One launch at a time (the launcher's lock) writes the slots and calls the driver, and nothing of the
    arguments' runs under the lock: every argument is first read into a plain value (an int, a float, a tensor
    map's bytes or address) and the stream found, which runs the arguments' own code (a tensor's data_ptr, a
    __cuda_array_interface__ property, an __index__) and the framework's. That code may launch this kernel again
    on this thread (a finalizer the garbage collector runs, a tensor subclass's method): its launch must neither
    wait for a lock its own thread holds (a hang) nor write its arguments over slots this launch has written (a
    wrong answer). A driver call that runs Python (cuda.bindings' fallback, HIP's binding) may run such a
    finalizer with the lock held: the lock is re-entrant, and a launch that finds the slots in use launches from
    an image of its own (`_nested_launch`: CudaLauncher binds one; a launcher that cannot refuses it by name)."""

    memory = "cuda"  # the memory kind (interop.TensorFacts.device[0]) of this vendor's device arrays

    def _generate(self, call: str, failed: str, namespace: dict):
        """The launch function: read and check the arguments into values `v{i}`, find the stream, then under the
        lock write the values into the slots and run `call` (an expression of `gx, gy, gz`, `stream` and
        `namespace`'s names) into `r`; after the lock, `failed` (an expression of `r`) says whether the driver
        failed. Also `self.fill(args, slots)`: the same reads and writes into the given slots, without the launch
        (a bound launch's own image, see CudaLauncher.bind)."""
        params = self.params
        namespace.update({"_CAI_TYPES": CAI_TYPES, "_fail": self._fail, "_bad": self._bad_argument, "_Tensor": _torch_tensor_type(),
                          "_DeviceArray": DeviceArray, "_device": self.device, "_index": self.device.index,
                          "_memmove": ctypes.memmove})
        # where a launch without stream= looks for the caller's stream: pointer arguments, then tensor maps
        self.stream_order = [i for i, p in enumerate(params) if p.kind == POINTER] + \
            [i for i, p in enumerate(params) if p.kind == TENSORMAP]
        sources = "".join(f"a{i}, " for i in self.stream_order)
        for i, slot in enumerate(self.slots):
            namespace[f"_s{i}"] = slot

        def reads(filling: bool) -> tuple:
            """(lines that read every argument into its value, lines that write the values into the slots)."""
            names = [f"a{i}" for i in range(len(params))]
            body, writes = [f"{', '.join(names)}, = args"] if names else ["pass"], []
            for i, p in enumerate(params):
                read, write = self._argument_lines(i, p, namespace, filling)
                body += read
                writes += write
            return ["    try:", *("        " + line for line in body),
                    "    except (TypeError, ValueError, OverflowError, AttributeError) as error:",
                    "        _bad(args, error)"], writes

        # the first argument current_stream would ask, when it is a torch tensor on the fast path, says the stream
        # is torch's current one (`src`): no walk over the arguments
        first = self.stream_order[0] if self.stream_order and params[self.stream_order[0]].kind == POINTER else None
        launch_reads, writes = reads(False)
        fill_reads, fill_writes = reads(True)
        lines = ["def launch(args, grid, stream):",
                 *([] if first is None else ["    src = None"]), *launch_reads,
                 "    if stream is None:",
                 f"        stream = _current_stream(({sources}), _index)" if first is None else
                 f"        stream = _torch_stream(src, _index) if src is not None else "
                 f"_current_stream(({sources}), _index)",
                 "    gx, gy, gz = grid",
                 # one launch at a time writes the slots and calls the driver (between two bytecodes another
                 # thread's launch could otherwise write its arguments over this one's); only ctypes' stores of
                 # plain values and the driver call run in here, none of the arguments' code (see the class).
                 # The lock is re-entrant: a launch made on the thread that holds it (by a finalizer that runs in
                 # the driver call's Python) finds `_busy` set and launches an image of its own (waiting for the
                 # lock would wait for ever; writing the slots would change the launch in progress); one made
                 # before `_busy` is set or after it is cleared writes no slot the outer launch still needs
                 "    _lock.acquire()",
                 "    if _busy[0]:",
                 "        _lock.release()",
                 "        return _nested(args, grid, stream)",
                 "    _busy[0] = True",
                 "    try:", *("        " + line for line in writes), f"        r = {call}",
                 # (a stream handle past 64 bits or negative: the driver call's conversion refuses it, by name here)
                 "    except OverflowError:", "        _check_stream(stream)", "        raise",
                 "    finally:", "        _busy[0] = False", "        _lock.release()",
                 f"    if {failed}:", "        _fail(r, grid)",
                 # fill(args, slots): the same reads, writing slots of the caller's (a bound launch's own image),
                 # never these
                 "def fill(args, slots):", *fill_reads,
                 *([f"    {', '.join(f'_s{i}' for i in range(len(params)))}, = slots"] if params else []),
                 *("    " + line for line in fill_writes)]
        namespace["_current_stream"], namespace["_torch_stream"] = current_stream, _torch_stream
        namespace["_check_stream"] = check_stream
        namespace["_lock"], namespace["_busy"] = threading.RLock(), [False]
        namespace["_nested"] = self._nested_launch
        exec(compile("\n".join(lines), f"<skc launcher for {self.kernel_name}>", "exec"), namespace)
        self.fill = namespace["fill"]
        return namespace["launch"]

    def __call__(self, args, grid, stream=None):
        return self.launch(args, grid, stream)

    def _nested_launch(self, args, grid, stream):
        """A launch made on the thread that is inside this launcher's lock (a finalizer that the driver call's Python
        ran). A vendor launcher that can bind launches them from an image of their own (CudaLauncher)."""
        raise LaunchError(f"{self.kernel_name} was launched from inside its own launch on this thread (a finalizer "
                          "run during the driver call): launch it after the outer launch returns")

    def _argument_lines(self, i: int, p, namespace, filling: bool = False) -> tuple:
        """(the lines that check argument i and read it into `v{i}`, the lines that write `v{i}` into its slot
        `_s{i}`). `filling`: for fill(args, slots), which keeps no stream source and leaves a tensor map's bytes
        to its caller, checking only that it is one."""
        a, v = f"a{i}", f"v{i}"
        if p.kind == POINTER:
            namespace[f"_torch_dtype{i}"] = _torch_dtype(p.type)
            namespace[f"_dtype{i}"] = p.type
            namespace[f"_slow{i}"] = self._pointer_checker(p)
            namespace[f"_typestrs{i}"] = _typestrs(p.type)
            first = not filling and self.stream_order and self.stream_order[0] == i
            # data_ptr() and the interface's data give ints (torch's and the protocol's contracts); _slow gives one;
            # a nested tensor (its data pointer is its packed buffer's) and a lazily negated view (its memory holds
            # the values un-negated) go to _slow, which refuses them
            return [f"t = type({a})",
                    f"if t is _Tensor and {a}.dtype is _torch_dtype{i} and not {a}.is_nested and not {a}.is_neg() "
                    f"and {a}.get_device() == _index:",
                    f"    {v} = {a}.data_ptr()",
                    *([f"    src = {a}"] if first else []),
                    f"elif t is _DeviceArray and {a}.dtype is _dtype{i} and {a}.device is _device:",
                    f"    {v} = {a}.ptr",
                    "elif t in _CAI_TYPES:  # cupy and others: one look at __cuda_array_interface__",
                    f"    ci = {a}.__cuda_array_interface__",
                    f"    {v} = ci['data'][0] if ci['typestr'] in _typestrs{i} else _slow{i}({a})",
                    "else:",
                    f"    {v} = _slow{i}({a})"], [f"_s{i}.value = {v}"]
        if p.kind == SCALAR:
            return self._scalar_lines(i, p, namespace), [f"_s{i}.value = {v}"]
        pointers = getattr(self, "pointers", None)
        if pointers is not None:
            # the parameter's entry in the kernelParams array points straight at the encoded descriptor
            namespace["_pointers"], namespace["_Encoded"] = pointers, EncodedTensorMap
            # (a host path's encoded map passes as it is: its plan checked its tensors' devices; a tensor map is
            # checked against the device of each launch, this launcher's, whichever device is current)
            return [f"{v} = {a}.descriptor_address if type({a}) is _Encoded else {a}.address_on(_device)"], \
                [] if filling else [f"_pointers[{i}] = {v}"]
        namespace[f"_descriptor{i}"] = lambda arg, p=p: self._descriptor(p, arg)
        return [f"{v} = _descriptor{i}({a})"], [f"_memmove(_s{i}, {v}, 128)"]

    def _scalar_lines(self, i: int, p, namespace) -> list:
        """The lines that read scalar argument i into `v{i}`, a value of the Python type its slot holds (int or
        float): the ctypes store under the lock then runs no __index__ or __float__ of the argument's. The fast
        path takes that type itself (an int within the parameter's range); anything else is checked and converted
        by `_scalar{i}` as the slot would convert it."""
        t, a, v = p.type, f"a{i}", f"v{i}"
        ctype = CTYPES[t.name]
        # (every other type is checked as the interpreter checks it, check_scalar: a conversion alone would take
        # numpy's complex as its real part, a string as the number it spells)
        checked = functools.partial(check_scalar, self.kernel_name, p)
        if t.is_float and t.bits < 32:   # f16, bf16 and the fp8 formats: a number's bits in the format
            convert = namespace[f"_convert{i}"] = _narrow_float_bits(t)
            namespace[f"_scalar{i}"] = lambda value: convert(checked(value))
            return [f"{v} = _convert{i}({a}) if type({a}) is float or type({a}) is int else _scalar{i}({a})"]
        if t.is_int and not t.is_bool:
            lo, hi = int_range(t)
            namespace[f"_scalar{i}"] = checked   # (an int in range, or raises saying what is wrong)
            return [f"if type({a}) is int and {lo} <= {a} <= {hi}:", f"    {v} = {a}", "else:",
                    f"    {v} = _scalar{i}({a})"]
        if t.is_bool:
            namespace[f"_scalar{i}"] = checked
            return [f"{v} = {a} if type({a}) is bool else _scalar{i}({a})"]
        namespace[f"_scalar{i}"] = lambda value: ctype(checked(value)).value
        if ctype in (ctypes.c_float, ctypes.c_double):
            # an int (`scale=1`) is common: float() here, where one too large for a float raises among the checks
            return [f"{v} = {a} if type({a}) is float else float({a}) if type({a}) is int else _scalar{i}({a})"]
        return [f"{v} = {a} if type({a}) is int else _scalar{i}({a})"]

    def _pointer_checker(self, param):
        """The slow path: any tensor-like argument, checked fully (dtype, memory, device)."""
        index, kernel, expected = self.device.index, self.kernel_name, param.type
        device, memory = self.device, self.memory
        what = f"{kernel}: argument '{param.name}'"

        def pointer(arg):
            if isinstance(arg, DeviceArray):
                where, device_index, dtype = arg.device.kind, arg.device.index, arg.dtype
                if where == "interpreter":
                    where = "cpu"
            else:
                if is_torch_tensor_type(type(arg)):
                    check_torch_readable(arg, what)
                facts = tensor_facts(arg, what)
                if facts is None:
                    raise LaunchError(f"{kernel}: argument '{param.name}' must be a device array or tensor, "
                                      f"found {type(arg).__name__}")
                (where, device_index), dtype = facts.device, facts.dtype
                if where == "cuda" and device_index is None:
                    # __cuda_array_interface__ names no vendor or device: it is the GPU runtime's in use
                    # (cupy's ROCm build exports it for HIP memory)
                    where = memory
            if dtype is not expected:
                check_pointer_dtype(kernel, param, dtype)
            if where != memory:
                hint = " (a host array: copy it with skc.to_device(x) or x.cuda())" if where == "cpu" else ""
                raise LaunchError(f"{kernel}: argument '{param.name}' is in {where} memory{hint}; "
                                  f"the kernel runs on {device}")
            if device_index is not None and device_index != index:
                raise LaunchError(f"{kernel}: argument '{param.name}' is on {where}:{device_index}, the kernel runs "
                                  f"on {device}: pass arguments on one device, and make it skc's current one "
                                  f"(skc.set_device('{where}:{device_index}'))")
            # an int here (as the slot's store would take it), so that store runs no __index__ of the argument's
            return operator.index(arg.ptr if isinstance(arg, DeviceArray) else facts.pointer(arg))
        return pointer

    def _bad_argument(self, args, error):
        if isinstance(error, LaunchError):
            raise error
        if isinstance(error, ValueError) and hasattr(args, "__len__") and len(args) != len(self.params):
            _wrong_count(self.kernel_name, self.params, args)   # (the unpacking of a ready launch's arguments)
        for param, arg in zip(self.params, args):
            if param.kind == TENSORMAP and not hasattr(arg, "descriptor_bytes"):
                raise LaunchError(f"{self.kernel_name}: argument '{param.name}' must be an skc.TensorMap, "
                                  f"found {type(arg).__name__}") from None
            where = arg.misplaced(self.device) if param.kind == TENSORMAP and hasattr(arg, "misplaced") else None
            if where is not None:
                fix = (f"make it over a copy on the GPU (skc.to_device(x), x.cuda())" if where.startswith("host")
                       else f"make it over a tensor on {self.device}, or make {where} skc's current device "
                            f"(skc.set_device('{where}'))")
                raise LaunchError(f"{self.kernel_name}: argument '{param.name}' is a tensor map over {where}; the "
                                  f"kernel runs on {self.device}: {fix}") from None
            if param.kind == SCALAR:   # (the fast path's float() of an int past a float's range: said by name)
                check_scalar(self.kernel_name, param, arg)
        raise LaunchError(f"{self.kernel_name}: bad argument: {error}") from error

    def _descriptor(self, param, arg) -> bytes:
        """A tensor-map argument's 128 encoded bytes (for a launcher without a kernelParams array to point at
        them): bytes, which the copy into the slot under the lock takes without running Python."""
        data = getattr(arg, "descriptor_bytes", None)
        if data is None:
            raise LaunchError(f"{self.kernel_name}: argument '{param.name}' must be an skc.TensorMap")
        return bytes(data)


def _wrong_count(kernel: str, params, args):
    raise LaunchError(f"{kernel} takes {len(params)} run-time arguments ({', '.join(p.name for p in params)}), "
                      f"found {len(args)}") from None


def int_range(t: ir.ScalarType) -> tuple:
    """(lowest, highest) value of integer type t."""
    return (0, 2 ** t.bits - 1) if not t.is_signed else (-2 ** (t.bits - 1), 2 ** (t.bits - 1) - 1)


def check_scalar(kernel: str, param, value):
    """value as the scalar argument `param` takes, or a LaunchError: a real number (Python's, numpy's, a 0-d numpy
    array of one, or any object that converts exactly to an int, `__index__`, or to a float, `__float__`), and
    within the range of an integer parameter (a value that does not fit is never truncated). The interpreter and
    the GPU launchers (for anything but an int or float) both check with it."""
    t = param.type
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    given = value
    if isinstance(value, np.generic):
        if value.dtype.kind not in "biuf" or not isinstance(value, (np.bool_, np.integer, np.floating)):
            # (ml_dtypes' bfloat16 and float8 scalars, of kind 'V' or 'f' but no np.floating, are floats, exact as
            # Python's; numpy's complex converts to its real part, a date or duration to a count)
            if not _is_float_type(value.dtype):
                _not_a_number(kernel, param, value)
            value = float(value)
    elif not isinstance(value, (int, float)):
        kind = type(value)
        if (not hasattr(kind, "__index__") and not hasattr(kind, "__float__") or isinstance(value, complex)
                or hasattr(value, "__dlpack__") or hasattr(value, "__cuda_array_interface__")):
            _not_a_number(kernel, param, value)
        try:   # read once, here (an object's own code runs before a launcher writes its slots)
            value = operator.index(value) if hasattr(kind, "__index__") else float(value)
        except (TypeError, ValueError, OverflowError) as error:
            raise LaunchError(f"{kernel}: argument '{param.name}' ({kind.__name__}) does not convert to a number: "
                              f"{error}") from None
    if t.is_bool:   # (a 1-bit parameter: 2 or 256 would read as False, so only truth values and 0 / 1 pass)
        if isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer)) and value in (0, 1)):
            return int(bool(value))
        raise LaunchError(f"{kernel}: argument '{param.name}' is a bool ({t}): pass True or False (or 0 or 1), "
                          f"found {type(given).__name__} {given!r}")
    if t.is_int:
        if isinstance(value, (float, np.floating)):
            raise LaunchError(f"{kernel}: argument '{param.name}' must be an integer ({t}), found "
                              f"{type(given).__name__} {given}; pass int(value)")
        value = int(value)   # (numpy's bool compared with 2**64 - 1 raises an OverflowError)
        lo, hi = int_range(t)
        if not lo <= value <= hi:
            raise LaunchError(f"{kernel}: argument '{param.name}' = {value} does not fit in {t} ({lo}..{hi}); "
                              "pass a value in range or declare the parameter with a wider type")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        try:   # (a float parameter's int is converted when it is stored: one past a float's range fails there)
            float(value)
        except OverflowError:
            raise LaunchError(f"{kernel}: argument '{param.name}' is an int of {value.bit_length()} bits, past the "
                              f"range of a float ({t}); pass a value in range") from None
    return value


def _is_float_type(dtype) -> bool:
    """Whether a numpy dtype is one of skc's float types (ml_dtypes' bfloat16 and float8 formats among them)."""
    try:
        return dtypes.from_numpy(dtype).is_float
    except TypeError:   # (UnsupportedDtypeError: no skc type)
        return False


def _not_a_number(kernel: str, param, value):
    """The LaunchError of a scalar argument that is no real number: a tensor (its value lives on the device: reading
    it would wait for the device), a complex, a string (numpy's conversions to floats parse strings), a date."""
    hint = ""
    if hasattr(value, "__dlpack__") or hasattr(value, "__cuda_array_interface__"):
        hint = "; pass a Python number (value.item()), or declare the parameter a pointer and read it in the kernel"
    raise LaunchError(f"{kernel}: argument '{param.name}' must be a number ({param.type}), found "
                      f"{type(value).__name__}{hint}")


def check_pointer_dtype(kernel: str, param, dtype):
    """A LaunchError unless an array of element type `dtype` can be passed for pointer parameter `param`."""
    if dtype is not param.type:
        raise LaunchError(f"{kernel}: argument '{param.name}' has dtype {dtype}, the kernel's parameter takes "
                          f"{param.type}; convert it (x.astype(...)) or launch with an array of {param.type}")


class CudaLauncher(DeviceLauncher):
    """Launches one loaded CUDA kernel: cuLaunchKernel (through cuda.launch_entry) with a ready array of pointers to
    the slots; `bind` packs one checked set of arguments into an image of their own (a bound launch)."""

    def __init__(self, module, params, shared_bytes: int, device: Device, kernel_name: str, block: tuple):
        self.kernel_name, self.params, self.device = kernel_name, params, device
        self.shared_bytes, self.block = shared_bytes, block
        self.slots = [_slot(p) for p in params]
        self.pointers = (ctypes.c_void_p * max(1, len(self.slots)))(*[ctypes.addressof(s) for s in self.slots])
        self.offsets, self.image_bytes = _image_layout(params)   # a bound launch's image
        self._tensormaps = [i for i, p in enumerate(params) if p.kind == TENSORMAP]
        self._driver_launch, handle, entry = cuda.launch_entry()
        self._function = handle(module.function)
        bx, by, bz = block
        self.launch = self.python_launch = self._generate(
            f"_launch(_f, gx, gy, gz, {bx}, {by}, {bz}, {shared_bytes}, stream, _addr)", "r",
            {"_launch": self._driver_launch, "_f": self._function, "_addr": ctypes.addressof(self.pointers)})
        # torch tensors and plain numbers go through native code that hands anything else to python_launch
        self.launch = (entry is not None and _native_launch(self, entry)) or self.python_launch

    def bind(self, args, grid: tuple):
        """A launch of these (run-time) arguments over `grid`, ready to repeat: `bound(stream=None)` calls
        cuLaunchKernel with a kernelParams image of its own, made now after the launch's own checks (tensor maps
        copied in: the image keeps none of `args` alive). stream None: the current stream of the arguments'
        framework, its reading function chosen now (stream_reader); else the given stream, as `launch` takes it."""
        # one buffer: the image (64-byte aligned), then the kernelParams array pointing into it
        offsets = self.offsets
        memory = ctypes.create_string_buffer(DESCRIPTOR_ALIGN + self.image_bytes + 8 * len(offsets))
        base = ctypes.addressof(memory)
        base += -base % DESCRIPTOR_ALIGN
        # the launch's own checks, writing slots in this image (never the launcher's, which another thread's launch
        # may be writing at the same time)
        self.fill(args, [_slot_type(p).from_address(base + offset) for p, offset in zip(self.params, offsets)])
        for i in self._tensormaps:
            ctypes.memmove(base + offsets[i], args[i].descriptor_bytes, 128)
        (ctypes.c_uint64 * len(offsets)).from_address(base + self.image_bytes)[:] = [base + o for o in offsets]
        current = stream_reader(args, self.device.index, self.stream_order)
        return _bound_launch(self._driver_launch, self._function, tuple(grid), self.block, self.shared_bytes,
                             base + self.image_bytes, current, self._fail, memory)

    def _nested_launch(self, args, grid, stream):
        return self.bind(args, grid)(stream)

    def _fail(self, result, grid):
        raise DeviceError(f"cuLaunchKernel of {self.kernel_name} (grid {grid}, block {self.block}, "
                          f"{self.shared_bytes} bytes of shared memory) failed: {cuda.error_text(result)}")


def _native_launch(launcher: CudaLauncher, address: int):
    """The launcher's `launch` as native code (runtime.native.fast_launch, calling the C function at `address`) for
    its fast path: torch tensors of the parameters' dtypes on its device, Python ints and floats for its scalars;
    None where it cannot have one (torch not imported, a tensor-map, half-precision or boolean parameter)."""
    from . import native

    tensor = _torch_tensor_type()
    if tensor is _NeverMatches:
        return None
    # slots of its own: the native launch writes and launches with the GIL held throughout, the Python one under
    # its lock; neither may write into the other's slots meanwhile
    slots = [_slot(p) for p in launcher.params]
    pointers = (ctypes.c_void_p * max(1, len(slots)))(*[ctypes.addressof(s) for s in slots])
    params = []
    for p, slot in zip(launcher.params, slots):
        where = ctypes.addressof(slot)
        dtype = _torch_dtype(p.type) if p.kind == POINTER else _NeverMatches
        if dtype is not _NeverMatches:
            params.append(("tensor", where, dtype))
        elif p.kind == SCALAR and p.type.is_int and not p.type.is_bool:
            params.append(("int", where, p.type.bits, p.type.is_signed))
        elif p.kind == SCALAR and p.type.name in ("f32", "f64"):
            params.append(("float", where, p.type.bits))
        else:
            return None
    try:
        return native.fast_launch(address, launcher._function, launcher.block, launcher.shared_bytes,
                                  ctypes.addressof(pointers), params, tensor, launcher.device.index,
                                  _TORCH_STREAM, bool(launcher.stream_order), launcher.python_launch, launcher._fail,
                                  owner=(slots, pointers))
    except DeviceError:
        return None


def _bound_launch(launch, function, grid, block, shared_bytes, arguments: int, current, fail, keep):
    """`bound(stream=None)`: pick the stream, call the driver's launch with a ready kernelParams array (`arguments`,
    an address; `keep` holds its memory). A function, not an object with __call__: this is the whole per-launch path
    of a bound launch, and a closure's call is the cheapest Python has (measured about half of a __call__'s)."""
    (gx, gy, gz), (bx, by, bz) = grid, block

    def bound(stream=None):
        if stream is None:
            stream = current()
        elif type(stream) is not int:
            stream = normalize_stream(stream)
        try:
            result = launch(function, gx, gy, gz, bx, by, bz, shared_bytes, stream, arguments)
        except OverflowError:   # (a stream handle past 64 bits or negative, refused by the call's conversion)
            check_stream(stream)
            raise
        if result:
            fail(result, grid)

    bound.arguments, bound.grid, bound.memory = arguments, grid, keep
    return bound


DESCRIPTOR_ALIGN = 64  # a CUtensorMap is 64-byte aligned (cuda.h: alignas(64)); its copies are too


def _image_layout(params) -> tuple:
    """(offset of each parameter's slot, total bytes) of a CUDA launcher's image: 128-byte tensor-map slots first,
    each 64-byte aligned, then pointers and scalars, 8 bytes each."""
    offsets, size = [None] * len(params), 0
    for i, p in enumerate(params):
        if p.kind == TENSORMAP:
            offsets[i], size = size, size + 128
    for i, p in enumerate(params):
        if p.kind != TENSORMAP:
            offsets[i], size = size, size + 8
    return offsets, max(size, 8)


def _slot(param):
    return _slot_type(param)()


def _slot_type(param):
    if param.kind == POINTER:
        return ctypes.c_uint64
    if param.kind == SCALAR:
        return CTYPES[param.type.name]
    return ctypes.c_uint8 * 128


def _narrow_float_bits(t: ir.ScalarType):
    """value -> the bits of the number in f16, bf16 or an fp8 format, rounded once as the interpreter reads a scalar
    argument (numerics.from_python). An fp8 slot took an int as its code (1 gave 2**-9 where the interpreter has
    1.0) and refused floats; bf16 rounded to f32 first (twice: 1 + 2**-8 + 2**-30 gave 1.0, not 1 + 2**-7)."""
    if t.name == "f16":   # (numpy rounds a Python float to half once)
        return lambda value: int(np.float16(value).view(np.uint16))
    from .interpreter import numerics   # (here: the interpreter package imports this module)

    return lambda value: int(numerics.to_storage(t, np.array([numerics.from_python(t, value)]))[0])


def _typestrs(t: ir.ScalarType) -> frozenset:
    """The __cuda_array_interface__ typestrs of arrays of t (none for types numpy lacks: they take the slow path)."""
    storage = np.dtype(dtypes.STORAGE[t.name])
    try:
        same = dtypes.from_numpy(storage) is t
    except TypeError:
        same = False
    return frozenset({storage.str, storage.newbyteorder("=").str}) if same else frozenset()


class _NeverMatches:
    pass


def _torch_tensor_type():
    import sys

    torch = sys.modules.get("torch")
    return torch.Tensor if torch is not None else _NeverMatches


def _torch_dtype(t: ir.ScalarType):
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        return _NeverMatches
    for name, ir_name in dtypes.TORCH_NAMES.items():
        if ir_name == t.name:
            found = getattr(torch, name.split(".")[1], None)
            if found is not None:
                return found
    return _NeverMatches


class InterpreterLauncher:
    """Runs a kernel's tile IR in the CPU interpreter over host arrays (written in place). A tensor-map argument
    (an skc.TensorMap) has its host array mapped into the interpreter's memory and is passed as an
    interpreter TensorMapDescriptor (address, shape, strides, element type, box, swizzle)."""

    def __init__(self, function: ir.Function, params, target, block: tuple):
        self.function, self.params, self.target, self.block = function, params, target, block

    def __call__(self, args, grid, stream=None):
        self.launch(args, grid, stream)

    def launch(self, args, grid, stream=None):
        block = self.block
        check_stream(stream)   # (the interpreter has no streams: a handle a GPU would refuse is refused here too)
        # The interpreter loads on its first launch: GPU launches never need it (measured about 115 ms to import).
        from .interpreter import Memory, map_tensor_map, run

        memory = Memory()
        values = []
        kernel = self.function.name
        if len(args) != len(self.params):   # (zip() below would drop the extra ones: a ready launch's, unchecked)
            _wrong_count(kernel, self.params, args)
        for param, arg in zip(self.params, args):
            if param.kind == POINTER:
                span, first = pointer_span(arg, param.name, kernel)
                check_pointer_dtype(kernel, param, _element_type(arg, span, f"{kernel}: argument '{param.name}'"))
                values.append(memory.map_array(span, name=param.name) + first)
            elif param.kind == SCALAR:
                values.append(check_scalar(kernel, param, arg))
            elif param.kind == TENSORMAP:
                if not all(hasattr(arg, attribute) for attribute in ("tensor", "shape", "strides", "box", "swizzle")):
                    raise LaunchError(f"{self.function.name}: argument '{param.name}' must be an skc.TensorMap, "
                                      f"found {type(arg).__name__}")
                values.append(map_tensor_map(arg, memory, param.name))
            else:
                values.append(arg)
        run(self.function, grid=grid, block=block, args=values, memory=memory, target=self.target,
            arg_names=[p.name for p in self.params])


def _element_type(arg, view: np.ndarray, what: str) -> ir.ScalarType:
    """The element type of a host array argument (its own dtype for skc arrays and tensors numpy lacks); `what`
    ("k: argument 'x'") leads the message of a type skc lacks."""
    if isinstance(arg, DeviceArray):
        return arg.dtype
    if not isinstance(arg, np.ndarray):
        facts = tensor_facts(arg, what)
        if facts is not None:
            return facts.dtype
    try:
        return dtypes.from_numpy(view.dtype)
    except dtypes.UnsupportedDtypeError as error:
        raise dtypes.UnsupportedDtypeError(f"{what}: {error}") from None


def host_view(arg, name: str, kernel: str, strided: bool = False) -> np.ndarray:
    """A numpy view of a host array argument (writes through to it), C-contiguous.

    With `strided` (tensor maps, whose strides may pad rows), a non-contiguous view with non-negative strides
    is accepted and given as the flat array of its elements' span, starting at its first element.
    """
    view = _host_array(arg, name, kernel)
    if not view.flags.c_contiguous:
        if strided and _spannable(view):
            return _span(view)
        copy = f"np.ascontiguousarray({name})" if isinstance(arg, np.ndarray) else f"{name}.contiguous()"
        raise LaunchError(f"{kernel}: argument '{name}' is not contiguous; pass {copy}")
    return view


def pointer_span(arg, name: str, kernel: str) -> tuple:
    """What a pointer argument addresses in the interpreter, as on a GPU, where a launch passes the tensor's data
    pointer (its first element's address) and the kernel indexes memory from there in memory order, with the
    strides it is given: (the flat array of the memory from the lowest element the shape and strides reach to the
    highest, gaps included, a view of the same memory that writes land in; the byte offset in it of the first
    element, past 0 only where a stride is negative, as numpy's may be)."""
    view = _host_array(arg, name, kernel)
    if view.flags.c_contiguous:
        return view, 0
    steps = [s for n, s in zip(view.shape, view.strides) if n > 1]
    if any(s % view.itemsize for s in steps):
        raise LaunchError(f"{kernel}: argument '{name}' has strides {view.strides} (bytes), not whole steps of its "
                          f"{view.itemsize}-byte elements, which a pointer cannot reach; pass a contiguous copy")
    # (each axis walked from its lowest address: the first element of that view is the lowest the strides reach)
    lowest = view[tuple(slice(None, None, -1) if s < 0 else slice(None) for s in view.strides)]
    first = view.ctypes.data - lowest.ctypes.data
    return _span(lowest), first


def _host_array(arg, name: str, kernel: str) -> np.ndarray:
    """A numpy view of a host array argument, in any layout (writes through to it)."""
    if isinstance(arg, DeviceArray):
        if arg.host is None:
            raise LaunchError(f"{kernel}: argument '{name}' lives on {arg.device}; the interpreter runs on host "
                              f"memory (create it with device='interpreter', or call .numpy())")
        return arg.host
    if isinstance(arg, np.ndarray):
        return arg
    if is_torch_tensor_type(type(arg)):   # (named here: tensor_facts says "a tensor")
        check_torch_readable(arg, f"{kernel}: argument '{name}'", name)
    facts = tensor_facts(arg, f"{kernel}: argument '{name}'")
    if facts is None:
        raise LaunchError(f"{kernel}: argument '{name}' must be an array or tensor, found {type(arg).__name__}")
    if facts.device[0] != "cpu":
        raise LaunchError(f"{kernel}: argument '{name}' is in {facts.device[0]} memory; the interpreter needs "
                          "host arrays (numpy, CPU tensors, or skc arrays on the interpreter device)")
    return _numpy_of(arg) if hasattr(arg, "numpy") else np.from_dlpack(arg)


def _numpy_of(tensor) -> np.ndarray:
    """A CPU tensor as a numpy view; dtypes numpy lacks (bfloat16, float8) as unsigned ints holding their bits. A
    tensor that requires grad is taken as its data (as a GPU launch takes its address: autograd sees no kernel)."""
    if hasattr(tensor, "detach"):
        tensor = tensor.detach()
    try:
        return tensor.numpy()
    except TypeError:
        import torch

        bits = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[tensor.element_size()]
        view = tensor.view(bits).numpy()
        return view.view(np.dtype(f"u{view.itemsize}"))


def _spannable(view: np.ndarray) -> bool:
    return view.size > 0 and all(s >= 0 and s % view.itemsize == 0 for s in view.strides)


def _span(view: np.ndarray) -> np.ndarray:
    """The flat array of elements from view's first to its last, gaps included (a view of the same memory); view's
    strides are not negative, or its axes of them one long."""
    if view.size == 0:
        return view.reshape(-1)
    count = 1 + sum((n - 1) * s for n, s in zip(view.shape, view.strides) if n > 1) // view.itemsize
    return np.lib.stride_tricks.as_strided(view, shape=(count,), strides=(view.itemsize,),
                                           writeable=view.flags.writeable)
