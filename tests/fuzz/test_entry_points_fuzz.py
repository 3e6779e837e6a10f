"""What skc says about bad calls of its host entry points (entry_points_gen.py): a valid call of skc.blocks.matmul,
its fp8 form, conv2d, attention, torch.ops.skc.*, a kernel's launch, skc.autotune or skc.to_device (and the GPU
host path of matmul and launches, with the fake driver) with one or two arguments put wrong must give torch's answer
or be refused by an skc error that names the argument. Of about 11,000 drawn cases (seeds 1 to 11, fifty-fifth
session) the runs found: torch.ops.skc's operators given None for a tensor failed with an AttributeError (torch's
dispatcher passes None for a `Tensor`); a lazily negated out of matmul_out or fp8 operand of scaled_matmul failed
inside torch's neg-bit fallback; skc.to_device's dtype of no dtype (-1, NaN, True, [1]) raised numpy's TypeError,
and its array of None or a string named no argument; a launch's complex64 tensor named only the type; a complex c
or bias named the kernel's own parameter 'c_in'; the interpreter's run raised OverflowError, TypeError or an
'internal error' for a huge grid, args or arg_names of the wrong kind or length, a memory of another type, and let a
pointer of 2**70 wrap to 0; skc.autotune raised torch's TypeError for configs of a 0-d tensor; messages that named
no operand ("cannot multiply (16, 32) by (31, 16)", "found float8_e4m3fn", a TMA stride, a conv2d output too large
for its padding, matmul_out's "an argument requires grad"). Left: an attention scale past about 1e3 loses the
online softmax's precision (softmax.py's exp2(fma(S, c, -m·c))), counted `known`. CI draws SKC_ENTRYFUZZ_COUNT
cases (default 30, a few seconds); `python tests/fuzz/entry_points_gen.py --seed N --count C` draws more."""
import math
import os

import numpy as np
import pytest

import skc

torch = pytest.importorskip("torch")
import entry_points_gen as gen  # noqa: E402 (needs torch)

COUNT = int(os.environ.get("SKC_ENTRYFUZZ_COUNT", "30"))
SEED = int(os.environ.get("SKC_ENTRYFUZZ_SEED", "55"))


@pytest.fixture
def hopper_interpreter(monkeypatch):
    """The interpreter modelling sm_90a as the current device, with no host plans from earlier tests (as
    tests/blocks/conftest.py's fixture)."""
    from skc.blocks import attention_host, fp8_host, matmul_host
    from skc.runtime import devices

    monkeypatch.setenv("SKC_INTERPRETER_TARGET", "sm_90a")
    monkeypatch.setattr(devices, "_selected", [devices.Device("interpreter")])
    devices._target_of.cache_clear()
    every = (matmul_host._PLANS, fp8_host._PLANS, attention_host._PLANS)
    for plans in every:
        plans.clear()
    yield
    for plans in every:
        plans.clear()
    devices._target_of.cache_clear()


def test_drawn_bad_calls_give_torchs_answer_or_an_skc_error_naming_the_argument(hopper_interpreter):
    found = gen.run(SEED, COUNT, quiet=True)
    assert not found["BAD"], "\n".join(f"{kind}: {gen.describe(case)}: {detail}"
                                       for case, kind, detail in found["BAD"][:5])


@pytest.fixture
def operators():
    import skc.torch   # noqa: F401 (registers torch.ops.skc.*)
    return torch.ops.skc


def bf16(*shape):
    return torch.ones(*shape, dtype=torch.bfloat16)


@pytest.mark.parametrize("call, name", [
    (lambda ops: ops.matmul(None, bf16(32, 16)), "a"), (lambda ops: ops.matmul(bf16(16, 32), None), "b"),
    (lambda ops: ops.matmul_out(bf16(16, 32), bf16(32, 16), None), "out"),
    (lambda ops: ops.conv2d(None, bf16(8, 8, 3, 3)), "x"),
    (lambda ops: ops.attention(bf16(1, 1, 16, 64), None, bf16(1, 1, 16, 64)), "k"),
    (lambda ops: ops.scaled_matmul(None, torch.ones(16, 32).to(torch.float8_e4m3fn).T, torch.ones(()),
                                   torch.ones(())), "a")])
def test_the_operators_name_a_tensor_given_as_none(hopper_interpreter, operators, call, name):
    """(was: AttributeError: 'NoneType' object has no attribute 'dim'; torch's dispatcher lets None through as an
    undefined tensor)"""
    with pytest.raises(skc.LaunchError, match=rf"'s {name} is a tensor, found NoneType: pass a torch tensor"):
        call(operators)


@pytest.mark.parametrize("dtype", [-1, 0, math.nan, True, [1], "2", 1j])
def test_to_device_names_a_dtype_that_is_no_dtype(dtype):
    """(was: numpy's TypeError, "Cannot interpret '-1' as a data type")"""
    with pytest.raises(skc.LaunchError, match="to_device's dtype: .* is not a dtype: pass one such as skc.f32"):
        skc.to_device([1.0, 2.0], dtype=dtype)
    with pytest.raises(skc.LaunchError, match="is not a dtype"):
        skc.empty((2,), dtype)


@pytest.mark.parametrize("array, kind", [(None, "NoneType"), ("x", "str"), ([[1, 2], [3]], "list"),
                                         (np.zeros(2, np.complex64), "ndarray")])
def test_to_device_names_an_array_of_no_numbers(array, kind):
    """(was: "numpy dtype object has no skc equivalent", naming no argument; numpy's ValueError for a ragged list)"""
    with pytest.raises(skc.LaunchError, match=f"to_device's array is a {kind}, which holds no numbers"):
        skc.to_device(array)


def test_a_launch_names_the_argument_of_a_type_skc_lacks():
    """(was: "torch dtype torch.complex64 has no skc equivalent", naming no argument)"""
    kernel = gen.launch_kernel()
    for out in (torch.zeros(8, dtype=torch.complex64), np.zeros(8, np.complex64)):
        with pytest.raises(skc.LaunchError, match="axpy: argument 'out': .*complex64 has no skc equivalent"):
            kernel[1, 32](out, torch.zeros(8), 1.0, 8)


def test_the_messages_name_the_operand(hopper_interpreter, operators):
    """(were: "cannot multiply (16, 32) by (31, 16)", "found float8_e4m3fn", "scaled matmul takes an
    Fp8MatmulConfig", "writes bfloat16, float16 or float32, not 0": no operand named)"""
    with pytest.raises(skc.LaunchError, match=r"cannot multiply a \(16, 32\) by b \(31, 16\)"):
        skc.blocks.matmul(bf16(16, 32), bf16(31, 16))
    with pytest.raises(skc.LaunchError, match=r"cannot multiply a \(16, 32\) by b \(31, 16\)"):
        operators.matmul(bf16(16, 32), bf16(31, 16))
    with pytest.raises(skc.LaunchError, match=r"cannot multiply a \(2, 16, 32\) by b \(2, 31, 16\)"):
        skc.blocks.matmul(bf16(2, 16, 32), bf16(2, 31, 16))
    q = torch.ones(1, 1, 16, 64).to(torch.float8_e4m3fn)
    with pytest.raises(skc.LaunchError, match="found q of float8_e4m3fn"):
        skc.blocks.attention(q, q, q)
    with pytest.raises(skc.LaunchError, match="found q of torch.float8_e4m3fn"):
        operators.attention(q, q, q)
    with pytest.raises(skc.LaunchError, match=r"found shapes q \(1, 1, 16, 64\), k \(1, 16, 64\)"):
        operators.attention(bf16(1, 1, 16, 64), bf16(1, 16, 64), bf16(1, 1, 16, 64))
    x = torch.ones(1, 8, 6, 6).to(torch.float8_e4m3fn).to(memory_format=torch.channels_last)
    with pytest.raises(skc.LaunchError, match="found x of torch.float8_e4m3fn"):
        operators.conv2d(x, x)
    a, b, one = torch.ones(16, 32).to(torch.float8_e4m3fn), torch.ones(16, 32).to(torch.float8_e4m3fn).T, torch.ones(())
    with pytest.raises(skc.LaunchError, match="scaled matmul's config is an Fp8MatmulConfig, found str"):
        skc.blocks.matmul(a, b, scale_a=one, scale_b=one, config="fast")
    with pytest.raises(skc.LaunchError, match="not 0: pass one of them as out_dtype"):
        skc.blocks.matmul(a, b, scale_a=one, scale_b=one, out_dtype=0)


@pytest.mark.parametrize("call", [
    lambda c: skc.blocks.matmul(bf16(16, 32), bf16(32, 16), c=c),
    lambda c: skc.blocks.matmul(bf16(16, 32), bf16(32, 16), bias=c[0]),
    lambda c: skc.blocks.matmul(bf16(2, 16, 32), bf16(32, 16), c=c.expand(2, 16, 16)),
    lambda c: skc.blocks.matmul(bf16(0, 32), bf16(32, 16), c=c[:0])])
def test_a_complex_c_or_bias_is_refused_by_its_name(hopper_interpreter, call):
    """(was: "matmul_kernel: argument 'c_in': torch dtype torch.complex64 has no skc equivalent", the kernel's own
    parameter; the empty problem took it)"""
    with pytest.raises(skc.LaunchError, match=r"matmul: (c|bias) is torch.complex64, which the epilogue cannot read"):
        call(torch.ones(16, 16, dtype=torch.complex64))


def test_the_operators_name_a_negated_view_torch_cannot_resolve(hopper_interpreter, operators):
    """(was: torch's "Expected Tensor but got None" for an out written into, and NotImplementedError "neg_cpu not
    implemented for 'Float8_e4m3fn'" for an fp8 operand, from torch's fallback for the neg bit)"""
    a, b = bf16(16, 32), bf16(32, 16)
    with pytest.raises(skc.LaunchError, match="matmul_out: out is a lazily negated view .* which it writes into"):
        operators.matmul_out(a, b, torch._neg_view(torch.zeros(16, 16, dtype=torch.bfloat16)))
    operators.matmul_out(torch._neg_view(a), b, torch.zeros(16, 16, dtype=torch.bfloat16))   # (an input: resolved)
    fp8, one = torch.ones(16, 32).to(torch.float8_e4m3fn), torch.ones(())
    with pytest.raises(skc.LaunchError, match=r"b is a lazily negated view .* float8: .* \(scale_b=-scale_b\)"):
        operators.scaled_matmul(fp8, torch._neg_view(fp8.T), one, one)
    assert torch.equal(operators.scaled_matmul(fp8, fp8.T, one, -one), -operators.scaled_matmul(fp8, fp8.T, one, one))


def test_autotune_names_configs_that_refuse_iteration():
    """(was: torch's TypeError "iteration over a 0-d tensor"; "needs at least one config" named no argument)"""
    with pytest.raises(skc.SkcError, match=r"needs at least one config: pass configs=\[\{...\}, ...\]"):
        skc.autotune(configs=None)(lambda: None)
    with pytest.raises(skc.SkcError, match="every one of configs is a dict of keyword arguments for it, found 1"):
        skc.autotune(configs=[1])(lambda: None)
    for configs in (torch.tensor(2.0), np.array(3)):
        with pytest.raises(skc.SkcError, match="configs is a list of dicts of keyword arguments, found a"):
            skc.autotune(configs=configs)(lambda: None)


def test_scaled_matmul_names_an_operand_of_another_rank(hopper_interpreter):
    fp8, one = torch.ones(16, 32).to(torch.float8_e4m3fn), torch.ones(())
    with pytest.raises(skc.LaunchError, match=r"found a \(16, 32\) and b \(1, 32, 16\)"):
        skc.blocks.matmul(fp8, fp8.T[None], scale_a=one, scale_b=one)


def test_a_gpu_matmul_names_the_operand_tma_cannot_map():
    """(was: "TMA needs every stride to be a multiple of 16 bytes; dimension 0 ...", naming no operand; the fake
    driver stands in for the GPU)"""
    from skc.blocks import matmul_host
    from skc.runtime import fake_cuda
    from skc.runtime.fake_cuda import FakeTensor

    matmul_host._PLANS.clear()
    with fake_cuda.installed():
        a = FakeTensor((128, 64))
        with pytest.raises(skc.LaunchError, match="matmul: b: TMA needs every stride to be a multiple of 16 bytes"):
            skc.blocks.matmul(a, FakeTensor((64, 128), strides=(131, 1)))
    matmul_host._PLANS.clear()


def test_conv2d_names_the_geometry_of_an_output_too_large(hopper_interpreter, operators):
    """(was: "conv2d's output has 1 x 2**70 x ... pixels ...: split the batch", for padding=2**70, naming no
    argument and the wrong fix)"""
    x = torch.ones(1, 8, 7, 6, dtype=torch.bfloat16).to(memory_format=torch.channels_last)
    w = torch.ones(8, 8, 3, 3, dtype=torch.bfloat16).to(memory_format=torch.channels_last)
    with pytest.raises(skc.LaunchError, match=r"pixels \(a 7x6 input, stride \(1, 1\), padding "
                                              r"\(1180591620717411303424"):
        skc.blocks.conv2d(x, w, padding=2 ** 70)
    with pytest.raises(skc.LaunchError, match=r"pixels \(a 7x6 input, stride \(1, 1\), padding \(65536, 65536\)"):
        operators.conv2d(x, w, padding=(65536, 65536))


def test_matmul_out_names_the_operand_that_requires_grad(hopper_interpreter, operators):
    """(was: "... and an argument requires grad")"""
    a, b, out = bf16(16, 32), bf16(32, 16).requires_grad_(), bf16(16, 16)
    with pytest.raises(skc.LaunchError, match="which autograd cannot follow, and b requires grad: call"):
        operators.matmul_out(a, b, out)
    with pytest.raises(skc.LaunchError, match="and a, b require grad"):
        operators.matmul_out(a.requires_grad_(), b, out)


@pytest.mark.parametrize("change, phrase", [
    (dict(grid=2 ** 70), r"grid \(1180591620717411303424, 1, 1\) exceeds the limit of 2147483647 blocks along x"),
    (dict(args=None), "run's args is a sequence of the kernel's arguments, found NoneType"),
    (dict(memory=3), "run's memory is an interpreter Memory"),
    (dict(arg_names=["a"]), r"run's arg_names names the kernel's 4 parameters \(out, x, alpha, n\), found \['a'\]"),
    (dict(arg_names=3), "run's arg_names names the kernel's 4 parameters"),
    (dict(function=None), "run takes an ir.Function or an ir.Module of one, found NoneType"),
    (dict(out=2 ** 70), "argument 'out' is a ptr<global>, an address of 64 bits, found 1180591620717411303424"),
    (dict(out=-1), "argument 'out' is a ptr<global>, an address of 64 bits, found -1")])
def test_the_interpreters_run_names_a_bad_argument(change, phrase):
    """(were: OverflowError, TypeError, AttributeError, and the interpreter's 'internal error ... KeyError' of a short
    arg_names, whose zip dropped arguments; a pointer of 2**70 wrapped to address 0)"""
    from helpers import tile_module
    from skc.runtime.interpreter import Memory, run

    module = tile_module(gen.launch_kernel(), skc.Ptr[skc.f32], skc.Ptr[skc.f32], skc.f32, skc.i32, block=32)
    memory = Memory()
    out, x = (memory.map_array(np.zeros(8, np.float32), name=name) for name in ("out", "x"))
    arguments = dict(function=module, grid=1, block=32, args=[change.pop("out", out), x, 2.0, 8], memory=memory)
    arguments.update(change)
    with pytest.raises(skc.LaunchError, match=phrase):
        run(**arguments)
