"""torch.ops.skc.* with inputs that require grad (nn.Parameter weights): torch.compile of a forward-only call traces
(AOTAutograd traces the backward too), and backward gives the gradients of a float32 torch reference."""
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
import skc.blocks  # noqa: E402
import skc.torch  # noqa: E402,F401


def randn(*shape, seed=0, scale=1.0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=generator) * scale).bfloat16()


class Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w, self.b = torch.nn.Parameter(randn(32, 16, seed=1)), torch.nn.Parameter(randn(16, seed=2))

    def forward(self, x):
        return torch.ops.skc.matmul(x, self.w, bias=self.b, activation="relu")


def test_a_model_with_parameters_compiles():
    import torch._dynamo

    torch._dynamo.reset()
    model, x = Linear(), randn(8, 32)
    eager = model(x)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")(x)   # was: BackendCompilerFailed
    torch.testing.assert_close(compiled, eager, rtol=0, atol=0)


def _grads(inputs, output):
    torch.manual_seed(0)
    outputs = output if isinstance(output, tuple) else (output,)
    cotangents = [torch.randn(o.shape) for o in outputs]
    return torch.autograd.grad([o.float() for o in outputs], inputs, cotangents)


def test_backward_matches_torch():
    a, b, bias = (t.requires_grad_() for t in (randn(16, 32), randn(32, 16, seed=1), randn(16, seed=2)))
    got = _grads((a, b, bias), torch.ops.skc.matmul(a, b, bias=bias, alpha=0.5, activation="silu"))
    want = _grads((a, b, bias), F.silu(0.5 * (a.float() @ b.float()) + bias.float()))
    torch.testing.assert_close(got, tuple(g.bfloat16() for g in want), rtol=2e-2, atol=5e-2)
    x = randn(1, 16, 8, 8).to(memory_format=torch.channels_last).requires_grad_()
    w = randn(16, 16, 3, 3, seed=3, scale=0.25).to(memory_format=torch.channels_last).requires_grad_()
    got = _grads((x, w), torch.ops.skc.conv2d(x, w, padding=(1, 1)))
    want = _grads((x, w), F.conv2d(x.float(), w.float(), padding=1))
    torch.testing.assert_close(got, tuple(g.bfloat16() for g in want), rtol=2e-2, atol=5e-2)
    q, k, v = (randn(1, 2, 64, 64, seed=s).requires_grad_() for s in (4, 5, 6))
    got = _grads((q, k, v), torch.ops.skc.attention(q, k, v, causal=True))
    want = _grads((q, k, v), F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True))
    torch.testing.assert_close(got, tuple(g.bfloat16() for g in want), rtol=2e-2, atol=5e-2)


def test_gelu_backward_is_the_tanh_approximation_the_forward_computes():
    """The epilogue's gelu is the tanh approximation; the backward differentiated the exact (erf) one, whose
    derivative differs by up to 9e-4 near z = -2 (here 8 of them summed: 0.007 in a gradient of 0.68)."""
    a = torch.full((8, 8), -2.02 / 8, dtype=torch.float16, requires_grad=True)
    b = torch.ones(8, 8, dtype=torch.float16, requires_grad=True)
    got = _grads((a, b), torch.ops.skc.matmul(a, b, activation="gelu"))
    for approximate, close in (("tanh", True), ("none", False)):
        want = _grads((a, b), F.gelu(a.float() @ b.float(), approximate=approximate))
        same = all(torch.allclose(g.float(), w.half().float(), rtol=0, atol=1e-3) for g, w in zip(got, want))
        assert same is close, approximate


def test_backward_after_an_input_changed_in_place_is_refused():
    """The backward differentiates the reference at the inputs it saved: one changed in place since the forward gave
    the gradient of the changed values, silently (w's here off by 8); torch's own matmul refuses."""
    a, w = randn(8, 16), randn(16, 8, seed=1).requires_grad_()
    y = torch.ops.skc.matmul(a, w)
    a.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.float().sum().backward()


def test_c_with_beta_zero_is_ignored_forward_and_backward():
    """As torch.addmm: with beta = 0, c is ignored, and NaN and inf in it do not propagate (they made every output
    NaN, and the gradients of a, b and c NaN)."""
    a, b = randn(8, 16).requires_grad_(), randn(16, 8, seed=1).requires_grad_()
    c = torch.full((8, 8), float("nan"), dtype=torch.bfloat16, requires_grad=True)
    c.data[0, 0] = float("inf")
    got = torch.ops.skc.matmul(a, b, c=c, beta=0.0, activation="gelu")
    want = F.gelu(torch.addmm(c.float(), a.float(), b.float(), beta=0), approximate="tanh")
    torch.testing.assert_close(got.float(), want, rtol=2e-2, atol=5e-2)
    grads = _grads((a, b, c), got)
    assert not any(g.isnan().any() for g in grads) and not grads[2].any()


def test_matmul_follows_a_c_with_beta_zero_that_alone_requires_grad():
    """skc.blocks.matmul dropped a c with beta = 0 before it asked whether autograd follows the call: with a and b
    constant the result had no grad_fn, and backward raised torch's own "does not require grad" (sixty-fourth
    session). Now it follows c to a zero gradient, and c's NaNs still do not propagate."""
    from skc.blocks import matmul

    a, b = randn(8, 16), randn(16, 8, seed=1)
    c = torch.full((8, 8), float("nan"), dtype=torch.bfloat16, requires_grad=True)
    got = matmul(a, b, c=c, beta=0)
    assert got.requires_grad and not got.isnan().any()
    torch.testing.assert_close(got.float(), a.float() @ b.float(), rtol=2e-2, atol=5e-2)
    got.float().sum().backward()
    assert c.grad is not None and not c.grad.any()


def test_forward_mode_gives_the_tangent_of_the_reference():
    """custom_op passed forward mode's dual inputs to the op as plain tensors: the output had no tangent (None; under
    torch.func.jvp and jacfwd a silently zero one). The ops' Function now has a jvp: the reference's."""
    import torch.autograd.forward_ad as fwAD

    a, b, direction = randn(16, 32), randn(32, 16, seed=1), randn(16, 32, seed=2)
    x = randn(1, 8, 6, 6, seed=3).to(memory_format=torch.channels_last)
    w = randn(8, 8, 3, 3, seed=4, scale=0.25).to(memory_format=torch.channels_last)
    q, dq = randn(1, 2, 16, 64, seed=5), randn(1, 2, 16, 64, seed=6)
    with fwAD.dual_level():
        product = fwAD.unpack_dual(torch.ops.skc.matmul(fwAD.make_dual(a, direction), b, activation="silu")).tangent
        conv = fwAD.unpack_dual(torch.ops.skc.conv2d(x, fwAD.make_dual(w, w), padding=(1, 1))).tangent
        out, lse = (fwAD.unpack_dual(t).tangent
                    for t in torch.ops.skc.attention_with_lse(fwAD.make_dual(q, dq), q, q, causal=True))
    _, want = torch.func.jvp(lambda t: F.silu(t @ b.float()), (a.float(),), (direction.float(),))
    torch.testing.assert_close(product, want.bfloat16(), rtol=2e-2, atol=5e-2)
    torch.testing.assert_close(conv, F.conv2d(x.float(), w.float(), padding=1).bfloat16(), rtol=2e-2, atol=5e-2)
    def attention(t):
        scores = (t @ q.float().transpose(-1, -2) / 8).masked_fill(torch.ones(16, 16, dtype=torch.bool).triu(1),
                                                                    float("-inf"))
        return torch.softmax(scores, dim=-1) @ q.float(), torch.logsumexp(scores, dim=-1)

    _, (want_out, want_lse) = torch.func.jvp(attention, (q.float(),), (dq.float(),))
    assert (out.dtype, lse.dtype) == (torch.bfloat16, torch.float32)
    torch.testing.assert_close((out.float(), lse), (want_out, want_lse), rtol=2e-2, atol=5e-2)


@pytest.mark.parametrize("transform", [
    lambda f, x: torch.func.grad(lambda t: f(t).float().sum())(x),
    lambda f, x: torch.func.jacrev(f)(x),
    lambda f, x: torch.func.jvp(f, (x,), (x,)),     # (was: silently a zero tangent)
    lambda f, x: torch.func.jacfwd(f)(x)])
def test_torch_funcs_derivatives_are_refused_by_name(transform):
    """torch.func cannot reach an autograd.Function applied inside an operator's kernel (custom_op's own raised
    torch's "must override the setup_context staticmethod"); vmap runs the op."""
    b = randn(32, 16, seed=1)
    with pytest.raises(RuntimeError, match="torch.func's derivative transforms .* use torch.autograd.grad"):
        transform(lambda t: torch.ops.skc.matmul(t, b), randn(16, 32))
    batch = randn(3, 16, 32)
    assert torch.equal(torch.func.vmap(lambda t: torch.ops.skc.matmul(t, b))(batch),
                       torch.stack([torch.ops.skc.matmul(t, b) for t in batch]))


class _Products(__import__("torch.utils._python_dispatch", fromlist=["TorchDispatchMode"]).TorchDispatchMode):
    """The shapes of the products (mm, bmm) a backward computes, and the output masks of its convolution_backwards."""
    def __init__(self):
        super().__init__()
        self.shapes, self.masks = [], []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if func.overloadpacket in (torch.ops.aten.mm, torch.ops.aten.bmm):
            self.shapes.append(tuple(result.shape[-2:]))
        if func.overloadpacket is torch.ops.aten.convolution_backward:
            self.masks.append(list(args[-1]))
        return result


def _backward_products(output, inputs):
    products = _Products()
    with products:
        grads = torch.autograd.grad(output.float().sum(), inputs)
    return products, grads


def test_backward_differentiates_only_the_inputs_that_need_a_gradient():
    """An input that needs no gradient enters the reference as a constant (was: every tensor input was differentiated
    and its gradient dropped: a's gradient alone cost b's product too, q's alone k's and v's, w's alone x's); the
    gradients asked for are unchanged, and those not asked for stay None."""
    a, b = randn(8, 16).requires_grad_(), randn(16, 24, seed=1)
    products, (grad_a,) = _backward_products(torch.ops.skc.matmul(a, b, activation="silu"), (a,))
    assert (16, 24) not in products.shapes and (8, 16) in products.shapes   # (b's gradient would be 16 x 24)
    want = torch.autograd.grad(F.silu(a.float() @ b.float()).sum(), a)[0]
    torch.testing.assert_close(grad_a, want.bfloat16(), rtol=2e-2, atol=5e-2)
    assert b.grad is None
    x = randn(1, 8, 6, 6).to(memory_format=torch.channels_last)
    w = randn(8, 8, 3, 3, seed=3, scale=0.25).to(memory_format=torch.channels_last).requires_grad_()
    products, _ = _backward_products(torch.ops.skc.conv2d(x, w, padding=(1, 1)), (w,))
    assert products.masks == [[False, True, False]]   # (x's gradient not computed)
    q, k, v = randn(1, 2, 8, 64, seed=4).requires_grad_(), randn(1, 1, 24, 64, seed=5), randn(1, 1, 24, 64, seed=6)
    products, _ = _backward_products(torch.ops.skc.attention(q, k, v, causal=True), (q,))
    # (k's and v's gradients: 24 x 64; q's, the group's two heads of 8 rows in one product with their K/V head: 16 x 64)
    assert (24, 64) not in products.shapes and (16, 64) in products.shapes


def test_double_backward_is_torchs():
    """A gradient taken with create_graph=True differentiates again (the backward is the float32 reference's, which
    torch differentiates): the second derivatives of matmul's epilogue, conv2d's and attention's, in every input
    that requires grad (b's too where the first gradient was a's alone), are torch's in float64."""
    def second(function, inputs, first):
        wide = [t.detach().double().requires_grad_() for t in inputs]
        output = function(*wide)
        grads = torch.autograd.grad(output.sum(), [wide[i] for i in first], create_graph=True)
        return torch.autograd.grad(sum((g ** 2).sum() for g in grads), wide)

    def mine(function, inputs, first):
        grads = torch.autograd.grad(function(*inputs).float().sum(), [inputs[i] for i in first], create_graph=True)
        return torch.autograd.grad(sum((g.float() ** 2).sum() for g in grads), inputs)

    def attention(q, k, v):
        scores = (q @ k.transpose(-1, -2) / 8).masked_fill(torch.ones(8, 8, dtype=torch.bool).triu(1), -torch.inf)
        return torch.softmax(scores, -1) @ v

    x = randn(1, 8, 5, 5).to(memory_format=torch.channels_last)
    w = randn(8, 8, 3, 3, seed=1, scale=0.3).to(memory_format=torch.channels_last)
    for ours, torchs, inputs, first in [
            (lambda a, b, bias: torch.ops.skc.matmul(a, b, bias=bias, activation="gelu"),
             lambda a, b, bias: F.gelu(a @ b + bias, approximate="tanh"), (randn(8, 16), randn(16, 8, seed=1),
                                                                            randn(8, seed=2)), (0, 1, 2)),
            (lambda a, b: torch.ops.skc.matmul(a, b, activation="silu"), lambda a, b: F.silu(a @ b),
             (randn(8, 16), randn(16, 8, seed=1)), (0,)),
            (lambda x, w: torch.ops.skc.conv2d(x, w, padding=(1, 1), activation="silu"),
             lambda x, w: F.silu(F.conv2d(x, w, padding=1)), (x, w), (0, 1)),
            (lambda q, k, v: torch.ops.skc.attention(q, k, v, causal=True), attention,
             tuple(randn(1, 2, 8, 64, seed=s) for s in range(3)), (0, 1, 2))]:
        inputs = tuple(t.requires_grad_() for t in inputs)
        for got, want in zip(mine(ours, inputs, first), second(torchs, inputs, first)):
            assert got.dtype == torch.bfloat16
            assert (got.double() - want).abs().max() <= 0.03 * want.abs().max()


def test_a_compiled_function_gives_eager_gradients():
    """torch.compile of a function calling skc.blocks' matmul, conv2d and attention (the lse in the loss too), and
    its backward: the gradients are eager's, of each input's dtype, and None for the one that needs none."""
    import torch._dynamo
    from skc.blocks import attention, conv2d, matmul

    def loss(a, b, bias, x, w, q, k, v):
        y = matmul(a, b.t(), bias=bias, activation="relu")   # (a transposed view)
        z = conv2d(x, w, padding=1, groups=2, stride=2)
        o, lse = attention(q, k, v, causal=True, return_lse=True, layout="bshd")
        return y.float().sum() + (z.float() ** 2).sum() + (o.float() * 0.5).sum() + lse.sum()

    inputs = [randn(16, 32), randn(24, 32, seed=1), randn(24, seed=2),
              randn(2, 8, 6, 6, seed=3).to(memory_format=torch.channels_last),
              randn(8, 4, 3, 3, seed=4, scale=0.3).to(memory_format=torch.channels_last),
              randn(1, 16, 4, 64, seed=5), randn(1, 24, 2, 64, seed=6), randn(1, 24, 2, 64, seed=7)]
    eager = [t.clone().requires_grad_(i != 3) for i, t in enumerate(inputs)]   # (x needs no gradient)
    loss(*eager).backward()
    torch._dynamo.reset()
    compiled = [t.clone().requires_grad_(i != 3) for i, t in enumerate(inputs)]
    torch.compile(loss, fullgraph=True, backend="aot_eager")(*compiled).backward()
    assert compiled[3].grad is None
    for mine, want in zip(compiled, eager):
        if want.grad is not None:
            assert mine.grad.dtype == want.dtype and torch.equal(mine.grad, want.grad)


def test_derivatives_taken_inside_an_autocast_region_are_float32s():
    """A backward (first order, or with create_graph) or a forward-mode tangent taken inside torch.autocast ran the
    float32 reference's products in the region's bf16: attention's gradients up to 3 times further from float64
    torch's than outside it. Inside and outside now agree exactly."""
    import torch.autograd.forward_ad as fwAD

    q, k, v, grad_out = (randn(1, 2, 32, 64, seed=s) for s in range(4))

    def derivatives(autocast, create_graph):
        inputs = [t.clone().requires_grad_() for t in (q, k, v)]
        out = torch.ops.skc.attention(*inputs, causal=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            grads = torch.autograd.grad(out, inputs, grad_out, create_graph=create_graph)
            with fwAD.dual_level():
                tangent = fwAD.unpack_dual(torch.ops.skc.attention(fwAD.make_dual(q, grad_out), k, v)).tangent
        return [g.detach() for g in grads] + [tangent]

    for create_graph in (False, True):
        for inside, outside in zip(derivatives(True, create_graph), derivatives(False, create_graph)):
            assert torch.equal(inside, outside)


@pytest.mark.parametrize("hooks", ["save_on_cpu", "identity"])
def test_backward_under_saved_tensor_hooks(hooks):
    """Saved-tensor hooks on during the backward (torch.autograd.graph.save_on_cpu, activation offloading; or any
    saved_tensors_hooks): the gradients are those without them, first and second order. The reference's
    vector-Jacobian product ran through torch.func.vjp, which refuses while hooks are on ("don't yet support saved
    tensor hooks"): matmul's and conv2d's backward, and attention's second derivative, raised torch's RuntimeError."""
    def within():
        if hooks == "save_on_cpu":
            return torch.autograd.graph.save_on_cpu()
        return torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t)

    a, b = randn(16, 32).requires_grad_(), randn(32, 16, seed=1).requires_grad_()
    x = randn(1, 8, 6, 6).to(memory_format=torch.channels_last).requires_grad_()
    w = randn(8, 8, 3, 3, seed=3, scale=0.25).to(memory_format=torch.channels_last).requires_grad_()
    q, k, v = (randn(1, 2, 32, 64, seed=s).requires_grad_() for s in (4, 5, 6))
    calls = [((a, b), lambda: skc.blocks.matmul(a, b, activation="silu")),
             ((x, w), lambda: skc.blocks.conv2d(x, w, padding=1)),
             ((q, k, v), lambda: torch.ops.skc.attention(q, k, v, True))]
    for inputs, call in calls:
        want = _grads(inputs, call())
        with within():
            got = _grads(inputs, call())
        torch.testing.assert_close(got, want, rtol=0, atol=0)

    def second(q):   # the gradient of a first derivative's sum (create_graph: the reference differentiated twice)
        (first,) = torch.autograd.grad(torch.ops.skc.attention(q, k, v, False).float().sum(), q, create_graph=True)
        return torch.autograd.grad((first.float() ** 2).sum(), q)[0]

    want = second(q)
    with within():
        got = second(q)
    assert got.abs().max() > 0
    torch.testing.assert_close(got, want, rtol=0, atol=0)
