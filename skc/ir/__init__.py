"""The tile IR: types, ops, builder, printer and parser, verifier, and passes."""
from . import ops_arith, ops_async, ops_control, ops_gpu, ops_memory  # noqa: F401  (registers the ops)
from .ops_arith import APPROXIMATE_MATH
from .builder import Builder
from .core import BLOCKING, OPS, PURE, TERMINATOR, Function, Module, Op, Region, Value
from .parser import ParseError, parse_module
from .printer import print_function, print_module, print_op
from .types import (MAX_VECTOR_LENGTH, Im2colTensorMapType, PointerType, ScalarType, TensorMapType, Type, VarType, VectorType, bf16, element_type,
                    f8e4m3, f8e4m3fnuz, f8e5m2, f8e5m2fnuz, f16, f32, f64, i1, i8, i16, i32, i64, parse_type, tmap, u8, u16, u32, u64,
                    with_element)
from .verifier import InvisibleOperand, verify

_PASS_NAMES = ("PASSES", "dce", "run_pipeline", "simplify")


def __getattr__(name):
    # The passes fold constants with numpy; import them on first use to keep `import skc` light.
    if name in _PASS_NAMES or name == "passes":
        import importlib

        passes = importlib.import_module(".passes", __name__)
        return passes if name == "passes" else getattr(passes, name)
    raise AttributeError(f"module 'skc.ir' has no attribute {name!r}")


__all__ = [
    "Builder", "BLOCKING", "OPS", "PURE", "TERMINATOR", "Function", "Module", "Op", "Region", "Value",
    "InvisibleOperand", "ParseError", "parse_module", "print_function", "print_module", "print_op", "verify",
    "PASSES", "dce", "run_pipeline", "simplify",
    "MAX_VECTOR_LENGTH", "Im2colTensorMapType", "PointerType", "ScalarType", "TensorMapType", "Type", "VarType", "VectorType", "element_type", "with_element",
    "parse_type", "i1", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "f16", "bf16", "f32", "f64",
    "f8e4m3", "f8e5m2", "f8e4m3fnuz", "f8e5m2fnuz", "tmap",
]
