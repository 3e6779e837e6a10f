"""conv2d, the host side: the GEMM composition (skc/blocks/gemm.py) with its loader swapped for the im2col
loader (skc/blocks/im2col.py). Everything else (pipeline, warp roles, wgmma, scheduler, fused epilogue)
is the GEMM's, unchanged: y[N·P·Q, K] = im2col(x) · w^T, stored as NHWC.
"""
from __future__ import annotations

import functools
import threading
from numbers import Integral
from dataclasses import replace

import skc
from skc import ir

from .config import MatmulConfig
from .epilogue import EpilogueSpec
from .host_plans import (TORCH_HOOKS, Bindings, Direct, GemmPlan, address_functions, aligned_copy, autocast,
                         check_activation, check_epilogue_operands, check_has_data, check_no_overlap,
                         check_stream_given, check_writeable, contiguous, differentiated, element_strides, empty_like,
                         facts, facts_failed, filling_config, keeping_stream, kept_zeros, misaligned, on_stream,
                         outside_graph, paddable, padded, refuse_host_options, remember, require_arrays, span,
                         torch_type, traced, traced_numbers, view, viewable, without_grad, write_into, zeros_like)
from .im2col import ConvShape, grouping_mismatch, unaligned_filters
from .matmul_host import dtype_label, operand_dtype_name
from .stencil import stencil_config, stencil_conv_kernel, takes

_PLANS: dict = {}  # facts of a call -> its plan


def conv2d(x, w, bias=None, stride=1, padding=0, dilation=1, activation=None, out=None, config=None, stream=None,
           groups=1):
    """y = activation(conv2d(x, w, groups) + bias) on a Hopper GPU (or the interpreter modelling one).

    x holds NHWC activations and w KRSC filters (numpy arrays or skc arrays in that order; torch tensors in
    torch's NCHW / OIHW order with the channels_last memory format, whose memory is NHWC / KRSC: taken as
    they are, no copy). bf16 or fp16; C not a multiple of 8 (an RGB input's 3) is padded with zero channels to the
    next one, x and w copied (torch tensors and numpy arrays). The output is NHWC (a channels_last torch tensor
    for torch inputs); `out` may be given. stride, padding, dilation: an int or an (h, w) pair (padding also
    "valid" or, for stride 1, "same", as torch takes them). `groups` (by keyword: the arguments before it keep their
    places) as torch.nn.functional.conv2d takes it: it divides C and K, and w holds C/groups channels (K x C/groups
    x R x S for torch); one launch computes every group, a GEMM a group over the scheduler's batch. Without a
    `config`: groups of 4, 8 or 16 channels where C is a multiple of 64 (torch tensors or numpy arrays), from
    SLAB_WORK multiply-adds on, run as that launch over slabs of 64 channels (SLAB), each slab's filters block-diagonal
    (w copied onto their diagonals each call); a depthwise convolution (one channel a group, K/C filters each), and
    other groups of 2, 4 or 8 channels with a whole multiple of them as each group's filters (within stencil.takes's
    bounds), run as a direct kernel on CUDA cores (stencil.stencil_conv_kernel: x read about once, out written once);
    other groups whose channels or filters are no multiple of 8 run as the dense convolution with block-diagonal
    filters: right, groups times the work. `config` is a MatmulConfig (its tiles and stages; the loader, the store
    and the operands, unswapped, are conv2d's). The launch goes to `stream`, by default the current stream of the operands' framework. Like
    matmul, a call is one lookup of a plan made by the first call with the same facts; 1x1 convolutions of stride 1
    without padding are plain GEMMs (no im2col). Filter taps more than 255 pixels apart (and
    `config=MatmulConfig(loader="vector", ...)`) load with the vector im2col loader instead of TMA im2col. Inside a
    function torch.compile compiles, the call is torch.ops.skc.conv2d in the graph (with out, config or stream, a
    graph break)."""
    if traced(x):
        # (numpy ints as Dynamo traces them, 0-d arrays, as the ints they hold: stride=np.int64(2) runs eagerly)
        plain = tuple(_traced_ints(v) for v in (stride, padding, dilation, groups))
        numbers = all(v is not None for v in plain)
        if numbers:
            stride, padding, dilation, groups = plain
        if numbers and isinstance(padding, str) and len(w.shape) == 4:   # ("same", "valid": numbers, as eagerly)
            padding = _padding(padding, _pair(stride, "stride", 1), _pair(dilation, "dilation", 1), *w.shape[2:])
        if out is None and config is None and stream is None and not isinstance(padding, str) and numbers:
            from .. import torch as skc_torch

            return skc_torch.conv2d(x, w, bias, _pair(stride, "stride", 1), _pair(padding, "padding", 0),
                                    _pair(dilation, "dilation", 1), activation, _groups(groups))
        return outside_graph(conv2d, x, w, bias, stride, padding, dilation, activation, out, config, stream, groups)
    if out is None and _is_torch(x) and TORCH_HOOKS[3]():   # (in a torch.autocast region: its dtype, as F.conv2d's)
        x, w, bias = autocast(x, w, bias)
    if _is_torch(x) and differentiated(x, w, bias, out):
        return _differentiated(x, w, bias, stride, padding, dilation, activation, out, config, stream, groups)
    if not _is_torch(x):
        _refuse_lost_gradients(w=w, bias=bias, out=out)
    require_arrays("conv2d", ("bias", "out"), x=x, w=w, bias=bias, out=out)
    check_writeable("conv2d", out)
    given = out
    x, w, bias, out = viewable("conv2d", x=x, w=w, bias=bias, out=out)
    if config is not None and not (isinstance(config, MatmulConfig) and "bf16" in config.input_types):
        raise skc.LaunchError(f"conv2d's config is a MatmulConfig, found {type(config).__name__}")   # (not fp8's)
    if isinstance(activation, Integral) and not isinstance(activation, bool):   # (torch's 7th argument is groups)
        raise skc.LaunchError(f"conv2d's 7th argument is the activation, found {activation!r}: pass the groups by "
                              f"keyword, groups={activation!r}")
    check_activation("conv2d", activation)
    conv, gemm = _looked_up(x, w, bias, out, stride, padding, dilation, activation, config, groups)
    if out is None:
        with on_stream(x, stream):   # (the launch's stream's memory: host_plans.on_stream)
            out = _empty_output(x, (conv.N, conv.P, conv.Q, conv.K), _is_torch(x))
    try:
        gemm(x, w, out, bias=bias, stream=stream)
    except RuntimeError as error:   # (a torch.func transform's tensor, of a plan's facts, has no data pointer)
        facts_failed("conv2d", error, x=x, w=w, bias=bias, out=out)
    return given if given is not None else out   # (the caller's out, not the view of it that viewable made)


def _looked_up(x, w, bias, out, stride, padding, dilation, activation, config, groups) -> tuple:
    """(ConvShape, the launch) of a call with these facts: one lookup, made and checked by the first such call."""
    # the arguments as given key the plan (lists as tuples), with their types (2.0 equals 2 as a key, and the
    # checks refuse it); _checked reads and checks them once per plan
    geometry = tuple(tuple(v) if isinstance(v, list) else v for v in (stride, padding, dilation))
    kinds = None if type(stride) is type(padding) is type(dilation) is int else tuple(
        tuple(map(type, v)) if isinstance(v, tuple) else type(v) for v in geometry)
    try:
        key = (skc.current_device(), facts(x), facts(w), bias if bias is None else facts(bias),
               out if out is None else facts(out), geometry, kinds,
               groups if type(groups) is int else (groups, type(groups)), activation, config)
    except (RuntimeError, NotImplementedError) as error:   # (torch: a sparse CSR tensor has no strides)
        facts_failed("conv2d", error, x=x, w=w, bias=bias, out=out)
    try:
        plan = _PLANS.get(key)
    except TypeError:   # an unhashable stride, padding or dilation (a numpy array): the checks name it
        _checked(key[0], x, w, bias, *geometry, activation, config, groups)
        raise skc.LaunchError("conv2d's stride, padding and dilation are ints, (h, w) pairs of ints or (padding) "
                              "'valid' or 'same'") from None
    if plan is None:
        check_has_data("conv2d", x=x, w=w, bias=bias, out=out)
        checked = _checked(key[0], x, w, bias, *geometry, activation, config, groups)
        if out is not None:   # (before the plan is kept: a call with the same facts finds it checked)
            _check_out(checked[0], x, out)
        plan = remember(_PLANS, key, checked)
    return plan


def _traced_ints(value):
    """A traced call's geometry argument (an int, a pair, a padding word) with its numpy ints as the ints they hold
    (host_plans.traced_numbers); None where one is a tensor or None (the call then runs outside the graph, whose
    checks name it). (No sentinel object: Dynamo of torch 2.13 cannot compare one.)"""
    if isinstance(value, (tuple, list)):
        items = tuple(_traced_ints(item) for item in value)
        return None if any(item is None for item in items) else items
    numbers = traced_numbers(value)
    return None if numbers is None else numbers[0]


def _refuse_lost_gradients(**operands):
    """A torch operand that autograd follows beside an x of another kind is refused by name: the result is x's kind,
    whose gradient autograd cannot follow (it ran, and w's gradient was lost silently)."""
    given = {name: value for name, value in operands.items() if _is_torch(value)}
    if given and differentiated(*given.values()):
        names = ", ".join(given)
        raise skc.LaunchError(f"conv2d: autograd follows a torch operand ({names}), and x is not a torch tensor, so "
                              "the result could carry no gradient: pass x as a torch tensor (torch.from_numpy(x)), "
                              "or call conv2d under torch.no_grad() (or on detached tensors)")


def _differentiated(x, w, bias, stride, padding, dilation, activation, out, config, stream, groups):
    """conv2d where autograd follows the call (host_plans.differentiated): torch.ops.skc.conv2d, whose derivative is
    registered (the GEMM's result had none), with torch's "valid" or "same" padding as numbers."""
    from .. import torch as skc_torch

    refuse_host_options("conv2d", "torch.ops.skc.conv2d", out=out, config=config, stream=stream)
    stride, dilation = _pair(stride, "stride", 1), _pair(dilation, "dilation", 1)
    R, S = tuple(w.shape[2:]) if len(w.shape) == 4 else (1, 1)   # (another w: the operator names its shape)
    return skc_torch.conv2d(x, w, bias, stride, _padding(padding, stride, dilation, R, S), dilation, activation,
                            _groups(groups))


def _checked(device, x, w, bias, stride, padding, dilation, activation, config, groups) -> tuple:
    """Every check of a call, once per set of facts, and the plan that launches it."""
    x_nhwc, w_krsc = _nhwc(x, "x"), _nhwc(w, "w")
    for name, array in (("x", x_nhwc), ("w", w_krsc)):   # (torch's: channels_last, which _nhwc checks)
        if not contiguous(array):   # (a vector loader's pointer and a pointwise conv's 2-D map read it densely)
            raise skc.LaunchError(f"conv2d's '{name}' (strides {element_strides(array)}) must be contiguous "
                                  f"{'NHWC' if name == 'x' else 'KRSC'} memory: pass a contiguous copy "
                                  f"(numpy.ascontiguousarray({name}), cupy.ascontiguousarray({name}))")
    dtype, dtype_w = operand_dtype_name(x, "x", "conv2d"), operand_dtype_name(w, "w", "conv2d")
    if dtype_w != dtype:
        raise skc.LaunchError(f"x is {dtype} and w is {dtype_w}; conv2d needs one type")
    (N, H, W, C), (K, R, S, C_w) = x_nhwc.shape, w_krsc.shape
    if not (C and K and R and S):   # (H or W of 0 leaves no output pixels: said below; a batch of 0 runs)
        raise skc.LaunchError(f"conv2d of x {tuple(x.shape)} by w {tuple(w.shape)}: the channels, the filters and "
                              "the filter's extent must each be at least 1 (torch.nn.functional.conv2d refuses no "
                              "filters too)")
    groups = _groups(groups)
    mismatch = grouping_mismatch(C, K, C_w, groups)
    if mismatch:
        raise skc.LaunchError(mismatch)
    geometry = (stride, padding, dilation)   # as given: a padded call passes them on
    stride, dilation = _pair(stride, "stride", 1), _pair(dilation, "dilation", 1)
    # (the dense convolution over slabs of SLAB channels, of torch tensors or numpy arrays on a TMA target, for groups
    # of 4, 8 or 16 channels; the direct kernel, of any array, for depthwise convolutions and other groups of 2 to 8)
    slabs = (config is None and slab_takes(C, K, groups, slab_work(N, H, W, K, R, S, C, groups, stride))
             and device.target.has("tma") and paddable(x, w))
    stencil = config is None and not slabs and takes(C, K, groups, R, S, stride[1], dilation[1],
                                                     device.target.max_shared_bytes)
    dense = groups > 1 and (C // groups % 8 or K // groups % 8) and not stencil and not slabs   # (block-diagonal)
    if dense and not paddable(x, w):
        raise skc.LaunchError(f"conv2d runs groups of {C // groups} channels and {K // groups} filters (not multiples "
                              "of 8, which the grouped loaders and stores address 16 bytes at a time) as the dense "
                              "convolution with block-diagonal filters, which it makes on the host from torch "
                              "tensors or numpy arrays: pass those, or groups of multiples of 8 channels and filters")
    if C % 8 and not paddable(x, w) and not stencil:
        raise skc.LaunchError(f"conv2d copies pixels 16 bytes at a time: C must be a multiple of 8, found {C} "
                              "(pad the channels with zeros to a multiple of 8)")
    padding = _padding(padding, stride, dilation, R, S)
    conv = ConvShape(N, H, W, C, K, R, S, stride, padding, dilation, groups=groups)
    if conv.P < 1 or conv.Q < 1:
        raise skc.LaunchError(f"conv2d of a {H}x{W} input by a {R}x{S} filter (padding {padding}, dilation "
                              f"{dilation}) has no output pixels")
    if conv.N * conv.P * conv.Q >= 2 ** 31:   # (the implicit GEMM's M, an i32 of the kernel)
        raise skc.LaunchError(f"conv2d's output has {N} x {conv.P} x {conv.Q} = {N * conv.P * conv.Q} pixels (a "
                              f"{H}x{W} input, stride {stride}, padding {padding}, dilation {dilation}), past the 2**31 - 1 "
                              "its kernel counts in 32 bits: split the batch (or the image) into calls of fewer")
    reach = max(max(p, d * (f - 1), s * (o - 1), n + 2 * p) for p, d, f, s, o, n in
                zip(conv.padding, conv.dilation, (R, S), conv.stride, (conv.P, conv.Q), (H, W)))
    if reach >= 2 ** 31:   # (the loaders' row and column offsets, i32 where the padding leaves them: they wrapped)
        raise skc.LaunchError(f"conv2d's geometry reaches {reach} rows or columns (padding {padding}, dilation "
                              f"{dilation}, stride {stride}, a {R}x{S} filter over a {H}x{W} input), past the "
                              "2**31 - 1 its kernels address in 32 bits: crop the padding to the taps that reach the "
                              "input")
    if not N:   # a batch of none: torch's empty output, with no launch (so none of the kernel's limits on C and K)
        _checked_epilogue(K, bias, activation)
        return conv, _no_launch
    if stencil:   # the direct kernel (stencil.py; its vector stores take any K)
        return conv, _Stencil(device, conv, dtype, _checked_epilogue(K, bias, activation))
    if K % 8:   # (out's rows of K channels are stored through a tensor map: 16-byte multiples)
        raise skc.LaunchError(unaligned_filters(K, groups))
    if slabs:   # the convolution by block-diagonal filters of SLAB channels, in groups of SLAB
        return conv, _BlockDiagonal(groups, geometry, activation, None, SLAB)
    if dense:   # the convolution by dense filters (its own plan checks the rest)
        return conv, _BlockDiagonal(groups, geometry, activation, config)
    if C % 8:   # the convolution of x and w padded with zero channels (its own plan checks the rest)
        return conv, _PaddedChannels(-(-C // 8) * 8, geometry, activation, config)
    if not device.target.has("tma"):
        raise skc.LaunchError(f"conv2d loads with TMA im2col copies (sm_90a); {device.target.name} has no TMA")
    spec = _checked_epilogue(K, bias, activation)
    cfg = _config(conv, dtype, device.target, device.multiprocessors, spec, config)
    if cfg.shared_bytes() > device.target.max_shared_bytes:   # (a given config's: the compiler's error otherwise)
        raise skc.LaunchError(f"conv2d: the config's tiles and stages take {cfg.shared_bytes()} bytes of shared "
                              f"memory, more than the {device.target.max_shared_bytes} a block may use on "
                              f"{device.target.name}: use fewer stages (stages={cfg.stages}) or smaller tiles")
    plan = _plan(device, conv, cfg)
    plan.check_operands(x, w)  # checks the geometry of x and w now, once (on a GPU)
    return conv, plan


def _groups(groups) -> int:
    """conv2d's groups, a positive int."""
    if not isinstance(groups, Integral) or isinstance(groups, bool) or groups < 1:
        raise skc.LaunchError(f"conv2d's groups must be a positive int (torch.nn.functional.conv2d's), found "
                              f"{groups!r}")
    return int(groups)


class _Stencil:
    """A depthwise convolution (one channel a group, `multiplier` = K/C filters each) or one of groups of 2, 4 or 8
    channels: the direct kernel on CUDA cores (stencil.stencil_conv_kernel), which reads x about once and writes out
    once. x and out are read and written up to 16 bytes at a time (the config's vectors): one that starts off such a
    boundary runs through an aligned copy."""

    def __init__(self, device, conv: ConvShape, dtype: str, spec: EpilogueSpec):
        self.cfg = stencil_config(conv, dtype, spec, device.target.max_shared_bytes)
        self.sizes = (conv.N, conv.H, conv.W, conv.C, conv.P, conv.Q)
        self.launches = Bindings(stencil_conv_kernel[self.cfg.grid(conv.N, conv.P, conv.Q, conv.C),
                                                     self.cfg.threads], self.cfg)
        self.cuda = device.kind == "cuda"
        self.address = address_functions(4)   # x, w, bias, out
        self.vector_bytes = (self.cfg.width * 2, self.cfg.store_chunk * 2)   # (x's loads, out's stores)

    def __call__(self, x, w, out, bias=None, stream=None):
        # (x, w and out's NHWC views start where they do: the key of their addresses is theirs)
        address = self.address
        key = (address[0](x), address[1](w), address[2](out if bias is None else bias), address[3](out))
        bound = self.launches.get(key) if self.cuda else None
        if bound is not None:   # (its addresses were checked when they were new)
            bound(stream)
            return
        check_no_overlap("conv2d", out, x=x, w=w, bias=bias)
        x_nhwc, out_nhwc = _nhwc(x, "x"), _nhwc(out, "out")
        if key[0] % self.vector_bytes[0] or key[3] % self.vector_bytes[1]:
            misaligned("conv2d", ("x", x, key[0]), ("out", out, key[3]))
            with on_stream(x, stream), without_grad(x):   # (a view into its rows, x[:, 1:]: aligned copies)
                copy = aligned_copy(out)
                self(aligned_copy(x), w, copy, bias, stream)
                write_into(out, copy)
            return
        operands = [x_nhwc, _nhwc(w, "w"), out_nhwc if bias is None else bias, out_nhwc]
        if not self.cuda:   # (the interpreter takes pointer arguments as dense arrays: spans; skc's are dense)
            self.launches.kernel(*(span(operand) if paddable(operand) else operand for operand in operands),
                                 *self.sizes, self.cfg, stream=stream)
            return
        self.launches.launch(key, (*operands, *self.sizes), stream)


# Groups of 4, 8 or 16 channels run as the convolution over slabs of SLAB channels (C / SLAB groups of the batched GEMM
# on tensor cores), each slab's filters block-diagonal: SLAB / (C/groups) times the work, not the CUDA cores' stencil.
# Against cuDNN's grouped convolution (H100, batch 32, bf16, channels_last, fifty-seventh session; the filters made
# ahead): ResNeXt 56x56x128 in 32 groups 1.13x (the stencil 0.70x), stride 2 0.94x (0.68x); 56x56x256 in 32 groups
# 1.15x (0.38x), stride 2 1.10x (0.44x); 28x28x256 of 4 a group 1.21x (0.79x); 14x14x512 of 8 1.02x (0.39x). Slabs of
# 32 channels ran 3-8x slower than of 64 (a group of them is less than a k-step), of 128 up to 1.2x slower; groups of
# 2 channels ran 1.09-1.3x slower than on the stencil.
# End to end (H200, fifty-ninth session, benchmarks/grouped_slabs.py) the slab path cost the host about 70 µs a call
# whatever its kernel's time (the filters' zero fill and copy, then conv2d over them): slabs were taken from 2^30
# multiply-adds on. With each stream's filters kept (sixtieth session) it costs 50-63 µs a call (H100, sixty-first
# session): slabs ran faster than the stencil on each row of 4.6e8 multiply-adds but one (of 4 channels a group at
# 56x56, faster in one run, slower in another) and slower on each of 3.5e8 or fewer; groups of 16 channels ran 1.7-4x
# faster over slabs than as the batched GEMM a group from 4.6e8 on (slower at 1.2e8). So slabs are taken from
# SLAB_WORK = 2^28 multiply-adds on, for groups of 4, 8 and 16 channels (of 32: level, and left to the batched GEMM).
SLAB = 64
SLAB_GROUP_CHANNELS = (4, 8, 16)
SLAB_WORK = 2 ** 28


def slab_work(N: int, H: int, W: int, K: int, R: int, S: int, C: int, groups: int, stride: tuple) -> int:
    """The multiply-adds of a grouped convolution (its output pixels counted as the input's over the stride)."""
    return N * -(-H // stride[0]) * -(-W // stride[1]) * K * R * S * (C // groups)


def slab_takes(C: int, K: int, groups: int, work: int) -> bool:
    """Whether a convolution of C channels and K filters in `groups` groups and `work` multiply-adds (slab_work) runs
    over slabs of SLAB channels: a slab's filters, K / (C / SLAB), a multiple of 8 (the grouped GEMM's stores: any
    filters a group of 4 or 8 channels, an even number of 16)."""
    return (groups > 1 and C // groups in SLAB_GROUP_CHANNELS and C % SLAB == 0 and K // (C // SLAB) % 8 == 0
            and work >= SLAB_WORK)


class _BlockDiagonal:
    """A grouped convolution as one of fewer groups of `channels` channels each (all C by default), whose filters
    hold each of the call's groups' filters on their slab's diagonal and zeros elsewhere (channels / (C / groups)
    times the work): for groups whose channels or filters are no multiple of 8 (and not the stencil's), which the
    grouped loaders and the output's per-group map cannot address 16 bytes at a time (right, if slow); and for groups
    of 4, 8 or 16 channels over slabs of SLAB (on tensor cores, not the stencil's CUDA cores). Beside torch's CUDA
    tensors each launch stream has its filters, zeros off the diagonals made once and kept: a call copies w onto the
    diagonals (one copy in the launch's stream, a lock keeping two threads' copies and launches apart), and the
    convolution over them (its plan kept with them) finds its launch bound to their address. Otherwise (other
    arrays, a call a CUDA graph captures) each call makes the filters, in the launch's stream."""

    def __init__(self, groups: int, geometry: tuple, activation, config, channels: int = None):
        self.groups, self.geometry, self.activation, self.config = groups, geometry, activation, config
        self.channels = channels
        self.kept, self.lock = {}, threading.Lock()   # launch stream -> its _KeptFilters

    def __call__(self, x, w, out, bias=None, stream=None):
        C = _nhwc(x, "x").shape[3]
        channels = self.channels or C
        with on_stream(x, stream), without_grad(x):
            handle = keeping_stream(x, stream) if _is_torch(w) else None
            if handle is None:
                self.launch(x, _block_diagonal(w, channels, self.groups), bias, out, stream, C // channels)
                return
            with self.lock:
                kept = self.kept.get(handle)
                if kept is None:
                    kept = self.kept[handle] = _KeptFilters(w, channels, self.groups)
                kept.fill(w)
                if kept.launch is None:   # (the convolution over them: its plan looked up once, by the first call)
                    kept.launch = _looked_up(x, kept.filters, bias, out, *self.geometry, self.activation, self.config,
                                             C // channels)[1]
                kept.launch(x, kept.filters, out, bias=bias, stream=stream)

    def launch(self, x, filters, bias, out, stream, groups: int):
        conv2d(x, filters, bias, *self.geometry, self.activation, out, self.config, stream, groups=groups)


class _KeptFilters:
    """One launch stream's block-diagonal filters for a plan (torch's w): zeros made once (the driver's memory, as
    host_plans.kept_zeros' buffers), with a view of the diagonals a call writes (torch's views cost host time)."""

    __slots__ = ("filters", "diagonals", "groups", "blocks", "launch")

    def __init__(self, w, channels: int, groups: int):
        import torch

        K, R, S, group_channels = _nhwc(w, "w").shape
        self.groups, self.blocks = groups, channels // group_channels
        with torch.inference_mode(False):   # (made under inference_mode, they could not be filled outside it)
            dense = kept_zeros(w, (K, R, S, channels), f"int{8 * w.element_size()}").view(w.dtype)
        self.diagonals = _diagonals(dense, groups, self.blocks, K // groups, R * S, group_channels)
        self.filters = dense.permute(0, 3, 1, 2)
        self.launch = None   # (the plan of the convolution over them: the call's facts, these filters)

    def fill(self, w):
        self.diagonals.copy_(_diagonal_filters(w, self.groups, self.blocks))


def _block_diagonal(w, channels: int, groups: int):
    """w's filters (K x C/groups, KRSC memory) as those of `channels` channels (C, or a slab of C / `channels`
    groups), each filter's at its group's place in its slab."""
    krsc = _nhwc(w, "w")
    K, R, S, group_channels = krsc.shape
    dense = zeros_like(krsc, (K, R, S, channels))
    blocks, filters = channels // group_channels, K // groups   # (blocks: the groups of a slab)
    if _is_torch(w):   # (the slabs' diagonals as one view, one copy)
        _diagonals(dense, groups, blocks, filters, R * S, group_channels).copy_(_diagonal_filters(w, groups, blocks))
        return dense.permute(0, 3, 1, 2)
    every = _arange(K, w)
    # (dense's channels as blocks of C/groups: each filter's group within its slab, one index beside the filter's,
    # picks its block; all C's: the group itself)
    dense.reshape(K, R * S, blocks, group_channels)[every, :, every // filters % blocks, :] = \
        krsc.reshape(K, R * S, group_channels)
    return dense


def _diagonals(dense, groups: int, blocks: int, filters: int, taps: int, group_channels: int):
    """The block-diagonal filters' (torch's, K x R x S x channels memory) diagonals: filter (slab, block, k)'s
    channels (block, c), as a view of shape (slab, k, tap, c, block)."""
    return dense.view(groups // blocks, blocks, filters, taps, blocks, group_channels).diagonal(0, 1, 4)


def _diagonal_filters(w, groups: int, blocks: int):
    """torch's w (K x C/groups, KRSC memory) in the order of _diagonals' view."""
    krsc = _nhwc(w, "w")
    K, R, S, group_channels = krsc.shape
    return krsc.reshape(groups // blocks, blocks, K // groups, R * S, group_channels).permute(0, 2, 3, 4, 1)


def _arange(n: int, like):
    """0 .. n - 1 where `like` lives (torch's device, or numpy)."""
    if _is_torch(like):
        import torch

        return torch.arange(n, device=like.device)
    import numpy as np

    return np.arange(n)


def _checked_epilogue(K: int, bias, activation) -> EpilogueSpec:
    """The epilogue of a convolution of K filters: bias (K values) and the activation checked."""
    check_epilogue_operands("conv2d", None, K, bias=bias)
    spec = EpilogueSpec(bias=bias is not None, activation=activation)
    try:
        spec.check()
    except ValueError as error:
        raise skc.LaunchError(f"conv2d: {error}") from None
    return spec


def _no_launch(x, w, out, bias=None, stream=None):
    """The plan of a convolution of a batch of none: its output, empty, is complete as made (or as given)."""
    check_stream_given(stream)


class _PaddedChannels:
    """A convolution of C channels, no multiple of 8 (the 3 of an RGB image), which the im2col copies (16 bytes a
    pixel) cannot read: x and w copied with `channels` channels, the ones past C zero, and that convolution (a
    plan of its own) written to out. Each call copies x and w once more, in the launch's stream."""

    def __init__(self, channels: int, geometry: tuple, activation, config):
        self.channels, self.geometry, self.activation, self.config = channels, geometry, activation, config

    def __call__(self, x, w, out, bias=None, stream=None):
        with on_stream(x, stream), without_grad(x):
            x, w = _with_channels(x, "x", self.channels), _with_channels(w, "w", self.channels)
            conv2d(x, w, bias, *self.geometry, self.activation, out, self.config, stream)


def _with_channels(x, name: str, channels: int):
    """x (torch's channels_last N x C x H x W, or NHWC) with `channels` channels, the ones past x's zero: a copy of
    its NHWC memory (host_plans.padded), seen as x is."""
    nhwc = _nhwc(x, name)
    copy = padded(nhwc, (*nhwc.shape[:3], channels))
    return copy.permute(0, 3, 1, 2) if _is_torch(x) else copy


def _check_out(conv: ConvShape, x, out):
    """out must be the convolution's output as the call would make it: (N, K, P, Q) channels_last for torch, NHWC
    (N, P, Q, K) and row-major otherwise, of x's type (the kernel stores its tiles through a map of that type)."""
    torch_layout = _is_torch(x)
    if _is_torch(out) != torch_layout:   # (a torch out's shape is NCHW, any other's NHWC)
        raise skc.LaunchError(f"conv2d's out is a {type(out).__name__} and x a {type(x).__name__}: pass an out of "
                              "x's kind (a channels_last torch tensor for a torch x, an NHWC array otherwise), or "
                              "none")
    shape = (conv.N, conv.K, conv.P, conv.Q) if torch_layout else (conv.N, conv.P, conv.Q, conv.K)
    if tuple(out.shape) != shape:
        raise skc.LaunchError(f"conv2d's out has shape {tuple(out.shape)}; the convolution's output is {shape} "
                              f"({'NCHW shape, channels_last' if torch_layout else 'NHWC'})")
    dtype = operand_dtype_name(x, "x", "conv2d")
    if dtype_label(out) != dtype:   # (by label: numpy's float16 and an skc array's f16 are one type)
        raise skc.LaunchError(f"conv2d's out is {out.dtype}; conv2d writes x's type ({dtype}): pass an out of that "
                              "type, or none")
    if not contiguous(out.permute(0, 2, 3, 1) if torch_layout else out):
        raise skc.LaunchError("conv2d's out must be contiguous NHWC memory (channels_last for torch): pass a fresh "
                              "out, or none")


def _plan(device, conv: ConvShape, cfg: MatmulConfig) -> GemmPlan:
    """The GEMM launch of `conv`: x and w as `_operands` makes them, out as [N*P*Q, K] in the GEMM's boxes; with
    groups, a launch over them (the scheduler's batch), out seen as groups x N*P*Q x K/groups, so that a tile's
    columns past its group's filters are clipped, not stored over the next group's."""
    (_, a), (_, b) = _operands(conv, cfg)
    M = conv.N * conv.P * conv.Q
    if conv.groups > 1:
        by_group = ((conv.groups, M, conv.group_filters), (conv.group_filters, conv.K, 1))
        out = lambda y: skc.TensorMap(_nhwc(y, "out"), cfg.boxes()["out"], view=by_group)
    else:
        out = lambda y: skc.TensorMap(view(_nhwc(y, "out"), (M, conv.K)), cfg.boxes()["out"])
    # (the vector im2col loader copies 16 bytes at a time from x's and w's addresses: aligned, as maps' are)
    vector = cfg.loader != "tma" and cfg.loader.vector
    return GemmPlan(device, cfg, _gemm_shape(conv, cfg), (a, b, out), names=("conv2d", "x", "w"),
                    aligned=(True, True, True) if vector else None, batches=conv.groups if conv.groups > 1 else None)


def _operands(conv: ConvShape, cfg: MatmulConfig) -> tuple:
    """What the kernel takes for x and for w, each as (its type, the function making it from a call's tensor): x's
    im2col map (pixels x chunk boxes) and the filter viewed as [K, R*S, C] (tile_n x 1 x chunk boxes); for a
    pointwise conv, x viewed as [N*H*W, C] and the filter as [K, C] in the GEMM's boxes; for the vector loader,
    pointers to x and w themselves. With groups, w's filters have C/groups channels."""
    elem, boxes, chunk = ir.ScalarType(cfg.dtype), cfg.boxes(), cfg.payload().layouts["a"].chunk

    def tiled(name, shape, box):
        return ir.TensorMapType(elem, box, 128), lambda t: skc.TensorMap(view(_nhwc(t, name), shape), box)

    if cfg.loader == "tma":
        return tiled("x", (conv.N * conv.H * conv.W, conv.C), boxes["a"]), tiled("w", (conv.K, conv.C), boxes["b"])
    if cfg.loader.vector:
        return tuple((skc.Ptr[elem], Direct(lambda t, n=name: _aligned(_nhwc(t, n), n))) for name in "xw")
    lower, upper = conv.corners()
    return ((ir.Im2colTensorMapType(elem, (cfg.tile_m, chunk), 128, 4),
             lambda x: skc.Im2colTensorMap(_nhwc(x, "x"), channels=chunk, pixels=cfg.tile_m, lower=lower, upper=upper,
                                           strides=conv.stride)),
            tiled("w", (conv.K, conv.R * conv.S, conv.group_channels), (cfg.tile_n, 1, chunk)))


def _gemm_shape(conv: ConvShape, cfg: MatmulConfig) -> tuple:
    """(M, N, K) of the GEMM: the im2col loader's (its K padded to whole channel blocks), or x as [N*H*W, C]."""
    return cfg.loader.gemm_shape() if cfg.loader != "tma" else (conv.N * conv.H * conv.W, conv.K, conv.C)


@functools.lru_cache(maxsize=256)
def _config(conv: ConvShape, dtype: str, target, multiprocessors: int, spec: EpilogueSpec, config=None):
    """The GEMM's configuration for the implicit GEMM of `conv` (B, the filter, is K-major): `config`'s tiles and
    stages, or tiles that fill the GPU; the im2col loader, or the GEMM's own TMA loader for a pointwise conv."""
    # (no split-K: its last share stores through a pointer, and conv2d's out is a tensor map of the NHWC view)
    # (all of A's rows: a config chosen for a GEMM of fewer rows than a tile loads only those, a_rows)
    # (TMA stores to the NHWC view's map, and the im2col loaders' own loads: no direct store, no narrower loads,
    # no cp.async copies)
    # (x and w as the kernel's a and b, one convolution a launch: not swapped, as a GEMM's out^T = b^T a^T, nor
    # batched but over the groups: the loaders' origins then (group, row0))
    base = {"dtype": dtype, "a_k_major": True, "b_k_major": True, "epilogue": spec, "cluster_m": 1, "cluster_n": 1,
            "split_k": 1, "a_rows": 0, "a_box_rows": 0, "store": "tma", "vector_width": 8, "vector_async": False,
            "swap_ab": False, "batched": "ab" if conv.groups > 1 else ""}
    # the vector im2col loader where TMA im2col cannot reach, and where the config asks for it
    vector = (config is not None and config.loader == "vector") or not conv.tma_reaches()
    M, N, K = conv.gemm_shape()
    if config is None:
        config = filling_config(M * conv.groups, N, multiprocessors, target.max_shared_bytes,
                                k_steps=K // conv.tile_k, **base)
        if conv.groups > 1:   # (a group's filters, K/groups, in one tile of as few columns as cover them: 16s)
            config = replace(config, tile_n=min(config.tile_n, -(-N // 16) * 16))
    # (a GEMM over x, [N*H*W, C]; a grouped one reads each group's channels through the im2col loader)
    pointwise = (conv.R, conv.S, conv.stride, conv.padding, conv.groups) == (1, 1, (1, 1), (0, 0), 1)
    # (groups of channels no multiple of a k-step: a TMA box would read the next group's, whose non-finite values
    # the filters' zeros would not cancel; the vector loader reads them as zeros)
    vector = vector or conv.group_channels % config.tile_k != 0 and conv.groups > 1
    loader = "tma" if pointwise and not vector else replace(conv, tile_k=config.tile_k, vector=vector)
    return replace(config, loader=loader, **base)


def compile_arguments(target, conv: ConvShape, dtype: str = "bf16", config=None, multiprocessors: int = 132) -> dict:
    """matmul_kernel's arguments for `Kernel.compile` without data (skc compile, tests): the configuration
    conv2d() picks for `conv` on `target`, and the types of its operands; for a grouped `conv`, those of
    matmul_batched_kernel, which conv2d launches over the groups (`batches`)."""
    target = skc.get_target(target)
    if not target.has("tma"):   # (else the GEMM refuses the Hopper config, hinting to let matmul pick one)
        raise skc.SkcError(f"conv2d loads with TMA im2col copies (sm_90a); {target.name} has no TMA")
    cfg = _config(conv, dtype, target, multiprocessors, EpilogueSpec(), config)
    (a, _), (b, _) = _operands(conv, cfg)
    (M, N, K), elem = _gemm_shape(conv, cfg), ir.ScalarType(dtype)
    return {"a": a, "b": b, "out": ir.TensorMapType(elem, cfg.boxes()["out"], 128), "M": M, "N": N, "K": K,
            "c_in": skc.Ptr[elem], "bias": skc.Ptr[elem], "cfg": cfg, "block": cfg.threads,
            **({"batches": conv.groups} if conv.groups > 1 else {})}


def _aligned(x, name: str):
    """x, unless its memory does not start on a 16-byte boundary (the vector loader copies 16 bytes at a time)."""
    if hasattr(x, "data_ptr"):   # torch (whose __cuda_array_interface__ refuses tensors that require grad)
        pointer = x.data_ptr()
    elif hasattr(x, "__cuda_array_interface__"):   # cupy and others
        pointer = x.__cuda_array_interface__["data"][0]
    else:
        pointer = getattr(x, "ptr", None)   # skc arrays
    if pointer is not None and pointer % 16:
        raise skc.LaunchError(f"conv2d's '{name}' starts at address {pointer:#x}, not on a 16-byte boundary: pass "
                              f"a copy in fresh storage ({name}.clone(memory_format=torch.channels_last) for a "
                              f"torch tensor, {name}.copy() for a cupy array)")
    return x


def _pair(value, name: str, least: int) -> tuple:
    """An int or an (h, w) pair of ints, each at least `least`, as a pair (a sequence of one int, as torch takes it,
    for both)."""
    pair = (value, value) if isinstance(value, Integral) else tuple(value) if isinstance(value, (tuple, list)) else ()
    pair = pair * 2 if len(pair) == 1 else pair
    if len(pair) != 2 or any(not isinstance(v, Integral) or isinstance(v, bool) or v < least for v in pair):
        raise skc.LaunchError(f"conv2d's {name} must be an int or an (h, w) pair of ints, each at least {least}, "
                              f"found {value!r}")
    return tuple(int(v) for v in pair)


def _padding(padding, stride, dilation, R: int, S: int) -> tuple:
    """The (h, w) padding, from a pair or torch's "valid" and "same" (the output as large as the input: each side
    padded by half the filter's extent, dilation included)."""
    if not isinstance(padding, str):
        return _pair(padding, "padding", 0)
    if padding == "valid":
        return (0, 0)
    if padding != "same":
        raise skc.LaunchError(f"conv2d's padding must be an int, an (h, w) pair, 'valid' or 'same', found {padding!r}")
    if stride != (1, 1):
        raise skc.LaunchError(f"padding='same' needs stride 1 (as in torch), found stride {stride}: pass the padding "
                              "as numbers")
    extent = (dilation[0] * (R - 1), dilation[1] * (S - 1))
    if extent[0] % 2 or extent[1] % 2:
        raise skc.LaunchError(f"padding='same' with a {R}x{S} filter (dilation {dilation}) pads one side more than "
                              "the other, which conv2d does not do: pad x yourself (torch.nn.functional.pad) and "
                              "pass padding=0")
    return (extent[0] // 2, extent[1] // 2)


def _is_torch(x) -> bool:
    return torch_type(type(x))   # (a subclass of torch.Tensor too: NCHW shapes, not NHWC)


def _nhwc(x, name: str):
    """x's channels-last (NHWC / KRSC) view: torch tensors are NCHW / OIHW views of channels_last memory."""
    if len(x.shape) != 4:
        raise skc.LaunchError(f"conv2d's '{name}' must have 4 dimensions, found shape {tuple(x.shape)}")
    if not _is_torch(x):
        return x
    import torch

    if not x.is_contiguous(memory_format=torch.channels_last):   # (NCHW memory, or a view with gaps)
        raise skc.LaunchError(f"conv2d's '{name}' must be in the channels_last memory format, contiguous (found "
                              f"strides {tuple(x.stride())}): pass {name}.contiguous(memory_format=torch.channels_last)"
                              f" (a slice of channels_last memory is no copy with .to(memory_format=))")
    return x.permute(0, 2, 3, 1)


def _empty_output(x, nhwc, torch_layout: bool):
    """The output: an (N, K, P, Q) channels_last tensor like x (its subclass kept, as F.conv2d keeps it), or an
    (N, P, Q, K) array."""
    if not torch_layout:
        return empty_like(x, nhwc)
    return x.new_empty(nhwc).permute(0, 3, 1, 2)


__all__ = ["ConvShape", "compile_arguments", "conv2d"]
