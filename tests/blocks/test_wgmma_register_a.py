"""The register-A wgmma (wgmma.mma_rs): the IR op prints, parses and verifies; it lowers to
wgmma.mma_async ... {a0, a1, a2, a3}, descB that ptxas assembles; the interpreter runs it with PTX's A
fragment layout (against numpy)."""
from __future__ import annotations

import numpy as np
import pytest
from attention_kernels import (
    THREADS,
    a_register_fragments,
    d_fragments,
    k_major_no_swizzle,
    wgmma_rs_kernel,
)
from helpers import check_lines

import skc
from skc import ir
from skc.backends import ptx_tools

needs_nvjitlink = pytest.mark.skipif(not ptx_tools.have_nvjitlink(), reason="nvJitLink is not installed")
RNG = np.random.default_rng(12)


def mma_rs_ir(a_type: str = "vec<8xbf16>", attrs: str = '{n = 16, dtype = "bf16"}') -> str:
    return f"""
kernel @k(%d: i64, %a: {a_type}) {{block = [128, 1, 1]}} {{
  %zero = arith.constant {{value = 0.0}} : vec<8xf32>
  %r = wgmma.mma_rs %zero, %a, %d {attrs} : vec<8xf32>
}}
"""


def test_the_register_a_wgmma_prints_parses_and_verifies():
    module = ir.parse_module(mma_rs_ir())
    ir.verify(module)
    text = ir.print_module(module)
    assert 'wgmma.mma_rs %2, %1, %0 {n = 16, dtype = "bf16"} : vec<8xf32>' in text
    assert ir.print_module(ir.parse_module(text)) == text


@pytest.mark.parametrize("a_type, attrs, message", [
    ("vec<4xbf16>", '{n = 16, dtype = "bf16"}', "A fragment is vec<4xbf16>, expected vec<8xbf16>"),
    ("vec<8xbf16>", '{n = 16, dtype = "f8e4m3"}', "dtype must be one of bf16, f16"),
    ("vec<8xbf16>", '{n = 16, dtype = "bf16", trans_a = 1}', "trans_a is not an attribute of the register-A"),
    ("vec<8xbf16>", '{n = 32, dtype = "bf16"}', "accumulator is vec<8xf32> giving vec<8xf32>, expected vec<16xf32>"),
])
def test_the_verifier_names_what_is_wrong_with_a_register_a_wgmma(a_type, attrs, message):
    with pytest.raises(Exception, match=message.replace("(", r"\(").replace(")", r"\)")):
        ir.verify(ir.parse_module(mma_rs_ir(a_type, attrs)))


def run_wgmma_rs(a: np.ndarray, b: np.ndarray, acc: np.ndarray, fences: bool = True) -> np.ndarray:
    n = b.shape[1]
    image, desc = k_major_no_swizzle(b.T.copy())
    words = -(-image.size // 2 // 256) * 256
    padded = np.zeros(words * 2, np.uint16)
    padded[:image.size] = image
    out = np.full((THREADS, n // 2), np.nan, np.float32)
    a_dev = skc.to_device(a_register_fragments(a), dtype=skc.bf16)
    wgmma_rs_kernel.interpret[(1,), (THREADS,)](padded.view(np.uint32), a_dev, d_fragments(acc), out, desc,
                                                cfg=(n, words, fences))
    return out


@pytest.mark.parametrize("n", [8, 64, 128])
def test_the_register_a_wgmma_in_the_interpreter_against_numpy(n):
    """Small integers make every sum exact: D = acc + A·B bit for bit, in the accumulator's fragment layout."""
    a = RNG.integers(-4, 5, (64, 16)).astype(np.float32)
    b = RNG.integers(-4, 5, (16, n)).astype(np.float32)
    acc = RNG.integers(-100, 100, (64, n)).astype(np.float32)
    np.testing.assert_array_equal(run_wgmma_rs(a, b, acc), d_fragments(acc + a @ b))


def test_a_wgmma_of_operands_stored_without_a_fence_is_an_error_naming_the_fence():
    """wgmma reads its shared operands through the async proxy, which the copying threads' st.shared reach only
    past their fence.proxy.async (the interpreter read them all the same)."""
    a, b, acc = (np.zeros(shape, np.float32) for shape in ((64, 16), (16, 8), (64, 8)))
    with pytest.raises(skc.InterpreterError, match="wgmma.mma reads its B operand from shared memory that thread "
                                                   r"\(0, 0, 0\) stored to and has not fenced since"):
        run_wgmma_rs(a, b, acc, fences=False)


def test_an_accumulator_chunk_is_the_register_a_fragment_of_the_next_mma():
    """The f32 accumulator of S (64 x 16j..16j+15, values 8j..8j+7 of each thread) sits exactly where the A
    fragment of P·V wants row/column (PTX ISA 9.7.15.5.1.1): the conversion is value for value."""
    s = RNG.integers(-8, 9, (64, 64)).astype(np.float32)
    s_fragments = d_fragments(s)
    for j in range(4):
        np.testing.assert_array_equal(s_fragments[:, 8 * j:8 * j + 8], a_register_fragments(s[:, 16 * j:16 * j + 16]))


@needs_nvjitlink
@pytest.mark.parametrize("n", [64, 128])
def test_the_register_a_wgmma_assembles_for_sm_90a(n):
    compiled = wgmma_rs_kernel.compile(target="sm_90a", block=THREADS, cfg=(n, 1024))
    ptx = compiled.asm("ptx")
    check_lines(ptx, r"wgmma\.fence\.sync\.aligned",
                rf"wgmma\.mma_async\.sync\.aligned\.m64n{n}k16\.f32\.bf16\.bf16 \{{(%r\d+, ){{{n // 2 - 1}}}%r\d+\}}, "
                r"\{%r\d+, %r\d+, %r\d+, %r\d+\}, %rd\d+, p, 1, 1, 0;",
                r"wgmma\.commit_group\.sync\.aligned")
    sass = ptx_tools.disassemble(compiled.cubin)
    assert f"HGMMA.64x{n}x16.F32.BF16" in sass, sass
    resources = compiled.resources
    assert resources["spill_stores"] == 0 and resources["stack_bytes"] == 0, resources
