"""What the docs say holds: a check, in the interpreter, of each claim the pages make that no other test states as
the page does (the numbers, the refusals, what the operators take). Each test names its page; a claim that only a GPU
can check (ptxas computing a constant's transcendental exactly, host times) is not here."""
import numpy as np
import pytest

import skc


@skc.kernel(block=256)
def _power(x: skc.Ptr[skc.f32], out: skc.Ptr[skc.f32], n: skc.i32):
    t = skc.block_id(0) * 256 + skc.thread_id(0)
    out[t] = x[t] ** n


@pytest.mark.parametrize("n", [100, -100])
def test_tutorial_a_float_to_the_100th_is_some_60_ulps_off_where_pow_is_within_one(n):
    """docs/tutorial.md: square and multiply rounds at each product, "up to some 60 f32 ulps at n = ±100 (about 12
    typically), where C's `pow` is within one"."""
    x = np.random.default_rng(0).uniform(0.5, 2.0, 1024).astype(np.float32)
    out = np.zeros_like(x)
    _power.interpret[4, 256](x, out, n)
    with np.errstate(all="ignore"):
        exact = np.power(x.astype(np.float64), n)
        normal = (np.abs(exact) < 3e38) & (np.abs(exact) > 1e-37)
        ulp = np.spacing(exact.astype(np.float32)).astype(np.float64)
        ulps = (np.abs(out - exact) / ulp)[normal]
        numpy_ulps = (np.abs(np.power(x, np.float32(n)) - exact) / ulp)[normal]
    assert normal.sum() > 500 and numpy_ulps.max() <= 1
    assert 30 < ulps.max() <= 70 and 8 < np.median(ulps) < 16, (ulps.max(), np.median(ulps))


def test_tutorial_an_f64_to_an_integer_power_compiles_and_to_a_float_power_is_an_error():
    """docs/tutorial.md: a float to an integer power ("a Python int, a float constant that is a whole number such as
    `2.0`, or a run-time integer, on f64 too") is products; `x ** y` of any other float y is f32's approximation,
    "on f64 ... a compile error, in the interpreter too"."""
    @skc.kernel(block=1)
    def products(out: skc.Ptr[skc.f64], x: skc.f64, n: skc.i32):
        out[0] = x ** 2.0
        out[1] = x ** n
        out[2] = x ** -3

    out = np.zeros(3)
    products.interpret[1, 1](out, 1.5, 7)
    assert out.tolist() == [1.5 ** 2, 1.5 ** 7, 1 / 1.5 ** 3]

    @skc.kernel(block=1)
    def approximate(out: skc.Ptr[skc.f64], x: skc.f64):
        out[0] = x ** 2.5

    with pytest.raises(skc.CompileError, match=r"x \*\* y is not available on f64"):
        approximate.interpret[1, 1](np.zeros(1), 1.5)


def test_errors_a_collective_in_a_loop_whose_bounds_differ_by_thread_is_an_error():
    """docs/errors.md: the interpreter stops "a shuffle or vote that part of a warp reaches ... in a loop whose
    bounds differ by thread, where no member mask names the lanes that get there together"."""
    @skc.kernel(block=32)
    def bounds_by_thread(x: skc.Ptr[skc.i32], out: skc.Ptr[skc.i32]):
        t = skc.thread_id(0)
        s = 0
        for i in range(x[t]):
            s = s + skc.i32(skc.vote_any(i > 0))
        out[t] = s

    with pytest.raises(skc.InterpreterError, match=r"vote_any runs with threads .* of warp 0 while threads"):
        bounds_by_thread.interpret[1, 32](np.arange(32, dtype=np.int32) % 3, np.zeros(32, np.int32))


def test_torch_a_batch_of_one_stays_in_the_graph():
    """docs/torch.md: what torch.compile's graph holds; a batch of one broadcast against a batch of B (1 x M x K with
    B x K x N) is torch.ops.skc.matmul's since it takes torch.matmul's shapes (the page listed it among what runs
    outside the graph, an error under fullgraph=True)."""
    torch = pytest.importorskip("torch")
    import torch._dynamo

    import skc.torch  # noqa: F401  (registers torch.ops.skc)
    from skc.blocks import matmul

    torch._dynamo.reset()
    generator = torch.Generator().manual_seed(0)
    a = torch.randint(-2, 3, (1, 16, 32), generator=generator).to(torch.bfloat16)
    b = torch.randint(-2, 3, (3, 32, 8), generator=generator).to(torch.bfloat16)
    compiled = torch.compile(lambda a, b: matmul(a, b), backend="aot_eager", fullgraph=True)
    assert torch.equal(compiled(a, b).float(), torch.matmul(a.float(), b.float()))


@skc.kernel(block=32)
def _doubled(x: skc.Ptr[skc.f32], out: skc.Ptr[skc.f32]):
    out[skc.thread_id(0)] = 2.0 * x[skc.thread_id(0)]


@skc.kernel(block=32)
def _tripled(x: skc.Ptr[skc.f32], out: skc.Ptr[skc.f32]):
    out[skc.thread_id(0)] = 3.0 * x[skc.thread_id(0)]


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork on this host")
def test_errors_a_child_forked_after_cuda_started_is_refused_in_the_words_the_page_quotes():
    """docs/errors.md ("Threads and processes") quotes the DeviceError of a process forked after CUDA started in its
    parent; the quote is the error's text (on the fake driver: the parent launches one kernel, the child loads another;
    a launch the parent had loaded reaches the driver, which on a GPU fails there, and its error text is the same)."""
    import os
    import re

    from skc.runtime import fake_cuda

    with open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "errors.md")) as f:
        section = " ".join(f.read().split("## Threads and processes")[1].split())
    quoted = re.search(r'DeviceError` that says "([^"]+)"', section).group(1)
    with fake_cuda.installed():
        _doubled[1, 32](fake_cuda.FakeTensor((32,), "float32"), fake_cuda.FakeTensor((32,), "float32"))
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:   # (the child reports through the pipe and exits here, never back into pytest)
            try:
                try:
                    _tripled[1, 32](fake_cuda.FakeTensor((32,), "float32"), fake_cuda.FakeTensor((32,), "float32"))
                    text = "launched"
                except BaseException as error:
                    text = f"{type(error).__name__}: {error}"
                os.write(write, text.encode())
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            text = pipe.read().decode()
        os.waitpid(pid, 0)
    assert text.startswith("DeviceError: ") and quoted in " ".join(text.split()), text


def test_readme_groups_of_channels_no_multiple_of_8_run_as_the_dense_convolution(monkeypatch):
    """README.md's grouped convolutions: groups "whose channels or filters are no multiple of 8" run as the dense
    convolution over block-diagonal filters (it said groups "of fewer than 8", but 12 channels a group take that path
    too: conv.py's rule is `C // groups % 8 or K // groups % 8`); here two groups of 12 channels and 12 filters."""
    from skc.runtime import devices

    monkeypatch.setattr(devices, "_selected", [devices.Device("interpreter")])   # (numpy arrays: the interpreter's)
    rng = np.random.default_rng(0)
    x = rng.integers(-2, 3, (1, 3, 3, 24)).astype(np.float16)          # N, H, W, C
    w = rng.integers(-2, 3, (24, 1, 1, 12)).astype(np.float16)         # K, R, S, C / groups
    y = skc.blocks.conv2d(x, w, groups=2)
    expected = np.concatenate([x[..., 12 * g:12 * (g + 1)].astype(np.float64) @ w[12 * g:12 * (g + 1), 0, 0].T
                               for g in range(2)], axis=-1)
    assert np.array_equal(np.asarray(y, np.float64), expected)
