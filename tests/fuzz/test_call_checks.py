"""call_checks.run on the CPU with stand-ins for skc's calls: a right call passes, and each way of being wrong that
the random calls must catch fails (a stale plan, an output written elsewhere, a value left unwritten, a lost
share of K)."""
import pytest

import call_checks

torch = pytest.importorskip("torch")


def matmul_setup(call, rows=64, cols=48, depth=256):
    generator = torch.Generator().manual_seed(0)
    makers = [lambda: torch.randn(rows, depth, generator=generator).to(torch.bfloat16),
              lambda: torch.randn(depth, cols, generator=generator).to(torch.bfloat16)]
    a, b = (make() for make in makers)

    def right(out):
        result = (a.float() @ b.float()).to(torch.bfloat16)
        if out is None:
            return result
        out.copy_(result)
        return out

    return call_checks.Setup(list(zip((a, b), makers)), lambda: a.float() @ b.float(),
                             lambda out: call(right, out, a, b), (rows, cols), torch.bfloat16, device="cpu")


def limits(rounding):
    return 2.5 * rounding[0] + 2e-4, 2.5 * rounding[1] + 8e-4


@pytest.mark.parametrize("out_given", [False, True])
def test_a_right_call_passes(out_given):
    result = call_checks.run(torch, matmul_setup(lambda right, out, a, b: right(out)), 3, out_given, limits)
    assert result.right, result.describe()
    assert result.relative < 5e-3 and result.relative_limit < 5e-3   # bf16's own rounding, with room


def test_a_plan_that_keeps_its_first_result_fails():
    kept = {}

    def stale(right, out, a, b):
        kept.setdefault("first", right(None))
        if out is None:
            return kept["first"].clone()
        out.copy_(kept["first"])
        return out

    assert call_checks.run(torch, matmul_setup(stale), 1, True, limits).right
    assert not call_checks.run(torch, matmul_setup(stale), 3, True, limits).right


def test_an_output_written_elsewhere_fails():
    with pytest.raises(AssertionError, match="another tensor"):
        call_checks.run(torch, matmul_setup(lambda right, out, a, b: right(None)), 1, True, limits)


def test_an_unwritten_value_and_a_lost_share_of_k_fail():
    def unwritten(right, out, a, b):   # every row but the fourth written: it keeps the poison
        result = right(None)
        out[:3], out[4:] = result[:3], result[4:]
        return out

    def lost_share(right, out, a, b):   # the product over K's first 248 of 256 columns only
        out.copy_((a[:, :248].float() @ b[:248].float()).to(torch.bfloat16))
        return out

    missing = call_checks.run(torch, matmul_setup(unwritten), 1, True, limits)
    assert not missing.right and missing.nans == 48
    lost = call_checks.run(torch, matmul_setup(lost_share), 1, True, limits)
    assert not lost.right and lost.relative > lost.relative_limit
