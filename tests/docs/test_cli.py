"""The `skc` command as docs/cli.md describes it, where a new user meets it: each mistake on the command line or
in the file it names ends in one skc error and exit status 1, never in a traceback."""
import pytest

import skc
from skc import cli


@pytest.mark.parametrize("source, expected", [
    ("def main(n):\n    return n\n", "main() needs arguments (n); skc run calls main() with none"),
    ("def main(*, rows, cols=3):\n    return rows\n", "main() needs arguments (rows)"),
    ("main = 3\n", "main is no function (found int)"),
])
def test_skc_run_names_a_main_it_cannot_call(tmp_path, capsys, source, expected):
    script = tmp_path / "job.py"
    script.write_text(source)
    assert cli.main(["run", str(script), "--device", "interpreter"]) == 1
    assert expected in capsys.readouterr().err


def test_skc_run_calls_a_main_whose_arguments_have_defaults(tmp_path, capsys):
    script = tmp_path / "job.py"
    script.write_text("def main(n=None, *rest, **options):\n    return f'n={n}'\n")
    assert cli.main(["run", str(script), "--device", "interpreter"]) == 0
    assert "checked against numpy: n=None" in capsys.readouterr().out


KERNEL = "import skc\n\n@skc.kernel(block=32)\ndef k(x: skc.Ptr[skc.f32], N: skc.constexpr):\n    x[0] = N\n"


@pytest.mark.parametrize("options, expected", [
    (["--const", "N"], "--const N: give a parameter's name and its value as NAME=VALUE"),
    (["--const", "=4"], "--const =4: give a parameter's name"),
    (["--const", "N=4", "--emit", ","], "--emit ',' names no stage; choose from tile-raw, tile"),
])
def test_skc_compile_refuses_options_that_say_nothing(tmp_path, capsys, options, expected):
    """`--const N` compiled N as '' (a str constexpr) and `--emit ,` printed nothing, both with exit status 0."""
    source = tmp_path / "k.py"
    source.write_text(KERNEL)
    assert cli.main(["compile", str(source), *options]) == 1
    assert expected in capsys.readouterr().err


def test_skc_compile_takes_a_constant_with_spaces_around_its_name(tmp_path, capsys):
    source = tmp_path / "k.py"
    source.write_text(KERNEL)
    assert cli.main(["compile", str(source), "--emit", "tile", "--const", " N =4"]) == 0
    assert "value = 4.0" in capsys.readouterr().out


def test_skc_info_shows_the_tools_where_the_device_cannot_be_opened(monkeypatch, capsys):
    """skc info ended with the device's error alone (SKC_DEVICE=cuda:3 on a machine without it, an unknown
    SKC_INTERPRETER_TARGET), before its version and tools, the facts one asks it for when a device fails."""
    from skc.runtime import devices

    def no_device():
        raise skc.DeviceError("no NVIDIA driver found")

    monkeypatch.setattr(devices, "current_device", no_device)
    assert cli.main(["info"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("skc ") and "device: none: no NVIDIA driver found" in out
    assert "nvJitLink: " in out and "ld.lld (AMD code objects): " in out


@pytest.mark.parametrize("target, stage, expected", [
    ("sm_90a", "gcn", "gcn is AMD's assembly; sm_90a has 'ptx' and 'sass'"),
    ("gfx942", "ptx", "ptx is NVIDIA's assembly; gfx942 has 'gcn'"),
    ("gfx90a", "sass", "sass is NVIDIA's assembly; gfx90a has 'gcn'"),
])
def test_skc_compile_names_the_stages_of_the_other_vendor(tmp_path, capsys, target, stage, expected):
    """--emit gcn for sm_90a (ptx for gfx942) said only that the stage "is not available", not what the target has."""
    assert cli.main(["compile", cli.example_path("vector_add"), "--target", target, "--emit", stage]) == 1
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize("hook, options, expected", [
    ("def compile_arguments(kernel):\n    return {'N': 3}\n", [],
     "skc compile calls compile_arguments(kernel_name, target), which the file's cannot take"),
    ("compile_arguments = 5\n", [], "compile_arguments is no function (found int)"),
    ("def compile_arguments(kernel, target):\n    return {'N': 3, 'target': 'gfx942'}\n", [],
     "the target comes from --target, not from compile_arguments or --const"),
    ("", ["--const", "N=3", "--const", "target=gfx942"], "the target comes from --target"),
])
def test_skc_compile_names_a_compile_arguments_it_cannot_use(tmp_path, capsys, hook, options, expected):
    """A compile_arguments of another signature, or a 'target' among the arguments, ended in a TypeError from
    cli.py; a compile_arguments that is no function was ignored."""
    source = tmp_path / "k.py"
    source.write_text(KERNEL + hook)
    assert cli.main(["compile", str(source), "--emit", "tile", *options]) == 1
    assert expected in capsys.readouterr().err


def test_skc_compile_into_a_pipe_whose_reader_left_ends_without_a_traceback():
    """`skc compile FILE | head` printed a BrokenPipeError traceback once head had its lines."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=root)
    process = subprocess.Popen([sys.executable, "-m", "skc", "compile", cli.example_path("sgemm"), "--emit",
                                "tile,llvm,ptx"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    process.stdout.close()   # the reader leaves before anything is written
    error = process.stderr.read().decode()
    assert process.wait() == 1 and "Traceback" not in error and "BrokenPipe" not in error, error


def test_skc_run_claims_no_check_for_a_main_that_returns_nothing(tmp_path, capsys):
    """A main() returning None was reported as 'checked against numpy: None'."""
    script = tmp_path / "job.py"
    script.write_text("def main():\n    pass\n")
    assert cli.main(["run", str(script), "--device", "interpreter"]) == 0
    out = capsys.readouterr().out
    assert "job.py: OK in the CPU interpreter" in out and "numpy" not in out and "None" not in out


@pytest.mark.parametrize("body, expected", [
    ("    return skc.testing.assert_close(np.ones(3), np.zeros(3), what='sum')\n",
     "sum: 3 of 3 elements differ; first at (0,): 1.0, expected 0.0"),
    ("    assert np.ones(1)[0] == 2\n", "job.py:4: assert np.ones(1)[0] == 2"),
])
def test_skc_run_says_what_failed(tmp_path, capsys, body, expected):
    """A failed check read 'first at (np.int64(0),): np.float64(1.0), expected np.float64(0.0)' (numpy 2's reprs),
    and a bare assert's failure said nothing after the colon."""
    script = tmp_path / "job.py"
    script.write_text("import numpy as np\nimport skc\ndef main():\n" + body)
    assert cli.main(["run", str(script), "--device", "interpreter"]) == 1
    out = capsys.readouterr().out
    assert "job.py: FAILED in the CPU interpreter" in out and expected in out


def test_skc_version_prints_the_version(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"skc {skc.__version__}"


def test_the_environment_table_names_what_skc_and_its_tests_read():
    """docs/cli.md's table is the environment's reference: it named SKC_DEVICE's `cuda:N` and not `hip:N`, and none
    of the four generators' counts and seeds that tests/fuzz reads beside SKC_FUZZ_*. Every SKC_ variable that skc
    or its tests read (a string literal, as os.environ.get and monkeypatch.setenv take it) is in the table, and every
    variable of the table is read there or by a benchmark."""
    import glob
    import os
    import re

    root = os.path.join(os.path.dirname(__file__), "..", "..")

    def read_in(*folders):
        names = set()
        for folder in folders:
            for path in glob.glob(os.path.join(root, folder, "**", "*.py"), recursive=True):
                with open(path) as f:
                    names |= set(re.findall(r"[\"'](SKC_[A-Z0-9_]+)[\"']", f.read()))
        return names

    with open(os.path.join(root, "docs", "cli.md")) as f:
        table = f.read().split("## Environment variables")[1].split("```")[0]
    documented = {name for row in table.splitlines() if row.startswith("| `SKC_")
                  for name in re.findall(r"`(SKC_[A-Z0-9_]+)", row)}
    assert read_in("skc", "tests") - documented == set()
    assert documented - read_in("skc", "tests", "benchmarks") == set()
    assert "`hip:N`" in table.split("| `SKC_DEVICE` |")[1].splitlines()[0]


def _skc(*argv):
    """`python -m skc ARGV` as a user meets it, with this checkout's skc: its exit status and its stderr."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-m", "skc", *argv], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=root, SKC_DEVICE="interpreter"))
    return done.returncode, done.stderr


@pytest.mark.parametrize("command, stops", [("compile", "nothing was compiled"),
                                            ("run", "skc run did not call its main()")])
def test_skc_names_the_line_of_an_import_the_file_cannot_make(tmp_path, command, stops):
    """`import nonexistent_module` in the file was a traceback through cli.load_module and importlib's frames."""
    source = tmp_path / "job.py"
    source.write_text("import skc\nimport nonexistent_module\n\ndef main():\n    pass\n")
    status, err = _skc(command, str(source))
    assert status == 1 and "Traceback" not in err and "cli.py" not in err, err
    assert err.startswith(f"{source}:2:1: error: ModuleNotFoundError: No module named 'nonexistent_module', raised "
                          f"as skc imported the file, so {stops}\n    import nonexistent_module\n"), err
    assert "hint: install the package that provides 'nonexistent_module' into the Python that runs skc" in err


def test_skc_shows_the_files_own_frames_below_the_line_that_failed(tmp_path):
    """An error from a module the file imports (or a function it calls) names the file's line, then the file's own
    traceback from that line on, without skc's loader."""
    (tmp_path / "helpers.py").write_text("import os\nimport nonexistent_module\n")
    source = tmp_path / "k.py"
    source.write_text("import skc\nimport helpers\n")
    status, err = _skc("compile", str(source))
    assert status == 1 and "cli.py" not in err and "importlib" not in err, err
    assert err.startswith(f"{source}:2:1: error: ModuleNotFoundError: No module named 'nonexistent_module'"), err
    assert f'File "{tmp_path / "helpers.py"}", line 2, in <module>\n    import nonexistent_module\n' in err


def test_skc_keeps_the_exception_an_import_failure_was_raised_from(tmp_path):
    """A review found `raise RuntimeError() from e` over a failed import shown without its cause (the missing module
    never named), and an exception whose str() fails crashing the message in a traceback through cli.py."""
    source = tmp_path / "k.py"
    source.write_text("try:\n    import nonexistent_zz\nexcept ImportError as e:\n    raise RuntimeError() from e\n")
    status, err = _skc("compile", str(source))
    assert status == 1 and "cli.py" not in err, err
    assert err.startswith(f"{source}:4:5: error: RuntimeError, raised as skc imported the file"), err
    assert "ModuleNotFoundError: No module named 'nonexistent_zz'" in err and "direct cause" in err, err
    source.write_text("class E(Exception):\n    def __str__(self):\n        return 1 / 0\n\n\nraise E()\n")
    status, err = _skc("compile", str(source))
    assert status == 1 and "cli.py" not in err and "ZeroDivisionError" not in err, err
    assert err.startswith(f"{source}:6:1: error: E: <exception str() failed>, raised as skc imported the file"), err


@pytest.mark.parametrize("command, stops", [("compile", "nothing was compiled"),
                                            ("run", "skc run did not call its main()")])
@pytest.mark.parametrize("statement, status", [("sys.exit(0)", "status 0"), ("sys.exit(3)", "status 3"),
                                               ("raise SystemExit", "status 0"),
                                               ("sys.exit('no')", "the message 'no'")])
def test_skc_refuses_a_file_that_exits_as_it_is_imported(tmp_path, command, stops, statement, status):
    """A file calling sys.exit(0) at its top level made skc compile end with status 0, having compiled nothing (skc
    run too, without calling main()); sys.exit(3) ended in status 3 with no word of why."""
    source = tmp_path / "k.py"
    source.write_text(KERNEL + "\n\ndef main():\n    pass\n\n\nimport sys\n" + statement + "\n")
    exited, err = _skc(command, str(source), *(["--emit", "tile", "--const", "N=1"] if command == "compile" else []))
    assert exited == 1, err
    assert err.startswith(f"{source}:13:1: error: the file exited with {status} as skc imported it, so {stops}"), err
    assert 'under `if __name__ == "__main__":`' in err


def test_skc_run_gives_the_status_that_main_exits_with(tmp_path, capsys):
    """main() calling sys.exit(4) ended skc run with status 4 and nothing said; it is the status `python FILE` gives,
    with skc run's line saying so."""
    script = tmp_path / "job.py"
    script.write_text("import sys\n\ndef main():\n    sys.exit(4)\n")
    assert cli.main(["run", str(script), "--device", "interpreter"]) == 4
    assert "job.py: main() exited with status 4 in the CPU interpreter" in capsys.readouterr().out


def test_skc_stops_at_an_interrupt_without_a_traceback(tmp_path):
    """Ctrl-C (here a KeyboardInterrupt raised at import) printed a traceback through skc's frames."""
    source = tmp_path / "k.py"
    source.write_text("import skc\nraise KeyboardInterrupt\n")
    status, err = _skc("compile", str(source))
    assert status == 130 and "Traceback" not in err and err.strip() == "skc: interrupted", err


TWO_KERNELS = '''import skc
@skc.kernel(block=32)
def k1(x: skc.Ptr[skc.f32], M: skc.constexpr):
    x[0] = 1.0 if M else 2.0
@skc.kernel(block=32)
def k2(y: skc.Ptr[skc.f16]):
    y[0] = 3.0
'''


def test_skc_compile_gives_each_constant_to_the_kernels_that_take_it(tmp_path, capsys):
    """A helper's search of the tooling (sixty-seventh session): `--const M=...` went to every kernel of the file
    ("k2: unknown arguments M", nothing compiled); a misspelled one said the same; `--const M=false` was the string
    'false', true in `if M:`."""
    source = tmp_path / "two.py"
    source.write_text(TWO_KERNELS)
    for value, stored in (("false", "value = 2.0"), ("True", "value = 1.0"), ("0", "value = 2.0")):
        assert cli.main(["compile", str(source), "--emit", "tile", "--const", f"M={value}"]) == 0
        out = capsys.readouterr().out
        assert stored in out and "k2: tile" in out
    assert cli.main(["compile", str(source), "--emit", "tile", "--const", "MM=1"]) == 1
    assert "--const MM=...: no kernel compiled from" in capsys.readouterr().err
    assert cli.main(["compile", f"{source}::k2", "--emit", "tile", "--const", "M=1"]) == 1
    assert "has a parameter 'M' (their parameters: k2(y))" in capsys.readouterr().err


def test_a_compile_arguments_or_main_that_raises_is_named_at_the_files_line(tmp_path, capsys):
    """The file's compile_arguments raising, or its main() raising other than an assert, ended in a traceback
    through skc's command line (and skc run printed no FAILED line); a main() returning False said "OK"."""
    source = tmp_path / "hook.py"
    source.write_text(KERNEL + "def compile_arguments(kernel, target):\n    return {'N': {'sm_90a': 1}[target]}\n")
    assert cli.main(["compile", str(source), "--emit", "tile"]) == 1
    err = capsys.readouterr().err
    assert "hook.py:" in err and "KeyError" in err and "raised in compile_arguments('k', target)" in err
    script = tmp_path / "job.py"
    for body, expected in (("    raise ValueError('boom')\n", "ValueError: boom, raised in main()"),
                           ("    return False\n", "main() returned False")):
        script.write_text("def main():\n" + body)
        assert cli.main(["run", str(script), "--device", "interpreter"]) == 1
        captured = capsys.readouterr()
        assert "job.py: FAILED in the CPU interpreter" in captured.out
        assert expected in captured.out + captured.err


def test_the_tooling_names_what_it_was_given(tmp_path, capsys, monkeypatch):
    """A helper's search (sixty-seventh session): `skc run --example` ran any path given as a name (a file outside
    the examples); `-o ''`, `--block ''` and `--emit ''` were taken as absent (printed, or the defaults); an unknown
    SKC_INTERPRETER_TARGET was named without the variable; SKC_DUMP_DIR's warning was placed at skc's line."""
    for name in ("../skc/version", str(tmp_path / "job")):
        assert cli.main(["run", "--example", name]) == 1
        assert f"--example takes an example's name, such as vector_add, not {name!r}" in capsys.readouterr().err
    source = tmp_path / "k.py"
    source.write_text(KERNEL)
    for options, expected in ((["-o", ""], "-o '': give the folder"), (["--emit", ""], "--emit '' names no stage"),
                              (["--block", "", "--const", "N=1"], "--block : give the block's size as integers")):
        assert cli.main(["compile", str(source), *options]) == 1
        assert expected in capsys.readouterr().err
    from skc.runtime import devices

    monkeypatch.setenv("SKC_INTERPRETER_TARGET", "sm_75")
    monkeypatch.setattr(devices, "_selected", [devices.Device("interpreter")])
    devices._target_of.cache_clear()
    try:
        assert cli.main(["info"]) == 1
        assert "device: none: SKC_INTERPRETER_TARGET='sm_75': unknown target 'sm_75'" in capsys.readouterr().out
    finally:
        devices._target_of.cache_clear()
    monkeypatch.delenv("SKC_INTERPRETER_TARGET")
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    monkeypatch.setenv("SKC_DUMP_DIR", str(blocked))
    import numpy as np

    kernel = skc.kernel(block=32)(_stores_seven)
    with pytest.warns(UserWarning, match="SKC_DUMP_DIR=.*cannot write") as caught:
        kernel[1, 32](np.zeros(1, np.float32))
    assert caught[0].filename == __file__


def _stores_seven(x: skc.Ptr[skc.f32]):
    x[0] = 7.0
