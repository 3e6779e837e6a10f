"""skc from several threads at once: kernels compiled on two threads together each get their own code, a kernel
that several threads launch first at once compiles once, and a launch object shared by threads (`k[grid, block]`,
kept by its brackets) launches each thread's own specialization."""
import threading

import numpy as np
import pytest

import skc
from skc import jit


def _run_together(*functions, timeout: float = 120.0) -> list:
    """Run each function on a thread of its own, all at once; give what each raised (None where it returned)."""
    errors = [None] * len(functions)

    def run(i):
        try:
            functions[i]()
        except Exception as error:   # (handed back to the test, which names it)
            errors[i] = error
    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(functions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish"
    return errors


# -- compiling on two threads at once ----------------------------------------------------------------------------
_both_compiling = threading.Barrier(2, timeout=30)


def _meet():
    """Run at compile time (a plain Python helper the kernel calls): each compile waits here for the other, so both
    are inside the frontend when they emit what follows."""
    _both_compiling.wait()
    return 0


@skc.kernel(block=32)
def _writes_one(out: skc.Ptr[skc.f32]):
    start = _meet()
    out[skc.thread_id(0) + start] = 1.0


@skc.kernel(block=32)
def _writes_two(out: skc.Ptr[skc.f32]):
    start = _meet()
    out[skc.thread_id(0) + start] = 2.0


def test_two_threads_compiling_at_once_each_emit_into_their_own_kernel():
    _both_compiling.reset()
    outs = [np.zeros(32, np.float32), np.zeros(32, np.float32)]
    errors = _run_together(lambda: _writes_one.interpret[1, 32](outs[0]),
                           lambda: _writes_two.interpret[1, 32](outs[1]))
    assert errors == [None, None]
    assert (outs[0] == 1.0).all() and (outs[1] == 2.0).all()


# -- one launch object, two threads, two specializations --------------------------------------------------------
@skc.kernel(block=32)
def _put(out: skc.Ptr[skc.i32], value: skc.constexpr):
    out[skc.thread_id(0)] = value


class _PausingStream:
    """A stream whose handle, read on the launch's way to its launcher, lets another thread launch first."""

    def __init__(self, reading: threading.Event, go_on: threading.Event):
        self.reading, self.go_on = reading, go_on

    @property
    def cuda_stream(self):
        self.reading.set()
        self.go_on.wait(30)
        return 0


def test_a_launch_shared_by_threads_runs_each_threads_own_specialization():
    """`_put[1, 32]` is one object for both threads: a launch that has checked its arguments select the
    specialization chosen last must launch that one, not the one another thread chose meanwhile."""
    launch = _put[1, 32]
    assert _put[1, 32] is launch
    first, second = np.zeros(32, np.int32), np.zeros(32, np.int32)
    launch(first, 1)   # (compiled, and chosen: the first thread's check finds it)
    launch(np.zeros(32, np.int32), 2)   # (compiled too: the second thread only chooses it)
    launch(first, 1)
    reading, go_on = threading.Event(), threading.Event()

    def second_thread():
        reading.wait(30)
        try:
            launch(second, 2)
        finally:
            go_on.set()
    errors = _run_together(lambda: launch(first, 1, stream=_PausingStream(reading, go_on)), second_thread)
    assert errors == [None, None]
    assert (first == 1).all(), first
    assert (second == 2).all(), second


# -- one compile for threads that launch a new specialization at once -------------------------------------------
@skc.kernel(block=32)
def _doubled(x: skc.Ptr[skc.f32], out: skc.Ptr[skc.f32]):
    out[skc.thread_id(0)] = x[skc.thread_id(0)] * 2.0


def test_threads_launching_a_new_specialization_at_once_compile_it_once(monkeypatch):
    """Four threads launch a kernel none has compiled: one compiles (a GEMM's compile takes seconds; four would
    take four times the CPU and load four modules), the others wait for it and launch what it made."""
    compiles, second_arrived = [], threading.Event()
    real = jit.compile_kernel

    def counted(*args, **kwargs):
        compiles.append(threading.current_thread().name)
        if len(compiles) > 1:
            second_arrived.set()
        second_arrived.wait(0.5)   # (long enough for the others to reach their compile, were they let in)
        return real(*args, **kwargs)
    monkeypatch.setattr(jit, "compile_kernel", counted)
    x = np.arange(32, dtype=np.float32)
    outs = [np.zeros(32, np.float32) for _ in range(4)]
    errors = _run_together(*[lambda out=out: _doubled.interpret[1, 32](x, out) for out in outs])
    assert errors == [None] * 4
    assert len(compiles) == 1, compiles
    assert all((out == 2 * x).all() for out in outs)


# -- kernels handed to other processes ----------------------------------------------------------------------------
def _launched_in_worker(launch, size: int) -> list:
    """Run in a spawned worker: launch a launch object it was handed (pickled) in the interpreter."""
    out = np.zeros(size, np.int32)
    launch(out, 7)
    return out.tolist()


def test_a_kernel_and_its_launch_pickle_by_reference_and_launch_after():
    import pickle

    assert pickle.loads(pickle.dumps(_put)) is _put
    launch = pickle.loads(pickle.dumps(_put.interpret[1, 32]))
    assert (launch.grid, launch.block, launch.device) == ((1, 1, 1), (32, 1, 1), skc.Device("interpreter"))
    out = np.zeros(32, np.int32)
    launch(out, 5)
    assert (out == 5).all()


def test_a_kernel_local_to_a_function_pickles_by_its_function():
    """pickle refuses a function local to another by its own error; cloudpickle (Ray, Dask) pickles one by value,
    and the kernel with it."""
    import pickle

    def make():
        @skc.kernel(block=32)
        def local(out: skc.Ptr[skc.i32]):
            out[skc.thread_id(0)] = 3
        return local
    local = make()
    with pytest.raises((pickle.PicklingError, AttributeError), match="local object"):
        pickle.dumps(local)
    function, (fn, block, cluster, debug) = local.__reduce__()
    rebuilt = function(fn, block, cluster, debug)
    assert (rebuilt.block, rebuilt.cluster, rebuilt.debug) == (local.block, local.cluster, local.debug)
    out = np.zeros(32, np.int32)
    rebuilt.interpret[1, 32](out)
    assert (out == 3).all()


def test_a_spawned_worker_launches_a_launch_object_it_was_handed():
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(_launched_in_worker, (_put.interpret[1, 32], 32)) == [7] * 32


def _in_forked_child(function, timeout: float = 60.0) -> str:
    """What `function()` gives (a string) in a child this process forks; the child's exception as its name and
    message; "timed out" where the child said nothing for `timeout` seconds (it is killed: a wait on a lock can be
    out of a signal's reach)."""
    import os
    import select
    import signal

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:   # (the child: whatever happens, it reports and exits here, never back into pytest)
        try:
            try:
                text = function()
            except BaseException as error:
                text = f"{type(error).__name__}: {error}"
            os.write(write, text.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        if not select.select([pipe], [], [], timeout)[0]:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timed out"
        text = pipe.read().decode()
    os.waitpid(pid, 0)
    return text


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork on this host")
def test_a_child_forked_after_the_driver_started_refuses_it_by_name_and_interprets_still():
    from skc.runtime import cuda, fake_cuda

    with fake_cuda.installed():
        first = fake_cuda.FakeTensor((32,), "float32")
        _doubled[1, 32](first, fake_cuda.FakeTensor((32,), "float32"))   # (the parent's driver, context and module)

        def in_child():
            x, out = np.arange(32, dtype=np.float32), np.zeros(32, np.float32)
            _put.interpret[1, 32](out.view(np.int32), 4)   # (the interpreter needs no driver)
            for use in (cuda.driver, lambda: cuda.error_text(1), lambda: _put[1, 32](fake_cuda.FakeTensor((32,), "int32"), 9)):
                try:
                    use()
                    return "the driver was used"
                except skc.DeviceError as error:
                    assert "forked" in str(error) and "spawn" in str(error), error
            _doubled.interpret[1, 32](x, out)
            return "refused" if (out == 2 * x).all() else "the interpreter gave a wrong answer"
        assert _in_forked_child(in_child) == "refused"
        assert cuda.driver() is not None   # (the parent's is the parent's still)


_compile_entered, _compile_released = threading.Event(), threading.Event()


def _hold_compile():
    """Run at compile time: tells the test the compile started, then waits for its leave."""
    _compile_entered.set()
    _compile_released.wait(30)
    return 0


@skc.kernel(block=32)
def _slow_to_compile(out: skc.Ptr[skc.i32]):
    out[skc.thread_id(0) + _hold_compile()] = 6


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork on this host")
def test_a_child_forked_while_a_thread_compiles_a_kernel_compiles_it_itself():
    """The kernel's compile lock, held by the parent's compiling thread at the fork, is no one's in the child: the
    child's own launch must not wait for it (for ever: that thread does not exist there)."""
    _compile_entered.clear()
    _compile_released.clear()
    parent_out = np.zeros(32, np.int32)
    compiling = threading.Thread(target=lambda: _slow_to_compile.interpret[1, 32](parent_out), daemon=True)
    compiling.start()
    try:
        assert _compile_entered.wait(30)

        def in_child():
            import signal

            _compile_released.set()   # (the child's own compile passes the helper at once)
            signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("waited 20 s")))
            signal.alarm(20)   # (the child's main thread: a lock it waits for at the fork's state never frees)
            out = np.zeros(32, np.int32)
            _slow_to_compile.interpret[1, 32](out)
            signal.alarm(0)
            return "launched" if (out == 6).all() else "wrong answer"
        assert _in_forked_child(in_child) == "launched"
    finally:
        _compile_released.set()
        compiling.join(30)
    assert (parent_out == 6).all()



# -- LLVM at a fork ---------------------------------------------------------------------------------------------------
_SMALL_LLVM = "define i32 @identity(i32 %x) {\n  ret i32 %x\n}\n"


def _hold_llvm(where: str, monkeypatch):
    """A thread inside LLVM until `released` is set: in skc's code generation (its optimizer held, under skc's lock)
    or inside one of llvmlite's calls (under llvmlite's own lock, as through an optimization); gives (released,
    what ends it: joins the thread, takes the hold off)."""
    import llvmlite.binding as llvm
    from llvmlite.binding import ffi

    from skc.backends import llvm_codegen

    entered, released = threading.Event(), threading.Event()
    holder = []

    def hold():
        if threading.current_thread() in holder and not released.is_set():
            entered.set()
            released.wait(30)

    def after():
        pass
    if where == "skc":
        optimize = llvm_codegen.optimize
        monkeypatch.setattr(llvm_codegen, "optimize", lambda *args: (hold(), optimize(*args))[1])
        use = lambda: llvm_codegen.compile_llvm(_SMALL_LLVM, llvm.get_default_triple(), "", "")  # noqa: E731
    else:   # (llvmlite calls a lock callback with its lock held)
        ffi.register_lock_callback(hold, after)
        use = llvm.get_default_triple
    thread = threading.Thread(target=use, daemon=True)
    holder.append(thread)
    thread.start()
    assert entered.wait(30)

    def end():
        released.set()
        thread.join(30)
        if where != "skc":
            ffi.unregister_lock_callback(hold, after)
    return released, end


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork on this host")
@pytest.mark.parametrize("where", ["skc", "llvmlite"])
def test_a_child_forked_while_a_thread_is_inside_llvm_compiles_for_a_gpu(where, monkeypatch):
    """A fork waits for another thread's use of LLVM to end: a lock held at the fork (skc's around a kernel's code
    generation, llvmlite's around each of its calls) was held for ever in the child, whose first code generation
    waited for it."""
    import llvmlite.binding as llvm

    from skc.backends import llvm_codegen

    released, end = _hold_llvm(where, monkeypatch)
    timer = threading.Timer(0.5, released.set)   # (the parent's use ends; the fork waits for it)
    timer.start()

    def in_child():
        import signal

        signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("waited 10 s")))
        signal.alarm(10)
        _, assembly = llvm_codegen.compile_llvm(_SMALL_LLVM, llvm.get_default_triple(), "", "")
        signal.alarm(0)
        return "compiled" if "identity" in assembly else "no function"
    try:
        assert _in_forked_child(in_child, timeout=15) == "compiled"
    finally:
        timer.join(30)
        end()


# -- a failed compile's put-back, beside another thread's compile ---------------------------------------------------
class _Box:
    pass


_SHARED_BOX = _Box()
_SHARED_BOX.inner = _Box()   # (a global's own attribute is refused; one reached through it is not)
_first_set, _second_set, _first_failed = threading.Event(), threading.Event(), threading.Event()


def _step(done: threading.Event, after: threading.Event = None):
    """Run at compile time: tell the other thread this step is done, then wait for the other's (the order the test
    wants, on two threads)."""
    done.set()
    if after is not None:
        after.wait(30)
    return 0


@skc.kernel(block=1)
def _sets_then_fails_late(x: skc.Ptr[skc.f32], out: skc.Ptr[skc.f32]):
    _SHARED_BOX.inner.v = x[0]
    start = _step(_first_set, _second_set)
    out[start] = _no_such_name  # noqa: F821


@skc.kernel(block=1)
def _sets_then_reads(x: skc.Ptr[skc.f32], out: skc.Ptr[skc.f32]):
    _SHARED_BOX.inner.v = x[0]
    start = _step(_second_set, _first_failed)
    out[start] = _SHARED_BOX.inner.v


def test_a_failed_compile_puts_back_no_attribute_another_threads_compile_set_since():
    """The failed compile put back what the object held before it over the run-time variable the other thread's
    compile had set since: that compile read the old compile-time value and stored it, a wrong answer."""
    for event in (_first_set, _second_set, _first_failed):
        event.clear()
    _SHARED_BOX.inner.v = 1.5
    x, out = np.array([5.0], np.float32), np.zeros(1, np.float32)

    def first():
        try:
            _sets_then_fails_late.interpret[1, 1](x, np.zeros(1, np.float32))
        finally:
            _first_failed.set()

    def second():
        assert _first_set.wait(30)
        _sets_then_reads.interpret[1, 1](x, out)
    errors = _run_together(first, second)
    assert isinstance(errors[0], skc.CompileError) and "_no_such_name" in str(errors[0])
    assert errors[1] is None
    assert out[0] == 5.0


# -- kernels whose compiles compile each other ------------------------------------------------------------------------
_both_holding = threading.Barrier(2, timeout=10)
_nested = threading.local()


def _compiles(name: str):
    """Run at compile time: once per thread, wait until both threads are inside their kernel's compile, then
    compile the other kernel (as a helper that reads another kernel's compiled facts does)."""
    if not getattr(_nested, "inside", False):
        _nested.inside = True
        _both_holding.wait()
        globals()[name].compile(target="sm_80")
    return 0


@skc.kernel(block=1)
def _compiles_second(out: skc.Ptr[skc.i32]):
    out[_compiles("_compiles_first")] = 1


@skc.kernel(block=1)
def _compiles_first(out: skc.Ptr[skc.i32]):
    out[_compiles("_compiles_second")] = 2


def test_two_kernels_whose_compiles_compile_each_other_compile_on_two_threads_at_once():
    """Each thread held its kernel's compile lock and waited for the other's: both for ever."""
    _both_holding.reset()
    outs = [np.zeros(1, np.int32), np.zeros(1, np.int32)]
    errors = _run_together(lambda: _compiles_second.interpret[1, 1](outs[0]),
                           lambda: _compiles_first.interpret[1, 1](outs[1]), timeout=30)
    assert errors == [None, None]
    assert outs[0][0] == 1 and outs[1][0] == 2


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork on this host")
def test_a_child_forked_while_a_thread_selects_a_device_selects_one_itself():
    """The device selection's lock, held by a thread of the parent at the fork, was held for ever in the child."""
    from skc.runtime import devices

    taken, done = threading.Event(), threading.Event()

    def hold():   # (as a thread inside set_device or using_device at the fork)
        with devices._lock:
            taken.set()
            done.wait(30)
    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert taken.wait(30)
    try:
        def in_child():
            skc.set_device("interpreter")   # (the child's own selection: the parent's stays as it is)
            out = np.zeros(32, np.int32)
            _put[1, 32](out, 8)
            return "launched" if (out == 8).all() else "wrong answer"
        assert _in_forked_child(in_child, timeout=15) == "launched"
    finally:
        done.set()
        holder.join(30)
