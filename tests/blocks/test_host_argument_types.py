"""The host entry points name arguments of the wrong kind (a list, None, a number, a dict as config) with a
LaunchError, before a plan key reads their facts (was: AttributeError or TypeError from inside the host path)."""
import numpy as np
import pytest

import skc
from skc.blocks import attention, conv2d, matmul

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("a, b", [([[1.0] * 32] * 64, "b"), (None, "b"), (3, "b"), ("a", [[1.0] * 64] * 32),
                                  ("a", None)])
def test_matmul_refuses_operands_that_are_not_arrays(hopper_interpreter, a, b):
    tensors = {"a": torch.ones(64, 32, dtype=torch.bfloat16), "b": torch.ones(32, 64, dtype=torch.bfloat16)}
    a, b = tensors.get(a, a) if isinstance(a, str) else a, tensors.get(b, b) if isinstance(b, str) else b
    with pytest.raises(skc.LaunchError, match="not a tensor or array"):
        matmul(a, b)


@pytest.mark.parametrize("options, message", [
    (dict(config="fast"), "config is a MatmulConfig"), (dict(config={"tile_n": 64}), "config is a MatmulConfig"),
    (dict(activation=["relu"]), "activation is None, 'relu'"),
    (dict(autotune=[1]), "autotune is True, False or None"), (dict(autotune="yes"), "autotune is True, False or None")])
def test_matmul_refuses_options_of_the_wrong_type(hopper_interpreter, options, message):
    a, b = torch.ones(64, 32, dtype=torch.bfloat16), torch.ones(32, 64, dtype=torch.bfloat16)
    with pytest.raises(skc.LaunchError, match=message):
        matmul(a, b, **options)


def test_scaled_matmul_refuses_operands_that_are_not_arrays(hopper_interpreter):
    b = torch.ones(64, 256).to(torch.float8_e4m3fn).T
    one = torch.ones(())
    with pytest.raises(skc.LaunchError, match="a is a list, not a tensor or array"):
        matmul([[1.0]], b, scale_a=one, scale_b=one)
    with pytest.raises(skc.LaunchError, match="config is an Fp8MatmulConfig, found dict"):
        matmul(torch.ones(64, 256).to(torch.float8_e4m3fn), b, scale_a=one, scale_b=one, config={})


def test_conv2d_refuses_operands_and_options_of_the_wrong_kind(hopper_interpreter):
    w = torch.ones(16, 16, 3, 3, dtype=torch.bfloat16).to(memory_format=torch.channels_last)
    x = torch.ones(1, 16, 6, 5, dtype=torch.bfloat16).to(memory_format=torch.channels_last)
    with pytest.raises(skc.LaunchError, match="x is a NoneType, not a tensor or array"):
        conv2d(None, w)
    with pytest.raises(skc.LaunchError, match="config is a MatmulConfig, found dict"):
        conv2d(x, w, config={"tile_n": 64})


def test_attention_refuses_operands_that_are_not_arrays_and_mixed_kinds(hopper_interpreter):
    q = np.zeros((1, 1, 64, 64), np.float32)
    with pytest.raises(skc.LaunchError, match="q is a list, not a tensor or array"):
        attention(q.tolist(), q, q)
    with pytest.raises(skc.LaunchError, match="must all be numpy arrays or all tensors"):
        attention(q, torch.zeros(1, 1, 64, 64, dtype=torch.bfloat16), q)


def _fp8(*shape):
    return torch.ones(*shape).to(torch.float8_e4m3fn)


@pytest.mark.parametrize("call, message", [
    (lambda a, b: matmul(a.float(), b), "matmul multiplies bf16 or fp16 operands; a is torch.float32"),
    (lambda a, b: matmul(a, b.float()), "matmul multiplies bf16 or fp16 operands; b is torch.float32"),
    (lambda a, b: matmul(a, torch.ones(32, 128, dtype=torch.bfloat16)[:, ::2]),
     r"matmul's operands must be row-major .*; b \(strides \(128, 2\)\) is neither"),
    (lambda a, b: matmul(torch.ones(64, 64, dtype=torch.bfloat16)[:, ::2], b),
     r"matmul's operands must be row-major .*; a \(strides \(64, 2\)\) is neither"),
    (lambda a, b: matmul(_fp8(64, 256)[:, ::2], _fp8(64, 128).T, scale_a=torch.ones(()), scale_b=torch.ones(())),
     r"scaled matmul's operands must be row-major .*; a \(strides \(256, 2\)\) is neither"),
    (lambda a, b: matmul(_fp8(64, 128), _fp8(64, 256)[:, ::2].T, scale_a=torch.ones(()), scale_b=torch.ones(())),
     r"scaled matmul's operands must be row-major .*; b \(strides \(2, 256\)\) is neither")])
def test_matmul_names_the_operand_of_the_wrong_type_or_layout(hopper_interpreter, call, message):
    """(was: "matmul multiplies bf16 or fp16 operands, found torch.float32" and "matmul's operands must be row-major
    ...", naming neither operand)"""
    with pytest.raises(skc.LaunchError, match=message):
        call(torch.ones(64, 32, dtype=torch.bfloat16), torch.ones(32, 64, dtype=torch.bfloat16))


@pytest.mark.parametrize("operand", ["x", "w"])
def test_conv2d_names_its_operand_of_the_wrong_type(hopper_interpreter, operand):
    """(was: "matmul multiplies bf16 or fp16 operands, found torch.float32": another function, neither operand)"""
    tensors = {"w": torch.ones(16, 16, 3, 3, dtype=torch.bfloat16).to(memory_format=torch.channels_last),
               "x": torch.ones(1, 16, 6, 5, dtype=torch.bfloat16).to(memory_format=torch.channels_last)}
    tensors[operand] = tensors[operand].float()
    with pytest.raises(skc.LaunchError, match=f"conv2d multiplies bf16 or fp16 operands; {operand} is torch.float32"):
        conv2d(tensors["x"], tensors["w"])


@pytest.mark.parametrize("operand", ["q", "k", "v", "out"])
def test_attention_names_its_operand_of_the_wrong_rank_or_strides(hopper_interpreter, operand):
    """(was: "attention takes 4-D tensors (bhsd), found shape ..." and TensorMap's "the tensor's innermost dimension
    must be contiguous (stride 1) for TMA", naming neither the operand nor attention)"""
    tensors = {name: torch.ones(1, 1, 64, 64, dtype=torch.bfloat16) for name in ("q", "k", "v", "out")}
    tensors[operand] = torch.ones(1, 1, 64, 128, dtype=torch.bfloat16)[..., ::2]
    with pytest.raises(skc.LaunchError, match=rf"attention: {operand} \(strides \(8192, 8192, 128, 2\)\) is not "
                                              "contiguous along head_dim"):
        attention(tensors["q"], tensors["k"], tensors["v"], out=tensors["out"])
    if operand != "out":   # (out is checked against q's shape)
        tensors[operand] = torch.ones(1, 64, 64, dtype=torch.bfloat16)
        with pytest.raises(skc.LaunchError, match=rf"attention takes 4-D tensors \(bhsd\), found {operand} of shape"):
            attention(tensors["q"], tensors["k"], tensors["v"])


def test_scaled_matmul_names_an_out_whose_rows_are_strided(hopper_interpreter):
    """(was: TensorMap's "the tensor's innermost dimension must be contiguous (stride 1) for TMA")"""
    out = torch.empty(64, 128, dtype=torch.bfloat16)[:, ::2]
    with pytest.raises(skc.LaunchError, match=r"scaled matmul: out \(strides \(128, 2\)\) must have contiguous rows"):
        matmul(_fp8(64, 128), _fp8(64, 128).T, scale_a=torch.ones(()), scale_b=torch.ones(()), out=out)


def test_matmul_refuses_a_read_only_out_before_the_launch(hopper_interpreter):
    """(was an InterpreterError inside the epilogue, after the kernel had run)"""
    out = np.zeros((16, 16), np.float16)
    out.setflags(write=False)
    with pytest.raises(skc.LaunchError, match="matmul: out is a read-only array"):
        matmul(np.ones((16, 32), np.float16), np.ones((32, 16), np.float16), out)


def test_attention_names_skc_arrays_as_what_it_does_not_take(hopper_interpreter):
    """(was: "attention runs on bfloat16 or float16 tensors, found bf16", of a bf16 skc array)"""
    q = skc.to_device(np.zeros((1, 1, 8, 64), np.float32), skc.bf16)
    with pytest.raises(skc.LaunchError, match="not skc arrays"):
        attention(q, q, q)


def test_strided_outs_the_gpu_takes_run_in_the_interpreter_too(hopper_interpreter):
    """A batched out whose rows are strided, and an fp8 out likewise: the interpreter was handed out as the stand-in
    for the c or bias it never reads, and refused it as "argument 'c_in' is not contiguous"."""
    a, b = torch.randint(-2, 3, (3, 16, 32)).to(torch.bfloat16), torch.randint(-2, 3, (3, 32, 16)).to(torch.bfloat16)
    out = torch.full((3, 16, 32), float("nan"), dtype=torch.bfloat16)[:, :, :16]
    matmul(a, b, out)
    assert torch.equal(out.float(), a.float() @ b.float())
    e4m3 = torch.float8_e4m3fn
    a8, b8 = torch.randint(-2, 3, (16, 32)).to(e4m3), torch.randint(-2, 3, (16, 32)).to(e4m3).t()
    out8 = torch.full((16, 32), float("nan"), dtype=torch.bfloat16)[:, :16]
    one = torch.tensor(1.0)
    matmul(a8, b8, out8, scale_a=one, scale_b=one)
    assert torch.equal(out8.float(), a8.float() @ b8.float())


@pytest.mark.parametrize("config, message", [
    (lambda: skc.blocks.MatmulConfig(batched="ab"), "config.batched='ab' is matmul's own choice"),
    (lambda: skc.blocks.AmdMatmulConfig(), "matmul on sm_90a takes a MatmulConfig, found AmdMatmulConfig"),
    (lambda: skc.blocks.MatmulConfig(stages=30), r"more than the 232448 a block may use on sm_90a: use fewer stages")])
def test_matmul_refuses_a_config_that_does_not_fit_at_the_call(hopper_interpreter, config, message):
    """(were errors from inside the compiler, at skc's own lines: a 3-D box for a 2-D tensor, the AMD config in the
    Hopper GEMM, shared memory in the payload block)"""
    a, b = torch.ones(16, 64, dtype=torch.bfloat16), torch.ones(64, 64, dtype=torch.bfloat16)
    with pytest.raises(skc.LaunchError, match=message):
        matmul(a, b, config=config())


def test_attention_takes_return_lse_as_a_bool(hopper_interpreter):
    q = torch.zeros(1, 1, 8, 64, dtype=torch.bfloat16)
    with pytest.raises(skc.LaunchError, match="return_lse is True or False, found 'no'"):
        attention(q, q, q, return_lse="no")


def test_matmul_names_meta_tensors(hopper_interpreter):
    """(was "out shares memory with a": a meta tensor's address reads 0)"""
    a, b = torch.empty(16, 32, dtype=torch.bfloat16, device="meta"), torch.empty(32, 16, dtype=torch.bfloat16,
                                                                                   device="meta")
    with pytest.raises(skc.LaunchError, match="a is a meta tensor"):
        matmul(a, b)
