"""LLVM through llvmlite: parse the LLVM IR text, verify it, optimize it (O3), and emit
target assembly or an object file. Shared by every target."""
from __future__ import annotations

import functools
import os
import sys
import threading

from ..diagnostics import CompileError

_lock = threading.Lock()
_held_at_fork: list = []   # the locks a fork in progress took (released after it, in the parent and in the child)


def _before_fork():
    """A fork waits for every use of LLVM on other threads to end: a lock held at the fork would be held for ever in
    the child, whose thread that held it is not there (its first compile for a GPU, or of the native launch code,
    waited for it), and LLVM's state half changed. skc's lock, and llvmlite's own, which it holds through each of its
    calls into LLVM (an optimization of seconds, a module the garbage collector frees on any thread)."""
    locks = [_lock]
    ffi = sys.modules.get("llvmlite.binding.ffi")   # (not imported: no thread is inside it)
    own = getattr(getattr(ffi, "lib", None), "_lock", None)   # (llvmlite's name; another version's: skc's alone)
    if hasattr(own, "__enter__") and hasattr(own, "__exit__"):
        locks.append(own)
    for lock in locks:
        lock.__enter__()
    _held_at_fork[:] = locks


def _after_fork():
    for lock in reversed(_held_at_fork):
        lock.__exit__(None, None, None)
    _held_at_fork.clear()


if hasattr(os, "register_at_fork"):   # (POSIX only)
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork)


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
