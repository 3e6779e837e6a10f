"""skc.blocks' host entry points (matmul, conv2d, attention) called eagerly on torch tensors that autograd follows:
the call is torch.ops.skc's operator, whose derivative is registered (was: a result with no grad_fn, a silently
lost gradient, and no forward-mode tangent); what the operators do not take is refused by name, and so is the fp8
GEMM, which has no derivative (nor has torch._scaled_mm)."""
import pytest

torch = pytest.importorskip("torch")
import torch.autograd.forward_ad as forward_ad  # noqa: E402
import skc  # noqa: E402
from skc.blocks import attention, conv2d, matmul  # noqa: E402


def randn(*shape, seed=0, scale=1.0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=generator) * scale).bfloat16()


def grads(inputs, output):
    cotangent = torch.randn(output.shape, generator=torch.Generator().manual_seed(9))
    return torch.autograd.grad(output.float(), inputs, cotangent)


def test_the_host_calls_give_the_gradients_of_skcs_operators():
    a, b, bias = (t.requires_grad_() for t in (randn(16, 32), randn(32, 16, seed=1), randn(16, seed=2)))
    got = matmul(a, b, bias=bias, activation="relu")
    assert got.grad_fn is not None   # (was: None)
    want = torch.ops.skc.matmul(a, b, bias=bias, activation="relu")
    assert torch.equal(got, want) and all(map(torch.equal, grads((a, b, bias), got), grads((a, b, bias), want)))
    x = randn(1, 16, 6, 6).to(memory_format=torch.channels_last).requires_grad_()
    w = randn(16, 16, 3, 3, seed=3, scale=0.25).to(memory_format=torch.channels_last)
    got = conv2d(x, w, padding="same")   # (torch's padding names, which the operator takes as numbers)
    want = torch.ops.skc.conv2d(x, w, padding=(1, 1))
    assert torch.equal(got, want) and torch.equal(grads((x,), got)[0], grads((x,), want)[0])
    q, k = randn(1, 1, 64, 64, seed=4).requires_grad_(), randn(1, 1, 64, 64, seed=5)
    got, lse = attention(q, k, k, causal=1, return_lse=True)
    assert lse.dtype == torch.float32 and lse.shape == (1, 1, 64)
    want = torch.ops.skc.attention(q, k, k, causal=True)
    assert torch.equal(got, want) and torch.equal(grads((q,), got)[0], grads((q,), want)[0])


def test_no_grad_and_detached_calls_run_the_kernel_as_before():
    a, b = randn(8, 16).requires_grad_(), randn(16, 8, seed=1)
    with torch.no_grad():
        assert matmul(a, b).grad_fn is None
    assert matmul(a.detach(), b, config=None).grad_fn is None


def test_the_host_calls_give_forward_mode_tangents():
    a, b = randn(8, 16), randn(16, 8, seed=1)
    direction = randn(8, 16, seed=2)
    with forward_ad.dual_level():
        got = forward_ad.unpack_dual(matmul(forward_ad.make_dual(a, direction), b)).tangent
        want = forward_ad.unpack_dual(torch.ops.skc.matmul(forward_ad.make_dual(a, direction), b)).tangent
    assert got is not None and torch.equal(got, want)   # (was: None)


@pytest.mark.parametrize("call, message", [
    (lambda a, b: matmul(a, b, config=skc.blocks.MatmulConfig()), "takes no config: call matmul under torch.no_grad"),
    (lambda a, b: matmul(a, b, alpha=torch.tensor(2.0)), "alpha and beta as numbers"),
    (lambda a, b: matmul(a, b, torch.empty(8, 8, dtype=torch.bfloat16)), "takes no out: call matmul under torch.no_grad"),
    (lambda a, b: conv2d(a.reshape(1, 8, 4, 4), b.reshape(8, 8, 2, 1)[:, :, :1], stream=0),
     "takes no stream: call conv2d under torch.no_grad"),
    (lambda a, b: attention(a.reshape(1, 1, 2, 64), b.reshape(1, 1, 2, 64), b.reshape(1, 1, 2, 64),
                            out=torch.empty(1, 1, 2, 64, dtype=torch.bfloat16)), "takes no out")])
def test_what_the_operators_do_not_take_is_refused_by_name(call, message):
    a, b = randn(8, 16).requires_grad_(), randn(16, 8, seed=1)
    with pytest.raises(skc.LaunchError, match=message):
        call(a, b)


def test_the_fp8_gemm_refuses_a_derivative_by_name():
    a = torch.ones(16, 32).to(torch.float8_e4m3fn)
    b = torch.ones(16, 32).to(torch.float8_e4m3fn).t()
    scale = torch.tensor(1.0, requires_grad=True)
    with pytest.raises(skc.LaunchError, match=r"no derivative .* follows scale_a: .* pass scale_a.detach\(\)"):
        matmul(a, b, scale_a=scale, scale_b=torch.tensor(1.0))   # (was: a result with no grad_fn)
    with torch.no_grad():
        got = matmul(a, b, scale_a=scale, scale_b=torch.tensor(1.0), out_dtype=torch.float32)
    assert torch.equal(got, torch.full((16, 16), 32.0))


@pytest.mark.parametrize("call, error, message", [
    (lambda out: matmul(randn(8, 16), randn(16, 8, seed=1), out), skc.LaunchError, "takes no out"),
    (lambda out: conv2d(randn(1, 8, 2, 4).to(memory_format=torch.channels_last),
                        randn(8, 8, 1, 1, seed=1).to(memory_format=torch.channels_last),
                        out=out.reshape(1, 2, 4, 8).permute(0, 3, 1, 2)), skc.LaunchError, "takes no out"),
    (lambda out: attention(*(randn(1, 1, 1, 64, seed=s) for s in range(3)), out=out.reshape(1, 1, 1, 64)),
     skc.LaunchError, "takes no out")])
def test_an_out_that_requires_grad_is_refused_as_torchs_out_is(call, error, message):
    """(was: written in place, with no grad_fn, where torch.matmul(a, b, out=o) refuses: "functions with out=...
    arguments don't support automatic differentiation"); under torch.no_grad it is written."""
    out = torch.zeros(8, 8, dtype=torch.bfloat16, requires_grad=True)
    with pytest.raises(error, match=message):
        call(out)
    assert not out.any()
    with torch.no_grad():
        call(out)
    assert out.any()


def test_a_batch_of_one_broadcasts_under_autograd_as_without():
    """(was: skc::matmul's "the batch sizes differ" for the broadcast the call takes under torch.no_grad)"""
    a, b = randn(1, 8, 16).requires_grad_(), randn(3, 16, 8, seed=1).requires_grad_()
    got = matmul(a, b)
    with torch.no_grad():
        assert torch.equal(got, matmul(a, b))
    for mine, torchs in zip(grads((a, b), got), grads((a, b), torch.matmul(a, b))):   # (torch's, in bf16)
        torch.testing.assert_close(mine, torchs, rtol=2e-2, atol=0.07)
    got = matmul(b.transpose(1, 2), a.transpose(1, 2))   # (a batch of one as b)
    assert got.shape == (3, 8, 8) and got.grad_fn is not None


def test_operands_of_another_kind_beside_a_torch_tensor_meet_the_calls_own_checks():
    """(was: an AttributeError, "'numpy.ndarray' object has no attribute 'requires_grad'", from the check for
    autograd, where a numpy w beside a torch x ran and a numpy k was skc's LaunchError)"""
    import ml_dtypes
    import numpy as np

    x = randn(1, 8, 4, 4).to(memory_format=torch.channels_last)
    w = randn(8, 8, 1, 1, seed=1).to(memory_format=torch.channels_last)
    got = conv2d(x, w.permute(0, 2, 3, 1).float().numpy().astype(ml_dtypes.bfloat16))
    assert torch.equal(got, conv2d(x, w))
    q = randn(1, 1, 64, 64)
    with pytest.raises(skc.LaunchError, match="all be numpy arrays or all tensors"):
        attention(q, q.float().numpy().astype(ml_dtypes.bfloat16), q)
    a = torch.ones(16, 32).to(torch.float8_e4m3fn)
    got = matmul(a, a.t(), scale_a=np.float32(1.0), scale_b=torch.tensor(1.0), out_dtype=torch.float32)
    assert torch.equal(got, torch.full((16, 16), 32.0))


def test_conv2d_of_a_numpy_x_beside_a_weight_autograd_follows_is_refused_by_name():
    """(was: the kernel ran, its numpy result carrying no gradient: w's lost silently); under torch.no_grad it runs."""
    np = pytest.importorskip("numpy")
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = np.ones((1, 4, 4, 8), ml_dtypes.bfloat16)   # (NHWC)
    w = torch.ones(8, 8, 1, 1, dtype=torch.bfloat16).to(memory_format=torch.channels_last).requires_grad_()
    with pytest.raises(skc.LaunchError, match=r"autograd follows a torch operand \(w\), and x is not a torch tensor"):
        conv2d(x, w)
    with torch.no_grad():
        assert (conv2d(x, w).astype(np.float32) == 8).all()


def float64_grads(reference, inputs, cotangent):
    """The output and the gradients of torch's reference, in float64, at the inputs' values."""
    wide = [t.detach().double().requires_grad_() for t in inputs]
    output = reference(*wide)
    return output, torch.autograd.grad(output, wide, cotangent.double())


def assert_close_relative(got, want, tolerance=0.03):
    assert (got.double() - want).abs().max() <= tolerance * want.abs().max()


@pytest.mark.parametrize("geometry", [dict(stride=(1, 2), padding=(1, 0)), dict(padding="same", dilation=(1, 2)),
                                      dict(stride=2, padding="valid", activation="gelu")])
def test_conv2d_of_a_modules_parameters_gives_torchs_gradients(geometry):
    """conv2d(x, self.weight, self.bias, ...) as a model calls it: x's, the weight's and the bias's gradients are
    torch.nn.functional.conv2d's (float64) at the same values; under no_grad and inference_mode the kernel runs."""
    activation = geometry.pop("activation", None)
    weight = torch.nn.Parameter(randn(8, 8, 3, 3, seed=1, scale=0.3).to(memory_format=torch.channels_last))
    bias = torch.nn.Parameter(randn(8, seed=2))
    x = randn(2, 8, 6, 6).to(memory_format=torch.channels_last).requires_grad_()
    got = conv2d(x, weight, bias, activation=activation, **geometry)
    cotangent = torch.randn(got.shape, generator=torch.Generator().manual_seed(9))
    mine = torch.autograd.grad(got.float(), (x, weight, bias), cotangent)
    act = {None: lambda z: z, "gelu": lambda z: torch.nn.functional.gelu(z, approximate="tanh")}[activation]
    want, torchs = float64_grads(lambda *t: act(torch.nn.functional.conv2d(*t, **geometry)), (x, weight, bias),
                                 cotangent)
    assert_close_relative(got, want)
    for g, w in zip(mine, torchs):
        assert_close_relative(g, w)
    for mode in (torch.no_grad, torch.inference_mode):
        with mode():
            assert torch.equal(conv2d(x, weight, bias, activation=activation, **geometry), got.detach())


@pytest.mark.parametrize("options", [dict(causal=True, Sq=8), dict(scale=0.3, heads=(4, 2), layout="bshd"),
                                     dict(causal=True, return_lse=True, heads=(2, 1))])
def test_attention_gives_the_gradients_of_torchs_attention(options):
    """q's, k's and v's gradients (and lse's, with return_lse) are those of the attention torch computes in float64
    (scaled_dot_product_attention's, with grouped-query heads, a causal mask top-left aligned, bshd as bhsd
    transposed)."""
    layout, (H, Hkv), Sq = options.get("layout", "bhsd"), options.get("heads", (1, 1)), options.get("Sq", 16)
    shape = (lambda h, s: (1, h, s, 64)) if layout == "bhsd" else (lambda h, s: (1, s, h, 64))
    q, k, v = (randn(*shape(h, s), seed=i).requires_grad_() for i, (h, s) in enumerate([(H, Sq), (Hkv, 16), (Hkv, 16)]))
    causal, scale, return_lse = options.get("causal", False), options.get("scale"), options.get("return_lse", False)
    got = attention(q, k, v, causal, scale, layout=layout, return_lse=return_lse)
    out = got[0] if return_lse else got
    cotangent = torch.randn(out.shape, generator=torch.Generator().manual_seed(9))
    mine = torch.autograd.grad(out.float(), (q, k, v), cotangent, retain_graph=return_lse)

    def reference(q, k, v):
        q, k, v = (t.transpose(1, 2) for t in (q, k, v)) if layout == "bshd" else (q, k, v)
        o = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale,
                                                             enable_gqa=H != Hkv)
        return o.transpose(1, 2) if layout == "bshd" else o

    want, torchs = float64_grads(reference, (q, k, v), cotangent)
    assert_close_relative(out, want)
    for g, w in zip(mine, torchs):
        assert_close_relative(g, w)
    if return_lse:   # lse's gradient in q: that of torch's logsumexp of the scaled, masked scores
        def lse(q, k):
            scores = (q @ k.repeat_interleave(H // Hkv, 1).transpose(-1, -2)) * 64 ** -0.5
            return torch.logsumexp(scores.masked_fill(torch.ones(Sq, 16, dtype=torch.bool).triu(1), -torch.inf), -1)
        cotangent = torch.randn(got[1].shape, generator=torch.Generator().manual_seed(8))
        want, torchs = float64_grads(lse, (q, k), cotangent)
        assert_close_relative(got[1], want, 1e-3)
        for g, w in zip(torch.autograd.grad(got[1], (q, k), cotangent), torchs):
            assert_close_relative(g, w)


def test_attention_gives_torchs_forward_mode_tangent():
    q, k, v, direction = (randn(1, 1, 16, 64, seed=s) for s in range(4))
    with forward_ad.dual_level():
        got = forward_ad.unpack_dual(attention(q, k, forward_ad.make_dual(v, direction), causal=True)).tangent
    mask = torch.ones(16, 16, dtype=torch.bool).triu(1)
    weights = torch.softmax((q.double() @ k.double().transpose(-1, -2) / 8).masked_fill(mask, -torch.inf), -1)
    assert_close_relative(got, weights @ direction.double())   # (attention is linear in v)


@pytest.mark.parametrize("call, message", [
    (lambda x: conv2d(x.reshape(1, 8, 2, 4).to(memory_format=torch.channels_last),
                      randn(4, 8, 1, 1).to(memory_format=torch.channels_last)), "K .* must be a multiple of 8"),
    (lambda x: conv2d(x.reshape(1, 8, 2, 4), randn(8, 8, 1, 1)), "must be in the channels_last memory format"),
    (lambda x: conv2d(x.reshape(1, 8, 2, 4).double().to(memory_format=torch.channels_last),
                      randn(8, 8, 1, 1).double().to(memory_format=torch.channels_last)), "runs on bf16 or fp16"),
    (lambda x: conv2d(x.reshape(1, 8, 2, 4).to(memory_format=torch.channels_last),
                      randn(8, 8, 1, 1).to(memory_format=torch.channels_last), activation="tanh"),
     "unknown activation 'tanh'"),
    (lambda x: attention(*[x.reshape(1, 1, 1, 64)] * 3, layout="bsdh"), "layout must be one of bhsd, bshd"),
    (lambda x: attention(x.reshape(1, 2, 1, 32).repeat(1, 3, 1, 2)[:, :3], *[x.reshape(1, 2, 1, 32).repeat(1, 1, 1, 2)] * 2),
     "K/V heads dividing Q heads: 3 and 2"),
    (lambda x: attention(*[x.reshape(1, 1, 1, 64).double()] * 3), "runs on bfloat16 or float16"),
    (lambda x: torch.func.grad(lambda x: attention(*[x.reshape(1, 1, 1, 64)] * 3).float().sum())(x),
     "torch.func's derivative transforms")])
def test_what_a_differentiated_call_refuses_is_a_launch_error(call, message):
    """(was: torch's RuntimeError from the operator's checks, where the same call under torch.no_grad raised skc's
    LaunchError); still a RuntimeError, as torch's own operators raise for a bad argument."""
    x = randn(64).requires_grad_()
    with pytest.raises(skc.LaunchError, match=message) as error:
        call(x)
    assert isinstance(error.value, RuntimeError)


@pytest.mark.parametrize("call, name", [
    (lambda a, s: matmul(a, a.t(), alpha=s), "matmul's alpha"),
    (lambda a, s: matmul(a.expand(2, 8, 16), a.t(), alpha=s), "matmul's alpha"),   # (a batch)
    (lambda a, s: matmul(a[0], a.t(), alpha=s), "matmul's alpha"),                 # (a 1-D a: torch's shapes)
    (lambda a, s: matmul(a, a.t(), c=a[:, :8].contiguous(), beta=s), "matmul's beta"),
    (lambda a, s: attention(*[a.reshape(1, 1, 2, 64)] * 3, scale=s), "attention's scale"),
    (lambda a, s: attention(*[a.reshape(1, 1, 2, 64)] * 3, scale=s, return_lse=True)[1], "attention's scale")])
def test_a_scalar_tensor_autograd_follows_is_refused_by_name(call, name):
    """alpha, beta and scale given as tensors that require grad, beside operands that need none (was: the call ran, its
    result with no grad_fn: the scalar's gradient lost silently); under torch.no_grad, or detached, they run."""
    a = randn(8, 16)
    scalar = torch.tensor(0.5, requires_grad=True)
    with pytest.raises(skc.LaunchError, match=name + r" is a tensor that requires grad, .* pass \w+.detach\(\)"):
        call(a, scalar)
    with forward_ad.dual_level():
        with pytest.raises(skc.LaunchError, match=name + " is a tensor that carries a forward-mode tangent"):
            call(a, forward_ad.make_dual(torch.tensor(0.5), torch.tensor(1.0)))
    want = call(a, 0.5)
    with torch.no_grad():
        assert torch.equal(call(a, scalar), want)
    assert torch.equal(call(a, scalar.detach()), want)
