"""torch.ops.skc.conv2d checks stride, padding and dilation before it computes the output's size, eagerly and in
its fake implementation (was: ZeroDivisionError for a stride of 0, "no output pixels" for a negative stride)."""
import pytest

torch = pytest.importorskip("torch")
import skc.torch  # noqa: E402,F401


@pytest.mark.parametrize("options, message", [
    (dict(stride=(0, 1)), r"stride must be .* at least 1, found \(0, 1\)"),
    (dict(stride=(-1, 1)), r"stride must be .* at least 1, found \(-1, 1\)"),
    (dict(dilation=(1, 0)), r"dilation must be .* at least 1, found \(1, 0\)"),
    (dict(padding=(-1, 0)), r"padding must be .* at least 0, found \(-1, 0\)")])
def test_conv2d_op_checks_its_geometry(options, message):
    x = torch.zeros(1, 16, 6, 5, dtype=torch.bfloat16).to(memory_format=torch.channels_last)
    w = torch.zeros(16, 16, 3, 3, dtype=torch.bfloat16).to(memory_format=torch.channels_last)
    with pytest.raises(RuntimeError, match=message):
        torch.ops.skc.conv2d(x, w, **options)
    with pytest.raises(RuntimeError, match=message), torch._subclasses.fake_tensor.FakeTensorMode() as mode:
        torch.ops.skc.conv2d(mode.from_tensor(x), mode.from_tensor(w), **options)


def test_conv2d_op_names_an_output_past_2_to_the_31_pixels():
    """(the fake too: the op refuses it at launch, where M is an i32 of the kernel)"""
    x = torch.empty(2, 16, 32768, 32768, dtype=torch.bfloat16, device="meta").to(memory_format=torch.channels_last)
    w = torch.empty(16, 16, 1, 1, dtype=torch.bfloat16, device="meta").to(memory_format=torch.channels_last)
    with pytest.raises(RuntimeError, match=r"output has 2 x 32768 x 32768 = 2147483648 pixels"), \
            torch._subclasses.fake_tensor.FakeTensorMode() as mode:
        torch.ops.skc.conv2d(mode.from_tensor(x), mode.from_tensor(w))
