"""Inputs that decide a compiled kernel, each told apart by the compile cache's keys (the launch's in memory, the
specialization's and the disk's): values numpy describes alike but a kernel reads apart, and the autotuner's
winners, kept for the configs they were the fastest of."""
import itertools
import os

import numpy as np
import pytest

import skc
from skc.autotune import Autotuner
from skc.frontend import keying
from skc.runtime import cache
from skc.runtime.devices import using_device

ml_dtypes = pytest.importorskip("ml_dtypes")

# numpy's descr names each of these '<V1' (or '<V2'): a type it does not define, by its size alone
ONE_BYTE = ("float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e4m3b11fnuz", "int4", "uint4")


def by_dtype_name(out: skc.Ptr[skc.f32], DT: skc.constexpr):
    if DT.name == "float8_e4m3fn":
        out[0] = 1.0
    else:
        out[0] = 2.0


def by_array_dtype(out: skc.Ptr[skc.f32], T: skc.constexpr):
    if T.dtype.name == "float8_e4m3fn":
        out[0] = 1.0
    else:
        out[0] = 2.0


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SKC_CACHE", "1")
    cache.set_cache_dir(tmp_path)
    yield tmp_path
    cache.set_cache_dir(None)


def test_numpy_types_of_one_layout_have_keys_of_their_own():
    """descr gave every ml_dtypes type of one byte as [('', '<V1')]: their dtypes, scalars and arrays had one key."""
    types = [getattr(ml_dtypes, name) for name in ONE_BYTE] + [np.dtype("V1").type]
    for make in (np.dtype, lambda t: np.zeros((), t)[()], lambda t: np.zeros(3, t)):
        keys = [keying.value_key(make(t)) for t in types]
        assert len(set(keys)) == len(keys), keys
    assert keying.value_key(np.dtype(ml_dtypes.bfloat16)) != keying.value_key(np.dtype("V2"))


@pytest.mark.parametrize("kernel, make", [(by_dtype_name, np.dtype), (by_array_dtype, lambda t: np.zeros(2, t))],
                         ids=["dtype", "array"])
def test_a_launch_with_another_numpy_type_of_one_layout_gets_its_own_kernel(kernel, make):
    """A kernel launched with float8_e4m3fnuz's dtype after float8_e4m3fn's ran the one compiled for float8_e4m3fn
    (the specialization's key, which picks the compiled and loaded kernel, was the same): it wrote 1.0, not 2.0."""
    launched = skc.kernel(block=32)(kernel)
    for name, expected in [("float8_e4m3fn", 1.0), ("float8_e4m3fnuz", 2.0), ("float8_e5m2fnuz", 2.0),
                           ("float8_e4m3fn", 1.0)]:
        out = np.zeros(1, np.float32)
        launched.interpret[1, 32](out, make(getattr(ml_dtypes, name)))
        assert out[0] == expected, name


def test_a_numpy_type_of_one_layout_is_no_disk_hit_for_another(fresh_cache):
    """A process compiling for float8_e4m3fnuz's dtype was served the entry a process had stored for float8_e4m3fn."""
    def compile_afresh(name):   # (a new Kernel has nothing in memory: it meets only the disk cache)
        return skc.kernel(block=32)(by_dtype_name).compile(DT=np.dtype(getattr(ml_dtypes, name)), target="sm_90a")

    first = compile_afresh("float8_e4m3fn")
    assert first.from_cache is False and compile_afresh("float8_e4m3fn").from_cache is True
    other = compile_afresh("float8_e4m3fnuz")
    assert other.from_cache is False
    assert other.ir("tile") != first.ir("tile")
    assert all(a.key != b.key for a, b in itertools.combinations(
        [first, other, compile_afresh("int4"), compile_afresh("float8_e5m2fnuz")], 2))


# -- the autotuner's winners --------------------------------------------------------------------------------------
def config_tuner(tiles, timed):
    """A tuner of the configs {"tile": t} for t in tiles, whose tile t takes 10 - t ms (the largest tile wins)."""
    def launch(n, tile):
        launch.last = tile

    def timer(run):
        run()
        timed.append(launch.last)
        return 10.0 - launch.last
    return Autotuner(launch, [{"tile": tile} for tile in tiles], key=lambda n: n, name="tests.configs", timer=timer,
                     device_name=lambda: "fake device")


def test_a_winner_of_other_configs_is_timed_again(fresh_cache):
    """The winner read back was any stored config that is still a candidate: a config added to a list made in another
    file than the launch function's (which keys the winners' code) was never timed, and the old winner ran for good."""
    timed = []
    assert config_tuner([1, 2], timed).choose(5) == {"tile": 2}
    assert config_tuner([2, 1], timed).choose(5) == {"tile": 2}   # (the same configs, in another order: read back)
    assert timed == [1, 2]
    assert config_tuner([1, 2, 3], timed).choose(5) == {"tile": 3}
    assert timed == [1, 2, 1, 2, 3]
    assert config_tuner([1, 2, 3], timed).choose(5) == {"tile": 3}
    assert config_tuner([1, 2], timed).choose(5) == {"tile": 2}   # (the winner of 3 is none of these)
    assert timed == [1, 2, 1, 2, 3, 1, 2]


# -- the libraries' own state, read at compile time ---------------------------------------------------------------
torch = pytest.importorskip("torch")
from torch import get_default_dtype   # noqa: E402  (a state reader bound as a global of the user's)


def default_is_f64():
    return torch.get_default_dtype() == torch.float64


def tf32_allowed():
    return torch.backends.cuda.matmul.allow_tf32


def tf32_kernel(x: skc.Ptr[skc.f32]):
    x[0] = 1.0 if torch.backends.cuda.matmul.allow_tf32 else 2.0


def cudnn_kernel(x: skc.Ptr[skc.f32]):
    x[0] = 1.0 if torch.backends.cudnn.allow_tf32 else 2.0


def default_dtype_kernel(x: skc.Ptr[skc.f32]):
    x[0] = 1.0 if torch.get_default_dtype() == torch.float64 else 2.0


def imported_reader_kernel(x: skc.Ptr[skc.f32]):
    x[0] = 1.0 if get_default_dtype() == torch.float64 else 2.0


def helper_kernel(x: skc.Ptr[skc.f32]):
    x[0] = 1.0 if default_is_f64() else 2.0


def helper_flag_kernel(x: skc.Ptr[skc.f32]):
    x[0] = 1.0 if tf32_allowed() else 2.0


def deterministic_kernel(x: skc.Ptr[skc.f32]):
    x[0] = 1.0 if torch.are_deterministic_algorithms_enabled() else 2.0


def numpy_errors_kernel(x: skc.Ptr[skc.f32]):
    x[0] = 1.0 if np.geterr()["over"] == "raise" else 2.0


def sm_count_kernel(x: skc.Ptr[skc.f32]):
    x[0] = 1.0 if skc.current_device().multiprocessors == 8 else 2.0


def set_state(on: bool):
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on
    torch.set_default_dtype(torch.float64 if on else torch.float32)
    torch.use_deterministic_algorithms(on)
    np.seterr(over="raise" if on else "warn")
    os.environ["SKC_INTERPRETER_SMS"] = "8" if on else "4"   # (the interpreter's SMs: another machine's GPU)


@pytest.fixture
def library_state(monkeypatch):
    monkeypatch.setenv("SKC_INTERPRETER_SMS", "4")
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.get_default_dtype(),
             torch.are_deterministic_algorithms_enabled(), np.geterr())
    yield set_state
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
    torch.set_default_dtype(saved[2])
    torch.use_deterministic_algorithms(saved[3])
    np.seterr(**saved[4])


@pytest.mark.parametrize("body", [tf32_kernel, cudnn_kernel, default_dtype_kernel, imported_reader_kernel,
                                  helper_kernel, helper_flag_kernel, deterministic_kernel, numpy_errors_kernel,
                                  sm_count_kernel],
                         ids=lambda body: body.__name__)
def test_what_a_compile_reads_of_a_librarys_state_is_never_served_from_disk(fresh_cache, library_state, body):
    """torch and numpy are keyed by name (their code changes only with an installation), and so were their settings:
    a kernel that read torch.backends.cuda.matmul.allow_tf32 (or torch.get_default_dtype(), np.geterr()) as True was
    served from disk to a process where it is False; skc's own devices alike (a kernel that read the current device's
    SM count was served to a machine whose GPU has another)."""
    for on in (True, False, True):
        library_state(on)
        with using_device("interpreter"):
            compiled = skc.kernel(block=32)(body).compile(target="sm_90a")   # (a new Kernel: nothing in memory)
        assert compiled.from_cache is False
        assert f"], {1065353216 if on else 1073741824};" in compiled.asm("ptx")   # (the bits of 1.0 or 2.0 stored)
    assert "the process's state" in " ".join(compiled.metadata["uncached_reads"])


def widest_float():
    return torch.float64 if torch.finfo(torch.float64).bits > np.finfo(np.float32).bits else torch.float32


def library_types_kernel(x: skc.Ptr[skc.f32]):
    x[0] = skc.cast(skc.cast(x[0], torch.bfloat16), np.float32) * (1.0 if widest_float() == torch.float64 else 2.0)


def test_what_a_compile_reads_of_a_librarys_code_is_still_served_from_disk(fresh_cache):
    """The libraries' types and pure functions are no state: their kernels are kept on disk."""
    first = skc.kernel(block=32)(library_types_kernel).compile(target="sm_90a")
    assert first.metadata["uncached_reads"] == []
    assert skc.kernel(block=32)(library_types_kernel).compile(target="sm_90a").from_cache is True


# -- skc's own files, edited after a process imported them --------------------------------------------------------
EDIT_AFTER_IMPORT = '''
import json, sys, warnings
import skc

def unrolled(x: skc.Ptr[skc.f32]):
    total = x[0]
    for _ in skc.static_range(10):
        total = total + 1.0
    x[0] = total

if sys.argv[1] == "edit":   # skc updated in place while this process runs (it runs the code it imported)
    path = skc.__path__[0] + "/frontend/builtins.py"
    text = open(path).read()
    edited = text.replace("return int(text) if text else 4096", "return int(text) if text else 4")
    assert edited != text, "max_unroll's default moved; update this test"
    open(path, "w").write(edited)
report = {}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    try:
        report["from_cache"] = skc.kernel(block=32)(unrolled).compile(target="sm_90a").from_cache
    except skc.CompileError as error:
        report["error"] = str(error)
tuner = skc.autotune.Autotuner(lambda tile: None, [{"tile": 1}, {"tile": 2}], name="edited", timer=lambda run: 1.0,
                               device_name=lambda: "fake device")
tuner.choose()
report["warnings"] = [str(w.message) for w in caught]
print(json.dumps(report))
'''


def test_a_process_that_imported_skc_before_an_edit_keeps_its_kernels_off_disk(tmp_path):
    """A process (a notebook, a server) that imported skc before skc's files were edited read the source digest from
    the edited files, and stored its old code's kernels under it: a process of the edited skc was served them (here
    a kernel the edited skc refuses)."""
    import json
    import shutil
    import subprocess
    import sys

    shutil.copytree(os.path.dirname(skc.__file__), tmp_path / "installed" / "skc",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, SKC_CACHE_DIR=str(tmp_path / "cache"), SKC_CACHE="1", PYTHONDONTWRITEBYTECODE="1",
               PYTHONPATH=str(tmp_path / "installed"))

    (tmp_path / "runner.py").write_text(EDIT_AFTER_IMPORT)   # (a file: skc reads the kernel's source)

    def run(mode):
        done = subprocess.run([sys.executable, "runner.py", mode], capture_output=True, text=True, env=env,
                              timeout=300, cwd=str(tmp_path))
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    before = run("edit")
    stored = (tmp_path / "cache" / "autotune" / "edited.json").exists()
    after = run("")
    assert "the limit is 4" in after.get("error", ""), after
    assert before.get("from_cache") is False, before   # (compiled by the code it imported: the limit of 4096)
    assert any("changed after this process imported skc" in w for w in before["warnings"])
    assert not stored and (tmp_path / "cache" / "autotune" / "edited.json").exists()
    assert not after["warnings"]


def test_the_warning_of_skc_edited_after_import_names_the_users_line(fresh_cache, monkeypatch):
    """The warning pointed into skc (skc/jit.py, the frame three levels up from where it was raised), not at the
    call of the user's that compiled."""
    import warnings

    from skc import compiler

    monkeypatch.setattr(compiler, "_IMPORTED_SOURCES", ())   # (as if every file changed since the import)
    monkeypatch.setattr(compiler, "_CHANGED_WARNING", [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kernel = skc.kernel(block=32)(by_dtype_name).compile(DT=np.dtype(np.float32), target="sm_90a")   # marker
    assert kernel.from_cache is False
    (warning,) = [w for w in caught if "changed after this process imported skc" in str(w.message)]
    assert warning.filename == __file__, warning.filename
    assert "# marker" in open(__file__).read().splitlines()[warning.lineno - 1]
