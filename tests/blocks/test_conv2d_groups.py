"""conv2d(..., groups=) as torch.nn.functional.conv2d takes it, in the interpreter modelling sm_90a: exact against
F.conv2d in float64 (small integers: every product and sum exact in bf16's accumulator) for groups whose channels and
filters are multiples of 8 (one launch over the groups) and for depthwise ones (the dense convolution by
block-diagonal filters); torch.ops.skc.conv2d with groups, its fake, its derivative and torch.compile; torch's rules
refused by name."""
import numpy as np
import pytest

import skc
from skc.blocks.stencil import takes
from skc.blocks import MatmulConfig, conv2d

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
import skc.torch  # noqa: E402,F401
from helpers import small_ints

RNG = np.random.default_rng(54)


def ints(*shape, dtype=None):
    return small_ints(RNG, *shape, dtype=dtype)


def want(x, w, bias, stride, padding, dilation, groups, activation=None):
    y = F.conv2d(x.double(), w.double(), None if bias is None else bias.double(), stride, padding, dilation, groups)
    return (y.relu() if activation == "relu" else y).bfloat16()


def plan_of(x, w):
    from skc.blocks import conv
    from skc.blocks.host_plans import facts

    (found,) = {plan for key, (_, plan) in conv._PLANS.items() if key[1:3] == (facts(x), facts(w))}
    return found


@pytest.mark.parametrize("N, C, H, W, K, R, groups, stride, padding, dilation, bias, activation", [
    (1, 32, 5, 6, 32, 3, 2, 1, 1, 1, True, None),       # two groups of 16, tails of pixels
    (2, 32, 7, 6, 32, 3, 4, 2, 1, 1, True, "relu"),     # groups of 8 filters: a 16-column tile clipped at each
    (1, 64, 6, 5, 128, 3, 2, 1, 2, 2, True, None),      # dilation 2, 64 filters a group
    (1, 128, 5, 4, 32, 3, 2, 1, 1, 1, True, "relu"),    # groups of 64 channels: TMA im2col (smaller ones: vector)
    (1, 48, 5, 5, 96, 1, 3, 1, 0, 1, True, None),       # a pointwise grouped conv (the im2col loader, not a GEMM of x)
    (2, 16, 5, 5, 16, 3, 16, 1, 1, 1, True, "relu"),    # depthwise
    (1, 16, 6, 5, 32, 3, 16, 2, 1, 1, False, None),     # depthwise, two filters a channel, stride 2
    (1, 24, 5, 5, 16, 3, 4, 1, 1, 1, False, None),      # groups of 6 channels and 4 filters
])
def test_grouped_conv2d_is_torchs(hopper_interpreter, N, C, H, W, K, R, groups, stride, padding, dilation, bias,
                                  activation):
    x, w = ints(N, C, H, W), ints(K, C // groups, R, R)
    b = ints(K) if bias else None
    y = conv2d(x, w, b, stride, padding, dilation, activation, groups=groups)
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(y, want(x, w, b, stride, padding, dilation, groups, activation))
    plan = plan_of(x, w)
    # (one channel a group, and 2 to 8 with whole multiples of them as filters: the direct kernel; then groups of
    # multiples of 8 channels and filters, the batched GEMM)
    stencil = takes(C, K, groups, R, R, stride, dilation)
    grouped = C // groups % 8 == 0 and K // groups % 8 == 0 and not stencil
    kind = "_Stencil" if stencil else "_BlockDiagonal"
    assert (getattr(plan, "batches", None) == groups) if grouped else type(plan).__name__ == kind
    if grouped:
        assert plan.cfg.loader.vector == bool(C // groups % 64)


def test_grouped_conv2d_of_numpy_arrays_and_the_vector_loader(hopper_interpreter):
    """NHWC numpy arrays (x) and KRSC filters of C/groups channels; a config asking for the vector im2col loader."""
    import ml_dtypes

    x, w, b = ints(1, 32, 6, 7), ints(64, 16, 3, 3), ints(64)
    nhwc = lambda t: t.float().numpy().transpose(0, 2, 3, 1).astype(ml_dtypes.bfloat16)
    y = conv2d(nhwc(x), nhwc(w), b.float().numpy().astype(ml_dtypes.bfloat16), padding=1, groups=2,
               activation="relu")
    expected = want(x, w, b, 1, 1, 1, 2, "relu")
    np.testing.assert_array_equal(np.asarray(y, np.float32), expected.float().permute(0, 2, 3, 1).numpy())
    y = conv2d(x, w, padding=1, groups=2, config=MatmulConfig(loader="vector", tile_n=64))
    assert torch.equal(y, want(x, w, None, 1, 1, 1, 2))
    depthwise = ints(16, 1, 3, 3)
    y = conv2d(nhwc(x[:, :16]), nhwc(depthwise), padding=1, groups=16)
    np.testing.assert_array_equal(np.asarray(y, np.float32),
                                  want(x[:, :16], depthwise, None, 1, 1, 1, 16).float().permute(0, 2, 3, 1).numpy())


def test_the_torch_operator_its_fake_and_its_derivative_take_groups(hopper_interpreter):
    from torch._subclasses.fake_tensor import FakeTensorMode

    x, w, b = ints(2, 32, 5, 6), ints(32, 8, 3, 3), ints(32)
    y = torch.ops.skc.conv2d(x, w, b, (1, 1), (1, 1), groups=4)
    assert torch.equal(y, want(x, w, b, 1, 1, 1, 4))
    with FakeTensorMode() as mode:
        fake = torch.ops.skc.conv2d(mode.from_tensor(x), mode.from_tensor(w), stride=(2, 2), groups=4)
    assert tuple(fake.shape) == (2, 32, 2, 2)
    # gradients (the reference's, by torch.func.vjp of F.conv2d with the groups) against F.conv2d's
    x, w, b = (t.float().requires_grad_() for t in (x, w, b))
    cotangent = ints(2, 32, 5, 6).float()
    xs, ws, bs = (t.detach().bfloat16().to(memory_format=torch.channels_last) if t.dim() == 4 else
                  t.detach().bfloat16() for t in (x, w, b))
    xs, ws, bs = (t.requires_grad_() for t in (xs, ws, bs))
    got = torch.autograd.grad(conv2d(xs, ws, bs, padding=1, groups=4).float(), (xs, ws, bs), cotangent)
    expected = torch.autograd.grad(F.conv2d(x, w, b, padding=1, groups=4), (x, w, b), cotangent)
    for g, e in zip(got, expected):
        assert torch.equal(g.float(), e.bfloat16().float())


def test_a_grouped_call_compiles_with_fullgraph(hopper_interpreter):
    import torch._dynamo

    torch._dynamo.reset()
    x, w, b = ints(1, 32, 5, 6), ints(32, 16, 3, 3), ints(32)
    model = lambda x: conv2d(x, w, b, padding=1, groups=2, activation="relu")
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    assert torch.equal(compiled(x), want(x, w, b, 1, 1, 1, 2, "relu"))
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1


@pytest.mark.parametrize("C, K, C_w, groups, message", [
    (32, 32, 16, 1, r"x has 32 channels but the filters take 16 \(w of a grouped convolution: pass groups=2, as "
                    r"torch.nn.functional.conv2d takes it\)"),
    (32, 32, 16, 4, r"x has 32 channels but the filters take 16: with groups=4 each filter reads C/groups = 8 "
                    r"channels \(w of shape K x C/groups x R x S, torch's\)"),
    (24, 32, 8, 3, r"groups=3 must divide w's 32 filters \(w.shape\[0\]\): torch.nn.functional.conv2d's rule, "
                   "in_channels and out_channels divisible by groups"),
    (32, 24, 8, 5, r"groups=5 must divide x's 32 channels"),
])
def test_torchs_rules_of_groups_are_named(hopper_interpreter, C, K, C_w, groups, message):
    x, w = ints(1, C, 5, 5), ints(K, C_w, 3, 3)
    with pytest.raises(skc.LaunchError, match=message):
        conv2d(x, w, groups=groups)
    with pytest.raises(RuntimeError, match=message):
        torch.ops.skc.conv2d(x, w, groups=groups)


def test_groups_that_are_no_positive_int_and_groups_passed_for_the_activation(hopper_interpreter):
    x, w = ints(1, 32, 5, 5), ints(32, 16, 3, 3)
    for groups in (0, 2.0, True, "2"):
        with pytest.raises(skc.LaunchError, match=r"conv2d's groups must be a positive int \(torch.nn.functional."
                                                  rf"conv2d's\), found {groups!r}"):
            conv2d(x, w, groups=groups)
    with pytest.raises(skc.LaunchError, match=r"conv2d's 7th argument is the activation, found 2: pass the groups "
                                              r"by keyword, groups=2"):
        conv2d(x, w, None, 1, 1, 1, 2)
    with pytest.raises(RuntimeError, match=r"conv2d's groups must be a positive int"):
        torch.ops.skc.conv2d(x, w, groups=0)


def test_a_grouped_conv_of_arrays_the_host_cannot_copy_is_refused_by_name(hopper_interpreter):
    x, w = skc.to_device(np.ones((1, 5, 5, 24), np.float32), dtype=skc.bf16), \
        skc.to_device(np.ones((24, 3, 3, 6), np.float32), dtype=skc.bf16)
    with pytest.raises(skc.LaunchError, match=r"runs groups of 6 channels and 6 filters .* as the dense convolution "
                                              r"with block-diagonal filters, which it makes on the host from torch "
                                              r"tensors or numpy arrays"):
        conv2d(x, w, groups=4)


def test_a_tensor_maps_view(hopper_interpreter):
    """TensorMap(view=): the tensor's memory seen with another shape and strides, within its elements."""
    y = np.zeros((6, 32), np.float16)
    tensor_map = skc.TensorMap(y, (1, 64, 8), view=((2, 6, 16), (16, 32, 1)))
    assert (tensor_map.shape, tensor_map.strides) == ((2, 6, 16), (16, 32, 1))
    with pytest.raises(skc.LaunchError, match=r"must stay within its tensor's 192 elements \(shape \(6, 32\), "
                                              r"strides \(32, 1\)\)"):
        skc.TensorMap(y, (1, 64, 8), view=((2, 6, 32), (16, 32, 1)))
    with pytest.raises(skc.LaunchError, match="must have a stride for each dimension, none negative"):
        skc.TensorMap(y, (1, 64, 8), view=((2, 6, 16), (16, 32)))


def test_a_tensor_maps_view_sees_no_memory_that_is_not_the_tensors(hopper_interpreter):
    """A view spans no more than the tensor's elements: not the columns a slice leaves out (within the slice's span,
    another tensor's memory), nor anything of an empty tensor (torch's strides of one span 64 elements of none)."""
    y = np.zeros((6, 32), np.float16)
    with pytest.raises(skc.LaunchError, match=r"without gaps; shape \(6, 16\) with strides \(32, 1\) has gaps"):
        skc.TensorMap(y[:, :16], (1, 64, 8), view=((2, 5, 16), (16, 32, 1)))
    empty = torch.zeros((2, 0, 64), dtype=torch.float16)
    with pytest.raises(skc.LaunchError, match="must stay within its tensor's 0 elements"):
        skc.TensorMap(empty, (1, 64), view=((1, 64), (64, 1)))
    channels_last = torch.zeros((1, 32, 3, 3), dtype=torch.float16).to(memory_format=torch.channels_last)
    tensor_map = skc.TensorMap(channels_last.permute(0, 2, 3, 1), (1, 8, 16), view=((2, 9, 16), (16, 32, 1)))
    assert (tensor_map.shape, tensor_map.strides) == ((2, 9, 16), (16, 32, 1))


def test_a_groups_output_is_not_touched_by_another_groups_non_finite_channels(hopper_interpreter):
    """Groups of 16 channels (less than a 64-channel k-step: TMA's boxes would read the next group's, and 0 · inf is
    NaN): an inf in group 1's channels leaves group 0's outputs as torch's."""
    x, w = ints(1, 32, 5, 5), ints(32, 16, 3, 3)
    x[0, 20, 2, 2] = float("inf")
    y = conv2d(x, w, padding=1, groups=2)
    assert torch.equal(y[:, :16], want(x, w, None, 1, 1, 1, 2)[:, :16])
    assert plan_of(x, w).cfg.loader.vector


def test_compile_arguments_of_a_grouped_conv_are_the_batched_kernels():
    """skc compile's arguments of a grouped convolution are those of the kernel conv2d launches over the groups
    (matmul_batched_kernel, `batches`); matmul_kernel, given the batched config, is refused by name (it compiled,
    computing group 0 alone without its biases' stride: a silent wrong kernel)."""
    from skc.blocks import ConvShape
    from skc.blocks.gemm import matmul_batched_kernel, matmul_kernel
    from skc.blocks.conv import compile_arguments

    arguments = compile_arguments("sm_90a", ConvShape(2, 8, 8, 32, 32, 3, 3, (1, 1), (1, 1), (1, 1), groups=2))
    assert arguments["batches"] == 2 and arguments["cfg"].batched == "ab"
    assert "wgmma" in matmul_batched_kernel.compile(**arguments, target="sm_90a").asm("ptx")
    del arguments["batches"]
    with pytest.raises(skc.CompileError, match="batched launch, which matmul_batched_kernel computes"):
        matmul_kernel.compile(**arguments, target="sm_90a")


def test_the_hint_for_filters_no_multiple_of_8_in_groups_gives_a_padding_that_runs(hopper_interpreter):
    # (it said "pad w with zero filters to 16", which groups=12 then refused: 16 filters in 12 groups; since the
    # fifty-sixth session the group stencil stores any K, so the hint is for groups it does not take: 6 channels)
    x, w = ints(1, 12, 5, 5), ints(12, 6, 3, 3)
    with pytest.raises(skc.LaunchError, match=r"pad each group's 6 filters with zero filters to 8 \(w of 16 filters"):
        conv2d(x, w, padding=1, groups=2)
    with pytest.raises(RuntimeError, match=r"pad each group's 6 filters"):
        torch.ops.skc.conv2d(x, w, None, [1, 1], [1, 1], [1, 1], None, 2)
    padded = torch.zeros(16, 6, 3, 3, dtype=torch.bfloat16)
    padded[0:6], padded[8:14] = w[0:6], w[6:12]
    y = conv2d(x, padded.to(memory_format=torch.channels_last), padding=1, groups=2)
    expected = want(x, w, None, 1, 1, 1, 2)
    assert torch.equal(y[:, 0:6], expected[:, 0:6]) and torch.equal(y[:, 8:14], expected[:, 6:12])
    # (a depthwise convolution of 12 filters, refused with such a hint before, runs on the stencil)
    depthwise = ints(12, 1, 3, 3)
    assert torch.equal(conv2d(x, depthwise, padding=1, groups=12), want(x, depthwise, None, 1, 1, 1, 12))

@pytest.mark.parametrize("C, K, groups", [(12, 12, 12), (12, 12, 3), (3, 6, 3)])
def test_the_torch_operator_takes_what_the_stencil_stores_of_any_k(hopper_interpreter, C, K, groups):
    """Depthwise of 12 channels, 4 channels a group with K = 12, RGB depthwise of two filters a channel: conv2d runs
    each on the stencil, which stores any K; torch.ops.skc.conv2d, its fake, and conv2d where autograd follows the
    call (the operator) refused them, 'K ... must be a multiple of 8' (TMA's rows)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    x, w, b = ints(2, C, 5, 6), ints(K, C // groups, 3, 3), ints(K)
    expected = want(x, w, b, 1, 1, 1, groups)
    assert torch.equal(torch.ops.skc.conv2d(x, w, b, (1, 1), (1, 1), groups=groups), expected)
    with FakeTensorMode() as mode:
        fake = torch.ops.skc.conv2d(mode.from_tensor(x), mode.from_tensor(w), padding=(1, 1), groups=groups)
    assert tuple(fake.shape) == (2, K, 5, 6)
    xs = x.clone().requires_grad_()
    y = conv2d(xs, w, b, padding=1, groups=groups)
    assert torch.equal(y.detach(), expected)
    (grad,) = torch.autograd.grad(y.float().sum(), (xs,))
    xf = x.float().requires_grad_()
    (reference,) = torch.autograd.grad(F.conv2d(xf, w.float(), b.float(), padding=1, groups=groups).sum(), (xf,))
    assert torch.equal(grad.float(), reference.bfloat16().float())


def test_a_differentiated_call_names_the_same_problem_first(hopper_interpreter):
    """A call with no output pixels and K no multiple of 8 (off the stencil): conv2d named the pixels, the operator
    (where x requires grad) the filters; both name the pixels, conv2d's order."""
    x, w = ints(2, 36, 4, 4), ints(18, 12, 7, 7)
    message = r"conv2d of a 4x4 input by a 7x7 filter \(padding \(0, 0\), dilation \(1, 1\)\) has no output pixels"
    with pytest.raises(skc.LaunchError, match=message):
        conv2d(x, w, padding="valid", groups=3)
    with pytest.raises(skc.LaunchError, match=message):
        conv2d(x.clone().requires_grad_(), w, padding="valid", groups=3)
    with pytest.raises(RuntimeError, match=message):
        torch.ops.skc.conv2d(x, w, groups=3)
