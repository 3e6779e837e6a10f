"""Stale kernels from values changed in place: a list, dict, set or numpy array a kernel read at its compile (a global,
or something a global or a closure holds), or the slots of an object, changed after a launch without rebinding any
name (`SIZES.append(3.0)`, `TABLE["a"] = 3.0`, `ARRAY[0] = 3.0`, `obj.v = 3.0` with __slots__). A launch watched the
names alone, by identity, and launched the kernel compiled for the old contents; now it watches the contents too
(keying.ContentsView), on its Python call and its native one."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import skc
from skc import jit
from test_cache_keys_reads import launched, load  # noqa: F401 (a fixture)

KERNELS = """import array
import collections
import threading
import types

import numpy as np
import skc

SIZES = [1.0, 2.0]
TABLE = {"a": 2.0}
NESTED = {"a": [2.0]}
FLAGS = {2.0}
ARRAY = np.array([2.0], np.float32)
BIG = np.full(1 << 20, 2.0, np.float32)   # (past keying.WATCHED_ARRAY_BYTES: its shape watched, not its data)


class Slotted:
    __slots__ = ("v",)


class Config:
    def __init__(self):
        self.sizes = [2.0]


class Defaults:
    scale = 2.0


SLOTTED = Slotted()
SLOTTED.v = 2.0
CONFIG = Config()
DEFAULTS = Defaults()
QUEUE = collections.deque([2.0])
BYTES = bytearray([2])
DOUBLES = array.array("d", [2.0])
NAMESPACE = types.SimpleNamespace(v=2.0)
USER_LIST = collections.UserList([2.0])
CHAIN = collections.ChainMap({"a": 2.0})
LOCKED = [threading.Lock(), [2.0]]   # (no key, so not from the disk cache: what follows the lock is watched too)


@skc.func
def last(t=SIZES):
    return t[-1]


@skc.kernel(block=1)
def k(x: skc.Ptr[skc.f32]):
    x[0] = READ
"""
# (what the kernel stores, the change in place that makes it 3.0)
CHANGES = {
    "list_append": ("SIZES[-1]", lambda m: m.SIZES.append(3.0)),
    "list_item": ("SIZES[1]", lambda m: m.SIZES.__setitem__(1, 3.0)),
    "dict_item": ("TABLE['a']", lambda m: m.TABLE.__setitem__("a", 3.0)),
    "dict_key_added": ("TABLE.get('b', 2.0)", lambda m: m.TABLE.__setitem__("b", 3.0)),
    "nested_list": ("NESTED['a'][0]", lambda m: m.NESTED["a"].__setitem__(0, 3.0)),
    "set_add": ("float(len(FLAGS) + 1)", lambda m: m.FLAGS.add(5.0)),
    "array_item": ("float(ARRAY[0])", lambda m: m.ARRAY.__setitem__(0, 3.0)),
    "large_array_reshaped": ("2.0 + float(BIG.shape[0] == 2)", lambda m: setattr(m.BIG, "shape", (2, 1 << 19))),
    "slot": ("SLOTTED.v", lambda m: setattr(m.SLOTTED, "v", 3.0)),
    "objects_list": ("CONFIG.sizes[-1]", lambda m: m.CONFIG.sizes.append(3.0)),
    "hiding_a_class_default": ("DEFAULTS.scale", lambda m: setattr(m.DEFAULTS, "scale", 3.0)),
    "getattr_default_of_an_object": ("getattr(DEFAULTS, 'extra', 2.0)", lambda m: setattr(m.DEFAULTS, "extra", 3.0)),
    "getattr_default_of_a_class": ("getattr(Defaults, 'extra', 2.0)", lambda m: setattr(m.Defaults, "extra", 3.0)),
    "deque": ("QUEUE[-1]", lambda m: m.QUEUE.append(3.0)),
    "bytearray": ("float(BYTES[0])", lambda m: m.BYTES.__setitem__(0, 3)),
    "array_array": ("DOUBLES[0]", lambda m: m.DOUBLES.__setitem__(0, 3.0)),
    "simple_namespace": ("NAMESPACE.v", lambda m: setattr(m.NAMESPACE, "v", 3.0)),
    "user_list": ("USER_LIST[-1]", lambda m: m.USER_LIST.append(3.0)),
    "chain_map": ("CHAIN['a']", lambda m: m.CHAIN.maps[0].__setitem__("a", 3.0)),
    "after_a_part_with_no_key": ("LOCKED[1][-1]", lambda m: m.LOCKED[1].append(3.0)),
    "dsl_function_default": ("last()", lambda m: m.SIZES.append(3.0)),
}


@pytest.mark.parametrize("way", sorted(CHANGES))
def test_a_value_changed_in_place_after_a_launch_gives_a_new_kernel(load, way):
    read, change = CHANGES[way]
    module = load(f"contents_{way}", KERNELS.replace("READ", read))
    assert launched(module.k) == 2.0
    launch = module.k[1, 1]
    assert type(launch) is jit._PlainLaunch and launch._fast is not None   # (the native call's state)
    change(module)
    assert launched(module.k) == 3.0
    assert launched(module.k) == 3.0 and module.k._recompiles == 1


def test_an_item_bound_again_to_an_equal_value_keeps_the_kernel(load):
    module = load("contents_equal", KERNELS.replace("READ", "SIZES[1]"))
    assert launched(module.k) == 2.0
    module.SIZES[1] = float("2.0")   # (another object, of the same value: the key is the same)
    assert launched(module.k) == 2.0
    assert module.k._recompiles == 0 and len(module.k._compiled) == 1
    assert module.k[1, 1]._fast is not None   # (the contents viewed anew: the native call launches again)
    module.SIZES[1] = 3.0
    assert launched(module.k) == 3.0


def test_the_native_call_launches_while_the_contents_are_unchanged(load):
    from test_native_call import _counting

    module = load("contents_native", KERNELS.replace("READ", "SIZES[-1] + TABLE['a']"))
    assert launched(module.k) == 4.0
    calls = _counting(module.k[1, 1])
    assert launched(module.k) == 4.0 and calls == [None]   # (the native call's launch: the state's)
    module.TABLE["a"] = 3.0
    assert launched(module.k) == 5.0 and calls == [None]   # (the Python call's, which compiled anew)


MEMO = """import skc

_MEMO = {}
LOG = []


def doubled(n):
    if n not in _MEMO:
        _MEMO[n] = 2.0 * n
    return _MEMO[n]


@skc.kernel(block=1)
def k(x: skc.Ptr[skc.f32]):
    x[0] = doubled(1)


@skc.kernel(block=1)
def logs(x: skc.Ptr[skc.f32]):
    LOG.append(1)   # (at compile time: once a compile)
    x[0] = 2.0
"""


def test_what_the_compile_itself_changed_is_no_change(load):
    """A helper's memo filled by the compile, an item the kernel appends at compile time: the contents are watched as
    the compile left them, so the next launch does not compile anew (and append again, for ever)."""
    module = load("contents_memo", MEMO)
    for kernel in (module.k, module.logs):
        for _ in range(3):
            assert launched(kernel) == 2.0
        assert kernel._recompiles == 0
    assert module.LOG == [1] and module._MEMO == {1: 2.0}
    module._MEMO[1] = 3.0
    assert launched(module.k) == 3.0


def test_a_list_a_closure_holds_changed_in_place_gives_a_new_kernel():
    sizes = [2.0]

    @skc.kernel(block=1)
    def k(x: skc.Ptr[skc.f32]):
        x[0] = sizes[-1]

    assert launched(k) == 2.0
    sizes.append(3.0)
    assert launched(k) == 3.0


TORCH_KERNELS = """import types

import numpy as np
import torch
import skc

WEIGHTS = torch.tensor([1.0, 2.0])
HALVES = torch.tensor([1.0, 2.0], dtype=torch.bfloat16)
LARGE = torch.full((1 << 12,), 2.0)   # (past WATCHED_ARRAY_BYTES: where its data lives and its geometry watched)
with torch.inference_mode():
    FROZEN = torch.tensor([1.0, 2.0])   # (an inference tensor: no counter, its bytes watched)
TABLE = {"a": 2.0}
PROXY = types.MappingProxyType(TABLE)
BYTES = bytearray([1, 2])
VIEW = memoryview(BYTES)


class Holder:
    def __init__(self):
        self.n = 2.0
        self.state = torch.zeros(2)


HOLDER = Holder()


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor([2.0]))
        self.register_buffer("shift", torch.tensor([0.0]))


MODEL = Model()


@skc.kernel(block=1)
def k(x: skc.Ptr[skc.f32]):
    x[0] = READ
"""
# (what the kernel stores, the change in place that makes it 3.0): a torch tensor's, a mapping proxy's and a
# memoryview's contents were watched by identity alone, and the kernel kept the old value
TORCH_CHANGES = {
    "tensor_item": ("float(WEIGHTS[1])", lambda m: m.WEIGHTS.__setitem__(1, 3.0)),
    "tensor_add_": ("float(WEIGHTS[1])", lambda m: m.WEIGHTS.add_(1.0)),
    "tensor_through_numpy": ("float(WEIGHTS[1])", lambda m: m.WEIGHTS.numpy().__setitem__(1, 3.0)),
    "bf16_tensor_through_data": ("float(HALVES[1])", lambda m: m.HALVES.data.__setitem__(1, 3.0)),
    "large_tensor_resized": ("float(LARGE.shape[0] == 2) + 2.0", lambda m: m.LARGE.resize_(2)),
    "inference_tensor": ("float(FROZEN[1])", lambda m: m.FROZEN.numpy().__setitem__(1, 3.0)),
    "tensor_an_object_holds": ("HOLDER.n + float(HOLDER.state[0])", lambda m: m.HOLDER.state.fill_(1.0)),
    "module_parameter_in_place": ("MODEL.scale[0].item()", lambda m: m.MODEL.scale.data.fill_(3.0)),
    "module_parameter_set_again": ("MODEL.scale[0].item()",
                                   lambda m: setattr(m.MODEL, "scale", m.torch.nn.Parameter(m.torch.tensor([3.0])))),
    "module_buffer": ("2.0 + float(MODEL.shift[0])", lambda m: m.MODEL.shift.add_(1.0)),
    "module_parameter_through_getattr": (
        "getattr(MODEL, 'scale')[0].item()",
        lambda m: setattr(m.MODEL, "scale", m.torch.nn.Parameter(m.torch.ones(1) * 3))),
    "mapping_proxy": ("PROXY['a']", lambda m: m.TABLE.__setitem__("a", 3.0)),
    "memoryview": ("float(VIEW[1]) + 0.0", lambda m: m.BYTES.__setitem__(1, 3)),
}


@pytest.mark.parametrize("way", sorted(TORCH_CHANGES))
def test_a_tensor_proxy_or_memoryview_changed_in_place_gives_a_new_kernel(load, way):
    read, change = TORCH_CHANGES[way]
    module = load(f"contents_torch_{way}", TORCH_KERNELS.replace("READ", read))
    assert launched(module.k) == 2.0
    assert launched(module.k) == 2.0 and module.k._recompiles == 0   # (an unchanged tensor is no change)
    assert module.k[1, 1]._fast is not None   # (the native call's state: it reads these views too)
    change(module)
    assert launched(module.k) == 3.0
    assert launched(module.k) == 3.0 and module.k._recompiles == 1


def test_an_attribute_a_module_has_not_read_with_a_default_is_no_change(load):
    module = load("contents_torch_default", TORCH_KERNELS.replace("READ", "getattr(MODEL, 'absent', 2.0)"))
    for _ in range(3):
        assert launched(module.k) == 2.0
    assert module.k._recompiles == 0 and module.k[1, 1]._fast is not None


def test_a_large_tensor_read_for_its_shape_and_written_in_place_is_no_change(load):
    """A tensor past WATCHED_ARRAY_BYTES (or on a GPU) is watched as a large numpy array is, by where its data lives
    and its geometry: a buffer read for its shape and written in place at every step (by torch or by the kernel) does
    not compile the kernel again (its version counter, watched at first, did)."""
    module = load("contents_torch_written", TORCH_KERNELS.replace("READ", "float(LARGE.shape[0]) / 2048.0"))
    for step in range(3):
        module.LARGE[step] = float(step)
        module.k[1, 1](module.LARGE)
        assert module.LARGE[0] == 2.0
    assert module.k._recompiles == 0


def test_a_kernel_reading_no_mutable_value_watches_no_contents(load):
    module = load("contents_none", KERNELS.replace("READ", "2.0"))
    assert launched(module.k) == 2.0
    assert not any(type(w[0]) is skc.frontend.keying.ContentsView for w in module.k._watch)


FROM_DISK = """import json
import kernels
first = kernels.k.compile(target="sm_90a")
kernels.SIZES.append(3.0)
second = kernels.k.compile(target="sm_90a")
kernels.SIZES.pop()   # (the cache keeps one entry a key: the last one stored, checked against what it read)
kernels.k.compile(target="sm_90a")
print(json.dumps([first.from_cache, "3.0" in first.ir("tile"), "3.0" in second.ir("tile")]))
"""


def test_the_contents_of_a_kernel_from_the_disk_cache_are_watched(tmp_path):
    (tmp_path / "kernels.py").write_text(KERNELS.replace("READ", "SIZES[-1]"))
    env = dict(os.environ, SKC_CACHE_DIR=str(tmp_path / "cache"), SKC_CACHE="1", PYTHONDONTWRITEBYTECODE="1",
               PYTHONPATH=os.pathsep.join([str(tmp_path), os.path.dirname(os.path.dirname(skc.__file__))]))

    def run():
        result = subprocess.run([sys.executable, "-c", FROM_DISK], capture_output=True, text=True, env=env, timeout=300,
                                cwd=str(tmp_path))
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])
    assert run() == [False, False, True]
    assert run() == [True, False, True]


UNCHANGING = """import dataclasses
import enum

import skc


@dataclasses.dataclass(frozen=True)
class Config:
    a: float = 1.0
    b: float = 1.0


class Perm(enum.IntFlag):
    R = 4
    W = 2
    X = 1


CONFIG = Config()


@skc.kernel(block=1)
def k(x: skc.Ptr[skc.f32]):
    x[0] = CONFIG.a + float(Perm.R in Perm.R)
"""


def test_what_cannot_change_in_place_is_not_watched_so(load):
    """A dataclass's field metadata (a copy the key made) and an enum's tables of its members: contents views of
    them cost every launch and never see a change; a Flag's combination made later (`Perm.R | Perm.W`), added to its
    table, compiled the kernel again."""
    module = load("contents_unchanging", UNCHANGING)
    assert launched(module.k) == 2.0
    assert not any(type(w[0]) is skc.frontend.keying.ContentsView for w in module.k._watch)
    for flags in (module.Perm.R | module.Perm.W, module.Perm.W | module.Perm.X, module.Perm.R | module.Perm.X):
        assert flags
        assert launched(module.k) == 2.0
    assert module.k._recompiles == 0


ALTERNATING = """import skc

LOG = []


@skc.kernel(block=1)
def logs(x: skc.Ptr[skc.f32], n: skc.constexpr):
    LOG.append(n)   # (at compile time: once a compile)
    x[0] = n
"""


def test_specializations_that_each_change_a_value_compile_once_each(load):
    """Each compile appends: the contents watched are as the latest compile left them, not the first's (every launch
    of the other specialization compiled again)."""
    module = load("contents_alternating", ALTERNATING)
    for _ in range(4):
        for n in (1, 2):
            out = np.zeros(1, np.float32)
            module.logs[1, 1](out, n)
            assert out[0] == n
    assert module.logs._recompiles == 0 and module.LOG == [1, 2]


def test_a_closure_emptied_after_a_launch_is_seen_by_the_native_call():
    value = None

    @skc.kernel(block=1)
    def k(x: skc.Ptr[skc.f32]):
        x[0] = 2.0 if value is None else 3.0

    def empty():
        nonlocal value
        del value

    assert launched(k) == 2.0
    assert k[1, 1]._fast is not None   # (a closure's kernel takes the native call)
    empty()
    with pytest.raises(skc.CompileError, match="value"):   # (bound to nothing: compiled again, it is refused)
        launched(k)


HOLDERS = """import logging

import skc


@skc.kernel(block=1)
def step(x: skc.Ptr[skc.f32]):
    x[0] = 1.0


class Runner:
    def __init__(self):
        self.n = 2.0
        self.step = step[1, 1]            # (a launch object: its state is rebuilt by its launches)
        self.log = logging.getLogger("contents_holders")   # (a library's object: the library's state)


RUNNER = Runner()


@skc.kernel(block=1)
def k(x: skc.Ptr[skc.f32]):
    x[0] = RUNNER.n
"""


def test_what_skc_or_a_library_keeps_in_a_value_read_is_no_change(load):
    """A launch object an object holds (`self.step = k2[1, 1]`) and a logger: their contents were watched, so each
    launch of the other kernel, and each new logger anywhere, compiled the reader again."""
    import logging

    module = load("contents_holders", HOLDERS)
    for i in range(3):
        assert launched(module.k) == 2.0
        module.RUNNER.step(np.zeros(1, np.float32))
        logging.getLogger(f"contents_holders.{i}")
    assert module.k._recompiles == 0
    module.RUNNER.n = 3.0
    assert launched(module.k) == 3.0


def test_an_item_stored_again_as_another_object_of_its_key_is_taken_by_the_view(load):
    """`TABLE["lr"] = float(lr)` at every step: another object of the same key; the view takes it (the identity check
    failed at every launch after, and each went through the keys of everything the kernel read)."""
    module = load("contents_equal_atoms", KERNELS.replace("READ", "TABLE['a']"))
    assert launched(module.k) == 2.0
    view = next(w[0] for w in module.k._watch if isinstance(w[0], skc.frontend.keying.ContentsView)
                and w[0].value is module.TABLE)
    module.TABLE["a"] = float("2.0")
    assert view.get("", None) is view and view.contents[len(module.TABLE)] is module.TABLE["a"]   # (keys, then values)
    module.TABLE["a"] = -0.0 + 2.0
    assert launched(module.k) == 2.0 and module.k._recompiles == 0
    module.TABLE["a"] = 2   # (an int of the same value: another key)
    assert view.get("", None) is not view


def test_an_enum_members_value_and_order_are_part_of_its_key():
    """The enum class's tables of members are left out of its key (a Flag's combinations add to them), so the member's
    key holds its value, and the class's the members' order and which member each alias names (`list(E)[0]`)."""
    import enum

    key = skc.frontend.keying.value_key
    first, second = enum.Enum("E", {"A": 1}), enum.Enum("E", {"A": 2})
    assert key(first.A) != key(second.A)
    assert key(enum.Enum("E", [("A", 1), ("B", 2)])) != key(enum.Enum("E", [("B", 2), ("A", 1)]))
    assert key(enum.Enum("E", [("A", 1), ("B", 1)])) != key(enum.Enum("E", [("B", 1), ("A", 1)]))


BUILT_ON_A_LIBRARY = """import abc

import skc


class Base(abc.ABC):
    pass


class Config(Base):
    def __init__(self):
        self.scale = 2.0


CONFIG = Config()


@skc.kernel(block=1)
def k(x: skc.Ptr[skc.f32]):
    x[0] = CONFIG.scale
"""


def test_a_field_of_an_object_of_a_class_built_on_a_librarys_is_watched(load):
    """An object of a class of the user's built on abc.ABC (typing.Generic, torch.nn.Module) has no exact key: its
    fields went unwatched, each change kept the old kernel."""
    module = load("contents_built_on_a_library", BUILT_ON_A_LIBRARY)
    assert launched(module.k) == 2.0
    module.CONFIG.scale = 3.0
    assert launched(module.k) == 3.0


HELPERS_LATER = {   # (the helper's body, what binds it to give 3.0)
    "name_error": ("    try:\n        return EXTRA\n    except NameError:\n        return 2.0\n", "EXTRA = 3.0"),
    "globals_get": ("    return globals().get('EXTRA', 2.0)\n", "EXTRA = 3.0"),
    "builtin_shadowed": ("    return float(max(1, 2))\n", "max = lambda *a: 3"),
}


@pytest.mark.parametrize("way", sorted(HELPERS_LATER))
def test_a_name_a_helper_looks_up_that_its_module_binds_later_gives_a_new_kernel(load, way):
    """A plain helper run at compile time that looks a global up which its module does not bind (yet): the names its
    code spells out were watched where bound, not where missing, and globals() not at all."""
    body, binding = HELPERS_LATER[way]
    module = load(f"contents_helper_{way}", f"import skc\n\n\ndef helper():\n{body}\n\n@skc.kernel(block=1)\n"
                                            "def k(x: skc.Ptr[skc.f32]):\n    x[0] = helper()\n")
    assert launched(module.k) == 2.0
    exec(binding, vars(module))
    assert launched(module.k) == 3.0
