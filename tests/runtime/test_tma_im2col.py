"""TMA im2col mode: the IR op and type (round trip, verifier), its NVPTX lowering (PTX through ptxas), and
the interpreter's model of it against numpy's im2col."""
import numpy as np
import pytest

import skc
from skc import ir
from skc.backends import ptx_tools
from skc.diagnostics import LaunchError, VerificationError
from skc.runtime.interpreter.tma import Im2colDescriptor, im2col_pixels


RNG = np.random.default_rng(11)
BF16_MAP = ir.Im2colTensorMapType(ir.bf16, (32, 16), 32, 4)


# -- the IR ---------------------------------------------------------------------------------------
def im2col_function(offset_type: str = "i16", tmap_type: str = str(BF16_MAP), rank: int = 4) -> str:
    return f"""kernel @k(%m: {tmap_type}) {{block = [32, 1, 1], shared_bytes = 2048}} {{
  %c0 = arith.constant {{value = 0}} : i32
  %o = arith.constant {{value = 1}} : {offset_type}
  %p = mem.shared {{offset = 0, bytes = 2048}} : ptr<shared>
  tma.load_im2col %p, %p, %m, %c0, %c0, %c0, %c0, %o, %o {{rank = {rank}}}
}}
"""


def test_type_prints_and_parses_back():
    assert str(BF16_MAP) == "tmap_im2col<bf16, 4d, 32x16, swizzle=32>"
    assert ir.parse_type(str(BF16_MAP)) is BF16_MAP
    assert BF16_MAP.rank == 4 and BF16_MAP.box_bytes == 32 * 16 * 2
    assert isinstance(BF16_MAP, ir.TensorMapType)   # passed to kernels like any tensor map


def test_op_round_trips():
    module = ir.parse_module(im2col_function())
    ir.verify(module)
    text = ir.print_module(module)
    assert "tma.load_im2col" in text and "tmap_im2col<bf16, 4d, 32x16, swizzle=32>" in text
    assert ir.print_module(ir.parse_module(text)) == text


@pytest.mark.parametrize("source, message", [
    (im2col_function(offset_type="i32"), "im2col offset 0 is i32, expected i16"),
    (im2col_function(tmap_type="tmap<bf16, 32x16, swizzle=32>"), "expected an im2col map"),
    (im2col_function(rank=3), "expected 7 operands"),
])
def test_verifier_names_the_problem(source, message):
    with pytest.raises(VerificationError, match=message):
        ir.verify(ir.parse_module(source))


def test_tiled_load_of_an_im2col_map_is_rejected():
    source = f"""kernel @k(%m: {BF16_MAP}) {{block = [32, 1, 1], shared_bytes = 2048}} {{
  %c0 = arith.constant {{value = 0}} : i32
  %p = mem.shared {{offset = 0, bytes = 2048}} : ptr<shared>
  tma.load %p, %p, %m, %c0, %c0, %c0, %c0 {{rank = 4}}
}}
"""
    with pytest.raises(VerificationError, match="copy from an im2col map with tma.load_im2col"):
        ir.verify(ir.parse_module(source))


# -- a kernel that loads im2col boxes ---------------------------------------------------------------
@skc.kernel
def im2col_boxes(x: skc.TensorMap, out: skc.Ptr[skc.u16], n0: skc.i32, h0: skc.i32, w0: skc.i32, c0: skc.i32,
                 r: skc.i32, s: skc.i32, cfg: skc.constexpr):
    """Loads one pixels x channels box at filter base (n0, h0, w0), channel c0, tap offsets (r, s), and
    copies the shared box (unswizzled) to out."""
    pixels, channels = cfg
    box = skc.shared((pixels * channels,), skc.u16, align=1024)
    bar = skc.shared((1,), skc.u64, align=8)
    t = skc.thread_index()
    if t == 0:
        skc.hopper.mbarrier_init(bar, 1)
        skc.hopper.fence_mbarrier_init()
    skc.barrier()
    if t == 0:
        skc.hopper.mbarrier_arrive_tx(bar, pixels * channels * 2)
        skc.hopper.tma_load_im2col(box, bar, x, (n0, h0, w0, c0), (r, s))
    skc.hopper.mbarrier_wait(bar, 0)
    for i in range(t, pixels * channels, 128):
        skc.store(out + i, skc.load(box + i))


def reference_im2col(x, pixels, channels, base, c0, offsets, lower, upper, strides):
    """What the copy gathers, by the documented walk, written independently of the interpreter: all output
    pixels of the convolution in order, starting at the one whose filter base is `base`."""
    N, H, W, C = x.shape
    bases = [(n, h, w) for n in range(N + 2) for h in range(lower[0], H + upper[0], strides[0])
             for w in range(lower[1], W + upper[1], strides[1])]
    start = bases.index(tuple(base))
    out = np.zeros((pixels, channels), x.dtype)
    for row, (n, h, w) in enumerate(bases[start:start + pixels]):
        h, w = h + offsets[0], w + offsets[1]
        if 0 <= n < N and 0 <= h < H and 0 <= w < W:
            for j in range(channels):
                if 0 <= c0 + j < C:
                    out[row, j] = x[n, h, w, c0 + j]
    return out


def conv_case(N, H, W, C, R, S, stride, pad, dilation):
    """The bounding box of a conv2d (lower = -pad, upper = last output's base - (extent - 1)) and its output
    size."""
    P = (H + 2 * pad - dilation * (R - 1) - 1) // stride + 1
    Q = (W + 2 * pad - dilation * (S - 1) - 1) // stride + 1
    lower = (-pad, -pad)
    upper = ((P - 1) * stride - pad - (H - 1), (Q - 1) * stride - pad - (W - 1))
    return P, Q, lower, upper


@pytest.mark.parametrize("stride, pad, dilation, R", [(1, 1, 1, 3), (2, 1, 1, 3), (1, 0, 1, 1), (1, 2, 2, 3),
                                                       (2, 0, 1, 1), (3, 2, 1, 5)])
def test_interpreter_gathers_numpy_im2col(stride, pad, dilation, R):
    N, H, W, C, pixels, channels = 2, 7, 9, 24, 32, 8
    x = RNG.integers(1, 60000, (N, H, W, C)).astype(np.uint16)
    P, Q, lower, upper = conv_case(N, H, W, C, R, R, stride, pad, dilation)
    tmap = skc.Im2colTensorMap(x, channels=channels, pixels=pixels, lower=lower, upper=upper,
                               strides=(stride, stride), swizzle=0, dtype=skc.u16)
    for m0, r, s, c0 in [(0, 0, 0, 0), (5, R - 1, 0, 8), (Q + 3, R // 2, R - 1, 16), (N * P * Q - 3, R - 1, R - 1, 8)]:
        n, p, q = m0 // (P * Q), m0 // Q % P, m0 % Q
        base = (n, p * stride - pad, q * stride - pad)
        out = np.zeros(pixels * channels, np.uint16)
        im2col_boxes[(1,), (128,)](tmap, out, *base, c0, r * dilation, s * dilation, (pixels, channels))
        expected = reference_im2col(x, pixels, channels, base, c0, (r * dilation, s * dilation), lower, upper,
                                    (stride, stride))
        np.testing.assert_array_equal(out.reshape(pixels, channels), expected)
        # ... which is numpy's im2col of the conv: rows m0.. of the (N*P*Q) x (R*S*C) matrix, tap (r, s)
        padded = np.pad(x, ((0, 0), (pad, pad + stride * R), (pad, pad + stride * R), (0, 0)))
        rows = np.arange(m0, min(m0 + pixels, N * P * Q))
        nn, pp, qq = rows // (P * Q), rows // Q % P, rows % Q
        numpy_im2col = padded[nn, pp * stride + r * dilation, qq * stride + s * dilation, c0:c0 + channels]
        np.testing.assert_array_equal(out.reshape(pixels, channels)[:len(rows)], numpy_im2col)


@pytest.mark.parametrize("swizzle, channels", [(128, 64), (64, 32), (32, 16)])
def test_interpreter_swizzles_like_the_tiled_mode(swizzle, channels):
    """The shared box is placed exactly as a tiled (pixels, channels) box: byte b of row r at swizzle(dst + r *
    span + b)."""
    from skc.runtime.interpreter.tma import swizzle as swizzled

    N, H, W, C, pixels = 1, 4, 5, 64, 16
    x = RNG.integers(1, 60000, (N, H, W, C)).astype(np.uint16)
    tmap = skc.Im2colTensorMap(x, channels=channels, pixels=pixels, lower=(0, 0), upper=(0, 0), swizzle=swizzle,
                               dtype=skc.u16)
    out = np.zeros(pixels * channels, np.uint16)
    im2col_boxes[(1,), (128,)](tmap, out, 0, 0, 0, 0, 0, 0, (pixels, channels))
    logical = x.reshape(-1, C)[:pixels, :channels]
    row = channels * 2
    offsets = (np.arange(pixels)[:, None] * max(row, swizzle) + np.arange(row)).reshape(-1)
    image = np.zeros(pixels * max(row, swizzle), np.uint8)
    image[swizzled(offsets, swizzle)] = logical.reshape(-1).view(np.uint8)   # the box is 1024-byte aligned
    np.testing.assert_array_equal(out.view(np.uint8), image[:out.nbytes])


def test_walk_wraps_rows_and_images():
    desc = Im2colDescriptor(0, (2, 3, 4, 8), (96, 32, 8, 1), ir.u16, (6, 8), 0, lower=(-1, -1), upper=(-1, -1),
                            traversal=(1, 2))
    # bases along w: -1, 1 (3 is past 4 - 1 - 1); along h: -1, 0, 1 (2 is past 3 - 1 - 1), then the next image
    pixels = im2col_pixels(desc, [0, 0, 1, 0], [1, 1], 0)
    assert pixels == [(0, 1, 2), (0, 2, 0), (0, 2, 2), (1, 0, 0), (1, 0, 2), (1, 1, 0)]


def test_host_map_errors():
    x = np.zeros((1, 8, 8, 64), np.uint16)
    with pytest.raises(LaunchError, match=r"lower corner \(-200, 0\) is outside \[-128, 127\]"):
        skc.Im2colTensorMap(x, channels=64, pixels=128, lower=(-200, 0), upper=(0, 0), dtype=skc.u16)
    with pytest.raises(LaunchError, match="wider than the 64-byte swizzle"):
        skc.Im2colTensorMap(x, channels=64, pixels=128, lower=(0, 0), upper=(0, 0), swizzle=64, dtype=skc.u16)
    with pytest.raises(LaunchError, match="traversal strides must be 1 to 8"):
        skc.Im2colTensorMap(x, channels=64, pixels=128, lower=(0, 0), upper=(0, 0), strides=(9, 1), dtype=skc.u16)


# -- NVPTX ------------------------------------------------------------------------------------------
def test_ptx_holds_the_im2col_copy_and_assembles():
    tmap = ir.Im2colTensorMapType(ir.u16, (32, 8), 0, 4)
    k = im2col_boxes.compile(tmap, skc.Ptr[skc.u16], 0, 0, 0, 0, 0, 0, cfg=(32, 8), target="sm_90a", block=128)
    assert "tma.load_im2col" in k.ir("tile")
    assert "llvm.nvvm.cp.async.bulk.tensor.g2s.im2col.4d" in k.ir("llvm")
    ptx = k.asm("ptx")
    assert "cp.async.bulk.tensor.4d.shared::cluster.global.im2col" in ptx
    cubin, _ = ptx_tools.link_ptx(ptx, "sm_90a", "im2col_boxes")   # ptxas accepts it
    assert cubin


# -- errors at the user's line and in the interpreter -------------------------------------------------
@skc.kernel
def tiled_map_given(x: skc.TensorMap, cfg: skc.constexpr):
    box = skc.shared((1024,), skc.u16, align=1024)
    bar = skc.shared((1,), skc.u64, align=8)
    skc.hopper.tma_load_im2col(box, bar, x, (0, 0, 0, 0), (0, 0))  # TILED


@skc.kernel
def offsets_missing(x: skc.TensorMap, cfg: skc.constexpr):
    box = skc.shared((1024,), skc.u16, align=1024)
    bar = skc.shared((1,), skc.u64, align=8)
    skc.hopper.tma_load_im2col(box, bar, x, (0, 0, 0, 0), (0,))  # ONE OFFSET


def test_builtin_errors_point_at_the_call():
    from helpers import line_of

    with pytest.raises(skc.CompileError) as info:
        tiled_map_given.compile(ir.TensorMapType(ir.u16, (32, 32), 64), cfg=0, target="sm_90a")
    text = str(info.value)
    assert f":{line_of(tiled_map_given, '# TILED')}:" in text.splitlines()[0]
    assert "tma_load_im2col copies from an im2col map (skc.Im2colTensorMap)" in text
    with pytest.raises(skc.CompileError, match="give 4 coordinates and 2 offsets, found 4 and 1"):
        offsets_missing.compile(BF16_MAP, cfg=0, target="sm_90a")
    with pytest.raises(skc.CompileError, match=r"needs a target with tma \(sm_90a\)"):
        offsets_missing.compile(BF16_MAP, cfg=0, target="sm_80")


def test_a_filter_base_outside_the_bounding_box_is_reported():
    from skc.diagnostics import InterpreterError

    x = np.zeros((1, 6, 6, 8), np.uint16)
    tmap = skc.Im2colTensorMap(x, channels=8, pixels=32, lower=(-1, -1), upper=(-1, -1), swizzle=0, dtype=skc.u16)
    with pytest.raises(InterpreterError, match=r"filter base at \[-2, 0\] \(outermost first\), outside the "
                                               r"bounding box \[-1, -1\]\.\.\[4, 4\]"):
        im2col_boxes[(1,), (128,)](tmap, np.zeros(256, np.uint16), 0, -2, 0, 0, 0, 0, (32, 8))


def test_im2col_offsets_past_the_range_of_the_rank_are_reported():
    """PTX ISA 5.5.4.1: a 4-D copy's im2col offsets are 0 to 255 (3-D: 2**16 - 1, 5-D: 31); the interpreter used to
    read a tap 256 pixels on, which the GPU's 8 bits cannot say."""
    from skc.diagnostics import InterpreterError

    x = RNG.integers(1, 60000, (1, 2, 300, 8)).astype(np.uint16)
    tmap = skc.Im2colTensorMap(x, channels=8, pixels=8, lower=(0, 0), upper=(0, 0), swizzle=0, dtype=skc.u16)
    out = np.zeros(64, np.uint16)
    im2col_boxes[(1,), (128,)](tmap, out, 0, 0, 0, 0, 0, 255, (8, 8))
    np.testing.assert_array_equal(out.reshape(8, 8), x[0, 0, 255:263])
    with pytest.raises(InterpreterError, match=r"im2col offsets \[256, 0\] \(innermost first\): a rank-4 copy takes "
                                               r"offsets of 0 to 255"):
        im2col_boxes[(1,), (128,)](tmap, out, 0, 0, 0, 0, 0, 256, (8, 8))
