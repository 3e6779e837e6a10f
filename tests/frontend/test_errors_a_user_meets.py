"""The errors a user met writing examples/layer_norm.py, prefix_sum.py and transpose.py from the docs (fifty-seventh
session): each says what is wrong at the user's line and what to write instead. Before, a vector mask read "a vector
(vec<4xi1>) cannot be used as a condition", a list of conditions "expected a number or a run-time value, found list",
`lane < skc.warp_size` "cannot combine a run-time i32 with a function", `x.dtype.bytes` "'DType' object has no
attribute 'bytes'" with nothing of what it has, `tile[r][c]` "needs 2 indices, found 1" with no hint; `skc compile`
asked to "annotate the parameter" that was annotated (a skc.constexpr) and never named compile_arguments; and every
compile error came with some 25 frames of skc's compiler above its message."""
import dataclasses
import os
import traceback

import numpy as np
import pytest

import skc
from helpers import line_of, tile_ir
from skc import cli

F32P = skc.Ptr[skc.f32]
HERE = os.path.abspath(__file__)
SKC = os.path.dirname(os.path.abspath(skc.__file__))


def compile_error(kernel, *args, **kwargs) -> skc.CompileError:
    with pytest.raises(skc.CompileError) as info:
        tile_ir(kernel, *args, **kwargs)
    return info.value


def at_line(error, kernel, marker: str) -> bool:
    return str(error).startswith(f"{HERE}:{line_of(kernel, marker)}:")


@skc.kernel(block=32)
def vector_mask_load(x: F32P, n: skc.i32):
    t = skc.thread_id(0)
    lanes = skc.vector(4 * t < n, 4 * t + 1 < n, 4 * t + 2 < n, 4 * t + 3 < n)
    x[0] = sum(skc.load(x + 4 * t, width=4, mask=lanes, other=0.0))   # LOAD


@skc.kernel(block=32)
def list_mask_load(x: F32P, n: skc.i32):
    t = skc.thread_id(0)
    x[0] = sum(skc.load(x + 4 * t, width=4, mask=[4 * t + j < n for j in range(4)]))   # LOAD


@skc.kernel(block=32)
def vector_mask_store(x: F32P, n: skc.i32):
    t = skc.thread_id(0)
    lanes = skc.vector(4 * t < n, 4 * t + 1 < n)
    skc.store(x + 2 * t, skc.vector(1.0, 2.0), mask=lanes)   # STORE


@pytest.mark.parametrize("kernel, marker, access, lanes", [(vector_mask_load, "# LOAD", "load", 4),
                                                           (list_mask_load, "# LOAD", "load", 4),
                                                           (vector_mask_store, "# STORE", "store", 2)])
def test_a_mask_per_lane_says_a_mask_covers_the_whole_vector(kernel, marker, access, lanes):
    error = compile_error(kernel)
    assert at_line(error, kernel, marker)
    assert f"a {access}'s mask is one condition for the whole access (all {lanes} lanes or none)" in error.message
    assert "one at a time" in error.hint and "vector_add.py" in error.hint


@skc.kernel(block=32)
def sum_of_a_one_wide_load(x: F32P, width: skc.constexpr):
    x[0] = sum(skc.load(x, width=width))   # SUM


def test_sum_of_a_load_of_width_one_says_that_is_a_scalar():
    error = compile_error(sum_of_a_one_wide_load, F32P, 1)
    assert at_line(error, sum_of_a_one_wide_load, "# SUM") and "sum() of one run-time f32" in error.message
    assert "width=1) gives a scalar" in error.hint and "sum(v) if width > 1 else v" in error.hint


@skc.kernel(block=32)
def uncalled_at_run_time(x: F32P):
    if skc.lane_id() < skc.warp_size:   # UNCALLED
        x[0] = 1.0


@skc.kernel(block=32)
def uncalled_at_compile_time(x: F32P):
    offset = 1
    while offset < skc.warp_size:   # UNCALLED
        offset *= 2


def test_a_builtin_used_without_calling_it_says_to_call_it():
    error = compile_error(uncalled_at_run_time)
    assert at_line(error, uncalled_at_run_time, "# UNCALLED")
    assert "the function warp_size (not called)" in error.message and error.hint == "call it: warp_size()"
    error = compile_error(uncalled_at_compile_time)
    assert at_line(error, uncalled_at_compile_time, "# UNCALLED") and "function warp_size" in error.message
    assert "call it" in error.hint


@skc.kernel(block=32)
def dtype_attributes(x, out: skc.Ptr[skc.i32]):
    out[0] = x.dtype.bytes
    out[1] = x.dtype.itemsize
    out[2] = x.dtype.bits


@skc.kernel(block=32)
def triton_dtype_attribute(x):
    x[0] = x.dtype.element_ty.itemsize   # ATTR


@skc.kernel(block=32)
def misspelt_builtin(x: F32P):
    x[0] = skc.shfl_upp(1.0, 1)   # ATTR


def test_a_pointers_dtype_answers_as_the_hosts_and_a_missing_attribute_lists_what_there_is():
    out = np.zeros(3, np.int32)
    dtype_attributes[1, 32](np.zeros(4, np.float16), out)
    assert out.tolist() == [2, 2, 16]
    error = compile_error(triton_dtype_attribute, F32P)
    assert at_line(error, triton_dtype_attribute, "# ATTR")
    assert "no attribute 'element_ty'" in error.message and "bits, bytes" in error.hint and "itemsize" in error.hint
    error = compile_error(misspelt_builtin)
    assert at_line(error, misspelt_builtin, "# ATTR") and "did you mean shfl_up" in error.hint


@skc.kernel(block=32)
def indexed_twice(x: F32P):
    tile = skc.shared((4, 33), skc.f32)
    tile[0][skc.thread_id(0)] = 1.0   # TWICE


def test_an_array_indexed_twice_says_to_index_once():
    error = compile_error(indexed_twice)
    assert at_line(error, indexed_twice, "# TWICE") and "needs 2 indices, found 1" in error.message
    assert "a[i, j] (a[i][j] indexes twice)" in error.hint


@skc.kernel(block=32)
def undefined_name(x: F32P):
    x[0] = y  # noqa: F821


def test_a_compile_error_carries_no_frames_of_skcs_compiler():
    """Its message points at the kernel's line; the traceback ends at skc's entry point (the launch, compile())."""
    for call in (lambda: undefined_name[1, 32](np.zeros(1, np.float32)), lambda: undefined_name.compile()):
        with pytest.raises(skc.CompileError) as info:
            call()
        frames = [frame.filename for frame in traceback.extract_tb(info.value.__traceback__)]
        inside = [f for f in frames if f.startswith(SKC)]
        assert inside and all(f == os.path.join(SKC, "jit.py") for f in inside), frames
        assert len(inside) <= 2, frames


def test_an_empty_grid_says_to_skip_the_launch():
    with pytest.raises(skc.LaunchError) as info:
        undefined_name[0, 32](np.zeros(1, np.float32))
    assert "every dimension must be at least 1" in str(info.value) and "skip the launch" in str(info.value)


def test_skc_compile_names_the_arguments_it_needs_and_where_to_give_them(tmp_path, capsys):
    path = tmp_path / "needs.py"
    path.write_text("import skc\n\n\n@skc.kernel\ndef needs(x, out: skc.Ptr[skc.f32], rounds: skc.constexpr):\n"
                    "    out[0] = x[0] * rounds\n")
    assert cli.main(["compile", str(path), "--target", "sm_90a", "--emit", "tile"]) == 1
    err = capsys.readouterr().err
    assert "skc compile needs arguments for needs: 'x' (a value or a type such as skc.Ptr[skc.f32]" in err
    assert "'rounds' (its value: a skc.constexpr parameter without a default" in err
    assert "compile_arguments(kernel_name, target)" in err and "--const NAME=VALUE" in err
    assert "{'x': skc.Ptr[skc.f32], 'rounds': ...}" in err
    assert cli.main(["compile", str(path), "--target", "sm_90a", "--emit", "tile", "--const", "rounds=3"]) == 1
    assert "'rounds'" not in capsys.readouterr().err
    path.write_text(path.read_text() + "\n\ndef compile_arguments(kernel, target):\n"
                    "    return {'x': skc.Ptr[skc.f32], 'rounds': 3}\n")
    assert cli.main(["compile", str(path), "--target", "sm_90a", "--emit", "tile"]) == 0


@skc.kernel(block=32)
def triton_program_id(x: F32P):
    x[0] = skc.program_id(0)   # NAME


@skc.kernel(block=32)
def cuda_syncthreads(x: F32P):
    skc.__syncthreads()   # NAME


@skc.kernel(block=32)
def pointer_shape(x: F32P):
    x[0] = x.shape[0]   # NAME


@skc.kernel(block=32)
def numpy_astype(x: skc.Ptr[skc.f16], y: F32P):
    y[0] = x[0].astype(skc.f32)   # NAME


@pytest.mark.parametrize("kernel, wanted", [(triton_program_id, "skc calls it skc.block_id(axis)"),
                                            (cuda_syncthreads, "skc calls it skc.barrier()"),
                                            (pointer_shape, "a pointer has no shape: pass the sizes"),
                                            (numpy_astype, "a run-time value has .dtype and .to(dtype)")])
def test_cuda_triton_and_numpy_names_say_what_skc_has(kernel, wanted):
    error = compile_error(kernel)
    assert at_line(error, kernel, "# NAME") and "has no attribute" in error.message and wanted in error.hint


@skc.kernel(block=32)
def vector_condition(x: F32P):
    v = skc.load(x, width=4)
    if v > 0:   # IF
        x[0] = 1.0


def test_a_vector_condition_says_how_to_test_its_lanes():
    error = compile_error(vector_condition)
    assert at_line(error, vector_condition, "# IF") and "cannot be used as a condition" in error.message
    assert "skc.where(v > 0, a, b)" in error.hint and "v[0] > 0" in error.hint


def test_an_ir_pointer_of_an_element_type_says_pointers_are_opaque():
    """The first compile_arguments of examples/layer_norm.py gave `ir.PointerType(ir.ScalarType("f16"))` for a
    pointer parameter; the error read "unknown address space f16" and no more."""
    from skc import ir

    with pytest.raises(ValueError, match=r"unknown address space f16.*IR pointers are opaque.*skc\.Ptr\[skc\.f16\]"):
        ir.PointerType(ir.ScalarType("f16"))
    with pytest.raises(ValueError, match=r"unknown address space 'bogus'; known: generic, global, shared, const, "
                                         r"local$"):
        ir.PointerType("bogus")


@skc.kernel(block=32)
def bitcast_to_half_the_width(x: skc.Ptr[skc.f16], y: skc.Ptr[skc.f16]):
    bits = skc.bitcast(skc.load(x, width=2), skc.u32)
    y[0] = skc.bitcast(bits, skc.f16)   # BITCAST


@skc.kernel(block=32)
def bitcast_of_a_pointer(x: F32P, out: skc.Ptr[skc.u64]):
    out[0] = skc.bitcast(x, skc.u64)   # BITCAST


@skc.kernel(block=32)
def bitcast_into_two_halves(x: skc.Ptr[skc.f16], y: skc.Ptr[skc.f16]):
    bits = skc.bitcast(skc.load(x, width=2), skc.u32)
    halves = skc.bitcast(bits, skc.ir.VectorType(skc.ir.f16, 2))
    y[0], y[1] = halves[1], halves[0]


def test_a_bitcast_of_another_width_or_of_a_pointer_is_the_users_error_not_the_verifiers():
    """Both reached the IR verifier ("'arith.bitcast' op: cannot bitcast u32 (32 bits) to f16 (16 bits)"), whose
    VerificationError says skc built bad IR and asks for a report."""
    error = compile_error(bitcast_to_half_the_width)
    assert not isinstance(error, skc.VerificationError) and at_line(error, bitcast_to_half_the_width, "# BITCAST")
    assert "cannot bitcast u32 (32 bits) to f16 (16 bits)" in error.message and "VectorType(skc.ir.f16, 2)" in error.hint
    error = compile_error(bitcast_of_a_pointer)
    assert not isinstance(error, skc.VerificationError) and at_line(error, bitcast_of_a_pointer, "# BITCAST")
    assert "a bitcast takes numbers" in error.message and "skc.ptr_to_int(p)" in error.hint
    y = np.zeros(2, np.float16)
    bitcast_into_two_halves[1, 32](np.array([1.5, -2.0], np.float16), y)
    assert y.tolist() == [-2.0, 1.5]


@skc.kernel(block=64)
def block_sum_of_a_vector(x: F32P):
    x[0] = skc.block_sum(skc.load(x, width=4))[0]   # REDUCE


@skc.kernel(block=64)
def shuffle_of_a_vector(x: F32P):
    x[0] = skc.shfl_xor(skc.load(x, width=4), 1)[0]   # REDUCE


def test_a_reduction_or_shuffle_of_a_vector_says_to_go_lane_by_lane():
    """block_sum(vector) said "shuffles move scalars": the reduction's inside, not what the user wrote."""
    error = compile_error(block_sum_of_a_vector)
    assert at_line(error, block_sum_of_a_vector, "# REDUCE")
    assert "a warp or block reduction (sum) reduces one scalar a thread, found vec<4xf32>" in error.message
    assert "sum(v)" in error.hint
    error = compile_error(shuffle_of_a_vector)
    assert at_line(error, shuffle_of_a_vector, "# REDUCE") and "shuffles move scalars" in error.message
    assert "lane by lane" in error.hint


@skc.kernel(block=32)
def choice_of_other_lengths(x: F32P):
    x[0] = skc.where(skc.load(x, width=4) > 0, skc.load(x, width=2), 0.0)[0]   # VECTOR


@skc.kernel(block=32)
def vector_of_one(x: F32P):
    x[0] = skc.vector(x[1])[0]   # VECTOR


@skc.kernel(block=32)
def atomic_of_a_vector(x: F32P):
    skc.atomic_add(x, skc.load(x + 4, width=4))   # VECTOR


def test_vector_misuses_are_refused_in_their_own_words():
    """skc.where of a 4-lane condition and 2-lane values reached the verifier ("'arith.select' op: condition vec<4xi1>
    does not match the choices"); an atomic of a vector said "cannot store vec<4xf32> into a place of type f32";
    a vector of one value gave no hint."""
    error = compile_error(choice_of_other_lengths)
    assert not isinstance(error, skc.VerificationError) and at_line(error, choice_of_other_lengths, "# VECTOR")
    assert "the condition is vec<4xi1>, the values vec<2xf32>" in error.message
    error = compile_error(vector_of_one)
    assert at_line(error, vector_of_one, "# VECTOR") and "a scalar already" in error.hint
    error = compile_error(atomic_of_a_vector)
    assert at_line(error, atomic_of_a_vector, "# VECTOR")
    assert "atomic_add combines one f32 into one place, found vec<4xf32>" in error.message and "lane by lane" in error.hint


@skc.kernel(block=32)
def conditional_expression_statements(x: F32P):
    t = skc.thread_id(0)
    skc.store(x + t, 1.0) if t % 2 == 0 else skc.store(x + t, 2.0)
    skc.store(x + 32 + t, 3.0) if t < 4 else None


def test_a_conditional_expression_as_a_statement_runs_one_side_as_python_does():
    """`print(t) if t == 0 else None` (a run-time t) was "expected a number or a run-time value, found a NoneType"."""
    x = np.zeros(64, np.float32)
    conditional_expression_statements[1, 32](x)
    assert x[:32].tolist() == [1.0, 2.0] * 16 and x[32:36].tolist() == [3.0] * 4 and not x[36:].any()


@dataclasses.dataclass
class _Point:
    x: object
    y: object


@skc.kernel(block=1)
def compares_points(out: skc.Ptr[skc.i32], a: skc.i32):
    out[0] = 1 if _Point(a, a) == _Point(a, -a) else 0   # POINTS EQUAL


def test_a_generated_method_given_run_time_values_is_an_error_at_the_users_line():
    """A dataclass's `__eq__` (code made at run time, `<string>`) of run-time fields gave the error's place as
    `<string>:4:11`, the kernel's line only as a note (sixty-fourth session's search)."""
    error = compile_error(compares_points, np.zeros(2, np.int32), 3)
    assert at_line(error, compares_points, "POINTS EQUAL"), str(error)


def test_a_helper_in_a_package_named_like_a_standard_module_keeps_its_line(tmp_path):
    """Code of the standard library is told by where its file lies, not by its module's name: a package of the
    user's named `code` lost its helper's line (the sixty-fourth session's review). In its own process (the package
    hides the standard `code`)."""
    import subprocess
    import sys

    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "__init__.py").write_text("")
    (tmp_path / "code" / "helpers.py").write_text("def positive(v):\n    if v > 0:\n        return v\n    return -v\n")
    (tmp_path / "kern.py").write_text("import numpy as np\nimport skc\nfrom code.helpers import positive\n\n\n"
                                      "@skc.kernel(block=1)\ndef k(x: skc.Ptr[skc.f32], a: skc.f32):\n"
                                      "    x[0] = positive(a)\n\n\nk[1, 1](np.zeros(1, np.float32), 1.0)\n")
    env = dict(os.environ, SKC_DEVICE="interpreter",
               PYTHONPATH=os.pathsep.join([str(tmp_path), os.path.dirname(SKC)]))
    done = subprocess.run([sys.executable, str(tmp_path / "kern.py")], capture_output=True, text=True, env=env,
                          timeout=300, cwd=str(tmp_path))
    assert done.returncode != 0 and f"{tmp_path / 'code' / 'helpers.py'}:2:" in done.stderr, done.stderr[-2000:]
