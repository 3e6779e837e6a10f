"""A kernel's clusters said twice, by its launch (@skc.kernel(cluster=...) or compile(cluster=...)) and by
skc.hopper.kernel_attributes(cluster=...) in its body: two shapes are a compile error at the kernel_attributes line
that names both (was: the launch's shape launched the kernel while the blocks after the call counted on the body's,
silently); one shape said twice compiles, and runs."""
import numpy as np
import pytest

import skc
from helpers import line_of, tile_ir
from skc.runtime import devices

I32P = skc.Ptr[skc.i32]


def ranks(out: I32P, said: skc.constexpr):
    skc.hopper.kernel_attributes(cluster=said)   # HERE
    out[skc.block_id(0)] = skc.hopper.cluster_rank()


in_pairs = skc.kernel(cluster=(2, 1, 1), block=32)(ranks)
unlaunched = skc.kernel(block=32)(ranks)


def test_two_cluster_shapes_are_a_compile_error_at_the_kernel_attributes_line():
    with pytest.raises(skc.CompileError) as info:
        tile_ir(in_pairs, I32P, skc.constexpr((4, 1, 1)), block=32)
    text = str(info.value)
    assert text.startswith(f"{__file__}:{line_of(ranks, '# HERE')}:"), text
    assert "the kernel is launched in clusters of 2x1x1 (@skc.kernel(cluster=(2, 1, 1))" in text
    assert "says clusters of 4x1x1 here" in text
    assert "keep one of cluster=(2, 1, 1) and cluster=(4, 1, 1)" in text


def test_a_cluster_given_to_compile_is_the_launch_s_too():
    with pytest.raises(skc.CompileError, match="launched in clusters of 4x1x1 .* says clusters of 2x1x1 here"):
        unlaunched.compile(I32P, said=(2, 1, 1), target="sm_90a", cluster=(4, 1, 1))
    # (a kernel of clusters of one, said nowhere else: the body's shape, as before)
    assert "cluster = [4, 1, 1]" in unlaunched.compile(I32P, said=(4,), target="sm_90a").ir("tile")


@pytest.mark.parametrize("said", [(2, 1, 1), (2,), (np.int64(2), 1, 1)])
def test_one_cluster_shape_said_twice_compiles(said):
    assert "cluster = [2, 1, 1]" in tile_ir(in_pairs, I32P, skc.constexpr(said), block=32)


def test_one_cluster_shape_said_twice_runs_in_the_interpreter(monkeypatch):
    monkeypatch.setenv("SKC_INTERPRETER_TARGET", "sm_90a")
    monkeypatch.setattr(devices, "_selected", [devices.Device("interpreter")])
    devices._target_of.cache_clear()
    try:
        out = np.full(4, -1, np.int32)
        in_pairs[4](out, (2, 1, 1))
        assert out.tolist() == [0, 1, 0, 1]
    finally:
        devices._target_of.cache_clear()


@pytest.mark.parametrize("said", [2, np.int64(2), [2, 1]])
def test_a_cluster_of_one_int_or_a_list_is_the_decorator_s_shape(said):
    """kernel_attributes' cluster as @skc.kernel takes it (an int was a TypeError inside the compiler)."""
    assert "cluster = [2, 1, 1]" in tile_ir(unlaunched, I32P, skc.constexpr(said), block=32)


@pytest.mark.parametrize("said", [(2.5,), "2", (True, 1, 1), (0, 1, 1), (2, 1, 1, 1), ()])
def test_a_cluster_that_is_no_shape_is_a_compile_error_at_the_line(said):
    """(2.5,), a string and (True, 1, 1) compiled as clusters of 2, 2 and 1 before; the others were LaunchErrors."""
    with pytest.raises(skc.CompileError, match="kernel_attributes' cluster must be an int or 1 to 3 positive ints"
                       ) as info:
        tile_ir(unlaunched, I32P, skc.constexpr(said), block=32)
    assert str(info.value).startswith(f"{__file__}:{line_of(ranks, '# HERE')}:")
