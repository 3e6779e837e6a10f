"""Per-channel stencils over NHWC images on CUDA cores: the depthwise convolution (each output channel reads one
input channel, K = multiplier · C) and its generalization to narrow groups (each output channel reads the
`group_channels` input channels of its group: 2, 4 or 8, which tensor cores' 16-byte rows cannot address), a kernel that
reads x about once and writes y once, composed as the GEMM is from a scheduler (`PixelScheduler`: which pixels and
channels a thread computes), a TileIO that stages the block's filters in shared memory (`ChannelTapsLoader`), one that
reads x's pixels with the padding as zeros (`PixelLoader`), a TileOp (`GroupStencil`: f32 sums in registers) and an
epilogue (`PixelStoreEpilogue`: the fused bias and activation, then vector stores). A thread holds `width` channels
(16 bytes; whole groups) of `columns` neighbouring output pixels of one row, so that the pixels its taps overlap are
loaded once."""
from __future__ import annotations

from dataclasses import dataclass

import skc
from skc import frontend
from .arguments import check_has, check_integer, invalid, refuse
from .epilogue import EpilogueSpec, activate, check_pointer

STORE_WIDTH = 8   # elements of one vector store: 16 bytes of 2-byte elements


@dataclass(frozen=True)
class StencilConfig:
    """The compile-time shape of a depthwise or narrow-group convolution: the filter (R x S taps, stride, padding and
    dilation as (h, w) pairs), `multiplier` filters a channel (K/C), `group_channels` input channels a group (1:
    depthwise; output channel k = c · multiplier + m reads the channels of c's group), the element type, the fused
    epilogue; and its tiling: `width` channels a thread (a vector of whole groups; it divides C), `lanes` threads
    along the channels and `groups` along the pixels of a block, each thread `columns` output pixels of a row."""

    dtype: str
    R: int
    S: int
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    dilation: tuple = (1, 1)
    multiplier: int = 1
    width: int = 8
    lanes: int = 8
    groups: int = 32
    columns: int = 4
    epilogue: EpilogueSpec = EpilogueSpec()
    group_channels: int = 1

    def __post_init__(self):
        # (unchecked, a float or a 0 failed inside the blocks, "integer '//' by the constant 0", "'int' object is not
        # iterable"; a stride of 0 or a width of 3 compiled, and loaded or stored wrong)
        if self.dtype not in ("bf16", "f16"):
            raise invalid(f"StencilConfig's dtype is 'bf16' or 'f16', found {self.dtype!r}", hint="dtype='bf16'")
        for name in ("R", "S", "multiplier", "lanes", "groups", "columns"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise invalid(f"StencilConfig's {name} is an int of 1 or more, found {value!r}",
                              hint="make the config with stencil_config(conv, dtype, epilogue)")
        for name, lowest in (("stride", 1), ("padding", 0), ("dilation", 1)):
            pair = getattr(self, name)
            if not (isinstance(pair, tuple) and len(pair) == 2 and
                    all(isinstance(v, int) and not isinstance(v, bool) and v >= lowest for v in pair)):
                raise invalid(f"StencilConfig's {name} is an (h, w) pair of ints of {lowest} or more, found {pair!r}",
                              hint=f"{name}=({lowest}, {lowest})")
        if not isinstance(self.width, int) or isinstance(self.width, bool) or self.width not in (1, 2, 4, 8):   # (a thread's vector: at most 16 bytes)
            raise invalid(f"StencilConfig's width is 1, 2, 4 or 8 channels (a vector of at most 16 bytes), found "
                          f"{self.width!r}", hint="width=8")
        if self.group_channels not in GROUP_CHANNELS or self.width % self.group_channels and self.width > 1:
            raise invalid(f"StencilConfig's group_channels is one of {GROUP_CHANNELS}, and a thread's width holds whole "
                          f"groups; found {self.group_channels!r} with width {self.width}",
                          hint="group_channels=1 (depthwise), or 2, 4 or 8 dividing width")
        if not isinstance(self.epilogue, EpilogueSpec):
            raise invalid(f"StencilConfig's epilogue is an EpilogueSpec, found {self.epilogue!r}",
                          hint="epilogue=EpilogueSpec(bias=..., activation=...)")

    @property
    def element(self):
        """The DSL's type of x's, w's and the output's elements."""
        return getattr(skc, self.dtype)

    @property
    def threads(self) -> int:
        return self.lanes * self.groups

    @property
    def slice_channels(self) -> int:
        """Input channels a block computes (its channel slice)."""
        return self.lanes * self.width

    @property
    def store_chunk(self) -> int:
        """Output channels of one vector store: a power of 2 dividing a thread's width x multiplier filters (and so
        K), at most 16 bytes."""
        count = self.width * self.multiplier
        return min(count & -count, STORE_WIDTH)

    @property
    def shared_bytes(self) -> int:
        """Shared memory of a block's filters (ChannelTapsLoader's): every tap, group channel and filter of its
        slice."""
        return filter_bytes(self.R, self.S, self.group_channels, self.multiplier, self.slice_channels)

    def grid(self, N: int, P: int, Q: int, C: int) -> int:
        """Blocks of a launch: every channel slice of every block of pixel groups."""
        pixel_groups = N * P * -(-Q // self.columns)
        return -(-pixel_groups // self.groups) * -(-C // self.slice_channels)


SUMS = 64      # f32 sums a thread keeps at most (columns x multiplier x width): more and ptxas spills
GROUP_CHANNELS = (1, 2, 4, 8)   # channels a group the stencil takes (16 and more: the GEMM's tensor cores)
# f32 values a thread of a group stencil (2 to 8 channels a group) keeps at most by `live_values`: of the 32
# configurations it takes over 2, 4 and 8 channels a group, filters of 3 to 7 taps, strides 1 and 2 and 1 and 2
# filters a channel (C = 256), 30 assembled without spills on sm_90a, one spilled 16 bytes (2 channels, two filters
# a channel, 7 x 7) and one 60 (8 channels, 3 x 3, stride 2: four pixels a thread, which ran 1.30x as fast as two
# without spills on an H100, as did four against two at 4 channels and two filters a channel, 1.72x), where
# depthwise's tiling spilled on 17 of 35 (fifty-sixth session; tests/blocks/test_conv2d_stencil_groups.py)
LIVE_VALUES = 176
# threads a block (about) and output pixels a thread, for filters of up to 9 taps and for larger ones: measured on an
# H100 (fifty-fifth session, benchmarks/NOTES.md), 3 x 3 filters ran 1.06-1.14x faster in blocks of 128 than of 256,
# 7 x 7 ones 1.10-1.40x faster with eight pixels a thread than with four (fewer loads of the pixels a row's taps share)
SMALL_FILTER = (128, 4)
LARGE_FILTER = (256, 8)
# a group stencil's threads a block: 256 ran 1.00-1.37x as fast as 128 on every grouped shape of
# benchmarks/grouped_stencil.py (2, 4 and 8 channels a group; H100, fifty-sixth session)
GROUP_THREADS = 256
MAX_SHARED_BYTES = 232448   # a block's shared memory on sm_90a (the opt-in limit): conv2d passes its device's


def live_values(g: int, multiplier: int, width: int, columns: int, S: int, stride: int, dilation: int) -> int:
    """About the f32 values a thread of a group stencil keeps live through a filter row: its sums, the row's input
    pixels its taps read (as f32: each is converted once and used for every channel of its group), and one tap's
    weights."""
    pixels = (columns - 1) * stride + (S - 1) * dilation + 1
    return columns * multiplier * width + pixels * width + g * multiplier * width


def filter_bytes(R: int, S: int, g: int, multiplier: int, channels: int) -> int:
    """Shared memory (2-byte elements) of the R x S filters of `channels` channels of g channels a group, `multiplier`
    filters each."""
    return R * S * g * multiplier * channels * 2


def takes(C: int, K: int, groups: int, R: int, S: int, stride: int = 1, dilation: int = 1,
          max_shared_bytes: int = MAX_SHARED_BYTES) -> bool:
    """Whether the stencil computes the convolution of C channels by K filters of R x S taps (its width's stride and
    dilation) in `groups` groups: one channel a group (depthwise, any filters), or 2, 4 or 8 with a whole multiple of
    them as each group's filters and a thread of one group's channels and one output pixel within LIVE_VALUES; and
    the filters of a block of one thread's channels within `max_shared_bytes` (a block stages its slice's filters)."""
    g, filters = C // groups, K // groups
    if groups == 1 or g not in GROUP_CHANNELS or filters % g:
        return False
    if filter_bytes(R, S, g, filters // g, g) > max_shared_bytes:   # (one lane of one thread's vector, g wide)
        return False
    return g == 1 or live_values(g, filters // g, g, 1, S, stride, dilation) <= LIVE_VALUES


def stencil_config(conv, dtype: str, epilogue: EpilogueSpec,
                   max_shared_bytes: int = MAX_SHARED_BYTES) -> StencilConfig:
    """The tiling of grouped convolution `conv` (a ConvShape the stencil `takes`): 16-byte vectors of channels
    (narrower where C or the sums allow), threads along the channels that cover C with the fewest idle lanes, and
    four output pixels a thread in blocks of about 128 threads for filters of up to 9 taps, eight in blocks of about
    256 for larger ones (fewer for a large multiplier); for groups of 2 to 8 channels, blocks of about 256 threads
    and fewer pixels a thread, then narrower vectors (never under a group), until `live_values` is within
    LIVE_VALUES; fewer threads along the channels (then narrower vectors) where a block's filters would take more
    than `max_shared_bytes`."""
    g = conv.group_channels
    multiplier = conv.K // conv.C
    width = STORE_WIDTH
    while width > g and (conv.C % width or multiplier * width > SUMS):
        width //= 2
    while conv.C % width:   # (an odd C's depthwise convolution: one channel a thread)
        width //= 2
    threads, columns = SMALL_FILTER if conv.R * conv.S <= 9 else LARGE_FILTER
    threads = GROUP_THREADS if g > 1 else threads
    columns = max(1, min(columns, SUMS // (multiplier * width)))
    if g > 1:
        def live(width, columns):
            return live_values(g, multiplier, width, columns, conv.S, conv.stride[1], conv.dilation[1])
        while columns > 1 and live(width, columns) > LIVE_VALUES:
            columns //= 2
        while width > g and live(width, columns) > LIVE_VALUES:
            width //= 2
    # (a block's filters within shared memory: narrower vectors where one lane's pass it, then fewer lanes; `takes`
    # bounds one lane of a group's width)
    while width > g and filter_bytes(conv.R, conv.S, g, multiplier, width) > max_shared_bytes:
        width //= 2
    vectors = conv.C // width
    most = min(vectors, 16, max(1, max_shared_bytes // filter_bytes(conv.R, conv.S, g, multiplier, width)))
    # (the fewest lanes that leave the fewest idle of the slices covering C: 18 vectors take two slices of 9)
    lanes = min(range(1, most + 1), key=lambda n: (-(-vectors // n) * n - vectors, -n))
    return StencilConfig(dtype, conv.R, conv.S, conv.stride, conv.padding, conv.dilation, multiplier, width, lanes,
                         max(1, threads // lanes), columns, epilogue, g)


class PixelScheduler:
    """Which outputs this thread computes: the block's channel slice (block ids run over the slices first, so that
    neighbouring blocks read the same pixels) and group of `cfg.groups` pixel groups, each `cfg.columns` output
    pixels of one row; the thread's `width` channels from `c0` of output pixels (n, p, q0 ..), `valid` where they
    exist (a thread past the last group or channel computes nothing and stores nothing)."""

    def __init__(self, cfg: StencilConfig, N, P, Q, C):
        _check_config("PixelScheduler", cfg)
        for name, value in (("N", N), ("P", P), ("Q", Q), ("C", C)):
            check_integer("PixelScheduler", name, value, f"give {name} as the kernel's i32 parameter")
        slices = skc.cdiv(C, cfg.slice_channels)
        block = skc.block_id(0)
        tid = skc.thread_id(0)
        self.slice = block % slices
        column_groups = skc.cdiv(Q, cfg.columns)
        group = (block // slices) * cfg.groups + tid // cfg.lanes
        self.lane = tid % cfg.lanes
        self.c0 = self.slice * cfg.slice_channels + self.lane * cfg.width
        self.q0 = (group % column_groups) * cfg.columns
        self.p = group // column_groups % P
        self.n = group // column_groups // P
        self.valid = (self.n < N) & (self.c0 < C)


class ChannelTapsLoader:
    """TileIO: the filters of a block's channel slice, `taps` per output channel and group channel (w holds K x
    taps x group_channels, each filter's together), copied by the whole block into shared memory transposed (tap,
    group channel, multiple, channel), so that a thread reads its channels' weights of one tap and group channel as
    one vector. Filters past K are zeros."""

    def __init__(self, cfg: StencilConfig, taps: int):
        _check_config("ChannelTapsLoader", cfg)
        if taps != cfg.R * cfg.S or isinstance(taps, bool):   # (fewer: the stencil read weights past them)
            refuse("ChannelTapsLoader", "taps", f"the filter's R · S = {cfg.R * cfg.S} taps, a compile-time int", taps,
                   "ChannelTapsLoader(cfg, cfg.R * cfg.S)")
        self.cfg, self.taps = cfg, taps
        self.filters = cfg.slice_channels * cfg.multiplier   # of the slice
        self.smem = skc.shared(taps * cfg.group_channels * self.filters, cfg.element)

    def __call__(self, w, K, slice_index):
        """Copy the slice's filters (filter after filter in w, so neighbouring threads read neighbouring taps),
        then wait for the whole block's copies."""
        cfg = self.cfg
        check_pointer("ChannelTapsLoader", "w", w, "the filters")
        check_integer("ChannelTapsLoader", "K", K, "give K, the filters (C · multiplier), as an integer")
        check_integer("ChannelTapsLoader", "slice_index", slice_index, "give the scheduler's tiles.slice")
        _note_taps_filled(self)
        g, weights = cfg.group_channels, self.taps * cfg.group_channels   # (a filter's)
        first = slice_index * self.filters
        for i in skc.static_range(-(-weights * self.filters // cfg.threads)):
            e = skc.thread_id(0) + i * cfg.threads
            local, within = e // weights, e % weights
            inside = (e < weights * self.filters) & (first + local < K)
            value = skc.load(w + (skc.i64(first + local) * weights + within), mask=inside, other=0.0)
            channel, multiple = local // cfg.multiplier, local % cfg.multiplier
            skc.store(self.smem.ptr + ((within * cfg.multiplier + multiple) * cfg.slice_channels + channel), value,
                      mask=e < weights * self.filters)
        skc.barrier()

    def weights(self, tap: int, t: int, multiple: int, lane):
        """The f32 weights of filter `multiple` of each of the thread's channels at `tap`, for group channel t (of
        the channel's group: the weight of its t-th channel)."""
        cfg = self.cfg
        at = ((tap * cfg.group_channels + t) * cfg.multiplier + multiple) * cfg.slice_channels + lane * cfg.width
        # (staged as x's type and converted here, at each filter row: staged as f32, 2-4 % faster at 2 and 4
        # channels a group, 10-18 % slower at 8 and on depthwise convolutions, H100, fifty-sixth session)
        return skc.f32(skc.load(self.smem.ptr + at, width=cfg.width))


class PixelLoader:
    """TileIO: `width` channels from c0 of x's pixel (n, h, w) (NHWC, C channels), in x's type (two a register until
    used: half the registers of f32); zeros outside the image (the padding) and where the thread is not `valid`."""

    def __init__(self, x, H, W, C, width: int):
        check_pointer("PixelLoader", "x", x, "the NHWC input")
        for name, value in (("H", H), ("W", W), ("C", C)):
            check_integer("PixelLoader", name, value, f"give {name} as the kernel's i32 parameter")
        self.x, self.H, self.W, self.C, self.width = x, H, W, C, width

    def row(self, n, h, valid):
        """Pixel 0 of row h of image n, and whether the row lies inside the image (and the thread computes)."""
        # (n · H in 64 bits: conv2d bounds the output's pixels to 32 bits, not x's rows, N · H past 2**31 at strides)
        return (skc.i64(n) * self.H + h) * self.W, valid & (h >= 0) & (h < self.H)

    def __call__(self, row, inside, w, c0):
        inside = inside & (w >= 0) & (w < self.W)
        return skc.load(self.x + ((row + w) * self.C + c0), width=self.width, mask=inside, other=0.0)


class GroupStencil:
    """TileOp: the f32 sums of a thread's `columns` output pixels of one row, in one vector (`acc`: sum c of filter
    multiple m of pixel j at `place(j, m, c)`): for each filter row, each input pixel the row's taps read is loaded
    once and added, times its taps' weights, into every output pixel it reaches, each output channel of a group
    (c's: c and the channels beside it in the thread's vector) from each channel of the group (ptxas keeps the
    pixels of a row in registers: from a row's loads, one value for each)."""

    def __init__(self, cfg: StencilConfig):
        _check_config("GroupStencil", cfg)
        self.cfg = cfg
        # (one run-time vector: a loop carries it from row to row, as OnlineSoftmax's state)
        self.acc = skc.full(cfg.columns * cfg.multiplier * cfg.width, 0.0, skc.f32)

    def __call__(self, load: PixelLoader, taps: ChannelTapsLoader, tiles: PixelScheduler):
        cfg = self.cfg
        for name, value, kind in (("load", load, PixelLoader), ("taps", taps, ChannelTapsLoader),
                                  ("tiles", tiles, PixelScheduler)):
            if not isinstance(value, kind):
                refuse("GroupStencil", name, f"a {kind.__name__}", value, "stencil(PixelLoader(x, H, W, C, cfg.width), "
                       "taps, tiles)")
        if load.width != cfg.width:   # (other vectors than the sums' channels: out of range, or channels left out)
            refuse("GroupStencil", "load's width", f"the config's width, {cfg.width}", load.width,
                   "PixelLoader(x, H, W, C, cfg.width)")
        if not _taps_filled(taps):   # (the weights read from shared memory nothing wrote)
            raise frontend.current().error("GroupStencil reads the filters' taps before the ChannelTapsLoader copied "
                                           "them", hint="call taps(w, K, tiles.slice) before the stencil")
        cfg = self.cfg
        g = cfg.group_channels
        (stride_h, stride_w), (pad_h, pad_w), (dil_h, dil_w) = cfg.stride, cfg.padding, cfg.dilation
        first_w = tiles.q0 * stride_w - pad_w
        # (a run-time loop over the filter's rows: unrolled, ptxas would load every row's pixels and weights at once
        # and run out of registers)
        for r in range(cfg.R):
            row, inside = load.row(tiles.n, tiles.p * stride_h - pad_h + r * dil_h, tiles.valid)
            weights = [taps.weights(r * cfg.S + s, t, m, tiles.lane) for s in skc.static_range(cfg.S)
                       for t in skc.static_range(g) for m in skc.static_range(cfg.multiplier)]
            pixels = [load(row, inside, first_w + offset, tiles.c0) for offset in self.offsets()]
            sums = []   # (grown by append: a run-time loop's lists are not assigned item by item)
            for j in skc.static_range(cfg.columns):
                for m in skc.static_range(cfg.multiplier):
                    for c in skc.static_range(cfg.width):
                        total = self.acc[self.place(j, m, c)]
                        for pixel, s in self.taps_of(j):
                            for t in skc.static_range(g):   # (channel c - c % g + t of the pixel: c's group's t-th)
                                total = skc.fma(skc.f32(self.channel(pixels[pixel], c - c % g + t)),
                                                self.channel(weights[(s * g + t) * cfg.multiplier + m], c), total)
                        sums.append(total)
            self.acc = skc.vector(*sums)

    def channel(self, values, c: int):
        """Channel c of a thread's `width` channels of one pixel or tap (a vector, or the value itself for one
        channel: an odd C's)."""
        if self.cfg.width == 1:
            return values
        return values[c]

    @frontend.host
    def place(self, j: int, m: int, c: int) -> int:
        """Where `acc` holds the sum of channel c, filter multiple m, of the thread's output pixel j."""
        return (j * self.cfg.multiplier + m) * self.cfg.width + c

    @frontend.host
    def offsets(self) -> list:
        """The input pixels the thread's taps of a filter row read, by their offsets from its first one (none between
        a dilated filter's taps)."""
        cfg = self.cfg
        return sorted({j * cfg.stride[1] + s * cfg.dilation[1] for j in range(cfg.columns) for s in range(cfg.S)})

    @frontend.host
    def taps_of(self, j: int) -> list:
        """(which of `offsets()`, tap) of each tap of output pixel j in a filter row."""
        cfg, offsets = self.cfg, self.offsets()
        return [(offsets.index(j * cfg.stride[1] + s * cfg.dilation[1]), s) for s in range(cfg.S)]


class PixelStoreEpilogue:
    """TileIO: a thread's sums to the NHWC output (K = multiplier · C channels): the fused bias (K values) and
    activation, converted to the output's type, filter k = c · multiplier + m of channel c stored in place, in
    vectors of at most 16 bytes; pixels past Q and threads not `valid` store nothing."""

    def __init__(self, out, bias, P, Q, cfg: StencilConfig):
        _check_config("PixelStoreEpilogue", cfg)
        check_pointer("PixelStoreEpilogue", "out", out, "the NHWC output")
        if cfg.epilogue.bias:
            check_pointer("PixelStoreEpilogue", "bias", bias, "the K biases")
        self.out, self.bias, self.P, self.Q, self.cfg = out, bias, P, Q, cfg

    def __call__(self, stencil: GroupStencil, tiles: PixelScheduler, C):
        if not isinstance(stencil, GroupStencil):
            refuse("PixelStoreEpilogue", "stencil", "the GroupStencil whose sums it stores", stencil,
                   "epilogue(stencil, tiles, C)")
        check_integer("PixelStoreEpilogue", "C", C, "give C, the input's channels, as an integer")
        cfg = self.cfg
        dtype = cfg.element
        count = cfg.width * cfg.multiplier   # the thread's filters, from k0
        k0, K = tiles.c0 * cfg.multiplier, C * cfg.multiplier
        bias = None
        if cfg.epilogue.bias:
            bias = [skc.f32(skc.load(self.bias + k0 + i, mask=tiles.valid, other=0.0))
                    for i in skc.static_range(count)]
        row = skc.i64(tiles.n * self.P + tiles.p) * self.Q
        chunk = cfg.store_chunk   # (k0 + first stays aligned)
        for j in skc.static_range(cfg.columns):
            inside = tiles.valid & (tiles.q0 + j < self.Q)
            values = []
            for i in skc.static_range(count):   # (the thread's filter i: channel i // multiplier, multiple i % it)
                value = stencil.acc[stencil.place(j, i % cfg.multiplier, i // cfg.multiplier)]
                if bias is not None:
                    value = value + bias[i]
                values.append(dtype(activate(cfg.epilogue.activation, value)))
            at = self.out + ((row + tiles.q0 + j) * K + k0)
            for first in skc.static_range(0, count, chunk):
                part = values[first:first + chunk]
                skc.store(at + first, skc.vector(*part) if chunk > 1 else part[0], mask=inside)


def _check_config(block: str, cfg):
    if not isinstance(cfg, StencilConfig):
        refuse(block, "cfg", "a StencilConfig", cfg, "stencil_config(conv, dtype, epilogue) on the host, passed as the "
                                                      "kernel's constexpr")


@frontend.host
def _note_taps_filled(taps):
    frontend.current().facts(__name__ + ".taps")[id(taps)] = taps


@frontend.host
def _taps_filled(taps) -> bool:
    return frontend.current().facts(__name__ + ".taps").get(id(taps)) is taps


@skc.kernel
def stencil_conv_kernel(x, w, bias, out, N: skc.i32, H: skc.i32, W: skc.i32, C: skc.i32, P: skc.i32, Q: skc.i32,
                        cfg: skc.constexpr):
    """out = activation(conv2d(x, w, groups=C/cfg.group_channels) + bias): x N x H x W x C, w K x R x S x
    group_channels (K = multiplier · C), out N x P x Q x K, all NHWC; a launch of cfg.grid(N, P, Q, C) blocks of
    cfg.threads threads."""
    tiles = PixelScheduler(cfg, N, P, Q, C)
    taps = ChannelTapsLoader(cfg, cfg.R * cfg.S)
    taps(w, C * cfg.multiplier, tiles.slice)
    stencil = GroupStencil(cfg)
    stencil(PixelLoader(x, H, W, C, cfg.width), taps, tiles)
    PixelStoreEpilogue(out, bias, P, Q, cfg)(stencil, tiles, C)


__all__ = ["ChannelTapsLoader", "GroupStencil", "PixelLoader", "PixelScheduler", "PixelStoreEpilogue", "StencilConfig",
           "stencil_config", "stencil_conv_kernel", "takes"]
