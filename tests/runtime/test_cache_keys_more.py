"""Stale kernels a helper's search found (forty-first session), each now compiled afresh: a module-level name
added later over a builtin the kernel called; a user's module named like a standard one (trusted by its name);
a metaclass's property; a helper that imports a module inside its body; a closure rebound with `nonlocal`; a
closure function and a frozen dataclass with state besides its fields given as constexprs. And a kernel with
default arguments now hits the disk cache."""
import collections
import dataclasses
import re
import textwrap
import types

import numpy as np
import pytest

import skc
from skc.frontend import keying
from test_cache_keys import run_compiles

HEADER = "import skc\n"


def constants(tile: str) -> list:
    return sorted(re.findall(r"value = ([-0-9.e+]+)", tile))


def two_versions(tmp_path, files_v1: dict, files_v2: dict, kernel="k"):
    """Compile in one process with files_v1, then with files_v2 in a second process sharing the cache, then with
    files_v2 and an empty cache: the second and third reports."""
    code = tmp_path / "code"
    code.mkdir()
    for name, text in files_v1.items():
        (code / name).write_text(textwrap.dedent(text))
    run_compiles(code, tmp_path / "cache", [kernel])
    for name, text in files_v2.items():
        (code / name).write_text(textwrap.dedent(text))
    second = run_compiles(code, tmp_path / "cache", [kernel])["kernels"][kernel]
    fresh = run_compiles(code, tmp_path / "fresh", [kernel])["kernels"][kernel]
    return second, fresh


KERNEL_CALLING_MAX = HEADER + '''
@skc.kernel(block=32)
def k(x: skc.Ptr[skc.f32]):
    x[0] = x[0] + max(3.0, 5.0)
'''


def test_a_global_added_over_a_builtin_the_kernel_called(tmp_path):
    shadowed = KERNEL_CALLING_MAX + "\ndef max(a, b):\n    return a + b + 100.0\n"
    second, fresh = two_versions(tmp_path, {"kernels.py": KERNEL_CALLING_MAX}, {"kernels.py": shadowed})
    assert second["from_cache"] is False
    assert constants(second["tile"]) == constants(fresh["tile"]) and "108.0" in constants(second["tile"])


def test_a_users_module_named_like_a_standard_one_is_keyed_by_content(tmp_path):
    kernel = HEADER + '''
import profile   # the user's profile.py, beside this file

@skc.kernel(block=32)
def k(x: skc.Ptr[skc.f32]):
    x[0] = x[0] + profile.TILE
'''
    second, fresh = two_versions(tmp_path, {"kernels.py": kernel, "profile.py": "TILE = 64.0\n"},
                                 {"profile.py": "TILE = 128.0\n"})
    assert second["from_cache"] is False and "128.0" in constants(second["tile"])


def test_installed_modules_only_are_trusted_by_name():
    assert keying.trusted_module("numpy") and keying.trusted_module("os") and keying.trusted_module("skc.blocks")
    assert not keying._installed("profile", "/home/someone/project/profile.py")
    assert not keying.trusted_module("kernels_of_mine")


def test_a_metaclass_is_part_of_its_class_key(tmp_path):
    def module(tile):
        return HEADER + f'''
class Meta(type):
    @property
    def TILE(cls):
        return {tile}

class Cfg(metaclass=Meta):
    pass

@skc.kernel(block=32)
def k(x: skc.Ptr[skc.f32]):
    x[0] = x[0] + Cfg.TILE
'''
    second, _ = two_versions(tmp_path, {"kernels.py": module(64.0)}, {"kernels.py": module(128.0)})
    assert second["from_cache"] is False and "128.0" in constants(second["tile"])


def test_a_helper_importing_a_module_in_its_body(tmp_path):
    kernel = HEADER + '''
def tile_size():
    import cfg
    return cfg.TILE

@skc.kernel(block=32)
def k(x: skc.Ptr[skc.f32]):
    x[0] = x[0] + tile_size()
'''
    second, _ = two_versions(tmp_path, {"kernels.py": kernel, "cfg.py": "TILE = 64.0\n"},
                             {"cfg.py": "TILE = 128.0\n"})
    assert second["from_cache"] is False and "128.0" in constants(second["tile"])
    again = run_compiles(tmp_path / "code", tmp_path / "cache", ["k"])["kernels"]["k"]
    assert again["from_cache"] is True   # (unchanged, it is served from disk: the key does not depend on the import)


def test_a_kernel_with_default_arguments_hits_the_disk_cache(tmp_path):
    kernel = HEADER + '''
@skc.kernel(block=32)
def k(x: skc.Ptr[skc.f32], n: skc.constexpr = 7):
    x[0] = x[0] + n
'''
    second, _ = two_versions(tmp_path, {"kernels.py": kernel}, {})
    assert second["from_cache"] is True


def test_a_closure_rebound_after_a_compile():
    scale = 2.0

    @skc.kernel(block=32)
    def scaled(x: skc.Ptr[skc.f32]):
        x[0] = x[0] * scale

    def rebind(value):
        nonlocal scale
        scale = value

    x = np.ones(1, np.float32)
    scaled[1, 1](x)
    rebind(3.0)
    scaled[1, 1](x)
    assert x[0] == 6.0
    assert "3.0" in constants(scaled.compile(target="sm_90a").ir("tile"))


def test_a_closure_function_given_as_a_constexpr_sees_its_cell_rebound():
    factor = 2.0

    def times(v):
        return v * factor

    @skc.kernel(block=32)
    def apply(x: skc.Ptr[skc.f32], f: skc.constexpr):
        x[0] = f(x[0])

    x = np.ones(1, np.float32)
    apply[1, 1](x, times)
    factor = 3.0
    apply[1, 1](x, times)
    assert x[0] == 6.0


def _loader(wide: bool):
    if wide:
        @skc.func
        def load(p):
            v: skc.f64 = p[0]
            return v
    else:
        @skc.func
        def load(p):
            v: skc.f32 = p[0]   # (the same code object as the other: Python does not run a local's annotation)
            return v
    return load


def test_functions_differing_only_in_what_python_does_not_run_get_kernels_of_their_own():
    """A function was keyed by its code object, which leaves out a local variable's annotation; the frontend compiles
    the source, where `v: skc.f64` is not `v: skc.f32`. Two such DSL functions given as a constexpr had one key, and
    the second compile was given the kernel of the first."""
    @skc.kernel(block=32)
    def apply(x: skc.Ptr[skc.f32], f: skc.constexpr):
        x[1] = f(x) / 3.0

    wide, narrow = _loader(True), _loader(False)
    assert keying.value_key(wide) != keying.value_key(narrow)
    assert "f64" in apply.compile(skc.Ptr[skc.f32], wide, target="sm_90a").ir("tile")
    assert "f64" not in apply.compile(skc.Ptr[skc.f32], narrow, target="sm_90a").ir("tile")


@dataclasses.dataclass(frozen=True)
class Settings:
    tile: int


def test_a_frozen_dataclass_with_state_besides_its_fields():
    @skc.kernel(block=32)
    def scaled(x: skc.Ptr[skc.f32], s: skc.constexpr):
        x[0] = s.scale

    out = []
    for value in (2.0, 3.0):
        s = Settings(1)
        object.__setattr__(s, "scale", value)
        x = np.zeros(1, np.float32)
        scaled[1, 1](x, s)
        out.append(x[0])
    assert out == [2.0, 3.0]


class OneSlot:
    __slots__ = "scale"   # (one string: one slot)

    def __init__(self, scale):
        self.scale = scale


class PrivateSlot:
    __slots__ = ("__scale",)   # (stored as _PrivateSlot__scale)

    def __init__(self, scale):
        self.__scale = scale

    @property
    def scale(self):
        return self.__scale


class SettingsWithSlot(Settings):
    __slots__ = ("scale",)

    def __init__(self, tile, scale):
        object.__setattr__(self, "tile", tile)
        object.__setattr__(self, "scale", scale)


@pytest.mark.parametrize("make", [OneSlot, PrivateSlot, lambda scale: SettingsWithSlot(1, scale)],
                         ids=["one-string", "private", "dataclass-subclass"])
def test_state_in_slots_is_part_of_the_key(make):
    """An object's slots were read as `__slots__` lists them: a class's one slot given as a string was read as one
    slot per letter, and a private slot under its unmangled name, none of which the object has; and the launch key
    of a frozen dataclass took == for the whole value where a subclass's slot held more. Objects of other values had
    one key: the second launch ran the kernel compiled for the first."""
    @skc.kernel(block=32)
    def scaled(x: skc.Ptr[skc.f32], s: skc.constexpr):
        x[0] = s.scale

    assert keying.value_key(make(2.0)) != keying.value_key(make(3.0))
    out = []
    for value in (2.0, 3.0):
        x = np.zeros(1, np.float32)
        scaled[1, 1](x, make(value))
        out.append(x[0])
    assert out == [2.0, 3.0]


def test_the_same_kernel_compiles_to_the_same_ptx_in_every_process(tmp_path):
    """Where paths meet, the names were merged in a set's order, which string hashing changes from one process to
    the next: the same kernel gave PTX with its stores in another order (an audit's finding)."""
    import os
    import subprocess
    import sys

    script = tmp_path / "merge.py"
    script.write_text(textwrap.dedent('''
        import hashlib, skc

        @skc.kernel(block=32)
        def k(x: skc.Ptr[skc.f32], n: skc.i32):
            a = x[0]; b = x[1]; c = x[2]; d = x[3]; e = x[4]
            if n > 3:
                a = a + 1.0; b = b * 2.0; c = c - 3.0; d = d / 4.0; e = e + a
            x[5] = a + b + c + d + e

        print(hashlib.sha256(k.compile(target="sm_90a").asm("ptx").encode()).hexdigest())
    '''))
    digests = set()
    for seed in ("1", "2", "3"):
        env = dict(os.environ, PYTHONHASHSEED=seed, SKC_CACHE="0", SKC_CACHE_DIR=str(tmp_path / seed),
                   PYTHONPATH=os.path.dirname(os.path.dirname(skc.__file__)))
        result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
        assert result.returncode == 0, result.stderr
        digests.add(result.stdout.strip())
    assert len(digests) == 1


def test_a_closure_kernel_compiled_many_ways_watches_each_cell_once():
    """Each compile viewed the closure's cells anew, and the launch's watch list grew by them with every
    specialization (400 entries for 200, checked on every launch)."""
    def factory():
        scale, shift = 2.0, 1.0

        @skc.kernel(block=1)
        def made(x: skc.Ptr[skc.f32], n: skc.constexpr):
            x[0] = x[0] * scale + shift + n
        return made

    made = factory()
    x = np.zeros(1, np.float32)
    for n in range(20):
        made[1, 1](x, n)
    assert len(made._watch) == 2


PROCESS_STATE = HEADER + '''
import configparser, os, time
from os import getenv

def from_config():
    parser = configparser.ConfigParser()
    parser.read("scale.ini")
    return float(parser["k"]["scale"])

@skc.kernel(block=32)
def helper_config(x: skc.Ptr[skc.f32]):
    x[0] = x[0] * from_config()

def from_file():
    with open("scale.txt") as f:
        return float(f.read())

def from_getenv():
    return float(getenv("MY_SCALE"))

def imports_os():
    import os as here
    return float(here.environ["MY_SCALE"])

@skc.kernel(block=32)
def environ(x: skc.Ptr[skc.f32]):
    x[0] = x[0] * float(os.environ["MY_SCALE"])

@skc.kernel(block=32)
def helper_getenv(x: skc.Ptr[skc.f32]):
    x[0] = x[0] * from_getenv()

@skc.kernel(block=32)
def helper_import(x: skc.Ptr[skc.f32]):
    x[0] = x[0] * imports_os()

@skc.kernel(block=32)
def helper_open(x: skc.Ptr[skc.f32]):
    x[0] = x[0] * from_file()

@skc.kernel(block=32)
def kernel_open(x: skc.Ptr[skc.f32]):
    x[0] = x[0] * float(open("scale.txt").read())

@skc.kernel(block=32)
def clock(x: skc.Ptr[skc.f32]):
    x[0] = x[0] * (time.time() > 0)
'''


def test_what_a_compile_reads_from_the_process_state_is_never_served_from_disk(tmp_path, monkeypatch):
    """os.environ, os.getenv and files read at compile time (the standard library is trusted by name) were keyed as
    unchanged: a kernel compiled with MY_SCALE=2 was served from disk to a process with MY_SCALE=5."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "kernels.py").write_text(PROCESS_STATE)
    names = ["environ", "helper_getenv", "helper_import", "helper_open", "kernel_open", "clock", "helper_config"]
    for scale in ("2.0", "5.0"):
        monkeypatch.setenv("MY_SCALE", scale)
        (code / "scale.txt").write_text(scale)
        (code / "scale.ini").write_text(f"[k]\nscale = {scale}\n")   # (configparser reads files by name)
        report = run_compiles(code, tmp_path / "cache", names)
        for name in names:
            assert report["kernels"][name]["from_cache"] is False, name
            if name != "clock":
                assert scale in constants(report["kernels"][name]["tile"]), name
    assert "reads the process's state" in report["stderr"]
    assert keying.value_key(len) and keying.value_key(print)   # (builtins that read nothing are keyed by name)


def test_a_function_given_as_a_constexpr_sees_its_defaults_set_anew():
    """The launch key held the function by identity: after `f.__defaults__ = (2.0,)` a launch ran the kernel compiled
    with the old default (compile(), keying the function whole, did not)."""
    def times(v, d=1.0):
        return v * d

    @skc.kernel(block=32)
    def apply(x: skc.Ptr[skc.f32], f: skc.constexpr):
        x[0] = f(x[0])

    x = np.ones(1, np.float32)
    apply[1, 1](x, times)
    times.__defaults__ = (2.0,)
    apply[1, 1](x, times)
    assert x[0] == 2.0
    times.__code__ = (lambda v, d=1.0: v * d * 3.0).__code__
    apply[1, 1](x, times)
    assert x[0] == 12.0


# -- a helper that reaches a module of the user's other than by `cfg.NAME` on a global ---------------------------
# (a module was keyed by its name and the attributes its helper's code named, and only where it was a global of the
# helper: cfg.py's TILE edited, each of these was served from disk with the old TILE)
HELPERS_READING_A_MODULE = {
    "getattr": "import cfg\ndef tile_size():\n    return getattr(cfg, 'TILE')\n",
    "getattr_by_name": "import cfg\nNAME = 'TILE'\ndef tile_size():\n    return getattr(cfg, NAME)\n",
    "vars": "import cfg\ndef tile_size():\n    return vars(cfg)['TILE']\n",
    "dunder_dict": "import cfg\ndef tile_size():\n    return cfg.__dict__['TILE']\n",
    "module_in_a_dict": "import cfg\nMODULES = {'a': cfg}\ndef tile_size():\n    return MODULES['a'].TILE\n",
    "module_in_a_class": "import cfg\nclass Holder:\n    m = cfg\ndef tile_size():\n    return Holder.m.TILE\n",
    "import_module": "import importlib\ndef tile_size():\n    return importlib.import_module('cfg').TILE\n",
    "module_getattr": "import lazy\ndef tile_size():\n    return lazy.TILE\n",
}


@pytest.mark.parametrize("way", sorted(HELPERS_READING_A_MODULE))
def test_a_helper_reading_a_modules_attribute_another_way(tmp_path, way):
    kernel = HEADER + '''
from helper import tile_size

@skc.kernel(block=32)
def k(x: skc.Ptr[skc.f32]):
    x[0] = x[0] + tile_size()
'''
    lazy = "import cfg\ndef __getattr__(name):\n    return cfg.TILE\n"   # (PEP 562: a name the module does not bind)
    files = {"kernels.py": kernel, "helper.py": HELPERS_READING_A_MODULE[way], "lazy.py": lazy}
    second, _ = two_versions(tmp_path, {**files, "cfg.py": "TILE = 64.0\n"}, {"cfg.py": "TILE = 128.0\n"})
    assert second["from_cache"] is False and "128.0" in constants(second["tile"])


def test_a_defaultdicts_factory_is_part_of_its_key():
    table = collections.defaultdict(lambda: 64.0)
    other = collections.defaultdict(lambda: 128.0)
    assert keying.value_key(table) != keying.value_key(other)
    assert keying.value_key(table) == keying.value_key(collections.defaultdict(lambda: 64.0))


def _user_module(name: str, **attributes) -> types.ModuleType:
    module = types.ModuleType(name)   # (a name of no installed module: the user's, keyed by content)
    vars(module).update(attributes)
    return module


def _function_of(module: types.ModuleType, source: str):
    exec(textwrap.dedent(source), vars(module))
    return vars(module)[source.split("def ")[1].split("(")[0]]


def test_a_module_met_again_through_a_function_naming_other_attributes_is_keyed_with_them():
    # cfg imports util, util imports cfg: the helper names cfg.N and cfg.util.scale, and scale reads cfg.FACTOR.
    # cfg, being keyed for the helper's names, was referred to by name where scale reached it, so FACTOR was in no
    # key and a kernel compiled with FACTOR = 2.0 was served from disk, and in memory, with FACTOR = 3.0
    cfg = _user_module("review_cfg", N=4.0, FACTOR=2.0)
    util = _user_module("review_util", review_cfg=cfg)
    cfg.review_util = util
    _function_of(util, "def scale(x):\n    return x * review_cfg.FACTOR\n")
    main = _user_module("review_main", review_cfg=cfg)
    helper = _function_of(main, "def helper():\n    return review_cfg.N + review_cfg.review_util.scale(2.0)\n")
    reads = []
    before = keying.value_key(helper, reads)
    assert any(space is vars(cfg) and name == "FACTOR" for space, name, _ in reads)
    cfg.FACTOR = 3.0
    assert keying.value_key(helper) != before


def test_modules_that_hold_each_other_are_keyed_once_each():
    # a package whose submodules hold one another: each module was keyed again on every way to it (8 modules,
    # 13700 ways: 4 s and a key of 17 MB)
    modules = [_user_module(f"review_pkg.m{i}", X=i) for i in range(8)]
    package = _user_module("review_pkg", **{f"m{i}": m for i, m in enumerate(modules)})
    for module in modules:
        vars(module).update(vars(package), review_pkg=package)
    main = _user_module("review_main", review_pkg=package)
    helper = _function_of(main, "def helper(name):\n    return getattr(review_pkg, name).X\n")
    key = keying.value_key(helper)
    assert len(key) < 20_000
    modules[5].X = 50
    assert keying.value_key(helper) != key


def test_a_set_whose_element_holds_the_set_again_is_keyed():
    # each element of a set is keyed on its own; one that reaches back to the set (a registry of the functions that
    # read it, nodes that are each other's neighbours) was keyed anew at each turn, until Python's recursion limit:
    # no key, and as a constexpr a compile error
    @dataclasses.dataclass(eq=False)
    class Node:
        value: int
        neighbours: set = dataclasses.field(default_factory=set)

    a, b = Node(1), Node(2)
    a.neighbours.add(b)
    b.neighbours.add(a)
    key = keying.value_key(a)
    b.value = 3
    assert keying.value_key(a) != key
    registry = _user_module("review_registry", REGISTRY=set())
    reader = _function_of(registry, "def reader():\n    return len(REGISTRY)\n")
    registry.REGISTRY.add(reader)
    assert keying.value_key(reader).count("fn:review_registry.reader") == 1


@skc.kernel(block=1)
def cast_to(x: skc.Ptr[skc.f32], T: skc.constexpr):
    x[0] = skc.f32(skc.cast(x[0] + 0.75, T))


INT32_BY_GLOBAL = None   # (bound by the test to a torch dtype)


@skc.kernel(block=1)
def cast_by_global(x: skc.Ptr[skc.f32]):
    x[0] = skc.f32(skc.cast(x[0] + 0.75, INT32_BY_GLOBAL))


def test_torch_dtypes_are_keyed_by_their_name(monkeypatch):
    """The frontend takes torch's dtypes where an skc dtype goes (skc.cast(x, T)), but keying refused them: a kernel
    given x.dtype as a constexpr could not launch ("a torch.dtype object has no exact key"), and one reading a torch
    dtype as a global was never stored in the disk cache."""
    torch = pytest.importorskip("torch")
    for dtype, expected in ((torch.int32, 1.0), (torch.float32, 1.75), (torch.int32, 1.0)):
        x = np.ones(1, np.float32)
        cast_to.interpret[1, 1](x, dtype)
        assert x[0] == expected, dtype
    assert keying.value_key(torch.float32) != keying.value_key(torch.int32) != keying.value_key("int32")
    monkeypatch.setitem(globals(), "INT32_BY_GLOBAL", torch.int32)
    compiled = cast_by_global.compile(target="sm_90a")
    assert compiled.metadata["uncached_reads"] == []
