"""LLVM through llvmlite: parse the LLVM IR text, verify it, optimize it (O3), and emit
target assembly or an object file. Shared by every target."""
from __future__ import annotations

import functools
import threading

from ..diagnostics import CompileError

_lock = threading.Lock()


@functools.lru_cache(maxsize=None)
def _llvm():
    import llvmlite.binding as llvm

    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    return llvm


@functools.lru_cache(maxsize=None)
def target_machine(triple: str, cpu: str, features: str, reloc: str = "default"):
    llvm = _llvm()
    return llvm.Target.from_triple(triple).create_target_machine(cpu=cpu, features=features, opt=3, reloc=reloc)


def llvm_version() -> str:
    return ".".join(map(str, _llvm().llvm_version_info))


def parse(text: str):
    llvm = _llvm()
    try:
        module = llvm.parse_assembly(text)
        module.verify()
    except RuntimeError as e:
        raise CompileError(f"internal error: skc produced invalid LLVM IR: {e}",
                           hint="please report this with the kernel (SKC_DUMP_DIR=... dumps every stage)") from None
    return module


def optimize(module, machine, level: int = 3):
    llvm = _llvm()
    options = llvm.create_pipeline_tuning_options(speed_level=level)
    builder = llvm.create_pass_builder(machine, options)
    builder.getModulePassManager().run(module, builder)
    return module


def compile_llvm(text: str, triple: str, cpu: str, features: str, emit: str = "asm", reloc: str = "default"):
    """Optimized LLVM IR text and the target assembly (emit='asm') or object bytes (emit='object')."""
    machine = target_machine(triple, cpu, features, reloc)
    with _lock:  # llvmlite's global context is not thread safe
        module = parse(text)
        optimize(module, machine)
        optimized = str(module)
        if emit == "object":
            # Code generation rewrites the module in place (AMDGPU's control-flow annotation inserts
            # llvm.amdgcn.if/else calls, which a second code generation cannot select): emit each from a copy.
            return optimized, machine.emit_object(module.clone()), machine.emit_assembly(module)
        return optimized, machine.emit_assembly(module)
