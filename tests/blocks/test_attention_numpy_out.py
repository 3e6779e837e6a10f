"""attention over numpy arrays writes a given out and checks it (was: out ignored, neither written nor checked,
and a new array returned)."""
import numpy as np
import pytest

import skc
from skc.blocks import attention

RNG = np.random.default_rng(5)


@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
def test_attention_writes_a_numpy_out(hopper_interpreter, layout):
    shape = (1, 2, 64, 64) if layout == "bhsd" else (1, 64, 2, 64)
    q, k, v = (RNG.standard_normal(shape, dtype=np.float32) for _ in range(3))
    expected = attention(q, k, v, layout=layout)
    out = np.zeros(shape, np.float32)
    assert attention(q, k, v, out=out, layout=layout) is out
    assert np.array_equal(out, expected)


def test_attention_refuses_a_numpy_out_of_another_shape(hopper_interpreter):
    q = np.zeros((1, 1, 64, 64), np.float32)
    with pytest.raises(skc.LaunchError, match=r"out must be a float array of q's shape \(1, 1, 64, 64\)"):
        attention(q, q, q, out=np.zeros((3, 3), np.float32))
