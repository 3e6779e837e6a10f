"""skc/ir sits below the frontend and above nothing but numpy: its imports are checked in its source."""
import ast
from pathlib import Path

IR = Path(__file__).resolve().parents[2] / "skc" / "ir"
FORBIDDEN = ("skc.frontend", "skc.backends", "skc.runtime", "skc.blocks", "skc.compiler", "skc.jit",
             "llvmlite", "cuda", "hip")


def imported_modules(path: Path):
    """Absolute names of the modules `path` imports, relative imports resolved against its package."""
    package = ".".join(path.relative_to(IR.parent.parent).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            yield ".".join(base + ([node.module] if node.module else []))


def forbidden(name: str) -> bool:
    # `skc` itself is forbidden too: its __init__ ties every layer together.
    return name == "skc" or any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def test_ir_imports_nothing_above_it():
    offenders = [f"{path.relative_to(IR.parent.parent)} imports {name}"
                 for path in sorted(IR.rglob("*.py")) for name in imported_modules(path) if forbidden(name)]
    assert not offenders, "\n".join(offenders)


def test_the_check_resolves_relative_imports():
    names = set(imported_modules(IR / "passes" / "simplify.py"))
    assert "skc.ir.core" in names and "skc.ir.passes.folding" in names
    assert forbidden("skc.frontend.semantics") and forbidden("llvmlite") and not forbidden("skc.diagnostics")
