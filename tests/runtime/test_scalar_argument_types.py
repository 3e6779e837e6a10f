"""A scalar argument is taken by one rule (launcher.check_scalar), at the first launch and every later one, in the
interpreter and the GPU launcher alike: a real number (Python's, numpy's, a 0-d numpy array, an object with __index__
or __float__) within the parameter's range. A complex, a string, a date or a tensor is refused by name, never read
as the number its conversion gives (the real part of a complex, the number a string spells)."""
import decimal
import fractions

import numpy as np
import pytest
from test_launch_args import F32, CudaArray, StubLauncher

import skc
from skc import ir
from skc.runtime.signature import POINTER, SCALAR, LaunchParam


def kernel_of(scalar):
    @skc.kernel(block=1)
    def add(x: skc.Ptr[skc.f32], n: scalar):
        x[0] = x[0] + skc.f32(n)
    return add


REFUSED = [np.complex64(1 + 2j), np.complex128(3 - 1j), np.datetime64(3, "s"), np.timedelta64(3, "s"),
           np.str_("2.5"), "2.5", None, object()]


@pytest.mark.parametrize("scalar", [skc.i32, skc.u16, skc.f32, skc.f16, skc.bf16])
@pytest.mark.parametrize("value", REFUSED, ids=repr)
def test_the_interpreter_refuses_what_is_no_real_number_after_a_good_launch(scalar, value):
    add, x = kernel_of(scalar), np.zeros(1, np.float32)
    add.interpret[1, 1](x, 1)
    with pytest.raises(skc.LaunchError, match="argument 'n' must be"):
        add.interpret[1, 1](x, value)
    assert x[0] == 1.0


@pytest.mark.parametrize("name", ["i32", "u16", "i64", "f32", "f64", "f16", "bf16"])
@pytest.mark.parametrize("value", REFUSED, ids=repr)
def test_the_gpu_launcher_refuses_what_is_no_real_number(name, value):
    stub = StubLauncher([LaunchParam("x", POINTER, F32), LaunchParam("n", SCALAR, ir.ScalarType(name))])
    stub.launch((CudaArray("<f4"), 1), (1, 1, 1), 0)
    with pytest.raises(skc.LaunchError, match="argument 'n' must be"):
        stub.launch((CudaArray("<f4"), value), (1, 1, 1), 0)
    assert len(stub.launched) == 1


def test_a_tensor_is_no_scalar_argument_in_the_gpu_launcher_either():
    torch = pytest.importorskip("torch")
    for name in ("i32", "f32", "f16"):
        stub = StubLauncher([LaunchParam("x", POINTER, F32), LaunchParam("n", SCALAR, ir.ScalarType(name))])
        for value in (torch.tensor(3), torch.tensor(2.5), torch.tensor(True)):
            with pytest.raises(skc.LaunchError, match=r"argument 'n' must be a number .*found Tensor.*\.item\(\)"):
                stub.launch((CudaArray("<f4"), value), (1, 1, 1), 0)
        assert stub.launched == []


@pytest.mark.parametrize("name,stored", [("i32", 1), ("u8", 1), ("i64", 1), ("f32", 1.0), ("f16", 0x3C00)])
def test_numpys_bools_and_0d_arrays_pass_the_gpu_launcher_as_the_interpreter_takes_them(name, stored):
    stub = StubLauncher([LaunchParam("x", POINTER, F32), LaunchParam("n", SCALAR, ir.ScalarType(name))])
    for value in (np.True_, np.array(1), np.array(np.uint8(1))):
        stub.launch((CudaArray("<f4"), value), (1, 1, 1), 0)
        assert stub.launched[-1][0][1] == stored


@pytest.mark.parametrize("scalar", [skc.i32, skc.f32, skc.f16])
def test_a_0d_array_is_taken_at_the_first_launch_as_at_later_ones(scalar):
    add, x = kernel_of(scalar), np.zeros(1, np.float32)
    add.interpret[1, 1](x, np.array(4))
    add.interpret[1, 1](x, np.array(3))
    assert x[0] == 7.0


def test_fractions_and_decimals_pass_float_parameters_and_are_refused_by_integer_ones():
    """A Fraction or a Decimal is a number: a float parameter takes its value (the first launch took it, a later one
    in the interpreter refused it); an integer parameter refuses it as it refuses a float."""
    for scalar in (skc.f32, skc.f16):
        add, x = kernel_of(scalar), np.zeros(1, np.float32)
        add.interpret[1, 1](x, fractions.Fraction(1, 2))
        add.interpret[1, 1](x, decimal.Decimal("0.25"))
        assert x[0] == 0.75
    add, x = kernel_of(skc.i32), np.zeros(1, np.float32)
    with pytest.raises(skc.LaunchError, match=r"'n' must be an integer \(i32\), found Fraction 4; pass int"):
        add.interpret[1, 1](x, fractions.Fraction(4, 1))
    stub = StubLauncher([LaunchParam("x", POINTER, F32), LaunchParam("n", SCALAR, ir.ScalarType("f16"))])
    stub.launch((CudaArray("<f4"), fractions.Fraction(1, 2)), (1, 1, 1), 0)
    assert stub.launched[-1][0][1] == 0x3800


def ml_dtypes_scalars():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    return [ml_dtypes.bfloat16(1.5), ml_dtypes.float8_e4m3fn(1.5), ml_dtypes.float8_e5m2(1.5),
            np.array(ml_dtypes.bfloat16(1.5))]


@pytest.mark.parametrize("scalar", [skc.f32, skc.bf16, skc.f16, None])
def test_ml_dtypes_floats_are_numbers_at_every_launch(scalar):
    """ml_dtypes' bfloat16 and float8 scalars (dtype kind 'V', or 'f' without being np.floating) are floats: a
    first launch took them (an unannotated parameter specializes to bf16 on one) and later ones refused them
    ("must be a number (bf16), found bfloat16")."""
    if scalar is None:
        @skc.kernel(block=1)
        def add(x: skc.Ptr[skc.f32], n):
            x[0] = x[0] + skc.f32(n)
    else:
        add = kernel_of(scalar)
    for value in ml_dtypes_scalars():
        if scalar is None and isinstance(value, np.ndarray):
            continue   # (an array for an unannotated parameter is a pointer's)
        x = np.zeros(1, np.float32)
        add.interpret[1, 1](x, value)
        add.interpret[1, 1](x, value)
        assert x[0] == 3.0
    stub = StubLauncher([LaunchParam("x", POINTER, F32), LaunchParam("n", SCALAR, ir.ScalarType("f16")),
                         LaunchParam("m", SCALAR, F32)])
    for value in ml_dtypes_scalars():
        stub.launch((CudaArray("<f4"), value, value), (1, 1, 1), 0)
        assert stub.launched[-1][0][1:] == [0x3E00, 1.5]


@pytest.mark.parametrize("scalar", [skc.i32, skc.u64])
def test_ml_dtypes_floats_are_refused_by_integer_parameters_as_floats_are(scalar):
    """float8_e5m2(1.5) (numpy kind 'f' but no np.floating) was truncated to 1 for an integer parameter."""
    add, x = kernel_of(scalar), np.zeros(1, np.float32)
    add.interpret[1, 1](x, 1)
    for value in ml_dtypes_scalars():
        with pytest.raises(skc.LaunchError, match=r"'n' must be an integer \(.*\), found \w+ 1.5; pass int"):
            add.interpret[1, 1](x, value)
    assert x[0] == 1.0


def test_numpys_bool_passes_a_u64_parameter():
    """np.True_ compared with 2**64 - 1 raised numpy's OverflowError ('Python int too large to convert to C long')."""
    add, x = kernel_of(skc.u64), np.zeros(1, np.float32)
    add.interpret[1, 1](x, np.True_)
    assert x[0] == 1.0
    stub = StubLauncher([LaunchParam("x", POINTER, F32), LaunchParam("n", SCALAR, ir.ScalarType("u64"))])
    stub.launch((CudaArray("<f4"), np.True_), (1, 1, 1), 0)
    assert stub.launched[-1][0][1] == 1


@pytest.mark.parametrize("scalar", [skc.f32, skc.f16, skc.f64])
def test_an_int_past_a_floats_range_is_named_at_every_launch(scalar):
    """An int no float holds raised the OverflowError of float() from the interpreter (at the first launch too,
    since 7fa0af6) and 'bad argument: int too large to convert to float' from the GPU launcher."""
    name = {skc.f32: "f32", skc.f16: "f16", skc.f64: "f64"}[scalar]
    message = rf"argument 'n' is an int of 1101 bits, past the range of a float \({name}\)"
    add, x = kernel_of(scalar), np.zeros(1, np.float32)
    for _ in range(2):
        with pytest.raises(skc.LaunchError, match=message):
            add.interpret[1, 1](x, 2 ** 1100)
    add.interpret[1, 1](x, 2 ** 10)
    assert x[0] == 2.0 ** 10
    stub = StubLauncher([LaunchParam("x", POINTER, F32), LaunchParam("n", SCALAR, ir.ScalarType(name))])
    with pytest.raises(skc.LaunchError, match=message):
        stub.launch((CudaArray("<f4"), 2 ** 1100), (1, 1, 1), 0)
    assert stub.launched == []
