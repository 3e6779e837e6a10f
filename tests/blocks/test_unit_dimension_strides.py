"""A dimension of one element addresses nothing, whatever its stride: tensor maps take it as a dense array's (was:
conv2d of x.mean((2, 3), keepdim=True), an (N, C, 1, 1) tensor torch calls channels_last-contiguous with strides
(C, 1, 1, 1), refused with "TMA needs every stride to be a multiple of 16 bytes ... make the channels a multiple of
8" for C = 8, while the op's fake implementation took it; the same for attention's size-1 batch or heads)."""
import numpy as np
import pytest

import skc
from skc.blocks import attention, conv2d

torch = pytest.importorskip("torch")
F = pytest.importorskip("torch.nn.functional")


def randn(*shape, seed=0, scale=1.0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=generator) * scale).bfloat16()


def test_a_tensor_map_takes_any_stride_of_a_dimension_of_one():
    x = torch.zeros(2, 8, 1, 1, dtype=torch.bfloat16).permute(0, 2, 3, 1)   # strides (8, 1, 1, 1)
    tensor_map = skc.TensorMap(x, (1, 1, 1, 8), 0)
    assert tensor_map.strides == (8, 8, 8, 1)
    odd = torch.as_strided(torch.zeros(64, dtype=torch.bfloat16), (1, 8), (3, 1))
    assert skc.TensorMap(odd, (1, 8), 0).strides == (8, 1)


def test_conv2d_of_a_pooled_input(hopper_interpreter):
    x = randn(2, 8, 4, 4).to(memory_format=torch.channels_last).mean((2, 3), keepdim=True)
    assert x.stride() == (8, 1, 1, 1) and x.is_contiguous(memory_format=torch.channels_last)
    w = randn(8, 8, 3, 3, seed=1, scale=0.25).to(memory_format=torch.channels_last)
    got = conv2d(x, w, padding=1)
    torch.testing.assert_close(got.float(), F.conv2d(x.float(), w.float(), padding=1), rtol=1e-2, atol=2e-2)


def test_attention_of_one_head_at_an_odd_stride(hopper_interpreter):
    x = torch.as_strided(randn(64 * 64 + 8), (1, 1, 64, 64), (3, 5, 64, 1))
    expected = F.scaled_dot_product_attention(x.float(), x.float(), x.float())
    torch.testing.assert_close(attention(x, x, x).float(), expected, rtol=2e-2, atol=2e-2)


def test_a_tensor_map_takes_any_stride_of_an_innermost_dimension_of_one():
    """A column viewed as K x 1 (torch's view and numpy's reshape of W[:, 0] give strides (N, N)): TMA implies the
    innermost stride, and its only index is 0 (was: 'the tensor's innermost dimension must be contiguous')."""
    column = torch.zeros(8, 16, dtype=torch.bfloat16)[:, 0].view(8, 1)
    assert column.stride() == (16, 16)
    assert skc.TensorMap(column, (8, 8), 0).strides == (16, 1)
    assert skc.TensorMap(np.zeros((8, 16), np.float16)[:, 0].reshape(8, 1), (8, 8), 0).strides == (16, 1)
