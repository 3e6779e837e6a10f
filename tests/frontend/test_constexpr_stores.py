"""A run-time value stored into a constexpr argument, or into what it holds, by the ways besides `obj.attr = value`
(which 44e4d2a refused): an item store into a list or dict, a list's or dict's own method (append, extend, insert,
setdefault, update, `+=`), an attribute kept in a slot (`__slots__`, a slotted dataclass), an object the kernel put
into the argument. Each left this compile's variable in the user's object: the launch ran, and the object read back a
`<variable element: f32>`; the next compile given it (another target, another kernel) failed on "another compile's"
run-time value, or the launch key failed in keying's words (Unkeyable, no skc error) and every later launch with a
LaunchError. Now each is a CompileError at the user's line naming the argument, and the object is left as it was."""
import copy
import dataclasses
import operator
import os

import numpy as np
import pytest

import skc
from helpers import line_of

F32P = skc.Ptr[skc.f32]
HERE = os.path.abspath(__file__)


class Box:
    pass


class Slotted:
    __slots__ = ("v", "inner")

    def __init__(self, v=1.0, inner=None):
        self.v = v
        self.inner = inner


@dataclasses.dataclass(slots=True)
class SlottedConfig:
    v: object = 1.0


@dataclasses.dataclass(frozen=True, slots=True)
class FrozenConfig:
    v: float = 1.0


def refused(kernel, given, *, extra=(), holds: str, hint: str = ""):
    """Launch kernel twice on `given` (as its last argument): each a CompileError at the line marked `# HERE` whose
    message says the run-time value goes into `holds`; the object as it was after each."""
    before = copy.deepcopy(given)
    for _ in range(2):   # (the second: the same error, not one about the first compile's leftovers)
        x, out = np.array([5.0, 1.0], np.float32), np.zeros(1, np.float32)
        with pytest.raises(skc.CompileError) as info:
            kernel.interpret[1, 1](x, out, *extra, given)
        text = str(info.value)
        assert text.startswith(f"{HERE}:{line_of(kernel, '# HERE')}:"), text
        assert holds in text, text
        assert "a constexpr value is the compile's key" in text, text
        assert hint in info.value.hint, info.value.hint
        assert _state(given) == _state(before)


def _state(value):
    """What a value holds, for comparing (plain objects by their attributes, slots too)."""
    if isinstance(value, (list, tuple)):
        return [_state(v) for v in value]
    if isinstance(value, dict):
        return {k: _state(v) for k, v in value.items()}
    if isinstance(value, (Box, Slotted, SlottedConfig, FrozenConfig)):
        names = getattr(type(value), "__slots__", None) or vars(value)
        return (type(value), {n: _state(getattr(value, n)) for n in names if hasattr(value, n)})
    return value


# -- an item stored into a constexpr list or dict ---------------------------------------------------------------
@skc.kernel
def stores_an_item(x: F32P, out: F32P, cfg: skc.constexpr):
    cfg[0] = x[0]  # HERE
    out[0] = cfg[0]


@skc.kernel
def stores_a_key(x: F32P, out: F32P, cfg: skc.constexpr):
    cfg["k"] = x[0]  # HERE
    out[0] = cfg["k"]


@skc.kernel
def adds_to_an_item(x: F32P, out: F32P, cfg: skc.constexpr):
    cfg[0] += x[0]  # HERE
    out[0] = cfg[0]


@skc.kernel
def stores_an_item_of_a_held_list(x: F32P, out: F32P, cfg: skc.constexpr):
    cfg.sizes[0] = x[0]  # HERE
    out[0] = cfg.sizes[0]


@skc.kernel
def stores_a_list_of_run_time_values(x: F32P, out: F32P, cfg: skc.constexpr):
    cfg[0] = [x[0]]  # HERE
    out[0] = cfg[0][0]


@skc.kernel
def sums_into_an_item(x: F32P, out: F32P, n: skc.i32, cfg: skc.constexpr):
    for i in range(n):
        cfg[0] = cfg[0] + x[i]  # HERE
    out[0] = cfg[0]


def _with_sizes():
    holder = Box()
    holder.sizes = [1.0]
    return holder


@pytest.mark.parametrize("kernel, make, holds", [
    (stores_an_item, lambda: [1.0], "into item 0 of constexpr argument 'cfg' (list [1.0])"),
    (stores_a_key, lambda: {"k": 1.0}, "into item 'k' of constexpr argument 'cfg' (dict {'k': 1.0})"),
    (adds_to_an_item, lambda: [1.0], "into item 0 of constexpr argument 'cfg'"),
    (stores_an_item_of_a_held_list, _with_sizes, "into item 0 of list [1.0] that constexpr argument 'cfg' holds"),
    (stores_a_list_of_run_time_values, lambda: [0], "into item 0 of constexpr argument 'cfg'"),
])
def test_a_run_time_item_stored_into_a_constexpr_is_refused(kernel, make, holds):
    given = make()
    kind = "dict" if isinstance(given, dict) else "list"
    refused(kernel, given, holds=holds, hint=f"copy it into a local {kind} and change the copy (`{kind}(...)` of it")


def test_an_item_changed_in_a_run_time_loop_is_refused():
    """The loop kept the list's items in variables (keep_in_slots), put into the user's list before the body ran."""
    refused(sums_into_an_item, [0.0], extra=(2,), holds="constexpr argument 'cfg'",
            hint="copy it into a local list and change the copy")


@skc.kernel
def sets_an_item_in_a_run_time_loop(x: F32P, out: F32P, n: skc.i32, cfg: skc.constexpr):
    for i in range(n):
        cfg[0] = 3.0  # HERE
    out[0] = cfg[0]


def test_an_item_set_to_a_compile_time_value_in_a_run_time_loop_is_refused():
    """There the item becomes a run-time variable (keep_in_slots), which the user's list kept."""
    refused(sets_an_item_in_a_run_time_loop, [0.0], extra=(2,),
            holds="changes item 0 of constexpr argument 'cfg' (list [0.0]) inside run-time control flow",
            hint="copy it into a local list and change the copy")


@skc.kernel
def sums_into_a_copy(x: F32P, out: F32P, n: skc.i32, cfg: skc.constexpr):
    sums = list(cfg)
    for i in range(n):
        sums[0] = sums[0] + x[i]
    out[0] = sums[0]


def test_a_local_copy_of_a_constexpr_list_is_changed_as_the_hint_says():
    cfg = [0.5]
    out = np.zeros(1, np.float32)
    sums_into_a_copy.interpret[1, 1](np.array([5.0, 1.0], np.float32), out, 2, cfg)
    assert out[0] == 6.5 and cfg == [0.5]


# -- a constexpr list's or dict's own methods -------------------------------------------------------------------
@skc.kernel
def appends(x: F32P, out: F32P, cfg: skc.constexpr):
    cfg.append(x[0])  # HERE
    out[0] = cfg[-1]


@skc.kernel
def extends(x: F32P, out: F32P, cfg: skc.constexpr):
    cfg.extend([x[0]])  # HERE
    out[0] = cfg[-1]


@skc.kernel
def inserts(x: F32P, out: F32P, cfg: skc.constexpr):
    cfg.insert(0, x[0])  # HERE
    out[0] = cfg[0]


@skc.kernel
def adds_a_list(x: F32P, out: F32P, cfg: skc.constexpr):
    cfg += [x[0]]  # HERE
    out[0] = cfg[-1]


@skc.kernel
def sets_a_default(x: F32P, out: F32P, cfg: skc.constexpr):
    cfg.setdefault("k", x[0])  # HERE
    out[0] = cfg["k"]


@skc.kernel
def updates(x: F32P, out: F32P, cfg: skc.constexpr):
    cfg.update(k=x[0])  # HERE
    out[0] = cfg["k"]


@skc.kernel
def updates_from_a_dict(x: F32P, out: F32P, cfg: skc.constexpr):
    cfg.update({"k": x[0]})  # HERE
    out[0] = cfg["k"]


@skc.kernel
def appends_to_a_held_list(x: F32P, out: F32P, cfg: skc.constexpr):
    cfg.sizes.append(x[0])  # HERE
    out[0] = cfg.sizes[-1]


@skc.kernel
def adds_to_a_held_list(x: F32P, out: F32P, cfg: skc.constexpr):
    cfg.sizes += [x[0]]  # HERE
    out[0] = cfg.sizes[-1]


@pytest.mark.parametrize("kernel, make, holds", [
    (appends, lambda: [1.0], "with list.append() into constexpr argument 'cfg' (list [1.0])"),
    (extends, lambda: [1.0], "with list.extend() into constexpr argument 'cfg'"),
    (inserts, lambda: [1.0], "with list.insert() into constexpr argument 'cfg'"),
    (adds_a_list, lambda: [1.0], "with list += into constexpr argument 'cfg'"),
    (sets_a_default, lambda: {}, "with dict.setdefault() into constexpr argument 'cfg' (dict {})"),
    (updates, lambda: {}, "with dict.update() into constexpr argument 'cfg'"),
    (updates_from_a_dict, lambda: {"k": 0.0}, "with dict.update() into constexpr argument 'cfg'"),
    (appends_to_a_held_list, _with_sizes, "with list.append() into list [1.0] that constexpr argument 'cfg' holds"),
    (adds_to_a_held_list, _with_sizes, "with list += into list [1.0] that constexpr argument 'cfg' holds"),
])
def test_a_run_time_value_given_to_a_constexpr_containers_method_is_refused(kernel, make, holds):
    refused(kernel, make(), holds=holds, hint="copy it into a local")


@skc.kernel
def appends_a_size(x: F32P, out: F32P, cfg: skc.constexpr):
    sizes = list(cfg)
    sizes.append(x[0])
    out[0] = sizes[-1] + sizes[0]


def test_a_local_copy_takes_a_run_time_value():
    cfg = [0.5]
    out = np.zeros(1, np.float32)
    appends_a_size.interpret[1, 1](np.array([5.0, 1.0], np.float32), out, cfg)
    assert out[0] == 5.5 and cfg == [0.5]


# -- attributes kept in slots -----------------------------------------------------------------------------------
@skc.kernel
def sets_an_attribute(x: F32P, out: F32P, cfg: skc.constexpr):
    cfg.v = x[0]  # HERE
    out[0] = cfg.v


@skc.kernel
def sets_a_held_attribute(x: F32P, out: F32P, cfg: skc.constexpr):
    cfg.inner.v = x[0]  # HERE
    out[0] = cfg.inner.v


@skc.kernel
def sets_past_a_frozen_class(x: F32P, out: F32P, cfg: skc.constexpr):
    object.__setattr__(cfg, "v", x[0])  # HERE
    out[0] = cfg.v


@skc.kernel
def stores_an_item_in_a_slot(x: F32P, out: F32P, cfg: skc.constexpr):
    cfg.v[0] = x[0]  # HERE
    out[0] = cfg.v[0]


@pytest.mark.parametrize("kernel, make, holds", [
    (sets_an_attribute, Slotted, "into 'v' of constexpr argument 'cfg' ('Slotted' object)"),
    (sets_an_attribute, SlottedConfig, "into 'v' of constexpr argument 'cfg' ('SlottedConfig' object)"),
    (sets_an_attribute, FrozenConfig, "into 'v' of constexpr argument 'cfg' ('FrozenConfig' object)"),
    (sets_past_a_frozen_class, FrozenConfig, "into 'v' of constexpr argument 'cfg' ('FrozenConfig' object)"),
    (sets_a_held_attribute, lambda: Slotted(inner=Slotted()), "into 'v' of 'Slotted' object that constexpr argument "
                                                              "'cfg' holds"),
    (stores_an_item_in_a_slot, lambda: SlottedConfig([1.0]), "into item 0 of list [1.0] that constexpr argument "
                                                             "'cfg' holds"),
])
def test_a_run_time_value_stored_into_a_slot_is_refused(kernel, make, holds):
    """A slotted object has no __dict__: what the argument held was not looked for in its slots. The launch ran and
    the object kept the variable (SlottedConfig(v=<variable v: f32>)); past a frozen class's __setattr__, the launch
    failed in keying's words (Unkeyable) and every later one with a LaunchError."""
    refused(kernel, make(), holds=holds, hint="inside the kernel" if kernel is not stores_an_item_in_a_slot else
            "copy it into a local list")


@skc.kernel
def sets_with_setattr(x: F32P, out: F32P, cfg: skc.constexpr):
    setattr(cfg, "v", x[0])  # HERE
    out[0] = cfg.v


def test_setattr_is_refused_at_its_line():
    """(It pointed at the kernel's def line: set_attribute is given no node by setattr().)"""
    refused(sets_with_setattr, Box(), holds="into 'v' of constexpr argument 'cfg' ('Box' object)",
            hint="make the Box inside the kernel")


# -- an object the kernel puts into a constexpr argument: held by it from then on ------------------------------
@skc.kernel
def sets_into_a_new_inner(x: F32P, out: F32P, cfg: skc.constexpr):
    cfg.inner = Box()
    cfg.inner.v = x[0]  # HERE
    out[0] = cfg.inner.v


@skc.kernel
def puts_in_an_object_with_state(x: F32P, out: F32P, cfg: skc.constexpr):
    made = Box()
    made.v = x[0]
    cfg.inner = made  # HERE
    out[0] = cfg.inner.v


@skc.kernel
def sets_into_an_appended_object(x: F32P, out: F32P, cfg: skc.constexpr):
    cfg.append(Box())
    cfg[-1].v = x[0]  # HERE
    out[0] = cfg[-1].v


@skc.kernel
def appends_to_a_new_item(x: F32P, out: F32P, cfg: skc.constexpr):
    cfg[0] = []
    cfg[0].append(x[0])  # HERE
    out[0] = cfg[0][0]


@skc.kernel
def sets_into_an_extended_object(x: F32P, out: F32P, cfg: skc.constexpr):
    cfg.extend([Box()])
    cfg[-1].v = x[0]  # HERE
    out[0] = cfg[-1].v


@pytest.mark.parametrize("kernel, make, holds", [
    (sets_into_a_new_inner, Box, "into 'v' of 'Box' object that constexpr argument 'cfg' holds"),
    (puts_in_an_object_with_state, Box, "stores 'Box' object, which holds a run-time value, into 'inner' of "
                                        "constexpr argument 'cfg' ('Box' object)"),
    (sets_into_an_appended_object, lambda: [], "into 'v' of 'Box' object that constexpr argument 'cfg' holds"),
    (appends_to_a_new_item, lambda: [0], "with list.append() into list [] that constexpr argument 'cfg' holds"),
    (sets_into_an_extended_object, lambda: [], "into 'v' of 'Box' object that constexpr argument 'cfg' holds"),
])
def test_an_object_put_into_a_constexpr_is_held_by_it(kernel, make, holds):
    """What the argument held was noted before the body ran: an object the kernel made and put there took this
    compile's variable past the check, and the launch failed in keying's words (Unkeyable), every later one with a
    LaunchError; or, in a list, ran and left the variable in the user's list."""
    given = make()
    if not isinstance(given, list):
        refused(kernel, given, holds=holds, hint="inside the kernel")
        return
    # (a list keeps what the failed compile put into it before the refused line: not put back, as attributes are)
    with pytest.raises(skc.CompileError) as info:
        kernel.interpret[1, 1](np.array([5.0, 1.0], np.float32), np.zeros(1, np.float32), given)
    assert str(info.value).startswith(f"{HERE}:{line_of(kernel, '# HERE')}:"), str(info.value)
    assert holds in str(info.value)


@skc.kernel
def sums_into_an_attribute(x: F32P, out: F32P, n: skc.i32, cfg: skc.constexpr):
    for i in range(n):
        cfg.v = cfg.v + x[i]  # HERE
    out[0] = cfg.v


@skc.kernel
def sets_an_attribute_in_a_run_time_loop(x: F32P, out: F32P, n: skc.i32, cfg: skc.constexpr):
    for i in range(n):
        cfg.v = 3.0  # HERE
    out[0] = cfg.v


@pytest.mark.parametrize("kernel, holds", [
    (sums_into_an_attribute, "stores a run-time value into 'v' of constexpr argument 'cfg'"),
    (sets_an_attribute_in_a_run_time_loop, "changes 'v' of constexpr argument 'cfg' ('Box' object) inside run-time "
                                           "control flow, where the attribute would be a run-time variable"),
])
def test_an_attribute_changed_in_a_run_time_loop_is_refused(kernel, holds):
    """The loop kept the attribute in a variable (keep_in_slots), put into the user's object before the body ran:
    the launch failed in keying's words (Unkeyable). A compile-time value's error said to make it a run-time value
    where first set, which the argument cannot hold."""
    given = Box()
    given.v = 0.5
    refused(kernel, given, extra=(2,), holds=holds, hint="make the Box inside the kernel")


# -- the same stores, spelled otherwise -------------------------------------------------------------------------
@skc.kernel
def appends_through_the_class(x: F32P, out: F32P, cfg: skc.constexpr):
    list.append(cfg, x[0])  # HERE
    out[0] = cfg[-1]


@skc.kernel
def sets_through_operator(x: F32P, out: F32P, cfg: skc.constexpr):
    operator.setitem(cfg, 0, x[0])  # HERE
    out[0] = cfg[0]


@skc.kernel
def sets_into_its_dict(x: F32P, out: F32P, cfg: skc.constexpr):
    cfg.__dict__["v"] = x[0]  # HERE
    out[0] = cfg.v


@skc.kernel
def sets_into_vars(x: F32P, out: F32P, cfg: skc.constexpr):
    vars(cfg)["v"] = x[0]  # HERE
    out[0] = cfg.v


@pytest.mark.parametrize("kernel, make, holds", [
    (appends_through_the_class, lambda: [1.0], "with list.append() into constexpr argument 'cfg' (list [1.0])"),
    (sets_through_operator, lambda: [1.0], "with list.__setitem__() into constexpr argument 'cfg' (list [1.0])"),
    (sets_into_its_dict, Box, "into item 'v' of dict {} that constexpr argument 'cfg' holds"),
    (sets_into_vars, Box, "into item 'v' of dict {} that constexpr argument 'cfg' holds"),
])
def test_a_store_spelled_otherwise_is_refused(kernel, make, holds):
    """`list.append(cfg, v)` and `operator.setitem(cfg, i, v)` ran and left the value in the user's list; an
    object's __dict__ took it past the attribute's check, and the next launch failed (a LaunchError, keying's words)."""
    refused(kernel, make(), holds=holds, hint="copy it into a local")


# -- what a lazy argument gives a storing method, and a bound __setattr__ (a review of the above) -------------------
@skc.kernel
def extends_from_a_generator(x: F32P, out: F32P, cfg: skc.constexpr):
    cfg.extend(x[i] for i in skc.static_range(1))  # HERE
    out[0] = cfg[-1]


@skc.kernel
def updates_from_a_generator(x: F32P, out: F32P, cfg: skc.constexpr):
    cfg.update((k, x[0]) for k in ["k"])  # HERE
    out[0] = cfg["k"]


@skc.kernel
def sets_through_its_own_setattr(x: F32P, out: F32P, cfg: skc.constexpr):
    cfg.__setattr__("v", x[0])  # HERE
    out[0] = cfg.v


def _box_of_one():
    box = Box()
    box.v = 1.0
    return box


@pytest.mark.parametrize("kernel, make, holds", [
    (extends_from_a_generator, lambda: [1.0], "with list.extend() into constexpr argument 'cfg' (list [1.0])"),
    (updates_from_a_generator, lambda: {"k": 1.0}, "with dict.update() into constexpr argument 'cfg' (dict {'k': 1.0})"),
    (sets_through_its_own_setattr, _box_of_one, "into 'v' of constexpr argument 'cfg'"),
])
def test_a_run_time_value_a_generator_or_a_bound_setattr_stores_is_refused(kernel, make, holds):
    """The items of a generator given to extend or update are taken by the call, where no check saw them before it,
    and `cfg.__setattr__("v", x)` was no attribute store: each left a run-time value in the user's object."""
    refused(kernel, make(), holds=holds)
