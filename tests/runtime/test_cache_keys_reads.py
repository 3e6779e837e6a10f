"""Stale kernels from reads the keys missed: a kernel's own attributes (`k.scale`, read in k's body); the attributes of
an object, function or kernel a kernel found in a closure (only the closure's binding was watched); the attributes of
an @skc.func named like a standard module (`select`, its watch taken for a module's); and a module's attributes read
other than by `cfg.NAME` or `getattr(cfg, "NAME")` (a partial of getattr, operator.attrgetter, getattr_static,
`__getattribute__`, `vars(cfg)`, `cfg.__dict__`, a helper given the module, and hasattr or a getattr default of a
name the module does not bind yet)."""
import importlib
import sys

import numpy as np
import pytest

import skc
from skc.frontend import keying
from test_cache_keys import run_compiles
from test_cache_keys_more import constants, two_versions


@pytest.fixture
def load(tmp_path, monkeypatch):
    """Writes a module's text beside the test and imports it (its kernels' source must be in a file)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = []

    def imported(name: str, text: str):
        (tmp_path / f"{name}.py").write_text(text)
        loaded.append(name)
        return importlib.import_module(name)

    yield imported
    for name in loaded:
        sys.modules.pop(name, None)


def launched(kernel) -> float:
    out = np.zeros(1, np.float32)
    kernel[1, 1](out)
    return float(out[0])


# -- a kernel's own attributes ----------------------------------------------------------------------------------------
OWN_ATTRIBUTE = ("import skc\n\n@skc.kernel(block=32)\ndef k(x: skc.Ptr[skc.f32]):\n    x[0] = x[0] * k.scale\n\n"
                 "k.scale = 2.0\n")


def test_a_kernels_own_attribute_is_part_of_its_key_on_disk(tmp_path):
    second, fresh = two_versions(tmp_path, {"kernels.py": OWN_ATTRIBUTE},
                                 {"kernels.py": OWN_ATTRIBUTE.replace("2.0", "3.0")})
    assert second["from_cache"] is False
    assert "3.0" in constants(second["tile"]) and constants(second["tile"]) == constants(fresh["tile"])


def test_a_kernel_reading_its_own_attribute_is_still_served_from_disk(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "kernels.py").write_text(OWN_ATTRIBUTE)
    run_compiles(code, tmp_path / "cache", ["k"])
    assert run_compiles(code, tmp_path / "cache", ["k"])["kernels"]["k"]["from_cache"] is True


def test_a_kernels_own_attribute_set_after_a_launch_gives_a_new_kernel(load):
    module = load("own_attribute_kernels", "import skc\n\n@skc.kernel(block=1)\ndef k(x: skc.Ptr[skc.f32]):\n"
                                           "    x[0] = k.scale\n\nk.scale = 2.0\n")
    assert launched(module.k) == 2.0
    module.k.scale = 3.0
    assert launched(module.k) == 3.0


def test_a_local_kernels_own_attribute_set_after_a_launch_gives_a_new_kernel():
    @skc.kernel(block=1)
    def k(x: skc.Ptr[skc.f32]):
        x[0] = k.scale   # (k: a closure cell of this test)

    k.scale = 2.0
    assert launched(k) == 2.0
    k.scale = 3.0
    assert launched(k) == 3.0


def test_a_kernels_launcher_state_is_no_attribute_of_the_users():
    @skc.kernel(block=1)
    def k(x: skc.Ptr[skc.f32]):
        x[0] = 1.0

    before = keying.dependency_key(k)
    launched(k)
    assert keying.dependency_key(k) == before and "attributes" not in before
    k.scale = 2.0
    assert "attributes{scale=float:2.0}" in keying.dependency_key(k)


def test_a_defs_own_attributes_are_the_kernels_users():
    def body(x: skc.Ptr[skc.f32]):
        x[0] = 1.0

    body.scale, body.block = 2.0, "the user's"   # (block: a name the launcher's state has too)
    key = keying.dependency_key(skc.kernel(block=1)(body))
    assert "attributes{scale=float:2.0}" in key and "the user's" not in key


# -- what a closure holds ---------------------------------------------------------------------------------------------
def test_a_closure_functions_attribute_set_after_a_launch_gives_a_new_kernel():
    def scale():
        return 1.0

    scale.by = 2.0

    @skc.kernel(block=1)
    def k(x: skc.Ptr[skc.f32]):
        x[0] = scale.by   # (read, not called: the call kept a key of its own)

    assert launched(k) == 2.0
    scale.by = 3.0
    assert launched(k) == 3.0


def test_a_closure_objects_field_set_after_a_launch_gives_a_new_kernel():
    class Config:
        pass

    config = Config()
    config.scale = 2.0

    @skc.kernel(block=1)
    def k(x: skc.Ptr[skc.f32]):
        x[0] = config.scale

    assert launched(k) == 2.0
    config.scale = 3.0
    assert launched(k) == 3.0


def test_an_attribute_of_a_dsl_function_named_like_a_standard_module_is_watched(load):
    # (select is a standard module's name: the function's attributes were taken for that module's, which the watch
    # leaves to the key of skc's version)
    module = load("select_kernels", "import skc\n\n@skc.func\ndef select(v):\n    return v\n\nselect.scale = 2.0\n\n"
                                    "@skc.kernel(block=1)\ndef k(x: skc.Ptr[skc.f32]):\n"
                                    "    x[0] = select(1.0) * select.scale\n")
    assert launched(module.k) == 2.0
    module.select.scale = 3.0
    assert launched(module.k) == 3.0


# -- a module's attributes read other than by `cfg.NAME` --------------------------------------------------------------
HOLDER = "class Holder:\n    pass\n\n\nholder = Holder()\nholder.m = cfg"
# (prelude, the expression the kernel stores): each reads cfg.SCALE
READS_OF_A_MODULE = {
    "getattr": ("", "getattr(cfg, 'SCALE')"),
    "partial_of_getattr": ("scale_of = functools.partial(getattr, cfg, 'SCALE')", "scale_of()"),
    "partial_of_getattr_by_name": ("read = functools.partial(getattr, cfg)", "read('SCALE')"),
    "attrgetter": ("scale_of = operator.attrgetter('SCALE')", "scale_of(cfg)"),
    "attrgetter_in_the_kernel": ("", "operator.attrgetter('SCALE')(cfg)"),
    "getattr_static": ("", "inspect.getattr_static(cfg, 'SCALE')"),
    "object_getattribute": ("", "object.__getattribute__(cfg, 'SCALE')"),
    "module_getattribute": ("", "cfg.__getattribute__('SCALE')"),
    "vars": ("", "vars(cfg)['SCALE']"),
    "dunder_dict": ("", "cfg.__dict__['SCALE']"),
    "dunder_dict_get": ("", "cfg.__dict__.get('SCALE')"),
    "helper_given_the_module": ("def scale_of(module):\n    return module.SCALE", "scale_of(cfg)"),
    "lambda_of_getattr": ("scale_of = lambda: getattr(cfg, 'SCALE')", "scale_of()"),
    # (the module held by what plain Python is given: an object's field, a list's item)
    "attrgetter_through_an_object": (HOLDER, "operator.attrgetter('m.SCALE')(holder)"),
    "helper_given_an_object": (HOLDER + "\n\ndef scale_of(h):\n    return h.m.SCALE", "scale_of(holder)"),
    "helper_given_a_list": ("def first_scale(ms):\n    return ms[0].SCALE", "first_scale([cfg])"),
}
# each reads cfg.EXTRA, which the module binds only in the second version
READS_OF_A_NAME_NOT_BOUND = {
    "hasattr": ("", "3.0 if hasattr(cfg, 'EXTRA') else 2.0"),
    "getattr_default": ("", "getattr(cfg, 'EXTRA', 2.0)"),
}
# the same, by code that reads the module whole (keyed whole, never served from disk): the names it binds are watched
WHOLE_READS_OF_A_NAME_NOT_BOUND = {
    "vars_get_default": ("", "vars(cfg).get('EXTRA', 2.0)"),
    "partial_of_getattr_default": ("read = functools.partial(getattr, cfg)", "read('EXTRA', 2.0)"),
}
NOT_BOUND = {**READS_OF_A_NAME_NOT_BOUND, **WHOLE_READS_OF_A_NAME_NOT_BOUND}
READS = {**READS_OF_A_MODULE, **NOT_BOUND}


def reader_module(way: str, cfg: str = "cfg") -> str:
    prelude, expression = READS[way]
    return (f"import functools\nimport inspect\nimport operator\n\nimport skc\nimport {cfg} as cfg\n\n{prelude}\n\n"
            f"@skc.kernel(block=1)\ndef k(x: skc.Ptr[skc.f32]):\n    x[0] = {expression}\n")


@pytest.mark.parametrize("way", sorted(READS))
def test_a_modules_attribute_changed_after_a_launch_gives_a_new_kernel(load, way):
    cfg = load(f"reads_cfg_{way}", "SCALE = 2.0\n")
    module = load(f"reads_kernels_{way}", reader_module(way, cfg.__name__))
    assert launched(module.k) == 2.0
    if way in NOT_BOUND:
        cfg.EXTRA = 3.0
    else:
        cfg.SCALE = 3.0
    assert launched(module.k) == 3.0


@pytest.mark.parametrize("way", sorted(READS))
def test_a_modules_attribute_edited_is_seen_on_disk(tmp_path, way):
    first = {"kernels.py": reader_module(way), "cfg.py": "SCALE = 2.0\n"}
    edited = "SCALE = 2.0\nEXTRA = 3.0\n" if way in NOT_BOUND else "SCALE = 3.0\n"
    second, fresh = two_versions(tmp_path, first, {"cfg.py": edited})
    assert "3.0" in constants(second["tile"]) and constants(second["tile"]) == constants(fresh["tile"])


@pytest.mark.parametrize("way", sorted(READS_OF_A_NAME_NOT_BOUND))
def test_a_name_a_module_does_not_bind_is_keyed_so_the_kernel_is_served_from_disk(tmp_path, way):
    code = tmp_path / "code"
    code.mkdir()
    (code / "kernels.py").write_text(reader_module(way))
    (code / "cfg.py").write_text("SCALE = 2.0\n")
    run_compiles(code, tmp_path / "cache", ["k"])
    assert run_compiles(code, tmp_path / "cache", ["k"])["kernels"]["k"]["from_cache"] is True


# -- what the reads above must not cost (a review of them) -------------------------------------------------------------
LAYER = """import skc


class Layer:
    def __init__(self):
        self.eps = 2.0

        @skc.kernel(block=1)
        def k(x: skc.Ptr[skc.f32]):
            x[0] = self.eps

        self.k = k
"""


def test_a_kernel_an_object_holds_is_keyed_as_which_kernel_it_is(load):
    """A kernel made in __init__, kept on self and reading self.eps: the key of self walked the kernel as an object, its
    launcher's state among its fields (its compiled code, rebound by each launch), so every launch compiled anew."""
    layer = load("reads_layer", LAYER).Layer()
    for _ in range(4):
        assert launched(layer.k) == 2.0
    assert layer.k._recompiles == 0
    layer.eps = 3.0
    assert launched(layer.k) == 3.0


MODULE_INSPECTED = ("import types\n\nimport skc\nimport cfg\n\n\n@skc.kernel(block=1)\ndef k(x: skc.Ptr[skc.f32]):\n"
                    "    if isinstance(cfg, types.ModuleType) and callable(cfg.scaled) and type(cfg) is not int:\n"
                    "        x[0] = cfg.SCALE\n")


def test_a_module_given_to_isinstance_or_callable_is_no_whole_dependency(tmp_path):
    """isinstance(cfg, ...), callable(cfg) and type(cfg) read no attribute of the module: as code given the module,
    it was keyed whole, and the kernel never came from the disk cache."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "kernels.py").write_text(MODULE_INSPECTED)
    (code / "cfg.py").write_text("SCALE = 2.0\n\n\ndef scaled(x):\n    return x * SCALE\n")
    run_compiles(code, tmp_path / "cache", ["k"])
    assert run_compiles(code, tmp_path / "cache", ["k"])["kernels"]["k"]["from_cache"] is True
