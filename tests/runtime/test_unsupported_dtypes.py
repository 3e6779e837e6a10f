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


@pytest.mark.parametrize("name, skc_type", [("float8_e4m3fn", "f8e4m3"), ("float8_e5m2", "f8e5m2")])
def test_to_device_takes_an_ml_dtypes_fp8_array_as_its_codes(name, skc_type):
    # (docs/blocks.md makes fp8 arrays with ml_dtypes; to_device refused them, asking for uint8 bit patterns)
    ml_dtypes = pytest.importorskip("ml_dtypes")
    values = np.array([1.5, -2.0, 0.1, 448.0, 0.0, -0.0], np.float32).astype(getattr(ml_dtypes, name))
    device = skc.to_device(values, device="interpreter")
    assert device.dtype.name == skc_type
    assert np.array_equal(device.raw(), values.view(np.uint8))


def test_to_device_of_float_values_as_fp8_names_the_conversion():
    with pytest.raises(skc.LaunchError, match=r"ml_dtypes\.float8_e5m2"):
        skc.to_device(np.ones(3, np.float32), dtype=skc.f8e5m2, device="interpreter")
