"""Launch limits are target data: the grid check and the ranges the backends give LLVM read them."""
import dataclasses
import re

import pytest

import skc
from skc import backends, frontend, jit
from skc.diagnostics import LaunchError
from skc.target import TARGETS, get_target


@skc.kernel(block=64)
def grid_reader(x: skc.Ptr[skc.f32]):
    x[skc.block_id(1)] = skc.grid_dim(2) * 1.0


def _llvm(target):
    spec = grid_reader.specialize(grid_reader._abstract_arguments((), {}), (64, 1, 1))
    module, _ = frontend.compile_to_ir(grid_reader.fn, spec, target)
    return backends.to_llvm(module, target)


@pytest.mark.parametrize("name", ["sm_90a", "gfx942"])
def test_backends_take_grid_ranges_from_the_target(name):
    target = dataclasses.replace(get_target(name), max_grid=(1000, 77, 5))
    text = _llvm(target)
    assert "i32 0, i32 77" in text or "i32 0, 77" in text, text
    assert re.search(r"i32 1, (i32 )?6\b", text), text
    assert "65535" not in text and "65536" not in text


def test_launch_checks_the_smallest_grid_limit_of_the_targets():
    assert jit._MAX_GRID == tuple(min(t.max_grid[a] for t in TARGETS.values()) for a in range(3))
    with pytest.raises(LaunchError, match="exceeds the limit of 65535 blocks along y"):
        grid_reader[(1, 65536), 64]


def test_every_target_feature_is_read_somewhere():
    """A flag nothing reads is a promise the compiler does not keep."""
    import pathlib

    root = pathlib.Path(skc.__file__).parent
    sources = "".join(p.read_text() for p in root.rglob("*.py") if p.name != "target.py")
    for feature in set().union(*(t.features for t in TARGETS.values())):
        assert f'"{feature}"' in sources, feature


def test_a_target_of_the_same_name_with_other_limits_gets_a_kernel_of_its_own(tmp_path):
    """The compile cache (in memory and on disk) keyed a target by its name: a target made with dataclasses.replace
    (other grid limits, which the backends read) got the kernel compiled for sm_90a."""
    from skc.runtime import cache

    cache.set_cache_dir(tmp_path)
    try:
        standard = grid_reader.compile(target="sm_90a")
        custom = dataclasses.replace(get_target("sm_90a"), max_grid=(1000, 77, 5))
        limited = grid_reader.compile(target=custom)
        assert re.search(r"i32 0, (i32 )?77\b", limited.ir("llvm")), limited.ir("llvm")
        grid_reader._compiled.clear()
        assert grid_reader.compile(target=custom).from_cache    # (the same target hits)
        assert grid_reader.compile(target="sm_90a").ir("llvm") == standard.ir("llvm")
    finally:
        cache.set_cache_dir(None)
