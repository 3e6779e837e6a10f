"""Every op of the tile IR has an NVPTX lowering: in the shared lowering table, in the NVPTX target's
own table, or listed here as not applicable to NVIDIA GPUs, with the reason (its lowering must then be
a clear error, not silence). The AMD counterpart is test_every_op_has_an_amdgpu_lowering."""
import pytest

from skc import ir
from skc.backends.lowering import FunctionLowering
from skc.backends.nvptx import NVPTX
from skc.target import get_target

NVIDIA = ("sm_80", "sm_90a")

# Ops that have no NVIDIA instruction: their NVPTX handler refuses them with a message that names
# what to use instead (checked below).
NOT_APPLICABLE = {
    "mfma.mma": ("AMD's matrix-core instruction (CDNA); NVIDIA kernels use wgmma or mma.sync", "AMD"),
}


def _nvptx_table(target: str) -> dict:
    return NVPTX(get_target(target)).ops


def test_the_op_registry_is_populated():
    # Guards the tests below against an empty registry (an import that stopped registering ops).
    families = {name.split(".")[0] for name in ir.OPS}
    assert {"arith", "mem", "gpu", "mbarrier", "tma", "wgmma", "scf"} <= families, sorted(families)


@pytest.mark.parametrize("target", NVIDIA)
def test_every_op_has_an_nvptx_lowering(target):
    lowered = set(FunctionLowering.TABLE) | set(_nvptx_table(target))
    missing = sorted(set(ir.OPS) - lowered)
    assert not missing, f"ops without an NVPTX lowering for {target}: {missing}"


@pytest.mark.parametrize("target", NVIDIA)
def test_lowering_tables_name_only_ops_of_the_ir(target):
    # A stale entry (an op renamed or removed from the IR) would hide a missing lowering of its new name.
    stale = sorted((set(FunctionLowering.TABLE) | set(_nvptx_table(target))) - set(ir.OPS))
    assert not stale, f"lowerings of ops the IR does not define: {stale}"


def test_not_applicable_ops_are_ops_of_the_ir():
    assert set(NOT_APPLICABLE) <= set(ir.OPS), sorted(set(NOT_APPLICABLE) - set(ir.OPS))


class _Refused(Exception):
    pass


class _RefusingLowering:
    """Stands in for a FunctionLowering: the handler of a not-applicable op must call fail()."""

    def fail(self, op, message):
        raise _Refused(message)


@pytest.mark.parametrize("name", sorted(NOT_APPLICABLE))
def test_not_applicable_ops_are_a_clear_error(name):
    handler = FunctionLowering.TABLE.get(name) or _nvptx_table("sm_90a")[name]
    op = object.__new__(ir.OPS[name])
    with pytest.raises(_Refused, match=NOT_APPLICABLE[name][1]):
        handler(_RefusingLowering(), op)
