"""The package's import graph: no cycles between skc's modules, counting imports inside functions too
(a function-local import hides a cycle from Python, not from the design), and the layers of DESIGN.md."""
import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "skc")


def _module_name(path: str) -> str:
    relative = os.path.relpath(path, os.path.dirname(ROOT))[:-3].replace(os.sep, ".")
    return relative[: -len(".__init__")] if relative.endswith(".__init__") else relative


def _modules() -> dict:
    found = {}
    for folder, _, files in os.walk(ROOT):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                found[_module_name(path)] = path
    return found


def _resolve(importer: str, is_package: bool, node, known: set) -> set:
    """The skc modules an import statement names (a name imported from a package counts as the
    submodule when one exists, else as the package)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name.split(".")[0] == "skc"} & known
    base = importer if is_package else importer.rpartition(".")[0]
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    target = (f"{base}.{node.module}" if node.module else base) if node.level else (node.module or "")
    if target.split(".")[0] != "skc":
        return set()
    names = set()
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        names.add(sub if sub in known else target)
    return names & known


def import_graph() -> dict:
    modules = _modules()
    known = set(modules)
    graph = {}
    for name, path in modules.items():
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), path)
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges |= _resolve(name, path.endswith("__init__.py"), node, known)
        edges.discard(name)
        # a package's __init__ importing its own submodules is how a package is assembled, not a dependency
        graph[name] = {e for e in edges if not (path.endswith("__init__.py") and name != "skc" and e.startswith(name + "."))}
    return graph


def cycles(graph: dict) -> list:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


# Cycles still to break, each with what breaking it takes (none left). An entry must still be a cycle
# (the test below fails once it is broken, so the list only shrinks).
KNOWN_CYCLES: dict = {}


def test_no_import_cycles():
    found = [c for c in cycles(import_graph()) if frozenset(c) not in KNOWN_CYCLES]
    assert not found, "import cycles between skc modules:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_known_cycles_are_still_cycles():
    found = {frozenset(c) for c in cycles(import_graph())}
    broken = [sorted(c) for c in KNOWN_CYCLES if c not in found]
    assert not broken, f"no longer cycles: remove them from KNOWN_CYCLES: {broken}"


@pytest.mark.parametrize("layer, forbidden", [
    ("skc.runtime", ("skc.backends", "skc.frontend", "skc.blocks")),
    ("skc.backends", ("skc.frontend", "skc.runtime", "skc.blocks")),
    ("skc.frontend", ("skc.backends", "skc.runtime", "skc.blocks")),
    ("skc.ir", ("skc.frontend", "skc.backends", "skc.runtime", "skc.blocks")),
    ("skc.blocks", ("skc.backends", "skc.runtime")),
])
def test_layers_import_downward_only(layer, forbidden):
    graph = import_graph()
    wrong = sorted(f"{module} -> {target}" for module, targets in graph.items() if module.startswith(layer + ".")
                   or module == layer for target in targets if target.startswith(forbidden))
    assert not wrong, "\n".join(wrong)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_module_reaches_into_another_s_private_names():
    """`from .x import _y`, or `x._y` on a module (or class) imported from skc: what modules share is public."""
    modules = _modules()
    known = set(modules)
    wrong = []
    for name, path in sorted(modules.items()):
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), path)
        module_aliases = set()
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            targets = _resolve(name, path.endswith("__init__.py"), node, known)
            if isinstance(node, ast.ImportFrom) and targets:
                wrong += [f"{name}:{node.lineno} imports {alias.name}" for alias in node.names
                          if _private(alias.name) and alias.name not in known]
                module_aliases |= {alias.asname or alias.name for alias in node.names}
            elif isinstance(node, ast.Import) and targets:
                module_aliases |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name) \
                    and node.value.id in module_aliases:
                wrong.append(f"{name}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not wrong, "\n".join(wrong)
