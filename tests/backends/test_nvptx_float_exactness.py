"""NVPTX float code keeps the interpreter's numerics: every f32 add, sub, mul, div and sqrt is one correctly
rounded IEEE operation, as the interpreter defines it. Separate `a * b + c` must not become one fused
multiply-add (a single rounding: results differ in the last bit), neither in LLVM (no `contract` flags, no
fp-op fusion in the target machine) nor in ptxas: PTX `mul.f32`/`add.f32` without a rounding modifier may be
fused by ptxas (PTX ISA 9.7.3, "mul/add sequences with no rounding modifiers may be optimized to use fused
multiply-add"), `.rn` forbids it. Division must be `div.rn.f32` (not `div.approx`/`div.full`), square root
`sqrt.rn.f32`, and no instruction may flush subnormals (`.ftz`). `skc.fma` is the one way to get a fused op."""
import re

import pytest

import skc
from skc.backends import ptx_tools

F32P = skc.Ptr[skc.f32]
needs_ptxas = pytest.mark.skipif(ptx_tools.ptxas_path() is None and not ptx_tools.have_nvjitlink(),
                                 reason="neither ptxas nor nvJitLink is installed")
needs_nvdisasm = pytest.mark.skipif(ptx_tools.nvdisasm_path() is None, reason="nvdisasm is not installed")


@skc.kernel
def mul_then_add(a: F32P, b: F32P, c: F32P, out: F32P):
    t = skc.thread_id(0)
    product = a[t] * b[t]
    out[t] = product + c[t]                      # two roundings, as written
    out[t + 32] = c[t] - a[t] * b[t]             # also two


@skc.kernel
def divide_and_root(a: F32P, b: F32P, c: F32P, out: F32P):
    t = skc.thread_id(0)
    out[t] = a[t] / (abs(b[t]) + 1.0) + skc.sqrt(abs(c[t]))   # div.rn and sqrt.rn (exact in SASS: FFMA steps)


@skc.kernel
def fused(a: F32P, b: F32P, c: F32P, out: F32P):
    t = skc.thread_id(0)
    out[t] = skc.fma(a[t], b[t], c[t])          # one rounding, because the user asked for it


def _ptx(kernel):
    return kernel.compile(target="sm_90a", block=(32, 1, 1)).asm("ptx")


def _instructions(ptx: str) -> list:
    return [line.split()[0] for line in ptx.splitlines()
            if line.strip() and line.startswith("\t") and not line.strip().startswith(("//", ".", "$", "{", "}"))]


@pytest.mark.parametrize("kernel", [mul_then_add, divide_and_root], ids=["mul_add", "div_sqrt"])
def test_float_ops_stay_separate_and_rounded_in_llvm_and_ptx(kernel):
    compiled = kernel.compile(target="sm_90a", block=(32, 1, 1))
    for stage in ("llvm", "llvm-opt"):
        text = compiled.ir(stage)
        assert not re.search(r"\bcontract\b|\bfast\b|\breassoc\b|\bafn\b|llvm\.fmuladd|llvm\.fma", text), stage
    ops = _instructions(compiled.asm("ptx"))
    floats = [op for op in ops if op.endswith(".f32") and op.split(".")[0] in ("add", "sub", "mul", "div", "fma",
                                                                               "sqrt")]
    assert not [op for op in floats if op.startswith("fma")], floats
    # every rounding operation names its rounding, so ptxas may not fuse or approximate it
    assert floats and all(op.split(".")[1] == "rn" for op in floats), floats
    wanted = {"mul.rn.f32", "add.rn.f32", "sub.rn.f32"} if kernel is mul_then_add else {"div.rn.f32", "sqrt.rn.f32"}
    assert wanted <= set(floats), floats
    assert not [op for op in ops if ".ftz" in op or ".approx" in op or ".full" in op], ops


def test_skc_fma_is_the_one_fused_operation():
    ops = _instructions(_ptx(fused))
    assert "fma.rn.f32" in ops, ops
    assert not [op for op in ops if op.startswith(("mul.", "add."))  and op.endswith(".f32")], ops


@needs_ptxas
@needs_nvdisasm
def test_ptxas_keeps_mul_and_add_apart_in_sass():
    """The machine code: FMUL then FADD for `a * b + c`, no FFMA (ptxas fuses mul/add without .rn)."""
    sass = mul_then_add.compile(target="sm_90a", block=(32, 1, 1)).asm("sass")
    assert "FMUL" in sass and "FADD" in sass, sass
    assert not re.search(r"\bFFMA\b", sass), sass
    fused_sass = fused.compile(target="sm_90a", block=(32, 1, 1)).asm("sass")
    assert re.search(r"\bFFMA\b", fused_sass), fused_sass
