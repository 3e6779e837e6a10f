"""What README's install section promises: the examples run by name (`skc run --example`, which is how an
installed wheel runs its main job), and the wheel carries them (pyproject's data-files)."""
import os
import re
import subprocess
import sys

import pytest

from skc import cli

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def pyproject() -> str:
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        return f.read()


def test_skc_run_example_runs_vector_add_by_name(capsys):
    assert cli.main(["run", "--example", "vector_add", "--device", "interpreter"]) == 0
    assert "vector_add.py: OK in the CPU interpreter" in capsys.readouterr().out


EXAMPLES = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "examples")) if f.endswith(".py"))
# (README: conv2d, attention, gated_gemm and rmsnorm are Hopper-only)
AMD_EXAMPLES = ["layer_norm", "matmul", "prefix_sum", "sgemm", "softmax", "transpose", "vector_add"]


@pytest.mark.parametrize("target, name", [("sm_90a", name) for name in EXAMPLES] +
                         [(target, name) for target in ("gfx942", "gfx90a") for name in AMD_EXAMPLES])
def test_every_example_runs_with_skc_run_and_matches_its_own_check(target, name, monkeypatch, capsys):
    """README: each example "runs with skc run"; in the interpreter modelling each target it runs on, its main()
    checks it against numpy."""
    from skc.runtime import devices

    monkeypatch.setenv("SKC_INTERPRETER_TARGET", target)
    devices._target_of.cache_clear()   # (a device reads its target once)
    try:
        assert cli.main(["run", "--example", name, "--device", "interpreter"]) == 0
    finally:
        monkeypatch.undo()
        devices._target_of.cache_clear()
    assert f"{name}.py: OK in the CPU interpreter [interpreter - skc CPU interpreter (modelling {target})]" in \
        capsys.readouterr().out


def test_the_docs_name_every_example():
    help_text = cli.build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    with open(os.path.join(ROOT, "docs", "cli.md")) as f:
        cli_page = f.read()
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    for name in EXAMPLES:
        assert name in " ".join(help_text.split()) and f"`{name}`" in cli_page and f"`{name}.py`" in readme, name


def test_skc_run_names_the_examples_when_one_is_unknown(capsys):
    assert cli.main(["run", "--example", "vector_mul"]) == 1
    err = capsys.readouterr().err
    assert "no example named 'vector_mul'" in err and "vector_add" in err and "softmax" in err


def test_skc_run_takes_a_file_or_an_example_not_both(capsys):
    assert cli.main(["run"]) == 1
    assert "a file or --example NAME" in capsys.readouterr().err


def test_the_wheel_ships_every_example():
    assert re.search(r'^\[tool\.setuptools\.data-files\]\n"share/skc/examples" = \["examples/\*\.py"\]$',
                     pyproject(), re.M)
    assert {os.path.basename(p) for p in map(cli.example_path, ["vector_add", "softmax", "sgemm", "matmul"])} == \
        {"vector_add.py", "softmax.py", "sgemm.py", "matmul.py"}


def test_a_wheel_installed_with_user_finds_its_examples(tmp_path):
    """`pip install --user` (pip's default where site-packages is not writable) puts the data files under the user
    base (~/.local/share/skc/examples), which is neither the environment's data path nor sys.prefix."""
    folder = tmp_path / "share" / "skc" / "examples"
    folder.mkdir(parents=True)
    (folder / "only_in_the_user_base.py").write_text("def main():\n    return 'ran'\n")
    env = dict(os.environ, PYTHONUSERBASE=str(tmp_path), PYTHONPATH=os.path.abspath(ROOT))
    program = "from skc import cli; print(cli.example_path('only_in_the_user_base'))"
    found = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == str(folder / "only_in_the_user_base.py")


def test_linking_amd_code_objects_needs_nothing_from_the_system():
    """ziglang (LLD) is in the test extra and the amd extra, so no AMD test skips on a fresh machine."""
    extras = pyproject().split("[project.optional-dependencies]")[1].split("\n[")[0]
    for extra in ("amd", "test"):
        listed = re.search(rf"^{extra} = \[(.*?)\]$", extras, re.M | re.S)
        assert listed and '"ziglang' in listed.group(1), extra
    if os.path.exists(os.path.join(ROOT, ".ci", "run")):
        with open(os.path.join(ROOT, ".ci", "run")) as f:
            assert "apt-get" not in f.read()


def test_the_attention_example_on_a_gpu_without_torch_says_to_install_it(monkeypatch):
    """`pip install -e .` installs no torch; `skc run --example attention` on a GPU ended in a ModuleNotFoundError
    traceback from the example (attention() takes torch tensors on a GPU)."""
    import skc
    from helpers import load_example
    from skc.runtime.devices import Device

    example = load_example("attention")
    monkeypatch.setattr(skc, "current_device", lambda: Device("cuda", 0))
    monkeypatch.setitem(sys.modules, "torch", None)   # (import torch raises ImportError)
    with pytest.raises(skc.SkcError, match="runs on torch tensors on a GPU, and torch is not installed: pip install"):
        example.main()
