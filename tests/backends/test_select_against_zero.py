"""A select between a float and a constant zero by their compare (`x if x < 0.0 else 0.0`, Python's min(0.0, x)):
LLVM's NVPTX code generation made it a min.f32 (max, f64, f16, bf16 alike), whose zeros are ordered, -0.0 below
+0.0, where the select picks by the compare: min(0.0, -0.0) is 0.0 in Python and the interpreter, and an H100 gave
-0.0 (2026-12-06, benchmarks/results/session52-2026-12-06-h100-helper-scripts-final.txt). The zero is hidden from
LLVM, so the PTX keeps the compare and the select; each form runs in the PTX emulator as in the interpreter.
The compare may name its operands the other way round (`x if 0.0 > x else 0.0`) or its zero with the other sign
(`x if x < -0.0 else 0.0`): LLVM made those a min or max too (helper G's enumeration, every float type, predicate,
order and constant against the emulator); `0.0 if x < 0.0 else x` (the fused relu) stays a select without help."""
import importlib.util
import os
import sys

import ml_dtypes
import numpy as np
import pytest

import skc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "fuzz"))
import ptx_emulator  # noqa: E402

TYPES = {"f32": (np.float32, np.uint32), "f64": (np.float64, np.uint64), "f16": (np.float16, np.uint16),
         "bf16": (ml_dtypes.bfloat16, np.uint16)}
FORMS = ["min(0.0, x)", "x if x < 0.0 else 0.0", "min(x, 0.0)", "max(0.0, x)", "max(-0.0, x)",
         "x if x >= 0.0 else 0.0", "0.0 if 0.0 < x else x", "min(z, x)",
         # the compare the other way round, or its zero of the other sign: LLVM made them the same min or max
         "x if 0.0 > x else 0.0", "skc.where(0.0 > x, x, 0.0)", "x if -0.0 < x else -0.0", "x if x < -0.0 else 0.0",
         "x if 0 > x else 0.0", "0.0 if x < 0.0 else x"]
X = [-0.0, 0.0, 1.0, -1.0, float("nan"), float("inf"), -float("inf"), 0.5]


def _kernel(T, form, folder):
    """The kernel o[i] = form of x = xs[i], z = zs[i], from a file of its own (skc reads a kernel's source)."""
    return _loaded(folder / f"select_{T}_{FORMS.index(form)}.py",
                   f"import skc\n\n\n@skc.kernel(block=32)\ndef k(xs: skc.Ptr[skc.{T}], zs: skc.Ptr[skc.{T}], "
                   f"o: skc.Ptr[skc.{T}]):\n    i = skc.thread_id(0)\n    if i < 16:\n        x = xs[i]\n"
                   f"        z = zs[i]\n        o[i] = {form}\n")


def _loaded(path, text):
    """The kernel k of a module of `text`, written to `path` (skc reads a kernel's source from its file)."""
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.k


def _interpreted(T, form, folder):
    """The form's kernel, its inputs (x over X, z +0.0 then -0.0) and the interpreter's outputs."""
    dtype, _ = TYPES[T]
    xs = np.array(X * 2, np.float32).astype(dtype)
    zs = np.array([0.0] * 8 + [-0.0] * 8, np.float32).astype(dtype)
    kernel = _kernel(T, form, folder)
    want = np.zeros(16, dtype)
    kernel.interpret[1, 32](xs, zs, want)
    return kernel, xs, zs, want


def _check(name, T, xs, zs, want, got):
    """got equal to want bit for bit (any NaN equal to any NaN)."""
    dtype, bits = TYPES[T]
    got = got.view(dtype)
    same = (want.view(bits) == got.view(bits)) | np.isnan(want.astype(np.float64)) & np.isnan(got.astype(np.float64))
    assert same.all(), (name, [(float(xs[i]), float(zs[i]), float(want[i]), float(got[i]))
                               for i in np.flatnonzero(~same)])


@pytest.mark.parametrize("T", list(TYPES))
@pytest.mark.parametrize("form", list(FORMS))
def test_the_ptx_picks_the_zero_the_interpreter_picks(T, form, tmp_path):
    kernel, xs, zs, want = _interpreted(T, form, tmp_path)
    bits = TYPES[T][1]
    python = np.array([eval(form, {"skc": skc}, {"x": float(x), "z": float(z)}) for x, z in zip(xs, zs)])
    _check("python", T, xs, zs, want, python.astype(want.dtype))
    ptx = kernel.compile(xs, zs, want, target="sm_90a").asm("ptx")
    got = ptx_emulator.run_grid(ptx, "k", [xs.view(bits).copy(), zs.view(bits).copy(), np.zeros(16, bits)], 1, 32)[2]
    _check("ptx", T, xs, zs, want, got)


@pytest.mark.gpu
@pytest.mark.parametrize("T", list(TYPES))
@pytest.mark.parametrize("form", list(FORMS))
def test_the_gpu_picks_the_zero_the_interpreter_picks(T, form, tmp_path):
    kernel, xs, zs, want = _interpreted(T, form, tmp_path)
    on_gpu = [skc.to_device(a.view(TYPES[T][1]) if T == "bf16" else a, dtype=getattr(skc, T))   # (bf16: its bits)
              for a in (xs, zs, np.zeros_like(want))]
    kernel[1, 32](*on_gpu)
    _check("gpu", T, xs, zs, want, on_gpu[2].raw())


# (sixty-fifth session: the zero was hidden for scalars only; a vector's select against a zero became min.f32 and
# min.f16x2 per lane, -0.0 where the select gives +0.0)
VECTOR_FORMS = ["skc.where(v < 0.0, v, 0.0)", "skc.where(0.0 > v, v, 0.0)", "skc.where(v >= 0.0, v, 0.0)",
                "skc.where(v < -0.0, v, 0.0)", "skc.where(v > 0.0, v, -0.0)"]
WIDTHS = {"f32": 4, "f64": 2, "f16": 2, "bf16": 2}


def _vector_kernel(T, form, folder):
    """o[w·i : w·i + w] = form of the vector v = xs[w·i : w·i + w], from a file of its own."""
    w = WIDTHS[T]
    return _loaded(folder / f"vector_select_{T}_{VECTOR_FORMS.index(form)}.py",
                   f"import skc\n\n\n@skc.kernel(block=32)\ndef k(xs: skc.Ptr[skc.{T}], o: skc.Ptr[skc.{T}]):\n"
                   f"    i = skc.thread_id(0)\n    if i < {16 // w}:\n        v = skc.load(xs + {w} * i, width={w})\n"
                   f"        skc.store(o + {w} * i, {form})\n")


def _vector_interpreted(T, form, folder):
    """The vector form's kernel, its input (X twice) and the interpreter's outputs."""
    xs = np.array(X * 2, np.float32).astype(TYPES[T][0])
    kernel = _vector_kernel(T, form, folder)
    want = np.zeros(16, xs.dtype)
    kernel.interpret[1, 32](xs, want)
    return kernel, xs, want


@pytest.mark.parametrize("T", list(TYPES))
@pytest.mark.parametrize("form", VECTOR_FORMS)
def test_a_vectors_select_against_zero_stays_a_select(T, form, tmp_path):
    dtype, bits = TYPES[T]
    kernel, xs, want = _vector_interpreted(T, form, tmp_path)
    python = np.array([eval(form.replace("skc.where", "_where"), {"_where": lambda c, a, b: a if c else b},
                            {"v": float(x)}) for x in xs])
    _check("python", T, xs, xs, want, python.astype(dtype))
    ptx = kernel.compile(xs, want, target="sm_90a").asm("ptx")
    assert "min." not in ptx and "max." not in ptx, ptx
    got = ptx_emulator.run_grid(ptx, "k", [xs.view(bits).copy(), np.zeros(16, bits)], 1, 32)[1]
    _check("ptx", T, xs, xs, want, got)


@pytest.mark.gpu
@pytest.mark.parametrize("T", list(TYPES))
@pytest.mark.parametrize("form", VECTOR_FORMS)
def test_the_gpu_picks_a_vectors_zero_as_the_interpreter(T, form, tmp_path):
    bits = TYPES[T][1]
    kernel, xs, want = _vector_interpreted(T, form, tmp_path)
    on_gpu = [skc.to_device(a.view(bits) if T == "bf16" else a, dtype=getattr(skc, T))   # (bf16: its bits)
              for a in (xs, np.zeros_like(want))]
    kernel[1, 32](*on_gpu)
    _check("gpu", T, xs, xs, want, on_gpu[1].raw())
