"""conv2d names an empty problem (was: ZeroDivisionError in filling_config for N = 0 or K = 0) and an unknown
activation at the call (was: a CompileError at a line inside skc/blocks/epilogue.py)."""
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
