"""conv2d as the GEMM with the im2col loader swapped in: the tile IR of the composition, its PTX through
ptxas, the host's errors, and whole convolutions in the interpreter against numpy, exactly."""
import ctypes
import re
from dataclasses import replace

import numpy as np
import pytest

import skc
from skc.backends import ptx_tools
from skc.blocks import ConvShape, conv2d, matmul_kernel
from skc.blocks.conv import compile_arguments

RNG = np.random.default_rng(5)


@pytest.fixture
def interpreter(monkeypatch):
    from skc.runtime import devices

    monkeypatch.setattr(devices, "_selected", [devices.Device("interpreter")])


def reference(x, w, stride, pad, dilation):
    """Direct convolution in float64: x NHWC, w KRSC; pad an int or an (h, w) pair."""
    N, H, W, C = x.shape
    K, R, S, _ = w.shape
    pad_h, pad_w = (pad, pad) if isinstance(pad, int) else pad
    P = (H + 2 * pad_h - dilation * (R - 1) - 1) // stride + 1
    Q = (W + 2 * pad_w - dilation * (S - 1) - 1) // stride + 1
    padded = np.pad(x.astype(np.float64), ((0, 0), (pad_h, pad_h + stride * R), (pad_w, pad_w + stride * S), (0, 0)))
    y = np.zeros((N, P, Q, K))
    for r in range(R):
        for s in range(S):
            window = padded[:, r * dilation:r * dilation + stride * P:stride,
                            s * dilation:s * dilation + stride * Q:stride, :]
            y += window @ w[:, r, s, :].astype(np.float64).T
    return y


def launched_config(x, w, config):
    """The configuration of the plan conv2d made for x and w with `config` (its key: device, x's and w's facts, ...,
    the config last)."""
    from skc.blocks import conv
    from skc.blocks.host_plans import facts

    (found,) = {gemm.cfg for key, (_, gemm) in conv._PLANS.items() if key[1:3] == (facts(x), facts(w))
                and key[-1] == config}
    return found


def small_integers(shape):
    return RNG.integers(-2, 3, shape).astype(np.float16)


@pytest.mark.parametrize("N, H, W, C, K, R, stride, pad, dilation", [
    (1, 6, 5, 16, 24, 3, 1, 1, 1),      # 3x3 same padding, odd width, C below a channel block
    (2, 7, 9, 8, 16, 3, 2, 1, 1),       # stride 2, C = 8, rows of output pixels split across tiles
    (1, 5, 6, 72, 8, 1, 1, 0, 1),       # 1x1, two channel blocks (the second one partly past C)
    (1, 9, 7, 16, 8, 3, 1, 2, 2),       # dilation 2
    (2, 10, 9, 16, 136, 3, 1, 1, 1),    # 2 x 2 output tiles: M and K past one tile, tiles spanning images
    (2, 8, 7, 16, 16, 3, 2, 1, 1),      # stride 2, H != W: the bounding box's upper corners differ (-2, -1)
    (1, 7, 8, 16, 16, 3, 1, (1, 0), 1),  # asymmetric padding: lower corner (-1, 0)
])
def test_conv2d_in_the_interpreter_is_exact(interpreter, N, H, W, C, K, R, stride, pad, dilation):
    x, w = small_integers((N, H, W, C)), small_integers((K, R, R, C))
    y = conv2d(x, w, stride=stride, padding=pad, dilation=dilation)
    np.testing.assert_array_equal(y.astype(np.float64), reference(x, w, stride, pad, dilation))


@pytest.mark.parametrize("R", [1, 3])
def test_conv2d_takes_a_config_chosen_for_a_gemm_of_fewer_rows(interpreter, R):
    """A GEMM config picked for 16 rows (a_rows 16) given to conv2d: every output pixel's row is loaded (the
    pointwise conv's TMA loader), and the im2col loader takes it too."""
    from skc.blocks import MatmulConfig

    config = MatmulConfig.for_problem(16, 16, 16, "f16", b_k_major=True, multiprocessors=4)
    assert config.a_rows == 16
    x, w = small_integers((2, 8, 8, 16)), small_integers((16, R, R, 16))
    y = conv2d(x, w, padding=R // 2, config=config)
    np.testing.assert_array_equal(np.asarray(y, np.float64), reference(x, w, 1, R // 2, 1))


def test_conv2d_bias_and_activation_use_the_gemm_epilogue(interpreter):
    x, w = small_integers((1, 5, 5, 16)), small_integers((16, 3, 3, 16))
    bias = RNG.integers(-4, 5, 16).astype(np.float16)
    y = conv2d(x, w, bias=bias, padding=1, activation="relu")
    np.testing.assert_array_equal(y.astype(np.float64), np.maximum(reference(x, w, 1, 1, 1) + bias, 0))


def test_conv2d_takes_channels_last_torch_tensors_as_they_are(interpreter):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(small_integers((2, 16, 7, 6)).astype(np.float32)).to(torch.bfloat16)
    w = torch.from_numpy(small_integers((24, 16, 3, 3)).astype(np.float32)).to(torch.bfloat16)
    x, w = x.to(memory_format=torch.channels_last), w.to(memory_format=torch.channels_last)
    y = conv2d(x, w, stride=2, padding=1)
    assert y.shape == (2, 24, 4, 3) and y.is_contiguous(memory_format=torch.channels_last)
    expected = torch.nn.functional.conv2d(x.float(), w.float(), stride=2, padding=1)
    assert torch.equal(y.float(), expected)
    with pytest.raises(skc.LaunchError, match=r"channels_last memory format, contiguous \(found strides "
                                              r"\(672, 42, 6, 1\)\): pass x.contiguous\(memory_format"):
        conv2d(x.contiguous(), w)


@pytest.mark.parametrize("loader", ["tma", "vector"])
def test_a_torch_x_off_16_bytes_in_the_interpreter(interpreter, loader):
    """A channels_last x sliced two bytes into its buffer: the same answer as torch's with either loader (the
    vector loader refused it here, and the GPU refused both: the copies are the GPU's and the interpreter's alike)."""
    torch = pytest.importorskip("torch")
    config = skc.blocks.MatmulConfig(tile_m=128, tile_n=128, consumers=2, stages=3, loader=loader)
    buffer = torch.from_numpy(small_integers(1 + 16 * 6 * 6).astype(np.float32)).to(torch.bfloat16)
    x = buffer[1:].view(1, 6, 6, 16).permute(0, 3, 1, 2)
    w = torch.from_numpy(small_integers((16, 16, 3, 3)).astype(np.float32)).to(torch.bfloat16)
    w = w.to(memory_format=torch.channels_last)
    assert x.data_ptr() % 16 and x.is_contiguous(memory_format=torch.channels_last)
    y = conv2d(x, w, padding=1, config=config)
    assert torch.equal(y.float(), torch.nn.functional.conv2d(x.float(), w.float(), padding=1))


@pytest.mark.parametrize("C, stride, pad", [(3, 2, 1), (12, 1, 1), (1, 1, 0)])
def test_channels_no_multiple_of_8_are_padded(interpreter, C, stride, pad):
    """An RGB input's 3 channels (and 12, and 1): x and w copied with zero channels to the next multiple of 8."""
    x, w = small_integers((2, 7, 6, C)), small_integers((16, 3, 3, C))
    y = conv2d(x, w, stride=stride, padding=pad)
    np.testing.assert_array_equal(y.astype(np.float64), reference(x, w, stride, pad, 1))


def test_torch_channels_no_multiple_of_8(interpreter):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(small_integers((2, 3, 8, 8)).astype(np.float32)).to(torch.bfloat16)
    w = torch.from_numpy(small_integers((16, 3, 3, 3)).astype(np.float32)).to(torch.bfloat16)
    x, w = x.to(memory_format=torch.channels_last), w.to(memory_format=torch.channels_last)
    y = conv2d(x, w, padding=1, activation="relu")
    assert y.shape == (2, 16, 8, 8) and y.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(y.float(), torch.relu(torch.nn.functional.conv2d(x.float(), w.float(), padding=1)))


def test_conv2d_errors_name_the_fix(interpreter):
    with pytest.raises(skc.LaunchError, match="C must be a multiple of 8, found 12"):   # skc's own arrays: no copy
        conv2d(skc.to_device(np.zeros((1, 4, 4, 12), np.float16)), skc.to_device(np.zeros((8, 3, 3, 12), np.float16)))
    with pytest.raises(skc.LaunchError, match="x has 16 channels but the filters take 8"):
        conv2d(np.zeros((1, 4, 4, 16), np.float16), np.zeros((8, 3, 3, 8), np.float16))
    with pytest.raises(skc.LaunchError, match="conv2d's 'w' must have 4 dimensions"):
        conv2d(np.zeros((1, 4, 4, 16), np.float16), np.zeros((8, 9, 16), np.float16))
    with pytest.raises(skc.LaunchError, match=r"bias has shape \(4,\), expected \(8,\)"):   # read past its end
        conv2d(np.zeros((1, 4, 4, 16), np.float16), np.zeros((8, 3, 3, 16), np.float16), bias=np.zeros(4, np.float16))


# -- where TMA im2col cannot reach: the vector im2col loader, same interface -----------------------------------------
@pytest.mark.parametrize("H, stride, pad, dilation", [
    (262, 1, 0, 130),      # filter taps 260 pixels apart: past TMA im2col's 255-pixel offsets
    (4, 130, 129, 1),      # padding 129: the bounding box's lower corner outside [-128, 127]
])
def test_what_tma_im2col_cannot_reach_loads_with_vectors(interpreter, H, stride, pad, dilation):
    conv = ConvShape(1, H, H, 16, 8, 3, 3, (stride, stride), (pad, pad), (dilation, dilation))
    assert not conv.tma_reaches() and ConvShape(1, 9, 9, 16, 8, 3, 3).tma_reaches()
    x, w = small_integers((1, H, H, 16)), small_integers((8, 3, 3, 16))
    y = conv2d(x, w, stride=stride, padding=pad, dilation=dilation)
    np.testing.assert_array_equal(y.astype(np.float64), reference(x, w, stride, pad, dilation))


@pytest.mark.parametrize("N, H, W, C, K, R, stride, pad, dilation", [
    (2, 7, 9, 8, 16, 3, 2, 1, 1),       # stride 2, C = 8, rows of output pixels split across tiles
    (1, 5, 6, 72, 8, 1, 1, 0, 1),       # 1x1: two channel blocks, the second one partly past C
    (1, 9, 7, 16, 8, 3, 1, 2, 2),       # dilation 2
])
def test_the_vector_im2col_loader_when_the_config_asks(interpreter, N, H, W, C, K, R, stride, pad, dilation):
    x, w = small_integers((N, H, W, C)), small_integers((K, R, R, C))
    config = skc.blocks.MatmulConfig(tile_m=128, tile_n=128, consumers=2, stages=3, loader="vector")
    y = conv2d(x, w, stride=stride, padding=pad, dilation=dilation, config=config)
    np.testing.assert_array_equal(y.astype(np.float64), reference(x, w, stride, pad, dilation))
    assert launched_config(x, w, config).loader.vector


@pytest.mark.parametrize("fields", [dict(store="direct"), dict(loader="vector", vector_width=4),
                                    dict(loader="vector", store="direct")])
def test_a_config_of_direct_stores_or_narrower_loads_keeps_conv2ds_own(interpreter, fields):
    """conv2d stores through its output's tensor map and loads through its im2col loaders: a config's store and
    vector_width are the GEMM's (they failed inside the compiler, or as a config error naming the ConvShape)."""
    x, w = small_integers((1, 7, 9, 16)), small_integers((16, 3, 3, 16))
    config = skc.blocks.MatmulConfig(tile_m=128, tile_n=128, consumers=2, stages=3, **fields)
    y = conv2d(x, w, padding=1, config=config)
    np.testing.assert_array_equal(y.astype(np.float64), reference(x, w, 1, 1, 1))
    assert launched_config(x, w, config).store == "tma"


def test_the_vector_im2col_composition_assembles():
    conv = ConvShape(1, 262, 262, 64, 128, 3, 3, (1, 1), (0, 0), (130, 130))
    arguments = compile_arguments("sm_90a", conv)
    assert arguments["cfg"].loader.vector and arguments["a"] == skc.Ptr[skc.bf16]
    ptx = matmul_kernel.compile(**arguments, target="sm_90a").asm("ptx")
    assert "im2col" not in ptx and "ld.global.v4" in ptx and "wgmma.mma_async" in ptx
    cubin, log = ptx_tools.link_ptx(ptx, "sm_90a", "conv2d_vector")
    assert cubin and ptx_tools.parse_resources(log)


@pytest.mark.parametrize("target", ["gfx942", "sm_80"])
def test_compile_arguments_for_a_target_without_tma_says_conv2d_needs_it(target):
    """`skc compile examples/conv2d.py --target gfx942` ended in the GEMM refusing a Hopper config, hinting to let
    skc.blocks.matmul pick one; conv2d() itself says it needs TMA."""
    conv = ConvShape(2, 14, 14, 64, 128, 3, 3, (1, 1), (1, 1), (1, 1))
    with pytest.raises(skc.SkcError, match=f"conv2d loads with TMA im2col copies \\(sm_90a\\); {target} has no TMA"):
        compile_arguments(target, conv)


def test_the_composition_swaps_only_the_loader_and_assembles():
    conv = ConvShape(2, 14, 14, 64, 128, 3, 3, (1, 1), (1, 1), (1, 1))
    k = matmul_kernel.compile(**compile_arguments("sm_90a", conv), target="sm_90a")
    tile = k.ir("tile")
    assert tile.count("tma.load_im2col") == 1 and "wgmma.mma" in tile
    ptx = k.asm("ptx")
    assert "cp.async.bulk.tensor.4d.shared::cluster.global.im2col" in ptx
    assert "cp.async.bulk.tensor.3d.shared::cluster.global.tile" in ptx   # the filter: a plain tiled copy
    cubin, log = ptx_tools.link_ptx(ptx, "sm_90a", "conv2d")
    assert cubin and ptx_tools.parse_resources(log)


@pytest.mark.parametrize("C, H, K, R, tiles", [(512, 7, 512, 3, (192, 128)), (64, 56, 256, 1, (128, 64))])
def test_the_chosen_tiles_assemble_without_spills(C, H, K, R, tiles):
    """What conv2d picks at batch 128 beyond the 128-row tiles: 192 x 128 (three consumer warpgroups, 160 registers
    each) and the one-k-step pointwise tiles."""
    conv = ConvShape(128, H, H, C, K, R, R, (1, 1), (R // 2, R // 2), (1, 1))
    arguments = compile_arguments("sm_90a", conv)
    assert (arguments["cfg"].tile_m, arguments["cfg"].tile_n) == tiles
    ptx = matmul_kernel.compile(**arguments, target="sm_90a").asm("ptx")
    assert re.search(rf"setmaxnreg.inc.sync.aligned.u32\s+{arguments['cfg'].consumer_registers};", ptx)
    _, log = ptx_tools.link_ptx(ptx, "sm_90a", "conv2d")
    (resources,) = ptx_tools.parse_resources(log).values()
    assert resources.spill_stores == 0 and resources.spill_loads == 0


@pytest.mark.parametrize("padding, R, dilation, same_as", [("same", 3, 1, 1), ("same", 5, 1, 2), ("same", 3, 2, 2),
                                                             ("valid", 3, 1, 0)])
def test_torch_padding_words_in_the_interpreter(interpreter, padding, R, dilation, same_as):
    x, w = small_integers((1, 9, 8, 16)), small_integers((16, R, R, 16))
    y = conv2d(x, w, padding=padding, dilation=dilation)
    np.testing.assert_array_equal(y.astype(np.float64), reference(x, w, 1, same_as, dilation))
    if padding == "same":
        assert y.shape[1:3] == x.shape[1:3]


@pytest.mark.parametrize("arguments, message", [
    (dict(stride=0), "stride must be an int or an \\(h, w\\) pair of ints, each at least 1, found 0"),
    (dict(stride=(1, 2, 3)), "stride must be"),
    (dict(padding=-1), "padding must be an int .* at least 0, found -1"),
    (dict(padding=1.5), "padding must be"),
    (dict(dilation=0), "dilation must be .* at least 1"),
    (dict(padding="full"), "'valid' or 'same', found 'full'"),
    (dict(padding="same", stride=2), "padding='same' needs stride 1"),
    (dict(padding="same", dilation=(1, 3), w=(8, 2, 2, 8)), "pads one side more than the other"),
])
def test_conv2d_refuses_what_torch_refuses(interpreter, arguments, message):
    arguments = dict(arguments)
    x, w = small_integers((1, 6, 6, 8)), small_integers(arguments.pop("w", (8, 3, 3, 8)))
    with pytest.raises(skc.LaunchError, match=message):
        conv2d(x, w, **arguments)


def test_the_example_runs_in_the_interpreter(interpreter):
    from helpers import load_example

    summary = load_example("conv2d").main()
    assert summary.startswith("conv2d 2x9x7x32 -> 40 bf16") and "3x3/s2" in summary


# -- the host path on a GPU, with a fake driver that records what reaches cuLaunchKernel ---------------------------
@pytest.fixture
def fake(monkeypatch):
    import struct

    from runtime.test_launch_matmul_host import matmul_arguments

    from skc.blocks import conv
    from skc.runtime import fake_cuda

    conv._PLANS.clear()
    with fake_cuda.installed() as driver:
        def encode_im2col(data_type, rank, pointer, dims, strides, lower, upper, channels, pixels, *rest):
            driver.encodes += 1
            words = [pointer, rank, *dims, *strides, *(v & 0xFFFF for v in (*lower, *upper)), channels, pixels]
            return (0, fake_cuda._Encoded(struct.pack(f"<{len(words)}Q", *words)))

        monkeypatch.setattr(driver, "cuTensorMapEncodeIm2col", encode_im2col, raising=False)
        driver.inspect = matmul_arguments
        yield driver
    conv._PLANS.clear()


def test_conv2d_calls_take_a_ready_plan_and_encode_each_address_once(fake):
    from skc.blocks import conv
    from skc.runtime.fake_cuda import FakeTensor

    x, w, out = FakeTensor((2, 14, 14, 64)), FakeTensor((128, 3, 3, 64)), FakeTensor((2, 14, 14, 128))
    assert conv2d(x, w, padding=1, out=out) is out
    (launch,) = fake.launches
    maps, mnk, (c, bias), _ = launch["seen"]
    assert maps[0] == (x.address, 4, 64, 14)  # x's im2col map: rank 4, dims c, w, (h, n)
    assert maps[1] == (w.address, 3, 64, 9) and maps[2] == (out.address, 2, 128, 2 * 14 * 14)
    assert mnk == (2 * 14 * 14, 128, 9 * 64) and c == bias == out.address
    plans, encodes = len(conv._PLANS), fake.encodes
    for _ in range(4):
        conv2d(x, w, padding=1, out=out, stream=5)
    assert (len(conv._PLANS), fake.encodes, len(fake.launches)) == (plans, encodes, 5)
    assert fake.launches[-1]["stream"] == 5
    x2 = FakeTensor((2, 14, 14, 64))  # same facts, a new address: one new im2col encoding, the same plan
    conv2d(x2, w, padding=1, out=out)
    conv2d(x2, w, padding=1, out=out)
    assert fake.encodes == encodes + 1 and len(conv._PLANS) == plans
    assert fake.launches[-1]["seen"][0][0][0] == x2.address
    conv2d(x, w, padding=1, out=out)
    assert fake.encodes == encodes + 1 and fake.launches[-1]["seen"][0][0][0] == x.address
    with pytest.raises(skc.LaunchError, match="16-byte aligned"):
        conv2d(FakeTensor((2, 14, 14, 64), address=x.address + 8), w, padding=1, out=out)


def test_the_alignment_check_asks_torch_for_data_ptr_first():
    from skc.blocks.conv import _aligned

    class RequiringGrad:   # torch refuses __cuda_array_interface__ for tensors that require grad
        def data_ptr(self):
            return 0x10000

        @property
        def __cuda_array_interface__(self):
            raise RuntimeError("Can't get __cuda_array_interface__ on Variable that requires grad")

    x = RequiringGrad()
    assert _aligned(x, "x") is x


def test_the_vector_loader_refuses_misaligned_arrays_of_any_framework(fake):
    """The vector loader takes pointers, so no tensor map checks their alignment: conv2d does, for torch tensors,
    skc arrays and arrays exporting __cuda_array_interface__ (cupy's; FakeTensor is one)."""
    from skc.runtime.fake_cuda import FakeTensor

    vector = skc.blocks.MatmulConfig(tile_m=128, tile_n=128, consumers=2, stages=3, loader="vector")
    x, w = FakeTensor((1, 9, 9, 16)), FakeTensor((32, 3, 3, 16))
    conv2d(x, w, padding=1, config=vector)
    assert len(fake.launches) == 1   # aligned: launched
    for shifted in ((FakeTensor((1, 9, 9, 16), address=x.address + 8), w), (x, FakeTensor((32, 3, 3, 16),
                                                                                            address=w.address + 4))):
        with pytest.raises(skc.LaunchError, match="not on a 16-byte boundary.*copy"):
            conv2d(*shifted, padding=1, config=vector)


@pytest.mark.parametrize("current, given", [(0, 0x5EED), (0x5EED, 0)])
def test_what_the_call_makes_belongs_to_the_launchs_stream(fake, current, given):
    """The out a call makes, and the copies of x and w padded to 8 channels, are made in the launch's stream
    (torch's caching allocator gives a stream's memory back to that stream's next tensors: an out made on torch's
    current stream and written by a launch on `stream=` could be handed out again while it ran)."""
    from skc.runtime import fake_cuda

    streams = [current]
    with fake_cuda.torch_installed(streams) as torch:
        torch.Tensor.is_cuda, torch.Tensor.requires_grad = True, False
        torch.cuda.is_current_stream_capturing = lambda: False
        nchw = lambda *nhwc: torch.Tensor(nhwc).permute(0, 3, 1, 2)   # (channels_last memory)
        for C in (64, 3):
            del torch.made[:], fake.launches[:]
            conv2d(nchw(2, 14, 14, C), nchw(128, 3, 3, C), padding=1, stream=given)
            assert fake.launches and {launch["stream"] for launch in fake.launches} == {given}
            assert len(torch.made) == (1 if C == 64 else 3) and {x.made_on for x in torch.made} == {given}
        assert streams == [current]


@pytest.mark.parametrize("loader", ["tma", "vector"])
@pytest.mark.parametrize("shifted, R", [("x", 3), ("w", 3), ("out", 3), ("x", 1)])
def test_torch_operands_off_16_bytes_run_through_aligned_copies(fake, loader, shifted, R):
    """A channels_last torch x (or w, or out) two bytes into its buffer (a slice of a larger one) ran in the
    interpreter (through GemmPlan's aligned copies) but was refused on a GPU, without its name, by the tensor map's
    own check ("TMA needs the tensor's address to be 16-byte aligned") when the plan encoded x's map; the vector
    loader refused it in both. Now the plan copies it into aligned memory of its strides, on the GPU as in the
    interpreter, from its first call on."""
    from skc.runtime import fake_cuda

    config = skc.blocks.MatmulConfig(tile_m=128, tile_n=128, consumers=2, stages=3, loader=loader)
    with fake_cuda.torch_installed() as torch:
        nchw = lambda *nhwc: torch.Tensor(nhwc).permute(0, 3, 1, 2)   # (channels_last memory)
        operands = {"x": nchw(2, 14, 14, 64), "w": nchw(128, R, R, 64), "out": nchw(2, 14, 14, 128)}
        given = operands[shifted]
        operands[shifted] = torch.Tensor(given.shape, given.dtype, given.stride(), given.data_ptr() + 2)
        for _ in range(2):
            assert conv2d(**operands, padding=R // 2, config=config) is operands["out"]
            if loader == "tma":
                maps = fake.launches[-1]["seen"][0]
                assert all(address % 16 == 0 for address, *_ in maps)
                assert maps[("x", "w", "out").index(shifted)][0] != operands[shifted].data_ptr()
        assert len(fake.launches) == 2


def test_arrays_of_other_frameworks_off_16_bytes_are_refused_by_name(fake):
    """An array the host cannot copy (cupy's: FakeTensor is one) starting off a 16-byte boundary is refused by its
    name, on the plan's first call and on a ready plan's."""
    from skc.runtime.fake_cuda import FakeTensor

    x, w = FakeTensor((2, 14, 14, 64)), FakeTensor((128, 3, 3, 64))
    with pytest.raises(skc.LaunchError, match=r"conv2d: x starts at address 0x[0-9a-f]+, not on a 16-byte boundary"):
        conv2d(FakeTensor((2, 14, 14, 64), address=x.address + 8), w, padding=1)
    conv2d(x, w, padding=1)
    with pytest.raises(skc.LaunchError, match=r"conv2d: out starts at address .*\.copy\(\) for a cupy array"):
        conv2d(x, w, padding=1, out=FakeTensor((2, 14, 14, 128), address=FakeTensor((1 << 16,)).address + 6))
    assert len(fake.launches) == 1


class BareArray:
    """Another framework's GPU array at its barest: a shape, a dtype and __cuda_array_interface__ (no reshape, .T,
    stride(), strides of its own or itemsize)."""

    def __init__(self, shape, strides=None, address=None):
        from skc.runtime.fake_cuda import FakeTensor

        self._memory = FakeTensor(shape, "float16", strides, address)
        self.shape, self.dtype = tuple(shape), np.dtype(np.float16)

    @property
    def __cuda_array_interface__(self):
        return self._memory.__cuda_array_interface__


@pytest.mark.parametrize("R", [1, 3])
def test_arrays_exporting_only_the_interface_are_viewed_as_it_says(fake, R):
    """A bare __cuda_array_interface__ array given to a pointwise conv raised AttributeError ('no attribute
    reshape', from host_plans.view); to a 3x3 one, 'no attribute stride' (from the tensor map). skc views it through
    its interface; the output it makes is an skc array, and an out given is returned as given."""
    x, w, out = BareArray((2, 8, 8, 64)), BareArray((64, R, R, 64)), BareArray((2, 8, 8, 64))
    assert conv2d(x, w, padding=R // 2, out=out) is out
    maps = fake.launches[-1]["seen"][0]
    assert maps[0][0] == x._memory.address and maps[2] == (out._memory.address, 2, 64, 2 * 8 * 8)
    made = conv2d(x, w, padding=R // 2)
    assert isinstance(made, skc.DeviceArray) and made.shape == (2, 8, 8, 64)
    assert fake.launches[-1]["seen"][0][2][0] == made.ptr


def test_an_array_exporting_only_dlpack_is_named():
    class DlpackOnly:
        shape, dtype = (1, 8, 8, 16), np.dtype(np.float16)

        def __dlpack__(self, stream=None):
            raise AssertionError("not read")

        def __dlpack_device__(self):
            return (2, 0)

    with pytest.raises(skc.LaunchError, match=r"conv2d: x is a DlpackOnly, which exports only DLPack.*"
                                              r"torch.from_dlpack\(x\)"):
        conv2d(DlpackOnly(), np.zeros((16, 3, 3, 16), np.float16))


def test_pointwise_convs_are_plain_gemms_over_the_nhwc_tensor(fake):
    from skc.runtime.fake_cuda import FakeTensor

    x, w = FakeTensor((4, 7, 7, 256)), FakeTensor((64, 1, 1, 256))
    out = conv2d(x, w)
    assert out.shape == (4, 7, 7, 64)
    maps, mnk, _, _ = fake.launches[-1]["seen"]
    # tiled maps of x as [N*H*W, C], the filter as [K, C] (K-major B) and out as [N*H*W, K]: no im2col
    assert maps == [(x.address, 2, 256, 4 * 49), (w.address, 2, 256, 64), (out.address, 2, 64, 4 * 49)]
    assert mnk == (4 * 49, 64, 256)
    conv2d(x, w, stride=2)  # strided: the im2col loader
    assert fake.launches[-1]["seen"][0][0][1] == 4


@pytest.mark.parametrize("R, loader", [(1, "tma"), (3, "vector")])
def test_arrays_of_other_frameworks_must_be_contiguous(fake, R, loader):
    """A strided cupy-like x or w was launched: a pointwise conv's 2-D map over x's address and the vector loader's
    pointer read it as dense NHWC (KRSC) memory, a wrong answer; torch tensors must be channels_last already."""
    from skc.runtime.fake_cuda import FakeTensor

    config = skc.blocks.MatmulConfig(tile_m=128, tile_n=128, consumers=2, stages=3, loader=loader)
    x, w = FakeTensor((1, 9, 9, 16)), FakeTensor((32, R, R, 16))
    pixels, filters = FakeTensor((1, 9, 18, 16)), FakeTensor((64, R, R, 16))   # (their memory: the views' spans)
    every_other_pixel = FakeTensor((1, 9, 9, 16), strides=(9 * 18 * 16, 18 * 16, 32, 1), address=pixels.address)
    every_other_filter = FakeTensor((32, R, R, 16), strides=(2 * R * R * 16, R * 16, 16, 1), address=filters.address)
    for shifted, name in (((every_other_pixel, w), "x"), ((x, every_other_filter), "w")):
        with pytest.raises(skc.LaunchError, match=rf"conv2d's '{name}' \(strides .*\) must be contiguous"):
            conv2d(*shifted, padding=R // 2, config=config)
    assert not fake.launches
    conv2d(x, w, padding=R // 2, config=config)
    assert len(fake.launches) == 1


@pytest.mark.parametrize("C, H, K, R, stride, tiles", [
    (64, 56, 64, 3, 1, (128, 64)),      # 3136 tiles of 128 x 64: 99 % of 24 waves
    (256, 14, 256, 3, 1, (128, 128)),   # 128 x 256 tiles would fill 196 / 264 SM-waves; 128 x 128: 392 / 396
    (1024, 14, 256, 1, 1, (128, 128)),
    (128, 28, 128, 3, 1, (128, 128)),
    (512, 7, 512, 3, 1, (192, 128)),    # 98 tiles of 128 x 256 or 196 of 128 x 128 leave SMs idle; 33 x 4 do not
    (64, 56, 256, 1, 1, (128, 64)),     # one k-step (C = 64): 64-wide tiles
    (128, 56, 256, 1, 1, (128, 256)),   # two k-steps: the widest tiles again
])
def test_tiles_are_the_largest_that_fill_the_waves(C, H, K, R, stride, tiles):
    from skc.blocks.conv import _config
    from skc.blocks.epilogue import EpilogueSpec

    conv = ConvShape(128, H, H, C, K, R, R, (stride, stride), (R // 2, R // 2), (1, 1))
    cfg = _config(conv, "bf16", skc.get_target("sm_90a"), 132, EpilogueSpec())
    assert (cfg.tile_m, cfg.tile_n) == tiles and cfg.b_k_major and cfg.cluster_m == 1
    assert cfg.consumers == cfg.tile_m // 64
    limit = skc.get_target("sm_90a").max_shared_bytes  # as many stages as fit (up to 8)
    assert cfg.shared_bytes() <= limit and (cfg.stages == 8 or replace(cfg, stages=cfg.stages + 1).shared_bytes() > limit)


@pytest.mark.parametrize("K, waits", [(64, {"0"}), (128, {"1"}), (192, {"0", "1"})])
def test_the_epilogue_waits_for_the_store_that_read_its_buffer(K, waits):
    """Tiles store 64-column chunks through two staging buffers: with an odd number of chunks per tile the first
    chunk's buffer was read by the previous tile's last store, so it waits for all stores (wait_group.read 0)."""
    from skc.blocks import MatmulConfig

    conv = ConvShape(2, 14, 14, 64, K, 3, 3, (1, 1), (1, 1), (1, 1))
    config = MatmulConfig(tile_n=K, stages=3)
    ptx = matmul_kernel.compile(**compile_arguments("sm_90a", conv, config=config), target="sm_90a").asm("ptx")
    assert set(re.findall(r"cp\.async\.bulk\.wait_group\.read\s+(\d+);", ptx)) == waits


def test_an_im2col_map_passes_by_descriptor_address(fake):
    from skc.runtime.fake_cuda import FakeTensor

    x = FakeTensor((1, 8, 8, 16))
    tmap = skc.Im2colTensorMap(x, channels=16, pixels=32, lower=(-1, -1), upper=(-1, -1))
    assert ctypes.string_at(tmap.descriptor_address, 16) == tmap.descriptor_bytes[:16]
    assert tmap.descriptor_bytes[:8] == x.address.to_bytes(8, "little")


# -- found in review (2026-11-30) -------------------------------------------------------------------------------------
def test_strides_past_tma_im2col_load_with_vectors(interpreter):
    assert not ConvShape(1, 20, 20, 16, 8, 3, 3, (9, 9)).tma_reaches()   # TMA im2col walks strides of 1 to 8
    x, w = small_integers((1, 20, 20, 16)), small_integers((8, 3, 3, 16))
    y = conv2d(x, w, stride=9, padding=1)
    np.testing.assert_array_equal(y.astype(np.float64), reference(x, w, 9, 1, 1))


@pytest.mark.parametrize("loader", ["tma", "vector"])
def test_a_config_with_a_deeper_k_step_pads_the_channels_to_it(interpreter, loader):
    x, w = small_integers((1, 6, 5, 16)), small_integers((16, 3, 3, 16))
    config = skc.blocks.MatmulConfig(tile_m=128, tile_n=128, consumers=2, stages=2, tile_k=128, loader=loader)
    y = conv2d(x, w, padding=1, config=config)
    np.testing.assert_array_equal(y.astype(np.float64), reference(x, w, 1, 1, 1))
    launched = launched_config(x, w, config)
    assert launched.tile_k == 128 and launched.loader.vector == (loader == "vector")


def test_a_config_asking_for_split_k_runs_unsplit(interpreter):
    x, w = small_integers((1, 4, 4, 16)), small_integers((8, 1, 1, 16))
    config = skc.blocks.MatmulConfig(tile_m=128, tile_n=128, consumers=2, stages=3, split_k=2)
    y = conv2d(x, w, config=config)
    np.testing.assert_array_equal(y.astype(np.float64), reference(x, w, 1, 0, 1))


@pytest.mark.parametrize("R", [1, 3])
def test_a_config_with_a_cluster_along_n_runs_without_one(interpreter, R):
    """conv2d's loaders take their own tiles: a GEMM config of blocks sharing A (cluster_n) runs unclustered."""
    x, w = small_integers((2, 8, 8, 128)), small_integers((136, R, R, 128))
    config = skc.blocks.MatmulConfig(dtype="f16", tile_m=64, consumers=1, tile_n=64, tile_k=128, stages=2,
                                     cluster_n=2, b_k_major=True)
    y = conv2d(x, w, padding=R // 2, config=config)
    np.testing.assert_array_equal(y.astype(np.float64), reference(x, w, 1, R // 2, 1))
    assert launched_config(x, w, config).cluster == 1


@pytest.mark.parametrize("R, pad", [(3, 1), (1, 0)], ids=["im2col", "pointwise"])
def test_three_consumer_warpgroups_on_192_row_tiles(interpreter, R, pad):
    x, w = small_integers((2, 15, 14, 16)), small_integers((136, R, R, 16))   # 420 output pixels: 3 row tiles
    config = skc.blocks.MatmulConfig(tile_m=192, tile_n=128, consumers=3, stages=3)
    y = conv2d(x, w, padding=pad, config=config)
    np.testing.assert_array_equal(y.astype(np.float64), reference(x, w, 1, pad, 1))


@pytest.mark.parametrize("R, pad", [(3, 1), (1, 0)], ids=["im2col", "pointwise"])
def test_the_consumers_may_take_tiles_in_turn(interpreter, R, pad):
    x, w = small_integers((2, 9, 8, 16)), small_integers((8, R, R, 16))   # 144 output pixels: three 64-row tiles
    config = skc.blocks.MatmulConfig(tile_m=64, tile_n=64, consumers=2, pingpong=True, stages=3)
    y = conv2d(x, w, padding=pad, config=config)
    np.testing.assert_array_equal(y.astype(np.float64), reference(x, w, 1, pad, 1))


@pytest.mark.parametrize("R, padding", [(1, 0), (3, 1)])
def test_an_output_of_2_to_the_31_pixels_is_named(fake, R, padding):
    """The implicit GEMM's M (N·P·Q) is an i32 of the kernel: past it, the launch said "matmul_kernel: argument 'M'
    ... declare the parameter with a wider type" (after making the output); conv2d names the pixels and the fix."""
    from skc.runtime.fake_cuda import FakeTensor

    x, w = FakeTensor((32768, 256, 256, 16)), FakeTensor((16, R, R, 16))   # (nothing stored)
    with pytest.raises(skc.LaunchError, match=r"conv2d's output has 32768 x 256 x 256 = 2147483648 pixels \(a 256x256 "
                                              r"input, .*\), past the 2\*\*31 - 1 .*: split the batch"):
        conv2d(x, w, padding=padding)
    assert not fake.launches
    conv2d(FakeTensor((32767, 256, 256, 16)), w, padding=padding)
    assert fake.launches[-1]["seen"][1][0] == 2 ** 31 - 65536
