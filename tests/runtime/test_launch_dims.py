"""kernel[grid, block] takes integers (Python's or numpy's) and refuses anything else by name (was: floats inside a
tuple truncated, (2.7, 1) launching 2 blocks; the string "12" launching the grid (1, 2); numpy's integers refused
alone but taken in a tuple; a dict, a set or a generator taken as a sequence: {1: 2} launched the grid (1,))."""
import numpy as np
import pytest

import skc


@skc.kernel
def mark(out):
    out[skc.block_id(0) + 4 * skc.block_id(1)] = 1.0


@pytest.mark.parametrize("grid", [(2.7, 1), (1.5,), "12", "3", ("a",), 2.5, None, {1: 2}, {4}, frozenset({4}),
                                  (size for size in (2, 1)), iter([2])])
def test_a_grid_that_is_not_integers_is_refused(grid):
    out = np.zeros(16, np.float32)
    with pytest.raises(skc.LaunchError, match="grid must be an int or a tuple of up to 3 ints"):
        mark[grid, 1](out)
    assert not out.any()


@pytest.mark.parametrize("block", [(64.0,), "64", 63.5])
def test_a_block_that_is_not_integers_is_refused(block):
    with pytest.raises(skc.LaunchError, match="block must be an int or a tuple of up to 3 ints"):
        mark[1, block](np.zeros(16, np.float32))


@pytest.mark.parametrize("grid", [np.int64(3), (np.int32(3),), (3, np.int64(1))])
def test_numpy_integers_are_grids(grid):
    out = np.zeros(16, np.float32)
    mark[grid, 1](out)
    assert np.nonzero(out)[0].tolist() == [0, 1, 2]


def test_one_dimensional_arrays_and_tensors_are_grids():
    """A 1-D numpy array or torch tensor of integers is a grid, as a tuple is (refused for a while: both have
    __index__, which raises for more than one element)."""
    grids = [np.array([3, 1]), np.array(3)]
    torch = pytest.importorskip("torch")
    grids += [torch.tensor([3, 1]), torch.tensor(3)]
    for grid in grids:
        out = np.zeros(16, np.float32)
        mark[grid, 1](out)
        assert np.nonzero(out)[0].tolist() == [0, 1, 2], grid
    with pytest.raises(skc.LaunchError, match="grid must be an int"):
        mark[np.array([2.5, 1.0]), 1](np.zeros(16, np.float32))


@pytest.mark.parametrize("taken, refused", [
    ((4,), (4.0,)), (4, 4.0), (1, True), ((1, 1), (True, 1)), ((4, 1), (4, np.float64(1.0))), (1, np.True_)])
def test_a_grid_equal_to_one_launched_before_is_refused_as_at_first(taken, refused):
    """The bound launches are kept by the brackets' contents, and 4.0 == 4, True == 1: a float or bool grid found the
    launch of the equal int grid once that had run (was: mark[(4.0,), 1] refused, then taken after mark[(4,), 1])."""
    out = np.zeros(16, np.float32)
    for _ in range(2):
        mark[taken, 1](out)
        with pytest.raises(skc.LaunchError, match="grid must be an int or a tuple of up to 3 ints"):
            mark[refused, 1](out)


@pytest.mark.parametrize("taken, refused", [(1, 1.0), (1, True), ((1, 1), (1, True)), ((1,), (np.float32(1),))])
def test_a_block_equal_to_one_launched_before_is_refused_as_at_first(taken, refused):
    out = np.zeros(16, np.float32)
    for _ in range(2):
        mark[2, taken](out)
        with pytest.raises(skc.LaunchError, match="block must be an int or a tuple of up to 3 ints"):
            mark[2, refused](out)


def test_numpy_integers_equal_to_a_grid_launched_before_launch_it():
    out = np.zeros(16, np.float32)
    mark[(3, 1), 1](out)
    out[:] = 0
    mark[(np.int64(3), 1), np.int32(1)](out)
    assert np.nonzero(out)[0].tolist() == [0, 1, 2]


@pytest.mark.parametrize("config, ints", [((np.int64(3), 1), (3, 1)), (((np.int64(3), 1), np.int32(1)), ((3, 1), 1)),
                                          (np.int64(3), 3)])
def test_numpy_integers_take_the_bound_launch_each_time(config, ints):
    """(the cache of bound launches took a hit for Python ints alone: a grid of np.int64 made a new launch, which
    selected its launcher again, at every call: 9 us a warm launch on the fake driver, 3 for an int grid)"""
    kernel = skc.kernel(mark.fn, block=1)
    assert kernel[config] is kernel[config] is kernel[ints]


@pytest.mark.parametrize("grid", [(2.7,), "12", (True,), (0, 1), (1, 1, 1, 1)])
def test_the_interpreter_run_takes_shapes_by_the_launch_rule(grid):
    """skc.runtime.interpreter.run checks a grid as a launch does: (2.7,) was the grid (2,) and "12" the grid (1, 2)."""
    from skc.frontend import POINTER, ParamSpec, PtrType, Specialization, compile_to_ir
    from skc.runtime.interpreter import Memory, run
    from skc import ir
    from skc.target import get_target

    def one(out):
        out[0] = 1.0

    spec = Specialization((ParamSpec("out", POINTER, PtrType(ir.f32)),), (1, 1, 1))
    function = compile_to_ir(one, spec, get_target("sm_90a"))[0].function()
    memory = Memory()
    out = np.zeros(4, np.float32)
    with pytest.raises(skc.LaunchError, match="grid (must|has)"):
        run(function, grid=grid, block=(1,), args=[memory.map_array(out)], memory=memory)


def test_bool_tensors_and_tensors_of_more_dimensions_are_no_grids():
    """(torch reads a bool tensor as an integer and a one-element tensor of any dimensions as an index:
    torch.tensor(True) launched one block, torch.tensor([True, True]) the grid (1, 1) and torch.tensor([[2]]) the grid
    (2,), where numpy's bools and 2-D arrays were refused)"""
    torch = pytest.importorskip("torch")
    for grid in (torch.tensor(True), torch.tensor([True, True]), (torch.tensor(True),), torch.tensor([[2]]),
                 np.array([[2]]), np.array(True)):
        out = np.zeros(16, np.float32)
        with pytest.raises(skc.LaunchError, match="grid must be an int or a tuple of up to 3 ints"):
            mark[grid, 1](out)
        assert not out.any()
    out = np.zeros(16, np.float32)
    mark[torch.tensor([3, 1]), torch.tensor(1)](out)
    assert np.nonzero(out)[0].tolist() == [0, 1, 2]
