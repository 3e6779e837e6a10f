"""matmul of torch.matmul's shapes, in the interpreter, exact against torch.matmul (values, shapes, strides, dtype):
1-D operands (a row, a column, the added dimension removed) and batch dimensions of any number, broadcast as
torch's; they were a LaunchError ('matmul takes 2-D operands or a batch of them (3-D)'). Views where the memory
allows (a batch folded into a's rows, batch dimensions flattened), copies where torch's would copy, out written in
place, and torch.ops.skc.matmul (its fake, its gradients) of the same shapes."""
import numpy as np
import pytest

import skc
from skc.blocks import matmul, matmul_host
from skc.blocks.matmul_shapes import TorchShapes

torch = pytest.importorskip("torch")
import skc.torch  # noqa: E402,F401  (registers torch.ops.skc.*)

SHAPES = [((2, 3, 16, 32), (32, 8)), ((2, 3, 16, 32), (2, 3, 32, 8)), ((32,), (32, 8)), ((16, 32), (32,)),
          ((32,), (32,)), ((2, 1, 16, 32), (1, 3, 32, 8)), ((2, 3, 16, 32), (3, 32, 8)), ((32,), (2, 3, 32, 8)),
          ((2, 3, 16, 32), (32,)), ((1, 1, 16, 32), (2, 3, 32, 8)), ((3, 16, 32), (2, 1, 32, 8)),
          ((0, 3, 16, 32), (32, 8)), ((2, 0, 16, 32), (2, 0, 32, 8)), ((2, 3, 16, 0), (0, 8)), ((0,), (0,)),
          ((2, 3, 0, 32), (32,))]


def integers(*shape, seed=0, dtype=torch.bfloat16):
    """Small integers: every product and sum is exact in bf16 operands and f32 accumulation."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(-2, 3, shape, generator=generator).to(dtype)


def check_like_torch(got, a, b):
    expected = torch.matmul(a, b)   # (torch's own result: its shape, strides and dtype)
    assert (got.shape, got.stride(), got.dtype) == (expected.shape, expected.stride(), expected.dtype)
    assert torch.equal(got.float(), torch.matmul(a.float(), b.float()))


@pytest.mark.parametrize("a_shape, b_shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_torch_matmul_shapes(hopper_interpreter, a_shape, b_shape):
    a, b = integers(*a_shape), integers(*b_shape, seed=1)
    check_like_torch(matmul(a, b), a, b)
    check_like_torch(torch.ops.skc.matmul(a, b), a, b)


def test_a_batch_times_a_matrix_is_one_gemm_of_its_rows_without_copies(hopper_interpreter):
    """(2, 3, 16, 32) rows 40 apart (a slice of wider rows) fold into one 96 x 32 GEMM: no copy, no batch."""
    a, b = integers(2, 3, 16, 40)[..., :32], integers(32, 8, seed=1)
    check_like_torch(matmul(a, b), a, b)
    kinds = {type(plan).__name__ for plan in matmul_host._PLANS.values()}
    assert "TorchShapes" in kinds and not kinds & {"_FoldedBatch", "_LoopedBatch", "_BroadcastBatch"}, kinds
    (shaped,) = [p for p in matmul_host._PLANS.values() if isinstance(p, TorchShapes)]
    assert shaped.inner[0] == (96, 32) and shaped.copies == (False, False)


def test_batch_dimensions_that_do_not_flatten_are_copied_as_torch_copies_them(hopper_interpreter):
    """Permuted batch dimensions (no one stride) and a broadcast batch are copied; a transposed b stays a view."""
    a = integers(3, 2, 16, 32).transpose(0, 1)
    b = integers(2, 3, 8, 32, seed=1).transpose(-1, -2)
    check_like_torch(matmul(a, b), a, b)
    (shaped,) = [p for p in matmul_host._PLANS.values() if isinstance(p, TorchShapes)]
    assert shaped.copies == (True, False)
    strided = integers(64)[::2]   # (a 1-D a of a stride: its row would be neither row-major nor transposed)
    check_like_torch(matmul(strided, integers(32, 8, seed=2)), strided, integers(32, 8, seed=2))


def test_numpy_operands(hopper_interpreter):
    a = np.random.default_rng(3).integers(-2, 3, (2, 2, 8, 16)).astype(np.float16)
    b = np.random.default_rng(4).integers(-2, 3, (2, 1, 16, 8)).astype(np.float16)
    got = matmul(a, b)
    assert got.shape == (2, 2, 8, 8) and got.dtype == np.float16
    np.testing.assert_array_equal(got.astype(np.float32), a.astype(np.float32) @ b.astype(np.float32))
    v = a[0, 0, 0]
    np.testing.assert_array_equal(matmul(v, b).astype(np.float32), v.astype(np.float32) @ b.astype(np.float32))


def test_out_c_and_bias_of_the_results_shape(hopper_interpreter):
    a, b = integers(2, 3, 16, 32), integers(2, 3, 32, 8, seed=1)
    c, bias = integers(2, 3, 16, 8, seed=2), integers(8, seed=3)
    out = torch.full((2, 3, 16, 8), float("nan"), dtype=torch.bfloat16)
    assert matmul(a, b, out, c=c, bias=bias, alpha=2.0, beta=-1.0, activation="relu") is out
    expected = torch.relu(2.0 * (a.float() @ b.float()) - c.float() + bias.float())
    assert torch.equal(out.float(), expected)
    v, vout = integers(32, seed=4), torch.full((16,), float("nan"), dtype=torch.bfloat16)
    assert matmul(a[0, 0], v, vout, bias=integers(1, seed=5)) is vout
    assert torch.equal(vout.float(), a[0, 0].float() @ v.float() + integers(1, seed=5).float())


def test_shapes_it_refuses_by_name(hopper_interpreter):
    a, b = integers(2, 3, 16, 32), integers(32, 8, seed=1)
    with pytest.raises(skc.LaunchError, match=r"out has shape \(6, 16, 8\); the product .* is \(2, 3, 16, 8\)"):
        matmul(a, b, torch.empty(6, 16, 8, dtype=torch.bfloat16))
    with pytest.raises(skc.LaunchError, match=r"c has shape \(16, 8\)"):
        matmul(a, b, c=torch.empty(16, 8, dtype=torch.bfloat16))
    with pytest.raises(skc.LaunchError, match="the batch sizes differ.*broadcast as torch.matmul's"):
        matmul(a, integers(2, 2, 32, 8))
    with pytest.raises(skc.LaunchError, match="inner dimensions differ"):
        matmul(a, integers(16))
    with pytest.raises(skc.LaunchError, match="a dimension at least"):
        matmul(torch.ones((), dtype=torch.bfloat16), integers(32))
    with pytest.raises(skc.LaunchError, match=r"a 1-D b .* pass a bias of shape \(1,\)"):
        matmul(a, integers(32), bias=integers(16))
    # an out whose batch does not flatten into the problem's: the GEMM would write a copy of it
    out = torch.empty(3, 2, 16, 8, dtype=torch.bfloat16).transpose(0, 1)
    with pytest.raises(skc.LaunchError, match="no view of it is: pass a contiguous out"):
        matmul(a, integers(2, 3, 32, 8), out)


def test_fp8_operands_stay_two_dimensional_as_torch_scaled_mm_s():
    a, b, one = torch.ones(2, 16, 32).to(torch.float8_e4m3fn), torch.ones(8, 32).to(torch.float8_e4m3fn).T, \
        torch.ones(())
    with pytest.raises(skc.LaunchError, match=r"2-D operands, as torch._scaled_mm does.*a.reshape\(-1, K\)"):
        matmul(a, b, scale_a=one, scale_b=one)


def test_the_operator_s_fake_and_gradients_follow_torch_matmul():
    """torch.compile sees torch.matmul's shape, and the gradients (of broadcast batch dimensions and of 1-D
    operands) are torch.matmul's, reduced to each operand's shape."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode() as mode:
        for a_shape, b_shape in SHAPES:
            a, b = (mode.from_tensor(torch.empty(s, dtype=torch.bfloat16)) for s in (a_shape, b_shape))
            assert torch.ops.skc.matmul(a, b).shape == torch.matmul(a, b).shape
        out = mode.from_tensor(torch.empty(16, dtype=torch.bfloat16))
        torch.ops.skc.matmul_out(mode.from_tensor(integers(16, 32)), mode.from_tensor(integers(32)), out)
    for a_shape, b_shape in (((2, 1, 16, 32), (3, 32, 8)), ((32,), (2, 32, 8)), ((2, 3, 16, 32), (32,))):
        a, b = (integers(*s, seed=i, dtype=torch.float32).requires_grad_() for i, s in enumerate((a_shape, b_shape)))
        weights = integers(*torch.matmul(a, b).shape, seed=7, dtype=torch.float32)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            (matmul(a, b).float() * weights).sum().backward()
        ga, gb = torch.autograd.grad((torch.matmul(a, b) * weights).sum(), (a, b))
        assert a.grad.shape == a.shape and b.grad.shape == b.shape
        assert torch.equal(a.grad, ga) and torch.equal(b.grad, gb)


def test_traced_calls_of_torch_shapes_stay_in_the_graph():
    import torch._dynamo

    torch._dynamo.reset()
    a, b = integers(2, 3, 16, 32), integers(3, 32, 8, seed=1)
    compiled = torch.compile(lambda a, b: matmul(a, b) * 2, backend="aot_eager", fullgraph=True)
    assert torch.equal(compiled(a, b).float(), torch.matmul(a.float(), b.float()) * 2)


@pytest.mark.parametrize("a_shape", [(16, 32), (2, 3, 16, 32), (32,)], ids=lambda s: "x".join(map(str, s)))
def test_a_column_of_a_matrix_as_a_1d_b(hopper_interpreter, a_shape):
    """b = W[:, j] of a row-major W, 16 bytes or more apart, is read in place as a K x 1 column (was: 'the tensor's
    innermost dimension must be contiguous (stride 1) for TMA': torch's view of it is K x 1 of strides (8, 8));
    numpy's reversed b[::-1] is copied (was refused, its strides (-1, -1))."""
    a = integers(*a_shape)
    for b in (integers(32, 8, seed=1)[:, 3], integers(32, 16, seed=2)[:, 5], integers(32, 8, seed=3)[:, 3:4]):
        check_like_torch(matmul(a, b), a, b)
    reversed_b = np.random.default_rng(5).integers(-2, 3, 32).astype(np.float16)[::-1]
    a_numpy = a.float().numpy().astype(np.float16)
    np.testing.assert_array_equal(matmul(a_numpy, reversed_b).astype(np.float64),
                                  a_numpy.astype(np.float64) @ reversed_b.astype(np.float64))


def test_a_parameter_beside_a_plain_tensor_keeps_its_gradient(hopper_interpreter):
    """x @ w with w an nn.Parameter (two torch types) is followed by autograd as one type is (was: the kernel's
    result, with no grad_fn: w.grad stayed None); a numpy operand beside a tensor that requires grad is refused."""
    for x_shape in ((16, 32), (32,), (2, 3, 16, 32)):
        x = integers(*x_shape).requires_grad_()
        w = torch.nn.Parameter(integers(32, 8, seed=1))
        weights = integers(*torch.matmul(x, w).shape, seed=2, dtype=torch.float64)
        (matmul(x, w).double() * weights).sum().backward()
        expected = torch.autograd.grad((torch.matmul(x.double(), w.double()) * weights).sum(), (x, w))
        assert w.grad is not None and torch.equal(w.grad.double(), expected[1])
        assert torch.equal(x.grad.double(), expected[0])
    with pytest.raises(skc.LaunchError, match=r"and a is a ndarray, which it cannot follow.*torch.from_numpy\(a\)"):
        matmul(np.ones((16, 32), np.float16), integers(32, 8, dtype=torch.float16).requires_grad_())


def test_a_parameter_beside_a_plain_tensor_takes_the_torch_fast_path(hopper_interpreter, monkeypatch):
    """Under torch.no_grad, x @ w with w an nn.Parameter reads its facts in place as a plain tensor's are (it took
    the path of other arrays, which views and checks every operand at every call)."""
    x, w = integers(16, 32), torch.nn.Parameter(integers(32, 8, seed=1))

    def other_arrays(*args, **kwargs):
        raise AssertionError("the path of other arrays")

    monkeypatch.setattr(matmul_host, "viewable", other_arrays)
    with torch.no_grad():
        check_like_torch(matmul(x, w), x, w)
        check_like_torch(matmul(w.t(), x.t()), w.t(), x.t())
