"""The host tools a helper's search found wanting (forty-first session): skc.autotune matched a stored winner with
== (1, 1.0 and True as one config), crashed on a winners file of another shape, and gave every script run as
__main__ one winners file; `skc compile` ended in tracebacks for a --block that is no list of ints and for an -o
it cannot write; SKC_DUMP_DIR naming a file stopped every compile, and kernels from the disk cache were not dumped."""
import importlib
import json
import warnings

import numpy as np
import pytest

import skc
from skc.autotune import Autotuner, _default_name


@pytest.fixture
def cache(tmp_path):
    skc.set_cache_dir(tmp_path)
    yield tmp_path
    skc.set_cache_dir(None)


def test_a_stored_winner_is_matched_exactly(cache):
    ran = []

    def launch(n, B):
        ran.append(B)

    times = {repr(True): 2.0, repr(1): 1.0}
    first = Autotuner(launch, [{"B": True}, {"B": 1}], name="tests.exact", device_name=lambda: "dev",
                      timer=lambda run: (run(), times[repr(ran[-1])])[1])
    first(0)
    assert ran[-1] == 1 and type(ran[-1]) is int
    second = Autotuner(launch, [{"B": True}, {"B": 1}], name="tests.exact", device_name=lambda: "dev",
                       timer=lambda run: pytest.fail("timed again"))
    second(0)
    assert type(ran[-1]) is int   # (True == 1 took the first of the list)


@pytest.mark.parametrize("text", ['{"format": 1, "winners": null}', '{"format": 1}', '{"format": 1, "winners": [1]}',
                                  '{"format": 1, "winners": {"dev": []}}'])
def test_a_winners_file_of_another_shape_is_a_miss(cache, text):
    tuner = Autotuner(lambda n, B: None, [{"B": 1}, {"B": 2}], name="tests.shape", device_name=lambda: "dev",
                      timer=lambda run: (run(), 1.0)[1])
    tuner.path().parent.mkdir(parents=True, exist_ok=True)
    tuner.path().write_text(text)
    assert tuner.choose(0) == {"B": 1}
    assert json.loads(tuner.path().read_text())["winners"]["dev"]["()"]["config"] == {"B": 1}


def test_scripts_run_as_main_have_winners_files_of_their_own():
    def script_function():
        pass

    names = []
    for file in ("/tmp/a.py", "/tmp/b.py"):
        script_function.__module__ = "__main__"
        script_function.__code__ = script_function.__code__.replace(co_filename=file)
        names.append(_default_name(script_function))
    assert names[0] != names[1] and all(n.startswith("__main__.") for n in names)


def test_cli_refuses_a_block_that_is_no_list_of_ints(tmp_path, capsys):
    from skc.cli import main

    source = tmp_path / "k.py"
    source.write_text("import skc\n\n@skc.kernel\ndef k(x: skc.Ptr[skc.f32]):\n    x[0] = 1.0\n")
    for block in ("128x2", "32,"):
        assert main(["compile", str(source), "--emit", "tile", "--block", block]) == 1
        assert "--block" in capsys.readouterr().err


def test_cli_names_an_output_it_cannot_write(tmp_path, capsys):
    from skc.cli import main

    source, out = tmp_path / "k.py", tmp_path / "out"
    source.write_text("import skc\n\n@skc.kernel\ndef k(x: skc.Ptr[skc.f32]):\n    x[0] = 1.0\n")
    (out / "k.tile").mkdir(parents=True)   # where the tile IR would go
    assert main(["compile", str(source), "--emit", "tile", "-o", str(out)]) == 1
    assert "-o: cannot write" in capsys.readouterr().err


def test_dump_dir_naming_a_file_warns_and_a_cached_kernel_is_dumped(tmp_path, monkeypatch):
    skc.set_cache_dir(tmp_path / "cache")
    try:
        (tmp_path / "dumped_kernel_41.py").write_text(
            "import skc\n\n@skc.kernel\ndef dumped(x: skc.Ptr[skc.f32]):\n    x[0] = 3.0\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        kernel = importlib.import_module("dumped_kernel_41").dumped
        afile = tmp_path / "afile"
        afile.write_text("")
        monkeypatch.setenv("SKC_DUMP_DIR", str(afile))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            kernel.compile(target="sm_90a")
        assert any("SKC_DUMP_DIR" in str(w.message) for w in caught)
        monkeypatch.setenv("SKC_DUMP_DIR", str(tmp_path / "dump"))
        kernel._compiled.clear()   # (the next compile comes from the disk cache)
        compiled = kernel.compile(target="sm_90a")
        assert compiled.from_cache and list((tmp_path / "dump").rglob("kernel.tile"))
    finally:
        skc.set_cache_dir(None)


def test_dump_dir_keeps_each_interpreter_specialization_of_a_kernel(tmp_path, monkeypatch):
    """Kernels for the interpreter have no cache key, and every specialization of one went to the same folder
    (NAME-TARGET-interp), each overwriting the one before: only the last compile's stages were left."""
    import numpy as np

    @skc.kernel(block=32)
    def scaled(x: skc.Ptr[skc.f32], factor: skc.constexpr):
        x[skc.thread_id(0)] = factor

    monkeypatch.setenv("SKC_DUMP_DIR", str(tmp_path))
    for factor in (2.0, 3.0):
        scaled.interpret[1, 32](np.zeros(32, np.float32), factor)
    dumped = sorted(path.read_text() for path in tmp_path.glob("scaled-*-interp-*/kernel.tile"))
    assert len(dumped) == 2 and "2.0" in dumped[0] + dumped[1] and "3.0" in dumped[0] + dumped[1]


# -- what the documentation says (a helper's reading, forty-first session) -----------------------------------------
def counted(out):
    j = 0
    while j < 65536:
        j += 1
    out[0] = j


def unrolled(out):
    s = 0
    for i in skc.static_range(5000, max_unroll=5000):
        s += 1
    for i in skc.static_range(2):
        s += 1
    out[0] = s


@pytest.mark.parametrize("fn, expected", [(counted, 65536), (unrolled, 5002)])
def test_the_compile_time_limits_as_documented(fn, expected):
    """A compile-time while may run exactly the limit; a loop's own max_unroll does not use up the kernel's budget."""
    import numpy as np

    out = np.zeros(1, np.int32)
    skc.kernel(fn)[1, 1](out)
    assert out[0] == expected


def test_a_bool_is_no_grid():
    import numpy as np

    @skc.kernel(block=1)
    def one(out: skc.Ptr[skc.f32]):
        out[0] = 1.0

    for grid in (True, (True, 1)):
        with pytest.raises(skc.LaunchError, match="must be an int"):
            one[grid, 1](np.zeros(1, np.float32))


def test_skc_run_says_the_interpreter_was_chosen_not_that_no_gpu_was_found(tmp_path, monkeypatch, capsys):
    from skc.cli import main

    script = tmp_path / "job.py"
    script.write_text("def main():\n    return 'done'\n")
    monkeypatch.setenv("SKC_DEVICE", "interpreter")
    main(["run", str(script)])
    out = capsys.readouterr().out
    assert "in the CPU interpreter" in out and "no GPU found" not in out
    if skc.current_device().is_interpreter and not skc.gpu_available():   # (auto chooses nothing: a GPU if present)
        monkeypatch.setenv("SKC_DEVICE", "auto")
        main(["run", str(script)])
        assert "in the CPU interpreter (no GPU found)" in capsys.readouterr().out


def test_winners_are_kept_where_the_file_system_has_no_locks(cache, monkeypatch):
    import errno

    import skc.autotune as autotune

    def no_locks(*args):
        raise OSError(errno.ENOLCK, "no locks here")

    monkeypatch.setattr(autotune.fcntl, "flock", no_locks)
    tuner = Autotuner(lambda n, B: None, [{"B": 1}], name="tests.nolock", device_name=lambda: "dev",
                      timer=lambda run: (run(), 1.0)[1])
    tuner.choose(0)
    assert json.loads(tuner.path().read_text())["winners"]["dev"]["()"]["config"] == {"B": 1}


def test_the_interpreter_keeps_an_arguments_place_in_16_bytes():
    """A helper's search (sixtieth session): each pointer argument was mapped at a 256-byte aligned base whatever its
    own address, so a 16-byte load from a view a[1:] of f32 (4 bytes past a boundary: a fault on the GPU) read fine."""
    @skc.kernel(block=1)
    def load4(x: skc.Ptr[skc.f32], out: skc.Ptr[skc.f32]):
        v = skc.load(x, width=4)
        out[0] = v[0] + v[1] + v[2] + v[3]

    a, out = np.arange(8, dtype=np.float32), np.zeros(1, np.float32)
    load4[1, 1](a, out)
    assert out[0] == 6.0
    with pytest.raises(skc.InterpreterError, match="misaligned 16-byte load"):
        load4[1, 1](a[1:], out)
    load4[1, 1](a[4:], out)   # (16 bytes in: aligned again)
    assert out[0] == 22.0
