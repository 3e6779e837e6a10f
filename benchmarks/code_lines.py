"""Lines of code of the conv2d composition, counted as the issues count them: non-blank lines that are not comments
and not docstrings, per function or class (decorators included).

    python benchmarks/code_lines.py

Groups: the loader and its geometry (skc/blocks/im2col.py: ConvShape, the TMA im2col loader, the vector fallback);
the host side that builds the descriptors (the loader swap in the configuration, the operands' tensor maps, the
GEMM's shape); and, reported beside them, the rest of skc/blocks/conv.py (the public conv2d function with its
argument checks and torch layouts, and the argument types for compiling without data). General TMA im2col support
(skc.Im2colTensorMap, hopper.tma_load_im2col and their IR, lowering and interpreter) is not conv2d's: any kernel
can use it, as it can the tiled mode.
"""
from __future__ import annotations

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

GROUPS = {
    "loader and geometry (im2col.py)": ("skc/blocks/im2col.py", ("ConvShape", "Im2colLoader", "Im2colVectorLoader")),
    "torch's rules of groups and filters, worded (im2col.py)": ("skc/blocks/im2col.py", ("grouping_mismatch",
                                                                                        "unaligned_filters")),
    "host side that builds the descriptors (conv.py)": ("skc/blocks/conv.py", ("_config", "_plan", "_operands",
                                                                              "_gemm_shape")),
    "argument types for compiling without data (conv.py)": ("skc/blocks/conv.py", ("compile_arguments",)),
    "the stencil kernel's launch (conv.py; its blocks in stencil.py)": ("skc/blocks/conv.py", ("_Stencil",)),
    "conv2d(): argument checks, errors, torch layouts (conv.py)": ("skc/blocks/conv.py", (
        "conv2d", "_looked_up", "_traced_ints", "_differentiated", "_refuse_lost_gradients", "_checked", "_check_out", "_aligned", "_pair",
        "_padding", "_is_torch", "_nhwc", "_empty_output",
        "_PaddedChannels", "_with_channels", "_checked_epilogue", "_no_launch", "_groups", "_BlockDiagonal",
        "_block_diagonal", "_KeptFilters", "_diagonals", "_diagonal_filters", "_arange", "slab_takes", "slab_work")),
}
TARGET = ("loader and geometry (im2col.py)", "host side that builds the descriptors (conv.py)")


def code_lines(path: str, names=None) -> int:
    """Non-blank, non-comment lines of `path` outside docstrings; only the top-level definitions in `names`
    (decorators included) when given."""
    with open(os.path.join(ROOT, path)) as handle:
        source = handle.read()
    tree = ast.parse(source)
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value,
                                                                                                    str):
                docstrings.update(range(first.lineno, first.end_lineno + 1))
    kept = None
    if names is not None:
        kept, found = set(), set()
        for node in tree.body:
            if getattr(node, "name", None) in names:
                found.add(node.name)
                kept.update(range(node.lineno - len(node.decorator_list), node.end_lineno + 1))
        if found != set(names):
            raise SystemExit(f"{path} has no {', '.join(sorted(set(names) - found))}")
    return sum(1 for number, line in enumerate(source.splitlines(), 1)
               if line.strip() and not line.strip().startswith("#") and number not in docstrings
               and (kept is None or number in kept))


def main():
    for path in ("skc/blocks/conv.py", "skc/blocks/im2col.py"):
        with open(os.path.join(ROOT, path)) as handle:
            defined = {node.name for node in ast.parse(handle.read()).body if hasattr(node, "name")}
        grouped = {name for where, names in GROUPS.values() if where == path and names for name in names}
        if defined - grouped:   # every definition of the two files is in some group: nothing goes uncounted
            raise SystemExit(f"{path} defines {', '.join(sorted(defined - grouped))}, in no group of {__file__}")
    counts = {name: code_lines(path, names) for name, (path, names) in GROUPS.items()}
    for name, count in counts.items():
        print(f"{count:4d}  {name}")
    print(f"{sum(counts[name] for name in TARGET):4d}  conv-specific code as issue 11 lists it (the loader, the "
          f"shared-memory layout, the host side that builds the descriptors; target <= 100)")
    print(f"{code_lines('skc/blocks/conv.py') + code_lines('skc/blocks/im2col.py'):4d}  both files whole "
          f"(imports included)")


if __name__ == "__main__":
    main()
