"""skc.autotune findings of a helper's search (sixtieth session): arguments it took and failed on at the first timing
run, or at the first call, with Python's errors; winners one tuner read for another (lambdas of one scope, closures
over other dicts, arrays or kernel views; callable objects and partials named with a memory address, so never read
back); winners kept after an edit of code the launch reaches other than by a global (a partial's function, a callable
object's class, the key function, a kernel named in the configs, a kernel behind a helper or a module's module, a
class attribute) or of the launch function's file while the process ran; choose() giving the tuner's own dict."""
import functools
import hashlib
import importlib
import sys
import textwrap

import numpy as np
import pytest

import skc
from skc.autotune import Autotuner, _default_name, _source_files


def launch(x, n, BLOCK):
    pass


X = np.zeros(4, np.float32)


@pytest.mark.parametrize("make, message", [
    (lambda: skc.autotune(configs=[{"BLOK": 64}])(launch), "names BLOK, which it takes no parameter of"),
    (lambda: skc.autotune(launch), r"takes the configs first: write @skc.autotune\(configs="),
    (lambda: skc.autotune(configs=[{"BLOCK": 64}], repeats=0)(launch), "repeats is an int of 1 or more"),
    (lambda: skc.autotune(configs=[{"BLOCK": 64}], warmup="3")(launch), "warmup is an int of 0 or more"),
    (lambda: skc.autotune(configs=[{"BLOCK": 64}], name=5)(launch), "name is a string"),
    (lambda: skc.autotune(configs=[{"BLOCK": 64}], keys=lambda x, n: n)(launch), "takes no option keys"),
    (lambda: skc.autotune(configs=[{"BLOCK": 64}])(5), "decorates a launch function"),
    (lambda: skc.autotune(configs=[{"BLOCK": 64}], timer=5)(launch), "timer is a function"),
])
def test_bad_arguments_are_refused_when_decorating(make, message):
    with pytest.raises(skc.SkcError, match=message):
        make()


@pytest.mark.parametrize("key, call, message", [
    (lambda x, m: m, lambda t: t(X, n=4), r"its key cannot take the call's arguments \(missing a required"),
    (lambda n: n, lambda t: t(X, 4), r"its key cannot take the call's arguments \(too many positional"),
    (lambda x, n, BLOCK=None: n, lambda t: t(X, 4, BLOCK=32), "the call passes BLOCK, which the tuner chooses"),
])
def test_a_key_that_cannot_take_the_call_or_a_call_passing_a_config_is_an_skc_error(tmp_path, key, call, message):
    skc.set_cache_dir(tmp_path)
    try:
        with pytest.raises(skc.SkcError, match=message):
            call(skc.autotune(configs=[{"BLOCK": 64}], key=key, timer=lambda run: run() or 1.0)(launch))
    finally:
        skc.set_cache_dir(None)


def test_a_key_raising_its_own_type_error_is_not_reworded():
    def key(x, n):
        raise TypeError("the user's own")

    tuner = Autotuner(launch, [{"BLOCK": 64}], key=key, timer=lambda run: run() or 1.0, device_name=lambda: "fake")
    with pytest.raises(TypeError, match="the user's own"):
        tuner(X, 4)


def test_choose_gives_a_copy():
    tuner = Autotuner(launch, [{"BLOCK": 64}, {"BLOCK": 128}], key=lambda x, n: n, timer=lambda run: run() or 1.0,
                      device_name=lambda: "fake", name="tests.choose-copy")
    chosen = tuner.choose(X, 4)
    chosen["BLOCK"] = 99
    assert tuner.choose(X, 4)["BLOCK"] in (64, 128) and {"BLOCK": 99} not in tuner.configs


class Launch:
    def __init__(self, op):
        self.op = op

    def __call__(self, n, tile):
        pass


def factory(held):
    def run(n, tile):
        return held
    return run


def test_default_names_are_the_same_in_every_process_and_tell_launch_functions_apart():
    names = [_default_name(fn) for fn in (Launch("add"), functools.partial(launch, X), lambda n, tile: 1,
                                          lambda n, tile: 2)]
    assert all("0x" not in name for name in names)
    assert names[0] == _default_name(Launch("add")) != _default_name(Launch("mul"))
    assert names[2] != names[3]
    for a, b in (({"op": "add"}, {"op": "mul"}), (np.zeros(3), np.ones(3))):
        assert _default_name(factory(a)) != _default_name(factory(b))
        assert _default_name(factory(a)) == _default_name(factory(a))


KERNEL = '''
import skc


@skc.kernel(block=32)
def scale(x: skc.Ptr[skc.f32]):
    x[skc.thread_id(0)] = {value}
'''


@pytest.fixture
def modules(tmp_path, monkeypatch):
    """A package `reach` with kernels in reach/kernels.py, and helpers in reach/helpers.py that reach them."""
    package = tmp_path / "reach"
    package.mkdir()
    (package / "__init__.py").write_text("from . import kernels\n")
    (package / "kernels.py").write_text(textwrap.dedent(KERNEL.format(value="1.0")))
    (package / "other.py").write_text(textwrap.dedent(KERNEL.format(value="2.0")))
    (package / "keys.py").write_text("def bucket(n, tile):\n    return n // 128\n")
    (package / "helpers.py").write_text(textwrap.dedent('''
        import reach
        from reach import kernels


        def via_helper(n):
            kernels.scale[1, 32]
        
        
        class Ops:
            scale = kernels.scale
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m == "reach" or m.startswith("reach.")]:
        monkeypatch.delitem(sys.modules, name)
    importlib.invalidate_caches()
    import reach.helpers
    import reach.keys
    import reach.other
    return package, reach


def test_the_files_a_winner_is_timed_with_follow_what_the_launch_function_reaches(modules):
    package, reach = modules
    kernels, helpers = str(package / "kernels.py"), str(package / "helpers.py")

    def two_levels(n, tile):
        reach.kernels.scale[1, 32]

    def through_helper(n, tile):
        reach.helpers.via_helper(n)

    def through_class(n, tile):
        reach.helpers.Ops.scale[1, 32]

    def plain(n, tile):
        pass

    assert kernels in _source_files(two_levels) and kernels in _source_files(through_helper)
    assert kernels in _source_files(through_class) and helpers in _source_files(through_class)
    assert kernels in _source_files(functools.partial(two_levels, 1))
    assert helpers in _source_files(Launch(reach.helpers.via_helper))   # (a callable object's fields)
    assert str(package / "keys.py") in _source_files((plain, reach.keys.bucket))   # (the key, as made_by passes it)
    assert str(package / "other.py") in _source_files((plain, None, [[reach.other.scale]]))   # (a config's kernel)
    assert not any("reach" in path for path in _source_files(plain))


def test_kernels_of_one_name_in_two_modules_are_told_apart(modules):
    """Configs holding kernels were matched by repr ('<skc.kernel scale>' for both): a second process ran the loser.
    Launch functions closing over the kernels' device views shared one winners file."""
    from skc.autotune import describe

    package, reach = modules
    assert describe({"kernel": reach.kernels.scale}) == {"kernel": "reach.kernels.scale"}
    assert describe({"kernel": reach.other.scale}) == {"kernel": "reach.other.scale"}
    views = [_default_name(factory(kernel.interpret)) for kernel in (reach.kernels.scale, reach.other.scale)]
    assert views[0] != views[1] and "0x" not in views[0]


def test_a_launch_functions_file_saved_while_the_process_runs_keeps_the_digest_it_was_imported_with(tmp_path,
                                                                                                     monkeypatch):
    source = tmp_path / "tuned_here.py"
    old = "import skc\n\n\n@skc.autotune(configs=[{'tile': 1}, {'tile': 2}])\ndef go(n, tile):\n    pass\n"
    source.write_text(old)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tuned_here", raising=False)
    import tuned_here

    source.write_text(old.replace("pass", "return 1"))
    assert tuned_here.go._early[str(source.resolve())] == hashlib.sha256(old.encode()).hexdigest()
    fresh = Autotuner(tuned_here.go.fn, [{"tile": 1}, {"tile": 2}])   # (made after the save: the file's new text)
    assert fresh.made_by() != tuned_here.go.made_by()


@pytest.mark.parametrize("value", ["", "relative/cache"])
def test_an_empty_or_relative_xdg_cache_home_is_unset(monkeypatch, value):
    """The XDG spec's rule: the cache (compiled kernels and winners alike) went to a folder `skc` wherever the process
    ran."""
    from skc.runtime import cache

    monkeypatch.delenv("SKC_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", value)
    monkeypatch.setattr(cache, "_override", [None])
    assert cache.cache_dir().is_absolute() and str(cache.cache_dir()).endswith("skc")
