"""A native entry into the driver's kernel launch: `launcher(address)` gives a builtin function
`launch(function, gx, gy, gz, bx, by, bz, shared_bytes, stream, params)` that converts its ten integers and calls
the C function at `address` (cuLaunchKernel's signature, `extra` NULL), returning its CUresult as an int.

cuda.bindings' `cuLaunchKernel` spends about as long turning its Python arguments into C values as the driver
spends launching; ctypes spends longer. This function is compiled for the host by llvmlite's JIT once per
process: a METH_FASTCALL builtin (CPython's calling convention for C functions), so a launch costs one C call
beyond the driver's own. Every CPython entry it uses is read from the running interpreter by address, so nothing
is linked by name. It lets go of the GIL through the driver call, as cuda.bindings does (a launch can block
while the GPU's queue is full, and host functions queued before it may need the GIL to run).
"""
from __future__ import annotations

import ctypes
import threading

from ..diagnostics import DeviceError

METH_FASTCALL = 0x0080
ARGUMENTS = ("function", "grid_x", "grid_y", "grid_z", "block_x", "block_y", "block_z", "shared_bytes", "stream",
             "params")
_U32 = range(1, 8)   # the arguments cuLaunchKernel takes as unsigned int


class _MethodDef(ctypes.Structure):
    _fields_ = [("ml_name", ctypes.c_char_p), ("ml_meth", ctypes.c_void_p), ("ml_flags", ctypes.c_int),
                ("ml_doc", ctypes.c_char_p)]


def _address(function) -> int:
    return ctypes.cast(function, ctypes.c_void_p).value


def _ir(entries: dict, target: int) -> str:
    """LLVM IR of `PyObject *launch(PyObject *self, PyObject *const *args, Py_ssize_t nargs)`."""
    ptr = "i8*"

    def fn(name, ret, *params):   # a CPython entry point as a typed constant
        return f"inttoptr (i64 {entries[name]} to {ret} ({', '.join(params)})*)"

    as_u64 = fn("PyLong_AsUnsignedLongLong", "i64", ptr)
    occurred = fn("PyErr_Occurred", ptr)
    set_string = fn("PyErr_SetString", "void", ptr, ptr)
    from_long = fn("PyLong_FromLong", ptr, "i64")
    save = fn("PyEval_SaveThread", ptr)
    restore = fn("PyEval_RestoreThread", "void", ptr)
    launch = (f"inttoptr (i64 {target} to i32 ({ptr}, i32, i32, i32, i32, i32, i32, i32, {ptr}, {ptr}, {ptr})*)")
    count_message = b"skc native launch takes 10 integers\x00"
    range_message = b"skc native launch: a grid, block or shared-memory size does not fit in 32 bits\x00"
    lines = [f"@count_message = private constant [{len(count_message)} x i8] c\"{_c_string(count_message)}\"",
             f"@range_message = private constant [{len(range_message)} x i8] c\"{_c_string(range_message)}\"",
             f"define {ptr} @launch({ptr} %self, {ptr}* %args, i64 %nargs) {{",
             "entry:",
             "  %count_ok = icmp eq i64 %nargs, 10",
             "  br i1 %count_ok, label %a0, label %bad_count",
             "bad_count:",
             f"  %type_error = load {ptr}, {ptr}* inttoptr (i64 {entries['PyExc_TypeError']} to {ptr}*)",
             f"  call void {set_string}({ptr} %type_error, {ptr} getelementptr ([{len(count_message)} x i8], "
             f"[{len(count_message)} x i8]* @count_message, i64 0, i64 0))",
             f"  ret {ptr} null",
             "bad_range:",
             f"  %overflow = load {ptr}, {ptr}* inttoptr (i64 {entries['PyExc_OverflowError']} to {ptr}*)",
             f"  call void {set_string}({ptr} %overflow, {ptr} getelementptr ([{len(range_message)} x i8], "
             f"[{len(range_message)} x i8]* @range_message, i64 0, i64 0))",
             f"  ret {ptr} null",
             "failed:",
             f"  ret {ptr} null"]
    for i in range(10):
        lines += [f"a{i}:",
                  f"  %slot{i} = getelementptr {ptr}, {ptr}* %args, i64 {i}",
                  f"  %object{i} = load {ptr}, {ptr}* %slot{i}",
                  f"  %v{i} = call i64 {as_u64}({ptr} %object{i})",
                  f"  %minus{i} = icmp eq i64 %v{i}, -1",
                  f"  br i1 %minus{i}, label %check{i}, label %range{i}",
                  f"check{i}:",
                  f"  %error{i} = call {ptr} {occurred}()",
                  f"  %raised{i} = icmp ne {ptr} %error{i}, null",
                  f"  br i1 %raised{i}, label %failed, label %range{i}",
                  f"range{i}:"]
        following = f"a{i + 1}" if i < 9 else "call"
        if i in _U32:
            lines += [f"  %fits{i} = icmp ule i64 %v{i}, 4294967295",
                      f"  br i1 %fits{i}, label %{following}, label %bad_range"]
        else:
            lines += [f"  br label %{following}"]
    lines += ["call:",
              *(f"  %u{i} = trunc i64 %v{i} to i32" for i in _U32),
              *(f"  %p{i} = inttoptr i64 %v{i} to {ptr}" for i in (0, 8, 9)),
              f"  %thread = call {ptr} {save}()",
              f"  %result = call i32 {launch}({ptr} %p0, i32 %u1, i32 %u2, i32 %u3, i32 %u4, i32 %u5, i32 %u6, "
              f"i32 %u7, {ptr} %p8, {ptr} %p9, {ptr} null)",
              f"  call void {restore}({ptr} %thread)",
              "  %wide = zext i32 %result to i64",
              f"  %boxed = call {ptr} {from_long}(i64 %wide)",
              f"  ret {ptr} %boxed",
              "}"]
    return "\n".join(lines) + "\n"


def _c_string(data: bytes) -> str:
    return "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\{b:02X}" for b in data)


_lock = threading.Lock()
_made: dict = {}    # target address -> (builtin, what keeps it alive)


def launcher(target: int):
    """The builtin that launches through the C function at address `target` (cuLaunchKernel's signature); made
    once per address. A DeviceError if the host's JIT cannot make it."""
    with _lock:
        found = _made.get(target)
        if found is None:
            found = _made[target] = _make(target)
        return found[0]


def _make(target: int):
    try:
        import llvmlite.binding as llvm

        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        api = ctypes.pythonapi
        entries = {name: _address(getattr(api, name)) for name in
                   ("PyLong_AsUnsignedLongLong", "PyErr_Occurred", "PyErr_SetString", "PyLong_FromLong",
                    "PyEval_SaveThread", "PyEval_RestoreThread")}
        for name in ("PyExc_TypeError", "PyExc_OverflowError"):
            entries[name] = ctypes.addressof(ctypes.c_void_p.in_dll(api, name))
        module = llvm.parse_assembly(_ir(entries, target))
        module.verify()
        machine = llvm.Target.from_default_triple().create_target_machine(opt=2)
        engine = llvm.create_mcjit_compiler(module, machine)
        engine.finalize_object()
        code = engine.get_function_address("launch")
        definition = _MethodDef(b"launch", code, METH_FASTCALL, None)
        new = api.PyCFunction_NewEx
        new.restype, new.argtypes = ctypes.py_object, [ctypes.POINTER(_MethodDef), ctypes.c_void_p, ctypes.c_void_p]
        builtin = new(ctypes.byref(definition), None, None)
    except Exception as error:  # llvmlite without a host target, an interpreter without these entries
        raise DeviceError(f"cannot make skc's native launch entry on this host: {error}") from None
    return builtin, (engine, definition, module)
