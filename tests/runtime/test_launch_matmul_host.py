"""skc.blocks.matmul's host path: one lookup finds a ready plan for facts seen before; tensor maps are encoded
once per address (checked on the GPU launch path with a fake driver that records what reaches cuLaunchKernel);
launches go to the given stream; batched operands fold into one GEMM or run one GEMM per batch (against numpy
in the interpreter); unsupported operands are LaunchErrors."""
import contextlib
import ctypes
import struct

import numpy as np
import pytest

import skc
from skc.blocks import matmul_host
from skc.runtime import devices, fake_cuda
from skc.runtime.fake_cuda import FakeTensor


@pytest.fixture
def fake():
    matmul_host._PLANS.clear()
    with fake_cuda.installed() as driver:
        driver.inspect = matmul_arguments
        yield driver
    matmul_host._PLANS.clear()


def launched(launch):
    return launch["seen"]


def matmul_arguments(arguments, count=10):
    """The values a matmul_kernel launch passes: the descriptors' (address, rank, dims...) words, M, N, K,
    the c and bias addresses, alpha and beta."""
    pointers = fake_cuda.argument_pointers(arguments, count)
    maps = [struct.unpack("<4Q", ctypes.string_at(p, 32)) for p in pointers[:3]]
    m, n, k = (ctypes.c_int32.from_address(p).value for p in pointers[3:6])
    c, bias = (ctypes.c_uint64.from_address(p).value for p in pointers[6:8])
    alpha, beta = (ctypes.c_float.from_address(p).value for p in pointers[8:10])
    return maps, (m, n, k), (c, bias), (alpha, beta)


def test_a_call_launches_the_hopper_gemm_with_its_tensor_maps(fake):
    a, b, out = FakeTensor((256, 128)), FakeTensor((128, 512)), FakeTensor((256, 512))
    assert skc.blocks.matmul(a, b, out) is out
    (launch,) = fake.launches
    (plan,) = matmul_host._PLANS.values()  # the block size of the configuration chosen (64-row tiles here)
    assert launch["block"] == (plan.cfg.threads, 1, 1) and launch["stream"] == 0
    maps, mnk, (c, bias), (alpha, beta) = launched(launch)
    # each map: the tensor's address, rank 2, its dims innermost first
    assert maps == [(a.address, 2, 128, 256), (b.address, 2, 512, 128), (out.address, 2, 512, 256)]
    assert mnk == (256, 512, 128) and c == bias == out.address and (alpha, beta) == (1.0, 0.0)


def test_repeated_calls_take_the_plan_and_encode_only_new_addresses(fake):
    a, b, out = FakeTensor((256, 128)), FakeTensor((128, 512)), FakeTensor((256, 512))
    skc.blocks.matmul(a, b, out)
    plans, encodes = len(matmul_host._PLANS), fake.encodes
    assert encodes == 3 * 3  # each map's geometry probed at three addresses for where the address lives
    for _ in range(5):
        skc.blocks.matmul(a, b, out)
    assert (len(matmul_host._PLANS), fake.encodes, len(fake.launches)) == (plans, encodes, 6)
    a2 = FakeTensor((256, 128))  # same facts, another address: its descriptor is the probed one, patched
    skc.blocks.matmul(a2, b, out)
    assert fake.encodes == encodes and len(matmul_host._PLANS) == plans
    assert launched(fake.launches[-1])[0][0][0] == a2.address
    skc.blocks.matmul(a, b, out)  # back to the first address
    assert fake.encodes == encodes and launched(fake.launches[-1])[0][0][0] == a.address
    skc.blocks.matmul(FakeTensor((256, 136)), FakeTensor((136, 512)), out)  # new shapes: a new plan
    assert len(matmul_host._PLANS) == plans + 1
    (m, n, k) = launched(fake.launches[-1])[1]
    assert (m, n, k) == (256, 512, 136)


class CountingTransposes(FakeTensor):
    """cupy's arrays: .T makes a new array (a microsecond each)."""
    made = 0

    @property
    def T(self):
        CountingTransposes.made += 1
        return super().T


def test_a_repeated_call_of_another_frameworks_arrays_makes_no_transposes(fake):
    """(host_plans.viewable asked each operand for .T at every call, to tell whether it has one: with skc's lazy
    DeviceArray lookups, 13 us of the 17 a warm call took on the fake driver, where it took 4 before)"""
    a, b, out = CountingTransposes((256, 128)), CountingTransposes((128, 512)), CountingTransposes((256, 512))
    skc.blocks.matmul(a, b, out)
    CountingTransposes.made = 0
    for _ in range(3):
        assert skc.blocks.matmul(a, b, out) is out
    assert CountingTransposes.made == 0 and len(fake.launches) == 4


def test_aligned_operands_at_new_addresses_ask_nothing_of_misaligned(fake, monkeypatch):
    """(each call at a new address, matmul(a, b) allocating out, built a generator of the operands and called
    host_plans.misaligned, five calls more than at cdc0899, for operands none of which was off 16 bytes)"""
    from skc.blocks import host_plans

    a, b = FakeTensor((256, 128)), FakeTensor((128, 512))
    skc.blocks.matmul(a, b)
    monkeypatch.setattr(host_plans, "misaligned", None)   # (called: a TypeError)
    for _ in range(2):
        assert skc.blocks.matmul(a, b).shape == (256, 512)
    assert len(fake.launches) == 3


def test_a_driver_whose_descriptors_do_not_hold_a_plain_address_encodes_each_new_address(fake):
    fake.checksum = True
    a, b, out = FakeTensor((256, 128)), FakeTensor((128, 512)), FakeTensor((256, 512))
    skc.blocks.matmul(a, b, out)
    encodes = fake.encodes
    a2 = FakeTensor((256, 128))
    skc.blocks.matmul(a2, b, out)
    skc.blocks.matmul(a2, b, out)
    assert fake.encodes == encodes + 1
    assert launched(fake.launches[-1])[0][0][0] == a2.address


def test_transposed_operands_and_epilogue_arguments_reach_the_launch(fake):
    a_t = FakeTensor((128, 256)).T  # M x K, stored K x M
    b, out, c, bias = FakeTensor((128, 512)), FakeTensor((256, 512)), FakeTensor((256, 512)), FakeTensor((512,))
    skc.blocks.matmul(a_t, b, out, c=c, bias=bias, alpha=0.5, beta=2.0, stream=7)
    launch = fake.launches[-1]
    maps, mnk, (c_address, bias_address), (alpha, beta) = launched(launch)
    assert mnk == (256, 512, 128) and maps[0] == (a_t.address, 2, 256, 128)  # the stored (K x M) array's geometry
    assert (c_address, bias_address, alpha, beta) == (c.address, bias.address, 0.5, 2.0)
    assert launch["stream"] == 7


def test_a_misaligned_address_is_a_launch_error_even_on_a_ready_plan(fake):
    a, b, out = FakeTensor((256, 128)), FakeTensor((128, 512)), FakeTensor((256, 512))
    skc.blocks.matmul(a, b, out)
    with pytest.raises(skc.LaunchError, match="16-byte aligned"):
        skc.blocks.matmul(FakeTensor((256, 128), address=a.address + 8), b, out)


def test_an_out_of_the_wrong_shape_is_a_launch_error(fake):
    with pytest.raises(skc.LaunchError, match=r"out has shape \(256, 256\); the product .* is \(256, 512\)"):
        skc.blocks.matmul(FakeTensor((256, 128)), FakeTensor((128, 512)), FakeTensor((256, 256)))


def test_batches_fold_into_one_gemm_or_run_one_per_batch(fake):
    a, b = FakeTensor((4, 64, 128)), FakeTensor((128, 256))
    out = skc.blocks.matmul(a, b)
    assert out.shape == (4, 64, 256) and len(fake.launches) == 1
    maps, mnk, _, _ = launched(fake.launches[-1])
    assert mnk == (256, 256, 128) and maps[0] == (a.address, 2, 128, 256) and maps[2][0] == out.address
    b3 = FakeTensor((4, 128, 256))
    out = skc.blocks.matmul(a, b3)  # a batch times a batch: one launch over every matrix's tiles, 3-D maps
    assert len(fake.launches) == 2 and fake.launches[-1]["function"] == "matmul_batched_kernel"
    words = fake_cuda.argument_pointers(fake.launches[-1]["arguments"], 7)
    maps = [struct.unpack("<5Q", ctypes.string_at(p, 40)) for p in words[:3]]
    assert [m[:5] for m in maps] == [(a.address, 3, 128, 64, 4), (b3.address, 3, 256, 128, 4),
                                     (out.address, 3, 256, 64, 4)]
    assert [ctypes.c_int32.from_address(p).value for p in words[3:7]] == [4, 64, 256, 128]


def test_torch_matmul_shapes_launch_one_gemm_of_views(fake):
    """A (2, 3, 64, 128) a times a (128, 256) b (a LaunchError before: 'matmul takes 2-D operands (or a batch') is
    one launch over a's memory seen as 384 rows, no copy; a 1-D b is a column of one."""
    a, b = FakeTensor((2, 3, 64, 128)), FakeTensor((128, 256))
    out = skc.blocks.matmul(a, b)
    assert out.shape == (2, 3, 64, 256) and len(fake.launches) == 1
    maps, mnk, _, _ = launched(fake.launches[-1])
    assert mnk == (384, 256, 128) and maps[0] == (a.address, 2, 128, 384)


@pytest.mark.parametrize("a_shape,b_shape,message", [
    ((2, 3, 64, 64), (2, 2, 64, 64), "the batch sizes differ"),
    ((), (64, 64), "a dimension at least"),
    ((3, 64, 64), (2, 64, 64), "the batch sizes differ"),
    ((3, 64, 32), (64, 64), "inner dimensions differ"),
])
def test_unsupported_batches_are_launch_errors(fake, a_shape, b_shape, message):
    with pytest.raises(skc.LaunchError, match=message):
        skc.blocks.matmul(FakeTensor(a_shape), FakeTensor(b_shape))


# -- batches in the interpreter, against numpy ------------------------------------------------------------------
@pytest.fixture
def interpreter(monkeypatch):
    monkeypatch.setattr(devices, "_selected", [devices.Device("interpreter")])
    matmul_host._PLANS.clear()
    yield
    matmul_host._PLANS.clear()


RNG = np.random.default_rng(3)


def small_ints(*shape):
    return RNG.integers(-2, 3, shape).astype(np.float16)


def test_a_batch_times_a_matrix_folds_into_one_gemm(interpreter):
    a, b = small_ints(3, 40, 64), small_ints(64, 48)
    bias = small_ints(48)
    out = skc.blocks.matmul(a, b, bias=bias)
    assert out.shape == (3, 40, 48)
    np.testing.assert_array_equal(out.astype(np.float32), a.astype(np.float32) @ b.astype(np.float32) + bias)


def test_a_batch_times_a_batch_runs_one_gemm_per_batch(interpreter):
    a, b = small_ints(2, 40, 64), small_ints(2, 64, 48)
    out = np.full((2, 40, 48), np.nan, np.float16)
    skc.blocks.matmul(a, b, out=out)
    np.testing.assert_array_equal(out.astype(np.float32), a.astype(np.float32) @ b.astype(np.float32))


def test_a_strided_batch_of_a_runs_one_gemm_per_batch(interpreter):
    a = small_ints(40, 2, 64).transpose(1, 0, 2)  # batch outermost in the view, not in memory: cannot fold
    b = small_ints(64, 48)
    out = skc.blocks.matmul(a, b)
    np.testing.assert_array_equal(out.astype(np.float32), a.astype(np.float32) @ b.astype(np.float32))


def test_a_matrix_times_a_batch(interpreter):
    a, b = small_ints(40, 64), small_ints(2, 64, 48)
    out = skc.blocks.matmul(a, b)
    np.testing.assert_array_equal(out.astype(np.float32), a.astype(np.float32) @ b.astype(np.float32))


def test_repeated_interpreter_calls_reuse_the_plan(interpreter):
    a, b = small_ints(64, 64), small_ints(64, 64)
    skc.blocks.matmul(a, b)
    plans = dict(matmul_host._PLANS)
    out = skc.blocks.matmul(small_ints(64, 64), b)
    assert matmul_host._PLANS == plans and out.shape == (64, 64)


# -- torch tensors (a stand-in module: no torch here), their current stream ---------------------------------------
def test_torch_operands_take_the_fast_paths_and_follow_torchs_current_stream(fake):
    streams = [0]
    with fake_cuda.torch_installed(streams) as torch:
        a, b = torch.Tensor((256, 128)), torch.Tensor((128, 512))
        out = skc.blocks.matmul(a, b)
        assert isinstance(out, torch.Tensor) and out.shape == (256, 512)
        maps, _, (c, _), _ = launched(fake.launches[-1])
        assert [m[0] for m in maps] == [a.data_ptr(), b.data_ptr(), out.data_ptr()] and c == out.data_ptr()
        assert fake.launches[-1]["stream"] == 0
        streams.append(0x5EED)  # as inside `with torch.cuda.stream(s):`
        skc.blocks.matmul(a, b, out)
        assert fake.launches[-1]["stream"] == 0x5EED
        skc.blocks.matmul(a, b, out, stream=3)
        assert fake.launches[-1]["stream"] == 3
        with pytest.raises(skc.LaunchError, match="matmul multiplies bf16 or fp16 operands; a is torch.float32"):
            skc.blocks.matmul(torch.Tensor((256, 128), torch.float32), b)
        skc.blocks.matmul(a.T.T, b, out)  # same facts as a: same plan
        assert launched(fake.launches[-1])[0][0][0] == a.data_ptr()


def test_a_plain_kernel_follows_torchs_current_stream(fake):
    @skc.kernel(block=32)
    def fill(x: skc.Ptr[skc.f32], n: skc.i32):
        if skc.thread_id(0) < n:
            x[skc.thread_id(0)] = 1.0

    fake.inspect = None
    streams = [0]
    with fake_cuda.torch_installed(streams) as torch:
        x = torch.Tensor((32,), torch.float32)
        launch = fill[1, 32]
        launch(x, 32)
        streams.append(77)
        launch(x, 32)
        launch(x, 32, stream=5)
        streams.pop()
        launch(x, 32)
        assert [entry["stream"] for entry in fake.launches] == [0, 77, 5, 0]
        with pytest.raises(skc.LaunchError, match="'x' has dtype f64"):
            launch(torch.Tensor((32,), torch.float64), 32)
        with pytest.raises(skc.LaunchError, match="'n' = 4294967296 does not fit in i32"):
            launch(x, 2 ** 32)


def test_batched_skc_arrays_are_a_launch_error_that_says_what_to_pass(interpreter):
    a, b = skc.to_device(small_ints(2, 16, 16)), skc.to_device(small_ints(16, 16))
    with pytest.raises(skc.LaunchError, match="batched operands must be .* found DeviceArray; pass 2-D operands"):
        skc.blocks.matmul(a, b)


def test_a_driver_that_refuses_the_probe_addresses_encodes_each_address(fake, monkeypatch):
    from skc.runtime import tma

    encode = fake.cuTensorMapEncodeTiled

    def refuse_probes(data_type, rank, pointer, *rest):
        if pointer in tma._PROBE_ADDRESSES:
            return (1,)  # CUDA_ERROR_INVALID_VALUE
        return encode(data_type, rank, pointer, *rest)
    monkeypatch.setattr(fake, "cuTensorMapEncodeTiled", refuse_probes)
    a, b, out = FakeTensor((256, 128)), FakeTensor((128, 512)), FakeTensor((256, 512))
    skc.blocks.matmul(a, b, out)
    encodes = fake.encodes
    a2 = FakeTensor((256, 128))
    skc.blocks.matmul(a2, b, out)
    assert fake.encodes == encodes + 1 and launched(fake.launches[-1])[0][0][0] == a2.address


def test_plans_keep_no_operand_alive(fake):
    import gc
    import weakref

    a, b, out = FakeTensor((256, 128)), FakeTensor((128, 512)), FakeTensor((256, 512))
    skc.blocks.matmul(a, b, out, bias=FakeTensor((512,)))
    skc.blocks.matmul(a, b, out)
    references = [weakref.ref(x) for x in (a, b, out)]
    del a, b, out
    gc.collect()
    assert all(reference() is None for reference in references)


def test_a_given_config_takes_the_calls_epilogue(monkeypatch):
    """A config chooses tiles and stages; bias, activation, alpha and c still come from the call (they were dropped)."""
    from skc.blocks import MatmulConfig

    rng = np.random.default_rng(3)
    a, b = (rng.integers(-2, 3, shape).astype(np.float16) for shape in ((64, 64), (64, 128)))
    bias = rng.integers(-2, 3, (128,)).astype(np.float16)
    monkeypatch.setenv("SKC_INTERPRETER_TARGET", "sm_90a")
    devices.forget_targets()
    with devices.using_device("interpreter"):
        out = skc.blocks.matmul(a, b, bias=bias, activation="relu", alpha=2.0,
                                config=MatmulConfig(tile_n=128, dtype="f16", stages=2))
    expected = np.maximum(2.0 * (a.astype(np.float32) @ b.astype(np.float32)) + bias, 0.0)
    assert (expected == 0).any() and (expected > 0).any()
    np.testing.assert_array_equal(out.astype(np.float32), expected)


def test_an_fp8_plan_encodes_each_map_once_per_address():
    """The fp8 host path keeps its tensor maps as matmul's plans do (host_plans.MapsByAddress)."""
    from skc.blocks import fp8_host

    with fake_cuda.installed():
        plan = object.__new__(fp8_host._Plan)
        plan.maps = {}
        a, other = fake_cuda.FakeTensor((256, 128), "float16"), fake_cuda.FakeTensor((256, 128), "float16")
        first = plan.encoded(0, a, (64, 64), 128)
        assert plan.encoded(0, a, (64, 64), 128) is first
        assert plan.encoded(0, other, (64, 64), 128) is not first


# -- bound launches: a call with addresses seen before is a lookup and the driver call --------------------------------
def test_a_call_with_the_same_addresses_reuses_its_bound_launch(fake):
    a, b, out = FakeTensor((256, 128)), FakeTensor((128, 512)), FakeTensor((256, 512))
    skc.blocks.matmul(a, b, out)
    (plan,) = matmul_host._PLANS.values()
    assert len(plan.bound) == 0   # seen once: launched through the ready launch, not bound
    skc.blocks.matmul(a, b, out)  # seen again: bound
    encodes, (bound,) = fake.encodes, plan.bound.values()
    for _ in range(3):
        skc.blocks.matmul(a, b, out)
    assert fake.encodes == encodes and list(plan.bound.values()) == [bound]
    assert {launch["arguments"] for launch in fake.launches[1:]} == {bound.arguments}  # one kernelParams image
    assert all(launched(launch) == launched(fake.launches[0]) for launch in fake.launches)


def test_addresses_seen_once_never_bind(fake):
    """A caller whose outputs are new memory at each call pays no binding: each new set of addresses launches
    through the ready launch."""
    a, b = FakeTensor((256, 128)), FakeTensor((128, 512))
    outs = [FakeTensor((256, 512)) for _ in range(4)]
    for out in outs:
        skc.blocks.matmul(a, b, out)
    (plan,) = matmul_host._PLANS.values()
    assert len(plan.bound) == 0 and len(fake.launches) == 4
    assert [launched(launch)[0][2][0] for launch in fake.launches] == [o.address for o in outs]


def test_new_addresses_and_scalars_bind_new_images(fake):
    a, b, out, c = FakeTensor((256, 128)), FakeTensor((128, 512)), FakeTensor((256, 512)), FakeTensor((256, 512))
    twice = lambda *args, **kwargs: [skc.blocks.matmul(*args, **kwargs) for _ in range(2)]  # the second binds
    twice(a, b, out, c=c, alpha=0.5, beta=2.0)
    first = fake.launches[-1]["arguments"]
    a2, c2 = FakeTensor((256, 128)), FakeTensor((256, 512))
    twice(a2, b, out, c=c, alpha=0.5, beta=2.0)
    maps, _, (c_address, _), scalars = launched(fake.launches[-1])
    assert fake.launches[-1]["arguments"] != first
    assert maps[0][0] == a2.address and c_address == c.address and scalars == (0.5, 2.0)
    twice(a, b, out, c=c2, alpha=1.5, beta=-1.0)  # the same plan (alpha and c given), a new image
    maps, _, (c_address, bias_address), scalars = launched(fake.launches[-1])
    assert maps[0][0] == a.address and c_address == bias_address == c2.address and scalars == (1.5, -1.0)
    skc.blocks.matmul(a, b, out, c=c2, alpha=1.5, beta=-1)  # an int beta keys as its float: the same image
    assert fake.launches[-1]["arguments"] == fake.launches[-2]["arguments"]
    skc.blocks.matmul(a, b, out, c=c, alpha=0.5, beta=2.0)  # back to the first addresses and scalars
    assert fake.launches[-1]["arguments"] == first and launched(fake.launches[-1])[3] == (0.5, 2.0)
    (plan,) = matmul_host._PLANS.values()
    assert len(plan.bound) == 3 and len(fake.launches) == 8


def test_bound_launches_take_the_given_stream_or_torchs_current_one(fake):
    import types

    streams = [0]
    with fake_cuda.torch_installed(streams) as torch:
        a, b, out = torch.Tensor((256, 128)), torch.Tensor((128, 512)), torch.Tensor((256, 512))
        skc.blocks.matmul(a, b, out)
        streams.append(0x5EED)
        skc.blocks.matmul(a, b, out)
        skc.blocks.matmul(a, b, out, stream=3)
        skc.blocks.matmul(a, b, out, stream=types.SimpleNamespace(cuda_stream=9))  # a torch.cuda.Stream
        streams.pop()
        skc.blocks.matmul(a, b, out)
    assert [launch["stream"] for launch in fake.launches] == [0, 0x5EED, 3, 9, 0]
    (plan,) = matmul_host._PLANS.values()
    (bound,) = plan.bound.values()   # the first call was not bound; the others are one bound launch
    assert {launch["arguments"] for launch in fake.launches[1:]} == {bound.arguments}


def test_signed_zero_scalars_bind_apart(fake):
    """beta = -0.0 is not beta = 0.0 (the sign of a zero product): the bound launches key by the scalars' bits."""
    a, b, out, c = FakeTensor((256, 128)), FakeTensor((128, 512)), FakeTensor((256, 512)), FakeTensor((256, 512))
    for beta in (0.0, 0.0, -0.0, -0.0):
        skc.blocks.matmul(a, b, out, c=c, alpha=1.0, beta=beta)
    (plan,) = matmul_host._PLANS.values()
    assert len(plan.bound) == 2
    betas = [struct.pack("<f", launched(launch)[3][1]) for launch in fake.launches]
    assert betas == [struct.pack("<f", 0.0)] * 2 + [struct.pack("<f", -0.0)] * 2


def test_split_k_binds_its_buffers_once(fake):
    from skc.blocks import MatmulConfig

    fake.inspect = None
    with fake_cuda.torch_installed() as torch:
        a, b, out = torch.Tensor((64, 1024)), torch.Tensor((1024, 128)), torch.Tensor((64, 128))
        config = MatmulConfig(tile_m=64, tile_n=128, consumers=1, stages=4, split_k=4)
        for _ in range(2):
            skc.blocks.matmul(a, b, out, config=config)
        (plan,) = matmul_host._PLANS.values()
        ((stream, (workspace, counters)),) = plan.buffers.sets.items()
        words = fake_cuda.argument_pointers(fake.launches[-1]["arguments"], 5)
        assert [ctypes.c_uint64.from_address(p).value for p in words[2:5]] == \
            [out.data_ptr(), workspace.data_ptr(), counters.data_ptr()]
        skc.blocks.matmul(a, b, out, config=config)
        assert fake.launches[0]["function"] == "matmul_split_kernel" and len(plan.bound) == 1
        assert fake.launches[1]["arguments"] == fake.launches[2]["arguments"]
        assert plan.buffers.sets == {stream: (workspace, counters)}


@pytest.mark.parametrize("fields", [{"split_k": 4}, {"stream_k": True}], ids=["split-k", "stream-k"])
def test_split_and_stream_k_keep_buffers_per_stream(fake, fields):
    """Launches on two streams may run at once: each stream has its own workspace and counters (shared, two
    launches would add each other's partial sums, and stream-K's second parts could wait for ever)."""
    from skc.blocks import MatmulConfig

    fake.inspect = None
    with fake_cuda.torch_installed() as torch:
        a, b = torch.Tensor((64 * 133, 1024)), torch.Tensor((1024, 128))
        out = torch.Tensor((64 * 133, 128))
        config = MatmulConfig(tile_m=64, tile_n=128, consumers=1, stages=4, **fields)
        buffers = []
        for stream in (1, 2, 1):
            skc.blocks.matmul(a, b, out, config=config, stream=stream)
            words = fake_cuda.argument_pointers(fake.launches[-1]["arguments"], 5)   # (read at once: slots are reused)
            buffers.append([ctypes.c_uint64.from_address(p).value for p in words[3:5]])   # workspace, counters
        (plan,) = matmul_host._PLANS.values()
        assert sorted(plan.buffers.sets) == [1, 2]
        assert [launch["stream"] for launch in fake.launches] == [1, 2, 1]
        assert buffers[0] == buffers[2] != buffers[1]
        assert buffers[1] == [x.data_ptr() for x in plan.buffers.sets[2]]


def test_a_torch_tensor_that_changed_never_takes_a_plan_made_for_another(fake):
    with fake_cuda.torch_installed() as torch:
        a, b, out = torch.Tensor((256, 128)), torch.Tensor((128, 512)), torch.Tensor((256, 512))
        skc.blocks.matmul(a, b, out)
        skc.blocks.matmul(a, b, out)
        assert len(matmul_host._PLANS) == 1
        as_f16 = torch.Tensor((256, 128), torch.float16, address=a.data_ptr())  # the same memory, another dtype
        with pytest.raises(skc.LaunchError, match="a is f16 and b is bf16"):
            skc.blocks.matmul(as_f16, b, out)
        transposed = torch.Tensor((128, 256), address=a.data_ptr()).T  # a's shape, column-major
        skc.blocks.matmul(transposed, b, out)
        assert [plan.cfg.a_k_major for plan in matmul_host._PLANS.values()] == [True, False]
        assert launched(fake.launches[-1])[0][0] == (a.data_ptr(), 2, 256, 128)  # the stored K x M geometry
        on_cuda1 = [torch.Tensor(x.shape, device=1) for x in (a, b, out)]
        with pytest.raises(skc.LaunchError, match="is on cuda:1, the kernel runs on cuda:0"):
            skc.blocks.matmul(*on_cuda1)   # (refused as its plan is made: none is kept)
        assert len(matmul_host._PLANS) == 2 and len(fake.launches) == 3
        a16, out16, cai = torch.Tensor((256, 128), torch.float16), torch.Tensor((256, 512), torch.float16), \
            FakeTensor((128, 512), "float16")  # operands of several kinds: keyed by facts()
        skc.blocks.matmul(a16, cai, out16)
        assert launched(fake.launches[-1])[0][1][0] == cai.address and len(matmul_host._PLANS) == 3


def test_fp8_calls_at_known_addresses_reuse_their_bound_launch(fake):
    from skc.blocks import fp8_host

    fp8_host._PLANS.clear()
    fake.inspect = None
    with fake_cuda.torch_installed() as torch:
        f8 = torch.float8_e4m3fn
        a, b_t = torch.Tensor((256, 128), f8), torch.Tensor((512, 128), f8)  # b: K-major, the transpose of N x K
        scale_a, scale_b = torch.Tensor((1,), torch.float32), torch.Tensor((1,), torch.float32)
        out = torch.Tensor((256, 512))
        for _ in range(3):
            skc.blocks.matmul(a, b_t.T, scale_a=scale_a, scale_b=scale_b, out=out)
        scale_a2 = torch.Tensor((1,), torch.float32)
        for _ in range(2):
            skc.blocks.matmul(a, b_t.T, scale_a=scale_a2, scale_b=scale_b, out=out, stream=5)
    _, first, second, _, third = fake.launches   # each set of addresses binds when seen the second time
    assert first["function"] == "fp8_matmul_kernel" and first["arguments"] == second["arguments"]
    (plan,) = fp8_host._PLANS.values()
    assert len(plan.bound) == 2 and {first["arguments"], third["arguments"]} == {b.arguments for b in plan.bound.values()}
    words = [fake_cuda.argument_pointers(launch["arguments"], 9) for launch in (first, third)]
    assert [ctypes.c_uint64.from_address(p).value for p in words[0][7:9]] == [scale_a.data_ptr(), scale_b.data_ptr()]
    assert [ctypes.c_uint64.from_address(p).value for p in words[1][7:9]] == [scale_a2.data_ptr(), scale_b.data_ptr()]
    assert third["stream"] == 5


@pytest.mark.parametrize("shifted", ["a", "b", "out", "scale_a"])
def test_fp8_operands_off_16_bytes_run_through_aligned_copies(fake, shifted):
    """An fp8 a (or b, out, or block scales read in place) one byte into its buffer: the interpreter ran it, the
    GPU refused it unnamed ("TMA needs the tensor's address to be 16-byte aligned"); now both copy it into aligned
    memory of its strides (out's copy written back)."""
    from skc.blocks import fp8_host

    fp8_host._PLANS.clear()
    fake.inspect = None
    with fake_cuda.torch_installed() as torch:
        f8, f32 = torch.float8_e4m3fn, torch.float32
        operands = {"a": torch.Tensor((256, 256), f8, strides=(272, 1)), "b": torch.Tensor((512, 256), f8).T,
                    "scale_a": torch.Tensor((2, 256), f32).T, "scale_b": torch.Tensor((2, 4), f32),
                    "out": torch.Tensor((256, 512))}
        x = operands[shifted]
        operands[shifted] = torch.Tensor(x.shape, x.dtype, x.stride(), x.data_ptr() + (4 if x.dtype is f32 else 1))
        for _ in range(2):
            assert skc.blocks.matmul(**operands) is operands["out"]
        (plan,) = fp8_host._PLANS.values()
        assert len(fake.launches) == 2 and len(plan.bound) == 0   # (never bound: each such call copies)
        for launch in fake.launches:
            maps = [struct.unpack("<Q", ctypes.string_at(p, 8))[0]
                    for p in fake_cuda.argument_pointers(launch["arguments"], 3)]
            assert all(address % 16 == 0 for address in maps)
    fp8_host._PLANS.clear()


class _BareArray:
    """shape, dtype and __cuda_array_interface__ only (its strides are the interface's)."""

    def __init__(self, shape, strides=None, address=None):
        self._memory = FakeTensor(shape, "float16", strides, address)
        self.shape, self.dtype = tuple(shape), np.dtype(np.float16)

    @property
    def __cuda_array_interface__(self):
        return self._memory.__cuda_array_interface__


def test_arrays_exporting_only_the_interface_multiply_as_their_strides_say(fake):
    """A bare interface array (a transposed view among them, whose strides only its interface says) raised
    AttributeError ('no attribute stride', from the tensor map); one without `strides` was also taken as row-major
    wherever skc read its strides, whatever its interface said. A batch of them is viewed per matrix."""
    stored = _BareArray((128, 256))
    a = _BareArray((256, 128), strides=(1, 256), address=stored._memory.address)   # stored's transpose
    b, out = _BareArray((128, 512)), _BareArray((256, 512))
    assert skc.blocks.matmul(a, b, out) is out
    maps, mnk, _, _ = launched(fake.launches[-1])
    assert mnk == (256, 512, 128) and maps[0] == (stored._memory.address, 2, 256, 128)   # read as K x M storage
    made = skc.blocks.matmul(a, b)
    assert isinstance(made, skc.DeviceArray) and made.shape == (256, 512)
    batch = _BareArray((3, 64, 128))
    assert skc.blocks.matmul(batch, b).shape == (3, 64, 512)


@pytest.mark.parametrize("shape, strides, message", [
    ((8, 8), (8, 1), r"reach elements past the array's \(4, 4\) \(bytes 0 to 127 .* are 0 to 31\)"),
    ((4, 4), (-4, 1), "reach elements past"), ((4, 4), (1,), "a size .* and a stride for each dimension"),
    ((4, -1), (4, 1), "a size .* and a stride for each dimension"), ((4.5, 4), (4, 1), "shape and strides of integers"),
    ((4, True), (4, 1), "shape and strides of integers")])
def test_a_strided_view_past_the_array_or_of_other_counts_is_refused(shape, strides, message):
    """(skc.strided_view made each of these: a view of 8 x 8 elements over a 4 x 4 array, which a kernel reads past
    its end; strides of another count; 4.5 elements taken as 4)"""
    with pytest.raises(skc.LaunchError, match=message):
        skc.strided_view(_BareArray((4, 4)), shape, strides)
    view = skc.strided_view(_BareArray((4, 4)), (2, 2), (1, 4))   # (one inside: the transpose's corner)
    assert view.strides == (2, 8) and skc.strided_view(view, (0, 9), (9, 9)).shape == (0, 9)


def test_a_strided_view_of_an_array_of_its_own_views_names_them():
    with pytest.raises(skc.LaunchError, match="a ndarray exports none: use the ndarray's own views"):
        skc.strided_view(np.zeros((4, 4)), (16,), (1,))


def test_split_k_beside_arrays_of_another_framework_keeps_its_buffers_on_the_device(fake):
    """Arrays exporting __cuda_array_interface__ (cupy's) at shapes the rule splits (few tiles; several rows of tiles
    filling half the SMs): split-K's workspace and counters are device memory (they were numpy arrays on the host,
    which the launch refused), made once a plan."""
    for a, b, split in ((FakeTensor((4, 4800)), FakeTensor((4800, 1152)), 4),
                        (FakeTensor((256, 4608)), FakeTensor((4608, 576)), 2),
                        (FakeTensor((427, 8192)), FakeTensor((384, 8192)).T, 3)):
        matmul_host._PLANS.clear()
        fake.inspect = None
        allocations = getattr(fake, "allocations", 0)
        for _ in range(2):
            skc.blocks.matmul(a, b)
        (plan,) = matmul_host._PLANS.values()
        assert plan.cfg.split_k == split and fake.launches[-1]["function"] == "matmul_split_kernel"
        assert fake.allocations == allocations + 2   # (the workspace and the counters, once)


def test_fp8_block_scales_that_must_be_padded_are_copied_into_kept_buffers_and_bound(fake):
    """Scales TMA cannot read in place are copied into the plan's padded buffers (kept a launch stream), so those
    calls bind as the others do (before, they took the checked launch with new padded copies: ~140 us a call)."""
    from skc.blocks import fp8_host

    with fake_cuda.torch_installed() as torch:
        f8, f32 = torch.float8_e4m3fn, torch.float32
        a, b = torch.Tensor((256, 256), f8), torch.Tensor((512, 256), f8).T
        k_block_major = torch.Tensor((2, 256), f32).T   # scale_a (M x K/128) read in place through its transpose
        row_major = torch.Tensor((256, 2), f32)          # scale_a copied into a kept padded buffer at each call
        scale_b = torch.Tensor((2, 4), f32)
        bound = fp8_host._new_plan(a, b, k_block_major, scale_b, None, None, None, None, None, None)
        copied = fp8_host._new_plan(a, b, row_major, scale_b, None, None, None, None, None, None)
    assert bound.binds and copied.binds
    assert bound.pads == (False, False) and copied.pads == (True, False)


def _with_kept_path(torch):
    """The fake torch's tensors with what the kept path uses: CUDA, copy_ (counted), prefix views t[:, :n], and no
    capture under way."""
    tensor = torch.Tensor
    tensor.is_cuda, tensor.requires_grad, tensor.copies = True, False, 0

    def copy_(self, x):
        type(self).copies += 1
        return self

    def getitem(self, index):
        if isinstance(index, tuple):   # [:, :n]: the first rows' first n columns, in place
            rows = self.shape[0] if index[0].stop is None else index[0].stop
            return tensor((rows, index[1].stop), self.dtype, self._strides, self._address, self._device)
        return plain(self, index)

    plain = tensor.__getitem__
    tensor.copy_, tensor.__getitem__ = copy_, getitem
    torch.cuda.is_current_stream_capturing = lambda: False
    torch.inference_mode = lambda mode=True: contextlib.nullcontext()


def test_fp8_kept_scales_are_made_once_a_stream_under_the_lock_and_read_by_the_bound_launch(fake):
    """Padded block scales: a call copies them into its stream's kept buffers (made once, under the plan's lock, so
    two threads' first calls cannot leave a bound launch reading a set later calls do not fill), the third call of
    a key is bound, and the bound launch reads the kept buffer; another stream gets a set of its own."""
    from skc.blocks import fp8_host

    fake.inspect = None   # (the fixture reads a bf16 GEMM's arguments)
    fp8_host._PLANS.clear()
    streams = [0]
    with fake_cuda.torch_installed(streams) as torch:
        _with_kept_path(torch)
        f8, f32 = torch.float8_e4m3fn, torch.float32
        a, b, out = torch.Tensor((256, 256), f8), torch.Tensor((512, 256), f8).T, torch.Tensor((256, 512))
        sa, sb = torch.Tensor((256, 2), f32), torch.Tensor((2, 4), f32)   # sa row-major: copied M-major
        made = []
        init = fp8_host._KeptScales.__init__

        def checked_init(self, *args):
            (plan,) = fp8_host._PLANS.values()
            made.append(plan.lock.locked())
            init(self, *args)

        fp8_host._KeptScales.__init__ = checked_init
        try:
            for _ in range(3):
                skc.blocks.matmul(a, b, out, scale_a=sa, scale_b=sb)
            (plan,) = fp8_host._PLANS.values()
            assert made == [True] and list(plan.kept) == [0] and len(plan.bound) == 1
            assert torch.Tensor.copies == 3 and plan.pads == (True, False)
            (bound,) = plan.bound.values()
            words = fake_cuda.argument_pointers(bound.arguments, 9)   # a, b, out, M, N, K, bias, sa, sb
            assert ctypes.c_uint64.from_address(words[7]).value == plan.kept[0].sa.data_ptr()
            streams.append(5)
            skc.blocks.matmul(a, b, out, scale_a=sa, scale_b=sb)
            assert made == [True, True] and sorted(plan.kept) == [0, 5]
            assert fake.launches[-1]["stream"] == 5
        finally:
            fp8_host._KeptScales.__init__ = init
            fp8_host._PLANS.clear()


def test_fp8_block_scales_on_another_device_are_refused(fake):
    with fake_cuda.torch_installed() as torch:
        f8, f32 = torch.float8_e4m3fn, torch.float32
        a, b = torch.Tensor((256, 256), f8), torch.Tensor((512, 256), f8).T
        sa, sb = torch.Tensor((256, 2), f32, device=1), torch.Tensor((2, 4), f32)
        # (refused as every operand on another device is, when the plan is made: per-tensor scales too)
        with pytest.raises(skc.LaunchError, match="scale_a is on cuda:1, the kernel runs on cuda:0"):
            skc.blocks.matmul(a, b, scale_a=sa, scale_b=sb)


def test_fp8_kept_scales_made_under_inference_mode_fill_outside_it():
    """A serving loop's first call under torch.inference_mode(): the kept buffers are normal tensors, so later
    calls outside it can fill them (an inference tensor refuses in-place updates there)."""
    torch = pytest.importorskip("torch")
    from skc.blocks.fp8_host import _KeptScales

    M, N, K = 6, 200, 256
    a, sa, sb = torch.zeros(M, K), torch.rand(M, K // 128), torch.rand(K // 128, 2)
    with torch.inference_mode():
        kept = _KeptScales(a, 0, M, N, K, (True, True))
        kept.fill(sa, sb)
    kept.fill(sa * 2, sb * 3)
    assert not kept.sa.is_inference()
    assert torch.equal(kept.sa_top, (sa * 2).T) and torch.equal(kept.sb_top, sb * 3)
    assert not kept.sa[:, M:].any() and kept.sb.shape == (2, 4) and not kept.sb[:, 2:].any()


@pytest.mark.parametrize("size, blocks", [(1, 132), (2, 132), (4, 120)])
def test_a_persistent_grid_of_clusters_holds_only_the_clusters_the_gpu_runs_at_once(fake, size, blocks):
    """The fake driver counts clusters as an H200 does (30 of 4 on 132 SMs): a grid of 33 clusters of 4 would leave
    three to run after the others, each with a whole share of the tiles."""
    from skc.blocks import MatmulConfig

    assert devices.Device("cuda", 0).cluster_blocks(size) == blocks
    assert devices.Device("cuda", 0).cluster_blocks(8) == 120   # (a count for any size, 132 SMs or not)
    a, b, out = FakeTensor((64, 512)), FakeTensor((512, 65536)), FakeTensor((64, 65536))
    config = MatmulConfig.for_problem(64, 65536, 512, "f16", tile_m=64, consumers=1, tile_n=64, multiprocessors=132,
                                      cluster_n=size)
    skc.blocks.matmul(a, b, out, config=config)
    assert fake.launches[-1]["grid"] == (blocks, 1, 1)


def test_the_interpreter_counts_its_sms_in_whole_clusters():
    interpreter = devices.Device("interpreter")
    assert [interpreter.cluster_blocks(size) for size in (1, 2, 4)] == [4, 4, 4]


def test_a_driver_that_cannot_count_clusters_now_counts_whole_ones_and_is_asked_again(fake, monkeypatch):
    device = devices.Device("cuda", 0)
    load = fake.cuModuleLoadData
    monkeypatch.setattr(fake, "cuModuleLoadData", lambda address: (700,))   # as inside a capture that refuses it
    assert device.cluster_blocks(4) == 132
    monkeypatch.setattr(fake, "cuModuleLoadData", load)
    assert device.cluster_blocks(4) == 120            # the failure was not kept
    monkeypatch.setattr(fake, "cuOccupancyMaxActiveClusters", lambda function, config: (801,))
    assert device.cluster_blocks(2) == 132            # an error from the query itself: no DeviceError for the user


def test_a_gpu_too_small_for_the_fake_drivers_holes_still_counts_whole_clusters():
    with fake_cuda.installed(multiprocessors=8):
        assert devices.Device("cuda", 0).cluster_blocks(4) == 8   # (the driver's count of 0: whole clusters)


# -- rows 16-byte but not 128-byte aligned: tiles in clusters of two ---------------------------------------------------
@pytest.mark.parametrize("shapes, strides, cluster", [
    (((1000, 1000), (1000, 1000)), (None, None), (2, 1)),         # both rows 2000 bytes apart: B shared along M
    (((1000, 1024), (1024, 1000)), (None, None), (2, 1)),         # only B's rows: likewise
    (((1000, 1000), (1000, 1024)), ((1024, 1), None), (1, 1)),    # a view of 1000 of 1024 columns: aligned rows
    (((1000, 1008), (1008, 1008)), (None, None), (1, 1)),         # rows 2016 bytes apart (32-byte sectors): none
    (((1000, 1000), (1000, 1008)), (None, None), (2, 1)),         # A's 2000 apart (they cross sectors): B shared
    (((1000, 1008), (1008, 1000)), (None, None), (2, 1)),         # A's 2016, B's 2000: B shared
    (((16, 1000), (1000, 4096)), (None, None), (1, 1)),           # one row of tiles: none
    (((1024, 1024), (1024, 1024)), (None, None), (1, 1))])        # aligned rows: the tuning table's choice
def test_rows_not_128_byte_aligned_take_clusters_of_two(fake, shapes, strides, cluster):
    (a_shape, b_shape), (a_strides, b_strides) = shapes, strides
    a, b = FakeTensor(a_shape, strides=a_strides), FakeTensor(b_shape, strides=b_strides)
    skc.blocks.matmul(a, b, FakeTensor((a_shape[0], b_shape[1])))
    (plan,) = matmul_host._PLANS.values()
    assert (plan.cfg.cluster_m, plan.cfg.cluster_n) == cluster and len(fake.launches) == 1


def test_the_rule_reads_how_far_past_128_bytes_rows_start():
    """matmul_host._unaligned_pitch: how many bytes past a multiple of 128 a row-major storage's rows start from each
    other (2-byte elements). (An operand the padded path copies counts as aligned: test_unaligned_rows.)"""
    from skc.blocks.tile_rules import sector_crossing

    assert [matmul_host._unaligned_pitch(FakeTensor((8, n))) for n in (3072, 1000, 1008, 1032)] == [0, 80, 96, 16]
    assert sector_crossing(True) and sector_crossing(16) and sector_crossing(80)
    assert not sector_crossing(96) and not sector_crossing(0)


def test_the_unaligned_cluster_rule(monkeypatch):
    from skc.blocks import MatmulConfig, tile_rules
    from skc.blocks.tile_rules import unaligned_cluster

    assert unaligned_cluster(3000, 3000, 192, 192) == {"cluster_n": 2}   # 192 x 192: A shared (measured faster)
    assert unaligned_cluster(3000, 192, 192, 192) == {"cluster_m": 2}    # ... unless one column of tiles
    assert unaligned_cluster(3000, 3000, 192, 128) == {"cluster_n": 2}   # more rows than columns: A shared
    assert unaligned_cluster(1000, 1000, 64, 128) == {"cluster_m": 2}    # else B
    assert unaligned_cluster(64, 1000, 64, 128) == {}                     # one row of tiles
    # with the SMs counted: a cluster that rounds an odd count of tiles into another wave gives way (787 x 4504 on
    # 128 x 256 tiles: 7 rows of 18 in one wave; 8 rows in clusters along M, two waves), to the other direction or
    # to none
    assert unaligned_cluster(787, 4504, 128, 256) == {"cluster_m": 2}
    assert unaligned_cluster(787, 4504, 128, 256, 132) == {"cluster_n": 2}
    assert unaligned_cluster(3000, 3000, 192, 192, 132) == {"cluster_n": 2}   # (16 x 16 tiles: even either way)
    assert unaligned_cluster(1000, 1000, 64, 128, 132) == {"cluster_m": 2}
    assert unaligned_cluster(787, 256, 128, 256, 132) == {"cluster_m": 2}     # (one column: M's 7 rows in 1 wave)
    assert unaligned_cluster(7 * 128, 3 * 256, 128, 256, 22) == {}            # 21 tiles, 1 wave; 24 or 28 in pairs: 3
    assert unaligned_cluster(7000, 3000, 128, 256, 132) == {"cluster_m": 2}   # 5 waves, 6 in pairs along M: kept
    assert MatmulConfig.for_problem(787, 4504, 9216, multiprocessors=132, unaligned=(False, True)).cluster_n == 2
    pick = MatmulConfig.for_problem
    assert pick(3000, 3000, 3000, multiprocessors=132, unaligned=(True, False)).cluster_n == 2
    # the tiles at UNALIGNED_TILE_SPEEDS: 5000³ on 192 x 192 (12 waves of 64 x 256 ones when aligned)
    assert (pick(5000, 5000, 5000, multiprocessors=132).tile_m, pick(5000, 5000, 5000, multiprocessors=132).tile_n) \
        == (64, 256)
    unaligned = pick(5000, 5000, 5000, multiprocessors=132, unaligned=(True, True))
    assert (unaligned.tile_m, unaligned.tile_n, unaligned.cluster_n) == (192, 192, 2)
    assert pick(3000, 3000, 3000, multiprocessors=132, unaligned=(False, False)).cluster == 1
    # by how many bytes past 128-byte alignment the rows start (tile_rules.shares_b): along M, sharing B's tile, only
    # where B's rows cross 32-byte sectors, or A's do and B's are unaligned; along N, sharing A's, wherever A's are
    # unaligned
    assert pick(1000, 1000, 1000, multiprocessors=132, unaligned=(80, 80)).cluster_m == 2
    assert pick(1000, 1000, 1000, multiprocessors=132, unaligned=(32, 80)).cluster_m == 2
    assert pick(1000, 1000, 1000, multiprocessors=132, unaligned=(0, 80)).cluster_m == 2
    assert pick(1000, 1000, 1000, multiprocessors=132, unaligned=(80, 96)).cluster_m == 2
    assert pick(1000, 1000, 1000, multiprocessors=132, unaligned=(32, 96)).cluster == 1
    assert pick(1000, 1000, 1000, multiprocessors=132, unaligned=(80, 0)).cluster == 1
    assert pick(1000, 1000, 1000, multiprocessors=132, unaligned=(0, 64)).cluster == 1
    assert pick(3072, 3072, 3024, multiprocessors=132, unaligned=(32, 0)).cluster_n == 2
    monkeypatch.setattr(tile_rules, "SECTOR_CLUSTERS", False)   # (the rule before: any unaligned rows, a cluster)
    assert pick(1000, 1000, 1000, multiprocessors=132, unaligned=(32, 96)).cluster_m == 2
    monkeypatch.undo()
    # the caller's cluster, split or loader stays the caller's
    assert pick(3000, 3000, 3000, multiprocessors=132, unaligned=(True, True), cluster_m=1).cluster == 1
    assert pick(3000, 3000, 3000, multiprocessors=132, unaligned=(True, True), split_k=2).cluster == 1
    assert pick(1000, 1000, 1000, multiprocessors=132, unaligned=(True, True), loader="vector").cluster == 1
    named = pick(1000, 1000, 1000, multiprocessors=132, unaligned=(True, True), b_k_major=True, tile_n=40)
    assert (named.tile_n, named.cluster) == (40, 1)   # the caller's tile: no cluster the rule did not weigh


def test_unaligned_rows_of_a_k_major_b_take_fill_widths_in_a_cluster_that_adds_no_wave():
    """tile_rules.UNALIGNED_FILL_WIDTHS: x @ w.t() whose rows are not 128-byte aligned weighs 128-row tiles 144-240 wide
    and 192-row ones 144 and 160 wide, each at its request-model speed in the cluster unaligned_cluster gives it, and
    only where that cluster adds no wave; a row-major B, a batch, fewer than FILL_WIDTH_MIN_STEPS k-steps, or a
    configuration without fill widths (fp8's) keep the tiles before."""
    from skc.blocks import MatmulConfig, tile_rules

    def picked(M, N, K, b_k_major=True, unaligned=(True, True), **fields):
        c = MatmulConfig.for_problem(M, N, K, "bf16", True, b_k_major, multiprocessors=132, unaligned=unaligned,
                                     **fields)
        return c.tile_m, c.tile_n, c.cluster_m, c.cluster_n

    # the model reproduces UNALIGNED_TILE_SPEEDS' table within 0.035 in the clusters unaligned_cluster gives
    for (tile_m, tile_n), speed in tile_rules.UNALIGNED_TILE_SPEEDS.items():
        cluster = tile_rules.unaligned_cluster(4096, 4096, tile_m, tile_n, 132)
        assert abs(tile_rules.unaligned_speed(tile_m, tile_n, cluster) - speed) <= 0.035
    # measured (thirty-eighth session): 6264 x 528 x 4648 0.88 of torch.matmul on 192 x 144 (132 tiles, one wave)
    # against 0.70 on 192 x 192 (99); 7424 x 776 x 1392 0.86 on 128 x 208 against 0.79 on 128 x 256
    assert picked(6264, 528, 4648) == (192, 144, 1, 2)
    assert picked(7424, 776, 1392) == (128, 208, 2, 1)
    assert picked(5638, 1352, 3992) == (192, 192, 1, 2)   # (192 x 176 measured no faster: not weighed)
    # 128 x 240 would take 35 rows of 15 tiles, 4 waves; in clusters along M 18 rows of 15, 5 waves: unweighed
    assert (128, 240) not in tile_rules.unaligned_fill_speeds(4476, 3368, 132)
    assert picked(4476, 3368, 1384)[:2] != (128, 240)
    # the second choice of cluster where the first would add a wave: 128 x 144 along N, 192 x 160 along M
    assert picked(371, 5936, 3128) == (128, 144, 1, 2)
    assert picked(9210, 792, 6760) == (192, 160, 2, 1)
    # 192-row tiles at 0.97 of the model (without it 192 x 144 would win here)
    assert picked(7917, 3096, 3400) == (128, 224, 2, 1)
    # the bounds
    def not_a_fill_width(tile):
        return tile[:2] not in tile_rules.UNALIGNED_FILL_WIDTHS

    assert not_a_fill_width(picked(7424, 776, 1392, b_k_major=False))   # a row-major B
    assert not_a_fill_width(picked(7424, 776, 11 * 64 + 8))              # 11 k-steps
    assert picked(7424, 776, 12 * 64 + 8)[:2] == (128, 208)              # 12
    assert not_a_fill_width(picked(2 * 6264, 528, 4648, batch=2))        # a batch in one launch
    assert tile_rules.unaligned_fill_speeds(120, 5936, 132) == {}            # one row of tiles: no cluster
    assert not_a_fill_width(tile_rules.tile_shape(6264, 528, 4648, 132, 1, True, True, fill_widths=False))
    assert tile_rules.tile_shape(6264, 528, 4648, 132, 1, True, True, fill_widths=True)[:2] == (192, 144)
    # a caller who names a cluster, a split, a schedule or a loader gets no cluster from the rule, which then weighs
    # no fill width (and the table as it is)
    assert picked(7424, 776, 1392, cluster_m=1)[:2] == (128, 256)
    assert picked(7188, 3344, 4309, cluster_m=1) == (128, 192, 1, 1)


def test_unaligned_tiles_go_at_their_speed_in_the_cluster_they_get():
    """tile_rules.unaligned_tile_speeds: UNALIGNED_TILE_SPEEDS' speed holds in the table's cluster (unaligned_cluster's
    first choice); a tile no cluster fits goes at UNCLUSTERED_SPEED of it, one in the other direction at the request
    model's ratio, one whose cluster adds a wave slower by that wave. 2880 x 4160 x 2824 `x @ w.t()`: 128 x 256 tiles
    (3 waves; in clusters either way 4) no longer win: 192 x 160 in clusters along N (measured 1.07 of torch.matmul
    against 0.79, thirty-eighth session). UNALIGNED_CLUSTER_SPEEDS False: the table as it is."""
    from skc.blocks import MatmulConfig, tile_rules

    table = tile_rules.UNALIGNED_TILE_SPEEDS
    speeds = tile_rules.unaligned_tile_speeds(3000, 3000, 132)   # (16 x 16 192-row tiles: every first choice fits)
    assert speeds[192, 192] == pytest.approx(table[192, 192])
    speeds = tile_rules.unaligned_tile_speeds(2880, 4160, 132)
    assert tile_rules.unaligned_cluster(2880, 4160, 128, 256, 132) == {}
    assert speeds[128, 256] == pytest.approx(table[128, 256] * tile_rules.UNCLUSTERED_SPEED)
    # 787 x 4504: 128 x 256 tiles along N (along M would add a wave): the model's ratio of the two directions
    speeds = tile_rules.unaligned_tile_speeds(787, 4504, 132)
    assert speeds[128, 256] == pytest.approx(table[128, 256] * (128 * 256 / (64 + 256)) / (128 * 256 / (128 + 128)))
    # 7000 x 3000 on 128 x 256: 5 waves unclustered, 6 in clusters along M (kept by unaligned_cluster): 5/6 the speed
    assert tile_rules.unaligned_cluster(7000, 3000, 128, 256, 132) == {"cluster_m": 2}
    assert tile_rules.unaligned_tile_speeds(7000, 3000, 132)[128, 256] == pytest.approx(table[128, 256] * 5 / 6)
    pick = MatmulConfig.for_problem(2880, 4160, 2824, "bf16", True, True, multiprocessors=132, unaligned=(True, True))
    assert (pick.tile_m, pick.tile_n, pick.cluster_m, pick.cluster_n) == (192, 160, 1, 2)
    pick = MatmulConfig.for_problem(639, 6432, 7424, multiprocessors=132, unaligned=(False, True))
    assert (pick.tile_m, pick.tile_n, pick.cluster_m, pick.cluster_n) == (128, 256, 1, 2)
    # a batch in one launch: each matrix's rows (M / batch) and the batch's waves count (as one matrix of 2M rows, or
    # one matrix of M, 128 x 256 would win)
    pick = MatmulConfig.for_problem(2 * 1313, 4192, 3016, "bf16", True, True, multiprocessors=132,
                                    unaligned=(True, True), batch=2)
    assert (pick.tile_m, pick.tile_n, pick.cluster_m, pick.cluster_n) == (128, 192, 2, 1)
    pick = MatmulConfig.for_problem(2 * 1625, 1144, 1224, "bf16", True, False, multiprocessors=132,
                                    unaligned=(True, True), batch=2)
    assert (pick.tile_m, pick.tile_n, pick.cluster_m, pick.cluster_n) == (192, 192, 1, 2)
    # no pair of SMs: no cluster, and nothing divides by the pairs
    assert tile_rules.unaligned_cluster(787, 4504, 128, 256, 1) == {}
    assert MatmulConfig.for_problem(191, 456, 185, "bf16", True, False, multiprocessors=1,
                                    unaligned=(False, True)).cluster == 1


def test_without_cluster_speeds_the_unaligned_table_stands(monkeypatch):
    """UNALIGNED_CLUSTER_SPEEDS False: the table's speeds whatever the cluster (the rule before the thirty-eighth
    session), so 2880 x 4160 x 2824 `x @ w.t()` takes 128 x 256 unclustered again."""
    from skc.blocks import MatmulConfig, tile_rules

    monkeypatch.setattr(tile_rules, "UNALIGNED_CLUSTER_SPEEDS", False)
    assert tile_rules.unaligned_tile_speeds(2880, 4160, 132) is tile_rules.UNALIGNED_TILE_SPEEDS
    pick = MatmulConfig.for_problem(2880, 4160, 2824, "bf16", True, True, multiprocessors=132, unaligned=(True, True))
    assert (pick.tile_m, pick.tile_n, pick.cluster) == (128, 256, 1)


@pytest.mark.parametrize("shifted", ["a", "b", "out", "a-padded-rows"])
def test_torch_operands_at_misaligned_addresses_run_through_aligned_copies(shifted):
    """A torch view one element into its rows (x[:, 1:], rows still 16-byte aligned) starts at no 16-byte boundary,
    which no tensor map addresses: the launch was refused ("TMA needs the tensor's address to be 16-byte aligned")
    where torch.matmul runs it. Such an operand is copied into new memory of its strides (the plan's geometry) and
    the GEMM runs there (out through a copy written back); cupy's and skc's arrays are still refused (above)."""
    from helpers import fake_host_paths

    with fake_host_paths() as (driver, torch):
        driver.inspect = matmul_arguments
        strides = (136, 1) if shifted == "a-padded-rows" else None
        operands = {"a": torch.Tensor((256, 128), strides=strides), "b": torch.Tensor((128, 512)),
                    "out": torch.Tensor((256, 512))}
        name = shifted.split("-")[0]
        x = operands[name]
        skc.blocks.matmul(**operands)   # (the plan, at aligned addresses)
        operands[name] = torch.Tensor(x.shape, x.dtype, x.stride(), x.data_ptr() + 2)
        for _ in range(2):
            assert skc.blocks.matmul(**operands) is operands["out"]
            maps = launched(driver.launches[-1])[0]
            assert all(address % 16 == 0 for address, *_ in maps)
            assert maps[("a", "b", "out").index(name)][0] != operands[name].data_ptr()
        assert len(driver.launches) == 3


def test_split_k_writes_an_out_off_16_bytes_in_place(fake):
    """Split-K's last share stores out through a pointer, so an out 8 bytes off a 16-byte boundary (out[1] of a
    batch of 146 x 90 bf16 matrices, run per matrix) is passed as it is: GemmPlan asked it to be aligned as if a map
    stored it, and ran each such matrix through aligned copies of a, b and out (blocks_fuzz seed 5001 case 834's
    path on 132 SMs, where the CPU interpreter's 4 SMs chose an unsplit GEMM)."""
    with fake_cuda.torch_installed() as torch:
        _with_kept_path(torch)
        a = torch.Tensor((4, 6199, 146)).transpose(1, 2)
        b, c, out = torch.Tensor((90, 6199)).T, torch.Tensor((4, 146, 90)), torch.Tensor((4, 146, 90))
        fake.inspect = lambda arguments: [ctypes.c_uint64.from_address(p).value
                                          for p in fake_cuda.argument_pointers(arguments, 3)]
        skc.blocks.matmul(a, b, out=out, c=c, alpha=2.0, beta=0.5)
        (plan,) = [p for p in matmul_host._PLANS.values() if isinstance(p, matmul_host._PaddedRows)]
        assert plan.gemm.cfg.split_k > 1 and out[1].data_ptr() % 16
        gemms = [launch["seen"] for launch in fake.launches if launch["grid"] == (plan.gemm.grid, 1, 1)]
        assert [seen[2] for seen in gemms] == [out[i].data_ptr() for i in range(4)]


@pytest.mark.parametrize("given", [0, "default"])
def test_aligned_copies_around_a_launch_on_the_default_stream_run_on_that_stream(fake, given):
    """An out off a 16-byte boundary runs through aligned copies made and written back on the launch's stream. For
    the default stream (stream=0, or torch's default stream) that is torch's default stream: the copies went to
    torch.cuda.ExternalStream(0), which torch makes a new stream of its pool, so on the GPU the copy of out was
    written back before the GEMM had filled it (blocks_fuzz seed 5001 case 834: rows left as the poison)."""
    with fake_cuda.torch_installed() as torch:
        _with_kept_path(torch)
        streams = []   # torch's current stream at each copy made or written back
        tensor, clone = torch.Tensor, torch.Tensor.clone

        def recorded_clone(self):
            streams.append(torch.cuda.current_stream().cuda_stream)
            return clone(self)

        def recorded_setitem(self, index, value):
            streams.append(torch.cuda.current_stream().cuda_stream)

        tensor.clone, tensor.__setitem__ = recorded_clone, recorded_setitem
        a, b = torch.Tensor((256, 256)), torch.Tensor((256, 256))
        out = torch.Tensor((256, 256), torch.bfloat16, None, torch.Tensor((257, 256)).data_ptr() + 8)
        stream = 0 if given == 0 else torch.cuda.default_stream()
        skc.blocks.matmul(a, b, out=out, stream=stream)
        assert streams and set(streams) == {0}
        assert fake.launches and {launch["stream"] for launch in fake.launches} == {0}


@pytest.mark.parametrize("current, given", [(0, 0x5EED), (0x5EED, 0), (0x5EED, "default"), (0x5EED, None)])
def test_what_matmul_makes_belongs_to_the_launchs_stream(fake, current, given):
    """Every tensor a call makes (an out it returns, _EmptyProblem's zero operands of a K of 0, a batch's out) is made
    in the launch's stream, whose pool torch's caching allocator takes it from and where its fill runs: _EmptyProblem
    made its zeros on torch's current stream while the GEMM reading them ran on `stream=`, so the fill raced the
    GEMM, and the zeros, freed at return to the current stream's pool, could be handed out again while it ran."""
    streams = [current]
    with fake_cuda.torch_installed(streams) as torch:
        _with_kept_path(torch)
        stream = torch.cuda.default_stream() if given == "default" else given
        launch_stream = current if given is None else 0 if given == "default" else given
        T = torch.Tensor
        calls = [((T((256, 256)), T((256, 256))), {}),                                   # GemmPlan's out
                 ((T((256, 0)), T((0, 256))), {}),                                       # K of 0: zeros 8 deep
                 ((T((4, 256, 256)), T((256, 256))), {}),                                # a folded batch
                 ((T((4, 6199, 146)).transpose(1, 2), T((90, 6199)).T), {"c": T((4, 146, 90)), "beta": 0.5}),
                 ((T((4, 256, 256)), T((4, 256, 256))), {})]                             # one launch, 3-D maps
        for (a, b), options in calls:
            del torch.made[:], fake.launches[:]
            skc.blocks.matmul(a, b, stream=stream, **options)
            assert fake.launches and {launch["stream"] for launch in fake.launches} == {launch_stream}
            assert torch.made and {x.made_on for x in torch.made} == {launch_stream}, (a.shape, b.shape)
        assert streams == [current]


@pytest.mark.parametrize("current, given", [(0, 0x5EED), (0x5EED, 0)])
def test_what_a_scaled_matmul_makes_belongs_to_the_launchs_stream(fake, current, given):
    """As matmul's: an fp8 call's out and _EmptyProduct's zero operands and scales of a K of 0 (made on torch's
    current stream before, filled there while the GEMM reading them ran on `stream=`) are the launch's stream's."""
    from skc.blocks import fp8_host

    fp8_host._PLANS.clear()
    fake.inspect = None
    streams = [current]
    with fake_cuda.torch_installed(streams) as torch:
        _with_kept_path(torch)
        f8, f32 = torch.float8_e4m3fn, torch.float32
        for K in (128, 0):
            a, b = torch.Tensor((256, K), f8), torch.Tensor((512, K), f8).T
            del torch.made[:], fake.launches[:]
            skc.blocks.matmul(a, b, scale_a=torch.Tensor((1,), f32), scale_b=torch.Tensor((1,), f32), stream=given)
            assert fake.launches and {launch["stream"] for launch in fake.launches} == {given}
            assert len(torch.made) == (1 if K else 4) and {x.made_on for x in torch.made} == {given}
    fp8_host._PLANS.clear()


def test_buffers_of_a_captured_launch_are_made_in_its_stream():
    """Under a CUDA graph's capture a plan's split-K or stream-K buffers are new at each call, zero-filled by torch:
    in the launch's stream (which may be another captured stream than torch's current one), whose kernel reads
    them."""
    from skc.blocks import host_plans

    streams = [0x5EED]
    with fake_cuda.installed(), fake_cuda.torch_installed(streams) as torch:
        _with_kept_path(torch)
        torch.cuda.is_current_stream_capturing = lambda: True
        buffers = host_plans.StreamBuffers(lambda a, zeros: (zeros(a, 64, "float32"), zeros(a, 4, "int32")))
        made = buffers(torch.Tensor((256, 256)), 0xCAFE)
        assert [x.made_on for x in made] == [0xCAFE, 0xCAFE] and not buffers.sets and streams == [0x5EED]
