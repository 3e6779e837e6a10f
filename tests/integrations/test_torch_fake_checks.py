"""The fake implementations refuse what the ops refuse at run time, so torch.compile fails while tracing rather
than in the compiled graph (was: matmul_out's fake took any out; attention's any head dimension and scale)."""
import pytest

torch = pytest.importorskip("torch")
import skc  # noqa: E402
import skc.torch  # noqa: E402,F401
from torch._subclasses.fake_tensor import FakeTensorMode  # noqa: E402


@pytest.mark.parametrize("call, message", [
    (lambda t: torch.ops.skc.matmul_out(t(16, 32), t(32, 16), t(8, 16)), r"out is \(8, 16\)"),
    (lambda t: torch.ops.skc.matmul_out(t(16, 32), t(32, 16), t(16, 16).float()), r"expected \(16, 16\)"),
    (lambda t: torch.ops.skc.matmul_out(t(16, 32), t(32, 16), t(16, 16).T), "must be row-major"),
    (lambda t: torch.ops.skc.attention(t(1, 2, 64, 32), t(1, 2, 64, 32), t(1, 2, 64, 32)), "head dimensions"),
    (lambda t: torch.ops.skc.attention_with_lse(t(1, 2, 64, 32), t(1, 2, 64, 32), t(1, 2, 64, 32)),
     "head dimensions"),
    (lambda t: torch.ops.skc.attention(t(1, 2, 64, 64), t(1, 2, 64, 64), t(1, 2, 64, 64), scale=-1.0),
     "positive and finite"),
    # (forty-ninth session: scales that are 0 or infinite as the kernel's f32, which the fake took)
    (lambda t: torch.ops.skc.attention(t(1, 2, 64, 64), t(1, 2, 64, 64), t(1, 2, 64, 64), scale=1e-39),
     "scale 1e-39 is 0 as the f32"),
    (lambda t: torch.ops.skc.attention_with_lse(t(1, 2, 64, 64), t(1, 2, 64, 64), t(1, 2, 64, 64), scale=1e39),
     "scale 1e[+]39 is infinite as the f32"),
    # (forty-first session: empty problems, layouts and K the ops refuse at run time)
    (lambda t: torch.ops.skc.matmul(t(16, 64)[:, ::2], t(32, 16)), "row-major or transposed views"),
    (lambda t: torch.ops.skc.matmul(t(16, 16), t(16, 16), c=t(16, 16).t()), "must be contiguous"),
    # (fiftieth session: empty attention runs, as torch's; no K/V heads beside Q heads stays refused)
    (lambda t: torch.ops.skc.attention(t(1, 2, 8, 64), t(1, 0, 8, 64), t(1, 0, 8, 64)), "dividing Q heads: 2 and 0"),
    (lambda t: torch.ops.skc.attention(t(1, 1, 8, 128)[..., ::2], t(1, 1, 8, 64), t(1, 1, 8, 64)),
     "not contiguous along head_dim"),
    # (forty-ninth session: rows of 65 elements, sliced to head_dim 64, which TMA cannot step through)
    (lambda t: torch.ops.skc.attention(t(1, 1, 8, 64), t(1, 2, 8, 65)[:, :1, :, :64], t(1, 1, 8, 64)),
     "multiple of 16 bytes"),
    (lambda t: torch.ops.skc.attention(t(1, 1, 8, 65).view(-1)[1:513].view(1, 1, 8, 64), t(1, 1, 8, 64),
                                       t(1, 1, 8, 64)), "starts 1 elements into its storage, no multiple of 16 bytes"),
    (lambda t: torch.ops.skc.conv2d(t(1, 8, 6, 6).to(memory_format=torch.channels_last),
                                    t(0, 8, 3, 3).to(memory_format=torch.channels_last)), "must each be at least 1"),
    (lambda t: torch.ops.skc.conv2d(t(1, 8, 6, 6).to(memory_format=torch.channels_last),
                                    t(2, 8, 3, 3).to(memory_format=torch.channels_last)), "a multiple of 8"),
    # (a strided bias and an unknown activation: the fakes took them, the ops refuse them)
    (lambda t: torch.ops.skc.conv2d(t(1, 8, 6, 6).to(memory_format=torch.channels_last),
                                    t(8, 8, 3, 3).to(memory_format=torch.channels_last), t(16)[::2]),
     "bias .* must be contiguous"),
    (lambda t: torch.ops.skc.conv2d(t(1, 8, 6, 6).to(memory_format=torch.channels_last),
                                    t(8, 8, 3, 3).to(memory_format=torch.channels_last), activation="tanh"),
     "conv2d: unknown activation 'tanh'"),
    (lambda t: torch.ops.skc.matmul(t(16, 16), t(16, 16), activation="tanh"), "matmul: unknown activation 'tanh'"),
    (lambda t: torch.ops.skc.matmul_out(t(16, 16), t(16, 16), t(16, 16), activation="Relu"),
     "matmul: unknown activation 'Relu'"),
    # (sixty-fifth session: a complex alpha or beta passed the fake; a complex scale failed there in Python's words)
    (lambda t: torch.ops.skc.matmul(t(16, 16), t(16, 16), alpha=1j), "alpha must be a real number, found complex"),
    (lambda t: torch.ops.skc.matmul_out(t(16, 16), t(16, 16), t(16, 16), c=t(16, 16), beta=2j),
     "beta must be a real number, found complex"),
    (lambda t: torch.ops.skc.attention(t(1, 2, 64, 64), t(1, 2, 64, 64), t(1, 2, 64, 64), scale=0.5j),
     "attention's scale must be a number, found complex"),
    (lambda t: torch.ops.skc.attention_with_lse(t(1, 2, 64, 64), t(1, 2, 64, 64), t(1, 2, 64, 64), scale=0.5j),
     "attention's scale must be a number, found complex")])
def test_fake_refuses_what_the_op_refuses(call, message):
    with pytest.raises(Exception, match=message):   # eagerly (RuntimeError or skc.LaunchError)
        call(lambda *shape: torch.zeros(*shape, dtype=torch.bfloat16))
    with FakeTensorMode(), pytest.raises(RuntimeError, match=message):
        call(lambda *shape: torch.empty(*shape, dtype=torch.bfloat16))


def test_the_ops_know_the_epilogues_activations():
    from skc.blocks.epilogue import ACTIVATIONS

    assert tuple(skc.torch._ACTIVATIONS) == ACTIVATIONS


CL = torch.channels_last


@pytest.mark.parametrize("call, message", [
    (lambda t, u: torch.ops.skc.matmul(t(16, 32), u(32, 16)), "found b on meta and a on cpu: pass b.to"),
    (lambda t, u: torch.ops.skc.matmul(t(16, 32), t(32, 16), bias=u(16)), "found bias on meta"),
    (lambda t, u: torch.ops.skc.matmul(t(16, 32), t(32, 16), c=u(16, 16)), "found c on meta"),
    (lambda t, u: torch.ops.skc.matmul_out(t(16, 32), t(32, 16), u(16, 16)),
     "found out on meta .* an out on a.s device"),
    (lambda t, u: torch.ops.skc.conv2d(t(1, 8, 6, 6).to(memory_format=CL), u(8, 8, 3, 3).to(memory_format=CL)),
     "found w on meta and x on cpu"),
    (lambda t, u: torch.ops.skc.conv2d(t(1, 8, 6, 6).to(memory_format=CL), t(8, 8, 3, 3).to(memory_format=CL),
                                       u(8)), "found bias on meta"),
    (lambda t, u: torch.ops.skc.attention(t(1, 2, 64, 64), u(1, 2, 64, 64), t(1, 2, 64, 64)), "found k on meta"),
    (lambda t, u: torch.ops.skc.attention_with_lse(t(1, 2, 64, 64), t(1, 2, 64, 64), u(1, 2, 64, 64)),
     "found v on meta")])
def test_ops_name_tensors_on_another_device(call, message):
    """Tensors on two devices (here the CPU and meta; on a GPU host, cuda:0 and the CPU: the GPU script
    abtmp/gpu50/F_gpu_empty_and_devices.py): named by the op as torch's own operators name them, eagerly and while
    torch.compile traces (the fakes made a result on the first one's device; eagerly, the launch named the operand
    with advice for skc's current device, or a meta tensor)."""
    message = "expected all tensors on one device, " + message
    with pytest.raises(RuntimeError, match=message):
        call(lambda *shape: torch.zeros(*shape, dtype=torch.bfloat16),
             lambda *shape: torch.zeros(*shape, dtype=torch.bfloat16, device="meta"))
    mode = FakeTensorMode()
    with mode, pytest.raises(RuntimeError, match=message):
        call(lambda *shape: mode.from_tensor(torch.zeros(*shape, dtype=torch.bfloat16)),
             lambda *shape: mode.from_tensor(torch.zeros(*shape, dtype=torch.bfloat16, device="meta")))


def test_a_depthwise_conv_of_meta_tensors_has_its_shape():
    """K not a multiple of 8 asked the stencil whether it takes the problem on x's device, and a meta tensor's had
    none: a bare TypeError ("skc runs on CUDA, ROCm and CPU (interpreter) tensors, found one on meta")."""
    x = torch.zeros(1, 4, 8, 8, dtype=torch.bfloat16, device="meta").to(memory_format=CL)
    w = torch.zeros(4, 1, 3, 3, dtype=torch.bfloat16, device="meta").to(memory_format=CL)
    y = torch.ops.skc.conv2d(x, w, padding=[1, 1], groups=4)
    assert y.shape == (1, 4, 8, 8) and y.device.type == "meta" and y.is_contiguous(memory_format=CL)
    with pytest.raises(RuntimeError, match="a multiple of 8"):
        torch.ops.skc.conv2d(x.new_zeros(1, 8, 6, 6).to(memory_format=CL),
                             w.new_zeros(12, 8, 3, 3).to(memory_format=CL))


def test_a_batch_of_row_major_matrices_at_any_stride_is_taken_compiled_as_eagerly():
    """skc.blocks.matmul takes a batch's c and out with gaps between matrices (x[::2]); the operators refused them,
    so the same call failed under torch.compile, and eagerly where autograd follows it."""
    from skc.blocks import matmul

    torch.manual_seed(0)
    a, b = torch.randn(3, 64, 32).bfloat16(), torch.randn(32, 48).bfloat16()
    c = torch.randn(6, 64, 48).bfloat16()[::2]
    want = a.float() @ b.float() + c.float()
    compiled = torch.compile(lambda a, b, c: matmul(a, b, c=c), fullgraph=True, backend="aot_eager")
    for got in (compiled(a, b, c), matmul(a, b.clone().requires_grad_(), c=c).detach()):
        torch.testing.assert_close(got.float(), want, atol=0.1, rtol=0.02)
    big = torch.zeros(6, 64, 48, dtype=torch.bfloat16)
    torch.compile(lambda a, b, o: matmul(a, b, out=o), fullgraph=True, backend="aot_eager")(a, b, big[::2])
    torch.testing.assert_close(big[::2].float(), a.float() @ b.float(), atol=0.1, rtol=0.02)
    assert not big[1::2].any()
