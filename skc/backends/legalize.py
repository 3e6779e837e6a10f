"""Legalization before emission: ops the target cannot run on a type are rewritten to run on
a wider one. Half-precision transcendental math and all fp8 arithmetic compute in f32 and
round back (exact for +,-,*,/ and sqrt: f32 carries more than 2p+2 bits of either format)."""
from __future__ import annotations

from .. import ir

# Ops whose f16/bf16 form is promoted on every target: the approximate instructions exist for f32.
_TRANSCENDENTAL = {"math.exp", "math.exp2", "math.exp2_ftz", "math.log", "math.log2", "math.rsqrt", "math.sin", "math.cos",
                   "math.tanh", "math.pow",
                   # rounding to an integer: exact through f32 (a half value that large is an integer already),
                   # and NVPTX has no f16/bf16 form of LLVM's floor, ceil, trunc and roundeven
                   "math.floor", "math.ceil", "math.trunc", "math.round"}
_ARITHMETIC = set(ir.ops_arith.BINARY) | set(ir.ops_arith.UNARY) | {"math.fma"}


def _needs_promotion(op: ir.Op, target) -> bool:
    if op.name not in _ARITHMETIC or not op.results:
        return False
    elem = ir.element_type(op.result.type)
    if not elem.is_float or elem.bits > 16:
        return False
    if elem.bits == 8:
        return True
    if op.name in _TRANSCENDENTAL:
        return True
    feature = "bf16_arith" if elem.name == "bf16" else "f16_arith"
    return not target.has(feature)


def _needs_compare_promotion(op: ir.Op, target) -> bool:
    if op.name != "arith.cmp":
        return False
    elem = ir.element_type(op.operands[0].type)
    return elem.is_float and (elem.bits == 8 or (elem.name == "bf16" and not target.has("bf16_arith")))


def legalize(module: ir.Module, target) -> ir.Module:
    """Rewrite, in place, the ops `target` cannot run on their types."""
    for fn in module.functions:
        _legalize_region(fn.body, target)
    return module


def _legalize_region(region: ir.Region, target):
    new_ops = []
    for op in region.ops:
        for nested in op.regions:
            _legalize_region(nested, target)
        if _needs_promotion(op, target):
            new_ops.extend(_promote(op))
        elif _needs_compare_promotion(op, target):
            new_ops.extend(_promote_operands(op))
        else:
            new_ops.append(op)
    for op in new_ops:
        op.parent = region
    region.ops = new_ops


def _widened(t: ir.Type) -> ir.Type:
    return ir.with_element(t, ir.f32)


def _cast(value: ir.Value, t: ir.Type, loc) -> ir.Op:
    return ir.OPS["arith.cast"]((value,), (t,), None, None, loc)


def _promote(op: ir.Op):
    """[casts up, the op on f32, the cast down]; the original result value is kept (the cast down defines it)."""
    ops, wide_operands = [], []
    for value in op.operands:
        cast = _cast(value, _widened(value.type), op.loc)
        ops.append(cast)
        wide_operands.append(cast.result)
    result = op.result
    wide = type(op)(wide_operands, (_widened(result.type),), op.attrs, None, op.loc)
    ops.append(wide)
    narrow = _cast(wide.result, result.type, op.loc)
    narrow.results[0] = result
    result.owner = narrow
    ops.append(narrow)
    return ops


def _promote_operands(op: ir.Op):
    ops = []
    wide_operands = []
    for value in op.operands:
        cast = _cast(value, _widened(value.type), op.loc)
        ops.append(cast)
        wide_operands.append(cast.result)
    op.operands = wide_operands
    ops.append(op)
    return ops
