"""DeviceArray.reshape: a view of the same memory (no copy) with another shape, as numpy gives for a contiguous
array; the view never frees the memory and keeps its base alive."""
import gc

import numpy as np
import pytest

import skc


def test_a_reshaped_array_shares_the_memory():
    x = skc.to_device(np.arange(24, dtype=np.float32), device="interpreter")
    y = x.reshape(4, 6)
    assert y.shape == (4, 6) and y.dtype is x.dtype and y.ptr == x.ptr
    y.host[1, 2] = -1.0                       # written through the view ...
    assert x.numpy()[8] == -1.0               # ... seen in the base
    assert x.reshape((2, -1, 3)).shape == (2, 4, 3)


def test_a_view_keeps_its_base_alive_and_never_frees():
    y = skc.to_device(np.arange(6, dtype=np.int32), device="interpreter").reshape(2, 3)
    gc.collect()
    np.testing.assert_array_equal(y.numpy(), np.arange(6).reshape(2, 3))
    assert y._free is None


@pytest.mark.parametrize("shape", [(5, 5), (7, -1), (-2, -12)])
def test_a_shape_of_another_size_is_an_error(shape):
    x = skc.to_device(np.zeros(24, np.float32), device="interpreter")
    with pytest.raises(skc.LaunchError, match="cannot view a DeviceArray of shape"):
        x.reshape(shape)
