"""Issue 8, items 7, 8, 9 and 12: mistakes are CompileErrors at the kernel line of the expression that
makes them (never a foreign exception, an abort, or an error at the host's .compile() line); overflowing
float literals round to inf as a cast does; what Python defines keeps Python's meaning."""
import functools
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import skc
from skc import ir
from helpers import line_of, tile_ir
from frontend_run import F32P as F32, compile_kernel, launch

HERE = os.path.abspath(__file__)
I32 = ir.i32


def error_of(kernel, *args, target="sm_90a", block=128) -> str:
    with pytest.raises(skc.CompileError) as info:
        tile_ir(kernel, *args, target=target, block=block)
    return str(info.value)


def assert_at(text: str, kernel, marker: str, *phrases: str):
    """The error's first line is FILE:LINE of marker's line in kernel, then the source line and a caret."""
    first = text.splitlines()[0]
    assert first.startswith(f"{HERE}:{line_of(kernel, marker)}:"), text
    assert "^" in text.splitlines()[2], text
    for phrase in phrases:
        assert phrase in text, (phrase, text)
    for internal in ("AttributeError", "TypeError", "KeyError", "ValueError", "OverflowError", "internal"):
        assert internal not in text, text


# -- item 7: overflowing float literals are inf, as after a cast ---------------------------------
@skc.kernel
def overflowing_literals(h: skc.Ptr[skc.f16], f: skc.Ptr[skc.f32], b: skc.Ptr[skc.bf16], n: skc.i32):
    h[0] = 1e10
    h[1] = -1e10
    f[0] = 1e39
    f[1] = -1e300
    b[0] = 1e39
    if n < 1e39:
        f[2] = 1.0


def test_overflowing_float_literals_become_inf_in_the_interpreter_and_llvm():
    function = compile_kernel(overflowing_literals, h=skc.Ptr[skc.f16], f=skc.Ptr[skc.f32], b=skc.Ptr[skc.bf16],
                              n=I32)
    h, f, b = np.zeros(2, np.float16), np.zeros(3, np.float32), np.zeros(1, np.uint16)
    launch(function, h, f, b, 5)
    assert h.tolist() == [math.inf, -math.inf] and f.tolist() == [math.inf, -math.inf, 1.0]
    assert b[0] == 0x7F80   # bf16 +inf
    llvm = overflowing_literals.compile(target="sm_90a", block=32).ir("llvm")
    assert "0xH7C00" in llvm and "0xHFC00" in llvm and "0x7FF0000000000000" in llvm and "0xR7F80" in llvm


def test_float_literals_round_once_to_bf16_like_the_interpreter():
    from skc.backends.llvm_text import float_literal
    from skc.runtime.interpreter import numerics

    rng = np.random.default_rng(3)
    values = rng.standard_normal(3000) * 10.0 ** rng.integers(-45, 40, 3000)
    values[:3] = [float.fromhex("0x1.fefffffffffffp127"), float.fromhex("0x1.ff00000000001p127"), 1 + 2 ** -8 + 2 ** -40]
    for value in values.tolist():
        bits = np.array([numerics.from_python(ir.bf16, value)], np.float32).view(np.uint32)[0] >> 16
        assert float_literal(value, ir.bf16) == "0xR%04X" % bits, value


# -- item 7: bitwise atomics need integers; asm constraints are checked before LLVM -----------
@skc.kernel
def float_atomic_and(x: skc.Ptr[skc.f32]):
    skc.atomic_and(x, 1.0)  # HERE


@skc.kernel
def double_atomic_xor(x: skc.Ptr[skc.f64]):
    old = skc.atomic_xor(x + 1, 1.0)  # HERE


def test_bitwise_atomics_on_floats_are_errors():
    assert_at(error_of(float_atomic_and, skc.Ptr[skc.f32]), float_atomic_and, "# HERE",
              "atomic_and is bitwise and needs a pointer to integers, found a pointer to f32")
    assert_at(error_of(double_atomic_xor, skc.Ptr[skc.f64]), double_atomic_xor, "# HERE", "atomic_xor", "f64")


def test_the_verifier_rejects_a_bitwise_float_atomic():
    text = """
kernel @k(%p: ptr<global>) {block = [32, 1, 1]} {
  %v = arith.constant {value = 1.0} : f32
  %old = mem.atomic %p, %v {op = "or"} : f32
}
"""
    with pytest.raises(skc.CompileError) as info:
        ir.verify(ir.parse_module(text))
    assert "atomic or is bitwise and takes integers, found f32" in str(info.value)


def asm_kernel(constraints, dtype):
    @skc.kernel
    def uses_asm(x: skc.Ptr[skc.f32], y: skc.Ptr[skc.f64]):
        if dtype == "f64":
            y[0] = skc.asm("mov.b64 $0, $1;", y[1], constraints=constraints, dtype=skc.f64)  # ASM64
        else:
            x[0] = skc.asm("mov.b32 $0, $1;", x[1], constraints=constraints, dtype=skc.f32)  # ASM32
    return uses_asm


@pytest.mark.parametrize("constraints, dtype, phrase", [
    ("=q,zz", "f32", "'=q' is not one NVPTX inline asm takes"),
    ("=r,zz", "f32", "'zz' is not one NVPTX inline asm takes"),
    ("=x,r", "f32", "'=x' is not one"),
    ("=r,n", "f32", "'n' is not one"),
    ("=r,r", "f64", "'=r' holds 32-bit values, but its result has 64 bits"),
    ("=l,f", "f32", "'=l' holds 64-bit values"),
    ("=f", "f32", "name 0 inputs but 1 operands are passed"),
    ("=f,f,f", "f32", "name 2 inputs but 1 operands"),
    ("=f,1", "f32", "ties to output 1, but there are 1 outputs"),
    ("=f,f,~{bogus}", "f32", "unknown clobber '~{bogus}'"),
    ("f,=f", "f32", "output constraint '=f' follows an input"),
])
def test_bad_asm_constraints_are_errors_before_llvm(constraints, dtype, phrase):
    kernel = asm_kernel(constraints, dtype)
    assert_at(error_of(kernel, F32, skc.Ptr[skc.f64]), kernel, "# ASM64" if dtype == "f64" else "# ASM32", phrase)


def test_good_asm_constraints_reach_ptx():
    for constraints, dtype in (("=f,f", "f32"), ("=r,r", "f32"), ("=d,d", "f64"), ("=l,l", "f64"),
                               ("=f,0", "f32"), ("=&f,f,~{memory}", "f32")):
        ptx = asm_kernel(constraints, dtype).compile(target="sm_90a", block=32).asm("ptx")
        assert "mov.b" in ptx


def test_asm_on_amd_is_an_error_not_an_abort():
    kernel = asm_kernel("=v,v", "f32")
    assert_at(error_of(kernel, F32, skc.Ptr[skc.f64], target="gfx942", block=64), kernel, "# ASM32",
              "skc.asm is not available on AMD targets")


def test_an_llvm_abort_would_kill_the_process_so_none_is_left():
    """The reviewer's example in a child process: it must end with a CompileError, not a signal."""
    code = ("import skc\n"
            "@skc.kernel\n"
            "def k(x: skc.Ptr[skc.f32]):\n"
            "    x[0] = skc.asm('mov.b32 $0, $1;', x[1], constraints='=q,zz', dtype=skc.f32)\n"
            "try:\n"
            "    k.compile(target='sm_90a', block=32).asm('ptx')\n"
            "except skc.CompileError as e:\n"
            "    print('CompileError', e)\n")
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "skc_asm_abort_check.py")
    with open(path, "w") as f:
        f.write(code)
    env = dict(os.environ, SKC_CACHE="0", PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, path], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and "CompileError" in done.stdout, done.stderr


# -- item 7: foreign exceptions ------------------------------------------------------------------
def test_ptr_of_a_python_type_is_a_compile_error_at_the_annotation():
    with pytest.raises(skc.CompileError) as info:
        skc.Ptr[int]  # HERE
    text = str(info.value)
    assert text.startswith(f"{HERE}:"), text
    assert "int is not an skc dtype" in text and "skc.i32" in text
    assert skc.Ptr[np.float32] == skc.Ptr[skc.f32] and skc.Ptr["bfloat16"] == skc.Ptr[skc.bf16]
    with pytest.raises(skc.CompileError):
        skc.Ptr[skc.f32, "texture"]


@skc.kernel
def stores_a_pointer(x: skc.Ptr[skc.f32]):
    x[0] = x  # HERE


@skc.kernel
def full_of_python_type(x: skc.Ptr[skc.f32]):
    v = skc.full(4, 1.0, float)  # HERE


def test_internal_exceptions_do_not_leak_into_messages():
    assert_at(error_of(stores_a_pointer, F32), stores_a_pointer, "# HERE", "cannot store a pointer")
    assert_at(error_of(full_of_python_type, F32), full_of_python_type, "# HERE", "float is not an skc dtype")


# -- item 8: errors at the kernel line of the expression ----------------------------------------
@skc.kernel
def load_runtime_width(x: skc.Ptr[skc.f32], n: skc.i32):
    v = skc.load(x, width=n)  # HERE


@skc.kernel
def full_runtime_count(x: skc.Ptr[skc.f32], n: skc.i32):
    v = skc.full(n, 1.0, skc.f32)  # HERE


@skc.kernel
def thread_id_runtime_dim(x: skc.Ptr[skc.f32], n: skc.i32):
    x[0] = skc.thread_id(n)  # HERE


@skc.kernel
def sorted_runtime(x: skc.Ptr[skc.f32], n: skc.i32):
    a, b = sorted((x[0], x[1]))  # HERE


@skc.kernel
def barrier_named_runtime(x: skc.Ptr[skc.f32], n: skc.i32):
    skc.barrier_named(1, n)  # HERE   (a run-time id is allowed; a run-time thread count is not)


@skc.kernel
def barrier_named_odd_threads(x: skc.Ptr[skc.f32], n: skc.i32):
    skc.barrier_named(1, 100)  # HERE


def plain_helper(v):
    return int(v) + 1  # HELPER


@skc.kernel
def runtime_into_plain_helper(x: skc.Ptr[skc.f32], n: skc.i32):
    x[0] = plain_helper(n)


@skc.func
def inlined_loader(x, n):
    return skc.load(x, width=n)  # FUNC


@skc.kernel
def calls_inlined_loader(x: skc.Ptr[skc.f32], n: skc.i32):
    with_loader = inlined_loader(x, n)


def failing_helper(v):
    table = (1, 2)
    return v * table[5]  # RAISES


def _passed_through(fn):
    @functools.wraps(fn)
    def wrapper(*args):
        return fn(*args)  # WRAPPER
    return wrapper


@_passed_through
def decorated_failing_helper(v):
    return failing_helper(v + 1)  # CALLS


@skc.kernel
def calls_failing_helpers(x: skc.Ptr[skc.f32], n: skc.i32):
    x[0] = decorated_failing_helper(n)  # KERNEL


@pytest.mark.parametrize("kernel, phrase", [
    (load_runtime_width, "a load's width must be known at compile time, found a run-time i32"),
    (full_runtime_count, "the length of skc.full must be known at compile time"),
    (thread_id_runtime_dim, "the dimension must be known at compile time"),
    (sorted_runtime, "sorted() of a run-time value"),
    (barrier_named_runtime, "the thread count of a named barrier must be known at compile time"),
    (barrier_named_odd_threads, "100 threads is not a multiple of 32"),
])
def test_errors_of_builtins_point_at_the_kernel_line(kernel, phrase):
    assert_at(error_of(kernel, F32, skc.i32), kernel, "# HERE", phrase)


def test_errors_in_helpers_point_at_their_lines():
    assert_at(error_of(runtime_into_plain_helper, F32, skc.i32), plain_helper, "# HELPER",
              "a run-time value is used where a compile-time int is needed")
    text = error_of(calls_inlined_loader, F32, skc.i32)
    assert_at(text, inlined_loader, "# FUNC", "a load's width")
    # an exception a plain helper raises (not skc's own) points at the helper's line and column, with the lines
    # that called it, through a decorator's wrapper, to the kernel (it named the kernel's line alone)
    text = error_of(calls_failing_helpers, F32, skc.i32)
    lines = text.splitlines()
    assert lines[0].startswith(f"{HERE}:{line_of(failing_helper, '# RAISES')}:"), text
    assert "it raised IndexError: tuple index out of range" in lines[0]
    assert lines[2].index("^") == lines[1].index("table[5]"), text
    for fn, marker in ((failing_helper, "# RAISES"), (decorated_failing_helper, "# CALLS"),
                       (_passed_through, "# WRAPPER"), (calls_failing_helpers, "# KERNEL")):
        assert f"note: at {HERE}:{line_of(fn, marker)}:" in text, (marker, text)


@skc.kernel
def math_on_runtime_values(x: skc.Ptr[skc.f32], out: skc.Ptr[skc.i32]):
    i = skc.thread_id(0)
    x[i] = math.sqrt(x[i]) + math.fabs(x[i]) + math.exp(x[i] * 0.01)
    out[i] = math.floor(x[i]) + math.ceil(x[i])


def test_math_functions_take_runtime_values_with_pythons_result_types():
    function = compile_kernel(math_on_runtime_values, block=(8, 1, 1), x=F32, out=skc.Ptr[skc.i32])
    x = np.linspace(0.5, 40.0, 8).astype(np.float32)
    out = np.zeros(8, np.int32)
    want_x = [math.sqrt(v) + math.fabs(v) + math.exp(v * 0.01) for v in x.tolist()]
    launch(function, x, out)
    np.testing.assert_allclose(x, want_x, rtol=1e-6)
    assert out.tolist() == [math.floor(v) + math.ceil(v) for v in x.tolist()]


# -- item 9: accepted mistakes are errors, or Python's meaning -----------------------------------
@skc.kernel
def hashes(x: skc.Ptr[skc.f32], n: skc.i32):
    x[0] = hash(n)  # HERE


@skc.kernel
def ids(x: skc.Ptr[skc.f32], n: skc.i32):
    x[0] = id(n)  # HERE


@skc.kernel
def strs(x: skc.Ptr[skc.f32], n: skc.i32):
    s = str(n)  # HERE


@skc.kernel
def int_with_base(x: skc.Ptr[skc.f32], n: skc.i32):
    x[0] = int(n, 16)  # HERE


@skc.kernel
def load_width_zero(x: skc.Ptr[skc.f32], n: skc.i32):
    v = skc.load(x, width=0)  # HERE


@skc.kernel
def range_step_zero(x: skc.Ptr[skc.f32], n: skc.i32):
    for i in range(0, n, 0):  # HERE
        x[i] = 0.0


@skc.kernel
def static_range_step_zero(x: skc.Ptr[skc.f32], n: skc.i32):
    for i in skc.static_range(0, 4, 0):  # HERE
        x[i] = 0.0


@skc.kernel
def negative_shift(x: skc.Ptr[skc.f32], n: skc.i32):
    x[0] = n << -1  # HERE


@pytest.mark.parametrize("kernel, phrase", [
    (hashes, "hash() of a run-time value"),
    (ids, "id() of a run-time value"),
    (strs, "str() of a run-time value"),
    (int_with_base, "int() with a base parses a string"),
    (load_width_zero, "a load's width must be 1 to 256, found 0"),
    (range_step_zero, "range() step must not be zero"),
    (static_range_step_zero, "static_range() step must not be zero"),
    (negative_shift, "negative shift count -1"),
])
def test_python_errors_stay_errors(kernel, phrase):
    assert_at(error_of(kernel, F32, skc.i32), kernel, "# HERE", phrase)


@skc.kernel
def wide_shifts(x: skc.Ptr[skc.i32], n: skc.i32):
    x[0] = n << 40
    x[1] = n >> 40
    x[2] = (n - 100) >> 33
    x[3] = n << 3
    x[4] = n >> 1


def test_shifts_past_the_width_mean_what_python_means_after_wrapping():
    function = compile_kernel(wide_shifts, x=skc.Ptr[skc.i32], n=I32)
    for n in (7, -7, 0, 2 ** 31 - 1):
        x = np.zeros(5, np.int32)
        launch(function, x, n)
        want = [((v + 2 ** 31) % 2 ** 32) - 2 ** 31 for v in (n << 40, n >> 40, (n - 100) >> 33, n << 3, n >> 1)]
        assert x.tolist() == want, n


@skc.kernel
def tiny(x: skc.Ptr[skc.f32]):
    x[0] = 1.0


def test_too_many_threads_per_block_is_a_compile_error_at_the_kernel():
    for target, block in (("sm_90a", 4096), ("sm_90a", (32, 33, 1)), ("gfx942", 2048)):
        text = error_of(tiny, F32, target=target, block=block)
        assert text.startswith(f"{HERE}:{line_of(tiny, 'def tiny')}:"), text
        assert "allows 1 to 1024 threads per block" in text
    with pytest.raises(skc.CompileError):
        tiny.compile(target="sm_90a", block=4096)


# -- item 12: static_range has a budget --------------------------------------------------------
@skc.kernel
def huge_unroll(x: skc.Ptr[skc.f32]):
    for i in skc.static_range(5000):  # HERE
        x[0] = 1.0


@skc.kernel
def nested_unroll(x: skc.Ptr[skc.f32]):
    for i in skc.static_range(100):
        for j in skc.static_range(50):  # HERE
            x[0] = 1.0


@skc.kernel
def allowed_unroll(x: skc.Ptr[skc.f32]):
    for i in skc.static_range(5000, max_unroll=6000):
        x[0] = 1.0


def test_static_range_unrolls_at_most_4096_iterations(monkeypatch):
    assert_at(error_of(huge_unroll, F32), huge_unroll, "# HERE", "static_range would unroll 5000 iterations",
              "the limit is 4096", "use range()")
    assert_at(error_of(nested_unroll, F32), nested_unroll, "# HERE", "the limit is 4096")
    tile_ir(allowed_unroll, F32, passes=False)
    monkeypatch.setenv("SKC_MAX_UNROLL", "10000")
    tile_ir(huge_unroll, F32, passes=False)


@pytest.mark.parametrize("setting", ["20,000", "1e5", "lots"])
def test_a_max_unroll_setting_that_is_no_number_is_named_not_read_as_4096(monkeypatch, setting):
    """SKC_MAX_UNROLL=20,000 was read as the default 4096 silently, so the error told a user who had raised it to
    raise it."""
    monkeypatch.setenv("SKC_MAX_UNROLL", setting)
    assert_at(error_of(huge_unroll, F32), huge_unroll, "# HERE", f"SKC_MAX_UNROLL must be a whole number of "
              f"iterations, found {setting!r}")


# -- more foreign exceptions found by probing: each a located CompileError -----------------------
@skc.kernel
def calls_a_runtime_value(x: skc.Ptr[skc.f32], n: skc.i32):
    x[0] = n(3)  # HERE


@skc.kernel
def sqrt_of_a_pointer(x: skc.Ptr[skc.f32], n: skc.i32):
    y = skc.sqrt(x)  # HERE


@skc.kernel
def fma_of_a_pointer(x: skc.Ptr[skc.f32], n: skc.i32):
    y = skc.fma(x, 1.0, 2.0)  # HERE


@skc.kernel
def int_to_ptr_bad_space(x: skc.Ptr[skc.f32], n: skc.i32):
    p = skc.int_to_ptr(n, skc.f32, "bogus")  # HERE


@skc.kernel
def ptr_to_int_of_an_int(x: skc.Ptr[skc.f32], n: skc.i32):
    p = skc.ptr_to_int(n)  # HERE


@skc.kernel
def range_of_floats(x: skc.Ptr[skc.f32], n: skc.i32):
    for i in range(0, n, 0.5):  # HERE
        x[i] = 0.0


@skc.kernel
def dict_at_runtime_key(x: skc.Ptr[skc.f32], n: skc.i32):
    table = {1: 2.0}
    x[0] = table[n]  # HERE


@pytest.mark.parametrize("kernel, phrase", [
    (dict_at_runtime_key, "a dict can only be indexed by a compile-time key"),
    (calls_a_runtime_value, "a run-time i32 is not callable"),
    (sqrt_of_a_pointer, "needs a number, found a pointer"),
    (fma_of_a_pointer, "needs a number, found a pointer"),
    (int_to_ptr_bad_space, "unknown address space 'bogus'"),
    (ptr_to_int_of_an_int, "ptr_to_int needs a pointer, found i32"),
    (range_of_floats, "range() bounds must be integers, found 0.5"),
])
def test_misuses_are_located_compile_errors(kernel, phrase):
    assert_at(error_of(kernel, F32, skc.i32), kernel, "# HERE", phrase)


@skc.kernel
def runtime_divmod(x: skc.Ptr[skc.f32], n: skc.i32):
    q, r = divmod(n, 3)
    fq, fr = divmod(x[1], -0.75)
    x[0] = q * 10 + r
    x[2] = fq
    x[3] = fr


def test_divmod_of_runtime_values_is_pythons():
    function = compile_kernel(runtime_divmod, x=F32, n=I32)
    for n in (-7, -1, 0, 5, 11):
        x = np.array([0, 2.5 + n, 0, 0], np.float32)
        launch(function, x, n)
        q, r = divmod(n, 3)
        fq, fr = np.divmod(np.float32(2.5 + n), np.float32(-0.75))
        assert x.tolist() == [q * 10 + r, 2.5 + n, fq, fr], n


def test_a_block_no_gpu_runs_is_an_error_at_the_kernel_definition():
    with pytest.raises(skc.CompileError) as info:
        @skc.kernel(block=4096)  # DEF
        def too_wide(x: skc.Ptr[skc.f32]):
            x[0] = 1.0
    text = str(info.value)
    assert text.startswith(f"{HERE}:"), text
    assert "block (4096, 1, 1) has 4096 threads; GPUs run 1 to 1024 threads per block" in text

    @skc.kernel(block=1024)
    def widest(x: skc.Ptr[skc.f32]):
        x[0] = 1.0


def test_definition_errors_are_located():
    with pytest.raises(skc.CompileError) as info:
        @skc.kernel  # INT
        def int_annotated(x: int):
            x[0] = 1
    assert str(info.value).startswith(f"{HERE}:"), str(info.value)
    assert "annotated int, which names no width" in str(info.value) and "skc.i32" in str(info.value)
    with pytest.raises(skc.CompileError) as info:
        @skc.kernel
        def star_args(x: skc.Ptr[skc.f32], *rest):
            x[0] = 1
    assert str(info.value).startswith(f"{HERE}:") and "kernels take named parameters only" in str(info.value)
    with pytest.raises(skc.CompileError) as info:
        skc.thread_id(0)  # HOST
    assert str(info.value).startswith(f"{HERE}:"), str(info.value)
    assert "only works inside a kernel being compiled" in str(info.value)


@skc.kernel
def numpy_on_runtime_values(x: skc.Ptr[skc.f32], n: skc.i32):
    i = skc.thread_id(0)
    x[i] = np.sqrt(x[i]) + np.maximum(x[i], 2.0) + np.abs(x[i] - 3.0) + np.floor(x[i] * 0.5)


@skc.kernel
def numpy_without_a_dsl_meaning(x: skc.Ptr[skc.f32], n: skc.i32):
    x[0] = np.arctan2(x[1], x[2])  # HERE


@skc.kernel
def numpy_function_on_runtime_value(x: skc.Ptr[skc.f32], n: skc.i32):
    x[0] = np.linalg.norm(x[1])  # HERE


def test_numpy_ufuncs_take_runtime_values_or_say_they_cannot():
    function = compile_kernel(numpy_on_runtime_values, block=(8, 1, 1), x=F32, n=I32)
    x = np.linspace(0.25, 9.0, 8).astype(np.float32)
    want = np.sqrt(x) + np.maximum(x, np.float32(2.0)) + np.abs(x - np.float32(3.0)) + np.floor(x * np.float32(0.5))
    launch(function, x, 0)
    np.testing.assert_allclose(x, want, rtol=1e-6)
    assert_at(error_of(numpy_without_a_dsl_meaning, F32, skc.i32), numpy_without_a_dsl_meaning, "# HERE",
              "numpy.arctan2 cannot take run-time values")
    text = error_of(numpy_function_on_runtime_value, F32, skc.i32)
    assert text.startswith(f"{HERE}:{line_of(numpy_function_on_runtime_value, '# HERE')}:"), text
    assert "runs as plain Python at compile time and cannot take run-time values" in text


def text_helper(v):
    return "v=%s" % v  # TEXT


@skc.kernel
def formats_with_method(x: skc.Ptr[skc.f32], n: skc.i32):
    s = "{}".format(n)  # HERE


@skc.kernel
def formats_with_percent(x: skc.Ptr[skc.f32], n: skc.i32):
    s = "%s" % n  # HERE


@skc.kernel
def formats_in_helper(x: skc.Ptr[skc.f32], n: skc.i32):
    s = text_helper(n)


def test_runtime_values_have_no_text_at_compile_time():
    for kernel in (formats_with_method, formats_with_percent):
        assert_at(error_of(kernel, F32, skc.i32), kernel, "# HERE", "a run-time value has no text at compile time")
    text = error_of(formats_in_helper, F32, skc.i32)
    assert text.startswith(f"{HERE}:{line_of(text_helper, '# TEXT')}:"), text
    assert "CompileError" not in text   # not wrapped into a second message


def _len_of_a_list_of_run_time_values(x):
    values = [x[0], x[1], x[2]]
    x[3] = len(values) + (len((x[0], x[1])) if len(values) > 1 else 0)


def test_len_of_a_list_of_run_time_values_is_its_compile_time_length():
    """len() refuses a run-time value, but a list holding run-time values has a length known at compile time."""
    function = compile_kernel(_len_of_a_list_of_run_time_values, x=F32)
    x = np.array([1.0, 2.0, 3.0, 0.0], np.float32)
    launch(function, x)
    assert x[3] == 5.0


HUGE = range(10 ** 12)


@skc.kernel
def loops_over_a_huge_range(x: skc.Ptr[skc.f32]):
    for i in HUGE:  # HERE
        x[0] += i


@skc.kernel
def sums_a_long_list(x: skc.Ptr[skc.f32]):
    x[0] = sum([1.0 for _ in range(70000)])   # (range() in a comprehension: a compile-time list)  # HERE


@pytest.mark.parametrize("kernel", [loops_over_a_huge_range, sums_a_long_list], ids=["for", "comprehension"])
def test_a_compile_time_loop_over_too_many_items_is_an_error_at_its_line(kernel):
    """A loop over a Python iterable unrolls at compile time: over 10**12 items it compiled until memory ran out,
    over 100,000 for half a minute; past 65536 items it is an error at once."""
    import time

    begin = time.perf_counter()
    with pytest.raises(skc.CompileError, match="has more than 65536 items") as info:
        compile_kernel(kernel, x=skc.Ptr[skc.f32])
    assert str(info.value).startswith(f"{HERE}:{line_of(kernel, '# HERE')}:"), str(info.value)
    assert time.perf_counter() - begin < 5


@skc.kernel
def _too_long(x: skc.Ptr[skc.f32], which: skc.constexpr):
    v = skc.full(300, 1.0, skc.f32) if which == "full" else skc.load(x, width=2**64)
    x[0] = v[0]


@pytest.mark.parametrize("which, message", [("full", "the length of skc.full must be 1 to 256, found 300"),
                                            ("load", "a load's width must be 1 to 256")])
def test_a_vector_longer_than_the_ir_holds_is_named_by_its_builtin(which, message):
    """It was the IR's ValueError, in the message as 'ValueError: vector length must be within 1..256'."""
    with pytest.raises(skc.CompileError, match=message) as info:
        _too_long[1, 1](np.zeros(1, np.float32), which)
    assert "ValueError" not in str(info.value)


@skc.kernel
def with_a_runtime_value(x: F32, n: skc.i32):
    with n:   # marker: with
        x[0] = 1.0


@skc.kernel
def attribute_of_a_runtime_value(x: F32, n: skc.i32):
    n.scale = 2   # marker: attribute
    x[0] = 1.0


@pytest.mark.parametrize("kernel, marker, phrase", [
    (with_a_runtime_value, "marker: with", "a run-time value has no method __enter__"),
    (attribute_of_a_runtime_value, "marker: attribute", "cannot set attribute 'scale' of a run-time value"),
])
def test_errors_about_a_runtime_value_do_not_name_the_compilers_classes(kernel, marker, phrase):
    """A run-time value is one to the user, not an RValue (the class the compiler keeps it in)."""
    text = error_of(kernel, F32, skc.i32)
    assert_at(text, kernel, marker, phrase)
    assert "RValue" not in text


@skc.kernel
def float_atomic_cas(x: skc.Ptr[skc.f32]):
    skc.atomic_cas(x, 0.0, 1.0)  # HERE


@skc.kernel
def short_atomic_cas(x: skc.Ptr[skc.i16]):
    skc.atomic_cas(x, 0, 1)  # HERE


def test_compare_and_swap_of_floats_or_short_integers_is_an_error_at_its_line():
    # the verifier takes 32- and 64-bit integers only: these were VerificationErrors ("skc built bad IR")
    assert_at(error_of(float_atomic_cas, skc.Ptr[skc.f32]), float_atomic_cas, "# HERE",
              "atomic_cas takes pointers to 32- or 64-bit integers, found a pointer to f32", "skc.bitcast(")
    text = error_of(short_atomic_cas, skc.Ptr[skc.i16])
    assert_at(text, short_atomic_cas, "# HERE", "found a pointer to i16")
    assert "VerificationError" not in text and "'mem.atomic_cas' op" not in text


@skc.kernel
def modular_power(x: skc.Ptr[skc.f32], n: skc.i32):
    x[0] = pow(n, 2) + pow(3, 4, 5)
    x[1] = pow(n, 2, 5)  # HERE


def test_pow_with_a_modulus_of_run_time_values_is_an_error_at_its_line():
    """pow(n, 2, 5) of a run-time n said "TypeError: Dyn.__pow__() takes 2 positional arguments but 3 were given";
    pow(n, 2) and pow of numbers keep Python's meaning."""
    text = error_of(modular_power, F32, skc.i32)
    assert_at(text, modular_power, "# HERE", "pow() with a modulus of run-time values has no run-time form",
              "(x ** n) % m")
    assert "Dyn" not in text


class Flags:
    """An object of the user's whose method gives a compile-time truth."""

    def on(self):
        return True


@skc.kernel
def method_as_condition(x: skc.Ptr[skc.f32], mode: skc.constexpr):
    flags = Flags()
    if mode == "if":
        if flags.on:   # IF
            x[0] = 1.0
    elif mode == "while":
        while flags.on:   # WHILE
            x[0] = 1.0
    elif mode == "not":
        x[0] = 1.0 if not flags.on else 2.0   # NOT
    else:
        if flags.on():
            x[0] = 1.0


@pytest.mark.parametrize("mode, marker", [("if", "IF"), ("while", "WHILE"), ("not", "NOT")])
def test_the_truth_of_a_method_itself_is_an_error_at_its_line(mode, marker):
    """`if roles.is_producer:` (the method, not its result) was always true: both roles' code ran as the producer,
    and the kernel hung (the interpreter reported a deadlock). A bound method is always true: refused, saying to
    call it."""
    text = error_of(method_as_condition, F32, mode)
    assert_at(text, method_as_condition, marker, "the truth of the method Flags.on itself", "hint: call it: on()")


def test_a_called_method_is_a_condition_as_before():
    assert "store" in tile_ir(method_as_condition, F32, "called")


class Scaler:
    """An object of the user's with a method that takes an argument: a callback a helper may be given, or None."""

    def __init__(self, factor):
        self.factor = factor

    def apply(self, value):
        return value * self.factor


@skc.func
def optional_hook(value, hook):
    if hook:   # (Python's truth of a callback given or None)
        return hook(value)
    return value


@skc.kernel
def method_as_optional_callback(x: skc.Ptr[skc.f32], given: skc.constexpr):
    hook = Scaler(2.0).apply if given else None
    x[0] = optional_hook(x[0], hook)


@pytest.mark.parametrize("given, want", [(True, 6.0), (False, 3.0)])
def test_a_method_taking_arguments_is_true_as_a_callback_given(given, want):
    """`if hook:` of a method that takes arguments tests that a callback was given (None otherwise), as in Python: it
    was refused as the truth of a method itself (meant for predicates called without arguments, `roles.is_producer`)."""
    x = np.array([3.0], np.float32)
    method_as_optional_callback[1, 1](x, given)
    assert x[0] == want


@skc.func
def scaled(value, factor):
    return value * factor


@skc.kernel
def wrong_helper_arguments(x: skc.Ptr[skc.f32]):
    x[0] = scaled(x[0])   # CALL


def test_wrong_arguments_to_a_function_say_what_it_takes():
    """'wrong arguments to scaled(): missing a required argument: 'factor'' said nothing more (the blocks' own calls
    too: `load(stage, k, tile.row0, tile.col0)` said 'too many positional arguments')."""
    text = error_of(wrong_helper_arguments, F32)
    assert_at(text, wrong_helper_arguments, "# CALL", "wrong arguments to scaled()", "hint: it takes scaled(value, factor)")
