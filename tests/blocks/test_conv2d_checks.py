"""conv2d names an empty problem (was: ZeroDivisionError in filling_config for N = 0 or K = 0) and an unknown
activation at the call (was: a CompileError at a line inside skc/blocks/epilogue.py)."""
import re

import numpy as np
import pytest

import skc
from skc.blocks import conv2d

torch = pytest.importorskip("torch")
CL = torch.channels_last


def ints(*shape):
    return torch.randint(-2, 3, shape).to(torch.bfloat16).to(memory_format=CL)


@pytest.mark.parametrize("x_shape, w_shape", [((1, 16, 6, 5), (0, 16, 3, 3)), ((1, 0, 6, 5), (16, 0, 3, 3)),
                                              ((1, 16, 6, 5), (16, 16, 0, 3))])
def test_conv2d_names_an_empty_problem(hopper_interpreter, x_shape, w_shape):
    """No filters, channels or filter extent (torch refuses no filters: 'expected weight to be at least 1')."""
    with pytest.raises(skc.LaunchError, match="must each be at least 1"):
        conv2d(ints(*x_shape), ints(*w_shape))


@pytest.mark.parametrize("x_shape, w_shape, options", [
    ((0, 16, 6, 5), (16, 16, 3, 3), {}), ((0, 3, 6, 5), (12, 3, 3, 3), dict(stride=2, padding=1)),
    ((0, 16, 9, 9), (8, 16, 3, 3), dict(dilation=2, activation="relu"))])
def test_a_batch_of_none_is_torchs_empty_output(hopper_interpreter, x_shape, w_shape, options):
    """A batch of 0: torch's empty (0, K, P, Q) output, channels_last, with no launch, whatever C and K (was: refused,
    'the batch ... must each be at least 1'); a given out of the wrong shape or type, and a wrong bias, are still
    named."""
    x, w = ints(*x_shape), ints(*w_shape)
    geometry = {k: v for k, v in options.items() if k != "activation"}
    expected = torch.nn.functional.conv2d(x.float(), w.float(), **geometry)
    got = conv2d(x, w, bias=torch.ones(w.shape[0], dtype=torch.bfloat16), **options)
    assert got.shape == expected.shape and got.dtype == x.dtype and got.is_contiguous(memory_format=CL)
    out = torch.empty(expected.shape, dtype=x.dtype).to(memory_format=CL)
    assert conv2d(x, w, out=out, **options) is out
    with pytest.raises(skc.LaunchError, match="conv2d's out has shape"):
        conv2d(x, w, out=torch.empty(0, w.shape[0], 1, 1, dtype=x.dtype).to(memory_format=CL), **options)
    with pytest.raises(skc.LaunchError, match="conv2d's out is torch.float32"):
        conv2d(x, w, out=torch.empty(expected.shape).to(memory_format=CL), **options)
    with pytest.raises(skc.LaunchError, match="bias has shape"):
        conv2d(x, w, bias=torch.ones(w.shape[0] + 1, dtype=x.dtype), **options)


def test_a_batch_of_none_over_numpy_arrays(hopper_interpreter):
    """NHWC numpy arrays of no pixels have strides of 0, which read as no contiguous memory (was: refused so)."""
    got = conv2d(np.zeros((0, 6, 5, 16), np.float16), np.zeros((16, 3, 3, 16), np.float16))
    assert got.shape == (0, 4, 3, 16) and got.dtype == np.float16


def test_conv2d_names_an_unknown_activation(hopper_interpreter):
    with pytest.raises(skc.LaunchError, match="conv2d: unknown activation 'tanh'"):
        conv2d(ints(1, 16, 6, 5), ints(16, 16, 3, 3), activation="tanh")


@pytest.mark.parametrize("geometry", [dict(stride=[2, 2]), dict(padding=(1, 1)), dict(dilation=1)])
def test_conv2d_names_unhashable_or_float_geometry(hopper_interpreter, geometry):
    """A numpy array as stride, padding or dilation raised a bare TypeError from the plan cache's lookup; a float
    stride was refused on a first call but taken after an equal int's (2.0 == 2 as a key)."""
    import numpy as np

    x, w = ints(1, 16, 6, 7), ints(16, 16, 3, 3)
    (name, value), = geometry.items()
    with pytest.raises(skc.LaunchError, match=f"conv2d's {name} must be an int or an"):
        conv2d(x, w, **{name: np.array(value)})
    conv2d(x, w, **{name: value})   # the ints first: the float below must not find their plan
    floats = [float(v) for v in value] if isinstance(value, (list, tuple)) else float(value)
    with pytest.raises(skc.LaunchError, match=f"conv2d's {name} must be an int or an"):
        conv2d(x, w, **{name: floats})


def test_filters_no_multiple_of_8_are_a_conv2d_error_naming_k(hopper_interpreter):
    """(was TMA's message about strides, naming neither conv2d nor K)"""
    torch = pytest.importorskip("torch")
    x = torch.randint(-2, 3, (1, 8, 6, 6)).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    w = torch.randint(-2, 3, (4, 8, 3, 3)).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    with pytest.raises(skc.LaunchError, match=r"K \(w's filters, w.shape\[0\]\) must be a multiple of 8, found 4"):
        skc.blocks.conv2d(x, w)


def test_a_read_only_out_is_refused_before_the_launch(hopper_interpreter):
    x, w = np.ones((1, 6, 6, 8), np.float16), np.ones((8, 3, 3, 8), np.float16)
    out = np.zeros((1, 4, 4, 8), np.float16)
    out.setflags(write=False)
    with pytest.raises(skc.LaunchError, match="conv2d: out is a read-only array"):
        skc.blocks.conv2d(x, w, out=out)


@pytest.mark.parametrize("R, fields", [(1, dict(tile_m=64, consumers=1, tile_n=16, b_k_major=True, swap_ab=True)),
                                       (3, dict(tile_m=64, consumers=1, tile_n=16, b_k_major=True, swap_ab=True)),
                                       (3, dict(batched="ab")), (1, dict(batched="ab")),
                                       (3, dict(loader="vector", vector_async=True))])
def test_a_config_of_swapped_batched_or_async_copies_keeps_conv2ds_own(hopper_interpreter, R, fields):
    """conv2d's x and w are the kernel's a and b, one convolution a launch, copied by its own loaders: a GEMM config's
    swap_ab (which MatmulConfig.for_problem picks for 128 < M <= 192 over deep K), batched and vector_async are the
    GEMM's (a pointwise conv under swap_ab came out wrong; the others raised MatmulConfig's ValueError)."""
    x, w = ints(1, 16, 4, 5), ints(16, 16, R, R)
    config = skc.blocks.MatmulConfig(**{"tile_m": 128, "tile_n": 128, "consumers": 2, "stages": 3, **fields})
    y = conv2d(x, w, padding=R // 2, config=config)
    assert torch.equal(y.float(), torch.nn.functional.conv2d(x.float(), w.float(), padding=R // 2))


def test_conv2d_names_a_config_it_cannot_take(hopper_interpreter):
    """An fp8 GEMM's config (was MatmulConfig's ValueError, "the GEMM multiplies f8e4m3 or f8e5m2, not bf16") and tiles
    and stages past the device's shared memory (was a CompileError at a line of skc/blocks/payload.py)."""
    from skc.blocks.fp8 import Fp8MatmulConfig

    x, w = ints(1, 16, 4, 5), ints(16, 16, 3, 3)
    with pytest.raises(skc.LaunchError, match="config is a MatmulConfig, found Fp8MatmulConfig"):
        conv2d(x, w, padding=1, config=Fp8MatmulConfig())
    large = skc.blocks.MatmulConfig(tile_m=128, consumers=2, tile_n=256, stages=8)
    with pytest.raises(skc.LaunchError, match=r"conv2d: the config's tiles and stages take \d+ bytes of shared memory, "
                                              r"more than the 232448 .* use fewer stages \(stages=8\)"):
        conv2d(x, w, padding=1, config=large)


@pytest.mark.parametrize("filter_channels, hint", [(1, "groups=16"), (4, "groups=4"), (3, None), (0, None)])
def test_conv2d_names_the_groups_of_a_grouped_filter(hopper_interpreter, filter_channels, hint):
    """A depthwise or grouped filter (w of C / groups channels) passed without groups names the groups to pass,
    eagerly and in torch.ops.skc.conv2d (was only "x has 16 channels but the filters take 1")."""
    import skc.torch  # noqa: F401

    x, w = ints(1, 16, 6, 5), ints(16, filter_channels, 3, 3)
    message = "x has 16 channels but the filters take " + str(filter_channels) + (
        rf" \(w of a grouped convolution: pass {hint}, as torch.nn.functional.conv2d takes it\)" if hint else "$")
    with pytest.raises(skc.LaunchError, match=message):
        conv2d(x, w)
    with pytest.raises(RuntimeError, match=message):
        torch.ops.skc.conv2d(x, w)


def test_conv2d_takes_a_sequence_of_one_int_as_torch_does(hopper_interpreter):
    """stride=(2,), padding=[1] and dilation=(1,), which F.conv2d takes for both sides (each was refused: 'must be
    an int or an (h, w) pair')."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    x = torch.randint(-2, 3, (1, 16, 6, 7)).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    w = torch.randint(-2, 3, (16, 4, 3, 3)).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    dense = torch.randint(-2, 3, (16, 16, 3, 3)).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    for filters, groups in ((dense, 1), (w, 4)):   # (the GEMM; the group stencil)
        got = skc.blocks.conv2d(x, filters, stride=(2,), padding=[1], dilation=(1,), groups=groups)
        want = F.conv2d(x.double(), filters.double(), stride=(2,), padding=[1], dilation=(1,), groups=groups)
        assert torch.equal(got, want.bfloat16())
    with pytest.raises(skc.LaunchError, match=r"conv2d's stride must be an int or an \(h, w\) pair"):
        skc.blocks.conv2d(x, w, stride=(), groups=4)


@pytest.mark.parametrize("view", ["channels", "rows"])
def test_a_channels_last_view_with_gaps_is_refused_with_a_fix_that_works(hopper_interpreter, view):
    """A slice of a channels_last image (its channels, as torch.chunk gives them; rows of a batch of two) is no
    contiguous channels_last memory: the error's fix is x.contiguous(memory_format=torch.channels_last), which copies
    it (it said x.to(memory_format=torch.channels_last), which returns the same view, so the call failed again)."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    image = torch.randint(-2, 3, (2, 32, 6, 7)).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    if view == "rows":
        image = image[:, :16].contiguous(memory_format=torch.channels_last)
    w = torch.randint(-2, 3, (16, 4, 3, 3)).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    for source in (image, image.clone().requires_grad_()):   # (and where autograd follows it: the operator's check)
        x = source[:, :16] if view == "channels" else source[:, :, 1:]
        with pytest.raises(skc.LaunchError, match=r"'x' must be in the channels_last memory format, contiguous "
                                                  rf"\(found strides {re.escape(str(tuple(x.stride())))}\): pass "
                                                  r"x.contiguous\(memory_format=torch.channels_last\)"):
            skc.blocks.conv2d(x, w, padding=1, groups=4)
        got = skc.blocks.conv2d(x.contiguous(memory_format=torch.channels_last), w, padding=1, groups=4)   # the fix
        assert torch.equal(got.detach(), F.conv2d(x.detach().double(), w.double(), padding=1, groups=4).bfloat16())


@pytest.mark.parametrize("groups", [1, 16])
def test_a_geometry_past_32_bits_is_refused(hopper_interpreter, groups):
    """A dilation of 2**30 with a padding of 2**31 made the loaders' row offsets wrap in 32 bits: all zeros where
    torch gives the centre tap's product (sixty-fourth session's search); now refused, naming the geometry."""
    x = ints(1, 16, 4, 4)
    w = ints(16, 16 // groups, 5, 1)
    with pytest.raises(skc.LaunchError, match=r"geometry reaches \d+ rows or columns .* 2\*\*31"):
        conv2d(x, w, dilation=(2 ** 30, 1), padding=(2 ** 31, 0), groups=groups)
