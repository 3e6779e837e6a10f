"""attention names a head dimension it does not run (was: ValueError from AttentionConfig, also through
torch.ops.skc.attention)."""
import pytest

import skc
from skc.blocks import attention

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("D", [32, 80, 96, 512])
def test_attention_names_an_unsupported_head_dim(hopper_interpreter, D):
    """Past 256 there is nothing to pad to (the message told a head dimension of 512 to pad to the next one)."""
    q = torch.zeros(1, 1, 64, D, dtype=torch.bfloat16)
    hint = "none is larger, so padding cannot reach one" if D > 256 else "pad q, k and v with zeros to the next"
    with pytest.raises(skc.LaunchError, match=f"head dimensions 64, 128 and 256, found {D}: {hint}"):
        attention(q, q, q)


def test_attention_op_names_an_unsupported_head_dim(hopper_interpreter):
    import skc.torch  # noqa: F401

    q = torch.zeros(1, 1, 64, 32, dtype=torch.bfloat16)
    with pytest.raises(skc.LaunchError, match="head dimensions 64, 128 and 256, found 32"):
        torch.ops.skc.attention(q, q, q)


def test_attention_refuses_a_config_of_another_kind(hopper_interpreter):
    q = torch.zeros(1, 1, 64, 64, dtype=torch.bfloat16)
    with pytest.raises(skc.LaunchError, match="config is an AttentionConfig, found MatmulConfig"):
        attention(q, q, q, config=skc.blocks.MatmulConfig())


@pytest.mark.parametrize("name", ["q", "k", "v", "out"])
def test_attention_names_an_operand_whose_stride_tma_cannot_take(hopper_interpreter, name):
    """Rows of 65 elements sliced to head_dim 64 (130 bytes apart): the tensor map's "dimension 2 has a stride of 130
    bytes" named no operand of the four; a dimension of one element keeps any stride, as the tensor maps take it."""
    tensors = {n: torch.zeros(1, 2, 64, 64, dtype=torch.bfloat16) for n in ("q", "k", "v", "out")}
    tensors[name] = torch.zeros(1, 2, 64, 65, dtype=torch.bfloat16)[..., :64]
    with pytest.raises(skc.LaunchError, match=rf"attention: {name} \(strides \(8320, 4160, 65, 1\)\) has a stride "
                                              "that is no multiple of 16 bytes"):
        attention(tensors["q"], tensors["k"], tensors["v"], out=tensors["out"])
    one = torch.zeros(1, 1, 64, 72, dtype=torch.bfloat16)[..., :64].as_strided((1, 1, 64, 64), (3, 5, 72, 1))
    assert attention(one, one, one).shape == (1, 1, 64, 64)


@pytest.mark.parametrize("name", ["q", "v", "out"])
def test_attention_names_an_operand_at_an_address_tma_cannot_take(hopper_interpreter, name):
    """A view one element into its buffer ran in the interpreter, where a GPU's tensor map refuses its address
    (unnamed: "TMA needs the tensor's address to be 16-byte aligned")."""
    tensors = {n: torch.zeros(1, 2, 64, 64, dtype=torch.bfloat16) for n in ("q", "k", "v", "out")}
    tensors[name] = torch.zeros(2 * 64 * 64 + 1, dtype=torch.bfloat16)[1:].view(1, 2, 64, 64)
    with pytest.raises(skc.LaunchError, match=f"attention: {name} starts at 0x[0-9a-f]+, no multiple of 16 bytes"):
        attention(tensors["q"], tensors["k"], tensors["v"], out=tensors["out"])
