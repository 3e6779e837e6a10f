"""Backends: tile IR to LLVM IR (shared lowering plus per-target tables), LLVM IR to PTX or a
GCN object through llvmlite, and on to a loadable image (cubin through nvJitLink, hsaco through
ld.lld: amdgpu_link.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .. import ir
from ..target import Target, get_target
from . import llvm_codegen
from .amdgpu import AMDGPU
from .legalize import legalize
from .lowering import lower_module
from .nvptx import NVPTX


def target_lowering(target: Target):
    target = get_target(target)
    if target.vendor == "nvidia":
        return NVPTX(target)
    if target.vendor == "amd":
        return AMDGPU(target)
    raise ValueError(f"no backend for {target.vendor}")


def to_llvm(module: ir.Module, target: Target) -> str:
    """Legalize the tile IR for the target (in place) and write it as LLVM IR text."""
    lowering = target_lowering(target)
    legalize(module, get_target(target))
    return lower_module(module, lowering)


@dataclass
class Assembly:
    """What LLVM makes of a module: optimized IR, target assembly (PTX or GCN), and an object for AMD."""

    llvm_opt: str
    asm: str
    obj: Optional[bytes] = None


def compile_llvm(llvm_text: str, target: Target) -> Assembly:
    target = get_target(target)
    lowering = target_lowering(target)
    if target.vendor == "amd":
        optimized, obj, asm = llvm_codegen.compile_llvm(llvm_text, lowering.triple, target.llvm_cpu,
                                                        target.llvm_features, emit="object", reloc="pic")
        return Assembly(optimized, asm, obj)
    optimized, asm = llvm_codegen.compile_llvm(llvm_text, lowering.triple, target.llvm_cpu, target.llvm_features)
    return Assembly(optimized, lowering.finish_assembly(asm))


def llvm_version() -> str:
    return llvm_codegen.llvm_version()


__all__ = ["target_lowering", "to_llvm", "compile_llvm", "Assembly", "legalize", "llvm_version"]
