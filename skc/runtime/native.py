"""Native launch code, compiled for the host by llvmlite's JIT: builtin functions (CPython's METH_FASTCALL
convention) that call the driver's cuLaunchKernel with no Python in between.

- `launcher(address)`: `launch(function, gx, gy, gz, bx, by, bz, shared_bytes, stream, params)` converts its ten
  ints and calls the C function at `address` (cuLaunchKernel's signature, `extra` NULL), giving the CUresult as an
  int. cuda.bindings' wrapper spends about as long turning its Python arguments into C values as the driver spends
  launching; ctypes spends longer.
- `fast_launch(...)`: one kernel's whole launch, `launch(args, grid, stream)` as the generated Python launcher
  takes it: on its fast path (torch tensors of the right dtype on the right device, Python ints and floats for
  scalars, ints for the grid and the stream, or no stream: torch's current one) it reads each argument, writes
  the launcher's slots and launches; anything else it hands, untouched, to the Python launcher, which checks it
  fully and explains what is wrong.
- `launch_method(...)`: the call of a launch object (`kernel[grid, block](...)`) as a method: it checks the state
  the object keeps (the device selection and the globals its kernel read unchanged) and calls that state's launch,
  or hands the call to the Python method.

Every CPython entry point is read from the running interpreter by address, nothing is linked by name. The GIL is
held through the driver call, and the fast path reads every argument before it writes any slot: its slots are
shared by the threads that launch the kernel, and with no Python run between the first write and the driver call
no other thread's launch can come in between (torch's launches hold the GIL too). It takes no lock: a launch of
the same kernel that reading an argument or the stream starts on this thread (a finalizer the garbage collector
runs there) runs to its end before this one writes a slot. The generated Python launcher, which the fast path
hands everything else to, has slots of its own and writes them under a lock of its own.
"""
from __future__ import annotations

import ctypes
import functools
import sys
import threading

from ..diagnostics import DeviceError

METH_FASTCALL = 0x0080
METH_KEYWORDS = 0x0002
_U32 = range(1, 8)   # the arguments of cuLaunchKernel that are unsigned ints
P = "i8*"            # a PyObject* (or any pointer) in the IR

# (name, return type, parameter types) of the CPython entry points the code calls
_API = {
    "PyLong_AsUnsignedLongLong": ("i64", [P]), "PyLong_AsLongLong": ("i64", [P]), "PyFloat_AsDouble": ("double", [P]),
    "PyErr_Occurred": (P, []), "PyErr_Clear": ("void", []), "PyErr_SetString": ("void", [P, P]),
    "PyErr_ExceptionMatches": ("i32", [P]),
    "PyLong_FromLong": (P, ["i64"]), "PyTuple_Size": ("i64", [P]), "PyTuple_GetItem": (P, [P, "i64"]),
    "PyList_GetItem": (P, [P, "i64"]), "PyObject_GetAttr": (P, [P, P]),
    "PyObject_VectorcallMethod": (P, [P, P + "*", "i64", P]), "PyObject_Call": (P, [P, P, P]),
    "PyObject_CallFunctionObjArgs": (P, [P, "..."]), "Py_DecRef": ("void", [P]), "Py_IncRef": ("void", [P]),
    "PyObject_Vectorcall": (P, [P, P + "*", "i64", P]), "PyTuple_New": (P, ["i64"]),
    "PyTuple_SetItem": ("i32", [P, "i64", P]), "PyDict_GetItemWithError": (P, [P, P]),
}


class _MethodDef(ctypes.Structure):
    _fields_ = [("ml_name", ctypes.c_char_p), ("ml_meth", ctypes.c_void_p), ("ml_flags", ctypes.c_int),
                ("ml_doc", ctypes.c_char_p)]


def supported() -> bool:
    """Whether this interpreter's objects have the layout the code reads (a 64-bit CPython with the GIL, no
    reference tracing: the object's type at byte 8)."""
    import sysconfig

    return (sys.implementation.name == "cpython" and sys.maxsize == 2 ** 63 - 1 and sys.getsizeof(object()) == 16
            and not sysconfig.get_config_var("Py_GIL_DISABLED") and sys.byteorder == "little")


@functools.lru_cache(maxsize=None)
def _entry(name: str) -> int:
    """The address of CPython's `name`, read once (an AttributeError where this interpreter lacks it: only the code
    that calls it fails)."""
    return ctypes.cast(getattr(ctypes.pythonapi, name), ctypes.c_void_p).value


class _Code:
    """Lines of LLVM IR for one function, with CPython calls by address and object constants."""

    def __init__(self):
        self.lines, self.count = [], 0

    def fresh(self) -> str:
        self.count += 1
        return f"%v{self.count}"

    def __call__(self, line: str):
        self.lines.append("  " + line)

    def op(self, text: str) -> str:
        """An instruction with a result: its register."""
        value = self.fresh()
        self(f"{value} = {text}")
        return value

    def label(self, name: str):
        self.lines.append(f"{name}:")

    def api(self, name: str, *args: str) -> str:
        """Call CPython's `name` with IR operands `args` ("type value"); gives the result's register (or None)."""
        result, params = _API[name]
        signature = f"{result} ({', '.join(params)})"
        call = f"call {signature} inttoptr (i64 {_entry(name)} to {signature}*)({', '.join(args)})"
        if result == "void":
            self(call)
            return None
        return self.op(call)

    @staticmethod
    def obj(address: int) -> str:
        """An object (or any address) known now, as a pointer constant."""
        return f"inttoptr (i64 {address} to {P})"

    def type_of(self, value: str) -> str:
        slot = self.op(f"getelementptr i8, {P} {value}, i64 8")
        typed = self.op(f"bitcast {P} {slot} to {P}*")
        return self.op(f"load {P}, {P}* {typed}")

    def branch(self, condition: str, then: str, otherwise: str):
        self(f"br i1 {condition}, label %{then}, label %{otherwise}")

    def compare(self, op: str, kind: str, a: str, b: str) -> str:
        return self.op(f"icmp {op} {kind} {a}, {b}")


# Re-entrant: compiling an entry runs Python (llvmlite), where a finalizer the garbage collector runs may load a
# kernel, which makes its entry on the same thread. That nested call builds one of its own (a harmless duplicate,
# the outer one is kept) instead of waiting for a lock its own thread holds.
_lock = threading.RLock()
_made: dict = {}    # target address -> its builtin


def launcher(target: int):
    """The builtin that launches through the C function at address `target` (cuLaunchKernel's signature); made
    once per address. A DeviceError if the host's JIT cannot make it."""
    with _lock:
        found = _made.get(target)
        if found is None:
            found = _made[target] = _builtin(lambda: _entry_ir(target))
        return found


def _entry_ir(target: int) -> str:
    code = _Code()
    count_message = b"skc native launch takes 10 integers\x00"
    range_message = b"skc native launch: a grid, block or shared-memory size does not fit in 32 bits\x00"
    code.label("entry")
    code.branch(code.compare("eq", "i64", "%nargs", "10"), "a0", "bad_count")
    code.label("bad_count")
    _raise(code, "PyExc_TypeError", "@count_message", len(count_message))
    code.label("bad_range")
    _raise(code, "PyExc_OverflowError", "@range_message", len(range_message))
    code.label("failed")
    code(f"ret {P} null")
    values = []
    for i in range(10):
        code.label(f"a{i}")
        item = _argument(code, "%args", i)
        value = code.api("PyLong_AsUnsignedLongLong", f"{P} {item}")
        values.append(value)
        _on_error(code, value, "-1", "failed", f"fits{i}")
        code.label(f"fits{i}")
        following = f"a{i + 1}" if i < 9 else "call"
        if i in _U32:
            code.branch(code.compare("ule", "i64", value, "4294967295"), following, "bad_range")
        else:
            code(f"br label %{following}")
    code.label("call")
    result = _driver_call(code, target, values)
    wide = code.op(f"zext i32 {result} to i64")
    boxed = code.api("PyLong_FromLong", f"i64 {wide}")
    code(f"ret {P} {boxed}")
    return (_string("count_message", count_message) + _string("range_message", range_message)
            + _function("launch", code))


def fast_launch(target: int, function: int, block: tuple, shared_bytes: int, params_address: int, params: list,
                tensor_type, index: int, torch_stream: list, stream_source: bool, fallback, fail, owner=None):
    """One kernel's launch as a builtin `launch(args, grid, stream)` (see the module's description).

    `params`: for each kernel parameter, ("tensor", slot address, torch dtype), ("int", slot address, bits,
    signed) or ("float", slot address, bits); `tensor_type` is torch.Tensor and `index` the device's index
    (get_device()); `torch_stream` the launcher's list holding torch's current-raw-stream function (empty until
    known); `stream_source`: a launch without a stream goes to torch's current stream (else to stream 0);
    `fallback(args, grid, stream)` the Python launcher, `fail(result, grid)` what raises a failed launch's error;
    `owner` what holds the slots and the kernelParams array (kept as long as the builtin).

    Every argument is read (and the stream, which may run Python) before any slot is written: from the first write
    to the driver call no Python runs, so no other thread's launch can come in between."""
    index_args = (index,)   # torch's stream function's arguments
    names = {name: sys.intern(name) for name in ("dtype", "is_nested", "is_neg", "get_device", "data_ptr")}
    keep = [tensor_type, torch_stream, fallback, fail, index_args, owner, *names.values(),
            *[entry[2] for entry in params if entry[0] == "tensor"]]
    return _builtin(lambda: _fast_ir(target, function, block, shared_bytes, params_address, params, tensor_type,
                                     index, torch_stream, stream_source, fallback, fail, names, index_args), keep)


def _fast_ir(target, function, block, shared_bytes, params_address, params, tensor_type, index, torch_stream,
             stream_source, fallback, fail, names, index_args) -> str:
    code = _Code()
    obj = code.obj
    code.label("entry")
    code.branch(code.compare("eq", "i64", "%nargs", "3"), "start", "fallback")
    code.label("start")
    args, grid, stream = (_argument(code, "%args", i) for i in range(3))
    code.branch(code.compare("eq", P, code.type_of(args), obj(id(tuple))), "sized", "fallback")
    code.label("sized")
    size = code.api("PyTuple_Size", f"{P} {args}")
    code.branch(code.compare("eq", "i64", size, str(len(params))), "grid", "fallback")
    code.label("grid")
    code.branch(code.compare("eq", P, code.type_of(grid), obj(id(tuple))), "grid_sized", "fallback")
    code.label("grid_sized")
    code.branch(code.compare("eq", "i64", code.api("PyTuple_Size", f"{P} {grid}"), "3"), "g0", "fallback")
    extents = []
    for axis in range(3):
        code.label(f"g{axis}")
        item = code.api("PyTuple_GetItem", f"{P} {grid}", f"i64 {axis}")
        code.branch(code.compare("eq", P, code.type_of(item), obj(id(int))), f"g{axis}_value", "fallback")
        code.label(f"g{axis}_value")
        value = code.api("PyLong_AsUnsignedLongLong", f"{P} {item}")
        extents.append(value)
        _on_error(code, value, "-1", "fallback", f"g{axis}_fits")
        code.label(f"g{axis}_fits")
        code.branch(code.compare("ule", "i64", value, "4294967295"), f"g{axis + 1}" if axis < 2 else "stream",
                    "fallback")
    code.label("stream")
    chosen_slot = code.op("alloca i64")   # the stream's handle (several paths give it)
    holder = code.op(f"alloca {P}")       # an argument array for the tensors' methods: self alone
    code.branch(code.compare("eq", P, stream, obj(id(None))), "stream_none", "stream_int")
    code.label("stream_int")
    code.branch(code.compare("eq", P, code.type_of(stream), obj(id(int))), "stream_value", "fallback")
    code.label("stream_value")
    given = code.api("PyLong_AsUnsignedLongLong", f"{P} {stream}")
    code(f"store i64 {given}, i64* {chosen_slot}")
    _on_error(code, given, "-1", "fallback", "p0")
    code.label("stream_none")
    if stream_source:   # torch's current stream: its function from the launcher's list, called with the index
        getter = code.api("PyList_GetItem", f"{P} {obj(id(torch_stream))}", "i64 0")
        code.branch(code.compare("eq", P, getter, "null"), "fallback", "stream_call")
        code.label("stream_call")
        code.api("Py_IncRef", f"{P} {getter}")   # (the list may let go of it while it runs)
        raw = code.api("PyObject_Call", f"{P} {getter}", f"{P} {obj(id(index_args))}", f"{P} null")
        code.api("Py_DecRef", f"{P} {getter}")
        code.branch(code.compare("eq", P, raw, "null"), "fallback", "stream_raw")
        code.label("stream_raw")
        current = code.api("PyLong_AsUnsignedLongLong", f"{P} {raw}")
        code.api("Py_DecRef", f"{P} {raw}")
        code(f"store i64 {current}, i64* {chosen_slot}")
        _on_error(code, current, "-1", "fallback", "p0")
    else:
        code(f"store i64 0, i64* {chosen_slot}")
        code("br label %p0")
    stores = []   # what each argument writes into its slot, once every one is read
    code.label("p0")
    if not params:
        code("br label %launch")
    for i, (kind, slot, *facts) in enumerate(params):
        if i:
            code.label(f"p{i}")
        item = code.api("PyTuple_GetItem", f"{P} {args}", f"i64 {i}")
        following = f"p{i + 1}" if i + 1 < len(params) else "launch"
        if kind == "tensor":
            stores.append(_tensor(code, i, item, slot, facts[0], tensor_type, index, names, holder, following))
        elif kind == "int":
            stores.append(_integer(code, i, item, slot, *facts, following))
        else:
            stores.append(_real(code, i, item, slot, facts[0], following))
    code.label("launch")
    for store in stores:
        for line in store(code):
            code(line)
    chosen = code.op(f"load i64, i64* {chosen_slot}")
    bx, by, bz = block
    result = _driver_call(code, target, [function, *extents, bx, by, bz, shared_bytes, chosen, params_address])
    code.branch(code.compare("eq", "i32", result, "0"), "done", "failed")
    code.label("done")
    code.api("Py_IncRef", f"{P} {obj(id(None))}")
    code(f"ret {P} {obj(id(None))}")
    code.label("failed")
    wide = code.op(f"zext i32 {result} to i64")
    number = code.api("PyLong_FromLong", f"i64 {wide}")
    raised = code.api("PyObject_CallFunctionObjArgs", f"{P} {obj(id(fail))}", f"{P} {number}", f"{P} {grid}",
                      f"{P} null")
    code.api("Py_DecRef", f"{P} {number}")
    code(f"ret {P} {raised}")
    # anything off the fast path: the Python launcher, with the call's own arguments; an Exception met on the way
    # is cleared first (the Python launcher meets it again, or says what is wrong), anything else (a
    # KeyboardInterrupt) propagates
    _clear_exception(code, "fallback", "fallback_clean", "fallback_raise")
    code.label("fallback_raise")
    code(f"ret {P} null")
    code.label("fallback_clean")
    code.branch(code.compare("eq", "i64", "%nargs", "3"), "fallback_call", "fallback_count")
    code.label("fallback_call")
    first, second, third = (_argument(code, "%args", i) for i in range(3))
    handed = code.api("PyObject_CallFunctionObjArgs", f"{P} {obj(id(fallback))}", f"{P} {first}", f"{P} {second}",
                      f"{P} {third}", f"{P} null")
    code(f"ret {P} {handed}")
    code.label("fallback_count")
    message = b"a kernel launch takes (args, grid, stream)\x00"
    _raise(code, "PyExc_TypeError", "@count_message", len(message))
    return _string("count_message", message) + _function("launch", code)


_methods: dict = {}   # owner type -> (its native __call__, what it holds)


def launch_method(owner: type, slow, selection: tuple, anywhere, missing):
    """`owner.__call__` as native code (a launch object's call: skc.jit's plain launches), a method descriptor of
    `owner`; made once per type.

    A call with positional arguments (and stream=, an int or None, alone) whose object's `_fast` is a ready state
    `(launch, grid, kernel, watch, selected, count)` launches at once with `launch(args, grid, stream)`, where:
    `count` positional arguments are given; the selection list (`selection`: (object, attribute name), read at
    each call) has `selected` as its item (unless `selected` is `anywhere`: the launch's device is its own);
    `kernel._watch` is `watch`, and each of its (namespace, name, value) entries still binds the name to that value
    (`missing`: binds nothing; a dict looked up, any other namespace, a closure cell's or a value's contents, asked by
    its `get(name)`). Anything else (other keywords, a `_fast` of None,
    another selection, a rebound global) is the Python method `slow(self, *args, **kwargs)`'s, which checks it
    all and may make the state again."""
    with _lock:
        found = _methods.get(owner)
        if found is None:
            names = {name: sys.intern(name) for name in ("_fast", "_watch", "stream", "get", selection[1])}
            keep = [owner, slow, selection[0], anywhere, missing, *names.values()]

            def make(definition, held):
                new = ctypes.pythonapi.PyDescr_NewMethod
                new.restype, new.argtypes = ctypes.py_object, [ctypes.py_object, ctypes.POINTER(_MethodDef)]
                return new(owner, ctypes.byref(definition)), held
            found = _methods[owner] = _compiled(lambda: _method_ir(slow, selection, anywhere, missing, names),
                                                 METH_FASTCALL | METH_KEYWORDS, keep, make)
        return found[0]


def _method_ir(slow, selection, anywhere, missing, names) -> str:
    code = _Code()
    obj = code.obj
    none = obj(id(None))
    code.label("entry")
    index = code.op("alloca i64")        # the loops' counter
    keywords = code.op("alloca i64")     # how many keywords were given
    stack = code.op(f"alloca [3 x {P}]")  # the launch's arguments
    triple = code.op(f"alloca [3 x {P}]")   # a watched namespace that is no dict, and what its get() is given
    stream = code.op(f"alloca {P}")      # the stream given: None, or an int
    code(f"store {P} {none}, {P}* {stream}")
    code.branch(code.compare("eq", P, "%kwnames", "null"), "state", "keywords")
    code.label("keywords")   # stream=, an int or None, alone
    code.branch(code.compare("eq", "i64", code.api("PyTuple_Size", f"{P} %kwnames"), "1"), "keyword", "slow")
    code.label("keyword")
    name = code.api("PyTuple_GetItem", f"{P} %kwnames", "i64 0")
    code.branch(code.compare("eq", P, name, obj(id(names["stream"]))), "keyword_value", "slow")
    code.label("keyword_value")
    given = _argument(code, "%args", "%nargs")
    code(f"store {P} {given}, {P}* {stream}")
    code.branch(code.compare("eq", P, given, none), "state", "keyword_int")
    code.label("keyword_int")
    code.branch(code.compare("eq", P, code.type_of(given), obj(id(int))), "state", "slow")
    code.label("state")
    fast = code.api("PyObject_GetAttr", f"{P} %self", f"{P} {obj(id(names['_fast']))}")
    code.branch(code.compare("eq", P, fast, "null"), "slow_error", "state_found")
    code.label("state_found")   # (held until the end: reading the arguments may run Python that replaces it)
    code.branch(code.compare("eq", P, fast, none), "slow_let_go", "state_ready")
    code.label("state_ready")   # (a tuple of six, as made by the owner; anything else is the slow path's)
    code.branch(code.compare("eq", P, code.type_of(fast), obj(id(tuple))), "state_sized", "slow_let_go")
    code.label("state_sized")
    code.branch(code.compare("eq", "i64", code.api("PyTuple_Size", f"{P} {fast}"), "6"), "state_read", "slow_let_go")
    code.label("state_read")
    launch, grid, kernel, watch, selected, count = (code.api("PyTuple_GetItem", f"{P} {fast}", f"i64 {i}")
                                                    for i in range(6))
    number = code.api("PyLong_AsLongLong", f"{P} {count}")
    code.branch(code.compare("eq", "i64", number, "%nargs"), "device", "slow_let_go")
    code.label("device")
    code.branch(code.compare("eq", P, selected, obj(id(anywhere))), "watch", "selection")
    code.label("selection")
    listed = code.api("PyObject_GetAttr", f"{P} {obj(id(selection[0]))}", f"{P} {obj(id(names[selection[1]]))}")
    code.branch(code.compare("eq", P, listed, "null"), "slow_let_go", "selection_found")
    code.label("selection_found")
    current = code.api("PyList_GetItem", f"{P} {listed}", "i64 0")   # (null, an error, for anything but a list)
    code.api("Py_DecRef", f"{P} {listed}")   # (its item compared by identity alone)
    code.branch(code.compare("eq", P, current, selected), "watch", "slow_let_go")
    code.label("watch")
    watching = code.api("PyObject_GetAttr", f"{P} {kernel}", f"{P} {obj(id(names['_watch']))}")
    code.branch(code.compare("eq", P, watching, "null"), "slow_let_go", "watch_found")
    code.label("watch_found")
    code.api("Py_DecRef", f"{P} {watching}")   # (compared by identity alone: the state holds the one it names)
    code.branch(code.compare("eq", P, watching, watch), "bindings", "slow_let_go")
    code.label("bindings")

    def binding(at):   # (a name bound to nothing, a builtin read there, matches `missing`)
        entry = code.api("PyTuple_GetItem", f"{P} {watch}", f"i64 {at}")
        space, name, value = (code.api("PyTuple_GetItem", f"{P} {entry}", f"i64 {i}") for i in range(3))
        code.branch(code.compare("eq", P, code.type_of(space), obj(id(dict))), "binding_dict", "binding_view")
        code.label("binding_dict")
        bound = code.api("PyDict_GetItemWithError", f"{P} {space}", f"{P} {name}")
        unbound = code.op(f"and i1 {code.compare('eq', P, bound, 'null')}, "
                          f"{code.compare('eq', P, value, obj(id(missing)))}")
        in_dict = code.op(f"or i1 {code.compare('eq', P, bound, value)}, {unbound}")
        code("br label %binding_checked")
        code.label("binding_view")   # any other namespace (a closure cell's, a value's contents): its get(name)
        for i, item in enumerate((space, name, obj(id(missing)))):   # (get(name, missing), as the Python call's)
            code(f"store {P} {item}, {P}* {code.op(f'getelementptr [3 x {P}], [3 x {P}]* {triple}, i64 0, i64 {i}')}")
        got = code.api("PyObject_VectorcallMethod", f"{P} {obj(id(names['get']))}",
                       f"{P}* {code.op(f'getelementptr [3 x {P}], [3 x {P}]* {triple}, i64 0, i64 0')}", "i64 3",
                       f"{P} null")
        code.branch(code.compare("eq", P, got, "null"), "slow_let_go", "binding_got")
        code.label("binding_got")   # (compared before it is let go: a view's new object dies with it)
        in_view = code.compare("eq", P, got, value)
        code.api("Py_DecRef", f"{P} {got}")
        code("br label %binding_checked")
        code.label("binding_checked")
        return code.op(f"phi i1 [{in_dict}, %binding_dict], [{in_view}, %binding_got]"), "slow_let_go"
    _loop(code, index, code.api("PyTuple_Size", f"{P} {watch}"), "binding", "bound", binding)
    code.label("bound")   # (a lookup that failed, not one that found nothing, goes the slow way)
    code.branch(code.compare("eq", P, code.api("PyErr_Occurred"), "null"), "pack", "slow_let_go")
    code.label("pack")   # the arguments as the tuple the launch takes
    args = code.api("PyTuple_New", "i64 %nargs")
    code.branch(code.compare("eq", P, args, "null"), "failed_let_go", "pack_items")
    code.label("pack_items")

    def put(at):
        item = _argument(code, "%args", at)
        code.api("Py_IncRef", f"{P} {item}")
        code.api("PyTuple_SetItem", f"{P} {args}", f"i64 {at}", f"{P} {item}")   # (takes the reference)
    _loop(code, index, "%nargs", "item", "call", put)
    code.label("call")
    for i, value in enumerate((args, grid, code.op(f"load {P}, {P}* {stream}"))):
        code(f"store {P} {value}, {P}* {code.op(f'getelementptr [3 x {P}], [3 x {P}]* {stack}, i64 0, i64 {i}')}")
    first = code.op(f"getelementptr [3 x {P}], [3 x {P}]* {stack}, i64 0, i64 0")
    result = code.api("PyObject_Vectorcall", f"{P} {launch}", f"{P}* {first}", "i64 3", f"{P} null")
    code.api("Py_DecRef", f"{P} {args}")
    code.api("Py_DecRef", f"{P} {fast}")
    code.branch(code.compare("eq", P, result, "null"), "failed", "launched")
    code.label("launched")
    code.api("Py_DecRef", f"{P} {result}")
    code.api("Py_IncRef", f"{P} {none}")
    code(f"ret {P} {none}")
    code.label("failed_let_go")
    code.api("Py_DecRef", f"{P} {fast}")
    code("br label %failed")
    code.label("failed")
    code(f"ret {P} null")
    # the Python method, with the call's own arguments: an Exception met on the way is cleared first (the method
    # meets it again), anything else (a KeyboardInterrupt) propagates
    code.label("slow_let_go")
    code.api("Py_DecRef", f"{P} {fast}")
    code("br label %slow_error")
    _clear_exception(code, "slow_error", "slow", "failed")
    code.label("slow")
    code(f"store i64 0, i64* {keywords}")
    code.branch(code.compare("eq", P, "%kwnames", "null"), "slow_call", "slow_keywords")
    code.label("slow_keywords")
    code(f"store i64 {code.api('PyTuple_Size', f'{P} %kwnames')}, i64* {keywords}")
    code("br label %slow_call")
    code.label("slow_call")
    given = code.op(f"add i64 %nargs, {code.op(f'load i64, i64* {keywords}')}")
    array = code.op(f"alloca {P}, i64 {code.op(f'add i64 {given}, 1')}")   # self, then every given value
    code(f"store {P} %self, {P}* {array}")

    def copy(at):
        there = code.op(f"getelementptr {P}, {P}* {array}, i64 {code.op(f'add i64 {at}, 1')}")
        code(f"store {P} {_argument(code, '%args', at)}, {P}* {there}")
    _loop(code, index, given, "slow_item", "slow_run", copy)
    code.label("slow_run")
    positional = code.op("add i64 %nargs, 1")
    handed = code.api("PyObject_Vectorcall", f"{P} {obj(id(slow))}", f"{P}* {array}", f"i64 {positional}",
                      f"{P} %kwnames")
    code(f"ret {P} {handed}")
    return _method("launch", code)


def _clear_exception(code, name: str, clean: str, raised: str):
    """At label `name`: an Exception set is cleared, on to `clean`; anything else set (a KeyboardInterrupt) goes
    to `raised`, still set."""
    code.label(name)
    code.branch(code.compare("eq", P, code.api("PyErr_Occurred"), "null"), clean, f"{name}_set")
    code.label(f"{name}_set")
    matches = code.api("PyErr_ExceptionMatches", f"{P} {_exception(code, 'PyExc_Exception')}")
    code.branch(code.compare("ne", "i32", matches, "0"), f"{name}_clear", raised)
    code.label(f"{name}_clear")
    code.api("PyErr_Clear")
    code(f"br label %{clean}")


def _loop(code, counter: str, count: str, name: str, after: str, body):
    """`for at in range(count): body(at)`, its counter in the slot `counter`, on to `after`; `body` may give
    (condition, label): where the condition is false, the loop is left for that label."""
    code(f"store i64 0, i64* {counter}")
    code(f"br label %{name}")
    code.label(name)
    at = code.op(f"load i64, i64* {counter}")
    code.branch(code.compare("slt", "i64", at, count), f"{name}_body", after)
    code.label(f"{name}_body")
    code(f"store i64 {code.op(f'add i64 {at}, 1')}, i64* {counter}")
    leave = body(at)
    if leave is None:
        code(f"br label %{name}")
    else:
        code.branch(leave[0], name, leave[1])


def _tensor(code, i, item, slot, dtype, tensor_type, index, names, holder, following):
    """A torch tensor of exactly torch.Tensor's type, of `dtype`, neither nested nor lazily negated, on device
    `index`: its address, for the slot (what writes it, given the code)."""
    obj = code.obj
    code.branch(code.compare("eq", P, code.type_of(item), obj(id(tensor_type))), f"p{i}_dtype", "fallback")
    code.label(f"p{i}_dtype")
    found = code.api("PyObject_GetAttr", f"{P} {item}", f"{P} {obj(id(names['dtype']))}")
    _is(code, found, dtype, f"p{i}_dtype_found", f"p{i}_flat")
    # a nested tensor's data pointer is its packed buffer's, and a lazily negated view (torch._neg_view,
    # z.conj().imag) holds its values un-negated there: the Python launcher refuses either by name
    code.label(f"p{i}_flat")
    nested = code.api("PyObject_GetAttr", f"{P} {item}", f"{P} {obj(id(names['is_nested']))}")
    _is(code, nested, False, f"p{i}_flat_found", f"p{i}_plain")
    code.label(f"p{i}_plain")
    code(f"store {P} {item}, {P}* {holder}")
    negated = code.api("PyObject_VectorcallMethod", f"{P} {obj(id(names['is_neg']))}", f"{P}* {holder}", "i64 1",
                       f"{P} null")
    _is(code, negated, False, f"p{i}_plain_found", f"p{i}_device")
    code.label(f"p{i}_device")
    number = _method_int(code, names["get_device"], holder, "PyLong_AsLongLong", f"p{i}_device_found")
    _on_error(code, number, "-1", "fallback", f"p{i}_device_read")
    code.label(f"p{i}_device_read")
    code.branch(code.compare("eq", "i64", number, str(index)), f"p{i}_address", "fallback")
    code.label(f"p{i}_address")
    value = _method_int(code, names["data_ptr"], holder, "PyLong_AsUnsignedLongLong", f"p{i}_address_found")
    _on_error(code, value, "-1", "fallback", following)
    return lambda code: [f"store i64 {value}, i64* inttoptr (i64 {slot} to i64*)"]


def _is(code, result: str, expected, found: str, following: str):
    """Go on to `following` where `result` (a new reference; null, an exception: to "fallback") is the lasting
    object `expected` (a dtype, False), else to "fallback"; the reference is let go (a lasting object's address
    stays comparable)."""
    code.branch(code.compare("eq", P, result, "null"), "fallback", found)
    code.label(found)
    code.api("Py_DecRef", f"{P} {result}")
    code.branch(code.compare("eq", P, result, code.obj(id(expected))), following, "fallback")


def _method_int(code, name: str, holder: str, convert: str, found: str) -> str:
    """The int that method `name` of the object in `holder` gives (to "fallback" if it raises), converted."""
    result = code.api("PyObject_VectorcallMethod", f"{P} {code.obj(id(name))}", f"{P}* {holder}", "i64 1",
                      f"{P} null")
    code.branch(code.compare("eq", P, result, "null"), "fallback", found)
    code.label(found)
    value = code.api(convert, f"{P} {result}")
    code.api("Py_DecRef", f"{P} {result}")
    return value


def _integer(code, i, item, slot, bits: int, signed: bool, following):
    """A Python int within the parameter's range: its value, for the slot."""
    code.branch(code.compare("eq", P, code.type_of(item), code.obj(id(int))), f"p{i}_value", "fallback")
    code.label(f"p{i}_value")
    value = code.api("PyLong_AsLongLong" if signed or bits < 64 else "PyLong_AsUnsignedLongLong", f"{P} {item}")
    if bits == 64:
        _on_error(code, value, "-1", "fallback", following)
        return lambda code: [f"store i64 {value}, i64* inttoptr (i64 {slot} to i64*)"]
    _on_error(code, value, "-1", "fallback", f"p{i}_range")
    code.label(f"p{i}_range")
    low, high = (-2 ** (bits - 1), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    above = code.compare("sge", "i64", value, str(low))
    below = code.compare("sle", "i64", value, str(high))
    code.branch(code.op(f"and i1 {above}, {below}"), following, "fallback")

    def store(code):
        narrow = code.op(f"trunc i64 {value} to i{bits}")
        return [f"store i{bits} {narrow}, i{bits}* inttoptr (i64 {slot} to i{bits}*)"]
    return store


def _real(code, i, item, slot, bits: int, following):
    """A Python float (or int): its value, as an f32 or f64, for the slot."""
    kind = code.type_of(item)
    is_float = code.compare("eq", P, kind, code.obj(id(float)))
    is_int = code.compare("eq", P, kind, code.obj(id(int)))
    code.branch(code.op(f"or i1 {is_float}, {is_int}"), f"p{i}_value", "fallback")
    code.label(f"p{i}_value")
    value = code.api("PyFloat_AsDouble", f"{P} {item}")
    code.branch(code.op(f"fcmp oeq double {value}, -1.0"), f"p{i}_check", following)
    code.label(f"p{i}_check")
    code.branch(code.compare("eq", P, code.api("PyErr_Occurred"), "null"), following, "fallback")
    if bits == 64:
        return lambda code: [f"store double {value}, double* inttoptr (i64 {slot} to double*)"]

    def store(code):
        narrow = code.op(f"fptrunc double {value} to float")
        return [f"store float {narrow}, float* inttoptr (i64 {slot} to float*)"]
    return store


def _argument(code, array: str, i: int) -> str:
    slot = code.op(f"getelementptr {P}, {P}* {array}, i64 {i}")
    value = code.op(f"load {P}, {P}* {slot}")
    return value


def _on_error(code, value: str, marker: str, failed: str, ok: str):
    """After a CPython conversion: where it gave `marker` and an exception is set, go to `failed`, else `ok`."""
    check = code.fresh().lstrip("%")
    code.branch(code.compare("eq", "i64", value, marker), check, ok)
    code.label(check)
    code.branch(code.compare("eq", P, code.api("PyErr_Occurred"), "null"), ok, failed)


def _driver_call(code, target: int, values: list) -> str:
    """cuLaunchKernel(function, grid x 3, block x 3, shared bytes, stream, params, NULL) from ten i64 operands (its
    registers or constants)."""
    operands = []
    for i, value in enumerate(values):
        if i in _U32:
            operands.append(f"i32 {code.op(f'trunc i64 {value} to i32')}")
        else:
            operands.append(f"{P} {code.op(f'inttoptr i64 {value} to {P}')}")
    signature = f"i32 ({P}, i32, i32, i32, i32, i32, i32, i32, {P}, {P}, {P})"
    return code.op(f"call {signature} inttoptr (i64 {target} to {signature}*)({', '.join(operands)}, {P} null)")


def _exception(code, name: str) -> str:
    """CPython's exception class `name` (PyExc_...), loaded."""
    where = ctypes.addressof(ctypes.c_void_p.in_dll(ctypes.pythonapi, name))
    return code.op(f"load {P}, {P}* inttoptr (i64 {where} to {P}*)")


def _raise(code, exception: str, message: str, length: int):
    code.api("PyErr_SetString", f"{P} {_exception(code, exception)}",
             f"{P} getelementptr ([{length} x i8], [{length} x i8]* {message}, i64 0, i64 0)")
    code(f"ret {P} null")


def _string(name: str, data: bytes) -> str:
    text = "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\{b:02X}" for b in data)
    return f"@{name} = private constant [{len(data)} x i8] c\"{text}\"\n"


def _function(name: str, code: _Code) -> str:
    return f"define {P} @{name}({P} %self, {P}* %args, i64 %nargs) {{\n" + "\n".join(code.lines) + "\n}\n"


def _method(name: str, code: _Code) -> str:
    """A METH_FASTCALL | METH_KEYWORDS function: its keywords' names in `%kwnames` (null where none)."""
    return (f"define {P} @{name}({P} %self, {P}* %args, i64 %nargs, {P} %kwnames) {{\n" + "\n".join(code.lines)
            + "\n}\n")


def _builtin(make_ir, keep=()):
    """The function `launch` of the module `make_ir()` gives, compiled for the host, as a builtin whose own object
    (its __self__) holds what must outlive it: the compiled code, its method definition and the objects `keep`
    whose addresses the code holds. A DeviceError if the host cannot make it (llvmlite without a host target, an
    interpreter without one of the C-API entries)."""
    def make(definition, held):
        new = ctypes.pythonapi.PyCFunction_NewEx
        new.restype, new.argtypes = ctypes.py_object, [ctypes.POINTER(_MethodDef), ctypes.py_object, ctypes.c_void_p]
        return new(ctypes.byref(definition), held, None)
    return _compiled(make_ir, METH_FASTCALL, keep, make)


def _compiled(make_ir, flags: int, keep, make):
    """`make(definition, held)` for the function `launch` of the module `make_ir()` gives, compiled for the host:
    `definition` its method definition (with `flags`), `held` what must live as long as the result (the compiled
    code, the definition, the objects `keep`). A DeviceError if the host cannot make it."""
    name = "launch"
    try:
        import llvmlite.binding as llvm

        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        module = llvm.parse_assembly(make_ir())
        module.verify()
        machine = llvm.Target.from_default_triple().create_target_machine(opt=0)
        engine = llvm.create_mcjit_compiler(module, machine)
        engine.finalize_object()
        definition = _MethodDef(name.encode(), engine.get_function_address(name), flags, None)
        return make(definition, _Held((engine, definition, module, tuple(keep))))
    except Exception as error:
        raise DeviceError(f"cannot make skc's native launch code on this host: {error}") from None


class _Held:
    """What a native builtin holds as its __self__: its code and method definition, and the objects it reads."""

    __slots__ = ("parts",)

    def __init__(self, parts):
        self.parts = parts
