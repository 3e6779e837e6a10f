"""What README's install section promises: the examples run by name (`skc run --example`, which is how an
installed wheel runs its main job), and the wheel carries them (pyproject's data-files)."""
import os
import re
import subprocess
import sys

from skc import cli

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def pyproject() -> str:
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        return f.read()


def test_skc_run_example_runs_vector_add_by_name(capsys):
    assert cli.main(["run", "--example", "vector_add", "--device", "interpreter"]) == 0
    assert "vector_add.py: OK in the CPU interpreter" in capsys.readouterr().out


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
