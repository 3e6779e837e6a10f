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


@pytest.mark.parametrize("target", ["sm_80", "gfx942"])
def test_a_target_without_tma_and_wgmma_is_named(monkeypatch, target):
    """On an sm_80 or AMD device (or the interpreter modelling one) attention compiled, then failed with a
    CompileError inside skc's pipeline ("mbarrier_init needs a target with mbarrier"), pointing at skc's source."""
    from skc.runtime import devices

    monkeypatch.setenv("SKC_INTERPRETER_TARGET", target)
    monkeypatch.setattr(devices, "_selected", [devices.Device("interpreter")])
    devices._target_of.cache_clear()
    try:
        q = np.zeros((1, 1, 64, 64), np.float32)
        with pytest.raises(skc.LaunchError, match=f"attention loads with TMA and multiplies with wgmma .*; {target} "
                                                  "has neither"):
            attention(q, q, q)
    finally:
        devices._target_of.cache_clear()


def test_bf16_bits_take_any_strides_floats_take(hopper_interpreter):
    """uint16 arrays (bf16 bits) were read in place through TMA's rules on strides: a view reversed along the
    sequence or sliced from wider rows was refused ("argument 'q' is not contiguous", "a multiple of 16 bytes"),
    where the same values as floats, copied when rounded, ran."""
    from skc.runtime.dtypes import float32_to_bf16_bits

    rng = np.random.default_rng(7)
    q, k, v = (rng.standard_normal((1, 2, 40, 64)).astype(np.float32) for _ in range(3))
    expected = attention(q, k, v, causal=True)
    reversed_q = np.ascontiguousarray(float32_to_bf16_bits(q)[:, :, ::-1])[:, :, ::-1]
    wide = np.zeros((1, 2, 40, 65), np.uint16)
    wide[..., :64] = float32_to_bf16_bits(k)
    v_bits = float32_to_bf16_bits(v)
    np.testing.assert_array_equal(attention(reversed_q, wide[..., :64], v_bits, causal=True), expected)


def test_arrays_of_another_framework_are_named_with_the_torch_view_to_pass():
    """attention's host path reads torch's methods (new_empty, transpose, data_ptr): an array exporting only
    __cuda_array_interface__ raised AttributeError 'no attribute new_empty' from inside skc."""
    from skc.runtime.fake_cuda import FakeTensor, installed

    class Bare:
        def __init__(self, shape):
            self._memory, self.shape, self.dtype = FakeTensor(shape), tuple(shape), "float16"

        @property
        def __cuda_array_interface__(self):
            return self._memory.__cuda_array_interface__

    q = Bare((1, 2, 128, 64))
    with installed(), pytest.raises(skc.LaunchError, match=r"attention takes torch tensors .*; q is a Bare: .*"
                                                          r"torch.as_tensor\(q, device='cuda'\)"):
        skc.blocks.attention(q, q, q)
