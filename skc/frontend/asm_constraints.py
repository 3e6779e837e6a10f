"""Checks of `skc.asm` constraint strings before LLVM sees them: LLVM aborts the whole process on an
unknown constraint letter, or a register class that does not fit its value, so skc accepts only what
NVPTX inline asm takes (LLVM LangRef, "Inline Assembler Expressions"; NVPTX's constraint letters). On
AMD, llvmlite's LLVM cannot emit a code object holding inline asm at all (it aborts), so asm is refused."""
from __future__ import annotations

# NVPTX register classes and the bits of the value each holds: b=.pred c=.b8 h=.b16 r=.b32 l=.b64
# f=.f32 d=.f64. A value of another width in a class makes LLVM assert, so the widths must match.
NVPTX_CLASSES = {"b": 1, "c": 8, "h": 16, "r": 32, "f": 32, "l": 64, "d": 64}


def check_constraints(constraints, vendor: str, result_bits: list, arg_bits: list, error):
    """Raise error(message, hint) unless `constraints` suits the target: outputs first (`=r`, `=&r`), then
    inputs (a register class or the number of a tied output), then clobbers (`~{memory}`); each register
    class fits the width of its value (result_bits, arg_bits: the bits of each result and operand)."""
    if vendor != "nvidia":
        raise error("skc.asm is not available on AMD targets: the LLVM inside llvmlite has no AMDGPU assembly "
                    "parser, which emitting a code object with inline assembly needs",
                    "use skc's builtins, or keep the asm on NVIDIA (`if skc.current_target().vendor == 'nvidia':`)")
    if not isinstance(constraints, str):
        raise error(f"constraints must be a string such as \"=r,r\", found {type(constraints).__name__}", "")
    hint = ("each comma-separated item is a register class " + ", ".join(f"{c} ({b}-bit)" for c, b in NVPTX_CLASSES.items())
            + " (with '=' or '=&' before outputs), the number of a tied output, or the clobber ~{memory}")
    num_results, num_args = len(result_bits), len(arg_bits)
    outputs = inputs = 0
    stage = 0   # 0: outputs, 1: inputs, 2: clobbers
    for item in constraints.split(",") if constraints else []:
        if item.startswith("~"):
            if item != "~{memory}":
                raise error(f"unknown clobber {item!r} in the asm constraints {constraints!r}", hint)
            stage = 2
            continue
        if stage == 2:
            raise error(f"asm constraint {item!r} follows a clobber in {constraints!r}",
                        "list outputs, then inputs, then clobbers")
        if item.startswith("="):
            if stage > 0:
                raise error(f"output constraint {item!r} follows an input in {constraints!r}",
                            "list outputs first")
            body = item[2:] if item.startswith("=&") else item[1:]
            outputs += 1
            bits = result_bits[outputs - 1] if outputs <= num_results else None
        else:
            body = item
            stage = 1
            inputs += 1
            bits = arg_bits[inputs - 1] if inputs <= num_args else None
            if body.isdigit():
                if int(body) >= outputs:
                    raise error(f"asm input {item!r} ties to output {body}, but there are {outputs} outputs", hint)
                continue
        if body not in NVPTX_CLASSES:
            raise error(f"asm constraint {item!r} is not one NVPTX inline asm takes", hint)
        if bits is not None and bits != NVPTX_CLASSES[body]:
            raise error(f"asm constraint {item!r} holds {NVPTX_CLASSES[body]}-bit values, but its "
                        f"{'result' if item.startswith('=') else 'operand'} has {bits} bits", hint)
    if outputs != num_results:
        raise error(f"the asm constraints {constraints!r} name {outputs} outputs but dtype gives {num_results} "
                    "results", "give one '=' constraint per result type in dtype")
    if inputs != num_args:
        raise error(f"the asm constraints {constraints!r} name {inputs} inputs but {num_args} operands are passed",
                    "give one input constraint per operand")

