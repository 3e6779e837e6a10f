"""conv2d names an empty problem (was: ZeroDivisionError in filling_config for N = 0 or K = 0) and an unknown
activation at the call (was: a CompileError at a line inside skc/blocks/epilogue.py)."""
import numpy as np
import pytest

import skc
from skc.blocks import conv2d

torch = pytest.importorskip("torch")
CL = torch.channels_last


def ints(*shape):
    return torch.randint(-2, 3, shape).to(torch.bfloat16).to(memory_format=CL)


@pytest.mark.parametrize("x_shape, w_shape", [((0, 16, 6, 5), (16, 16, 3, 3)), ((1, 16, 6, 5), (0, 16, 3, 3)),
                                              ((1, 0, 6, 5), (16, 0, 3, 3)), ((1, 16, 6, 5), (16, 16, 0, 3))])
def test_conv2d_names_an_empty_problem(hopper_interpreter, x_shape, w_shape):
    with pytest.raises(skc.LaunchError, match="must each be at least 1"):
        conv2d(ints(*x_shape), ints(*w_shape))


def test_conv2d_names_an_unknown_activation(hopper_interpreter):
    with pytest.raises(skc.LaunchError, match="conv2d: unknown activation 'tanh'"):
        conv2d(ints(1, 16, 6, 5), ints(16, 16, 3, 3), activation="tanh")


@pytest.mark.parametrize("geometry", [dict(stride=[2, 2]), dict(padding=(1, 1)), dict(dilation=1)])
def test_conv2d_names_unhashable_or_float_geometry(hopper_interpreter, geometry):
    """A numpy array as stride, padding or dilation raised a bare TypeError from the plan cache's lookup; a float
    stride was refused on a first call but taken after an equal int's (2.0 == 2 as a key)."""
    import numpy as np

    x, w = ints(1, 16, 6, 7), ints(16, 16, 3, 3)
    (name, value), = geometry.items()
    with pytest.raises(skc.LaunchError, match=f"conv2d's {name} must be an int or an"):
        conv2d(x, w, **{name: np.array(value)})
    conv2d(x, w, **{name: value})   # the ints first: the float below must not find their plan
    floats = [float(v) for v in value] if isinstance(value, (list, tuple)) else float(value)
    with pytest.raises(skc.LaunchError, match=f"conv2d's {name} must be an int or an"):
        conv2d(x, w, **{name: floats})


def test_filters_no_multiple_of_8_are_a_conv2d_error_naming_k(hopper_interpreter):
    """(was TMA's message about strides, naming neither conv2d nor K)"""
    torch = pytest.importorskip("torch")
    x = torch.randint(-2, 3, (1, 8, 6, 6)).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    w = torch.randint(-2, 3, (4, 8, 3, 3)).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    with pytest.raises(skc.LaunchError, match=r"K \(w's filters, w.shape\[0\]\) must be a multiple of 8, found 4"):
        skc.blocks.conv2d(x, w)


def test_a_read_only_out_is_refused_before_the_launch(hopper_interpreter):
    x, w = np.ones((1, 6, 6, 8), np.float16), np.ones((8, 3, 3, 8), np.float16)
    out = np.zeros((1, 4, 4, 8), np.float16)
    out.setflags(write=False)
    with pytest.raises(skc.LaunchError, match="conv2d: out is a read-only array"):
        skc.blocks.conv2d(x, w, out=out)
