"""AMD CDNA builtins (gfx90a, gfx942): the wavefront's matrix-core multiply (MFMA). A thin wrapper
over the IR's `mfma.mma`; skc.blocks' Mfma TileOp feeds it operands read from LDS."""
from __future__ import annotations

from .. import ir
from . import semantics
from .markers import skc_builtin
from .context import current
from .values import RValue

_SHAPES = {(32, 32, 8): 16, (16, 16, 16): 4}  # (m, n, k) -> f32 accumulator values per lane (CDNA3 ISA 7.1)


@skc_builtin
def mfma(accumulator, a, b, m: int, n: int, k: int, dtype):
    """One wavefront MFMA: `accumulator` (m*n/64 f32 per lane) + A (m x k) · B (k x n), each lane giving 4 A
    and 4 B values of `dtype` (bf16 or f16) in the layouts of the AMD Matrix Instruction Calculator."""
    target = current().target
    if not target.has("mfma"):
        raise semantics.error(f"mfma needs an AMD CDNA target with matrix cores (gfx90a, gfx942); the kernel "
                              f"compiles for {target.name}")
    shape = (int(m), int(n), int(k))
    if shape not in _SHAPES:
        raise semantics.error(f"MFMA shapes are {', '.join('x'.join(map(str, s)) for s in _SHAPES)}, not "
                              f"{'x'.join(map(str, shape))}")
    name = dtype.ir.name if hasattr(dtype, "ir") else str(dtype)
    operand = ir.VectorType(ir.ScalarType(name), 4)
    acc = semantics.cast(accumulator, ir.VectorType(ir.f32, _SHAPES[shape]))
    values = [semantics.cast(v, operand).value for v in (a, b)]
    result = current().builder.value("mfma.mma", (acc.value, *values), acc.type, m=shape[0], n=shape[1], k=shape[2],
                                     dtype=name)
    return RValue(result, acc.type)
