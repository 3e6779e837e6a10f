"""torch.ops.skc.scaled_matmul, the fp8 GEMM as a torch operator, on the CPU (the interpreter runs it for CPU tensors):
skc.blocks.matmul's fp8 call (per-tensor, row-wise and block-wise scales) under torch.compile(fullgraph=True) is the
operator in the graph, with eager's results exactly (it was a graph break: fullgraph=True failed); the fake
implementation gives the result's shape and dtype and refuses, with the eager call's message, what the call refuses;
a call autograd follows is refused by name; torch.library.opcheck. (The GPU script: abtmp/gpu54/F_gpu_scaled_op.py.)"""
import pytest

torch = pytest.importorskip("torch")
import skc  # noqa: E402
import skc.torch  # noqa: E402,F401  (registers torch.ops.skc.*)
from skc.blocks import matmul  # noqa: E402
from torch._subclasses.fake_tensor import FakeTensorMode  # noqa: E402

E4M3 = torch.float8_e4m3fn


def fp8(*shape, seed=0):
    """Small integers, exact in fp8 and in every f32 sum."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(-3, 4, shape, generator=generator).float().to(E4M3)


def powers_of_two(*shape, seed=0):
    """Scales whose every product with the integers above is exact in f32."""
    generator = torch.Generator().manual_seed(seed)
    return 2.0 ** torch.randint(-3, 4, shape, generator=generator).float()


M, N, K = 40, 24, 256
A, B = fp8(M, K), fp8(N, K, seed=1).t()   # (b: K x N column-major, as torch._scaled_mm takes it)
SCALES = {"per-tensor": (torch.tensor(0.5), torch.tensor(4.0)),
          "row-wise": (powers_of_two(M, 1, seed=2), powers_of_two(1, N, seed=3)),
          "block-wise": (powers_of_two(M, K // 128, seed=4), powers_of_two(K // 128, 1, seed=5))}


def dequantized(a, b, scale_a, scale_b):
    """The float64 product of the dequantized operands (block-wise: each 128-deep k-block scaled on its own)."""
    a, b = a.double(), b.double()
    if scale_a.dim() == 2 and scale_a.shape[1] == K // 128 and scale_a.shape[1] > 1:
        blocks = [(a[:, k:k + 128] @ b[k:k + 128]) * scale_a[:, k // 128:k // 128 + 1].double()
                  * scale_b[k // 128].double() for k in range(0, K, 128)]
        return sum(blocks)
    return (a @ b) * scale_a.double() * scale_b.double()


def scaled(a, b, scale_a, scale_b, out_dtype=torch.float32, **options):
    return matmul(a, b, scale_a=scale_a, scale_b=scale_b, out_dtype=out_dtype, **options) * 2


@pytest.mark.parametrize("kind", SCALES)
def test_a_compiled_fp8_matmul_is_the_operator_in_one_graph_with_eagers_result(kind):
    scale_a, scale_b = SCALES[kind]
    eager = scaled(A, B, scale_a, scale_b)
    assert torch.equal(eager, 2 * dequantized(A, B, scale_a, scale_b).float())
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(scaled)(A, B, scale_a, scale_b)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1, explanation.break_reasons
    ops = {str(node.target) for graph in explanation.graphs for node in graph.graph.nodes}
    assert "skc.scaled_matmul.default" in ops, ops
    got = torch.compile(scaled, fullgraph=True, backend="aot_eager")(A, B, scale_a, scale_b)
    assert got.dtype == torch.float32 and torch.equal(got, eager)
    if kind != "block-wise":   # (torch._scaled_mm's CPU build takes per-tensor and row-wise scales)
        assert torch.equal(eager, 2 * torch._scaled_mm(A, B, scale_a, scale_b, out_dtype=torch.float32))


@pytest.mark.parametrize("out_dtype", [None, torch.bfloat16, torch.float16, torch.float32, "float16"])
def test_each_out_dtype_with_bias_and_activation_compiles_to_eagers_result(out_dtype):
    """out_dtype as torch names it, or by name as the eager call takes it; bias and the epilogue's activation."""
    scale_a, scale_b = SCALES["row-wise"]
    bias = torch.arange(-12, 12, dtype=torch.bfloat16)

    def model(a, b, scale_a, scale_b, bias):
        return matmul(a, b, scale_a=scale_a, scale_b=scale_b, out_dtype=out_dtype, bias=bias, activation="relu")

    eager = model(A, B, scale_a, scale_b, bias)
    wanted = {None: torch.bfloat16, "float16": torch.float16}.get(out_dtype, out_dtype)
    assert eager.dtype == wanted
    torch._dynamo.reset()
    got = torch.compile(model, fullgraph=True, backend="aot_eager")(A, B, scale_a, scale_b, bias)
    assert got.dtype == wanted and torch.equal(got, eager)
    assert torch.equal(eager, torch.relu(torch._scaled_mm(A, B, scale_a, scale_b, bias=bias, out_dtype=torch.float32))
                       .to(wanted))


@pytest.mark.parametrize("out_dtype", [None, torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("kind", SCALES)
def test_the_fake_gives_the_results_shape_and_dtype(kind, out_dtype):
    mode = FakeTensorMode()
    with mode:
        a, b, scale_a, scale_b = (mode.from_tensor(t) for t in (A, B, *SCALES[kind]))
        got = torch.ops.skc.scaled_matmul(a, b, scale_a, scale_b, out_dtype=out_dtype)
    assert got.shape == (M, N) and got.dtype == (out_dtype or torch.bfloat16) and got.is_contiguous()


ONE = torch.tensor(1.0)


@pytest.mark.parametrize("call", [
    lambda a, b, one: dict(a=a, b=b, scale_a=torch.ones(3, 1), scale_b=one),       # a scale of no kind
    lambda a, b, one: dict(a=a, b=b, scale_a=torch.ones(M, 1), scale_b=one),       # row-wise beside per-tensor
    lambda a, b, one: dict(a=a, b=b, scale_a=torch.ones(M, 2), scale_b=torch.ones(2, 2)),   # block-wise, B's wrong
    lambda a, b, one: dict(a=a, b=b, scale_a=one.half(), scale_b=one),              # scales are float32
    lambda a, b, one: dict(a=a, b=b.t().contiguous(), scale_a=one, scale_b=one),    # b row-major (N x K)
    lambda a, b, one: dict(a=a.float(), b=b, scale_a=one, scale_b=one),             # a not fp8
    lambda a, b, one: dict(a=a, b=b, scale_a=torch.ones(M, 2), scale_b=torch.ones(2, 1), use_fast_accum=True),
    lambda a, b, one: dict(a=a, b=b, scale_a=one, scale_b=one, out_dtype=torch.float8_e4m3fn),
    lambda a, b, one: dict(a=a, b=b, scale_a=one, scale_b=one, bias=torch.ones(N + 1, dtype=torch.bfloat16)),
    lambda a, b, one: dict(a=a, b=b, scale_a=one, scale_b=one, activation="tanh")],
    ids=["scale-shape", "mixed-scales", "block-scale-b", "scale-dtype", "b-row-major", "a-float", "block-fast-accum",
         "out-fp8", "bias-shape", "activation"])
def test_what_the_eager_call_refuses_is_refused_while_tracing_with_its_message(call):
    arguments = call(A, B, ONE)
    with pytest.raises(skc.LaunchError) as eager:
        matmul(**arguments)
    message = str(eager.value)

    def model(a, b, scale_a, scale_b, **options):
        return matmul(a, b, scale_a=scale_a, scale_b=scale_b, **options)

    torch._dynamo.reset()
    with pytest.raises(Exception) as traced:
        torch.compile(model, fullgraph=True, backend="aot_eager")(**arguments)
    assert message in str(traced.value)
    # (the operator itself: its fake implementation and its real one, an OperatorRefusal of the same message)
    options = {name: arguments[name] for name in ("bias", "out_dtype", "use_fast_accum", "activation")
               if name in arguments}
    operands = [arguments[name] for name in ("a", "b", "scale_a", "scale_b")]
    with pytest.raises(skc.torch.OperatorRefusal) as refused:
        torch.ops.skc.scaled_matmul(*operands, **options)
    assert str(refused.value) == message
    mode = FakeTensorMode()
    fake = {name: mode.from_tensor(x) if isinstance(x, torch.Tensor) else x for name, x in options.items()}
    with mode, pytest.raises(skc.torch.OperatorRefusal) as refused:
        torch.ops.skc.scaled_matmul(*(mode.from_tensor(t) for t in operands), **fake)
    assert str(refused.value) == message


def test_a_call_autograd_follows_is_refused_by_name_eagerly_and_while_tracing():
    """The fp8 GEMM has no derivative: an operand requiring grad is named, by the operator as by the eager call (and
    in torch.compile's tracing); under torch.no_grad it runs."""
    scale = torch.tensor(1.0, requires_grad=True)
    message = r"no derivative .* follows scale_a: .* pass scale_a.detach\(\)"
    with pytest.raises(skc.torch.OperatorRefusal, match=message):
        torch.ops.skc.scaled_matmul(A, B, scale, ONE)
    with pytest.raises(skc.LaunchError, match=message):
        scaled(A, B, scale, ONE)
    torch._dynamo.reset()
    with pytest.raises(Exception, match=message):
        torch.compile(scaled, fullgraph=True, backend="aot_eager")(A, B, scale, ONE)
    with torch.no_grad():
        assert torch.equal(torch.ops.skc.scaled_matmul(A, B, scale, ONE, out_dtype=torch.float32),
                           scaled(A, B, ONE, ONE) / 2)


def test_an_fp8_call_the_operator_does_not_take_runs_outside_the_graph():
    """An out (or a config, a stream): a graph break that runs the eager call, as for the bf16 GEMM."""
    out = torch.empty(M, N)

    def model(a, b, scale_a, scale_b):
        matmul(a, b, out, scale_a=scale_a, scale_b=scale_b, out_dtype=torch.float32)
        return out * 2

    torch._dynamo.reset()
    with pytest.raises(Exception, match="disable"):
        torch.compile(model, fullgraph=True, backend="aot_eager")(A, B, ONE, ONE)
    torch._dynamo.reset()
    got = torch.compile(model, backend="aot_eager")(A, B, ONE, ONE)
    assert torch.equal(got, scaled(A, B, ONE, ONE))


@pytest.mark.parametrize("activation", [5, b"relu"], ids=["int", "bytes"])
def test_an_activation_of_no_str_is_refused_by_name_under_torch_compile(activation):
    """An activation the operator's schema cannot take (str?) runs outside the graph, whose eager call names it (it
    went to the operator: torch's cast error, 'Expected a value of type Optional[str] for argument activation')."""
    message = f"scaled matmul: activation is None, 'relu', 'gelu' or 'silu', found {activation!r}"

    def model(a, b, scale_a, scale_b):
        return matmul(a, b, scale_a=scale_a, scale_b=scale_b, activation=activation)

    with pytest.raises(skc.LaunchError) as eager:
        model(A, B, *SCALES["row-wise"])
    assert str(eager.value) == message
    torch._dynamo.reset()
    with pytest.raises(skc.LaunchError) as traced:
        torch.compile(model, backend="aot_eager")(A, B, *SCALES["row-wise"])
    assert str(traced.value) == message


def test_a_compiled_fp8_matmul_of_dynamic_shapes():
    """torch.compile(dynamic=True): the fake's checks read symbolic sizes."""
    torch._dynamo.reset()
    compiled = torch.compile(scaled, fullgraph=True, backend="aot_eager", dynamic=True)
    for rows, cols, depth in ((M, N, K), (24, 40, 128)):
        a, b = fp8(rows, depth, seed=6), fp8(cols, depth, seed=7).t()
        assert torch.equal(compiled(a, b, ONE, ONE), scaled(a, b, ONE, ONE))


@pytest.mark.parametrize("kind", SCALES)
def test_a_compiled_fp8_matmul_of_dynamic_shapes_compiles_once_for_each_scale_kind(kind):
    """Row-wise and block-wise scales, whose shapes are the problem's, under torch.compile(dynamic=True): one graph
    for shapes of other M and N (the fake's check of per-tensor scales took int() of their symbolic sizes' product,
    fixing M and N: a recompile per shape, and torch's ConstraintViolationError under mark_dynamic)."""
    from torch._dynamo.testing import CompileCounterWithBackend

    def scales(rows, cols, depth):
        if kind == "per-tensor":
            return SCALES[kind]
        if kind == "row-wise":
            return powers_of_two(rows, 1, seed=2), powers_of_two(1, cols, seed=3)
        return powers_of_two(rows, depth // 128, seed=4), powers_of_two(depth // 128, -(-cols // 128), seed=5)

    torch._dynamo.reset()
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(scaled, fullgraph=True, backend=counter, dynamic=True)
    for rows, cols, depth in ((M, N, K), (24, 40, K), (56, 16, K)):
        a, b = fp8(rows, depth, seed=6), fp8(cols, depth, seed=7).t()
        assert torch.equal(compiled(a, b, *scales(rows, cols, depth)), scaled(a, b, *scales(rows, cols, depth)))
    assert counter.frame_count == 1
    torch._dynamo.reset()
    a, (scale_a, scale_b) = fp8(M, K, seed=6), scales(M, N, K)
    torch._dynamo.mark_dynamic(a, 0)
    if kind != "per-tensor":
        torch._dynamo.mark_dynamic(scale_a, 0)
    got = torch.compile(scaled, fullgraph=True, backend="aot_eager")(a, B, scale_a, scale_b)
    assert torch.equal(got, scaled(a, B, scale_a, scale_b))


@pytest.mark.parametrize("kind", SCALES)
def test_the_operator_passes_torchs_opcheck(kind):
    """torch.library.opcheck: the fake implementation against the real one, the autograd registration, and the op
    under AOTAutograd's dynamic-shape tracing (test_schema compares fp8 tensors with torch.allclose, which torch's
    CPU build cannot do for float8: 'mul_cpu_reduced_float' not implemented)."""
    tests = ("test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic")
    scale_a, scale_b = SCALES[kind]
    result = torch.library.opcheck(torch.ops.skc.scaled_matmul.default, (A, B, scale_a, scale_b),
                                   dict(out_dtype=torch.float16, activation="relu"), test_utils=tests)
    assert set(result.values()) == {"SUCCESS"}, result


def test_the_schema_is_torch_scaled_mms_order():
    assert str(torch.ops.skc.scaled_matmul.default._schema) == (
        "skc::scaled_matmul(Tensor a, Tensor b, Tensor scale_a, Tensor scale_b, Tensor? bias=None, "
        "ScalarType? out_dtype=None, bool use_fast_accum=False, str? activation=None) -> Tensor")


def test_torch_jit_trace_records_the_fp8_call_as_the_operator():
    """(was: a LaunchError, 'torch.jit.trace records torch's operators, and this call passes ... fp8 scales')"""
    import warnings

    def model(a, b, scale_a, scale_b):
        return matmul(a, b, scale_a=scale_a, scale_b=scale_b, out_dtype=torch.float32)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # (torch.jit.trace is deprecated)
        traced = torch.jit.trace(model, (A, B, ONE, ONE))
    assert "skc::scaled_matmul" in str(traced.graph)
    scale_a, scale_b = SCALES["per-tensor"]
    assert torch.equal(traced(A, B, scale_a, scale_b), model(A, B, scale_a, scale_b))


def test_the_operator_is_not_cast_under_autocast():
    """(fp8 operands and float32 scales and bias, as torch._scaled_mm's: an autocast region changes nothing)"""
    bias = torch.ones(N)
    eager = torch.ops.skc.scaled_matmul(A, B, ONE, ONE, bias=bias, out_dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = torch.ops.skc.scaled_matmul(A, B, ONE, ONE, bias=bias, out_dtype=torch.float32)
    assert got.dtype == torch.float32 and torch.equal(got, eager)
