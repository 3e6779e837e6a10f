"""A pointer argument given a non-contiguous array or tensor addresses its memory from its first element onward, in
memory order, in the interpreter as on a GPU (where a launch passes the tensor's data_ptr()): a kernel that indexes
it with the strides it is given (ints, as in Triton) reads and writes the right elements, its writes land in the
caller's array, and it may reach every element from the lowest address its strides reach to the highest, no
further (was: the interpreter refused a non-contiguous argument, "pass x.contiguous()", that the GPU read)."""
import numpy as np
import pytest

import skc
from skc.diagnostics import InterpreterError


@skc.kernel(block=32)
def gather(x, out, rows: skc.i32, cols: skc.i32, row_stride: skc.i32, col_stride: skc.i32):
    """out[r, c] = x[r, c] for x of any strides (in elements), out contiguous."""
    i = skc.block_id(0) * 32 + skc.thread_id(0)
    if i < rows * cols:
        r = i // cols
        c = i % cols
        out[i] = x[r * row_stride + c * col_stride]


@skc.kernel(block=32)
def scatter(x, out, rows: skc.i32, cols: skc.i32, row_stride: skc.i32, col_stride: skc.i32):
    """out[r, c] = x[r, c] + 1 for out of any strides (in elements), x contiguous."""
    i = skc.block_id(0) * 32 + skc.thread_id(0)
    if i < rows * cols:
        r = i // cols
        c = i % cols
        out[r * row_stride + c * col_stride] = x[i] + 1.0


@skc.kernel(block=32)
def memory_order(x, out, n: skc.i32):
    """out[i] = x's i-th element in memory from its first."""
    i = skc.thread_id(0)
    if i < n:
        out[i] = x[i]


def run_gather(x, strides, item):
    rows, cols = x.shape
    out = np.zeros(rows * cols, np.float32)
    gather.interpret[skc.cdiv(rows * cols, 32), 32](x, out, rows, cols, strides[0] // item, strides[1] // item)
    return out.reshape(rows, cols)


NUMPY_VIEWS = {
    "transposed": lambda a: a.T,
    "every other column": lambda a: a[:, ::2],
    "a block inside": lambda a: a[1:4, 2:7],
    "rows reversed": lambda a: a[::-1],
    "both reversed and strided": lambda a: a[::-2, ::-3],
    "transposed and reversed": lambda a: a.T[::-1],
    "broadcast rows (stride 0)": lambda a: np.broadcast_to(a[2], (5, a.shape[1])),
}


@pytest.mark.parametrize("view", NUMPY_VIEWS.values(), ids=NUMPY_VIEWS.keys())
def test_a_kernel_reads_a_strided_numpy_view_through_its_strides(view):
    x = view(np.arange(6 * 10, dtype=np.float32).reshape(6, 10))
    assert not x.flags.c_contiguous
    np.testing.assert_array_equal(run_gather(x, x.strides, x.itemsize), x)


@pytest.mark.parametrize("view", [v for k, v in NUMPY_VIEWS.items() if "stride 0" not in k],
                         ids=[k for k in NUMPY_VIEWS if "stride 0" not in k])
def test_a_kernels_writes_through_a_strided_numpy_view_land_in_its_array(view):
    base = np.zeros((6, 10), np.float32)
    out = view(base)
    rows, cols = out.shape
    x = np.arange(rows * cols, dtype=np.float32)
    scatter.interpret[skc.cdiv(rows * cols, 32), 32](x, out, rows, cols, out.strides[0] // 4, out.strides[1] // 4)
    expected = np.zeros((6, 10), np.float32)
    view(expected)[...] = x.reshape(rows, cols) + 1
    np.testing.assert_array_equal(base, expected)


def test_a_pointer_to_a_strided_view_reads_memory_order_from_its_first_element():
    """(what a kernel that ignores the strides reads on a GPU: the memory after the first element, gaps included)"""
    a = np.arange(24, dtype=np.float32).reshape(4, 6)
    out = np.zeros(9, np.float32)
    memory_order.interpret[1, 32](a[1:, ::2], out, 9)   # (first element a[1, 0]; last a[3, 4], 15 elements on)
    np.testing.assert_array_equal(out, np.arange(6, 15, dtype=np.float32))
    memory_order.interpret[1, 32](a.T, out, 9)
    np.testing.assert_array_equal(out, np.arange(9, dtype=np.float32))


@pytest.mark.parametrize("view, reach", [(lambda a: a[:, ::2], 23), (lambda a: a[1:3, 1:3], 8),
                                         (lambda a: a.T[:2], 20)])
def test_a_read_past_the_last_element_the_strides_reach_is_out_of_bounds(view, reach):
    """The memory a strided view may reach ends at its last element, as an array's ends at its own; a read past it
    faults as one past an array's end does."""
    x = view(np.arange(24, dtype=np.float32).reshape(4, 6))
    out = np.zeros(32, np.float32)
    memory_order.interpret[1, 32](x, out, reach)
    with pytest.raises(InterpreterError, match="out-of-bounds load of 4 bytes .*'x'.* 4 bytes past its end"):
        memory_order.interpret[1, 32](x, out, reach + 1)


def test_a_read_before_the_lowest_element_of_a_reversed_view_is_out_of_bounds():
    x = np.arange(10, dtype=np.float32)[::-1]   # (its first element is its last in memory: x[-9] is the lowest)
    out = np.zeros(1, np.float32)

    @skc.kernel(block=1)
    def read_at(x, out, at: skc.i32):
        out[0] = x[at]

    read_at.interpret[1, 1](x, out, -9)
    assert out[0] == 0.0
    with pytest.raises(InterpreterError, match="out-of-bounds load of 4 bytes .* before the start of 'x'"):
        read_at.interpret[1, 1](x, out, -10)
    with pytest.raises(InterpreterError, match="out-of-bounds load .*'x'.* past its end"):
        read_at.interpret[1, 1](x, out, 1)


def test_a_read_only_strided_view_refuses_writes_as_a_read_only_array_does():
    base = np.zeros((4, 6), np.float32)
    out = base[:, ::2]
    out.flags.writeable = False
    with pytest.raises(InterpreterError, match="read-only"):
        scatter.interpret[1, 32](np.zeros(12, np.float32), out, 4, 3, 6, 2)
    assert not base.any()


def test_strides_that_are_not_whole_elements_are_refused_by_name():
    raw = np.zeros(64, np.uint8)
    x = np.lib.stride_tricks.as_strided(raw[:40].view(np.float32), shape=(3, 2), strides=(6, 4))
    with pytest.raises(skc.LaunchError, match=r"argument 'x' has strides \(6, 4\) .*not whole steps of its 4-byte"):
        run_gather(x, (8, 4), 4)


torch_views = {
    "transposed": lambda t: t.t(),
    "every other column": lambda t: t[:, ::2],
    "a block inside": lambda t: t[1:4, 2:7],
    "expanded row (stride 0)": lambda t: t[2].expand(5, t.shape[1]),
    "permuted then sliced": lambda t: t.t()[1::3],
}


@pytest.mark.parametrize("name", torch_views)
def test_a_kernel_reads_and_writes_strided_torch_views_through_their_strides(name):
    torch = pytest.importorskip("torch")
    view = torch_views[name]
    x = view(torch.arange(60, dtype=torch.float32).reshape(6, 10))
    assert not x.is_contiguous()
    np.testing.assert_array_equal(run_gather(x, x.stride(), 1), x.numpy())
    if "stride 0" in name:   # (threads writing one address: a race on a GPU)
        return
    base = torch.zeros(6, 10)
    out = view(base)
    rows, cols = out.shape
    source = torch.arange(rows * cols, dtype=torch.float32)
    scatter.interpret[skc.cdiv(rows * cols, 32), 32](source, out, rows, cols, *out.stride())
    expected = torch.zeros(6, 10)
    view(expected).copy_(source.reshape(rows, cols) + 1)
    assert torch.equal(base, expected)


def test_a_bfloat16_strided_view_is_read_in_place():
    torch = pytest.importorskip("torch")
    x = torch.arange(24, dtype=torch.bfloat16).reshape(4, 6).t()
    out = torch.zeros(24, dtype=torch.bfloat16)
    memory_order.interpret[1, 32](x, out, 24)
    assert torch.equal(out, torch.arange(24, dtype=torch.bfloat16))
