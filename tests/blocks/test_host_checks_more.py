"""Host entry points that returned a wrong answer or a misleading or foreign error (a helper's search, forty-first
session), now refused with a LaunchError that names the problem: an out whose elements share memory (batched
matmul, attention, the fp8 matmul); a bad activation on the batched one-launch path; meta tensors given to
attention, conv2d and the fp8 matmul; an attention scale that is 0 or infinite as an f32; torch and numpy operands
mixed in attention; a read-only numpy out of the fp8 matmul; a stream that is a class, a bool or a numpy int.
Run in the CPU interpreter (small shapes)."""
import numpy as np
import pytest

import skc
from skc.blocks import attention, conv2d, matmul
from skc.blocks.host_plans import overlaps_itself
from skc.runtime.launcher import normalize_stream

torch = pytest.importorskip("torch")
ml_dtypes = pytest.importorskip("ml_dtypes")


def small(*shape, dtype=torch.bfloat16):
    return torch.randint(-2, 3, shape).to(dtype)


def test_overlaps_itself():
    assert overlaps_itself(torch.zeros(1, 4, 8).expand(3, 4, 8))
    assert overlaps_itself(torch.zeros(64).as_strided((3, 4, 8), (16, 8, 1)))   # batch stride under 4 x 8
    assert not overlaps_itself(torch.zeros(3, 4, 8))
    assert not overlaps_itself(torch.zeros(8, 4).t())
    assert not overlaps_itself(torch.zeros(3, 1, 8).expand(3, 1, 8))   # (a dimension of 1 never repeats)


@pytest.mark.parametrize("b_shape, with_c", [((3, 32, 24), False), ((32, 24), False), ((3, 32, 24), True)])
def test_batched_out_whose_matrices_share_memory(b_shape, with_c):
    a, b = small(3, 16, 32), small(*b_shape)
    out = torch.zeros(1, 16, 24, dtype=torch.bfloat16).expand(3, 16, 24)
    extra = {"c": small(3, 16, 24)} if with_c else {}
    with pytest.raises(skc.LaunchError, match="share memory"):
        matmul(a, b, out, **extra)


@pytest.mark.parametrize("b_shape", [(3, 32, 24), (32, 24)])
def test_batched_unknown_activation(b_shape):
    with pytest.raises(skc.LaunchError, match="unknown activation 'RELU'"):
        matmul(small(3, 16, 32), small(*b_shape), activation="RELU")


def test_attention_out_expanded_over_heads():
    q, k, v = (torch.randn(1, 2, 16, 64).bfloat16() for _ in range(3))
    with pytest.raises(skc.LaunchError, match="share memory"):
        attention(q, k, v, out=torch.zeros(1, 1, 16, 64, dtype=torch.bfloat16).expand(1, 2, 16, 64))


def test_meta_tensors_are_named_as_such():
    def meta(*shape, dtype=torch.bfloat16):
        return torch.empty(*shape, dtype=dtype, device="meta")

    q = meta(1, 2, 16, 64)
    e4m3 = torch.float8_e4m3fn
    calls = [lambda: attention(q, q, q),
             lambda: conv2d(meta(1, 8, 8, 8).to(memory_format=torch.channels_last),
                            meta(8, 8, 3, 3).to(memory_format=torch.channels_last)),
             lambda: matmul(meta(16, 128, dtype=e4m3), meta(24, 128, dtype=e4m3).t(),
                            scale_a=torch.ones((), device="meta"), scale_b=torch.ones((), device="meta"))]
    for call in calls:
        with pytest.raises(skc.LaunchError, match="is a meta tensor"):
            call()


@pytest.mark.parametrize("scale, word", [(1e-46, "is 0"), (1e39, "is infinite")])
def test_attention_scale_out_of_f32s_range(scale, word):
    q = torch.randn(1, 2, 16, 64).bfloat16()
    with pytest.raises(skc.LaunchError, match=word):
        attention(q, q, q, scale=scale)


def test_attention_mixing_torch_and_numpy():
    q = torch.randn(1, 2, 16, 64).bfloat16()
    kv = np.zeros((1, 2, 16, 64), ml_dtypes.bfloat16)
    with pytest.raises(skc.LaunchError, match="numpy arrays or all tensors"):
        attention(q, kv, kv)
    with pytest.raises(skc.LaunchError, match="numpy arrays or all tensors"):
        attention(q, q, q, out=np.zeros((1, 2, 16, 64), np.float32))


def test_fp8_out_checks():
    M, K, N = 16, 128, 24
    a = torch.randint(-2, 3, (M, K)).to(torch.float8_e4m3fn)
    b = torch.randint(-2, 3, (N, K)).to(torch.float8_e4m3fn).t()
    one = torch.tensor(1.0)
    with pytest.raises(skc.LaunchError, match="share memory"):
        matmul(a, b, torch.zeros(1, N, dtype=torch.bfloat16).expand(M, N), scale_a=one, scale_b=one)
    an = a.view(torch.uint8).numpy().view(ml_dtypes.float8_e4m3fn)
    bn = b.t().contiguous().view(torch.uint8).numpy().view(ml_dtypes.float8_e4m3fn).T
    out = np.zeros((M, N), ml_dtypes.bfloat16)
    out.flags.writeable = False
    with pytest.raises(skc.LaunchError, match="read-only"):
        matmul(an, bn, out, scale_a=np.ones((), np.float32), scale_b=np.ones((), np.float32))


def test_stream_arguments():
    assert normalize_stream(np.int64(7)) == 7
    for bad in (torch.cuda.Stream, True, 1.5, "0", torch.Stream(device="cpu")):
        with pytest.raises(skc.LaunchError, match="as a CUDA stream"):
            normalize_stream(bad)


def test_a_generic_torch_stream_of_cuda_is_taken_by_its_handle():
    """torch.accelerator.current_stream() gives a torch.Stream (the device-generic type, which torch.cuda.Stream
    extends), with no cuda_stream: stream= refused it ('cannot use torch.Stream(...) as a CUDA stream; pass a
    torch/cupy stream object'). A CUDA one is taken by its native_handle (here a stand-in: no GPU)."""
    import types

    generic = types.SimpleNamespace(device=torch.device("cuda", 0), native_handle=0x5EED)
    assert normalize_stream(generic) == 0x5EED


@pytest.mark.parametrize("flag, value", [("a_k_major", [1]), ("pingpong", 2), ("swap_ab", "yes"), ("stream_k", None)])
def test_a_config_flag_that_is_no_truth_value_is_refused(flag, value):
    """A list was taken and failed inside matmul's plan cache (TypeError: unhashable type: 'list')."""
    with pytest.raises(ValueError, match=f"{flag} must be True or False"):
        skc.blocks.MatmulConfig(**{flag: value})
    assert skc.blocks.MatmulConfig(**{flag: 1}) == skc.blocks.MatmulConfig(**{flag: True})


@pytest.mark.parametrize("k, n", [(16, 8), (7, 8), (16, 5)], ids=["aligned", "k7-copied", "n5-copied"])
@pytest.mark.parametrize("which", ["a", "b"])
def test_reversed_numpy_rows_are_named(hopper_interpreter, which, k, n):
    """numpy's x[::-1] has a negative row stride, which neither TMA nor the row copies address: a foreign ValueError
    ("negative dimensions are not allowed") where the rows were copied, TensorMap's "not contiguous" elsewhere."""
    rng = np.random.default_rng(0)
    a, b = rng.integers(-2, 3, (16, k)).astype(np.float16), rng.integers(-2, 3, (k, n)).astype(np.float16)
    operands = {"a": a[::-1], "b": b} if which == "a" else {"a": a, "b": b[::-1]}
    with pytest.raises(skc.LaunchError, match=rf"{which} \(strides \(-{operands[which].shape[1]}, 1\)\) is neither"):
        matmul(operands["a"], operands["b"])


@pytest.mark.parametrize("reversed_operand", ["a", "b", "out"])
def test_a_batch_in_reverse_order_runs_per_matrix(hopper_interpreter, reversed_operand):
    """A batch of numpy matrices in reverse order (x[::-1]: a negative batch stride) ran into a 3-D tensor map, which
    refused it as "not contiguous"; each of its matrices is row-major, so it runs a GEMM per matrix."""
    rng = np.random.default_rng(1)
    a, b = rng.integers(-2, 3, (3, 8, 16)).astype(np.float16), rng.integers(-2, 3, (3, 16, 8)).astype(np.float16)
    out = np.empty((3, 8, 8), np.float16)
    operands = dict(a=a, b=b, out=out)
    operands[reversed_operand] = operands[reversed_operand][::-1]
    matmul(operands["a"], operands["b"], out=operands["out"])
    expected = operands["a"].astype(np.float32) @ operands["b"].astype(np.float32)
    np.testing.assert_array_equal(operands["out"].astype(np.float32), expected)
