"""Findings of a search with generated malformed and unusual kernels: each is Python's meaning, or a clean skc
error at the user's line, where skc gave a wrong answer, a foreign exception or an abort."""
import functools

import numpy as np
import pytest

import skc


def _doubled(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs) * 2.0
    return wrapper


@_doubled
@skc.func
def _wrapped_identity(a):
    return a


@skc.kernel
def _calls_a_wrapped_func(x: skc.Ptr[skc.f32]):
    x[0] = _wrapped_identity(x[1])


def test_a_functools_wraps_wrapper_around_an_skc_func_runs():
    """functools.wraps copies the wrapped object's __dict__: an @skc.func kept its function there, so the wrapper
    passed for the @skc.func itself and the kernel inlined the function without the wrapper (1.0, not 2.0)."""
    x = np.array([0.0, 1.0], np.float32)
    _calls_a_wrapped_func[1, 1](x)
    assert x[0] == 2.0


@skc.kernel
def _numpy_array_changed_in_a_branch(x: skc.Ptr[skc.f32], n: skc.i32):
    a = np.zeros(2)
    if n > 2:
        a[0] = 5.0  # HERE
    x[0] = a[0]


@skc.kernel
def _list_slice_changed_in_a_branch(x: skc.Ptr[skc.f32], n: skc.i32):
    a = [3.0, 1.0]
    if n > 2:
        a[:] = [5.0, 6.0]  # HERE
    x[0] = a[0]


@skc.kernel
def _containers_changed_where_they_are_made(x: skc.Ptr[skc.f32], n: skc.i32):
    a = np.zeros(2)
    a[1] = 2.0
    b = [0.0, 0.0]
    b[:] = [1.0, 4.0]
    if n > 2:
        c = np.ones(2)
        c[0] = 3.0
        d = [0.0]
        d[:] = [5.0]
        x[1] = c[0] + d[0]
    x[0] = a[1] + b[1]


def test_a_compile_time_container_changed_in_a_run_time_branch_is_an_error():
    """A store into a numpy array made in the kernel, or into a slice of a list, inside a run-time branch ran at
    compile time on every path: the branch not taken still changed the value read after it (5.0 for 0.0 and 3.0).
    An element store into a list was refused already; these are now refused alike, at the line."""
    from helpers import line_of

    for kernel in (_numpy_array_changed_in_a_branch, _list_slice_changed_in_a_branch):
        with pytest.raises(skc.CompileError, match="made outside this run-time loop or branch is changed inside it"
                           ) as info:
            kernel.compile(skc.Ptr[skc.f32], skc.i32, target="sm_90a", block=1)
        assert str(info.value).startswith(f"{__file__}:{line_of(kernel, '# HERE')}:"), str(info.value)
    x = np.zeros(2, np.float32)
    _containers_changed_where_they_are_made[1, 1](x, 3)
    assert x.tolist() == [6.0, 8.0]


def _kernel_named(name, prints=True):
    def kernel(x: skc.Ptr[skc.f32]):
        if prints:
            print("ran")
        x[0] = 1.0
    kernel.__name__ = name
    return skc.kernel(kernel)


@pytest.mark.parametrize("name", ["ядро", "k\u00e9", "_", "1k", "k.x", "k k", "", "WARP_SZ", "vprintf", "__skc_shared",
                                  "__skc_fmod_f32"])
def test_a_kernel_of_any_name_compiles_and_runs(name):
    """Names PTX cannot spell (a unicode identifier, `_`, a __name__ set to '1k' or 'k.x') gave 'internal error:
    skc produced invalid LLVM IR' or a ptxas syntax error, and names skc's own symbols take (vprintf with a print,
    __skc_shared) redefined them; the entry symbol is now spelled in ASCII where the name is not a plain one."""
    kernel = _kernel_named(name)
    compiled = kernel.compile(skc.Ptr[skc.f32], target="sm_90a", block=32)
    symbol = skc.frontend.symbol_name(name)
    assert symbol.isascii() and f".entry {symbol}(" in compiled.asm("ptx") and compiled.name == symbol
    compiled.asm("sass")   # ptxas takes it
    amd = _kernel_named(name, prints=False)   # (print has no AMD form)
    assert symbol in amd.compile(skc.Ptr[skc.f32], target="gfx942", block=64).asm("gcn")
    x = np.zeros(1, np.float32)
    kernel[1, 1](x)
    assert x[0] == 1.0
    assert skc.frontend.symbol_name("vector_add") == "vector_add"   # plain names keep their spelling


def test_a_kernel_name_llvm_cannot_print_is_no_abort(tmp_path):
    """A kernel whose __name__ is 'k-1' parsed as LLVM IR but aborted the process in the NVPTX printer
    ('LLVM ERROR: Symbol name with unsupported characters')."""
    import os
    import subprocess
    import sys

    script = tmp_path / "dash_named.py"
    script.write_text("import skc\n"
                      "def k(x: skc.Ptr[skc.f32]):\n"
                      "    x[0] = 1.0\n"
                      "k.__name__ = 'k-1'\n"
                      "print(skc.kernel(k).compile(skc.Ptr[skc.f32], target='sm_90a', block=32).asm('sass') != '')\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr[-2000:]


def test_a_kernel_or_func_over_something_not_a_def_is_an_skc_error():
    """@skc.kernel stacked on @skc.func or on itself, or over functools.lru_cache or a builtin, and @skc.func over a
    builtin or a functools.partial, raised AttributeError ('... has no attribute __code__') from skc's source
    reader, or a CompileError reading 'AttributeError: ...'."""
    import functools

    def body(x: skc.Ptr[skc.f32]):
        x[0] = 1.0

    x = np.zeros(1, np.float32)
    for made in (skc.kernel(skc.func(body)), skc.kernel(skc.kernel(body)), skc.kernel(functools.lru_cache(body)),
                 skc.kernel(len)):
        with pytest.raises(skc.CompileError, match="not a Python function: skc compiles functions written with def"):
            made[1, 1](x)
    for inner in (len, functools.partial(max, 0.0)):
        helper = skc.func(inner)

        @skc.kernel
        def calls_helper(x: skc.Ptr[skc.f32]):
            x[0] = helper(x[0])

        with pytest.raises(skc.CompileError) as info:
            calls_helper[1, 1](x)
        assert "not a Python function" in str(info.value) and "AttributeError" not in str(info.value)


@pytest.mark.parametrize("decorator", ["kernel", "func"])
@pytest.mark.parametrize("argument", [128, (128, 2), "k"])
def test_a_kernel_or_func_of_something_not_callable_is_named(decorator, argument):
    """@skc.kernel(128) (the block given as if positional) raised AttributeError: 'int' object has no attribute
    '__qualname__' from the parameter reader; skc.func(128) was accepted, to fail where it was called."""
    with pytest.raises(skc.SkcError, match=f"skc.{decorator} decorates a function written with def, found "
                                           f"{type(argument).__name__}"):
        getattr(skc, decorator)(argument)
