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
