"""TileIO for convolutions: the im2col loader of conv2d's implicit GEMM.

A conv2d over NHWC activations x [N, H, W, C] with KRSC filters w [K, R, S, C] is the GEMM
y[N·P·Q, K] = A[N·P·Q, R·S·Cp] · B[R·S·Cp, K]: row m of A is output pixel (n, p, q), column
(r, s, c) of A is channel c of the input pixel that filter tap (r, s) reads for it. Channels are
taken in blocks of tile_k (Cp = C rounded up to tile_k; the channels past C read as zeros on both
sides). A grouped convolution (`groups` = G) is G such GEMMs, one a group: group g's reads channels g·C/G ..
(g + 1)·C/G - 1 of x and filters g·K/G .. of w [K, R, S, C/G]; the loaders take (group, row0) origins. `Im2colLoader` is a TmaLoader with one change: each 128-byte chunk of the
A tile is one TMA im2col copy of tile_m output pixels (the hardware walks the output pixels and
zero-fills the padding), and each chunk of B one tiled copy of the filter viewed as [K, R·S, C].
"""
from __future__ import annotations

from dataclasses import dataclass

import skc
from skc import frontend

from .tile_io import TmaLoader, VectorLoader


@dataclass(frozen=True)
class ConvShape:
    """The compile-time geometry of a conv2d (spatial pairs are (h, w)) and the loader that reads it. As a
    MatmulConfig's `loader`, it makes the GEMM composition load its stages with an Im2colLoader."""

    N: int
    H: int
    W: int
    C: int
    K: int
    R: int
    S: int
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    dilation: tuple = (1, 1)
    tile_k: int = 64
    vector: bool = False   # load with Im2colVectorLoader (any padding and dilation) instead of TMA im2col
    groups: int = 1        # a grouped convolution: C and K are all groups' channels and filters

    def __post_init__(self):
        if (not isinstance(self.groups, int) or isinstance(self.groups, bool) or self.groups < 1
                or self.C % self.groups or self.K % self.groups):
            raise ValueError(f"groups must be a positive int dividing C ({self.C}) and K ({self.K}), found "
                             f"{self.groups!r}")

    @property
    def group_channels(self) -> int:
        """The input channels a filter reads (C/groups): the channels of w."""
        return self.C // self.groups

    @property
    def group_filters(self) -> int:
        """The filters of a group (K/groups): the N of a group's GEMM."""
        return self.K // self.groups

    @property
    def P(self) -> int:
        return (self.H + 2 * self.padding[0] - self.dilation[0] * (self.R - 1) - 1) // self.stride[0] + 1

    @property
    def Q(self) -> int:
        return (self.W + 2 * self.padding[1] - self.dilation[1] * (self.S - 1) - 1) // self.stride[1] + 1

    @property
    def channel_blocks(self) -> int:
        return -(-self.group_channels // self.tile_k)

    def gemm_shape(self) -> tuple:
        """(M, N, K) of the implicit GEMM (of one group's, with groups)."""
        return self.N * self.P * self.Q, self.group_filters, self.R * self.S * self.channel_blocks * self.tile_k

    @frontend.host
    def group_origin(self, loader: str, name: str, origin) -> tuple:
        """(group, first row) of an origin: (group, row0) with groups, row0 alone (group 0) without."""
        if (self.groups > 1) != isinstance(origin, tuple):
            raise frontend.current().error(
                f"{loader}'s convolution has {self.groups} group(s), so its origins are "
                + ("(group, row0)" if self.groups > 1 else "row0") + f"; found {name}={origin!r}",
                hint=f"give {name}=(tile.batch, row0) with a scheduler of `batches=groups`" if self.groups > 1 else
                     f"give {name}=row0, or make the ConvShape with groups=")
        return origin if self.groups > 1 else (0, origin)

    def corners(self) -> tuple:
        """The im2col bounding box (lower, upper), (h, w) each: filter bases run from -padding to the base
        of the last output pixel, (P - 1) * stride - padding, which is (extent - 1) + upper."""
        lower = (-self.padding[0], -self.padding[1])
        upper = ((self.P - 1) * self.stride[0] - self.padding[0] - (self.H - 1),
                 (self.Q - 1) * self.stride[1] - self.padding[1] - (self.W - 1))
        return lower, upper

    def tma_reaches(self) -> bool:
        """Whether TMA im2col can load this convolution: its filter taps at most 255 pixels apart, its bounding
        box's corners within [-128, 127] and its strides at most 8 (PTX ISA 5.5.4.1; cuTensorMapEncodeIm2col for
        a rank-4 tensor)."""
        lower, upper = self.corners()
        return (max((self.R - 1) * self.dilation[0], (self.S - 1) * self.dilation[1]) <= 255
                and all(-128 <= v <= 127 for v in lower + upper) and max(self.stride) <= 8)

    def build(self, payload, a, b):
        return Im2colVectorLoader(self, x=a, w=b) if self.vector else Im2colLoader(payload, self, x=a, w=b)


# -- torch's rules of a convolution's groups and filters, worded for conv2d and torch.ops.skc.conv2d ---------
def grouping_mismatch(C: int, K: int, C_w: int, groups: int):
    """What is wrong with a convolution of C channels by K filters of C_w channels each in `groups` groups, by
    torch's rules (groups divides C and K; each filter reads C / groups channels), or None: conv2d's message, and
    torch.ops.skc.conv2d's."""
    if C % groups or K % groups:
        which = f"x's {C} channels" if C % groups else f"w's {K} filters (w.shape[0])"
        return (f"conv2d's groups={groups} must divide {which}: torch.nn.functional.conv2d's rule, "
                "in_channels and out_channels divisible by groups")
    if C_w * groups == C:
        return None
    if groups > 1:
        return (f"x has {C} channels but the filters take {C_w}: with groups={groups} each filter reads "
                f"C/groups = {C // groups} channels (w of shape K x C/groups x R x S, torch's)")
    hint = (f" (w of a grouped convolution: pass groups={C // C_w}, as torch.nn.functional.conv2d takes it)"
            if C_w and C % C_w == 0 else "")
    return f"x has {C} channels but the filters take {C_w}{hint}"


def unaligned_filters(K: int, groups: int):
    """What is wrong with K filters for conv2d's TMA store of output rows (16-byte multiples: K a multiple of 8),
    with the padding that mends it, or None: conv2d's message, and torch.ops.skc.conv2d's."""
    if K % 8 == 0:
        return None
    if groups == 1:
        fix = f"pad w with zero filters to {-(-K // 8) * 8} and keep the first {K} output channels"
    else:   # (each group's filters padded alike, so that the groups still divide them)
        each = K // groups
        padded = next(g for g in range(each, each + 9) if g * groups % 8 == 0)
        fix = (f"pad each group's {each} filters with zero filters to {padded} (w of {padded * groups} filters, "
               f"group g's at g·{padded}) and keep each group's first {each} output channels")
    return (f"conv2d stores output pixels of K channels through TMA, whose rows must be 16-byte multiples: K (w's "
            f"filters, w.shape[0]) must be a multiple of 8, found {K} ({fix})")


class Im2colLoader(TmaLoader):
    """A TmaLoader whose A tile is an im2col copy: at k-step k, for origins a= and b=, it loads output pixels
    a.. a + tile_m - 1 of filter tap k // channel_blocks (im2col map `x`) and filters b.. b + tile_n - 1 of that
    tap (filter map `w`, [K, R·S, C/groups] in boxes of tile_n x 1 x chunk). With groups the origins are
    (group, row0): group g's channels of x and its filters (row0 counted from its first). Arrivals, issuing threads
    and the stage's byte count are TmaLoader's; only `load`, one operand's copies, differs. No multicast
    (MatmulConfig refuses clusters with a loader spec)."""

    def __init__(self, payload, conv: ConvShape, x, w):
        super().__init__(payload, a=x, b=w)
        self.conv = conv

    def load(self, tile, barrier, tmap, layout, origin, k0):
        conv, k = self.conv, k0 // layout.k
        is_b = layout is self.layouts["b"]   # (the payload's own layout objects: a's equals b's for square tiles)
        group, row0 = conv.group_origin("Im2colLoader", "b" if is_b else "a", origin)
        tap, c0 = k // conv.channel_blocks, k % conv.channel_blocks * layout.k
        if conv.groups > 1:   # group g's filters; its channels, a box's past them multiplied by the filters' zeros
            if is_b:
                row0 = group * conv.group_filters + row0
            else:
                c0 = c0 + group * conv.group_channels
        # A's origin row0 is an output pixel; its filter base (n, p * stride - pad, q * stride - pad) (unused for B)
        n, pixel = row0 // (conv.P * conv.Q), row0 % (conv.P * conv.Q)
        h, w = pixel // conv.Q * conv.stride[0] - conv.padding[0], pixel % conv.Q * conv.stride[1] - conv.padding[1]
        for chunk in skc.static_range(layout.chunks):
            destination = skc.int_to_ptr(tile.address + chunk * layout.chunk_bytes, skc.u8, "shared")
            if is_b:
                skc.hopper.tma_load(destination, barrier, tmap, (row0, tap, c0 + chunk * layout.chunk))
            else:
                skc.hopper.tma_load_im2col(destination, barrier, tmap, (n, h, w, c0 + chunk * layout.chunk),
                                           (tap // conv.S * conv.dilation[0], tap % conv.S * conv.dilation[1]))


class Im2colVectorLoader(VectorLoader):
    """The im2col loader without TMA, for what TMA im2col cannot reach (filter taps more than 255 pixels apart):
    a VectorLoader whose A element (m, tap·Cp + c) is channel c of the input pixel that tap reads for output pixel
    m (zero in the padding), and whose B element (k, tap·Cp + c) is w[k, tap, c]; x and w are pointers to the NHWC
    activations and the KRSC filters. With groups the origins are (group, row0), as Im2colLoader's: the group's
    channels of x (the others read as zeros) and its filters."""

    def __init__(self, conv: ConvShape, x, w):
        M, N, K = conv.gemm_shape()
        super().__init__(a=(x, M, K), b=(w, N, K))
        self.conv = conv

    @frontend.host
    def matrix_of(self, name: str, layout, origin) -> tuple:
        """(group, first row) of an origin (VectorLoader's batch of matrices is the convolution's groups)."""
        return self.conv.group_origin("Im2colVectorLoader", name, origin)

    def source(self, name: str, row, col, matrix=0):
        if self.conv.groups == 1:
            return self.element(name, row, col)
        return self.element(name, row, col, matrix)

    def element(self, name: str, row, col, group=0):
        conv = self.conv
        pointer = self.operands[name][0]
        tap, c = col // (conv.channel_blocks * conv.tile_k), col % (conv.channel_blocks * conv.tile_k)
        if name == "b":
            inside = (row < conv.group_filters) & (c < conv.group_channels)
            if conv.groups > 1:
                row = group * conv.group_filters + row
            return pointer + ((skc.i64(row) * (conv.R * conv.S) + tap) * conv.group_channels + c), inside
        n, pixel = row // (conv.P * conv.Q), row % (conv.P * conv.Q)
        h = pixel // conv.Q * conv.stride[0] - conv.padding[0] + tap // conv.S * conv.dilation[0]
        w = pixel % conv.Q * conv.stride[1] - conv.padding[1] + tap % conv.S * conv.dilation[1]
        inside = ((row < conv.N * conv.P * conv.Q) & (c < conv.group_channels) & (h >= 0) & (h < conv.H) & (w >= 0)
                  & (w < conv.W))
        if conv.groups > 1:
            c = group * conv.group_channels + c
        return pointer + (((skc.i64(n) * conv.H + h) * conv.W + w) * conv.C + c), inside
