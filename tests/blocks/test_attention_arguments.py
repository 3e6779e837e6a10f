"""attention's scalar arguments and numpy dtypes: what it cannot take is a LaunchError that names it (a string
for `causal` was taken as True; a complex array went through a float32 conversion that drops the imaginary part)."""
import numpy as np
import pytest

import skc
from skc.blocks.attention_host import attention


@pytest.mark.parametrize("causal", ["no", 2, None, 0.5])
def test_causal_must_be_a_bool(causal):
    q = np.zeros((1, 1, 64, 64), np.float32)
    with pytest.raises(skc.LaunchError, match="causal is True or False"):
        attention(q, q, q, causal=causal)


def test_complex_arrays_are_refused():
    q = np.zeros((1, 1, 64, 64), np.complex64)
    with pytest.raises(skc.LaunchError, match="real values"):
        attention(q, q, q)


def test_zero_and_one_and_numpy_bools_are_taken(hopper_interpreter):
    rng = np.random.default_rng(5)
    q, k, v = (rng.standard_normal((1, 1, 64, 64)).astype(np.float32) for _ in range(3))
    causal = attention(q, k, v, causal=True)
    np.testing.assert_array_equal(attention(q, k, v, causal=1), causal)
    np.testing.assert_array_equal(attention(q, k, v, causal=np.bool_(True)), causal)
    np.testing.assert_array_equal(attention(q, k, v, causal=0), attention(q, k, v, causal=False))
