"""FP8 GEMMs on Hopper, composed by changing the payload: `out = sa · sb · (A @ B)` with one f32 scale per
tensor (applied in the fused epilogue, alpha = sa · sb read from device memory) or one per row of A and per column
of B (torch._scaled_mm's row-wise scales: the fused epilogue's row and column scale vectors), and the block-scaled
GEMM of DeepSeek-V3 (A with one f32 scale per row per 128 K-columns, B one per 128 x 128 block). For the
block-scaled one the stage's payload also carries the two scale tiles (`ScaleLayout`): the same TMA loader fills
them with the operand tiles, and the TileOp (`BlockScaledWgmma`) multiplies each 128-deep k-block into a fresh
accumulator and adds it, scaled, to the running f32 one (two-level accumulation). The pipeline, the scheduler,
the warp roles and the epilogue are the bf16 GEMM's (`gemm.wgmma_gemm`)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import skc

from .config import MatmulConfig
from .epilogue import EpilogueArgs, TmaStoreEpilogue
from .gemm import wgmma_gemm
from .host_plans import wave_fill
from .mma import NO_TURN, Accumulator, Wgmma
from .payload import TilePayload
from .tile_rules import ONE_ROW_TILE_SPEEDS, few_tiles_split, swaps, tile_shape, tiles_of

FP8_TYPES = {"f8e4m3": 1, "f8e5m2": 1}
OUT_TYPES = {"bf16": 2, "f16": 2, "f32": 4}
SCALE_BLOCK = 128   # K-columns (and B's N-columns) one block scale covers (DeepSeek-V3's 1 x 128 and 128 x 128)
SB_BOX = 4          # B's scales are copied 4 at a time: a TMA box is at least 16 bytes wide
# Block-scaled tile widths (128-row tiles) and their speed over full waves relative to 128: 192-wide tiles ran
# 1.035-1.07x as fast once their emptier last waves are accounted for (benchmarks/NOTES.md, H200, 2026-11-30,
# four shapes, two runs); 256-wide ones (each k-block's partial in two column halves) 1.04-1.06x on three shapes
# and 1.15x on a fourth (2026-12-01, two runs). Since the wgmma descriptors live in uniform registers (WarpRoles'
# warpgroup index), 192 ran 1.01-1.05x as fast as 256 over full waves (2026-12-01, thirteenth session, three
# shapes): 1.03 puts 256 first only where its waves fill better. for_fp8_problem takes the width whose rate times
# its wave fill is highest.
BLOCK_SCALED_WIDTHS = {128: 1.0, 192: 1.06, 256: 1.03}
# The same for per-tensor tiles that add each k-block into f32 (no scales; 128 wide with two stages a step, one's
# partial added while the other's MMAs run): at sustained load 4096³ 1239 (128), 1154 (192), 1202 TFLOP/s (256 in
# halves); 8192³ 1216, 1306, 1212; 4096 x 7168 x 16384 1230, 1254, 1191 (benchmarks/NOTES.md, twenty-second
# session), over full waves about 1.0, 1.07 and 0.97.
PROMOTED_WIDTHS = {128: 1.0, 192: 1.07, 256: 0.97}
# The same where 128 x 128 tiles make at most FEW_WAVES waves, with the widths between (two fragments a thread up to
# 192, the partial in halves past it) and each weighed by the share of its last column inside N as well: the widths that
# fill the waves best win there, the wider ones at their rates. End to end against torch._scaled_mm over 26 shapes of
# 321-4096 rows drawn at random, every width timed (benchmarks/NOTES.md, thirty-fifth session;
# `benchmarks/fp8_wave_fill.py`, seeds 3501 and 3502): its picks among the widths timed 0.943 against 0.866 for
# PROMOTED_WIDTHS' rule as run (the best width of each shape 0.945), e.g. 774 x 9376 x 15872 0.95 on 176 (0.76 on 128),
# 990 x 2240 x 6144 0.99 on 144 (0.87 on 192), 547 x 6480 x 9728 0.92 on 256 (0.73 on 128), 336 x 10496 x 13952 0.99 on
# 240 (0.80 on 128); on 28 fresh shapes (seeds 3503 and 3505) 0.980 against 0.917. Past FEW_WAVES PROMOTED_WIDTHS stays:
# at 4096³ (7.8 waves) 192 wide ran 0.94x of 128 at sustained load, where these rates would take it.
PROMOTED_FILL_WIDTHS = {128: 1.0, 144: 1.05, 160: 1.1, 176: 1.15, 192: 1.2, 208: 1.0, 224: 1.017, 240: 1.033,
                        256: 1.05}
FEW_WAVES = 5
# The same for per-tensor tiles with fast_accum (one fragment a thread, any width to 256) past 128 rows, where the bf16
# wave rule takes no 192-row or 192-wide tile and 128 x 128 tiles make at most FEW_WAVES waves (they went 128 x 256
# before, or 128 x 128 for outputs under 2^22 values, whatever their waves). End to end against torch._scaled_mm, both
# use_fast_accum (thirty-fifth session, `benchmarks/fp8_wave_fill.py --fast`, seed 3506): over the 7 shapes of 128-row
# tiles drawn, its picks among the widths timed 0.979 against 0.876 for the rule before as run (the best width of each
# 0.979), e.g. 1144 x 3680 x 7040 1.05 on 128 (0.61 on 256: 135 tiles, two waves), 1663 x 4224 x 7936 0.95 on 224 (0.85
# on 256); on 12 fresh shapes (seed 3507) 0.975 against 0.894.
FAST_FILL_WIDTHS = {n: 1 + 0.1 * (n - 128) / 128 for n in range(128, 257, 16)}
# Up to FAST_ROWS_64 rows, 64 x 256 tiles (one consumer) are weighed beside FAST_FILL_WIDTHS' at FAST_RATE_64, each
# tile also by the share of its rows inside M: 128-row tiles leave up to half their last row past M there. End to
# end against torch._scaled_mm, both use_fast_accum (thirty-sixth session, `benchmarks/fp8_rows_grid.py` over 7
# shapes of 143-300 rows drawn by `fp8_wave_fill.py --fast --rows 129,320 --changed --seed 3602`): the model's pick
# was the faster of the two on all 7, e.g. 300 x 13088 x 10496 0.97 on 64 x 256 (0.77 on 128 x 160), 166 x 9760 x
# 16384 0.92 (0.66), 211 x 13456 x 12928 0.94 on 128 x 208 (0.76 on 64 x 256). On 12 fresh shapes (seed 3612) 0.863
# against 0.776 at a rate of 1.0; the two slower there were ties of the model (183 x 5456 x 13312 0.78 against 0.80,
# 261 x 3072 x 13184 0.74 against 0.76), where every gain measured came from a model gain of 1.11 or more: hence
# 0.95 (then seed 3613, 12 fresh shapes: 0.903 against 0.755).
FAST_ROWS_64 = 320
FAST_RATE_64 = 0.95
# PROMOTED_WIDTHS' model for one row of 64-row tiles (64 < M <= 128, one consumer, two stages a step), where the
# tiles make one wave: at 128 x 7168 x 16384, 128 tiles 112 wide ran at 754 TFLOP/s against 722 for 112 tiles 128
# wide (sustained; 711 against 700 in short bursts; benchmarks/NOTES.md, twenty-third session): 0.91 of 128's rate
# over a full wave.
FEW_ROWS_PROMOTED_WIDTHS = {128: 1.0, 112: 0.91}
# Two rows of 128-row tiles whose last is at least three quarters full (224 <= M <= 256), per tensor: where 112-wide
# tiles fill the one wave better than 128-wide ones, 112 wide with a seventh stage beside one epilogue buffer (one
# tile a block: nothing to overlap its epilogue with), and, each k-block into f32, two stages a step. Sustained,
# against 128 x 128: 1.08-1.095x at 256 x 7168 x 16384 (cuBLASLt's tiling there), 1.09 at 256 x 6144 x 16384, 1.06
# at K = 8192, 1.14 at K = 4096, 1.07-1.09 at M = 224-248; 0.95-0.99 at M = 192-208, where the last row of tiles is
# emptier; the fast form 1.04 at 256 x 7168 x 16384 and 232 x 7168 x 8192 (benchmarks/NOTES.md, twenty-third session).
ONE_WAVE_112 = {"tile_n": 112, "stages": 7, "epilogue_buffers": 1}
# Per tensor, each k-block into f32, 128 < M <= 192: one row of 192 x 64 tiles (three consumers, A's box holding only
# M's rows, one epilogue buffer for a sixth stage), where 128-row tiles would leave a second row part past M, whose
# boxes past A's end TMA fills slowly (tile_rules.ONE_ROW_TILE_SPEEDS). Sustained at 7168 x 16384: 863 TFLOP/s against
# 764 on 128 x 128 at 192 rows (cuBLASLt 896), 719 against 525 at 160, 650 against 423 at 144 (benchmarks/NOTES.md,
# twenty-fourth session).
ONE_ROW_192 = {"tile_m": 192, "consumers": 3, "tile_n": 64, "epilogue_buffers": 1}
# Per tensor, each k-block into f32, 128 < M <= 192 with deep K (tile_rules.swaps): out^T = b^T a^T on 128 x M/2 tiles,
# M/2 rounded up to 8 (112 tiles at N = 7168). Sustained at 7168 x 16384 against ONE_ROW_192: 780 TFLOP/s against 700
# at 160 rows (cuBLASLt 881), 659 against 586 at 136 (751), 871 against 825 at 192 (778) (benchmarks/NOTES.md,
# twenty-fifth session).
SWAPPED = {"tile_m": 128, "consumers": 2, "swap_ab": True}
# The same with one column of tiles M wide (rounded up to 16) for 128 < M <= SWAPPED_COLUMN_ROWS over K >= 4096, where
# N's 128-row tiles fill more than half the SMs and at most all (N of 8449-16896, past the reach of SWAPPED's two
# columns and of ONE_ROW_192's one wave). End to end against torch._scaled_mm (thirty-sixth session,
# `benchmarks/fp8_rows_grid.py`; 8 fresh shapes 0.998 against 0.762):
# 156 x 10192 x 12032 0.975 against 0.749 for the fill widths' 128 x 160, 147 x 9296 x 13056 0.959 against 0.709; at
# 191 rows, 192 wide, 0.81 against 0.91.
SWAPPED_COLUMN_ROWS = 160
# ROWS_SPLITS: per tensor, 64 < M <= ROWS_SPLIT_ROWS rows (ROWS_SPLIT_FAST_ROWS with fast_accum) on few tiles over a
# deep K: rows of 64 x 64 tiles in `rows_split`'s shares, each k-block into f32 two stages a step (or, fast_accum,
# whole in wgmma's accumulator). End to end against torch._scaled_mm (benchmarks/NOTES.md, thirty-fourth session; the
# rule before in brackets: 64 x 112 or 64 x 128 tiles at 65-128 rows, 64 x 64 or 128 x 64 ones past them, unsplit):
# 119 x 592 x 13056 0.98 in 4 (0.49), 100 x 1024 x 8192 1.09 in 4 (0.72), 128 x 768 x 16384 1.02 in 4 (0.48),
# 80 x 2048 x 7168 0.89 in 2 (0.71), 96 x 512 x 12288 0.91 in 4 (0.46; 0.89 in 8), 72 x 1536 x 10240 0.85 in 2
# (0.63), 112 x 896 x 14336 1.01 in 4 (0.52), 128 x 1280 x 5120 0.85 in 2 (0.73); more shares than fit one wave ran
# slower (0.55-0.89). Drawn at random (`python benchmarks/fp8_rows_split.py`): 10 shapes of 65-128 rows 0.880 against
# 0.608, 10 of 129-320 rows 0.896 against 0.580 (128 x 64 tiles in shares 0.713) and 8 more 0.925 against 0.590,
# each one faster; with fast_accum, 5 of 65-128 rows 0.926 against 0.694.
ROWS_SPLIT_MIN_STEPS = 16
ROWS_SPLIT_ROWS = 320
ROWS_SPLIT_FAST_ROWS = 128


def column_keys(n: int) -> list:
    """For each 8-column group of an n-wide tile (the columns a wgmma fragment value lies in), the scale block of B
    it reads, counted from the tile's first: `d` where that is the same wherever the tile starts, or `(d, t)`
    where it is d + 1 for tiles that start t or more columns into a block (col0 % 128 >= t), else d. Tiles start
    at multiples of n, so a tile that is no multiple of 128 wide starts up to 128 - gcd(n, 128) columns in."""
    step = math.gcd(n, SCALE_BLOCK)
    furthest = 0 if n % SCALE_BLOCK == 0 else SCALE_BLOCK - step
    keys = []
    for group in range(n // 8):
        low, high = 8 * group // SCALE_BLOCK, (furthest + 8 * group) // SCALE_BLOCK
        threshold = SCALE_BLOCK * (low + 1) - 8 * group   # the start from which the group is in block low + 1
        keys.append(low if low == high else (low, -(-threshold // step) * step))
    return keys


def column_scales(n: int) -> list:
    """The distinct keys of column_keys(n), in order of first use: the column scales an n-wide tile's fragment
    reads (two registers each, one per row a thread holds)."""
    return list(dict.fromkeys(column_keys(n)))


def sb_count(n: int):
    """How many of B's scales a stage of an n-wide tile copies (one box starting at a multiple of SB_BOX): 4, or 8
    when a tile can reach past the box of 4 its first block is in; None when n is too wide for either."""
    if n < 8 or n > 256:
        return None
    starts = range(0, math.lcm(n, SCALE_BLOCK * SB_BOX), n)  # every (block % SB_BOX, offset) a tile starts at
    needed = max(col0 // SCALE_BLOCK % SB_BOX + (col0 % SCALE_BLOCK + n - 1) // SCALE_BLOCK + 1 for col0 in starts)
    return next((count for count in (SB_BOX, 2 * SB_BOX) if needed <= count), None)


@dataclass(frozen=True)
class ScaleLayout:
    """A payload tile of f32 scales for one k-block: `count` of them, copied as one TMA box (1 x count) of a
    K-block-major scale matrix (`(K / 128) x rows`). It `follows` an operand (takes that operand's origin): the
    first scale is the one of origin // `per` (A's rows: per = 1; B's columns: per = 128), and a box starts at a
    multiple of `granule` (by default `count`) when values of a finer origin share it (so the box stays 16-byte
    aligned)."""

    count: int
    follows: str
    per: int = 1
    granule: int = 0            # a box of a finer origin starts at a multiple of this many values (0: count)
    k: ClassVar[int] = 1        # one k-block a stage
    elem_bytes: ClassVar[int] = 4
    chunks: ClassVar[int] = 1
    align: ClassVar[int] = 128  # a TMA destination's alignment

    @property
    def bytes(self) -> int:
        return self.count * self.elem_bytes

    @property
    def chunk_bytes(self) -> int:
        return self.bytes

    def check(self):
        if self.bytes % 16 or self.count > 256:
            raise ValueError(f"unsupported scale layout {self}: a TMA box of 16-byte multiples, at most 256 values")

    def box(self) -> tuple:
        return (1, self.count)

    def box_coordinates(self, chunk: int, origin, k_block) -> tuple:
        first = origin // self.per if self.per > 1 else origin
        return (k_block, first - first % (self.granule or self.count) if self.per > 1 else first)

    def first(self, origin):
        """Where the scale of `origin` (a run-time coordinate of the followed operand) sits in the box."""
        return (origin // self.per) % (self.granule or self.count) if self.per > 1 else 0


# for_fp8_problem's fields that describe the operands and the epilogue, not the schedule
_OPERAND_FIELDS = {"dtype", "dtype_b", "out_dtype", "block_scaled", "fast_accum", "epilogue"}


@dataclass(frozen=True)
class Fp8MatmulConfig(MatmulConfig):
    """A MatmulConfig for fp8 operands (K-major both, as fp8 wgmma reads them; 128 fp8 values = 128 bytes of
    K a stage), an `out_dtype` (bf16, f16 or f32) and the scaling: per tensor (`block_scaled=False`: alpha =
    sa · sb in the epilogue) or per block (the scales travel in the payload; tile_k must be 128). Each stage's
    k-block is multiplied into a fresh fragment and added into the f32 sum (`promotes`: fp8 wgmma's accumulator
    keeps fewer bits than f32), unless per-tensor scaling takes `fast_accum=True` (torch._scaled_mm's
    use_fast_accum): then the whole K runs through wgmma's accumulator, as in the bf16 GEMM."""

    tile_k: int = 128
    dtype: str = "f8e4m3"
    dtype_b: str = ""             # B's fp8 type when it differs from A's
    out_dtype: str = "bf16"
    block_scaled: bool = False
    overlap_scaling: bool = False  # block-scaled, two stages a step: one partial scaled during the next one's MMAs
    half_partials: bool = False    # block-scaled: the k-block's partial in two column halves, one after the other
    fast_accum: bool = False       # per tensor: the whole K in wgmma's accumulator (no f32 sum of k-blocks)
    b_k_major: bool = True
    input_types: ClassVar[dict] = FP8_TYPES
    swappable: ClassVar[bool] = False   # (for_fp8_problem's rule swaps a and b itself)
    fill_widths: ClassVar[bool] = False   # (tile_rules.FILL_WIDTH_SPEEDS: unmeasured for fp8)

    def __post_init__(self):
        super().__post_init__()
        if self.dtype_b not in ("", *FP8_TYPES):
            raise ValueError(f"dtype_b must be one of {tuple(FP8_TYPES)}, found {self.dtype_b}")
        if self.out_dtype not in OUT_TYPES:
            raise ValueError(f"the fp8 GEMM writes {', '.join(OUT_TYPES)}, not {self.out_dtype}")
        if not (self.a_k_major and self.b_k_major):
            raise ValueError("fp8 wgmma reads K-major operands only: a_k_major and b_k_major must be True")
        if self.swap_ab and self.dtype_b:
            raise ValueError("swap_ab multiplies b^T a^T: give a and b one fp8 type (dtype_b='') to swap them")
        if self.block_scaled and self.swap_ab:
            raise ValueError("block scales are A's per row and B's per 128 x 128 block: swap_ab (which swaps A and "
                             "B) is for per-tensor scaling only")
        if self.block_scaled and self.fast_accum:
            raise ValueError("block scales are applied to each k-block's partial in f32: fast_accum=True is for "
                             "per-tensor scaling only")
        if self.promotes and self.consumer_rows > Wgmma.rows_per_warpgroup:
            raise ValueError("consumers that add each k-block's partial into f32 (block scales, or per-tensor scales "
                             "without fast_accum) take 64 rows each (pingpong: 64-row tiles): the TileOp adds one "
                             "64-row part at a time; fast_accum=True takes larger consumers")
        if self.loader != "tma" or self.store != "tma":
            raise ValueError(f"the fp8 GEMM loads and stores with TMA (loader='tma', store='tma'), found "
                             f"loader={self.loader!r}, store={self.store!r}")
        if (self.overlap_scaling or self.half_partials) and self.tile_k != SCALE_BLOCK:
            raise ValueError(f"overlap_scaling and half_partials add 128-deep k-blocks: they need tile_k = "
                             f"{SCALE_BLOCK}, found {self.tile_k}")
        if self.overlap_scaling and not self.promotes:   # (its two stages a step: MatmulConfig.check_stages)
            raise ValueError("overlap_scaling adds the k-blocks' partials two stages at a time: it needs "
                             "block_scaled=True or fast_accum=False")
        if self.half_partials and not (self.promotes and not self.overlap_scaling and self.tile_n % 16 == 0):
            raise ValueError(f"half_partials multiplies a k-block in two column halves: it needs block_scaled=True "
                             f"or fast_accum=False, overlap_scaling=False and a tile_n that halves into multiples "
                             f"of 8, found block_scaled={self.block_scaled}, fast_accum={self.fast_accum}, "
                             f"overlap_scaling={self.overlap_scaling}, tile_n={self.tile_n}")
        if self.block_scaled and self.split_k > 1:
            raise ValueError("split-K takes per-tensor scales: a block-scaled GEMM runs unsplit (split_k=1)")
        if self.block_scaled and (self.tile_k != SCALE_BLOCK or self.tile_n % 8 or sb_count(self.tile_n) is None):
            raise ValueError(f"block scales need tile_k = {SCALE_BLOCK} (one scale block a stage) and tile_n a "
                             f"multiple of 8 up to 256, found tile_k={self.tile_k}, tile_n={self.tile_n}")

        if self.promotes:
            # the running sum and the k-block's partial (and, overlapped, the partial in flight), two scales a
            # column class, addresses and loop state (about 24, as MatmulConfig counts): what a consumer's registers
            # must hold. Near the limit ptxas spills a few bytes (192 wide at 232 registers: 8), beyond it hundreds
            # halves: the running sum and half a partial, the tile's scales live across both halves' MMAs
            # (counted twice); overlapped: a third fragment, both stages' scales live at once
            partials = (self.tile_n // 4 if self.half_partials
                        else (2 if self.overlap_scaling else 1) * self.tile_n // 2)
            fragments = self.tile_n // 2 + partials
            scale_sets = (2 if self.overlap_scaling or self.half_partials else 1) if self.block_scaled else 0
            needed = fragments + scale_sets * 2 * len(column_scales(self.tile_n)) + 24
            if needed > self.consumer_registers:
                kind = "block-scaled" if self.block_scaled else "per-tensor (fast_accum=False)"
                raise ValueError(f"a {kind} {self.tile_n}-wide tile needs about {needed} registers a consumer thread "
                                 f"(its fp32 fragments{' and scales' if self.block_scaled else ''}), more than "
                                 f"consumer_registers="
                                 f"{self.consumer_registers}: use a narrower tile_n, more consumer_registers (192 "
                                 f"wide takes 240)" + ("" if self.half_partials else ", or half_partials=True (the "
                                                       "partial in two column halves: 256 wide in 240)")
                                 + ("" if self.block_scaled else ", or fast_accum=True"))

    @property
    def promotes(self) -> bool:
        """Whether each stage's k-block is multiplied into a fresh fragment and added into the f32 sum."""
        return self.block_scaled or not self.fast_accum

    def types(self) -> tuple:
        """(A's type, B's type, the output's type) as DSL types."""
        return (getattr(skc, self.dtype), getattr(skc, self.dtype_b or self.dtype), getattr(skc, self.out_dtype))

    def tile_op(self):
        if not self.promotes:
            return Wgmma
        op = (HalvedBlockScaledWgmma if self.half_partials else
              OverlappedBlockScaledWgmma if self.overlap_scaling else BlockScaledWgmma)
        return op if self.block_scaled else _UNSCALED[op]

    def payload(self) -> TilePayload:
        layouts = dict(super().payload().layouts)
        if self.block_scaled:  # the scales of the stage's k-block travel with its operand tiles
            layouts.update(sa=ScaleLayout(self.tile_m, "a"),
                           sb=ScaleLayout(sb_count(self.tile_n), "b", per=SCALE_BLOCK, granule=SB_BOX))
        return TilePayload(**layouts)

    @property
    def out_bytes(self) -> int:
        return OUT_TYPES[self.out_dtype]

    @property
    def staging_elements(self) -> int:
        return TmaStoreEpilogue.staging_elements(self.out_bytes, buffers=self.epilogue_buffers)

    def shared_bytes(self) -> int:
        return (self.payload().stage_bytes * self.stages + self.consumers * self.staging_elements * self.out_bytes
                + 16 * self.stages + 1024)

    def boxes(self) -> dict:
        return dict({name: layout.box() for name, layout in self.payload().layouts.items()}, out=self.out_box())

    @classmethod
    def for_fp8_problem(cls, M: int, N: int, K: int, max_shared_bytes: int = 232448, multiprocessors: int = 132,
                        **fields) -> Fp8MatmulConfig:
        """for_problem's choice (stages to fill shared memory), one consumer warpgroup (64-row tiles) for M <= 64
        (and 64 x 128 per-tensor tiles for M <= 128 when few tiles fill the GPU), and 64-wide tiles when 128-wide
        ones would leave most SMs idle (48 wide and 256 deep, per tensor, where even 64-wide ones would). Per tensor
        over a deep K, 64 x 64 tiles split along K where they are few: one row of them (`tile_rules.few_tiles_split`),
        or rows of them up to 320 rows (`rows_split`). Per
        tensor with fast_accum, with no part of the schedule given, the bf16 GEMM's wave rule (`tile_rules.tile_shape`)
        where it picks a tile 192 rows or 192 wide (3072³ on 192 x 192).
        Tiles that add each k-block's partial into f32 (block scales, or per-tensor ones without fast_accum) hold
        two f32 fragments a thread (the running sum and the k-block's partial): 128 wide, or 192 (with 240 registers
        for the consumers), or 256 (the partial in two column halves) where that is faster by BLOCK_SCALED_WIDTHS'
        model; per tensor where 128 x 128 tiles make at most FEW_WAVES waves, any width from 128 to 256 in steps of
        16 by PROMOTED_FILL_WIDTHS' (FAST_FILL_WIDTHS' with fast_accum, where the wave rule takes no 192 tile, and up to
        FAST_ROWS_64 rows 64 x 256 too, each tile weighed by its rows inside M as well). Per tensor, each k-block into
        f32, 128 < M <= 192 over a deep K: out^T = b^T a^T (SWAPPED: two columns of 128 x M/2 tiles where they fill
        one wave; SWAPPED_COLUMN_ROWS: one column of 128 x M where N is wider). A
        caller's pingpong or wide tile_n with such tiles gets what they need: 64-row tiles for two consumers, 240
        registers (and, past 192 wide, the partial in halves)."""
        promotes = fields.get("block_scaled") or not fields.get("fast_accum")   # (two f32 fragments a thread)
        if promotes and fields.get("pingpong"):   # (each consumer adds its partials 64 rows at a time)
            fields.setdefault("tile_m", 64)
            fields.setdefault("consumers", 2)
        if promotes and fields.get("tile_n", 0) > 128 and not fields.get("overlap_scaling"):
            _two_fragments(fields, fields["tile_n"])
        if M <= 64:
            fields.setdefault("consumers", 1)
            fields.setdefault("tile_m", 64)
        chosen = {"tile_m", "tile_n", "consumers", "pingpong"} & set(fields)   # what the caller decided
        two_stages = {"overlap_scaling": True} if promotes else {}   # (each k-block into f32, two stages a step)
        shares = rows_split(M, N, K, multiprocessors, bool(fields.get("fast_accum")))
        if shares > 1 and not fields.get("block_scaled") and set(fields) <= _OPERAND_FIELDS:
            # rows of few 64 x 64 tiles over a deep K: split-K (ROWS_SPLITS)
            return cls.for_problem(M, N, K, fields.pop("dtype", "f8e4m3"), True, True, max_shared_bytes, **fields,
                                   tile_m=64, consumers=1, tile_n=64, split_k=shares, **two_stages)
        if 64 < M <= 128 and N > 64 and not fields.get("block_scaled") and not chosen \
                and -(-N // 128) < multiprocessors // 2:
            # as many tiles as 128 x 64 ones, but one m64n128 wgmma a k32 step instead of two m64n64: 1.03-1.04x
            # cuBLAS at 128 x 7168 x 16384 against 0.98-1.00 (benchmarks/NOTES.md, three runs)
            fields.update(tile_m=64, consumers=1, tile_n=128)
            if not fields.get("fast_accum") and set(fields) <= _OPERAND_FIELDS | {"tile_m", "consumers", "tile_n"}:
                # each k-block added into f32, its one consumer two stages a step: 756 TFLOP/s against 692 at
                # 128 x 7168 x 16384, sustained (benchmarks/NOTES.md, twenty-second session); 112 wide where
                # its one wave fills the SMs enough better (128 x 7168: 128 tiles, not 112)
                fields.update(overlap_scaling=True, tile_n=max(
                    FEW_ROWS_PROMOTED_WIDTHS,
                    key=lambda n: FEW_ROWS_PROMOTED_WIDTHS[n] * wave_fill(M, N, 64, n, multiprocessors)))
        tile_m = fields.get("tile_m", 128)
        chosen_shape = {"tile_n", "tile_k", "stages", "cluster_n"} & set(fields)
        split = few_tiles_split(-(-N // 64), K // 128, multiprocessors)   # (a k-step: 128 fp8 values)
        if (M <= tile_m == 64 and not fields.get("block_scaled") and split > 1
                and set(fields) <= _OPERAND_FIELDS | {"tile_m", "consumers"}):
            # one row of few 64 x 64 tiles over a deep K, per tensor: split-K (tile_rules.FEW_TILES_SHARE; 18 x 512 x
            # 13568 0.88x cuBLASLt in 8 shares against 0.57x unsplit, benchmarks/NOTES.md, twenty-sixth session);
            # each k-block into f32, two stages a step (0.954x against 0.931 over 8 shapes drawn at random,
            # thirty-fourth session)
            fields.update(tile_n=64, split_k=split, **two_stages)
            chosen_shape = {"tile_n"}
        if (M <= tile_m == 64 and not fields.get("block_scaled") and N > 64 and K > 128 and not chosen_shape
                and -(-N // 64) < multiprocessors // 2):
            # one row of tiles, 64-wide ones on under half the SMs (48-wide ones then fit in a wave): 48 wide, 256 deep
            # (as many bytes of B in flight in the shared memory left): 64 x 4096 x 7168 at 0.99x cuBLAS against 0.96
            # (benchmarks/NOTES.md); not where the caller chose the tile or the stages it must hold
            fields.update(tile_n=48, tile_k=256)
        if (M > 192 and tile_m == 128 and not fields.get("block_scaled") and set(fields) <= _OPERAND_FIELDS
                and tiles_of(M, N, 128, 64) <= multiprocessors // 2):
            # per tensor, where even 128 x 64 tiles fill at most half the SMs: 64 x 64 ones, twice as many
            # (212 x 2096 x 6016: 0.90x cuBLASLt against 0.80x; 321 x 560 x 4224: 0.80x against 0.71x; end to end,
            # benchmarks/NOTES.md, twenty-sixth session)
            fields.update(tile_m=64, consumers=1, tile_n=64)
            tile_m = 64
        if -(-M // tile_m) * -(-N // 128) < multiprocessors // 2:
            fields.setdefault("tile_n", 64)
        if M > 128 and not promotes and set(fields) <= _OPERAND_FIELDS:
            # the bf16 GEMM's wave rule where it takes a 192-row or 192-wide tile: 3072³ on 192 x 192 tiles ran
            # 1.23x as fast as on 128 x 256, 5120³ 1.06x; where the rule keeps 128 x 256 (4096³, 2048 x 2048 x
            # 8192) 192-wide tiles ran 0.91-0.92x (benchmarks/NOTES.md, eighteenth session, sustained). Only
            # where the caller chose nothing of the schedule (the tiles of clusters, splits, stream-K and register
            # budgets it names stay those it measured)
            rule_m, rule_n = tile_shape(M, N, K, multiprocessors, narrow=False)[:2]   # (narrow ones: unmeasured)
            if 192 in (rule_m, rule_n):
                fields.update(tile_m=rule_m, tile_n=rule_n, consumers=rule_m // Wgmma.rows_per_warpgroup)
                tile_m = rule_m
                if (rule_m, rule_n) in ONE_ROW_TILE_SPEEDS:   # (one tile a block: a sixth stage, 1.06-1.09x)
                    fields.update(epilogue_buffers=1)
        # (per tensor, each k-block into f32, on the rule's own 128-row tiles)
        own_promoted = (promotes and not fields.get("block_scaled") and set(fields) <= _OPERAND_FIELDS
                        and tile_m == 128 and "tile_n" not in fields)
        if (own_promoted and not fields.get("dtype_b") and fields.get("out_dtype") != "f32"
                and (swaps(M, N, K, multiprocessors) or swaps_into_column(M, N, K, multiprocessors))):
            # out^T = b^T a^T (SWAPPED): two columns of 128 x M/2 tiles (M/2 rounded up to 8: wgmma's n), or where N
            # is wider one column of 128 x M (rounded up to 16): SWAPPED_COLUMN_ROWS
            width = -(-M // 16) * (8 if swaps(M, N, K, multiprocessors) else 16)
            return cls.for_problem(N, M, K, fields.pop("dtype", "f8e4m3"), True, True, max_shared_bytes,
                                   **_two_fragments(fields, width), **SWAPPED, tile_n=width)
        if own_promoted and 128 < M <= 192 and tiles_of(M, N, 192, 64) <= multiprocessors:
            # one row of 192-row tiles where 128-row ones would leave their second row part past M (and as many
            # tiles: N > 4096 or so; fewer take 64-wide tiles above): ONE_ROW_192
            fields.update(ONE_ROW_192, overlap_scaling=True)
            tile_m = 192
        if (not fields.get("block_scaled") and set(fields) <= _OPERAND_FIELDS and tile_m == 128
                and 128 < M <= 256 and -M % 128 <= 32 and tiles_of(M, N, 128, 112) <= multiprocessors
                # (seven stages and the staging fill an H100's or H200's 227 KB: shared_bytes(), 1 KB of slack in
                # it, reads 112 bytes over, the kernel fits and runs: twenty-third and twenty-fourth sessions)
                and max_shared_bytes >= 232448
                and wave_fill(M, N, 128, 112, multiprocessors) > wave_fill(M, N, 128, 128, multiprocessors)):
            fields.update(ONE_WAVE_112, overlap_scaling=promotes)
        if (M > 128 and not promotes and tile_m == 128 and set(fields) <= _OPERAND_FIELDS
                and tiles_of(M, N, 128, 128) <= FEW_WAVES * multiprocessors):
            # fast_accum on few waves, where the wave rule took no 192 tile: the width of FAST_FILL_WIDTHS that fills
            # them best (not 128 x 256 or 128 x 128 whatever they leave), or up to FAST_ROWS_64 rows 64 x 256
            rates = {(128, n): rate for n, rate in FAST_FILL_WIDTHS.items()}
            if M <= FAST_ROWS_64:
                rates[64, 256] = FAST_RATE_64
            tile_m, tile_n = max(rates, key=lambda tile: rates[tile] * output_fill(M, N, *tile, multiprocessors))
            fields.update(tile_n=tile_n)
            if tile_m == 64:
                fields.update(tile_m=64, consumers=1)
        if (promotes and "tile_n" not in fields and tile_m == 128 and not fields.get("pingpong")
                and not fields.get("overlap_scaling")):   # (a third fragment leaves no registers for 192)
            # (256 wide: only with the partial in halves, and not for f32 out, whose staging spills there)
            halves = fields.get("half_partials", True) and fields.get("out_dtype") != "f32"
            widths, fill = (BLOCK_SCALED_WIDTHS if fields.get("block_scaled") else PROMOTED_WIDTHS), wave_fill
            # (where the caller chose a part of the schedule, the widths as before)
            if (not fields.get("block_scaled") and set(fields) <= _OPERAND_FIELDS | {"half_partials"}
                    and tiles_of(M, N, tile_m, 128) <= FEW_WAVES * multiprocessors):
                widths, fill = PROMOTED_FILL_WIDTHS, output_fill
            ranked = sorted(((rate * fill(M, N, tile_m, n, multiprocessors), n)
                             for n, rate in widths.items() if n <= max(N, 128) and (n <= 192 or halves)),
                            reverse=True)
            # (unscaled, 128 wide, where the caller chose nothing of the schedule: two stages a step)
            overlap = not fields.get("block_scaled") and set(fields) <= _OPERAND_FIELDS
            for _, tile_n in ranked:   # the best width whose configuration the caller's other fields allow
                width = _block_scaled_width(dict(fields), tile_n, overlap)
                try:
                    config = cls.for_problem(M, N, K, width.pop("dtype", "f8e4m3"), True, True, max_shared_bytes,
                                             **width)
                except ValueError:
                    continue
                if config.shared_bytes() <= max_shared_bytes or tile_n == 128:
                    break
            fields = _block_scaled_width(fields, tile_n, overlap)
        if promotes:
            fields.setdefault("tile_n", 128)
        dtype = fields.pop("dtype", "f8e4m3")
        return cls.for_problem(M, N, K, dtype, True, True, max_shared_bytes, **fields)


def rows_split(M: int, N: int, K: int, multiprocessors: int = 132, fast_accum: bool = False) -> int:
    """The split-K shares of per-tensor fp8 with 64 < M <= ROWS_SPLIT_ROWS (ROWS_SPLIT_FAST_ROWS with fast_accum) on
    64 x 64 tiles: the most of 4, 3 or 2 whose units fit one wave, each ROWS_SPLIT_MIN_STEPS k-steps of 128 deep at
    least; 1 elsewhere (ROWS_SPLITS)."""
    if not 64 < M <= (ROWS_SPLIT_FAST_ROWS if fast_accum else ROWS_SPLIT_ROWS):
        return 1
    tiles, k_steps = -(-M // 64) * -(-N // 64), K // 128
    return next((split for split in (4, 3, 2)
                 if tiles * split <= multiprocessors and k_steps >= ROWS_SPLIT_MIN_STEPS * split), 1)


def swaps_into_column(M: int, N: int, K: int, multiprocessors: int = 132) -> bool:
    """Whether per-tensor fp8 of 128 < M <= SWAPPED_COLUMN_ROWS rows over K >= 4096 runs as out^T = b^T a^T on one
    column of 128 x M tiles: where N's 128-row tiles fill more than half the SMs and at most all."""
    return 128 < M <= SWAPPED_COLUMN_ROWS and K >= 4096 and multiprocessors // 2 < -(-N // 128) <= multiprocessors


def output_fill(M: int, N: int, tile_m: int, tile_n: int, multiprocessors: int) -> float:
    """`wave_fill` times the shares of the tiles' rows and columns that lie inside M and N: the busy fraction of the
    SMs over the waves, counting only the output's own values (PROMOTED_FILL_WIDTHS, FAST_FILL_WIDTHS; among tiles of
    one height, as the promoted widths are, the rows' share ranks none higher)."""
    return (wave_fill(M, N, tile_m, tile_n, multiprocessors) * N / (-(-N // tile_n) * tile_n)
            * M / (-(-M // tile_m) * tile_m))


def _block_scaled_width(fields: dict, tile_n: int, overlap: bool = False) -> dict:
    """for_fp8_problem's fields for a block-scaled (or promoted) tile `tile_n` wide: 256 with the partial in halves
    (three stages fit), 192 with four stages, both with 240 registers for the consumers (and so the widths between,
    with the stages that fit), 128 with two stages a step
    where `overlap`; the caller's own fields kept.
    (256 wide ran 1.01-1.03x as fast without the consumers taking turns at the MMAs as with, once the wgmma
    descriptors lived in uniform registers: benchmarks/NOTES.md, thirteenth session.)"""
    fields["tile_n"] = tile_n
    if tile_n == 128 and overlap:
        fields.setdefault("overlap_scaling", True)
    if tile_n == 192:
        fields.setdefault("stages", 4)
    return _two_fragments(fields, tile_n)


def _two_fragments(fields: dict, tile_n: int) -> dict:
    """The fields a tile wider than 128 needs for a running sum and a k-block's partial a consumer thread: 240
    registers for the consumers, and past 192 wide the partial in halves (unless the caller's fields say)."""
    if tile_n > 192:
        fields.setdefault("half_partials", True)
    if tile_n > 128:
        fields.setdefault("producer_registers", 24)
        fields.setdefault("consumer_registers", 240)
    return fields


class BlockScaledWgmma(Wgmma):
    """The TileOp of the block-scaled GEMM: for one stage (one 128-deep k-block), partial = A_k · B_k with fp8
    wgmma into a fresh f32 fragment, then acc += partial · sa[row] · sb[k-block, column block] for each value
    (two-level accumulation: the fp8 MMAs never add more than 128 products). It finishes a stage's MMAs before
    scaling them (the other consumer warpgroup keeps the tensor cores busy meanwhile), so the stage is released
    at once. Unscaled (`scaled = False`, the per-tensor GEMM without fast_accum: PromotedWgmma) it adds the
    partials as they are, into f32, one for each 128 deep of a deeper stage."""

    stages_in_flight = 0
    scaled = True   # whether the payload carries block scales that multiply each partial

    def consume(self, acc, stage, tile, turn=NO_TURN):
        scales = self.scales(stage, tile) if self.scaled else None
        for k0 in skc.static_range(0, self.k, SCALE_BLOCK):   # (block scales: one; unscaled, a partial each 128)
            partial = Accumulator(self, self.n)
            with turn:   # (the fold runs outside the turn: during the other consumers' MMAs)
                self(partial, stage.a, stage.b, accumulate=False, k0=k0, k=min(SCALE_BLOCK, self.k))
            self.retire(0)
            self.fold(acc, partial.fragment, scales)

    def scales(self, stage, tile):
        """sa[row] · sb[column scale] for this thread's two rows (PTX ISA 9.7.15.5.1.1: 16 (t / 32) + (t % 32) / 4,
        and 8 below) and the tile's column scales (column_scales(n)), row-major, as a vector. A tile that is no
        multiple of 128 wide may start inside a block: a group whose block depends on where (a key (d, t)) takes
        block d or d + 1 by the tile's run-time start."""
        row = self.row0 + 16 * (self.thread // 32) + (self.thread % 32) // 4
        row_scales = [_scale(stage.sa, row), _scale(stage.sa, row + 8)]
        first = stage.sb.layout.first(tile.col0)
        keys = column_scales(self.n)
        blocks = sorted({d for key in keys for d in ((key,) if isinstance(key, int) else (key[0], key[0] + 1))})
        block = {d: _scale(stage.sb, first + d) for d in blocks}
        offset = tile.col0 % SCALE_BLOCK if any(not isinstance(key, int) for key in keys) else None
        columns = [block[key] if isinstance(key, int) else skc.where(offset >= key[1], block[key[0] + 1], block[key[0]])
                   for key in keys]
        return skc.vector(*[r * c for r in row_scales for c in columns])

    def fold(self, acc, partial, scales, first: int = 0, count: int = 0):
        """acc += partial times its scales (value i: row + 8 ((i % 4) / 2), column group i / 4), or as it is
        (unscaled); a partial of `count` values (0: all of the tile's) being acc's from value `first` on
        (HalvedBlockScaledWgmma)."""
        keys, distinct = column_keys(self.n), column_scales(self.n)
        last = first + (count or self.n // 2)
        values = []
        for i in skc.static_range(self.n // 2):
            if first <= i < last and not self.scaled:
                values.append(acc.fragment[i] + partial[i - first])
            elif first <= i < last:
                scale = scales[((i % 4) // 2) * len(distinct) + distinct.index(keys[i // 4])]
                values.append(skc.fma(partial[i - first], scale, acc.fragment[i]))
            else:
                values.append(acc.fragment[i])
        acc.fragment = skc.vector(*values)


class OverlappedBlockScaledWgmma(BlockScaledWgmma):
    """BlockScaledWgmma two stages a step (`stages_per_step`: the mainloop acquires them together): both stages'
    MMAs are issued, each into a partial of its own, and the first partial is scaled while the second's MMAs run,
    so half the scaling overlaps this warpgroup's own tensor-core work. Costs a third fragment of registers. (A
    partial kept in flight from one step to the next would overlap all of it, but ptxas serializes the wgmmas
    of such a loop: warning C7514.)"""

    stages_per_step = 2

    def consume_run(self, acc, run, tile, turn=NO_TURN):
        first, second = run.stage(0), run.stage(1)
        scales = [self.scales(first, tile), self.scales(second, tile)] if self.scaled else [None, None]
        partials = [Accumulator(self, self.n), Accumulator(self, self.n)]
        with turn:
            skc.hopper.wgmma_fence()
            for partial, stage in zip(partials, (first, second)):
                self.check(stage.a, stage.b)
                self.issue(partial, stage.a, stage.b, accumulate=False)   # partial = A_k B_k
                self.commit()
        self.retire(1)   # the first partial is complete, the second's MMAs may still run
        self.fold(acc, partials[0].fragment, scales[0])
        self.retire(0)
        self.fold(acc, partials[1].fragment, scales[1])


class HalvedBlockScaledWgmma(BlockScaledWgmma):
    """BlockScaledWgmma with the k-block's partial in two column halves: the MMAs of the tile's first n/2 columns
    into a partial of n/2, scaled into the running sum, then those of the other half into the same registers. A
    partial takes half the registers, so a 256-wide tile fits where the whole partial allowed 192."""

    def consume(self, acc, stage, tile, turn=NO_TURN):
        self.check(stage.a, stage.b)
        scales = self.scales(stage, tile) if self.scaled else None
        half = self.n // 2
        for part in skc.static_range(2):
            partial = Accumulator(self, half)
            with turn:   # partial = A_k B_k for this half's columns of B
                skc.hopper.wgmma_fence()
                self.issue(partial, stage.a, stage.b, accumulate=False, column0=part * half)
                self.commit()
            self.retire(0)
            self.fold(acc, partial.fragment, scales, first=part * half // 2, count=half // 2)


class PromotedWgmma(BlockScaledWgmma):
    """The per-tensor fp8 GEMM's TileOp without fast_accum: each k-block multiplied into a fresh fragment and added
    into the f32 sum (what torch._scaled_mm does with use_fast_accum=False); the scales stay in the epilogue."""

    scaled = False


class OverlappedPromotedWgmma(OverlappedBlockScaledWgmma):
    """PromotedWgmma two stages a step (OverlappedBlockScaledWgmma without scales)."""

    scaled = False


class HalvedPromotedWgmma(HalvedBlockScaledWgmma):
    """PromotedWgmma with each k-block's partial in two column halves (HalvedBlockScaledWgmma without scales)."""

    scaled = False


_UNSCALED = {BlockScaledWgmma: PromotedWgmma, OverlappedBlockScaledWgmma: OverlappedPromotedWgmma,
             HalvedBlockScaledWgmma: HalvedPromotedWgmma}   # each TileOp's twin for per-tensor scales


def _scale(tile, index):
    tile.check_live()
    return skc.load(skc.int_to_ptr(tile.address + 4 * index, skc.f32, "shared"))


@skc.func
def _scaled_gemm(a, b, out, M, N, K, bias, scale_a, scale_b, cfg, stream_k=None):
    """The GEMM of both fp8 kernels: block scales as tensor maps of the payload, or per-tensor or row-wise scales
    applied by the fused epilogue (_epilogue_scales); `stream_k`, the buffers of a stream-K or split-tail launch."""
    if cfg.block_scaled:
        epilogue = EpilogueArgs.of_spec(cfg.epilogue, M, N, bias=bias)
        wgmma_gemm(a, b, out, M, N, K, epilogue, cfg, stream_k=stream_k, sa=scale_a, sb=scale_b)
    else:
        wgmma_gemm(a, b, out, M, N, K, _epilogue_scales(cfg, M, N, bias, scale_a, scale_b), cfg, stream_k=stream_k)


@skc.func
def _epilogue_scales(cfg, M, N, bias, scale_a, scale_b):
    """The fused epilogue's arguments of the kernels whose scales it applies: row-wise (cfg.epilogue.row_scale), A's
    M scales and B's N scales as per-row and per-column vectors, else one each, their product as alpha."""
    if cfg.epilogue.row_scale:
        epilogue = EpilogueArgs.of_spec(cfg.epilogue, M, N, bias=bias, row_scale=scale_a, column_scale=scale_b)
    else:
        epilogue = EpilogueArgs.of_spec(cfg.epilogue, M, N, alpha=skc.load(scale_a) * skc.load(scale_b), bias=bias)
    return epilogue


@skc.kernel
def fp8_matmul_kernel(a, b, out, M: skc.i32, N: skc.i32, K: skc.i32, bias, scale_a, scale_b, cfg: skc.constexpr):
    """out = sa · sb · (a @ b) (+ bias, activation): a, b, out tensor maps (a M x K, b N x K); scale_a and
    scale_b f32 pointers to one value each (cfg.block_scaled False), to M and N values (row-wise:
    cfg.epilogue.row_scale) or tensor maps of the block scales (A's as (K / 128) x M, B's as (K / 128) x (N / 128,
    padded to a multiple of 4))."""
    _scaled_gemm(a, b, out, M, N, K, bias, scale_a, scale_b, cfg)


@skc.kernel
def fp8_matmul_stream_k_kernel(a, b, out, workspace, counters, M: skc.i32, N: skc.i32, K: skc.i32, bias, scale_a,
                               scale_b, cfg: skc.constexpr):
    """fp8_matmul_kernel with stream-K (cfg.stream_k: the last waves' k-steps shared evenly between the blocks) or
    a split tail (cfg.split_tail: the last wave's tiles split along K), a split tile completed in the registers of
    its last part (block-scaled: the parts' scaled f32 sums added); workspace and counters are
    host_plans.stream_k_buffers'."""
    _scaled_gemm(a, b, out, M, N, K, bias, scale_a, scale_b, cfg, stream_k=(workspace, counters))


@skc.kernel
def fp8_matmul_split_kernel(a, b, out, workspace, counters, M: skc.i32, N: skc.i32, K: skc.i32, bias, scale_a,
                            scale_b, cfg: skc.constexpr):
    """The per-tensor (or row-wise) fp8 GEMM with split-K (cfg.split_k > 1): a and b tensor maps, out a pointer to
    the row-major output, workspace and counters split_buffers' (see matmul_split_kernel), scale_a and scale_b f32
    pointers."""
    epilogue = _epilogue_scales(cfg, M, N, bias, scale_a, scale_b)
    wgmma_gemm(a, b, out, M, N, K, epilogue, cfg, split=(workspace, counters))
