"""The docs run: every ```python block of docs/*.md (and of README.md) executes, in order within its page (a page is one
program, like a notebook), on the CPU interpreter (SKC_DEVICE=interpreter), with the page's own line
numbers (an error points at docs/PAGE.md:LINE); and docs/ir.md is what docs/gen_ir_reference.py writes
from the op classes today. A block fenced ```python torch needs PyTorch (an optional dependency): it
runs where torch is installed and the page's test says so where it is not."""
import glob
import importlib.util
import inspect
import linecache
import os
import re

import pytest

DOCS = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "docs"))
PAGES = sorted(glob.glob(os.path.join(DOCS, "*.md")))
FENCE = re.compile(r"^```python( torch)?[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


def python_blocks(path: str) -> list:
    """(first line number, needs torch, source) of each ```python block of a page."""
    with open(path) as f:
        text = f.read()
    return [(text.count("\n", 0, found.start(2)) + 1, bool(found.group(1)), found.group(2))
            for found in FENCE.finditer(text)]


@pytest.fixture
def interpreter(monkeypatch):
    from skc.runtime import devices

    monkeypatch.setenv("SKC_DEVICE", "interpreter")
    monkeypatch.setattr(devices, "_selected", [devices.Device("interpreter")])


def run_page(path: str):
    """Runs the page's blocks in one namespace. Each block is compiled against the page itself (padded to
    its line), so skc reads kernel sources from the .md and reports errors at the page's lines."""
    with open(path) as f:
        linecache.cache[path] = (os.path.getsize(path), None, f.read().splitlines(True), path)
    namespace = {"__name__": "__docs__", "__file__": path}
    ran = 0
    for line, needs_torch, source in python_blocks(path):
        if needs_torch and importlib.util.find_spec("torch") is None:
            continue
        code = compile("\n" * (line - 1) + source, path, "exec")
        exec(code, namespace)
        ran += 1
    return ran


def test_there_are_pages_and_every_page_has_samples():
    names = {os.path.basename(p) for p in PAGES}
    assert {"tutorial.md", "language.md", "blocks.md", "ir.md", "cli.md", "errors.md", "torch.md"} <= names, names
    for path in PAGES:
        if os.path.basename(path) not in ("ir.md", "index.md"):
            assert python_blocks(path), f"{path} has no python sample"


@pytest.mark.parametrize("path", [p for p in PAGES if python_blocks(p)], ids=os.path.basename)
def test_every_sample_of_the_page_runs_in_the_interpreter(path, interpreter, capsys):
    blocks = python_blocks(path)
    ran = run_page(path)
    if ran < len(blocks):
        pytest.skip(f"{len(blocks) - ran} of {len(blocks)} samples need torch, which is not installed "
                    f"(an optional dependency: pip install torch)")


def test_the_readme_samples_run_in_the_interpreter(interpreter, capsys):
    """README.md's kernel (its first sample, a new user's first program) runs as the docs' pages do."""
    readme = os.path.join(DOCS, "..", "README.md")
    assert run_page(os.path.normpath(readme)) == len(python_blocks(readme)) >= 1
    out = capsys.readouterr().out
    assert out.startswith("[1. 2. 3. 4.]") and "kernel @add" in out and ".entry add" in out


def test_a_failing_sample_is_reported_at_its_line_of_the_page(tmp_path, interpreter):
    page = tmp_path / "page.md"
    page.write_text("Text.\n\n```python\nx = 1\n```\n\nMore.\n\n```python\nassert x == 2, 'x is not 2'\n```\n")
    with pytest.raises(AssertionError, match="x is not 2") as caught:
        run_page(str(page))
    assert caught.traceback[-1].lineno + 1 == 10  # pytest counts lines from 0


def test_the_ir_reference_is_up_to_date():
    spec = importlib.util.spec_from_file_location("gen_ir_reference", os.path.join(DOCS, "gen_ir_reference.py"))
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    with open(os.path.join(DOCS, "ir.md")) as f:
        committed = f.read()
    assert committed == generator.render(), "docs/ir.md is out of date: run python docs/gen_ir_reference.py"
    from skc.ir.core import OPS

    for name in OPS:  # every op, with its one line
        assert f"| `{name}` |" in committed
    assert "(undocumented)" not in committed


def test_the_language_page_names_every_builtin_and_each_has_its_line():
    """docs/language.md's table lists every builtin a kernel can call from the skc module (a new user found
    skc.shfl_up, num_warps and block_sum named nowhere in the docs, and some without a docstring for help())."""
    import skc
    from skc.frontend.markers import is_builtin

    with open(os.path.join(DOCS, "language.md")) as f:
        page = f.read()
    builtins = [name for name in dir(skc) if not name.startswith("_") and is_builtin(getattr(skc, name))]
    assert len(builtins) > 60
    for name in builtins:
        assert re.search(rf"`{name}[`(]", page), f"docs/language.md does not name skc.{name}"
        assert getattr(skc, name).__doc__, f"skc.{name} has no docstring"


def test_the_readme_counts_conv2d_lines_as_benchmarks_code_lines_does():
    """README's conv2d section quotes `python benchmarks/code_lines.py`; the script stopped (a definition of conv.py
    in none of its groups) and the counts it would print had moved on from the quoted ones."""
    path = os.path.join(DOCS, "..", "benchmarks", "code_lines.py")
    spec = importlib.util.spec_from_file_location("code_lines", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main()   # (a SystemExit where a definition is in no group)
    counts = {name: script.code_lines(file, names) for name, (file, names) in script.GROUPS.items()}
    with open(os.path.join(DOCS, "..", "README.md")) as f:
        readme = " ".join(f.read().split())
    assert f"**{sum(counts[name] for name in script.TARGET)} lines**" in readme
    assert f"take {counts['conv2d(): argument checks, errors, torch layouts (conv.py)']} lines" in readme
    assert f"without data {counts['argument types for compiling without data (conv.py)']} (" in readme
    rules = counts["torch's rules of groups and filters, worded (im2col.py)"]
    assert f"its operator, {rules} lines" in readme
    whole = script.code_lines("skc/blocks/conv.py") + script.code_lines("skc/blocks/im2col.py")
    assert f"({whole} lines in the two files with imports)" in readme


def _skc_modules() -> dict:
    """skc's modules by their last name (`tile_rules`, `matmul_host`, ...), those that import here."""
    import pkgutil

    import skc

    found = {"skc": [skc]}
    for info in pkgutil.walk_packages(skc.__path__, "skc."):
        if info.name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:   # (an optional dependency's, such as hip-python's)
            continue
        found.setdefault(info.name.rpartition(".")[2], []).append(module)
    return found


def _names_in(module, path: list) -> bool:
    for part in path:
        if not hasattr(module, part):
            return False
        module = getattr(module, part)
    return True


def test_the_names_the_readme_and_docs_give_exist():
    """README named `config.few_tiles_split` and six more of the GEMM's rules after they moved to tile_rules. Every
    `module.name` the pages give whose module is skc's (skc., tile_rules., matmul_host., ...) must name something;
    `torch.` is torch's, `kernel.`/`values.` are the docs' variables and `arith.add` an IR op."""
    from skc.ir.core import OPS

    modules = _skc_modules()
    for name in ("torch", "kernel", "values"):
        modules.pop(name, None)
    pages = [os.path.join(DOCS, "..", "README.md")] + PAGES
    text = "".join(open(page).read() for page in pages)
    missing = set()
    for found in re.finditer(r"`([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)(?:\([^`]*\))?`", text):
        root, *path = found.group(1).split(".")
        if (root in modules and path != ["py"] and found.group(1) not in OPS
                and not any(_names_in(m, path) for m in modules[root])):
            missing.add(found.group(1))
    assert not missing, f"the docs name what skc does not have: {sorted(missing)}"


def test_the_payload_layouts_are_exported_and_documented():
    """BatchedOperandLayout (the payload tile of one matrix of a batch) was importable only from skc.blocks.config,
    where its siblings OperandLayout, ScaleLayout and LdsLayout come from skc.blocks, and no page named it. Every
    layout class of the modules that define the payload tiles is exported from skc.blocks and named on the blocks
    page."""
    import skc.blocks
    from skc.blocks import config, fp8, layout, lds

    with open(os.path.join(DOCS, "blocks.md")) as f:
        page = f.read()
    layouts = [value for module in (layout, config, fp8, lds) for value in vars(module).values()
               if isinstance(value, type) and value.__name__.endswith("Layout") and value.__module__ == module.__name__]
    assert len(layouts) == 4
    for cls in layouts:
        assert getattr(skc.blocks, cls.__name__, None) is cls and cls.__name__ in skc.blocks.__all__, cls.__name__
        assert f"`{cls.__name__}" in page, cls.__name__


def _signature_names(callable_) -> list:
    """The parameter names of a function or class as a page writes them (`*` where keyword-only ones begin)."""
    import inspect

    names = []
    for parameter in inspect.signature(callable_).parameters.values():
        if parameter.kind == parameter.KEYWORD_ONLY and "*" not in names:
            names.append("*")
        names.append({parameter.VAR_POSITIONAL: "*", parameter.VAR_KEYWORD: "**"}.get(parameter.kind, "") +
                     parameter.name)
    return names


def _written_signature(arguments: str):
    """`a, b=None, *, c=1` as parameter names, where it is a signature: some parameters without defaults, then
    defaults that are literals (`load(stage, k, a=row0)` is a call, `of_spec(spec, M, N, alpha=, beta=)` an
    abbreviation); else None."""
    import ast

    try:
        written = ast.parse(f"def f({arguments}): pass").body[0].args
    except SyntaxError:
        return None
    defaults = written.defaults + [d for d in written.kw_defaults if d is not None]
    positional = [a.arg for a in written.posonlyargs + written.args]
    if not defaults or len(defaults) == len(positional) + len(written.kwonlyargs) or not all(map(_literal, defaults)):
        return None   # (`MatmulConfig(split_k=2)` is a call, not a signature: a signature's first parameters have none)
    names = positional
    names += (["*" + written.vararg.arg] if written.vararg else ["*"] if written.kwonlyargs else [])
    return names + [a.arg for a in written.kwonlyargs] + (["**" + written.kwarg.arg] if written.kwarg else [])


def _literal(node) -> bool:
    import ast

    try:
        return ast.literal_eval(node) is not Ellipsis   # (`scale_a=...` says "some value")
    except ValueError:
        return False


def test_the_signatures_the_pages_give_are_the_code_s():
    """README gave `skc.blocks.matmul(a, b, out=None, *, bias=None, ..., autotune=None)` without the four fp8 keywords
    it takes, and the blocks page `EpilogueArgs(spec, M, N, ...)` without the grouped convolution's
    `bias_batch_stride`. Every `name(parameters)` a page writes as a signature (its defaults literals) lists the
    parameters, in order, of the skc function or class of that name (of one, where several share it), and
    `torch.ops.skc.NAME(...)` those of the operator's schema."""
    modules = _skc_modules()
    callables, methods = {}, {}
    for found in modules.values():
        for module in found:
            for name, value in vars(module).items():
                if callable(value) and not name.startswith("_") and getattr(value, "__module__", "").startswith("skc"):
                    callables.setdefault(name, {})[id(value)] = value
                    # (a method a page writes on an instance, `tile.load(row, column, dtype, width=1)`: SmemTile's,
                    # which skc.load's parameters are not)
                    for method_name, method in (vars(value).items() if isinstance(value, type) else ()):
                        if inspect.isfunction(method) and not method_name.startswith("_"):
                            methods.setdefault(method_name, {})[id(method)] = method
    schemas = {}
    if importlib.util.find_spec("torch") is not None:
        import torch

        import skc.torch  # noqa: F401  (registers torch.ops.skc)
        for name in ("matmul", "matmul_out", "scaled_matmul", "conv2d", "attention", "attention_with_lse"):
            schemas[name] = [argument.name for argument in getattr(torch.ops.skc, name).default._schema.arguments]
    wrong, checked = [], 0
    for page in [os.path.join(DOCS, "..", "README.md")] + PAGES:
        text = " ".join(open(page).read().split())
        for found in re.finditer(r"`((?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*))\(([^`()]*)\)`", text):
            full, name, arguments = found.groups()
            written = _written_signature(arguments)
            if written is None:
                continue
            if full.startswith("torch.ops.skc."):
                if name not in schemas:
                    continue
                options = [schemas[name]]
                written = [w for w in written if w != "*"]
            else:
                options = []
                dotted = methods.get(name, {}) if "." in full else {}
                for value in [*callables.get(name, {}).values(), *dotted.values()]:
                    try:
                        options.append([n for n in _signature_names(value) if n not in ("self", "cls")])
                    except (TypeError, ValueError):   # (a builtin without a signature)
                        pass
                if not options:
                    continue
            checked += 1
            if written not in options:
                wrong.append(f"{os.path.basename(page)}: `{full}({arguments})`; the code's: {options}")
    assert checked >= 10, checked   # (README's and the blocks page's entry points, the operators, the blocks)
    assert not wrong, "\n".join(wrong)
