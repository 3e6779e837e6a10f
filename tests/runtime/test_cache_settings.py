"""Settings outside the kernel's source that decide what a compile makes, or whether it succeeds, are part of the
compile cache's key: an entry written under one setting is never served under another."""
import pytest

import skc
from skc import compiler
from skc.diagnostics import CompileError
from skc.runtime import cache


def unrolled(x: skc.Ptr[skc.f32]):
    i = skc.thread_id(0)
    total = x[i]
    for _ in skc.static_range(10):
        total = total + 1.0
    x[i] = total


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SKC_CACHE", "1")
    cache.set_cache_dir(tmp_path)
    yield tmp_path
    cache.set_cache_dir(None)


def compile_afresh():
    """A compile that meets only the disk cache (a new Kernel has nothing in memory), as a new process's does."""
    return skc.kernel(block=32)(unrolled).compile(target="sm_90a")


def test_a_kernel_over_a_smaller_unroll_limit_is_refused_after_one_compiled_under_a_larger(fresh_cache, monkeypatch):
    """SKC_MAX_UNROLL was no part of the key: a kernel that a process with SKC_MAX_UNROLL=100 compiled was served from
    disk to one with SKC_MAX_UNROLL=4, which refuses to unroll its 10 iterations when it compiles."""
    monkeypatch.setenv("SKC_MAX_UNROLL", "4")
    with pytest.raises(CompileError, match="the limit is 4"):
        compile_afresh()
    monkeypatch.setenv("SKC_MAX_UNROLL", "100")
    assert compile_afresh().from_cache is False
    assert compile_afresh().from_cache is True
    monkeypatch.setenv("SKC_MAX_UNROLL", "4")
    with pytest.raises(CompileError, match="the limit is 4"):
        compile_afresh()
    monkeypatch.setenv("SKC_MAX_UNROLL", "100")
    assert compile_afresh().from_cache is True   # (the entry of the larger limit is still there)


def test_the_key_names_the_environment_a_compile_reads(monkeypatch):
    from skc.frontend import Specialization

    monkeypatch.setenv("SKC_MAX_UNROLL", " 64 ")
    parts = compiler.cache_key_parts(unrolled, Specialization((), (32, 1, 1)), skc.get_target("sm_90a"), {})
    assert parts["environment"] == {"SKC_MAX_UNROLL": "64"}
