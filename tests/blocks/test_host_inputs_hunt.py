"""Host entry points' inputs a helper's search found unchecked (sixtieth session): an alpha or beta past float32's
range became an infinite f32 in the kernel (NaN and inf out, where torch.addmm refuses it); a call with nothing to
launch (M, N or a batch of 0, no query row) took any stream= where a call with work refused it. In the interpreter
on small problems."""
import ml_dtypes
import numpy as np
import pytest

import skc
from skc.blocks import attention, conv2d, matmul

torch = pytest.importorskip("torch")


def ints(*shape, dtype=torch.bfloat16):
    return torch.randint(-2, 3, shape).to(dtype)


@pytest.mark.parametrize("options", [dict(alpha=1e300), dict(alpha=-1e39), dict(alpha=np.float64(4e38)),
                                     dict(beta=1e300), dict(alpha=2 ** 200)])
def test_an_alpha_or_beta_past_float32s_range_is_refused_by_name(options):
    a, b, c = ints(16, 32), ints(32, 24), ints(16, 24)
    name = next(iter(options))
    with pytest.raises(skc.LaunchError, match=f"{name} = .* past the range of the f32"):
        matmul(a, b, c=c if name == "beta" else None, **options)


@pytest.mark.parametrize("alpha", [3.4028234663852886e38, -1e38, float("inf"), 0.5])
def test_alphas_float32_holds_run(alpha):
    a, b = ints(16, 32), ints(32, 24)
    want = (a.double() @ b.double() * alpha).bfloat16()   # (inf times a product of 0: NaN, as torch.addmm gives)
    got = matmul(a, b, alpha=alpha)
    assert torch.allclose(got.float(), want.float(), rtol=0, atol=0, equal_nan=True)


BAD_STREAMS = ["not a stream", object(), True, 3.5]


@pytest.mark.parametrize("stream", BAD_STREAMS)
def test_an_empty_matmul_checks_its_stream_as_one_with_work(stream):
    for M in (16, 0):
        with pytest.raises(skc.LaunchError, match="as a CUDA stream"):
            matmul(ints(M, 32), ints(32, 24), stream=stream)
    with pytest.raises(skc.LaunchError, match="as a CUDA stream"):
        matmul(ints(0, 16, 32), ints(32, 24), stream=stream)   # (a batch of none)


@pytest.mark.parametrize("stream", BAD_STREAMS)
def test_an_empty_scaled_matmul_conv2d_and_attention_check_their_stream(stream):
    one = np.ones(1, np.float32)
    a = np.ones((0, 32), ml_dtypes.float8_e4m3fn)
    b = np.ones((24, 32), ml_dtypes.float8_e4m3fn).T
    with pytest.raises(skc.LaunchError, match="as a CUDA stream"):
        matmul(a, b, scale_a=one, scale_b=one, stream=stream)
    cl = torch.channels_last
    x, w = ints(0, 16, 5, 5).to(memory_format=cl), ints(16, 16, 3, 3).to(memory_format=cl)
    with pytest.raises(skc.LaunchError, match="as a CUDA stream"):
        conv2d(x, w, stream=stream)
    q, k = ints(1, 2, 0, 64), ints(1, 2, 16, 64)
    with pytest.raises(skc.LaunchError, match="as a CUDA stream"):
        attention(q, k, k, stream=stream)


def test_empty_problems_still_take_a_good_stream_and_give_their_results():
    q, k = ints(1, 2, 0, 64), ints(1, 2, 16, 64)
    assert attention(q, k, k, stream=0).shape == (1, 2, 0, 64)
    assert matmul(ints(0, 32), ints(32, 24), stream=0).shape == (0, 24)


def off_16_bytes(shape, dtype):
    """A tensor made under torch.inference_mode, 2 bytes or more past a 16-byte boundary (the GEMMs and conv2d copy
    such an out into aligned memory and write the copy back)."""
    with torch.inference_mode():
        return torch.zeros(int(np.prod(shape)) + 1, dtype=dtype)[1:].view(shape)


def exact_fp8(M, N, K):
    a, b = ints(M, K, dtype=torch.float32), ints(K, N, dtype=torch.float32)
    return (a.to(torch.float8_e4m3fn), b.t().contiguous().to(torch.float8_e4m3fn).t()), a.double() @ b.double()


@pytest.mark.parametrize("call", ["matmul", "fp8", "conv2d", "attention without keys"])
def test_an_out_made_under_inference_mode_is_written_outside_it_on_every_path(hopper_interpreter, call):
    """An inference tensor as out, outside inference_mode: the kernels' stores write it, and so do the host's own
    writes now (an aligned copy written back into an out off 16 bytes, an attention with no key's zeros), which
    raised torch's RuntimeError ("Inplace update to inference tensor outside InferenceMode") in the same call."""
    if call == "matmul":
        a, b = ints(16, 64), ints(64, 32)
        out, want = off_16_bytes((16, 32), torch.bfloat16), a.double() @ b.double()
        got = matmul(a, b, out)
    elif call == "fp8":
        (a, b), want = exact_fp8(16, 32, 64)
        one = torch.tensor(1.0)
        out = off_16_bytes((16, 32), torch.float32)
        got = matmul(a, b, out, scale_a=one, scale_b=one)
    elif call == "conv2d":
        x = ints(1, 16, 8, 8).contiguous(memory_format=torch.channels_last)
        w = ints(16, 16, 3, 3).contiguous(memory_format=torch.channels_last)
        want = torch.nn.functional.conv2d(x.double(), w.double(), padding=1)
        out = off_16_bytes((1, 8, 8, 16), torch.bfloat16).permute(0, 3, 1, 2)
        got = conv2d(x, w, padding=1, out=out)
    else:
        q, k = ints(1, 2, 33, 64), ints(1, 2, 0, 64)
        with torch.inference_mode():
            out = torch.full(q.shape, 7.0, dtype=q.dtype)
        got, want = attention(q, k, k, out=out), torch.zeros(q.shape, dtype=torch.float64)
    assert got is out and out.is_inference() and not torch.is_inference_mode_enabled()
    assert torch.equal(out.double(), want)


@pytest.mark.parametrize("call, name", [
    (lambda q: attention(q, ints(1, 1, 64, 64), ints(1, 1, 64, 64)), "q"),
    (lambda v: attention(ints(1, 1, 64, 64), ints(1, 1, 64, 64), v), "v"),
    (lambda scale: matmul(*exact_fp8(16, 32, 64)[0], scale_a=torch.tensor(1.0), scale_b=scale), "scale_b"),
])
def test_a_lazily_negated_operand_is_named_in_what_to_pass(hopper_interpreter, call, name):
    """The refusal of a lazily negated view said "pass x.resolve_neg()" whatever the operand's name."""
    operand = torch._neg_view(ints(1, 1, 64, 64) if name != "scale_b" else torch.tensor(1.0))
    with pytest.raises(skc.LaunchError, match=rf": {name} is a lazily negated view .*: pass {name}\.resolve_neg\(\)$"):
        call(operand)
