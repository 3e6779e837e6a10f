"""Split-K's and stream-K's workspace and counters and attention's tile counter are kept per launch stream and
bound into launches; a set first made while a CUDA graph captured the stream came from the graph's memory, its
zero fill only recorded in the graph, and was kept: eager calls on that stream and graphs captured on it later
read counters no fill had zeroed (and graphs sharing one set could run at once). A captured launch now takes
buffers of its own, is never bound, and leaves the plan's sets as they were. What a plan keeps (those sets, its
stand-ins, fp8's padded scales) is the driver's memory, never torch's: torch.compile(mode="reduce-overhead") routes
torch's allocations into its graphs' pool while it warms up, and refused the pool when a plan first made then kept
some of it (the fake driver and a stand-in torch here)."""
import types

import pytest

import skc
from helpers import fake_host_paths
from skc.blocks import MatmulConfig, attention_host, fp8_host, matmul_host
from skc.runtime import fake_cuda


@pytest.fixture
def fake():
    capture = [False]
    with fake_host_paths() as (driver, torch):
        made = []
        torch.Tensor.is_cuda, torch.Tensor.requires_grad = True, False
        torch.cuda.is_current_stream_capturing = lambda: capture[0]
        zeros = torch.Tensor.new_zeros

        def new_zeros(self, shape, dtype=None):   # (records what each fill made, and whether under capture)
            made.append(capture[0])
            return zeros(self, shape, dtype)
        torch.Tensor.new_zeros = new_zeros
        yield driver, torch, capture, made


def kept_by_the_driver(tensor) -> bool:
    """Whether a plan's tensor is a view of the driver's memory (skc.zeros), not one of torch's allocations."""
    return isinstance(getattr(tensor, "_base", None), skc.DeviceArray)


def buffer_words(launch, first: int, count: int) -> list:
    import ctypes

    words = fake_cuda.argument_pointers(launch["arguments"], first + count)
    return [ctypes.c_uint64.from_address(p).value for p in words[first:]]


@pytest.mark.parametrize("fields", [{"split_k": 4}, {"stream_k": True}], ids=["split-k", "stream-k"])
def test_a_captured_gemm_takes_buffers_of_its_own_and_keeps_none(fake, fields):
    driver, torch, capture, made = fake
    a, b, out = torch.Tensor((64 * 133, 1024)), torch.Tensor((1024, 128)), torch.Tensor((64 * 133, 128))
    config = MatmulConfig(tile_m=64, tile_n=128, consumers=1, stages=4, **fields)
    capture[0] = True
    captured = []
    for _ in range(3):   # (never bound: a key seen twice binds outside a capture)
        skc.blocks.matmul(a, b, out, config=config, stream=7)
        captured.append(buffer_words(driver.launches[-1], 3, 2))
    (plan,) = matmul_host._PLANS.values()
    assert plan.buffers.sets == {} and len(plan.bound) == 0 and made == [True] * 6
    assert all(driver.launches[-1]["function"] == launch["function"] for launch in driver.launches)
    capture[0] = False
    for _ in range(3):
        skc.blocks.matmul(a, b, out, config=config, stream=7)
    (workspace, counters), = plan.buffers.sets.values()
    assert made[6:] == [] and len(plan.bound) == 1   # the eager calls' own set, the driver's memory
    assert kept_by_the_driver(workspace) and kept_by_the_driver(counters)
    assert buffer_words(driver.launches[-1], 3, 2) == [workspace.data_ptr(), counters.data_ptr()]
    assert [workspace.data_ptr(), counters.data_ptr()] not in captured


def test_a_captured_attention_takes_a_tile_counter_of_its_own(fake):
    driver, torch, capture, made = fake
    q, k, v, out = (torch.Tensor((1, 40, 1000, 128)) for _ in range(4))   # (causal, 320 short tiles: fetched)
    capture[0] = True
    for _ in range(3):
        skc.blocks.attention(q, k, v, causal=True, out=out)
    (plan,) = attention_host._PLANS.values()
    assert plan.config.fetch_tiles and plan.counters.sets == {} and len(plan.bound) == 0
    assert made == [True] * 9   # (a counter and stand-ins for the log-sum-exp and flags each call, the graph's memory)
    capture[0] = False
    for _ in range(3):
        skc.blocks.attention(q, k, v, causal=True, out=out)
    assert made[9:] == [] and len(plan.counters.sets) == 1 and len(plan.bound) == 1
    (counter,) = plan.counters.sets.values()
    assert kept_by_the_driver(counter) and kept_by_the_driver(plan.no_lse.sets[None])
    assert kept_by_the_driver(plan.flags.sets[None])


def test_a_captured_scaled_matmul_split_in_k_takes_buffers_of_its_own(fake):
    from skc.blocks import Fp8MatmulConfig

    driver, torch, capture, made = fake
    a, b_t = torch.Tensor((64, 1024), torch.float8_e4m3fn), torch.Tensor((256, 1024), torch.float8_e4m3fn)
    scale_a, scale_b = torch.Tensor((1,), torch.float32), torch.Tensor((1,), torch.float32)
    out = torch.Tensor((64, 256))
    config = Fp8MatmulConfig.for_fp8_problem(64, 256, 1024, out_dtype="bf16", split_k=2, stages=2)
    capture[0] = True
    for _ in range(3):
        skc.blocks.matmul(a, b_t.T, scale_a=scale_a, scale_b=scale_b, out=out, config=config)
    (plan,) = fp8_host._PLANS.values()
    assert plan.buffers.sets == {} and len(plan.bound) == 0 and made == [True] * 6
    capture[0] = False
    for _ in range(3):
        skc.blocks.matmul(a, b_t.T, scale_a=scale_a, scale_b=scale_b, out=out, config=config)
    assert made[6:] == [] and len(plan.buffers.sets) == 1 and len(plan.bound) == 1
    assert all(kept_by_the_driver(buffer) for buffer in next(iter(plan.buffers.sets.values())))


def test_what_a_plan_keeps_is_never_torchs_memory(fake):
    """A plan first made outside a capture (as in torch.compile's warm-up, whose allocations go to its graphs'
    pool) keeps the driver's memory: attention's stand-ins, stream-K's set, fp8's padded block scales."""
    from skc.blocks import Fp8MatmulConfig

    driver, torch, capture, made = fake
    q, k, v, out = (torch.Tensor((1, 4, 256, 64)) for _ in range(4))   # (not causal: no tile counter)
    skc.blocks.attention(q, k, v, out=out)
    (plan,) = attention_host._PLANS.values()
    assert plan.counters is None and kept_by_the_driver(plan.no_lse.sets[None]) and kept_by_the_driver(plan.no_counter.sets[None])
    a, b, c = torch.Tensor((64 * 133, 1024)), torch.Tensor((1024, 128)), torch.Tensor((64 * 133, 128))
    skc.blocks.matmul(a, b, c, config=MatmulConfig(tile_m=64, tile_n=128, consumers=1, stages=4, stream_k=True))
    (gemm,) = matmul_host._PLANS.values()
    assert all(kept_by_the_driver(buffer) for buffer in next(iter(gemm.buffers.sets.values())))
    a8, b8 = torch.Tensor((256, 1024), torch.float8_e4m3fn), torch.Tensor((384, 1024), torch.float8_e4m3fn)
    scale_a, scale_b = torch.Tensor((256, 8), torch.float32), torch.Tensor((8, 3), torch.float32)
    skc.blocks.matmul(a8, b8.T, scale_a=scale_a, scale_b=scale_b, out=torch.Tensor((256, 384)),
                      config=Fp8MatmulConfig.for_fp8_problem(256, 384, 1024, out_dtype="bf16", block_scaled=True,
                                                                     stages=2))
    (scaled,) = fp8_host._PLANS.values()
    (kept,) = scaled.kept.values()
    assert kept.sb is not None and kept_by_the_driver(kept.sb)
    assert made == []


def test_padded_rows_keep_the_drivers_memory(fake):
    """matmul's copies of operands whose rows TMA cannot address (K of 1003) go to buffers a plan keeps a launch
    stream (_PaddedRows); they were torch's memory (new_empty), so a first call while torch.compile(mode=
    "reduce-overhead") warmed up kept memory of its graphs' pool, which torch's check of the pool refuses ("tensor(s)
    in the cudagraph pool not tracked as outputs") and whose blocks it hands out again to the graph's tensors. Under
    capture the call's buffers are the graph's (torch's), and none is kept."""
    driver, torch, capture, made = fake
    allocated = []
    allocate = driver.cuMemAlloc

    def recorded(nbytes):
        result = allocate(nbytes)
        allocated.append(result[1])
        return result
    driver.cuMemAlloc = recorded
    a, b = torch.Tensor((256, 1003)), torch.Tensor((1003, 256))
    capture[0] = True
    del torch.made[:]
    skc.blocks.matmul(a, b)
    (plan,) = [p for p in matmul_host._PLANS.values() if isinstance(p, matmul_host._PaddedRows)]
    assert plan.copies == (True, False) and plan.kept == {} and allocated == []
    capture[0] = False
    for _ in range(2):
        del torch.made[:]
        skc.blocks.matmul(a, b)
    (kept,) = plan.kept.values()
    assert kept.b is None and allocated == [kept.a.data_ptr()]
    assert all(x.data_ptr() not in allocated for x in torch.made)   # (the outs returned: torch's)
    assert kept.a.dtype == a.dtype and kept.a.shape == (256, 1003) and kept.a.stride() == (1024, 1)


def test_a_driver_refusal_under_capture_says_to_warm_up_first():
    """A first call under torch.cuda.graph (global capture mode) loads a module or allocates, which the driver
    refuses (CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, then _INVALIDATED for the rest of the capture): the DeviceError
    names the capture and the fix; cuda.capturing reads the driver's capture status, the legacy stream's refusal
    (_IMPLICIT: another stream captures) included."""
    import types

    from skc.runtime import cuda

    names = {900: b"CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED", 906: b"CUDA_ERROR_STREAM_CAPTURE_IMPLICIT",
             1: b"CUDA_ERROR_INVALID_VALUE"}
    status = {0: (906, 0), 7: (0, 1), 8: (0, 0)}   # (stream -> result, CUstreamCaptureStatus)
    module = types.SimpleNamespace(cuModuleLoadData=lambda image: (900, None),
                                   cuStreamIsCapturing=lambda stream: status.get(stream, (1, 0)),
                                   cuGetErrorName=lambda r: (0, names[int(r)]), cuGetErrorString=lambda r: (0, b"..."))
    saved = cuda.install_driver(module)
    try:
        with pytest.raises(skc.DeviceError, match=r"cuModuleLoadData failed: CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED "
                                                  r"\(\.\.\.\); a CUDA graph was capturing a stream.*make the same "
                                                  r"call once before capturing"):
            cuda.call("cuModuleLoadData", 0)
        assert "capturing" not in cuda.error_text(1)
        assert cuda.capturing(0) and cuda.capturing(7) and not cuda.capturing(8)
        with pytest.raises(skc.DeviceError, match="cuStreamIsCapturing failed: CUDA_ERROR_INVALID_VALUE"):
            cuda.capturing(9)
    finally:
        cuda.restore_driver(saved)


def test_a_number_given_as_a_cuda_tensor_under_capture_is_refused_by_name(fake):
    """matmul's alpha and beta and attention's scale may be one-element tensors, which the host reads (float(): a
    copy to the host and a wait). Under a capture the driver refuses the wait (the capture ends) and a replay would
    not read the tensor again: the call is refused by name before anything is launched (torch's own error came from
    the tensor's repr in skc's 'must be a real number' message). Outside a capture they are read as before."""
    driver, torch, capture, made = fake
    torch.Tensor.__float__ = lambda self: 2.0   # (a one-element tensor's value)
    a, b, c = torch.Tensor((256, 256)), torch.Tensor((256, 256)), torch.Tensor((256, 256))
    q, k, v = (torch.Tensor((1, 4, 256, 64)) for _ in range(3))
    scale = torch.Tensor((), torch.float32)
    skc.blocks.matmul(a, b, c=c, alpha=torch.Tensor((), torch.float32), beta=torch.Tensor((), torch.float32))
    skc.blocks.attention(q, k, v, scale=scale)
    launches = len(driver.launches)
    capture[0] = True
    for name, call in (("alpha", lambda: skc.blocks.matmul(a, b, alpha=torch.Tensor((), torch.float32))),
                       ("beta", lambda: skc.blocks.matmul(a, b, c=c, beta=torch.Tensor((), torch.float32))),
                       ("attention's scale", lambda: skc.blocks.attention(q, k, v, scale=scale))):
        argument = name.split()[-1]
        with pytest.raises(skc.LaunchError, match=f"{name} is a CUDA tensor, which the host reads .* a CUDA graph "
                                                  f"captures the stream.*pass {argument} as a number "
                                                  rf"\({argument}.item\(\) before the capture\)"):
            call()
    assert len(driver.launches) == launches


def test_a_captured_attentions_stand_ins_are_made_in_its_stream():
    """Under a capture attention's stand-ins (for the log-sum-exp nobody asked for, for the tile counter of a
    configuration that fetches none, and for the flags of one not "checked") are the graph's memory for the call: they were made on torch's current stream
    while the launch went to stream= (another stream the capture holds), against the rule that what a call makes
    for a launch is its stream's memory (host_plans.on_stream). Outside a capture one is kept for every stream."""
    streams = [0xC0]
    with fake_host_paths() as (driver, _), fake_cuda.torch_installed(streams) as torch:
        torch.Tensor.is_cuda, torch.Tensor.requires_grad = True, False
        capture = [True]
        torch.cuda.is_current_stream_capturing = lambda: capture[0]
        q, k, v = (torch.Tensor((1, 4, 256, 64)) for _ in range(3))
        for stream in (0x5EED, types.SimpleNamespace(cuda_stream=0x5EED)):
            del torch.made[:]
            skc.blocks.attention(q, k, v, stream=stream)
            assert [x.made_on for x in torch.made] == [0x5EED] * 4   # (out, and the three stand-ins)
            assert driver.launches[-1]["stream"] == 0x5EED
        (plan,) = attention_host._PLANS.values()
        capture[0] = False
        for stream in (0x5EED, 0x7777):
            skc.blocks.attention(q, k, v, stream=stream)
        assert list(plan.no_lse.sets) == [None] and list(plan.no_counter.sets) == [None]
        assert list(plan.flags.sets) == [None]


# -- arrays other than torch's (cupy's) under a capture of the launch's stream --------------------------------------
@pytest.mark.parametrize("fields, kernel", [({"split_k": 4}, "matmul_split_kernel"),
                                            ({"stream_k": True}, "matmul_stream_k_kernel")],
                         ids=["split-k", "stream-k"])
def test_a_captured_gemm_over_cupy_arrays_takes_graph_memory_freed_after_its_launch(fields, kernel):
    """cupy's arrays under cupy.cuda.Stream.begin_capture: split-K's and stream-K's workspace and counters were the
    plan's set kept for the stream (skc.zeros: a synchronous fill on the default stream, which a capture of a
    blocking stream refuses, and a set the graph then shared with eager calls and that the plan's eviction freed
    under it). A captured call now allocates them in the launch stream's order (the graph's allocation nodes),
    zero-fills them there and frees them there after its launch (free nodes); it binds nothing and keeps nothing."""
    with fake_host_paths() as (driver, _torch):
        a, b, out = (fake_cuda.FakeTensor(shape) for shape in ((64 * 133, 1024), (1024, 128), (64 * 133, 128)))
        config = MatmulConfig(tile_m=64, tile_n=128, consumers=1, stages=4, dtype="f16", **fields)
        driver.capturing.add(7)
        synchronizes = getattr(driver, "synchronizes", 0)
        for call in range(3):
            del driver.in_stream[:]
            skc.blocks.matmul(a, b, out, config=config, stream=7)
            launch = driver.launches[-1]
            assert launch["function"] == kernel and launch["stream"] == 7
            allocs = [op for op in driver.in_stream if op[0] == "alloc"]
            memsets = [op for op in driver.in_stream if op[0] == "memset"]
            frees = [op for op in driver.in_stream if op[0] == "free"]
            made = [address for _, address, _, stream, _ in allocs]
            assert len(made) == 2 and all(op[3] == 7 for op in allocs)
            assert buffer_words(launch, 3, 2) == made   # (the launch's workspace and counters)
            assert sorted((address, byte, nbytes) for _, address, byte, nbytes, _, _ in memsets) == \
                sorted((address, 0, nbytes) for _, address, nbytes, _, _ in allocs)
            before = len(driver.launches) - 1
            assert all(op[-1] == before for op in allocs + memsets)   # (filled before the launch, in its stream)
            assert sorted(address for _, address, _, _ in frees) == sorted(made)
            assert all(stream == 7 and launches == before + 1 for _, _, stream, launches in frees)
        (plan,) = matmul_host._PLANS.values()
        assert plan.buffers.sets == {} and len(plan.bound) == 0
        assert getattr(driver, "synchronizes", 0) == synchronizes   # (nothing a capture refuses)
        driver.capturing.clear()
        del driver.in_stream[:]
        for _ in range(3):
            skc.blocks.matmul(a, b, out, config=config, stream=7)
        (workspace, counters), = plan.buffers.sets.values()
        assert driver.in_stream == [] and len(plan.bound) == 1   # (the eager calls' own set, kept and bound)
        assert workspace.stream is None and counters.stream is None
        assert buffer_words(driver.launches[-1], 3, 2) == [workspace.ptr, counters.ptr]


def test_a_kept_set_beside_cupy_arrays_is_filled_before_a_launch_on_the_arrays_stream():
    """The kept set's zero fill runs on the driver's default stream, which a cupy stream made with non_blocking=True
    does not wait for: the first launch there could read counters not yet zero. The set is now waited for once, as
    beside torch's tensors (there was no wait when the launch went to the arrays' current stream)."""
    with fake_host_paths() as (driver, _torch):
        a, b, out = (fake_cuda.FakeTensor(shape) for shape in ((64 * 133, 1024), (1024, 128), (64 * 133, 128)))
        config = MatmulConfig(tile_m=64, tile_n=128, consumers=1, stages=4, dtype="f16", split_k=4)
        synchronizes = getattr(driver, "synchronizes", 0)
        skc.blocks.matmul(a, b, out, config=config)   # (stream None: the arrays' current stream)
        assert driver.synchronizes > synchronizes
        made = driver.synchronizes
        for _ in range(2):
            skc.blocks.matmul(a, b, out, config=config)
        assert driver.synchronizes == made   # (once a set)


def test_stream_ordered_arrays_allocate_fill_and_free_in_their_stream():
    with fake_cuda.installed() as driver:
        del driver.in_stream[:]
        zeros = skc.zeros((4, 8), "float32", stream=5)
        assert zeros.stream == 5 and driver.in_stream == [("alloc", zeros.ptr, 128, 5, 0),
                                                          ("memset", zeros.ptr, 0, 128, 5, 0)]
        address = zeros.ptr
        zeros.release()
        zeros.release()
        del zeros
        assert driver.in_stream[2:] == [("free", address, 5, 0)]   # (once)
        plain = skc.empty((4,), "float32")
        assert plain.stream is None and len(driver.in_stream) == 3


def test_stream_capturing_asks_the_driver_about_the_launch_stream():
    with fake_cuda.installed() as driver:
        driver.capturing.add(9)
        assert skc.stream_capturing(9) and not skc.stream_capturing(8) and not skc.stream_capturing()
    assert not skc.stream_capturing(9, device="cpu")


def test_a_stream_ordered_arrays_stream_must_be_a_handle():
    with fake_cuda.installed():
        with pytest.raises(skc.LaunchError, match="stream= is a CUstream handle"):
            skc.zeros(4, "float32", stream=object())
