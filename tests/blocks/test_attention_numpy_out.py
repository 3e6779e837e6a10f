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


def test_nan_inputs_stay_nan_in_bf16():
    """A float32 NaN whose low mantissa bits are all set rounds, bit for bit, into the exponent (0x7FFFFFFF + 0x7FFF
    carries to 0x8000: -0.0); numpy inputs to attention keep it a NaN, as skc.runtime.dtypes does."""
    from skc.blocks.attention_host import _bf16_bits

    values = np.array([0x7FFFFFFF, 0xFFFFFFFF, 0x7FC00000, 0x3F800000], np.uint32).view(np.float32)
    bits = _bf16_bits(values.reshape(1, 1, 1, 4))
    assert bits.ravel().tolist() == [0x7FC0, 0x7FC0, 0x7FC0, 0x3F80]


def test_a_read_only_out_is_named_before_the_kernel_runs():
    """A read-only numpy out ran the whole kernel, then raised numpy's bare "assignment destination is read-only"."""
    import skc

    q = np.ones((1, 1, 16, 64), np.float32)
    out = np.zeros_like(q)
    out.flags.writeable = False
    with pytest.raises(skc.LaunchError, match="out is a read-only array"):
        skc.blocks.attention(q, q, q, out=out)
