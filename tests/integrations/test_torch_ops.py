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
        with pytest.raises(RuntimeError, match=r"cannot multiply \(128, 64\) by \(80, 64\): inner dimensions"):
            torch.ops.skc.matmul(a, torch.empty(80, 64, dtype=torch.float16))
        with pytest.raises(RuntimeError, match="bf16 or fp16 operands, found torch.float32"):
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
