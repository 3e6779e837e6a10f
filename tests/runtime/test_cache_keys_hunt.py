"""Stale kernels a helper's search found (sixtieth session), each now compiled afresh: a function's own attributes
(`act.scale = 2.0`, set outside its def) were no part of its key; numpy array subclasses (a matrix, a masked array)
were keyed as plain arrays, in one process too; numpy's and torch's readers of files by name, linecache and
importlib.resources were trusted by name; torch's factories read the process's default dtype; a user's module named
cuda or hip was trusted by its name; a dataclass field's compare, repr and metadata were no part of the key."""
import dataclasses
import sys
import types

import numpy as np
import pytest

import skc
from skc.frontend import keying
from test_cache_keys_more import constants, two_versions

HELPERS = {
    "plain": "def act(v):\n    return v\n",
    "skc.func": "@skc.func\ndef act(v):\n    return v\n",
}


@pytest.mark.parametrize("kind", list(HELPERS))
def test_a_functions_own_attribute_is_part_of_its_key_on_disk(tmp_path, kind):
    kernel = ("import skc\n\n" + HELPERS[kind] + "act.scale = 2.0\n\n"
              "@skc.kernel(block=32)\ndef k(x: skc.Ptr[skc.f32]):\n    x[0] = act(x[0]) * act.scale\n")
    second, fresh = two_versions(tmp_path, {"kernels.py": kernel}, {"kernels.py": kernel.replace("2.0", "3.0")})
    assert second["from_cache"] is False
    assert "3.0" in constants(second["tile"]) and constants(second["tile"]) == constants(fresh["tile"])


def test_a_functions_own_attribute_set_after_a_launch_gives_a_new_kernel():
    def scale():
        return 1.0

    scale.by = 2.0

    @skc.kernel(block=1)
    def k(x: skc.Ptr[skc.f32]):
        x[0] = scale() * scale.by

    out = np.zeros(1, np.float32)
    k[1, 1](out)
    assert out[0] == 2.0
    scale.by = 3.0
    k[1, 1](out)
    assert out[0] == 3.0


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")   # (numpy.matrix's)
def test_numpy_array_subclasses_are_keyed_by_their_class_and_state():
    a = np.arange(6.0).reshape(2, 3)
    assert keying.value_key(np.matrix(a)) != keying.value_key(a)
    masked = [np.ma.array(a, mask=mask) for mask in ([[0, 1, 0], [0, 0, 0]], [[0, 0, 0], [0, 1, 0]])]
    assert keying.value_key(masked[0]) != keying.value_key(masked[1])
    assert keying.value_key(np.ma.array(a, mask=[[0, 1, 0], [0, 0, 0]])) == keying.value_key(masked[0])
    assert keying.value_key(np.dtype("f4")) == "np.dtype:[('', '<f4')]:numpy.float32"


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_a_matrix_given_after_an_array_of_the_same_data_gets_its_own_kernel():
    @skc.kernel(block=1)
    def k(out: skc.Ptr[skc.f32], m: skc.constexpr):
        out[0] = float((m * m).sum())   # (elementwise for an array, the matrix product for a matrix)

    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    out = np.zeros(1, np.float32)
    k[1, 1](out, a)
    assert out[0] == 30.0
    k[1, 1](out, np.matrix(a))
    assert out[0] == 54.0


def test_a_dataclass_fields_options_are_part_of_its_classs_key():
    def made(**options):
        @dataclasses.dataclass(frozen=True)
        class Cfg:
            a: int = 1
            b: int = dataclasses.field(default=0, **options)
        return keying.value_key(Cfg)

    plain = made()
    assert made(compare=False) != plain and made(repr=False) != plain and made(hash=False) != plain
    assert made(metadata={"scale": 2.0}) != made(metadata={"scale": 3.0}) != plain
    assert made(metadata={"scale": 2.0}) == made(metadata={"scale": 2.0})


@pytest.mark.parametrize("reader", ["np.loadtxt", "np.genfromtxt", "np.fromfile", "np.load", "np.memmap",
                                    "linecache.getline", "importlib.resources.files", "torch.load"])
def test_readers_of_files_by_name_have_no_key(reader):
    """Trusted by name, a data file read at compile time through them was served from disk after the file changed."""
    import importlib.resources  # noqa: F401
    import linecache  # noqa: F401

    torch = pytest.importorskip("torch") if reader.startswith("torch") else None
    # (a helper a kernel calls at compile time: `def table(): return np.loadtxt(...)`)
    helper = types.FunctionType(compile(f"def f():\n    return {reader}\n", "<reader>", "exec").co_consts[0],
                                {"np": np, "linecache": sys.modules["linecache"], "importlib": sys.modules["importlib"],
                                 "torch": torch})
    with pytest.raises(keying.Unkeyable, match="process"):
        keying.value_key(helper)


def test_torchs_functions_are_keyed_with_its_default_dtype():
    torch = pytest.importorskip("torch")
    before = keying.value_key(torch.ones), keying.value_key(torch), keying.value_key(torch.Tensor)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        after = keying.value_key(torch.ones), keying.value_key(torch), keying.value_key(torch.Tensor)
    finally:
        torch.set_default_dtype(old)
    assert all(b != a for b, a in zip(before, after)) and "float64" in after[0]
    assert "defaults" not in keying.value_key(np.ones)


def test_a_users_module_named_cuda_is_keyed_by_content(tmp_path, monkeypatch):
    mine = types.ModuleType("cuda")
    mine.__file__ = str(tmp_path / "cuda.py")
    installed = sys.modules.get("cuda")
    monkeypatch.setitem(sys.modules, "cuda", mine)
    assert not keying.trusted_module("cuda") and not keying.trusted_module("cuda.ops")
    if installed is not None and getattr(installed, "__path__", None):   # (cuda-python's: a namespace package)
        monkeypatch.setitem(sys.modules, "cuda", installed)
        assert keying.trusted_module("cuda.bindings.driver")


@pytest.mark.parametrize("module", ["hip", "cuda"])
def test_an_edit_of_a_users_module_named_like_a_gpu_library_is_seen_on_disk(tmp_path, module):
    kernel = (f"import skc\nfrom {module} import act\n\n"
              "@skc.kernel(block=32)\ndef k(x: skc.Ptr[skc.f32]):\n    x[0] = act(x[0])\n")
    helper = "import skc\n\n@skc.func\ndef act(v):\n    return v * 2.0\n"
    path = f"{module}.py"
    second, fresh = two_versions(tmp_path, {"kernels.py": kernel, path: helper}, {path: helper.replace("2.0", "3.0")})
    assert second["from_cache"] is False and "3.0" in constants(second["tile"])
