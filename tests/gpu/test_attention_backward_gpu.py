"""torch.ops.skc.attention's backward on the GPU (skc/torch_attention_backward.py): its memory stays a few blocks of
scores at a length whose float32 scores are 4 GiB (the reference's vjp held several such tensors), and its gradients
are those of torch's attention in float64, keys split in blocks or not."""
import pytest

pytestmark = pytest.mark.gpu
torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402
import skc.torch  # noqa: E402,F401  (registers torch.ops.skc.*)


def randn(*shape, seed=0, dtype=torch.bfloat16):
    return torch.randn(*shape, device="cuda", generator=torch.Generator("cuda").manual_seed(seed)).to(dtype)


def relative(got, want):
    return ((got.double() - want.double()).abs().max() / want.double().abs().max()).item()


@pytest.mark.parametrize("causal", [False, True])
def test_the_backward_of_a_long_sequence_holds_a_few_blocks(causal):
    q, k, v, grad_out = (randn(1, 16, 8192, 128, seed=s) for s in range(4))
    inputs = [t.clone().requires_grad_() for t in (q, k, v)]
    out = torch.ops.skc.attention(*inputs, causal=causal)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    mine = torch.autograd.grad(out, inputs, grad_out)
    torch.cuda.synchronize()
    assert torch.cuda.max_memory_allocated() - before < 2 ** 30   # (one float32 score tensor: 4 GiB)
    flash_inputs = [t.clone().requires_grad_() for t in (q, k, v)]
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        flash = torch.autograd.grad(F.scaled_dot_product_attention(*flash_inputs, is_causal=causal), flash_inputs,
                                    grad_out)
    for g, w in zip(mine, flash):
        assert g.dtype == torch.bfloat16 and relative(g, w) < 0.05


@pytest.mark.parametrize("block_mib", [None, 0.125])
def test_gradients_are_torchs_in_float64(block_mib, monkeypatch):
    """Grouped heads, bshd, a causal mask with fewer queries than keys, a gradient on lse; at 0.125 MiB a block, the
    keys of the later query rows split in two blocks."""
    q, grad_out = randn(1, 1024, 8, 128, seed=0), randn(1, 1024, 8, 128, seed=1)
    k, v = randn(1, 1536, 2, 128, seed=2), randn(1, 1536, 2, 128, seed=3)
    grad_lse = randn(1, 8, 1024, seed=4, dtype=torch.float32)
    if block_mib is not None:
        monkeypatch.setenv("SKC_ATTENTION_BACKWARD_MIB", str(block_mib))
    inputs = [t.clone().requires_grad_() for t in (q, k, v)]
    out, lse = torch.ops.skc.attention_with_lse(*inputs, causal=True, layout="bshd")
    mine = torch.autograd.grad((out, lse), inputs, (grad_out, grad_lse))
    wide = [t.double().requires_grad_() for t in (q, k, v)]
    qb, kb, vb = (t.transpose(1, 2) for t in wide)
    kb, vb = (t.repeat_interleave(4, 1) for t in (kb, vb))
    scores = (qb @ kb.transpose(-1, -2) / 128 ** 0.5).masked_fill(
        torch.ones(1024, 1536, dtype=torch.bool, device="cuda").triu(1), -torch.inf)
    want_out = (torch.softmax(scores, -1) @ vb).transpose(1, 2)
    want = torch.autograd.grad((want_out, torch.logsumexp(scores, -1)), wide, (grad_out.double(), grad_lse.double()))
    for g, w in zip(mine, want):
        assert relative(g, w) <= 2 ** -8 + 1e-3   # (bf16's rounding of the float32 gradient)
