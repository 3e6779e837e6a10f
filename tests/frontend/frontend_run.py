"""Run frontend kernels in the CPU interpreter on numpy arrays, and as plain Python on the same arrays:
a kernel of scalar code means what Python says it means."""
from __future__ import annotations

import numpy as np

from skc import ir
from skc.frontend import POINTER, SCALAR, ParamSpec, PtrType, Specialization, compile_to_ir
from skc.runtime.interpreter import Memory, run
from skc.target import get_target

TARGET = get_target("sm_90a")


def compile_kernel(kernel, block=(1, 1, 1), **params) -> ir.Function:
    """Compile kernel with each parameter a pointer (PtrType) or a scalar (an IR type); verified."""
    fn = getattr(kernel, "fn", kernel)
    specs = tuple(ParamSpec(name, POINTER, t) if isinstance(t, PtrType) else ParamSpec(name, SCALAR, t)
                  for name, t in params.items())
    module, _ = compile_to_ir(fn, Specialization(specs, block), TARGET)
    ir.verify(module)
    ir.passes.run_pipeline(module)
    ir.verify(module)
    return module.function()


def launch(function, *args):
    memory = Memory()
    values = [memory.map_array(a, name=f"arg{i}") if isinstance(a, np.ndarray) else a for i, a in enumerate(args)]
    run(function, grid=(1, 1, 1), block=tuple(function.attrs["block"]), args=values, memory=memory, target=TARGET)


def matches_python(kernel, make_x, scalars, reference=None, **params):
    """Compile once, then for each tuple of scalar arguments run the kernel in the interpreter and as Python
    (or `reference`, for kernels calling @skc.func) on fresh copies of make_x(); the arrays must end equal."""
    function = compile_kernel(kernel, **params)
    fn = reference or getattr(kernel, "fn", kernel)
    for args in scalars:
        got, want = make_x(), make_x()
        launch(function, got, *args)
        fn(want, *args)
        np.testing.assert_array_equal(got, want, err_msg=f"{fn.__name__}{args}")


F32P = PtrType(ir.f32)
