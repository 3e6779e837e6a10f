"""skc never returns a wrong kernel: the cache key holds skc's own source; every value a kernel reads
at compile time (globals, container elements, class and module attributes, what plain Python helpers
read) is a dependency keyed exactly, or the kernel is not served from disk; constexpr values are keyed
exactly or refused. Subprocess pairs sharing SKC_CACHE_DIR are the realistic check."""
import collections
import contextlib
import dataclasses
import enum
import json
import os
import shutil
import subprocess
import sys
import textwrap
import typing
from unittest import mock

import numpy as np
import pytest

import skc
from skc import compiler
from skc.diagnostics import LaunchError
from skc.frontend import keying
from skc.runtime.devices import using_device

SKC_PACKAGE = os.path.dirname(skc.__file__)

RUNNER = textwrap.dedent('''
    import json, logging, sys, time
    import numpy  # a user's process has it already: not a cost of the cache
    sys.path.insert(0, sys.argv[1])
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(name)s %(message)s")
    started = time.perf_counter()
    import skc
    import kernels
    imported = time.perf_counter()
    report = {"skc": skc.__file__, "import_seconds": imported - started, "kernels": {}}
    for name in sys.argv[2].split(","):
        begin = time.perf_counter()
        compiled = getattr(kernels, name).compile(target="sm_90a")
        report["kernels"][name] = {"from_cache": compiled.from_cache, "seconds": time.perf_counter() - begin,
                                   "tile": compiled.ir("tile"), "llvm": compiled.ir("llvm")}
    print(json.dumps(report))
''')


def run_compiles(code, cache_dir, names, pythonpath=None):
    env = dict(os.environ, SKC_CACHE_DIR=str(cache_dir), PYTHONDONTWRITEBYTECODE="1", SKC_CACHE="1")
    env["PYTHONPATH"] = pythonpath or os.path.dirname(SKC_PACKAGE)
    result = subprocess.run([sys.executable, "-c", RUNNER, str(code), ",".join(names)], capture_output=True,
                            text=True, env=env, timeout=300, cwd=str(code))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    report["stderr"] = result.stderr
    return report


# -- skc's own source is a part of the key ---------------------------------------------------------
VECTOR_ADD = textwrap.dedent('''
    import skc

    @skc.kernel(block=128)
    def vector_add(x: skc.Ptr[skc.f32], y: skc.Ptr[skc.f32], out: skc.Ptr[skc.f32], n: skc.i32):
        i = skc.block_id(0) * 128 + skc.thread_id(0)
        if i < n:
            out[i] = x[i] + y[i]

    @skc.kernel(block=128)
    def exp_kernel(x: skc.Ptr[skc.f32], n: skc.i32):
        i = skc.thread_id(0)
        if i < n:
            x[i] = skc.exp(x[i])
''')


def _copy_skc(folder):
    shutil.copytree(SKC_PACKAGE, folder / "skc", ignore=shutil.ignore_patterns("__pycache__"))
    return str(folder)


def test_an_edit_to_skc_misses_and_an_unchanged_skc_hits(tmp_path):
    code, cache_dir = tmp_path / "code", tmp_path / "cache"
    code.mkdir()
    (code / "kernels.py").write_text(VECTOR_ADD)
    installed = _copy_skc(tmp_path / "installed")
    names = ["vector_add", "exp_kernel"]
    first = run_compiles(code, cache_dir, names, installed)
    assert first["skc"].startswith(installed)
    assert not any(k["from_cache"] for k in first["kernels"].values())
    second = run_compiles(code, cache_dir, names, installed)
    assert all(k["from_cache"] for k in second["kernels"].values())
    # a hit in a new process is cheap: the source digest is read once (budget 20 ms; loose here, as the
    # suite may share the machine)
    assert second["kernels"]["vector_add"]["seconds"] < 0.25, second["kernels"]["vector_add"]["seconds"]

    lowering = tmp_path / "installed" / "skc" / "backends" / "nvptx.py"
    text = lowering.read_text()
    edited = text.replace('def _exp(lw, x):\n    scaled = lw.text.value(f"fmul float',
                          'def _exp(lw, x):\n    scaled = lw.text.value(f"fmul nnan float')
    assert edited != text, "the NVPTX exp lowering moved; update this test"
    lowering.write_text(edited)
    third = run_compiles(code, cache_dir, names, installed)
    assert not any(k["from_cache"] for k in third["kernels"].values())
    assert "fmul nnan float" in third["kernels"]["exp_kernel"]["llvm"]
    assert "fmul nnan float" not in second["kernels"]["exp_kernel"]["llvm"]


def test_the_key_names_its_parts():
    parts = compiler.cache_key_parts(test_the_key_names_its_parts, _empty_spec(), skc.target.get_target("sm_90a"), {})
    assert parts["skc_source"] == compiler.skc_source_digest()
    assert len(parts["skc_source"]) == 64
    assert {"skc", "llvmlite", "numpy", "kernel", "source", "spec", "target", "options", "python"} <= set(parts)


def _empty_spec():
    from skc.frontend import Specialization

    return Specialization((), (32, 1, 1))


def test_source_digest_cost():
    """Hashing skc's sources is what a new process pays once before its first cache hit."""
    import time

    compiler._source_digest.clear()
    started = time.perf_counter()
    digest = compiler.skc_source_digest()
    seconds = time.perf_counter() - started
    assert digest == compiler.skc_source_digest()
    assert seconds < 0.1, seconds


# -- values read at compile time --------------------------------------------------------------------
READERS = textwrap.dedent('''
    import io
    import numpy as np
    import skc
    import consts

    LIST = [1, {list_value}, 3]
    TABLE = {{"a": {dict_value}, "b": 0}}
    NUMBER = np.float32({np_value})
    HELPER_VALUE = {helper_value}
    BOX = io.StringIO("{box_value}")
    DEFAULT = {default_value}


    class Cfg:
        S = {class_value}


    def helper():
        return HELPER_VALUE * 2


    def from_box():
        return int(BOX.getvalue())


    @skc.func
    def with_default(k=DEFAULT):
        return k


    @skc.func
    def add_one(v):
        return v + 1


    @skc.func
    def add_two(v):
        return v + 2


    CHOSEN = {chosen}


    @skc.kernel(block=32)
    def list_element(y: skc.Ptr[skc.i32]):
        y[0] = LIST[1]


    @skc.kernel(block=32)
    def dict_element(y: skc.Ptr[skc.i32]):
        y[0] = TABLE["a"]


    @skc.kernel(block=32)
    def numpy_scalar(x: skc.Ptr[skc.f32]):
        x[0] = NUMBER


    @skc.kernel(block=32)
    def class_attribute(y: skc.Ptr[skc.i32]):
        y[0] = Cfg.S


    @skc.kernel(block=32)
    def through_helper(y: skc.Ptr[skc.i32]):
        y[0] = helper()


    @skc.kernel(block=32)
    def module_attribute(y: skc.Ptr[skc.i32]):
        y[0] = consts.S


    @skc.kernel(block=32)
    def inlined_default(y: skc.Ptr[skc.i32]):
        y[0] = with_default()


    @skc.kernel(block=32)
    def through_getattr(y: skc.Ptr[skc.i32]):
        y[0] = getattr(consts, "T")


    @skc.kernel(block=32)
    def rebound_function(y: skc.Ptr[skc.i32]):
        y[0] = CHOSEN(40)


    @skc.kernel(block=32)
    def unkeyable_read(y: skc.Ptr[skc.i32]):
        y[0] = from_box()
''')

KEYED = ["list_element", "dict_element", "numpy_scalar", "class_attribute", "through_helper", "module_attribute",
         "inlined_default", "rebound_function", "through_getattr"]


def _write_readers(code, **values):
    (code / "kernels.py").write_text(READERS.format(**values))
    (code / "consts.py").write_text(f"S = {values['module_value']}\nT = {values['module_value'] + 10}\n")


def _values(base: int):
    return dict(list_value=base + 1, dict_value=base + 2, np_value=base + 3.5, helper_value=base + 4,
                class_value=base + 5, module_value=base + 6, box_value=base + 7, default_value=base + 8,
                chosen="add_one" if base == 100 else "add_two")


def _expected(name: str, base: int) -> str:
    value = {"list_element": base + 1, "dict_element": base + 2, "numpy_scalar": base + 3.5,
             "class_attribute": base + 5, "through_helper": 2 * (base + 4), "module_attribute": base + 6,
             "unkeyable_read": base + 7, "inlined_default": base + 8,
             "rebound_function": 41 if base == 100 else 42, "through_getattr": base + 16}[name]
    return f"{{value = {value}}}"


def test_changed_values_read_at_compile_time_miss(tmp_path):
    code, cache_dir = tmp_path / "code", tmp_path / "cache"
    code.mkdir()
    names = KEYED + ["unkeyable_read"]
    _write_readers(code, **_values(100))
    first = run_compiles(code, cache_dir, names)
    assert not any(k["from_cache"] for k in first["kernels"].values())
    same = run_compiles(code, cache_dir, names)
    for name in KEYED:  # an unchanged value still hits
        assert same["kernels"][name]["from_cache"], name
    _write_readers(code, **_values(200))
    changed = run_compiles(code, cache_dir, names)
    for name in names:
        kernel = changed["kernels"][name]
        assert not kernel["from_cache"], name
        assert _expected(name, 200) in kernel["tile"], (name, kernel["tile"])
        assert _expected(name, 100) in first["kernels"][name]["tile"], name


def test_a_read_with_no_exact_key_is_never_served_from_disk(tmp_path):
    code, cache_dir = tmp_path / "code", tmp_path / "cache"
    code.mkdir()
    _write_readers(code, **_values(100))
    for _ in range(2):
        report = run_compiles(code, cache_dir, ["unkeyable_read"])
        assert report["kernels"]["unkeyable_read"]["from_cache"] is False
        assert _expected("unkeyable_read", 100) in report["kernels"]["unkeyable_read"]["tile"]
    assert "unkeyable_read is not stored in the disk cache" in report["stderr"]
    assert "BOX" in report["stderr"] and "_io.StringIO" in report["stderr"]


# -- exact keys -------------------------------------------------------------------------------------
def _make_scale(factor):
    def scale(v):
        return v * factor
    return scale


def test_values_keyed_exactly():
    key = keying.value_key
    assert key(_make_scale(2.0)) != key(_make_scale(10.0))
    assert key(_make_scale(2.0)) == key(_make_scale(2.0))
    big = np.zeros(5000, np.float32)
    other = big.copy()
    other[2500] = 1.0
    assert key(big) != key(other)
    assert key(big) == key(big.copy())
    assert key(big) != key(big.astype(np.float64)) and key(big) != key(big.reshape(50, 100))
    assert key(np.float32(1.5)) != key(np.float64(1.5)) != key(1.5)
    assert key(1) != key(True) and key(0.0) != key(-0.0)
    assert key((1, [2], {"a": 3})) != key((1, [2], {"a": 4}))
    pair = collections.namedtuple("pair", "a b")
    assert key(pair(1, 2)) != key(pair(1, 3)) and key(pair(1, 2)) != key((1, 2))
    tags = [type("Tags", (frozenset,), {"weight": lambda self, w=w: w})([1]) for w in (1.0, 2.0)]
    assert key(tags[0]) != key(tags[1]) and key(tags[0]) != key(frozenset([1]))   # (its class was not keyed)
    cyclic = []
    cyclic.append(cyclic)
    assert key(cyclic).startswith("builtins.list(")


def test_dicts_keyed_in_their_order_and_shared_values_by_what_they_are():
    """A dict's items were sorted after the walk that numbers objects met twice: {"b": x, "a": y, "c": x} and
    {"a": y, "b": x, "c": y} had one key ("c=@1" named x in one and y in the other), and so did two orders of one
    dict, which code reading list(d) tells apart: a launch ran the kernel compiled for the other value."""
    key = keying.value_key
    x, y = [1.0], [2.0]
    assert key({"b": x, "a": y, "c": x}) != key({"a": y, "b": x, "c": y})
    assert key({"a": 1, "b": 2}) != key({"b": 2, "a": 1})
    shared = (1,)
    assert key({("p", shared), ("q", (2,)), ("r", shared)}) == key({("r", (1,)), ("q", (2,)), ("p", (1,))})
    assert key({("p", shared), ("q", (2,)), ("r", shared)}) != key({("p", (1,)), ("q", (2,)), ("r", (2,))})

    @skc.kernel(block=32)
    def first(x: skc.Ptr[skc.f32], table: skc.constexpr):
        x[skc.thread_id(0)] = table["c"][0] + 10.0 * list(table.values())[0][0]

    out = skc.to_device(np.zeros(32, np.float32))
    first[1, 32](out, {"b": x, "a": y, "c": x})
    assert out.numpy()[0] == 11.0
    first[1, 32](out, {"a": y, "b": x, "c": y})
    assert out.numpy()[0] == 22.0


def test_structured_arrays_keyed_by_their_fields():
    """A structured array's dtype was keyed by its str, '|V8' for any two 4-byte fields: the same bytes as (i4, f4)
    and as (f4, i4), or under other field names, had one key."""
    key = keying.value_key
    ints = np.zeros(1, [("a", "<i4"), ("b", "<f4")])
    ints["a"] = 0x3F800000
    floats = np.zeros(1, [("a", "<f4"), ("b", "<i4")])
    floats["a"] = 1.0
    renamed = floats.astype([("x", "<f4"), ("b", "<i4")])
    assert ints.tobytes() == floats.tobytes() == renamed.tobytes()
    assert len({key(ints), key(floats), key(renamed)}) == 3
    assert key(ints[0]) != key(floats[0]) and key(floats) == key(floats.copy())


def test_a_flags_unnamed_values_keyed_by_their_value():
    """A Flag's value whose bits no member names has no name: an enum was keyed by its class and name, and a class of
    the standard library is keyed by its name, so re.RegexFlag(1 << 20) and re.RegexFlag(1 << 21) had one key."""
    import re

    assert keying.value_key(re.RegexFlag(1 << 20)) != keying.value_key(re.RegexFlag(1 << 21))
    assert keying.value_key(re.RegexFlag(1 << 20)) == keying.value_key(re.RegexFlag(1 << 20))


@skc.kernel
def reads_a_dtype(out: skc.Ptr[skc.f32], DT: skc.constexpr):
    out[0] = (DT.shape[0] if DT.shape else 0) * 1.0
    out[1] = DT.alignment * 1.0


def test_subarray_and_aligned_dtypes_keyed_by_what_they_are():
    """A numpy dtype was keyed by its descr, which gives a subarray dtype by its size alone ('|V8' for ('f4', (2,))
    as for ('u2', (4,))) and an aligned struct as the same fields at the same offsets unaligned (alignment 4 against
    1): the second launch ran the kernel compiled for the first."""
    subarrays = [np.dtype(("f4", (2,))), np.dtype(("u2", (4,))), np.dtype(("f8", (1,)))]
    structs = [np.dtype([("a", "u1"), ("b", "f4")], align=True),
               np.dtype({"names": ["a", "b"], "formats": ["u1", "f4"], "offsets": [0, 4], "itemsize": 8})]
    assert len({keying.value_key(dt) for dt in subarrays + structs}) == 5
    with using_device("interpreter"):
        for dt in subarrays + structs:
            out = np.zeros(2, np.float32)
            reads_a_dtype[1, 1](out, dt)
            assert out.tolist() == [dt.shape[0] if dt.shape else 0, dt.alignment], dt


def _named_config(scale):
    class Config(typing.NamedTuple):
        n: int

        def scale(self):
            return scale
    return Config


def test_namedtuples_keyed_by_their_class_whole():
    """A namedtuple was keyed by its class's name and fields alone: typing.NamedTuple's methods (an edited __len__
    was served from disk), a subclass's class attributes and an instance's own attributes were not in the key, so
    two such classes of one name shared the kernel compiled for the first."""
    key = keying.value_key
    assert key(_named_config(2.0)(1)) != key(_named_config(3.0)(1))
    assert key(_named_config(2.0)(1)) == key(_named_config(2.0)(1))
    plain = collections.namedtuple("plain", "a b", defaults=(1,))
    assert key(plain(1, 2)) == key(plain(1, 2)) != key(plain(1, 3))

    @skc.kernel(block=32)
    def scaled(x: skc.Ptr[skc.f32], cfg: skc.constexpr):
        x[skc.thread_id(0)] = cfg.scale() * cfg.n + getattr(cfg, "extra", 0.0)

    out = skc.to_device(np.zeros(32, np.float32))
    for scale in (2.0, 3.0):
        scaled[1, 32](out, _named_config(scale)(1))
        assert out.numpy()[0] == scale

    class WithExtra(collections.namedtuple("Base", "n")):
        def scale(self):
            return 1.0

    scaled[1, 32](out, WithExtra(1))
    assert out.numpy()[0] == 1.0
    extra = WithExtra(1)
    extra.extra = 5.0
    scaled[1, 32](out, extra)
    assert out.numpy()[0] == 6.0
    WithExtra.extra = 2.0   # (a class attribute set after a launch)
    scaled[1, 32](out, WithExtra(1))
    assert out.numpy()[0] == 3.0


@pytest.mark.parametrize("value", [object(), np.array([object()]), iter([1]), open(os.devnull)])
def test_values_with_no_exact_key(value):
    with pytest.raises(keying.Unkeyable, match="no exact key"):
        keying.value_key(value)


@skc.kernel(block=32)
def apply_constexpr(x: skc.Ptr[skc.f32], f: skc.constexpr):
    i = skc.thread_id(0)
    x[i] = f(x[i])


@skc.kernel(block=32)
def read_table(x: skc.Ptr[skc.f32], table: skc.constexpr):
    i = skc.thread_id(0)
    x[i] = table[1500]


def test_closures_as_constexpr_do_not_collide():
    twice = apply_constexpr.compile(f=_make_scale(2.0), target="sm_90a").ir("tile")
    ten = apply_constexpr.compile(f=_make_scale(10.0), target="sm_90a").ir("tile")
    assert "{value = 2.0}" in twice and "{value = 10.0}" in ten
    x = np.ones(32, np.float32)
    apply_constexpr.interpret[1, 32](x, _make_scale(2.0))
    apply_constexpr.interpret[1, 32](x, _make_scale(10.0))
    assert np.all(x == 20.0)


def test_large_arrays_as_constexpr_do_not_collide():
    table = np.zeros(3000, np.float32)
    other = table.copy()
    other[1500] = 7.0
    x = np.ones(32, np.float32)
    read_table.interpret[1, 32](x, table)
    assert np.all(x == 0.0)
    read_table.interpret[1, 32](x, other)
    assert np.all(x == 7.0)
    table[1500] = 3.0  # changed in place: the same object, a new value
    read_table.interpret[1, 32](x, table)
    assert np.all(x == 3.0)


def test_a_constexpr_with_no_exact_key_is_an_error():
    x = np.ones(32, np.float32)
    with pytest.raises(LaunchError, match=r"(?s)read_table: constexpr argument 'table' cannot be keyed exactly.*"
                                          r"builtins.object.*constexpr values may be ints"):
        read_table.interpret[1, 32](x, object())
    with pytest.raises(LaunchError, match=r"(?s)constexpr argument .table.*numpy array of Python objects"):
        read_table.compile(table=np.array([object()] * 2000), target="sm_90a")


@dataclasses.dataclass(frozen=True)
class LooseEquality:
    """== says nothing about factor: the launch key must not trust it."""
    factor: float

    def __eq__(self, other):
        return isinstance(other, LooseEquality)

    def __hash__(self):
        return 0


class MutableSettings:
    def __init__(self, factor):
        self.factor = factor


@skc.kernel(block=32)
def scale_by_setting(x: skc.Ptr[skc.f32], setting: skc.constexpr):
    i = skc.thread_id(0)
    x[i] = x[i] * setting.factor


@pytest.mark.parametrize("make", [LooseEquality, MutableSettings])
def test_constexpr_objects_are_keyed_by_their_whole_value(make):
    x = np.ones(32, np.float32)
    scale_by_setting.interpret[1, 32](x, make(2.0))
    scale_by_setting.interpret[1, 32](x, make(3.0))
    assert np.all(x == 6.0)
    settings = MutableSettings(1.0)
    scale_by_setting.interpret[1, 32](x, settings)
    settings.factor = 0.5  # the same object, changed in place
    scale_by_setting.interpret[1, 32](x, settings)
    assert np.all(x == 3.0)




@dataclasses.dataclass(frozen=True)
class Offset:
    value: object


@skc.kernel(block=1)
def add_offset(x: skc.Ptr[skc.f32], c: skc.constexpr):
    x[0] = skc.thread_id(0) + c.value + 1


def test_constexpr_values_equal_under_eq_get_kernels_of_their_own():
    # == calls the two configs equal, but i32 arithmetic wraps where f32 does not
    x = np.zeros(1, np.float32)
    add_offset.interpret[1, 1](x, Offset(2147483647))
    assert x[0] == -2147483648.0
    add_offset.interpret[1, 1](x, Offset(2147483647.0))
    assert x[0] == 2147483648.0


@skc.kernel(block=1)
def store_first(x: skc.Ptr[skc.f32], c: skc.constexpr):
    x[0] = c[0]


@skc.kernel(block=1)
def store_constant(x: skc.Ptr[skc.f32], c: skc.constexpr):
    x[0] = c


def test_minus_zero_is_not_zero_to_the_launch_key():
    for kernel, zero, minus_zero in ((store_constant, 0.0, -0.0), (store_first, (0.0,), (-0.0,))):
        x = np.ones(1, np.float32)
        kernel.interpret[1, 1](x, zero)
        assert not np.signbit(x[0])
        kernel.interpret[1, 1](x, minus_zero)
        assert np.signbit(x[0]), kernel


@skc.kernel(block=1)
def store_unannotated(c, x):
    x[0] = c


@skc.kernel(block=1)
def store_declared(x: skc.Ptr[skc.f32], n: skc.i32):
    x[0] = n


def test_a_compile_time_value_given_to_a_parameter_without_annotation_keys_its_kernel():
    x = np.zeros(1, np.float32)
    store_unannotated.interpret[1, 1](skc.constexpr(3.0), x)   # (the kernel has no run-time parameter c)
    assert x[0] == 3.0
    store_unannotated.interpret[1, 1](skc.constexpr(5.0), x)
    assert x[0] == 5.0
    store_unannotated.interpret[1, 1](7.0, x)
    assert x[0] == 7.0
    ready = store_unannotated.interpret[1, 1].ready(skc.constexpr(2.0), x)   # it takes the run-time arguments alone
    ready((x,))
    assert x[0] == 2.0


def test_a_compile_time_value_given_to_a_declared_run_time_parameter_is_refused():
    x = np.zeros(1, np.float32)
    with pytest.raises(LaunchError, match="argument 'n' is declared skc.i32, a run-time value; pass it as it is"):
        store_declared.interpret[1, 1](x, skc.constexpr(3))
    store_declared.interpret[1, 1](x, 7)
    assert x[0] == 7.0


# -- a global bound to another value after a launch ---------------------------------------------------
REBOUND = textwrap.dedent('''
    import skc

    N = 4
    SCALE = 1.5

    @skc.func
    def helper(x):
        return x * 2.0

    @skc.func
    def tripled(x):
        return x * 3.0

    @skc.kernel
    def k(out: skc.Ptr[skc.f32]):
        out[skc.thread_index()] = helper(SCALE) + N
''')


@contextlib.contextmanager
def imported(tmp_path, monkeypatch, name: str, source: str):
    """`source` written to tmp_path as module `name` and imported, with a disk cache of its own there; forgotten on
    exit, so that the next test imports it anew."""
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SKC_CACHE_DIR", str(tmp_path / "cache"))
    import importlib
    try:
        yield importlib.import_module(name)
    finally:
        sys.modules.pop(name, None)


@pytest.fixture
def rebound_module(tmp_path, monkeypatch):
    with imported(tmp_path, monkeypatch, "rebound_kernels", REBOUND) as module:
        yield module


def test_a_launch_after_a_global_is_bound_to_another_value_compiles_again(rebound_module):
    """A kernel compiled with N = 4 ran for N = 8 too: the in-memory launchers never looked at the globals again
    (the disk cache did, in a new process). Every launch object of the kernel sees the change."""
    u, out = rebound_module, np.zeros(4, np.float32)
    launch, other = u.k[1, 4], u.k.interpret[1, 4]
    launch(out)
    other(out)
    assert out[0] == 7.0
    u.N = 8
    launch(out)
    assert out[0] == 11.0
    out[:] = 0
    other(out)
    assert out[0] == 11.0
    u.SCALE = 0.5
    launch(out)
    assert out[0] == 9.0
    u.helper = u.tripled   # a DSL function the kernel calls, bound to another
    launch(out)
    assert out[0] == 9.5


def test_a_global_bound_again_to_an_equal_value_keeps_the_kernel(rebound_module):
    u, out = rebound_module, np.zeros(4, np.float32)
    launch = u.k[1, 4]
    launch(out)
    compiled = dict(u.k._compiled)
    u.SCALE = float("1.5")      # another object, the same value
    u.N = int("4")
    launch(out)
    assert out[0] == 7.0 and u.k._compiled == compiled


def test_a_global_bound_again_while_its_kernel_compiles_compiles_again(rebound_module):
    """The kernel kept the value a global had after its compile, not the one the compile read: N = 8 bound (by
    another thread) while the kernel compiled with N = 4 left the N = 4 kernel running for N = 8 from then on."""
    u, out = rebound_module, np.zeros(4, np.float32)
    compile_kernel = skc.jit.compile_kernel

    def compile_while_rebound(*args, **kwargs):
        compiled = compile_kernel(*args, **kwargs)   # read N = 4
        u.N = 8                                      # (another thread)
        return compiled

    with mock.patch.object(skc.jit, "compile_kernel", compile_while_rebound):
        u.k.interpret[1, 4](out)
    assert out[0] == 7.0
    u.k.interpret[1, 4](out)
    assert out[0] == 11.0


def test_a_launch_object_forgotten_after_passing_its_check_still_launches(rebound_module):
    """A launch on one thread past its check, while another thread's launch finds a global rebound and forgets
    every launch object, called None: TypeError. (The stream's normalization stands in for the other thread.)"""
    u, out = rebound_module, np.zeros(4, np.float32)
    launch = u.k.interpret[1, 4]
    launch(out)

    class Stream:
        @property
        def cuda_stream(self):
            u.N = 8
            u.k.interpret[2, 4](np.zeros(8, np.float32))   # another launch object: rebound() forgets `launch`
            return 0

    launch(out, stream=Stream())
    assert out[0] == 7.0
    launch(out)
    assert out[0] == 11.0


NAN_SIGN = textwrap.dedent('''
    import math
    import skc

    @skc.kernel(block=1)
    def sign_of(out: skc.Ptr[skc.f32], C: skc.constexpr):
        out[0] = math.copysign(1.0, C)
''')


def test_nans_of_other_signs_get_kernels_of_their_own(tmp_path, monkeypatch):
    """float('nan') and -float('nan') had one key in memory (float.hex) and on disk (repr): the kernel compiled for
    one ran for the other, though copysign (or the constant's bits) tell them apart."""
    with imported(tmp_path, monkeypatch, "nan_sign", NAN_SIGN) as u:
        nan, out = float("nan"), np.zeros(1, np.float32)
        for value, sign in ((nan, 1.0), (-nan, -1.0), (nan, 1.0)):
            u.sign_of.interpret[1, 1](out, value)
            assert out[0] == sign
        positive = u.sign_of.compile(C=nan, target="sm_90a")
        u.sign_of._compiled.clear()
        negative = u.sign_of.compile(C=-nan, target="sm_90a")
        assert positive.key != negative.key and not negative.from_cache
        assert keying.value_key(complex(0, nan)) != keying.value_key(complex(0, -nan))


def test_compile_and_ready_after_a_global_is_bound_to_another_value_compile_again(rebound_module):
    """compile() and ready() took the specialization kept in memory without the launch's check of the globals it
    read: after N = 8 they gave the kernel compiled for N = 4."""
    u, out = rebound_module, np.zeros(4, np.float32)
    u.k.compile(target="sm_90a")
    u.N = 8
    assert "value = 11.0" in u.k.compile(target="sm_90a").ir("tile")
    u.k.interpret[1, 4].ready(out)((out,))
    assert out[0] == 11.0
    u.N = 9
    u.k.interpret[1, 4].ready(out)((out,))
    assert out[0] == 12.0


def test_a_debug_kernel_moved_in_its_file_names_its_new_lines(tmp_path):
    """The hang guard's table (which wait is at which line) came from the disk cache after lines were added above
    the kernel: the key holds the kernel's text, not where it is, so a DeadlockError named the old line."""
    source = open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "gpu", "hang_kernels.py")).read()
    code = tmp_path / "code"
    code.mkdir()
    runner = textwrap.dedent('''
        import json, sys
        sys.path.insert(0, sys.argv[1])
        import hang_kernels
        compiled = hang_kernels.short_producer.compile(target="sm_90a")
        print(json.dumps([compiled.from_cache, compiled.metadata["hang_sites"]["sites"]["2"]["line"]]))
    ''')
    env = dict(os.environ, SKC_CACHE_DIR=str(tmp_path / "cache"), PYTHONDONTWRITEBYTECODE="1", SKC_CACHE="1",
               PYTHONPATH=os.path.dirname(SKC_PACKAGE))
    lines = []
    for text in (source, "# two lines\n# above it\n" + source):
        (code / "hang_kernels.py").write_text(text)
        result = subprocess.run([sys.executable, "-c", runner, str(code)], capture_output=True, text=True, env=env,
                                timeout=300)
        assert result.returncode == 0, result.stderr
        lines.append(json.loads(result.stdout.strip().splitlines()[-1]))
        consumer = [i for i, line in enumerate(text.splitlines(), 1) if "# HANG: consumer" in line][0]
        assert lines[-1][1] == consumer
    assert lines[0][0] is False


# -- globals a compile read through a helper, or with no exact key ---------------------------------------------
THROUGH_HELPERS = textwrap.dedent('''
    import types
    import skc

    FACTOR = 2
    CFG = types.SimpleNamespace(n=4)       # no exact key: never on disk, and told apart in memory by identity

    @skc.host
    def scaled(n):
        return n * FACTOR

    @skc.host
    def configured():
        return CFG.n

    @skc.kernel(block=1)
    def by_helper(out: skc.Ptr[skc.i32]):
        out[0] = scaled(10)

    @skc.kernel(block=1)
    def unkeyed(out: skc.Ptr[skc.i32]):
        out[0] = CFG.n

    @skc.kernel(block=1)
    def unkeyed_helper(out: skc.Ptr[skc.i32]):
        out[0] = configured()
''')


@pytest.fixture
def helpers_module(tmp_path, monkeypatch):
    with imported(tmp_path, monkeypatch, "through_helpers", THROUGH_HELPERS) as module:
        yield module


def test_a_global_read_through_a_helper_or_with_no_exact_key_bound_again_compiles_again(helpers_module):
    """A global that a helper run at compile time read (FACTOR), and one with no exact key (CFG), bound to another
    value after a launch: the launch ran the kernel compiled for the old one (only the globals the kernel's own code
    named were watched, and only those with an exact key)."""
    import types
    u, out = helpers_module, np.zeros(1, np.int32)
    launch = u.by_helper.interpret[1, 1]
    launch(out)
    assert out[0] == 20
    u.FACTOR = 3
    launch(out)
    assert out[0] == 30
    u.unkeyed.interpret[1, 1](out)
    assert out[0] == 4
    u.CFG = types.SimpleNamespace(n=8)
    u.unkeyed.interpret[1, 1](out)
    assert out[0] == 8
    u.CFG = types.SimpleNamespace(n=5)
    u.unkeyed_helper.interpret[1, 1](out)
    assert out[0] == 5
    u.CFG = types.SimpleNamespace(n=6)
    u.unkeyed_helper.interpret[1, 1](out)
    assert out[0] == 6


def test_a_kernel_with_an_unkeyable_helper_compiles_once(helpers_module):
    """Its helper's key (None) never matched, so every launch found the watched values 'changed' and compiled."""
    u, out = helpers_module, np.zeros(1, np.int32)
    with mock.patch.object(skc.jit, "compile_kernel", wraps=skc.jit.compile_kernel) as compiles:
        for _ in range(3):
            u.unkeyed_helper.interpret[1, 1](out)
    assert out[0] == 4 and compiles.call_count == 1


def test_a_kernel_from_disk_watches_the_globals_its_helpers_read(helpers_module):
    u = helpers_module
    first = u.by_helper.compile(target="sm_90a")
    assert not first.from_cache
    u.by_helper._compiled.clear()
    loaded = u.by_helper.compile(target="sm_90a")
    assert loaded.from_cache
    assert {"FACTOR", "scaled"} <= {name for _, name, _ in skc.jit._watched(loaded)}


# -- an attribute of a class a kernel read, bound to another value after a launch ------------------------------------
ATTRIBUTES = textwrap.dedent('''
    import skc

    class Sizes:
        V = 5

    class Derived(Sizes):
        pass

    class Config:
        SCALE = 2.0

        def scaled(self, x):
            return x * self.SCALE

    CONFIG = Config()

    @skc.kernel(block=1)
    def direct(out: skc.Ptr[skc.f32]):
        out[0] = Sizes.V

    @skc.kernel(block=1)
    def through_base(out: skc.Ptr[skc.f32]):
        out[0] = Derived.V

    @skc.kernel(block=1)
    def through_method(out: skc.Ptr[skc.f32]):
        out[0] = CONFIG.scaled(1.0)
''')


@pytest.fixture
def attributes_module(tmp_path, monkeypatch):
    with imported(tmp_path, monkeypatch, "read_attributes", ATTRIBUTES) as module:
        yield module


def test_a_class_attribute_bound_again_after_a_launch_compiles_again(attributes_module):
    """`C.V = 6` after a launch that read C.V ran the kernel compiled for 5 (the launch watched the module's binding
    of C, the same class; the disk cache, which keys the class whole, saw the change). The native call (k[1, 1] of
    declared parameters) and the Python one both see it."""
    u, out = attributes_module, np.zeros(1, np.float32)
    launches = {name: (getattr(u, name)[1, 1], getattr(u, name).interpret[1, 1])
                for name in ("direct", "through_base", "through_method")}

    def read(name):
        values = []
        with using_device("interpreter"):   # (the plain launch's device, where a GPU is the default)
            for launch in launches[name]:
                launch(out)
                values.append(float(out[0]))
        return values

    assert [read(name) for name in launches] == [[5.0] * 2, [5.0] * 2, [2.0] * 2]
    assert type(launches["direct"][0]) is skc.jit._PlainLaunch and launches["direct"][0]._fast is not None
    u.Sizes.V = 6
    u.Config.SCALE = 3.0
    assert [read(name) for name in launches] == [[6.0] * 2, [6.0] * 2, [3.0] * 2]
    assert launches["direct"][0]._fast is not None   # (the class's dict is watched as a module's: the native call)
    u.Derived.V = 7   # (a name its base bound, now its own)
    assert read("through_base") == [7.0] * 2


OBJECT = textwrap.dedent('''
    import skc

    class Holder:
        pass

    HOLD = Holder()
    HOLD.n = 4

    @skc.kernel(block=1)
    def through_object(out: skc.Ptr[skc.f32]):
        out[0] = HOLD.n
''')


def test_an_objects_attribute_bound_again_after_a_launch_compiles_again(tmp_path, monkeypatch):
    """(as a class's: `HOLD.n = 8` ran the kernel compiled for 4; the disk cache keys the object whole)"""
    with imported(tmp_path, monkeypatch, "read_object", OBJECT) as u:
        out = np.zeros(1, np.float32)
        u.through_object.interpret[1, 1](out)
        assert out[0] == 4.0
        u.HOLD.n = 8
        u.through_object.interpret[1, 1](out)
        assert out[0] == 8.0


def test_a_class_attribute_bound_again_to_an_equal_value_keeps_the_kernel(attributes_module):
    u, out = attributes_module, np.zeros(1, np.float32)
    u.through_method.interpret[1, 1](out)
    compiled = dict(u.through_method._compiled)
    u.Config.SCALE = float("2.0")   # another object, the same value
    u.through_method.interpret[1, 1](out)
    assert out[0] == 2.0 and u.through_method._compiled == compiled


def test_a_kernel_from_disk_watches_the_class_attributes_it_read(attributes_module):
    u = attributes_module
    assert not u.direct.compile(target="sm_90a").from_cache
    u.direct._compiled.clear()
    loaded = u.direct.compile(target="sm_90a")
    assert loaded.from_cache
    assert ("V", u.Sizes.V) in {(name, value) for _, name, value in skc.jit._watched(loaded)}
    u.Sizes.V = 9
    assert "value = 9.0" in u.direct.compile(target="sm_90a").ir("tile")


@dataclasses.dataclass(frozen=True)
class TileConfig:
    tile: int
    SCALE = 2.0    # a class attribute, no field

    @property
    def scaled(self):
        return self.tile * self.SCALE


class Mode(enum.Enum):
    FAST = 1


Mode.SCALE = 2.0


@skc.kernel(block=1)
def read_class_state(x: skc.Ptr[skc.f32], c: skc.constexpr):
    x[0] = c.scaled if isinstance(c, TileConfig) else c.value * type(c).SCALE


@pytest.mark.parametrize("make", [lambda: TileConfig(1), lambda: Mode.FAST])
def test_a_constexprs_class_bound_to_another_value_gets_a_kernel_of_its_own(make):
    """The launch key of an enum member or a frozen dataclass held the member or the fields alone: after
    `Cfg.SCALE = 3.0` a launch ran the kernel compiled for 2.0 (compile() and the disk cache, which key the class
    whole, did not)."""
    cls = type(make())
    x = np.zeros(1, np.float32)
    try:
        read_class_state.interpret[1, 1](x, make())
        assert x[0] == 2.0
        cls.SCALE = 3.0
        read_class_state.interpret[1, 1](x, make())
        assert x[0] == 3.0
    finally:
        cls.SCALE = 2.0
    read_class_state.interpret[1, 1](x, make())
    assert x[0] == 2.0
