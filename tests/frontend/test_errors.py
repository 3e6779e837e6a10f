"""Compile errors: FILE:LINE:COL: error: ..., the source line with a caret, and a hint."""
import os

import pytest

import skc
from helpers import line_of, tile_ir

F32P = skc.Ptr[skc.f32]
HERE = os.path.abspath(__file__)


def compile_error(kernel, *args, **kwargs) -> skc.CompileError:
    with pytest.raises(skc.CompileError) as info:
        tile_ir(kernel, *args, **kwargs)
    return info.value


def assert_points_at(error: skc.CompileError, kernel, marker: str):
    text = str(error)
    line = line_of(kernel, marker)
    assert text.startswith(f"{HERE}:{line}:"), text
    assert "error:" in text.splitlines()[0]
    source = text.splitlines()[1]
    assert marker.split("#")[0].strip()[:10] in source, text
    assert "^" in text.splitlines()[2]


@skc.kernel
def uses_try(x: F32P):
    try:  # HERE
        x[0] = 1.0
    except ValueError:
        pass


def test_unsupported_statement_names_the_alternative():
    error = compile_error(uses_try)
    assert_points_at(error, uses_try, "try:  # HERE")
    assert "'try' statements are not supported in kernels" in str(error)
    assert "hint: exceptions do not exist on the GPU" in str(error)


@skc.kernel
def float_index(x: F32P):
    y = x + 1.5  # HERE
    y[0] = 0.0


def test_type_mismatch_names_the_types():
    error = compile_error(float_index)
    assert_points_at(error, float_index, "y = x + 1.5")
    assert "an index must be an integer, found f32" in str(error)
    assert "hint:" in str(error)


@skc.kernel
def undefined_name(x: F32P):
    x[0] = not_defined_anywhere  # noqa: F821  # HERE


def test_undefined_name():
    error = compile_error(undefined_name)
    assert_points_at(error, undefined_name, "not_defined_anywhere")
    assert "name 'not_defined_anywhere' is not defined" in str(error)


def plain_helper(v):
    if v > 0:  # HERE
        return v
    return -v


@skc.kernel
def calls_plain_helper(x: F32P):
    x[0] = plain_helper(x[1])


def test_runtime_bool_in_plain_python_suggests_skc_func():
    error = compile_error(calls_plain_helper)
    assert "a run-time value is used where Python needs a bool" in str(error)
    assert "@skc.func" in str(error)
    assert f":{line_of(plain_helper, 'if v > 0')}:" in str(error)


@skc.func
def device_abs(v):
    if v > 0:
        return v
    return -v


@skc.kernel
def calls_device_function(x: F32P):
    x[0] = device_abs(x[1])


def test_skc_func_allows_runtime_control_flow():
    text = tile_ir(calls_device_function)
    assert "scf.if" in text or "arith.select" in text


@skc.kernel
def int_accumulator(x: F32P, n: skc.i32):
    acc = 0
    for i in range(n):
        acc += x[i]  # HERE
    x[0] = acc


def test_loop_variable_cannot_silently_narrow():
    error = compile_error(int_accumulator)
    assert_points_at(error, int_accumulator, "acc += x[i]")
    assert "variable 'acc' holds i32 but is assigned f32" in str(error)
    assert "acc = 0.0" in str(error)


@skc.kernel
def returns_value(x: F32P):
    return x[0]  # HERE


def test_kernel_cannot_return_a_value():
    error = compile_error(returns_value)
    assert_points_at(error, returns_value, "return x[0]")
    assert "a kernel returns nothing" in str(error)


@skc.kernel
def runtime_static_range(x: F32P, n: skc.i32):
    for i in skc.static_range(n):  # HERE
        x[i] = 0.0


def test_static_range_needs_compile_time_bounds():
    error = compile_error(runtime_static_range)
    assert_points_at(error, runtime_static_range, "skc.static_range(n)")
    assert "static_range bounds must be known at compile time" in str(error)


@skc.kernel
def too_much_shared(x: F32P):
    buffer = skc.shared((100_000,), skc.f32)  # HERE
    buffer[0] = x[0]


def test_shared_memory_budget():
    error = compile_error(too_much_shared)
    assert_points_at(error, too_much_shared, "skc.shared((100_000,)")
    assert "exceeds the 232448 bytes a block may use on sm_90a" in str(error)


@skc.kernel
def inner(x: F32P):
    x[0] = 1.0


@skc.kernel
def calls_kernel(x: F32P):
    inner(x)  # HERE


def test_kernel_calling_kernel():
    error = compile_error(calls_kernel)
    assert_points_at(error, calls_kernel, "inner(x)")
    assert "a kernel cannot be called from a kernel" in str(error)


@skc.kernel
def vector_index(x: F32P, i: skc.i32):
    v = skc.load(x, width=4)
    x[0] = v[i]  # HERE


def test_vector_index_must_be_constant():
    error = compile_error(vector_index)
    assert_points_at(error, vector_index, "x[0] = v[i]")
    assert "a vector element index must be a compile-time int" in str(error)


@skc.kernel
def changed_type_after_if(x: F32P, n: skc.i32):
    if n > 0:
        y = skc.load(x, width=4)
    else:
        y = x[0]
    x[1] = y  # HERE


def test_name_with_different_types_after_if():
    error = compile_error(changed_type_after_if)
    assert_points_at(error, changed_type_after_if, "x[1] = y")
    assert "'y' has different types after the branches" in str(error)


@skc.kernel
def wide_access(x: F32P):
    v = skc.load(x, width=8)  # HERE
    skc.store(x, v)


def test_access_wider_than_16_bytes():
    error = compile_error(wide_access)
    assert_points_at(error, wide_access, "width=8")
    assert "moves 32 bytes; one access moves 1, 2, 4, 8 or 16 bytes" in str(error)


@skc.kernel
def compile_time_assert(x: F32P, n: skc.constexpr):
    assert n % 4 == 0, "n must be a multiple of 4"  # HERE
    x[0] = 0.0


def test_compile_time_assert():
    error = compile_error(compile_time_assert, F32P, skc.constexpr(6))
    assert_points_at(error, compile_time_assert, "assert n % 4")
    assert "assertion failed at compile time: n must be a multiple of 4" in str(error)


@skc.kernel
def break_outside_loop(x: F32P):
    x[0] = 1.0


def test_error_inside_block_library_points_at_user_line():
    """An error raised inside skc's own code points at the user's line that called it."""
    @skc.kernel
    def bad_reduce(x: F32P):
        x[0] = skc.warp_reduce(x[1], "product")  # HERE

    error = compile_error(bad_reduce)
    assert "unknown reduction 'product'" in str(error)
    assert f":{line_of(bad_reduce, 'warp_reduce')}:" in str(error).splitlines()[0]


def test_cli_compile_error_exit_code(tmp_path, capsys):
    from skc.cli import main

    source = tmp_path / "broken.py"
    source.write_text("import skc\n\n@skc.kernel\ndef k(x: skc.Ptr[skc.f32]):\n    x[0] = y\n")
    assert main(["compile", str(source), "--emit", "tile"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{source}:5:12: error: name 'y' is not defined")


def test_cli_names_a_path_it_cannot_load_or_write(tmp_path, capsys):
    """A file that is not Python, a folder, and an -o that names a file or cannot be made ended in tracebacks
    (AttributeError from importlib, FileExistsError and FileNotFoundError from os.makedirs)."""
    from skc.cli import main

    text, source, taken = tmp_path / "notes.txt", tmp_path / "k.py", tmp_path / "taken"
    text.write_text("hello\n")
    source.write_text("import skc\n\n@skc.kernel\ndef k(x: skc.Ptr[skc.f32]):\n    x[0] = 1.0\n")
    taken.write_text("")
    cases = [(["compile", str(text)], "is not a Python file"), (["compile", str(tmp_path)], "is not a file"),
             (["compile", str(source), "--emit", "tile", "-o", str(taken)], "a file of that name exists"),
             (["compile", str(source), "--emit", "tile", "-o", str(taken / "below")], "cannot make the folder")]
    for argv, message in cases:
        assert main(argv) == 1
        assert message in capsys.readouterr().err


@pytest.mark.parametrize("command", ["compile", "run"])
def test_cli_names_the_line_of_a_file_that_does_not_parse(tmp_path, capsys, command):
    """A SyntaxError in the file was a traceback through skc's loader (cli.load_module), not an error at its line."""
    from skc.cli import main

    source = tmp_path / "broken.py"
    source.write_text("import skc\n\nx = (\n")
    assert main([command, str(source)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{source}:3:5: error: '(' was never closed"), err
    assert "x = (" in err.splitlines()[1] and "Traceback" not in err


@skc.func
def recursive_factorial(n):
    if n <= 1:
        return 1
    return n * recursive_factorial(n - 1)  # HERE


@skc.kernel
def calls_a_recursive_function(x: F32P):
    x[0] = recursive_factorial(x[1])  # CALL


@skc.kernel
def recursion_at_compile_time(x: F32P):
    x[0] = recursive_factorial(5)


def test_recursion_on_a_run_time_value_is_one_error_with_its_call_site_once():
    """A function that calls itself on a run-time value cannot be inlined: the error names the recursive call, then
    its call site once with the count of repeats, then the kernel's call (it printed the same note 63 times)."""
    error = compile_error(calls_a_recursive_function)
    assert_points_at(error, recursive_factorial, "return n * recursive_factorial(n - 1)  # HERE")
    text = str(error)
    assert "kernels cannot recurse; write a loop" in text
    here = f"note: at {HERE}:{line_of(recursive_factorial, '# HERE')}:"
    assert text.count(here) == 1 and "note: (the line above 62 more times)" in text, text
    assert f"note: at {HERE}:{line_of(calls_a_recursive_function, '# CALL')}:" in text
    assert len(text.splitlines()) < 10, text
    assert "recursive_factorial" not in tile_ir(recursion_at_compile_time, F32P)   # a compile-time n recurses


@skc.func
def zero_or_half(v):
    if v < 0.0:
        return 0, 1  # FIRST
    return v * 0.5, 2  # HERE


@skc.kernel
def returns_int_then_float(x: F32P):
    x[0] = zero_or_half(x[1])[0]


def test_a_later_return_of_a_wider_type_names_the_return_and_the_fix():
    """An earlier `return 0` fixes the returned value's type as i32; a later f32 return said "variable 'return value'
    holds i32" with the hint "`return value = 0.0`", which is no Python."""
    error = compile_error(returns_int_then_float)
    assert_points_at(error, zero_or_half, "return v * 0.5, 2  # HERE")
    text = str(error)
    first = line_of(zero_or_half, "# FIRST")
    assert f"this function returns i32 as value 0 at line {first} and f32 here" in text, text
    assert f"hint: return one type on every path: f32 at line {first} too (a number such as 0.0" in text, text
    assert "return value" not in text, text


# -- run-time values kept by objects that outlive a compile -------------------------------------------------------
class _Box:
    pass


_KEPT = _Box()
_KEPT.inner = _Box()   # (not a module global itself: E's refusal of a global's attribute does not see it)
_SHARED = _Box()
_SHARED.inner = _Box()


@skc.kernel
def _keeps_through_a_global(x: F32P, out: F32P, n: skc.constexpr):
    _KEPT.inner.v = x[0] * n
    out[0] = _KEPT.inner.v


def test_an_attribute_an_earlier_specialization_set_is_set_anew_by_the_next():
    """The object keeps the first compile's variable; the second compile's store makes its own (it stored into the
    first's, and a read of it failed naming run-time paths)."""
    import numpy as np

    for n in (2, 3):
        x, out = np.array([5.0], np.float32), np.zeros(1, np.float32)
        _keeps_through_a_global.interpret[1, 1](x, out, n)
        assert out[0] == 5.0 * n


@skc.kernel
def _sets_shared(x: F32P, out: F32P):
    _SHARED.inner.v = x[0]
    out[0] = _SHARED.inner.v


@skc.kernel
def _reads_shared(x: F32P, out: F32P):
    out[0] = _SHARED.inner.v + 1.0  # HERE


def test_reading_a_run_time_value_another_compile_left_in_an_object_is_named():
    import numpy as np

    x, out = np.array([5.0], np.float32), np.zeros(1, np.float32)
    _sets_shared.interpret[1, 1](x, out)
    with pytest.raises(skc.CompileError) as info:
        _reads_shared.interpret[1, 1](x, out)
    assert_points_at(info.value, _reads_shared, "out[0] = _SHARED.inner.v + 1.0  # HERE")
    assert "'v' holds a run-time value of another compile" in str(info.value)
    assert "outlives the kernel" in str(info.value)


@skc.kernel
def _keeps_in_a_constexpr(x: F32P, out: F32P, box: skc.constexpr):
    box.inner.v = x[0]  # HERE
    out[0] = box.inner.v


def test_a_run_time_value_stored_into_a_constexpr_argument_is_refused_naming_it():
    """A constexpr argument is the compile's key: the variable this compile left in it failed the launch's key, taken
    again after the compile, in keying's words (Unkeyable, no skc error), and every later launch with the object."""
    import numpy as np

    box = _Box()
    box.inner = _Box()
    x, out = np.array([5.0], np.float32), np.zeros(1, np.float32)
    for _ in range(2):
        with pytest.raises(skc.CompileError) as info:
            _keeps_in_a_constexpr.interpret[1, 1](x, out, box)
        assert_points_at(info.value, _keeps_in_a_constexpr, "box.inner.v = x[0]  # HERE")
        assert ("the kernel stores a run-time value into 'v' of '_Box' object that constexpr argument 'box' holds"
                in str(info.value))
        assert "make the _Box inside the kernel" in info.value.hint
        assert vars(box.inner) == {}


# -- a compile that fails leaves the objects that outlive it as they were ------------------------------------------
_HELD = _Box()
_HELD.inner = _Box()


@skc.kernel
def _sets_on_one_branch_then_fails(x: F32P, out: F32P):
    if x[0] > 0.0:
        _HELD.inner.v = x[0]
    out[0] = _no_such_name  # noqa: F821


@skc.kernel
def _sets_then_fails(x: F32P, out: F32P):
    _HELD.inner.v = x[0]
    _HELD.inner.w = 3
    out[0] = _no_such_name  # noqa: F821


@skc.kernel
def _reads_held(x: F32P, out: F32P):
    out[0] = x[0] + _HELD.inner.v


def test_a_failed_compile_puts_back_the_attributes_it_set():
    """The failed compile left an error marker (or its variable) in the object: the next compile, correct, read it
    and failed with "'_Box.v' holds 1.5 on some paths ..." about run-time paths it does not have."""
    import numpy as np

    for failing in (_sets_on_one_branch_then_fails, _sets_then_fails):
        _HELD.inner.v = 1.5
        x, out = np.array([5.0], np.float32), np.zeros(1, np.float32)
        with pytest.raises(skc.CompileError, match="_no_such_name"):
            failing.interpret[1, 1](x, out)
        assert vars(_HELD.inner) == {"v": 1.5}
        _reads_held.interpret[1, 1](x, out)
        assert out[0] == 6.5


@skc.kernel
def _sets_on_one_branch(x: F32P, out: F32P):
    if x[0] > 0.0:
        _HELD.inner.u = x[0]
    out[0] = 1.0


@skc.kernel
def _reads_what_another_left_unknown(x: F32P, out: F32P):
    out[0] = _HELD.inner.u  # HERE


def test_reading_an_attribute_another_compile_left_unknown_is_named():
    """A compile that succeeds leaves the attribute it set on some paths unknown; the next compile's read said
    "holds ... on some paths that reach this point", of paths that compile does not have."""
    import numpy as np

    x, out = np.array([5.0], np.float32), np.zeros(1, np.float32)
    _sets_on_one_branch.interpret[1, 1](x, out)
    with pytest.raises(skc.CompileError) as info:
        _reads_what_another_left_unknown.interpret[1, 1](x, out)
    assert_points_at(info.value, _reads_what_another_left_unknown, "out[0] = _HELD.inner.u  # HERE")
    assert "'_Box.u' was left unknown by another compile" in str(info.value)
    assert "outlives the kernel" in str(info.value)


# -- a kernel's source read again from a file that changed ------------------------------------------------------------
def test_a_kernel_whose_file_changed_since_it_was_defined_is_refused(tmp_path):
    """Its source is read from the file at its first compile: a file edited after the import (or a worker's copy of
    it, where the kernel was unpickled by value) had another function there, which compiled and ran in its place."""
    import importlib.util
    import linecache

    import numpy as np

    path = tmp_path / "edited_kernels.py"
    path.write_text("import skc\n\n@skc.kernel(block=1)\ndef writes(out: skc.Ptr[skc.f32]):\n    out[0] = 1.0\n")
    spec = importlib.util.spec_from_file_location("edited_kernels", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path.write_text("import skc\n\n@skc.kernel(block=1)\ndef other(out: skc.Ptr[skc.f32]):\n    out[0] = 2.0\n")
    linecache.checkcache(str(path))
    out = np.zeros(1, np.float32)
    with pytest.raises(skc.CompileError, match="no longer where it was defined") as info:
        module.writes.interpret[1, 1](out)
    assert "`def other`" in str(info.value) and "import the module again" in str(info.value)
    assert out[0] == 0.0


@pytest.mark.parametrize("edit", ["    out[0] = a + 1000\n", "    out[0] = a - 1\n", "    out[0] = a + 1.0\n"])
def test_a_kernel_whose_file_changed_on_its_own_lines_is_refused(tmp_path, edit):
    """The same, the def left on its line: the new text compiled (a + 1000) beside the module imported (a + 1), with
    no error (sixty-fourth session's search). The file is compiled again and the function's code compared."""
    import importlib.util
    import linecache

    import numpy as np

    head = "import skc\n\n@skc.kernel(block=1)\ndef k(out, a: skc.i32):\n"
    path = tmp_path / "edited_in_place.py"
    path.write_text(head + "    out[0] = a + 1\n")
    spec = importlib.util.spec_from_file_location("edited_in_place", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path.write_text(head + edit)
    linecache.checkcache(str(path))
    out = np.zeros(1, np.int32)
    with pytest.raises(skc.CompileError, match="changed after the function was defined") as info:
        module.k.interpret[1, 1](out, 5)
    assert "import the module again" in str(info.value) and out[0] == 0
    path.write_text(head + "    out[0] = a + 1\n")   # (the text back as imported: it compiles)
    linecache.checkcache(str(path))
    module.k.interpret[1, 1](out, 5)
    assert out[0] == 6


def test_a_kernel_in_a_file_pytest_rewrote_is_not_taken_for_an_edited_one(tmp_path):
    """pytest rewrites the asserts of a nested def: the file compiled again gave other code for the kernel, which the
    check of edited files refused, nothing edited (the sixty-fourth session's review). Run by pytest in its own
    process, the kernel compiles and runs."""
    import subprocess
    import sys

    (tmp_path / "test_rewritten.py").write_text(
        "import numpy as np\nimport skc\n\n\n@skc.kernel(block=1)\ndef nested_assert(x: skc.Ptr[skc.f32]):\n"
        "    def helper(v):\n        assert v > 0.0\n        return v * 2.0\n    x[0] = helper(2.0)\n\n\n"
        "def test_it():\n    out = np.zeros(1, np.float32)\n    nested_assert[1, 1](out)\n    assert out[0] == 4.0\n")
    env = dict(os.environ, SKC_DEVICE="interpreter",
               PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(skc.__file__)), str(tmp_path)]))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=300, cwd=str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
