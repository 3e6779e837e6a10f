"""skc.torch on the CPU: torch.ops.skc.matmul (running in the interpreter for CPU tensors) against torch,
its fake implementation, a model of skc ops under torch.compile(fullgraph=True) with no graph break, a user
kernel made an operator with skc.torch.register_op, and `import skc` not importing torch.
(torch is an optional dependency: without it these tests skip; the GPU ones are tests/gpu/test_torch_compile.py.)"""
import re
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import skc  # noqa: E402
import skc.torch  # noqa: E402,F401  (registers torch.ops.skc.*)


def integers(*shape, dtype=torch.bfloat16, seed=0):
    """Small integers: every product and sum is exact in bf16 operands and f32 accumulation."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(-2, 3, shape, generator=generator).to(dtype)


class TwoLayers(torch.nn.Module):
    def __init__(self, features=32, hidden=64, out=32):
        super().__init__()
        self.w1, self.b1 = integers(features, hidden, seed=1), integers(hidden, seed=2)
        self.w2 = integers(hidden, out, seed=3)

    def forward(self, x):
        h = torch.ops.skc.matmul(x, self.w1, bias=self.b1, activation="relu")
        return torch.relu(torch.ops.skc.matmul(h, self.w2))


def reference(model, x):
    h = torch.relu(x.float() @ model.w1.float() + model.b1.float()).to(torch.bfloat16)
    return torch.relu(h.float() @ model.w2.float()).to(torch.bfloat16)


def test_the_matmul_op_runs_in_the_interpreter_for_cpu_tensors():
    a, b, bias = integers(64, 32), integers(32, 48, seed=1), integers(48, seed=2)
    got = torch.ops.skc.matmul(a, b, bias=bias, activation="relu")
    assert got.dtype == torch.bfloat16 and got.shape == (64, 48)
    np.testing.assert_array_equal(got.float().numpy(), torch.relu(a.float() @ b.float() + bias.float()).numpy())
    out = torch.full((64, 48), float("nan"), dtype=torch.bfloat16)
    assert torch.ops.skc.matmul_out(a, b, out) is None
    np.testing.assert_array_equal(out.float().numpy(), (a.float() @ b.float()).numpy())


@pytest.mark.parametrize("a_shape, b_shape", [((0, 32), (32, 16)), ((8, 32), (32, 0)), ((8, 0), (0, 16)),
                                              ((0, 8, 32), (32, 16)), ((3, 8, 0), (3, 0, 16))])
def test_empty_problems_are_torchs_and_k_zero_is_the_epilogue_of_zero(a_shape, b_shape):
    """torch.matmul of empty operands: an empty result, or for K = 0 zeros; addmm's beta · c + bias stays, relu'd."""
    a, b = integers(*a_shape), integers(*b_shape, seed=1)
    got = torch.ops.skc.matmul(a, b)
    expected = torch.matmul(a.float(), b.float())
    assert got.shape == expected.shape and torch.equal(got.float(), expected)
    if a.dim() == 2 and 0 not in expected.shape:
        bias, c = integers(b.shape[1], seed=2), integers(*expected.shape, seed=3)
        got = torch.ops.skc.matmul(a, b, bias=bias, c=c, beta=2.0, activation="relu")
        assert torch.equal(got.float(), torch.relu(2.0 * c.float() + bias.float()))


def test_the_conv2d_and_attention_ops_of_empty_problems_are_torchs():
    """A batch of none (conv2d), no query row or no key (attention): torch's empty result or zeros, and -inf for the
    log-sum-exp of no key, eagerly and in the fake implementation torch.compile traces with (both refused before)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    cl = torch.channels_last
    x, w = integers(0, 8, 6, 6).to(memory_format=cl), integers(12, 8, 3, 3).to(memory_format=cl)   # (K = 12)
    q, k = integers(1, 2, 8, 64), integers(1, 2, 0, 64)
    for mode in (None, FakeTensorMode()):
        with mode if mode is not None else torch.no_grad():
            if mode is not None:
                x, w, q, k = (mode.from_tensor(t) for t in (x, w, q, k))
            y = torch.ops.skc.conv2d(x, w, padding=(1, 1))
            assert y.shape == (0, 12, 6, 6) and y.is_contiguous(memory_format=cl)
            out, lse = torch.ops.skc.attention_with_lse(q, k, k)
            assert out.shape == q.shape and lse.shape == (1, 2, 8)
            assert torch.ops.skc.attention(k.transpose(1, 2), q.transpose(1, 2), q.transpose(1, 2),
                                           layout="bshd").shape == (1, 0, 2, 64)
        if mode is None:
            assert torch.equal(out, torch.zeros_like(q)) and torch.equal(lse, torch.full((1, 2, 8), -float("inf")))


def test_the_schema_says_what_the_op_takes():
    schema = str(torch.ops.skc.matmul.default._schema)
    assert schema.startswith("skc::matmul(Tensor a, Tensor b, Tensor? bias=None, Tensor? c=None")
    assert schema.endswith("str? activation=None) -> Tensor")
    assert re.search(r"Tensor\(a\d*!\) out.*-> \(\)$", str(torch.ops.skc.matmul_out.default._schema))


def test_the_fake_implementation_gives_shape_dtype_and_device_and_checks_operands():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        a, b = torch.empty(128, 64, dtype=torch.float16), torch.empty(64, 80, dtype=torch.float16)
        out = torch.ops.skc.matmul(a, b)
        assert (tuple(out.shape), out.dtype, out.device.type) == ((128, 80), torch.float16, "cpu")
        with pytest.raises(RuntimeError, match=r"cannot multiply a \(128, 64\) by b \(80, 64\): inner dimensions"):
            torch.ops.skc.matmul(a, torch.empty(80, 64, dtype=torch.float16))
        with pytest.raises(RuntimeError, match="bf16 or fp16 operands; a is torch.float32"):
            torch.ops.skc.matmul(a.float(), b.float())


def test_a_model_of_skc_ops_compiles_with_fullgraph_and_no_graph_break():
    import torch._dynamo

    torch._dynamo.reset()
    model, x = TwoLayers(), integers(16, 32, seed=4)
    eager = model(x)
    np.testing.assert_array_equal(eager.float().numpy(), reference(model, x).float().numpy())
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1, explanation.break_reasons
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")  # no C++ compiler needed on the CPU
    torch.testing.assert_close(compiled(x), eager, rtol=0, atol=0)


@skc.kernel(block=64)
def scaled_add(x: skc.Ptr[skc.f32], y: skc.Ptr[skc.f32], out: skc.Ptr[skc.f32], scale: skc.f32, n: skc.i32):
    i = skc.block_id(0) * skc.block_dim(0) + skc.thread_id(0)
    if i < n:
        out[i] = scale * x[i] + y[i]


def _scaled_add(x: torch.Tensor, y: torch.Tensor, scale: float) -> torch.Tensor:
    out = torch.empty_like(x)
    with skc.torch.on_device_of(x):
        scaled_add[skc.cdiv(x.numel(), 64), 64](x, y, out, scale, x.numel(), stream=skc.torch.current_stream(x))
    return out


def test_register_op_makes_any_kernel_a_torch_operator():
    op = skc.torch.register_op("skc_test::scaled_add", _scaled_add, fake=lambda x, y, scale: torch.empty_like(x))
    x, y = torch.arange(100, dtype=torch.float32), torch.ones(100)
    np.testing.assert_array_equal(op(x, y, 2.0).numpy(), (2 * x + y).numpy())
    assert torch.ops.skc_test.scaled_add(x, y, 0.5)[3].item() == 2.5

    def model(x, y):
        return torch.ops.skc_test.scaled_add(x, y, 3.0) * 2

    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    np.testing.assert_array_equal(compiled(x, y).numpy(), ((3 * x + y) * 2).numpy())


def test_import_skc_does_not_import_torch():
    code = "import sys, skc; assert 'torch' not in sys.modules, 'import skc imported torch'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# -- torch.ops.skc.conv2d and torch.ops.skc.attention ---------------------------------------------------------
def randn(*shape, seed=0, scale=1.0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=generator) * scale).bfloat16()


def channels_last(tensor):
    return tensor.to(memory_format=torch.channels_last)


def test_the_conv2d_op_matches_torchs_conv2d_and_returns_channels_last():
    import torch.nn.functional as F

    x, w = channels_last(randn(1, 16, 8, 8, seed=5)), channels_last(randn(16, 16, 3, 3, seed=6, scale=0.25))
    bias = randn(16, seed=7)
    got = torch.ops.skc.conv2d(x, w, bias, padding=(1, 1), activation="relu")
    assert got.shape == (1, 16, 8, 8) and got.dtype == torch.bfloat16
    assert got.is_contiguous(memory_format=torch.channels_last) and got.stride() == (1024, 1, 128, 16)
    expected = torch.relu(F.conv2d(x.float(), w.float(), bias.float(), padding=1))
    torch.testing.assert_close(got.float(), expected, rtol=1e-2, atol=2e-2)  # one bf16 rounding of the output
    strided = torch.ops.skc.conv2d(x, w, stride=(2, 2), dilation=(2, 1), padding=(2, 1))
    expected = F.conv2d(x.float(), w.float(), stride=2, dilation=(2, 1), padding=(2, 1))
    assert strided.shape == expected.shape == (1, 16, 4, 4)
    torch.testing.assert_close(strided.float(), expected, rtol=1e-2, atol=2e-2)


def test_the_conv2d_op_names_a_layout_it_cannot_read():
    x, w = randn(1, 16, 8, 8), channels_last(randn(16, 16, 3, 3))
    with pytest.raises(RuntimeError, match=r"'x' must be in the channels_last memory format, contiguous \(found "
                                           r"strides \(1024, 64, 8, 1\)\): pass "
                                           r"x.contiguous\(memory_format=torch.channels_last\)"):
        torch.ops.skc.conv2d(x, w)


@pytest.mark.parametrize("causal", [False, True])
def test_the_attention_op_matches_scaled_dot_product_attention(causal):
    import torch.nn.functional as F

    q, k, v = (randn(1, 2, 64, 64, seed=seed) for seed in (8, 9, 10))
    got = torch.ops.skc.attention(q, k, v, causal=causal)
    assert got.shape == q.shape and got.dtype == torch.bfloat16 and got.is_contiguous()
    expected = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=causal)
    torch.testing.assert_close(got.float(), expected, rtol=2e-2, atol=2e-2)
    out, lse = torch.ops.skc.attention_with_lse(q, k, v, causal=causal, scale=0.1)
    scores = 0.1 * q.float() @ k.float().transpose(-1, -2)
    if causal:
        scores = scores.masked_fill(torch.ones(64, 64, dtype=torch.bool).triu(1), float("-inf"))
    assert lse.shape == (1, 2, 64) and lse.dtype == torch.float32
    torch.testing.assert_close(lse, torch.logsumexp(scores, dim=-1), rtol=1e-3, atol=1e-2)
    torch.testing.assert_close(out.float(), torch.softmax(scores, dim=-1) @ v.float(), rtol=2e-2, atol=2e-2)


def test_the_attention_op_answers_in_the_bshd_layout_of_its_inputs():
    import torch.nn.functional as F

    q, k, v = (randn(1, 64, 2, 64, seed=seed) for seed in (11, 12, 13))  # (B, S, H, D)
    got = torch.ops.skc.attention(q, k, v, layout="bshd", causal=True)
    assert got.shape == (1, 64, 2, 64) and got.is_contiguous()
    expected = F.scaled_dot_product_attention(*(t.float().transpose(1, 2) for t in (q, k, v)), is_causal=True)
    torch.testing.assert_close(got.float(), expected.transpose(1, 2), rtol=2e-2, atol=2e-2)
    # the same memory seen as strided (B, H, S, D) views: read in place, the result in that layout
    strided = torch.ops.skc.attention(*(t.transpose(1, 2) for t in (q, k, v)), causal=True)
    assert strided.shape == (1, 2, 64, 64) and strided.is_contiguous()
    torch.testing.assert_close(strided, got.transpose(1, 2), rtol=0, atol=0)


def test_the_fake_conv2d_and_attention_give_shapes_dtypes_and_strides():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x = torch.empty(2, 32, 14, 10, dtype=torch.float16, memory_format=torch.channels_last)
        w = torch.empty(64, 32, 3, 3, dtype=torch.float16, memory_format=torch.channels_last)
        y = torch.ops.skc.conv2d(x, w, stride=(2, 1), padding=(1, 0))
        assert (tuple(y.shape), y.dtype) == ((2, 64, 7, 8), torch.float16)
        assert y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous()
        with pytest.raises(RuntimeError, match="x has 32 channels but the filters take 16"):
            torch.ops.skc.conv2d(x, torch.empty(64, 16, 3, 3, dtype=torch.float16, memory_format=torch.channels_last))
        q = torch.empty(2, 128, 8, 64, dtype=torch.bfloat16)  # bshd, 8 query heads
        kv = torch.empty(2, 256, 2, 64, dtype=torch.bfloat16)  # 2 key/value heads, another length
        out, lse = torch.ops.skc.attention_with_lse(q, kv, kv, layout="bshd")
        assert (tuple(out.shape), out.stride(), out.dtype) == ((2, 128, 8, 64), q.stride(), torch.bfloat16)
        assert (tuple(lse.shape), lse.dtype) == ((2, 8, 128), torch.float32)
        bhsd = [t.transpose(1, 2) for t in (q, kv, kv)]  # strided (B, H, S, D) views, read in place
        assert tuple(torch.ops.skc.attention(*bhsd).shape) == (2, 8, 128, 64)
        three_heads = torch.empty(2, 256, 3, 64, dtype=torch.bfloat16)
        with pytest.raises(RuntimeError, match="K/V heads dividing Q heads: 8 and 3"):
            torch.ops.skc.attention(q, three_heads, three_heads, layout="bshd")


def test_conv2d_and_attention_schemas_and_the_exact_strides_they_ask_of_torch_compile():
    assert str(torch.ops.skc.conv2d.default._schema) == (
        "skc::conv2d(Tensor x, Tensor w, Tensor? bias=None, int[2] stride=1, int[2] padding=0, int[2] dilation=1, "
        "str? activation=None, int groups=1) -> Tensor")
    assert str(torch.ops.skc.attention_with_lse.default._schema).endswith(
        "(Tensor q, Tensor k, Tensor v, bool causal=False, Scalar? scale=None, str layout=\"bhsd\") -> (Tensor, Tensor)")
    if skc.torch._custom_ops_take_tags():
        for op in (torch.ops.skc.conv2d, torch.ops.skc.attention, torch.ops.skc.attention_with_lse):
            assert torch.Tag.needs_exact_strides in op.default.tags


def test_the_new_ops_pass_torchs_opcheck():
    """torch.library.opcheck: the schema, the fake implementation against the real one (shapes, dtypes and
    strides), and the op's behaviour under torch.compile's tracing."""
    x, w = channels_last(randn(1, 16, 8, 8)), channels_last(randn(16, 16, 3, 3, scale=0.25))
    torch.library.opcheck(torch.ops.skc.conv2d.default, (x, w, randn(16)), dict(padding=[1, 1], activation="relu"))
    q = randn(1, 64, 2, 64)
    torch.library.opcheck(torch.ops.skc.attention.default, (q, q, q), dict(causal=True, layout="bshd"))
    torch.library.opcheck(torch.ops.skc.attention_with_lse.default, (q, q, q), dict(layout="bshd"))


class ConvAttention(torch.nn.Module):
    """A 3x3 conv (bias, relu) whose 64 pixels become the tokens of a two-head self-attention (head_dim 64):
    the channels_last output is read as (B, S, H, D) without a copy."""

    def __init__(self, channels=16, heads=2, head_dim=64):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.w = channels_last(randn(heads * head_dim, channels, 3, 3, seed=14, scale=0.25))
        self.b = randn(heads * head_dim, seed=15)

    def forward(self, x):
        y = torch.ops.skc.conv2d(x, self.w, self.b, padding=(1, 1), activation="relu")
        tokens = y.permute(0, 2, 3, 1).reshape(y.shape[0], -1, self.heads, self.head_dim)
        out, lse = torch.ops.skc.attention_with_lse(tokens, tokens, tokens, causal=True, layout="bshd")
        return torch.ops.skc.attention(out, tokens, tokens, layout="bshd") + 1, lse


def test_a_model_of_conv2d_and_attention_compiles_with_fullgraph_and_no_graph_break():
    import torch._dynamo
    import torch.nn.functional as F

    torch._dynamo.reset()
    model, x = ConvAttention(), channels_last(randn(1, 16, 8, 8, seed=16))
    eager, eager_lse = model(x)
    y = torch.relu(F.conv2d(x.float(), model.w.float(), model.b.float(), padding=1)).bfloat16()
    tokens = y.permute(0, 2, 3, 1).reshape(1, 64, 2, 64).transpose(1, 2).float()
    first = F.scaled_dot_product_attention(tokens, tokens, tokens, is_causal=True).bfloat16().float()
    expected = F.scaled_dot_product_attention(first, tokens, tokens).transpose(1, 2) + 1
    torch.testing.assert_close(eager.float(), expected, rtol=3e-2, atol=3e-2)
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1, explanation.break_reasons
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    got, got_lse = compiled(x)
    torch.testing.assert_close(got, eager, rtol=0, atol=0)
    torch.testing.assert_close(got_lse, eager_lse, rtol=0, atol=0)


def test_the_model_compiles_with_dynamic_shapes():
    """The fake implementations compute with symbolic sizes: one graph serves other batches and image sizes."""
    import torch._dynamo

    torch._dynamo.reset()
    model = ConvAttention()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager", dynamic=True)
    for batch, size in ((1, 8), (2, 8), (1, 16)):
        x = channels_last(randn(batch, 16, size, size, seed=17 + batch + size))
        got, lse = compiled(x)
        assert got.shape == (batch, size * size, 2, 64) and lse.shape == (batch, 2, size * size)
        torch.testing.assert_close((got, lse), model(x), rtol=0, atol=0)


def test_matmul_out_is_refused_where_autograd_would_lose_its_gradient():
    """custom_op's own autograd kernel ran it, and out came back with no gradient: x.grad missed the matmul's share
    with nothing raised (torch.matmul(..., out=) refuses the same). Without grad, as in inference with parameters,
    it runs."""
    a, b = integers(16, 32), integers(32, 16, seed=1)
    out = torch.empty(16, 16, dtype=torch.bfloat16)
    with pytest.raises(RuntimeError, match="skc::matmul_out writes into out, which autograd cannot follow"):
        torch.ops.skc.matmul_out(a.clone().requires_grad_(), b, out)
    weight = torch.nn.Parameter(b.clone())
    with torch.no_grad():
        torch.ops.skc.matmul_out(a, weight, out)
    np.testing.assert_array_equal(out.float().numpy(), (a.float() @ b.float()).numpy())
    torch.ops.skc.matmul_out(a, b, out)   # (nothing requires grad)
    import torch.autograd.forward_ad as fwAD

    with fwAD.dual_level(), pytest.raises(RuntimeError, match="which forward-mode AD cannot follow"):
        torch.ops.skc.matmul_out(fwAD.make_dual(a, a), b, out)   # (was: out with no tangent, silently)


def test_host_calls_in_compiled_code_are_skcs_operators_in_the_graph():
    """Dynamo traced into skc.blocks.matmul's host code (an Unsupported lock under fullgraph=True; on the CPU, the
    interpreter's numpy code, where it failed): the host entry points now hand a traced call to torch.ops.skc's
    operators, so a model calling skc.blocks.matmul, conv2d and attention compiles with fullgraph=True into one
    graph, and computes what eager does."""
    import torch._dynamo

    torch._dynamo.reset()
    w = channels_last(randn(16, 16, 3, 3, seed=18))

    def model(a, b, x, q):
        h = skc.blocks.matmul(a, b, bias=b[0], activation="relu")
        out = torch.empty_like(h)
        skc.blocks.matmul(a, b, out)
        y = skc.blocks.conv2d(x, w, padding=(1, 1))
        o, lse = skc.blocks.attention(q, q, q, causal=True, return_lse=True)
        return h * 2, out, y, o, lse

    a, b = integers(16, 32), integers(32, 24, seed=1)
    x, q = channels_last(randn(1, 16, 8, 8, seed=19)), randn(1, 2, 64, 64, seed=20)
    eager = model(a, b, x, q)
    explanation = torch._dynamo.explain(model)(a, b, x, q)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1, explanation.break_reasons
    ops = {str(node.target) for graph in explanation.graphs for node in graph.graph.nodes}
    assert {"skc.matmul.default", "skc.matmul_out.default", "skc.conv2d.default",
            "skc.attention_with_lse.default"} <= ops, ops
    got = torch.compile(model, fullgraph=True, backend="aot_eager")(a, b, x, q)
    for g, e in zip(got, eager):
        torch.testing.assert_close(g, e, rtol=0, atol=0)
    np.testing.assert_array_equal(got[0].float().numpy(), (torch.relu(a.float() @ b.float() + b[0].float()) * 2).numpy())


def test_a_traced_host_call_the_operators_do_not_take_is_a_graph_break_that_runs_eagerly():
    """A stream, a config or a broadcast batch of one have no operator: the call runs eagerly
    (torch.compiler.disable's graph break), and under fullgraph=True it is an error that names the break."""
    import torch._dynamo

    torch._dynamo.reset()

    def model(a, b):
        return skc.blocks.matmul(a, b, stream=0) * 2

    a, b = integers(3, 16, 32), integers(32, 24, seed=1)
    batched = torch.compile(lambda a, b: skc.blocks.matmul(a, b) * 2, backend="aot_eager", fullgraph=True)
    np.testing.assert_array_equal(batched(a, b).float().numpy(), (a.float() @ b.float() * 2).numpy())   # (the op)
    broadcast = torch.compile(lambda a, b: skc.blocks.matmul(a, b) * 2, backend="aot_eager")
    b3 = integers(1, 32, 24, seed=2)
    np.testing.assert_array_equal(broadcast(a, b3).float().numpy(), (a.float() @ b3.float() * 2).numpy())
    with pytest.raises(Exception, match="disable"):
        torch.compile(model, fullgraph=True, backend="aot_eager")(a[0], b)
    torch._dynamo.reset()
    np.testing.assert_array_equal(torch.compile(model, backend="aot_eager")(a[0], b).float().numpy(),
                                  (a[0].float() @ b.float() * 2).numpy())


def test_a_padding_by_name_compiles_into_the_conv2d_operator():
    """padding="same" or "valid" in a traced conv2d was a graph break, under fullgraph=True torch's "Call to
    torch.compiler.disable()", which named no padding (sixty-fourth session's search): the words are numbers, as the
    eager call makes them."""
    import torch._dynamo
    import torch.nn.functional as F

    torch._dynamo.reset()
    x = integers(2, 16, 8, 8).contiguous(memory_format=torch.channels_last)
    w = integers(16, 16, 3, 3, seed=1).contiguous(memory_format=torch.channels_last)
    for padding in ("same", "valid"):
        compiled = torch.compile(lambda x, w: skc.blocks.conv2d(x, w, padding=padding), fullgraph=True,
                                 backend="aot_eager")
        want = F.conv2d(x.float(), w.float(), padding=padding)
        np.testing.assert_array_equal(compiled(x, w).float().numpy(), want.numpy())
        torch._dynamo.reset()


def test_the_ops_cast_to_the_autocast_regions_dtype_as_torchs_do():
    """Under torch.autocast, torch.matmul, conv2d and scaled_dot_product_attention run float32 (and mixed) inputs in
    the region's dtype; the skc ops refused them ('multiplies bf16 or fp16 operands; a is torch.float32'), and ran
    mixed fp16 / bf16 ones in a's type. Gradients still reach the float32 leaves, and torch.compile traces the cast."""
    import torch._dynamo
    import torch.nn.functional as F

    a, b, bias = (integers(*shape, dtype=torch.float32, seed=seed) for seed, shape in enumerate(((16, 32), (32, 16),
                                                                                                 (16,))))
    weight = torch.nn.Parameter(b.clone())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, want = torch.ops.skc.matmul(a, weight, bias=bias), F.linear(a, b.t(), bias)
        mixed = torch.ops.skc.matmul(a.half(), b.bfloat16())
    assert got.dtype == want.dtype == mixed.dtype == torch.bfloat16 and torch.equal(got, want)
    got.float().sum().backward()
    assert weight.grad.dtype == torch.float32 and torch.equal(weight.grad, a.sum(0)[:, None].expand(32, 16))
    x, w = (channels_last(integers(*shape, dtype=torch.float32, seed=3)) for shape in ((1, 8, 6, 6), (8, 8, 3, 3)))
    with torch.autocast("cpu", dtype=torch.float16):
        y = torch.ops.skc.conv2d(x, w, padding=(1, 1))
        assert y.dtype == torch.float16 and torch.equal(y, F.conv2d(x, w, padding=1))
        q = torch.randn(1, 2, 16, 64)
        out, lse = torch.ops.skc.attention_with_lse(q, q, q)
        assert (out.dtype, lse.dtype) == (torch.float16, torch.float32)
        torch.testing.assert_close(out, F.scaled_dot_product_attention(q, q, q), rtol=1e-2, atol=1e-2)
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.autocast("cpu", enabled=False):
        with pytest.raises(RuntimeError, match="a is torch.float32"):
            torch.ops.skc.matmul(a, b)

    def autocast_linear(x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return torch.ops.skc.matmul(x, weight, bias=bias)

    torch._dynamo.reset()
    compiled = torch.compile(autocast_linear, fullgraph=True, backend="aot_eager")(a)
    assert compiled.dtype == torch.bfloat16 and torch.equal(compiled, want)


def test_the_blocks_cast_to_the_autocast_regions_dtype_eager_as_compiled():
    """skc.blocks.matmul, conv2d and attention called eagerly inside a torch.autocast region refused float32 inputs
    ('a is torch.float32') where the same function under torch.compile (whose graph holds torch.ops.skc's operators,
    which cast) ran them in the region's dtype (a helper's search, sixtieth session): eager now casts as the
    operators do, and outside a region float32 is refused as before."""
    import torch._dynamo
    import torch.nn.functional as F
    from skc.blocks import attention, conv2d, matmul

    a, b, bias = (integers(*shape, dtype=torch.float32, seed=seed) for seed, shape in enumerate(((16, 32), (32, 16),
                                                                                                 (16,))))

    def linear(x):
        return matmul(x, b, bias=bias)

    with torch.autocast("cpu", dtype=torch.bfloat16):
        eager, operator = linear(a), torch.ops.skc.matmul(a, b, bias=bias)
        mixed = matmul(a.half(), b.bfloat16())
        torch._dynamo.reset()
        compiled = torch.compile(linear, fullgraph=True, backend="aot_eager")(a)
    assert eager.dtype == operator.dtype == compiled.dtype == mixed.dtype == torch.bfloat16
    assert torch.equal(eager, operator) and torch.equal(eager, compiled)
    assert torch.equal(eager, F.linear(a, b.t(), bias))
    x, w = (channels_last(integers(*shape, dtype=torch.float32, seed=3)) for shape in ((1, 8, 6, 6), (8, 8, 3, 3)))
    q = torch.randn(1, 2, 16, 64)
    with torch.autocast("cpu", dtype=torch.float16):
        y = conv2d(x, w, padding=1)
        assert y.dtype == torch.float16 and torch.equal(y, torch.ops.skc.conv2d(x, w, padding=(1, 1)))
        out, lse = attention(q, q, q, return_lse=True)
        want, want_lse = torch.ops.skc.attention_with_lse(q, q, q)
    assert (out.dtype, lse.dtype) == (torch.float16, torch.float32)
    assert torch.equal(out, want) and torch.equal(lse, want_lse)
    with pytest.raises(skc.LaunchError, match="a is torch.float32"):
        matmul(a, b)
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.autocast("cpu", enabled=False):
        with pytest.raises(skc.LaunchError, match="a is torch.float32"):
            matmul(a, b)


def test_the_matmul_op_takes_the_blocks_batches():
    """skc.blocks.matmul takes a of B x M x K with b of K x N or B x K x N (and a of M x K with b of B x K x N); the op
    refused every 3-D operand ('multiplies matrices, found 3-d'), so x (batch, tokens, features) @ w could not be
    one call. Its fake gives the batch's shape, and the gradient of a shared w sums over the batch."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    x, w = integers(2, 8, 16), integers(16, 8, seed=1)
    for a, b in ((x, w), (x[0], integers(2, 16, 8, seed=2)), (x, integers(2, 8, 16, seed=3).transpose(1, 2))):
        got = torch.ops.skc.matmul(a, b, bias=integers(8, seed=4))
        np.testing.assert_array_equal(got.float().numpy(), (a.float() @ b.float() + integers(8, seed=4).float()).numpy())
        out = torch.empty(2, 8, 8, dtype=torch.bfloat16)
        torch.ops.skc.matmul_out(a, b, out)
        np.testing.assert_array_equal(out.float().numpy(), (a.float() @ b.float()).numpy())
    with FakeTensorMode() as mode:
        assert tuple(torch.ops.skc.matmul(mode.from_tensor(x), mode.from_tensor(w)).shape) == (2, 8, 8)
        with pytest.raises(RuntimeError, match="the batch sizes differ"):
            torch.ops.skc.matmul(mode.from_tensor(x), torch.empty(3, 16, 8, dtype=torch.bfloat16))
        with pytest.raises(RuntimeError, match=r"c has shape \(8, 8\), expected \(2, 8, 8\)"):
            torch.ops.skc.matmul(mode.from_tensor(x), mode.from_tensor(w), c=torch.empty(8, 8, dtype=torch.bfloat16))
    weight = torch.nn.Parameter(w.clone())
    torch.ops.skc.matmul(x, weight).float().sum().backward()
    np.testing.assert_array_equal(weight.grad.float().numpy(), x.float().sum((0, 1))[:, None].expand(16, 8).numpy())


def test_traced_host_calls_take_numpy_scalars_as_eager_calls_do():
    """Dynamo traces a numpy scalar (np.float64 is what 1 / np.sqrt(d) gives) as a 0-d array, a tensor in the graph,
    which the operators' float, int and bool arguments refused: skc.blocks.attention(..., scale=1 / np.sqrt(64)) and
    matmul's alpha ran eagerly but failed under torch.compile ('Expected a value of type Optional[float] for argument
    alpha but instead found type FakeTensor'). The traced calls take the numbers they hold, in one graph; a 0-d torch
    tensor runs outside the graph, as eager."""
    import torch._dynamo

    a, b = integers(16, 32), integers(32, 24, seed=1)
    q = randn(1, 2, 64, 64, seed=23)

    def model(a, b, q):
        h = skc.blocks.matmul(a, b, c=b[:16, :24].contiguous(), alpha=np.float32(2.0), beta=np.float64(0.5))
        return h, skc.blocks.attention(q, q, q, causal=True, scale=1 / np.sqrt(64.0))

    torch._dynamo.reset()
    explanation = torch._dynamo.explain(model)(a, b, q)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1, explanation.break_reasons
    for got, eager in zip(torch.compile(model, fullgraph=True, backend="aot_eager")(a, b, q), model(a, b, q)):
        torch.testing.assert_close(got, eager, rtol=0, atol=0)
    torch._dynamo.reset()
    alpha = torch.tensor(2.0)   # (a 0-d tensor: the call runs outside the graph, as eager)
    scaled = torch.compile(lambda a, b: skc.blocks.matmul(a, b, alpha=alpha) * 2, backend="aot_eager")
    np.testing.assert_array_equal(scaled(a, b).float().numpy(), (a.float() @ b.float() * 4).numpy())


def test_numpy_scalars_given_to_a_compiled_function_reach_the_operators():
    """A numpy scalar that is an input of the compiled function (not a constant of its code) reaches the operators as
    a symbol of a value known when the graph runs, which their schema's float refused (`Expected a value of type
    'Optional[float]' for argument 'alpha' but instead found type 'SymFloat'`): the scalars are the schema's Scalar,
    and what the fake implementation cannot check before the run (a beta with no c) is refused as eager refuses it."""
    import torch._dynamo

    a, b, c = integers(16, 32), integers(32, 24, seed=1), integers(16, 24, seed=2)
    q = randn(1, 2, 64, 64, seed=23)

    def model(a, b, c, q, alpha, beta, scale):
        return (skc.blocks.matmul(a, b, c=c, alpha=alpha, beta=beta),
                skc.blocks.attention(q, q, q, causal=True, scale=scale))

    torch._dynamo.reset()
    scalars = (np.float32(2.0), np.float32(0.5), np.float32(0.125))
    got = torch.compile(model, fullgraph=True, backend="aot_eager")(a, b, c, q, *scalars)
    for got, eager in zip(got, model(a, b, c, q, 2.0, 0.5, 0.125)):
        torch.testing.assert_close(got, eager, rtol=0, atol=0)
    torch._dynamo.reset()
    no_c = torch.compile(lambda a, b, beta: skc.blocks.matmul(a, b, beta=beta), fullgraph=True, backend="aot_eager")
    with pytest.raises(skc.LaunchError, match="beta scales c, and no c is given"):
        no_c(a, b, np.float32(3.0))
    with pytest.raises(skc.LaunchError, match="scale must be positive"):
        torch.compile(model, fullgraph=True, backend="aot_eager")(a, b, c, q, *scalars[:2], np.float32(-1.0))


class _HostCalls(torch.nn.Module):
    def __init__(self, **options):
        super().__init__()
        self.options = options

    def forward(self, a, b, x, w):
        from skc.blocks import conv2d, matmul

        return matmul(a, b, **self.options), conv2d(x, w, padding=1)


def test_torch_jit_trace_records_host_calls_as_skcs_operators():
    """(was: a ValueError, "a_rows must be an int of at least 0, found tensor(16)", from shapes that are tensors under
    torch.jit.trace; and after a plain call had made the plan, a trace without the launch, which replayed an empty
    result)"""
    import warnings

    a, b = integers(16, 32), integers(32, 16, seed=1)
    x = integers(1, 8, 4, 4, seed=2).to(memory_format=torch.channels_last)
    w = integers(8, 8, 3, 3, seed=3).to(memory_format=torch.channels_last)
    skc.blocks.matmul(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # (torch.jit.trace is deprecated)
        traced = torch.jit.trace(_HostCalls(), (a, b, x, w))
        assert "skc::matmul" in str(traced.graph) and "skc::conv2d" in str(traced.graph)
        a, x = integers(16, 32, seed=4), integers(1, 8, 4, 4, seed=5).to(memory_format=torch.channels_last)
        product, convolution = traced(a, b, x, w)
        assert torch.equal(product, torch.ops.skc.matmul(a, b))
        assert torch.equal(convolution, torch.ops.skc.conv2d(x, w, padding=(1, 1)))
        with pytest.raises(skc.LaunchError, match="torch.jit.trace records torch's operators"):
            torch.jit.trace(_HostCalls(config=skc.blocks.MatmulConfig()), (a, b, x, w))


def test_compiled_host_calls_take_numpy_ints_and_check_flags_as_eager():
    """A helper's search (sixtieth session): conv2d(x, w, stride=np.int64(2)) ran eagerly and was refused under
    torch.compile (Dynamo traces the numpy int as a 0-d array, which the geometry checks refused); attention(...,
    causal=2) was refused eagerly and ran as causal=True compiled."""
    import torch._dynamo
    from skc.blocks import attention, conv2d

    x, w = (channels_last(integers(*shape, seed=seed)) for seed, shape in enumerate(((1, 8, 6, 6), (8, 8, 3, 3))))
    eager = conv2d(x, w, stride=np.int64(2), padding=(np.int64(1), 1), groups=np.int64(1))
    torch._dynamo.reset()
    compiled = torch.compile(lambda x: conv2d(x, w, stride=np.int64(2), padding=(np.int64(1), 1),
                                              groups=np.int64(1)), backend="aot_eager")(x)
    assert torch.equal(compiled, eager) and torch.equal(eager, conv2d(x, w, stride=2, padding=1))
    q = integers(1, 1, 16, 64)
    for run in (lambda: attention(q, q, q, causal=2),
                lambda: torch.compile(lambda q: attention(q, q, q, causal=2), backend="aot_eager")(q)):
        torch._dynamo.reset()
        with pytest.raises(skc.LaunchError, match="attention: causal is True or False, found 2"):
            run()
    # causal=np.int64(1) is 1, as causal=1 is (it was refused: a numpy int is no Python int)
    causal = attention(q, q, q, causal=True)
    torch._dynamo.reset()
    for got in (attention(q, q, q, causal=np.int64(1)),
                torch.compile(lambda q: attention(q, q, q, causal=np.int64(1)), backend="aot_eager")(q)):
        assert torch.equal(got, causal)


def test_a_causal_flag_computed_from_a_tensor_compiles():
    """A helper's search (sixty-seventh session): `attention(..., causal=bool(t.item()))` in a compiled function with
    capture_scalar_outputs gave the operator a SymBool, which its bool argument refused in the backend (torch's
    schema error, wrapped in BackendCompilerFailed); torch's own scaled_dot_product_attention compiled. Now the flag
    is guarded on or breaks the graph, and each call takes its own."""
    import torch._dynamo
    from skc.blocks import attention

    q = integers(1, 2, 16, 64)
    compiled = torch.compile(lambda q, flag: attention(q, q, q, causal=bool(flag.item())), backend="aot_eager")
    torch._dynamo.reset()
    with torch._dynamo.config.patch(capture_scalar_outputs=True):
        for flag in (1, 0, 1):
            assert torch.equal(compiled(q, torch.tensor(flag)), attention(q, q, q, causal=bool(flag)))
    assert not torch.equal(attention(q, q, q, causal=True), attention(q, q, q, causal=False))
