"""Kernel.compile takes its arguments as a launch does (a helper's search of the tooling, sixty-seventh session):
more positional arguments than parameters were dropped, and a parameter given by position and by name took the
name's; and a kernel asking for clusters on sm_80 compiled to PTX without them (LLVM dropped the attribute), where
gfx942 refused by name."""
import pytest

import skc


@skc.kernel(block=32)
def store(x: skc.Ptr[skc.f32], N: skc.constexpr = 4):
    x[0] = N


@skc.kernel(block=32, cluster=2)
def clustered(x: skc.Ptr[skc.f32]):
    x[skc.block_id(0)] = 1.0


def test_extra_positional_arguments_are_refused():
    with pytest.raises(skc.LaunchError, match=r"store takes 2 arguments \(x, N\), 5 given"):
        store.compile(skc.Ptr[skc.f32], 3, 4, 5, 6, target="sm_90a")
    assert "4.0" in store.compile(skc.Ptr[skc.f32], target="sm_90a").ir("tile")   # (the default N)


def test_an_argument_given_by_position_and_by_name_is_refused():
    with pytest.raises(skc.LaunchError, match="store: argument 'x' is given twice, by position and by name"):
        store.compile(skc.Ptr[skc.f32], x=skc.Ptr[skc.f16], target="sm_90a")


@pytest.mark.parametrize("target", ["sm_80", "gfx942"])
def test_clusters_on_a_target_without_them_are_a_compile_error_at_the_kernel(target):
    with pytest.raises(skc.CompileError, match=rf"kernel 'clustered' asks for clusters of \(2, 1, 1\) blocks; "
                                               rf"clusters need sm_90a, {target} has none") as error:
        clustered.compile(target=target)
    assert "test_compile_arguments_checked.py:16" in str(error.value)   # (the def line)
    assert ".explicitcluster" in clustered.compile(target="sm_90a").asm("ptx")
