"""An array whose dtype skc has no type for (complex, strings, objects, dates, long double) is a LaunchError at
launch and in skc's array helpers (was: TypeError from skc.runtime.dtypes), and still a TypeError for callers that
catch one."""
import numpy as np
import pytest

import skc


@skc.kernel(block=64)
def declared(x: skc.Ptr[skc.f32], n: skc.i32):
    i = skc.thread_id(0)
    if i < n:
        x[i] = 1.0


@skc.kernel
def specialized(x, n):
    i = skc.thread_id(0)
    if i < n:
        x[i] = x[i] * 2


@pytest.mark.parametrize("array", [np.ones(3, np.complex64), np.array(["a", "b", "c"]), np.zeros(3, object),
                                   np.zeros(3, "datetime64[s]")])
def test_launch_names_an_unsupported_dtype(array):
    for kernel in (declared, specialized):
        with pytest.raises(skc.LaunchError, match="has no skc equivalent") as error:
            kernel[1, 64](array, 3)
        assert isinstance(error.value, TypeError)


def test_numpy_scalar_of_an_unsupported_dtype():
    with pytest.raises(skc.LaunchError, match="numpy dtype complex64 has no skc equivalent"):
        specialized[1, 64](np.ones(3, np.float32), np.complex64(3))


def test_torch_complex_tensor():
    torch = pytest.importorskip("torch")
    with pytest.raises(skc.LaunchError, match="torch dtype torch.complex64 has no skc equivalent"):
        declared[1, 64](torch.ones(3, dtype=torch.complex64), 3)
    with pytest.raises(skc.LaunchError, match="torch dtype torch.complex64 has no skc equivalent"):
        specialized[1, 64](torch.ones(3, dtype=torch.complex64), 3)


def test_to_device_of_an_unsupported_dtype():
    with pytest.raises(skc.LaunchError, match="has no skc equivalent"):
        skc.to_device(np.ones(3, np.complex128))
