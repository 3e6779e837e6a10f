"""attention over numpy arrays of ml_dtypes' bfloat16, as matmul takes them (was: refused, "takes real values ... or
bf16 bits as uint16, found bfloat16"): their values as they are, and a bfloat16 out."""
import numpy as np
import pytest

import skc
from skc.blocks import attention

ml_dtypes = pytest.importorskip("ml_dtypes")
RNG = np.random.default_rng(52)


def _reference(q, k, v, causal):
    """softmax(Q Kᵀ / sqrt(D)) V in float32 over (B, H, S, D) arrays."""
    q, k, v = (x.astype(np.float32) for x in (q, k, v))
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if causal:
        scores = np.where(np.tril(np.ones(scores.shape[-2:], bool)), scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    return (weights / weights.sum(-1, keepdims=True)) @ v


@pytest.mark.parametrize("causal", [False, True])
def test_attention_takes_bfloat16_arrays(hopper_interpreter, causal):
    shape = (1, 1, 64, 64)
    q, k, v = (RNG.standard_normal(shape, dtype=np.float32).astype(ml_dtypes.bfloat16) for _ in range(3))
    out = attention(q, k, v, causal=causal)
    assert out.dtype == ml_dtypes.bfloat16 and out.shape == shape   # (as matmul returns its operands' type)
    expected = _reference(q, k, v, causal)
    # (the kernel rounds P to bf16 for P·V and O to bf16: a few bf16 steps at most)
    np.testing.assert_allclose(out.astype(np.float32), expected, rtol=2e-2, atol=2e-2)
    # the same bits as the same values given as float32 (which are rounded to bf16 exactly so)
    as_floats = attention(*(x.astype(np.float32) for x in (q, k, v)), causal=causal)
    assert np.array_equal(out.view(np.uint16), as_floats.astype(ml_dtypes.bfloat16).view(np.uint16))


def test_attention_writes_a_bfloat16_out_in_the_bshd_layout(hopper_interpreter):
    shape = (1, 64, 1, 64)   # (B, S, H, D)
    q, k, v = (RNG.standard_normal(shape, dtype=np.float32).astype(ml_dtypes.bfloat16) for _ in range(3))
    out = np.zeros(shape, ml_dtypes.bfloat16)
    assert attention(q, k, v, out=out, layout="bshd") is out
    heads = [np.swapaxes(x, 1, 2) for x in (q, k, v)]
    np.testing.assert_allclose(out.astype(np.float32), np.swapaxes(_reference(*heads, False), 1, 2),
                               rtol=2e-2, atol=2e-2)


def test_attention_over_no_key_gives_bfloat16_zeros(hopper_interpreter):
    q = np.ones((1, 1, 16, 64), ml_dtypes.bfloat16)
    kv = np.ones((1, 1, 0, 64), ml_dtypes.bfloat16)
    out = attention(q, kv, kv)
    assert out.dtype == ml_dtypes.bfloat16 and not out.astype(np.float32).any()


def test_attention_still_refuses_other_numpy_types(hopper_interpreter):
    q = np.zeros((1, 1, 16, 64), np.float32)
    with pytest.raises(skc.LaunchError, match="takes real values .* found float8_e4m3fn"):
        attention(q.astype(ml_dtypes.float8_e4m3fn), q, q)
    with pytest.raises(skc.LaunchError, match="out must be a float array of q's shape .* of float8_e4m3fn"):
        attention(q, q, q, out=q.astype(ml_dtypes.float8_e4m3fn))
