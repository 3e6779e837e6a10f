"""conv2d checks a given out: its shape, its type and its layout (was: an fp16 out of a bf16 convolution, or an out
of the right size but another shape, written with wrong values and no error; a wrong size a torch RuntimeError)."""
import numpy as np
import pytest

import skc
from skc.blocks import conv2d

torch = pytest.importorskip("torch")
CL = torch.channels_last


def ints(*shape, dtype=torch.bfloat16):
    return torch.randint(-2, 3, shape).to(dtype).to(memory_format=CL)


@pytest.mark.parametrize("shape, dtype, message", [
    ((1, 16, 6, 5), torch.bfloat16, r"out has shape \(1, 16, 6, 5\); the convolution's output is \(1, 16, 4, 3\)"),
    ((1, 16, 3, 4), torch.bfloat16, r"out has shape \(1, 16, 3, 4\)"),
    ((1, 16, 4, 3), torch.float16, "out is torch.float16; conv2d writes x's type"),
    ((1, 16, 4, 3), torch.float32, "out is torch.float32; conv2d writes x's type")])
def test_conv2d_refuses_an_out_unlike_its_output(hopper_interpreter, shape, dtype, message):
    x, w = ints(1, 16, 6, 5), ints(16, 16, 3, 3)
    with pytest.raises(skc.LaunchError, match=message):
        conv2d(x, w, out=torch.empty(shape, dtype=dtype).to(memory_format=CL))
    with pytest.raises(skc.LaunchError, match=message):   # the plan made by the first call does not skip the check
        conv2d(x, w, out=torch.empty(shape, dtype=dtype).to(memory_format=CL))


def test_conv2d_refuses_a_strided_numpy_out(hopper_interpreter):
    x = np.ones((1, 6, 5, 16), np.float16)
    w = np.ones((16, 3, 3, 16), np.float16)
    with pytest.raises(skc.LaunchError, match="out must be contiguous NHWC memory"):
        conv2d(x, w, out=np.zeros((1, 4, 3, 32), np.float16)[..., ::2])


def test_conv2d_writes_a_good_out(hopper_interpreter):
    x, w = ints(1, 16, 6, 5), ints(16, 16, 3, 3)
    out = torch.empty(1, 16, 4, 3, dtype=torch.bfloat16).to(memory_format=CL)
    assert conv2d(x, w, out=out) is out
    assert torch.equal(out.float(), torch.nn.functional.conv2d(x.float(), w.float()))


def test_conv2d_takes_an_out_of_another_array_kind_of_its_type(hopper_interpreter):
    """numpy's float16 and an skc array's f16 are one type (was: "out is f16; conv2d writes x's type (f16)")."""
    rng = np.random.default_rng(3)
    x, w = rng.integers(-2, 3, (1, 5, 4, 16)).astype(np.float16), rng.integers(-2, 3, (16, 3, 3, 16)).astype(np.float16)
    expected = torch.nn.functional.conv2d(torch.from_numpy(x).permute(0, 3, 1, 2).float(),
                                          torch.from_numpy(w).permute(0, 3, 1, 2).float(), padding=1)
    out = skc.empty((1, 5, 4, 16), skc.f16)
    assert conv2d(x, w, padding=1, out=out) is out
    assert torch.equal(torch.from_numpy(out.numpy()).float().permute(0, 3, 1, 2), expected)
    host = np.empty((1, 5, 4, 16), np.float16)
    conv2d(skc.to_device(x), skc.to_device(w), padding=1, out=host)
    assert torch.equal(torch.from_numpy(host).float().permute(0, 3, 1, 2), expected)


def test_conv2d_names_an_out_of_the_other_layout(hopper_interpreter):
    """A torch out is NCHW-shaped, any other NHWC: one for the other is named as such (was: "out is float16; conv2d
    writes x's type (f16)"); a torch out that is not channels_last is not told to take a copy (out.to(...))."""
    x, w = ints(1, 16, 6, 5, dtype=torch.float16), ints(16, 16, 3, 3, dtype=torch.float16)
    with pytest.raises(skc.LaunchError, match="out is a ndarray and x a Tensor: pass an out of x's kind"):
        conv2d(x, w, out=np.empty((1, 16, 4, 3), np.float16))
    x_nhwc, w_krsc = (t.permute(0, 2, 3, 1).contiguous().numpy() for t in (x, w))
    with pytest.raises(skc.LaunchError, match="out is a Tensor and x a ndarray: pass an out of x's kind"):
        conv2d(x_nhwc, w_krsc, out=torch.empty(1, 4, 3, 16, dtype=torch.float16))
    with pytest.raises(skc.LaunchError, match="out must be contiguous NHWC memory .*: pass a fresh out, or none"):
        conv2d(x, w, out=torch.empty(1, 16, 4, 3, dtype=torch.float16))
