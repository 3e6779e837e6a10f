"""The tile-shape rule of the Hopper GEMM (`MatmulConfig.for_problem`'s choices): each tile shape's measured speed
per SM, the waves of tiles over the SMs, and the rules for split-K shares, clusters and operands whose rows are not
128-byte aligned. Each constant says what measured it (benchmarks/NOTES.md); the benchmarks' before/after tools set
them on this module (benchmarks/deep_k_splits.py's rules_as)."""
from __future__ import annotations


# Tile shapes (rows, columns) and the speed of each per SM when every SM has many tiles, relative to 128 x 256's
# (kernel time on the H200, benchmarks/results/sweep-2026-11-30-{baseline,c3}.json and
# session17-2026-12-01-gemm-waves.json; 192-row tiles: three consumer warpgroups). Ties go to the earlier shape.
# 64 x 64 tiles win only where 64 x 128 ones leave most SMs idle and they still fit in one wave (64 x 5120 x 5120
# 0.97x cuBLAS end to end against 0.84x, 128 x 4096 x 4096 1.00x against 0.89x: session17-2026-12-01-small-m.txt).
# 192 x 192 wins where its waves cost as much as 128 x 256's, or about 1 % more (6144³ and 3072 x 12288 x 4096:
# 1.02x as fast, 5120 x 7168 x 4096 and 14336 x 14336 x 4096 level, sustained:
# session18-2026-12-02-bf16-192-ties-ab.txt).
TILE_SPEEDS = {(128, 256): 1.00, (192, 192): 1.01, (128, 192): 0.97, (192, 128): 0.97, (128, 128): 0.93,
               (64, 256): 0.93, (64, 128): 0.75, (64, 64): 0.50}
# The same, where the operands' rows start at no multiple of 128 bytes from each other, in the clusters of
# unaligned_cluster: the producer's copies set the pace, a tile's speed going as its work over its TMA requests
# (two a 128-byte row of a box: 2(m + n) a k-step for an m x n tile, of which a cluster of two halves the shared
# operand's), about 700 TFLOP/s at 128 x 256's. Fitted to sustained figures (benchmarks/NOTES.md, twentieth
# session): at 3000³ 627 TFLOP/s on 192 x 192, 554 on 128 x 192, 432 on 128 x 128, 253 on 64 x 64; 449 on 64 x 256
# at 5000³.
UNALIGNED_TILE_SPEEDS = {(128, 256): 0.95, (192, 192): 0.92, (128, 192): 0.82, (192, 128): 0.82, (128, 128): 0.64,
                         (64, 256): 0.64, (64, 128): 0.48, (64, 64): 0.33}
# Tiles that fill one wave where the shapes above leave SMs idle, by B's layout (b_k_major): 192 x 96 puts 1536²
# in 128 tiles on 132 SMs, where 128 x 192 leaves 96. A K-major B's tiles may be any multiple of 8 wide: 567 against
# 497 TFLOP/s sustained at 1536³ `x @ w.t()` (twenty-first session), a speed of 0.83 at that wave; a row-major B's an
# odd multiple of 32 in 64-byte swizzled chunks: 538 against 491 at 1536³ and 414 against 364 at 768 x 3072 x 768
# (cuBLAS 473 and 245; benchmarks/NOTES.md, twenty-second session), 0.80.
NARROW_TILE_SPEEDS = {True: {(192, 96): 0.83}, False: {(192, 96): 0.80}}
# 128-row tiles of a K-major B (x @ w.t()) between the widths above (wgmma's n may be any multiple of 8; these are of
# 16): a width that fills the last wave better, or puts one wave on more SMs. Speeds between 128 x 128's and 128 x 256's
# in proportion to the width; end to end against torch.matmul (benchmarks/NOTES.md, thirty-second session,
# `benchmarks/wave_tiles.py grid`): 448 x 9856 x 1984 0.98 on 128 x 160 (248 tiles, two waves) against 0.84 on
# 128 x 192 (208), 1800 x 5000 x 4096 0.89 on 128 x 144 (525, four) against 0.79 on 128 x 128 (600, five),
# 1000 x 11008 x 4096 1.00 on 128 x 176 (504) against 0.96 on 128 x 256 (344). 240 wide ran 0.94 there while its
# epilogue stored 15 chunks of 16 columns a row; stored in 5 of 48 since (epilogue_columns, thirty-third session), it
# is weighed too. bf16 and fp16 only (`MatmulConfig.fill_widths`): unmeasured for fp8. From
# FILL_WIDTH_MIN_STEPS k-steps: over 32 shapes drawn at random whose tiles they changed, the geometric mean went from
# 0.92 to 0.95 of torch.matmul (995 x 3104 x 3584 0.86 -> 0.97, 5768 x 1592 x 6080 0.88 -> 0.97), but the five with
# K of 512-704 lost (5452 x 4272 x 512 1.02 -> 0.92: there a tile's fixed cost, its epilogue's chunks, weighs more
# than its share of the wave; `benchmarks/results/session32-2026-12-03-fill-widths-first-rule-ab.txt`).
FILL_WIDTH_SPEEDS = {(128, n): round(0.93 + 0.07 * (n - 128) / 128, 3) for n in (144, 160, 176, 208, 224, 240)}
FILL_WIDTH_MIN_STEPS = 12
# ... and narrower ones, for one wave: where 128 x 128 tiles leave many SMs idle (cuBLAS runs 896 x 1408 x 11200
# `x @ w.t()` on 80 x 128 tiles, 132 of them), 128-row tiles 80-112 wide whose count fills between NARROW_FILL_SHARE
# of the SMs and NARROW_FILL_MAX (M >= NARROW_FILL_MIN_ROWS, FILL_WIDTH_MIN_STEPS k-steps or more, aligned rows, one
# matrix). Speeds fitted to end-to-end times against torch.matmul (thirty-ninth session,
# `python benchmarks/wave_tiles.py narrow`, 2026-12-04): 896 x 1408 x 11200 0.88 on 128 x 80 (126 tiles) against
# 0.76 on 128 x 128 (77), 1792 x 768 x 12288 0.93 on 128 x 96 (112) against 0.82, 1408 x 1024 x 9216 1.21 on 128 x 96
# (121) against 1.08, 768 x 2304 x 6144 1.00 on 128 x 112 (126) against 0.96, 640 x 2560 x 8192 1.00 against 0.94;
# 1200 x 1200 x 8192 0.97 on 128 x 96 (130 tiles, past NARROW_FILL_MAX) against 1.07, 1.09 on 128 x 112 (110).
# 192-row tiles 64-112 wide were slower than 128 x 128 on all 10 shapes measured. Not where the last row of tiles
# holds fewer than NARROW_FILL_MIN_LAST_ROWS of M's rows (M not a multiple of 128): on the fortieth session's first
# fresh draw (`python benchmarks/wave_tiles.py narrow-draw 3905 20 6144`, then `narrow-ab`) the narrow tiles were slower
# on all 5 such shapes (7-11 %; 2195 x 560 x 14656 1.05 -> 0.93) and on 3 of the other 15; on the second, drawn
# after the rule was fixed (seed 3906, 24 shapes), slower on 5 of the 6 it leaves out and on 3 of the 18 it keeps,
# geometric mean 0.823 before, 0.869 without the limit, 0.884 with it. Why is not measured; it may be PAST_END_COST's
# slow zero fill, which would set such a wave's time whatever the tiles' width. Fitted from 96 k-steps (K >= 6144),
# the rule then held at shallower K too (fortieth session, scratch draws, the rule from 32 and from 12 k-steps against
# the rule from 96): K 2048-6080 0.856 -> 0.944 (seed 4002, 19 of 20 faster or level) and 0.856 -> 0.952 (seed 4003,
# 2 of 20 slower), K 768-2047 0.889 -> 0.961 (seed 4004, 1 of 20 slower): from FILL_WIDTH_MIN_STEPS since.
NARROW_FILL_SPEEDS = {(128, 80): 0.67, (128, 96): 0.78, (128, 112): 0.85}
NARROW_FILL_SHARE = 0.75
NARROW_FILL_MAX = 0.96
NARROW_FILL_MIN_ROWS = 512
NARROW_FILL_MIN_LAST_ROWS = 32
# The same for rows not 128-byte aligned (a K-major B, FILL_WIDTH_MIN_STEPS k-steps or more, one matrix): 128-row
# tiles of FILL_WIDTH_SPEEDS' widths and 192-row ones 144 and 160 wide, each weighed only where unaligned_cluster
# gives it a cluster that adds no wave, at the speed of UNALIGNED_TILE_SPEEDS' request model in that cluster
# (`unaligned_speed`; 192-row tiles 0.97 of it, as 192 x 192's fitted speed is). Measured end to end against
# torch.matmul (benchmarks/NOTES.md, thirty-eighth session): 6264 x 528 x 4648 0.88 on 192 x 144 (132 tiles, one
# wave) against 0.70 on 192 x 192 (99), 7424 x 776 x 1392 0.86 on 128 x 208 (232) against 0.79 on 128 x 256; fresh
# draws of shapes the rule changed, geometric means: 0.876 -> 0.915 and 0.869 -> 0.890 (20 each, 192 x 176 among the
# tiles), 0.896 -> 0.936 (16, the rule as it is). 192 x 176, which the model rates 3-6 % faster than 192 x 192,
# measured 1 % slower over the five shapes of those draws that took it: not weighed.
UNALIGNED_FILL_WIDTHS = tuple((128, n) for n in (144, 160, 176, 208, 224, 240)) + ((192, 144), (192, 160))
# One row of 192-row tiles for 128 < M <= 192: 192 x 64, A's box holding only M's rows (a_rows), one epilogue buffer
# for a sixth stage (one tile a block). 128- or 64-row tiles leave a last row of tiles part past M there, and TMA
# fills a box past A's end with zeros slowly: the same grid at 192 x 7168 x 16384 ran 1.28x as long as with 256 rows
# (bf16, 128 x 128; fp8 1.11-1.33x, and 1.39-1.6x at 160 rows). Sustained at 192 x 7168 x 16384: 535 TFLOP/s
# against 415 on 128 x 128 (cuBLAS 531); 453 against 259 at 160 rows (benchmarks/NOTES.md, twenty-fourth session).
ONE_ROW_TILE_SPEEDS = {(192, 64): 0.84}
# Where only B's rows start at no multiple of 128 bytes (A's K-major rows aligned), one row of 192 x 64 tiles for
# 128 < M <= 192 when they fill at least this share of the SMs, and at most one wave. End to end against
# torch.matmul (benchmarks/NOTES.md, twenty-seventh session; the rule's tiles, in clusters, before): 129 x 5000 x 4096
# (79 tiles) 1.01 against 0.73, 184 x 5400 x 8000 (85) 1.19 against 0.82, 131 x 8040 x 2048 (126) 0.97 against 0.74,
# 145 x 4600 x 12288 (72) 0.84 against 0.52; with fewer tiles slower (192 x 2984 x 8192, 47 tiles: 0.81 against
# 0.92), and in two waves (180 x 12000 x 4096: 0.77 against 0.84). Where A's rows are unaligned too, mixed (0.52-0.90
# against 0.56-0.86): not taken.
UNALIGNED_ONE_ROW = 0.5
# A last row of 128-row tiles part past M: another (0.5 x its fraction past M) of a wave. (Not counted for 64-row
# tiles: 144 x 4096 x 14336 ran 1.12x as fast on 64 x 128 as on 192 x 64, where the count would have taken 192 x 64.)
PAST_END_COST = 0.5
SPLIT_K_BY_DEFAULT = False
# Rows not 128-byte aligned: where the aligned rules split few tiles over a deep K, their tiles and shares, unclustered
# (the SMs left idle cost more there than TMA's reads of each box row in two pieces: 368 x 344 x 7392, 64 x 64 tiles in
# 3 shares, 1.04x torch.matmul end to end against 0.74x in clusters of two unsplit; thirtieth session)
UNALIGNED_SPLITS = True
# Few tiles over a deep K (they fill at most a quarter of the SMs): split-K into as many shares as keep at most
# FEW_TILES_SHARE of the SMs busy, each share FEW_TILES_MIN_STEPS k-steps deep at least. End to end against
# torch.matmul (benchmarks/NOTES.md, twenty-sixth session): 4 x 1152 x 4800 (18 tiles of 64 x 64) 0.69 unsplit,
# 1.03 in 4 shares (0.94 in 6, 0.81 in 8); 32 x 1472 x 4416 (23 tiles) 0.75, 0.98 in 3 (0.95 in 4); `x @ w.t()` 8 x
# 320 x 3280 (5 tiles) 0.75, 1.07 in 4 (1.01 in 8); per-tensor fp8 18 x 512 x 13568 (8 tiles) 0.57, 0.88 in 8.
# Where the tiles fill more (64 x 3904 x 5248: 61 tiles; 16 x 8192 x 8192), the shares' epilogue costs more than
# the SMs gain (0.87 against 0.88 unsplit; eighth session).
FEW_TILES_SHARE = 0.55
FEW_TILES_MIN_STEPS = 12
# ... but one row of 64 x 64 tiles (aligned rows) of SHALLOW_ROW_MIN_ROWS rows or more that fills more than a sixth of
# the SMs over at most SHALLOW_ROW_STEPS k-steps stays unsplit: there the shares' epilogue costs more than the SMs
# they add gain (why fewer rows keep gaining from them was not measured). End to end against torch.matmul
# (benchmarks/NOTES.md, thirty-seventh session; 64 x 64 unsplit against 2 shares): 58 x 1472 x 1920 `x @ w.t()` (23
# tiles, 30 k-steps) 0.90 against 0.83, 32 x 1920 x 1664 `x @ w.t()` 0.93 against 0.89, 52 x 2112 x 2112 0.92 against
# 0.86, 64 x 1856 x 1728 `x @ w.t()` 0.93 against 0.83, 32 x 1536 x 1536 0.99 against 0.91. A fresh draw (seed 3706)
# put 9 shapes of 37-63 rows at 0.91 against 0.85 (none slower) but 7 of 2-20 rows level, three slower (10 x 1472 x
# 1920 0.84 against 0.93, 4 x 1472 x 1600 0.83 against 0.89): hence the rows' bound, fitted on that draw; a third, of
# 32-64 rows (seed 3707), 0.895 against 0.879, 9 of 14 faster, 5 slower (two by 6-7 %): a small gain. Fewer tiles
# (8-18) or two rows of them (128 x 1024 x 2048: 0.82 unsplit against 0.88) gain from the shares there.
SHALLOW_ROW_STEPS = 33
SHALLOW_ROW_FILL = 1 / 6
SHALLOW_ROW_MIN_ROWS = 32
# Several rows of tiles that fill a quarter to half of the SMs over a deep K: split-K into as many shares (3 or 2)
# as fit one wave, each HALF_WAVE_MIN_STEPS k-steps deep at least (`half_wave_split`). End to end against
# torch.matmul (benchmarks/NOTES.md, twenty-seventh session): `x @ w.t()` 427 x 384 x 8192 (42 tiles of 64 x 64)
# 0.57 unsplit, 0.90 in 3 shares (0.78 in 2, 0.66 in 4); `x @ w.t()` 95 x 1936 x 13632 (62 tiles) 0.69, 0.92 in 2;
# 256 x 576 x 4608 (36 tiles, 72 k-steps) 0.70, 0.85 in 2 (0.93 in 3, 24 k-steps a share). With more tiles (84, 93)
# no split helped; one row of tiles (64 x 3904 x 5248, 61 tiles: 0.87 in 2 against 0.88) stays unsplit.
HALF_WAVE_MIN_STEPS = 32
# One row of 64 x 64 tiles (M <= 64) that fills a quarter to half of the SMs: split-K in 2 shares where a model of its
# time says they gain ONE_ROW_SPLIT_GAIN or more (`one_row_split`). A problem takes ONE_ROW_SPLIT_FIXED_STEPS k-steps'
# time besides its k-steps (launch, the pipeline's start, the epilogue), a split ONE_ROW_SPLIT_SHARE_COST more (its
# partials written, added and waited for), and its k-steps run at one SM's pace until its tiles outnumber
# ONE_ROW_SPLIT_BANDWIDTH of the SMs, whose reads fill the DRAM's bandwidth. Fitted to 24 shapes of 1-64 rows (`python
# benchmarks/one_row_tiles.py grid`, thirty-sixth session: every gain within 5 % but one); against torch.matmul
# end to end, unsplit / 2 shares: 4 x 2304 x 9152 (36 tiles, 143 k-steps) 0.75 / 1.01, 12 x 2368 x 5504 0.81 / 0.99,
# 1 x 2560 x 3520 0.91 / 1.01, `x @ w.t()` 16 x 4096 x 14336 0.94 / 1.01; level or slower at 20-64 k-steps
# (17 x 3008 x 1856 0.94 / 0.86, 16 x 4096 x 4096 1.04 / 1.00). Three shares never beat two there.
ONE_ROW_SPLIT_FIXED_STEPS = 65
ONE_ROW_SPLIT_SHARE_COST = 16
ONE_ROW_SPLIT_BANDWIDTH = 0.58
ONE_ROW_SPLIT_GAIN = 1.02
# 64 < M <= TALL_ROW_ROWS over TALL_ROW_STEPS k-steps or more, where the wave rule takes 64-row tiles: their second row
# lies mostly past M, whose boxes TMA fills slowly. One row of 128 x 64 tiles instead (as many as 64 x 128 ones; A's
# boxes, A K-major, hold only M's rows), in `one_row_split`'s shares, where they fill more than a quarter of the SMs
# and at most all (`tall_row_split`).
# End to end against torch.matmul (thirty-sixth session, `benchmarks/one_row_tiles.py grid two-rows` and a seed-3615
# draw of 65-128 rows): 87 x 7168 x 10176 0.96 against 0.87 on 64 x 128, `x @ w.t()` 67 x 6272 x 11776 1.05 against
# 0.88, 65 x 4096 x 4096 0.81 against 0.73 on 64 x 64, `x @ w.t()` 80 x 3008 x 8192 0.92 in 2 shares against 0.79;
# level at 90 rows (0.88 against 0.86) and slower below 64 k-steps (73 x 2560 x 1472 `x @ w.t()` 0.82 against 0.94,
# 76 x 5696 x 1984 0.90 against 0.89) and past 96 rows (96 x 2368 x 3392 0.89 against 0.98, 128 x 6528 x 5760 0.98
# against 1.02). Where one_row_split takes two shares, only from TALL_ROW_SPLIT_STEPS: a fresh draw (seed
# 3616) read them slower at 68 and 80 k-steps (81 x 2880 x 4352 0.86 against 0.91, `x @ w.t()` 87 x 2304 x 5120 0.88
# against 0.91) and faster from 110 (74 x 2880 x 7040 `x @ w.t()` 0.86 against 0.79, 66 x 2368 x 13440 0.87 against
# 0.68); unsplit ones were faster or level from 64 (75 x 8256 x 5440 1.01 against 0.94).
TALL_ROW_ROWS = 88
TALL_ROW_STEPS = 64
TALL_ROW_SPLIT_STEPS = 96
# Rows of tiles (M >= DEEP_K_ROWS) that fit one wave over a deep K (at least DEEP_K_STEPS k-steps): the tile and the
# split-K shares chosen together (`deep_k_tiles`), of the least (k-steps / shares / speed + DEEP_K_SHARE_COST k-steps
# a split tile, its partials written, added and waited for) x the tile's work, the units in one wave. The speeds and
# the cost are fitted to end-to-end times of 14 shapes over 4 tiles x 6 splits and of 24 more against the rule
# before (benchmarks/NOTES.md, twenty-ninth session; `benchmarks/deep_k_splits.py`). Against torch.matmul, the rule
# before / this one: 192 x 640 x 14208 0.67 / 0.94 (64 x 64 in 4 shares), 384 x 768 x 8192 0.81 / 1.00 (64 x 128 in
# 3), 576 x 576 x 24576 0.61 / 0.91 (128 x 128 in 5), `x @ w.t()` 762 x 512 x 26240 0.57 / 0.88 (128 x 128 in 5).
# Below 128 rows the rules after it stay (84 x 448 x 9472 0.88 in their 5 shares, 0.81 in the 4 of this model's
# first fit, which took rows past 64).
# The thirtieth session measured the same rule down to 64 k-steps where the tiles fill more than a quarter of the
# SMs (`deep_k_splits.py grid edges`: at 4096-7040 its choice was the best of ~20 on all 8 shapes, 300 x 900 x 7040
# 0.98 against the rules before's 0.85, `x @ w.t()` 200 x 1200 x 6656 0.90 against 0.79, the other six the rules
# before's own choice; fewer tiles keep few_tiles_split's deeper shares below DEEP_K_FEW_TILES_STEPS), and a 64-row
# tile whose last column lies part past N costs DEEP_K_PAST_N_COST more for each share of it past N: its units wait
# on boxes of B filled with zeros past N (808 x 320 x 14528: 64 x 64 in 2 shares 0.86 against 0.77 for 64 x 128 in 3).
# 128 x 128 tiles split only from DEEP_K_TALL_TILE_STEPS: below, the 3 shapes of a second draw where the model split
# them (in 3 shares, at 110-126 k-steps) ran slower than the rules before's 64 x 128 tiles unsplit (`x @ w.t()` 316 x
# 1792 x 8064 0.79 against 0.88, 256 x 2368 x 7040 0.83 against 0.89); unsplit they stay (a third draw: 885 x 1792 x
# 4096 0.94 on them, 0.79 on 64 x 128, which a first version of this bound took).
DEEP_K_STEPS = 64
DEEP_K_FEW_TILES_STEPS = 128
DEEP_K_TALL_TILE_STEPS = 128
DEEP_K_ROWS = 128
DEEP_K_MIN_STEPS = 32
DEEP_K_SHARE_COST = 32
DEEP_K_SPEEDS = {(64, 64): 0.5, (64, 128): 0.8, (128, 128): 0.93}
DEEP_K_PAST_N_COST = 0.15
# (128 x 256 tiles were the slowest of the four in every such problem measured: 0.82 against 0.95 in 4 shares at
# 1024 x 1024 x 16384, 0.64 against 1.00 at 256 x 2048 x 8192; where the rule takes them, they stay unsplit)


def swaps(M: int, N: int, K: int, multiprocessors: int = 132, batch: int = 1, unaligned: bool = False) -> bool:
    """Whether an M x N x K problem of 128 < M <= 192 rows runs as out^T = b^T a^T (MatmulConfig.swap_ab): M is then
    the tiles' width, any multiple of 8 (wgmma's n), where 128- or 192-row tiles do a third more MMA work than the
    rows need or more; N's 64-row tiles (or 128-row ones, fp8) fill one wave of the SMs. Sustained at 7168 x 16384,
    kernel against the one row of 192 x 64 tiles (benchmarks/NOTES.md, twenty-fifth session): bf16 64 x M tiles
    1.05-1.18x (at or above cuBLAS), fp8 per tensor 128 x M/2 1.06-1.13x. Deep K only (>= 4096): the transposed
    stores' share of a tile grows as K shrinks."""
    return (not unaligned and batch == 1 and 128 < M <= 192 and K >= 4096
            and multiprocessors // 2 <= tiles_of(N, M, 64, -(-M // 8) * 8) <= multiprocessors)


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def tiles_of(M: int, N: int, tile_m: int, tile_n: int) -> int:
    return cdiv(M, tile_m) * cdiv(N, tile_n)


def wave_cost(M: int, N: int, tile: tuple, multiprocessors: int = 132, batch: int = 1,
              speeds: dict = TILE_SPEEDS, past_end: bool = False) -> float:
    """The time of an M x N output (a batch of `batch` of them) in tiles of `tile`, in units of one SM's time for a
    128 x 256 tile's work (K cancels): the waves of tiles over the SMs, rounded up (a part-full last wave takes as
    long as a full one), times each tile's work over the tile shape's speed (TILE_SPEEDS). `past_end`: a last row
    of 128-row tiles part past M (after a full one) adds PAST_END_COST of a wave for its rows past M."""
    tile_m, tile_n = tile
    waves = cluster_waves(M, N, tile_m, tile_n, multiprocessors, batch)
    if past_end and M > tile_m >= 128:
        waves += PAST_END_COST * (-M % tile_m) / tile_m
    return waves * tile_m * tile_n / (speeds[tile] * 128 * 256)


def unaligned_speed(tile_m: int, tile_n: int, cluster: dict) -> float:
    """A tile's speed over rows not 128-byte aligned (UNALIGNED_TILE_SPEEDS' model): its work over the rows its
    block copies, A's tile_m (halved in a cluster along N, which shares A) and B's tile_n (halved along M), 0.95 at
    128 x 256's in clusters along M; 192-row tiles at 0.97 of that (192 x 192's fitted 0.92 against the model's
    0.95)."""
    rows = tile_m / cluster.get("cluster_n", 1) + tile_n / cluster.get("cluster_m", 1)
    return 0.95 * tile_m * tile_n / rows / 128 * (0.97 if tile_m == 192 else 1)


# Rows not 128-byte aligned: UNALIGNED_TILE_SPEEDS' tiles at their speed in the cluster unaligned_cluster gives them
# (`unaligned_tile_speeds`): the table's speed is in its first choice; the other direction goes as the request
# model; none at UNCLUSTERED_SPEED of it (the twentieth session's sustained figures: 3000³ on 192 x 192 507 TFLOP/s
# unclustered against 627, 1000³ on 64 x 128 172 against 206, 100 x 3000 x 5000 115 against 145: 0.79-0.83); a
# cluster that adds a wave, slower by that wave. Before (False): the table's speeds whatever the cluster, so 2880 x
# 4160 x 2824 `x @ w.t()` took 128 x 256 tiles that no cluster fits into its 3 waves (0.79 of torch.matmul), where 192
# x 160 in clusters along N ran 1.07 (thirty-eighth session).
UNALIGNED_CLUSTER_SPEEDS = True
UNCLUSTERED_SPEED = 0.81
# What a caller names that keeps unaligned rows' tiles out of unaligned_cluster's clusters (for_problem): the rule
# then weighs the table's speeds as they are (all tiles alike unclustered) and no fill widths
UNCLUSTERING = frozenset({"tile_m", "tile_n", "cluster_m", "cluster_n", "split_k", "stream_k", "split_tail", "pingpong",
                          "loader"})


def unaligned_tile_speeds(M: int, N: int, multiprocessors: int, batch: int = 1) -> dict:
    """UNALIGNED_TILE_SPEEDS for an M x N output (`batch` of them) in the clusters unaligned_cluster gives each tile
    (UNALIGNED_CLUSTER_SPEEDS). A single row of tiles, which takes no cluster, keeps the table's speed (8 x 3000 x
    5000 measured no faster in clusters: unaligned_cluster)."""
    if not UNALIGNED_CLUSTER_SPEEDS:
        return UNALIGNED_TILE_SPEEDS
    speeds = {}
    for (tile_m, tile_n), speed in UNALIGNED_TILE_SPEEDS.items():
        first = unaligned_cluster(M, N, tile_m, tile_n)   # (the table's: the first choice)
        cluster = unaligned_cluster(M, N, tile_m, tile_n, multiprocessors, batch)
        if first and not cluster:
            speed *= UNCLUSTERED_SPEED
        elif cluster != first:
            speed *= unaligned_speed(tile_m, tile_n, cluster) / unaligned_speed(tile_m, tile_n, first)
        waves = cluster_waves(M, N, tile_m, tile_n, multiprocessors, batch, {})
        speeds[tile_m, tile_n] = speed * waves / cluster_waves(M, N, tile_m, tile_n, multiprocessors, batch, cluster)
    return speeds


def cluster_waves(M: int, N: int, tile_m: int, tile_n: int, multiprocessors: int, batch: int = 1,
                  cluster: dict = None) -> int:
    """The waves of an M x N output's tiles (`batch` of them) over the SMs in clusters of `cluster` (two blocks along
    M or N; {} or None: one)."""
    size_m, size_n = (cluster or {}).get("cluster_m", 1), (cluster or {}).get("cluster_n", 1)
    units = batch * cdiv(cdiv(M, tile_m), size_m) * cdiv(cdiv(N, tile_n), size_n)
    return cdiv(units, max(1, multiprocessors // (size_m * size_n)))


def narrow_fill_speeds(M: int, N: int, multiprocessors: int) -> dict:
    """NARROW_FILL_SPEEDS' tiles for an M x N output (one matrix, aligned rows) whose count fills between
    NARROW_FILL_SHARE and NARROW_FILL_MAX of the SMs: none under NARROW_FILL_MIN_ROWS rows or where the last row of
    tiles holds fewer than NARROW_FILL_MIN_LAST_ROWS of them."""
    if M < NARROW_FILL_MIN_ROWS or 0 < M % 128 < NARROW_FILL_MIN_LAST_ROWS:
        return {}
    return {tile: speed for tile, speed in NARROW_FILL_SPEEDS.items()
            if NARROW_FILL_SHARE <= tiles_of(M, N, *tile) / multiprocessors <= NARROW_FILL_MAX}


def unaligned_fill_speeds(M: int, N: int, multiprocessors: int) -> dict:
    """UNALIGNED_FILL_WIDTHS' tiles for an M x N output (one matrix) that unaligned_cluster puts in clusters adding
    no wave, at their speed in that cluster (`unaligned_speed`)."""
    speeds = {}
    for tile_m, tile_n in UNALIGNED_FILL_WIDTHS:
        cluster = unaligned_cluster(M, N, tile_m, tile_n, multiprocessors)
        if cluster and (cluster_waves(M, N, tile_m, tile_n, multiprocessors, 1, cluster)
                        == cluster_waves(M, N, tile_m, tile_n, multiprocessors)):
            speeds[tile_m, tile_n] = unaligned_speed(tile_m, tile_n, cluster)
    return speeds


def unaligned_cluster(M: int, N: int, tile_m: int, tile_n: int, multiprocessors: int | None = None,
                      batch: int = 1) -> dict:
    """The cluster for tiles of operands whose rows start at no multiple of 128 bytes from each other (a row pitch
    of 3000 bf16 values): TMA then reads each 128-byte row of a box in two pieces, and the copies, not the tensor
    cores, set the pace (3000³ on 192 x 192 tiles: 507 TFLOP/s, 707 with the same rows 128-byte aligned). A cluster
    of two blocks copies the tile they share once: the larger, A along N for tiles of more rows than columns and for
    192 x 192 ones (627 against 612 TFLOP/s at 3000³), else B along M (1000³ on 64 x 128: 206 against 174).
    Measured sustained (benchmarks/NOTES.md, twentieth session): 3000³ 507 -> 627, 1000³ 172 -> 206, 100 x 3000 x
    5000 115 -> 145 TFLOP/s. {} for a single row of tiles. With `multiprocessors`, a cluster that would round an
    odd count of tiles up into more than a quarter more waves (787 x 4504 x 9216 on 128 x 256 tiles: 7 rows of 18,
    one wave; in clusters along M, 8 rows, two: 0.52x torch.matmul, 0.70x in clusters along N) gives way to the
    other direction, or to none; one more wave of several stays (7000 x 3000 x 2000: 6 waves of clusters along M
    against 5 unclustered, 0.88x, along N 0.84x; twenty-sixth session)."""
    tiles_m, tiles_n = cdiv(M, tile_m), cdiv(N, tile_n)
    if tiles_m == 1:   # (few rows of A: sharing them saves little; 8 x 3000 x 5000 measured 0.93x in clusters)
        return {}
    along_n = (tile_m > tile_n or (tile_m, tile_n) == (192, 192)) and tiles_n > 1
    choices = [{"cluster_n": 2}, {"cluster_m": 2}] if along_n else [{"cluster_m": 2}, {"cluster_n": 2}]
    if multiprocessors is None:
        return choices[0]
    if multiprocessors < 2:   # (no pair of SMs to hold a cluster)
        return {}
    waves = cluster_waves(M, N, tile_m, tile_n, multiprocessors, batch)
    for choice in choices:
        if choice.get("cluster_n") and tiles_n == 1:
            continue
        # (clusters of two: half as many of them at once)
        if cluster_waves(M, N, tile_m, tile_n, multiprocessors, batch, choice) <= waves * 1.25:
            return choice
    return {}


# unaligned_cluster's clusters along M share B's tile. They pay where B's rows start 16 bytes past a multiple of 32
# from each other (a 128-byte box row then touches five 32-byte sectors, not four), or where A's do and B's rows are
# unaligned too (A's copies set the pace, and halving B's helps); elsewhere unclustered is faster. End to end against
# torch.matmul, the same tile with the cluster and without (thirty-ninth session, benchmarks/NOTES.md;
# `python benchmarks/unaligned_widths.py ab SEED COUNT sectors`):
# - only A's rows unaligned: unclustered faster on 16 of 17 shapes (328 x 4032 x 5040 0.91 against 0.61, 1341 x 2624
#   x 2264 0.93 against 0.83), level on one;
# - B's rows a multiple of 32 bytes past alignment, A's not 16 past: faster on 31 of 38, level on 2 (156 x 1744 x
#   1888 0.99 against 0.80, 3694 x 7920 x 3776 1.04 against 0.88; slower: 2182 x 752 x 2640 0.87 against 0.98,
#   `x @ w.t()` 1985 x 496 x 5296 0.85 against 0.95, three by 2-3 %);
# - B's rows a multiple of 32 past, A's 16 past (a fresh draw, seed 3903, the first form of this rule): slower on 4
#   of 6 (2889 x 272 x 7272 0.60 against 0.73, 2252 x 3120 x 1976 0.76 against 0.85): these keep the cluster;
# - B's rows 16 past: the cluster faster on 3 of 5 (5223 x 1816 x 1984 0.84 against 0.64).
# Checked on a fresh draw of 24 shapes whose choice this rule changes (seed 3904): 0.903 -> 0.930 of torch.matmul
# (geometric mean), 14 faster (`x @ w.t()` 623 x 2128 x 8176 0.99 against 0.76), 4 level, 6 slower by 1-4 %.
# The twentieth session's clusters were fitted to rows 16 bytes past (3000³, 1000³). Clusters along N, sharing A's
# tile, stay: they were faster on 3 of 4 shapes whose A's rows start a multiple of 32 bytes past. A dropped cluster
# along M does not give way to one along N: where only A's rows were unaligned, 64- and 128-row tiles along N
# were slower than unclustered on 10 of 11 shapes (4853 x 576 x 5232 0.47 against 0.91). The tiles are still chosen
# at their clustered speeds (unaligned_tile_speeds, unaligned_fill_speeds) and then run without the cluster: on the
# two fresh draws, the 12 shapes whose fill-width tile went unclustered read 0.98-1.05 of the clustered form.
SECTOR_CLUSTERS = True
SECTOR = 32


def sector_crossing(drift) -> bool:
    """Whether rows that start `drift` bytes past a multiple of 128 from each other (True: unaligned, by an amount
    not known; 0: aligned) cross SECTOR-byte sectors: not a multiple of SECTOR. (Rows TMA reads are 16-byte aligned,
    so such a drift is 16 bytes past a multiple of 32.)"""
    return drift % SECTOR != 0   # (True % SECTOR is 1)


def shares_b(unaligned: tuple) -> bool:
    """Whether a cluster along M, sharing B's tile, pays for rows (A's, B's) that many bytes past 128-byte alignment
    (SECTOR_CLUSTERS): where B's rows cross sectors, or A's do and B's are unaligned too. Always, without
    SECTOR_CLUSTERS."""
    a, b = unaligned
    return not SECTOR_CLUSTERS or sector_crossing(b) or (sector_crossing(a) and bool(b))


def tile_shape(M: int, N: int, K: int, multiprocessors: int = 132, batch: int = 1, unaligned: bool = False,
               b_k_major: bool = False, narrow: bool = True, one_row: bool = True, a_aligned: bool = False,
               fill_widths: bool = False, row_split: bool = True, clusters: bool = True) -> tuple:
    """(tile_m, tile_n, cluster_m, split_k) for an M x N x K problem on a GPU of `multiprocessors` SMs: the tile
    shape of the least `wave_cost` (3072³ takes 192 x 192 tiles, 2 waves of 256, where 128 x 256 tiles left the
    third of 3 waves 18 % full: 1.30x faster; where one wave holds the tiles of several shapes, the one of least
    work over speed, which spreads the problem over the most SMs); clusters of 2 for 128 x 256 tiles once
    M >= 8192 (where the sweep measured them 1-6% faster, and 1-3% slower below); where DEEP_K_ROWS rows or more
    have DEEP_K_SPEEDS' tiles in one wave over at least DEEP_K_STEPS k-steps (DEEP_K_FEW_TILES_STEPS where they
    fill at most a quarter of the SMs; one matrix, aligned rows), the tile
    and the split-K shares chosen together (`deep_k_tiles`); else split-K where the tiles fill at most a quarter of
    the SMs over a deep K (`few_tiles_split`; one matrix, aligned rows), several rows of them fill at most half
    (`half_wave_split`) or one row of 64 x 64 tiles does (`one_row_split`; `row_split`, aligned rows), or, when
    SPLIT_K_BY_DEFAULT, where they fill less than half of the SMs and K is deep enough to share (>= 4 k-steps a
    unit).
    M counts `batch` matrices of M / batch rows. `unaligned`: the operands' rows start at no multiple of 128 bytes
    from each other, and the tiles, in clusters of two, go at UNALIGNED_TILE_SPEEDS, unless the aligned rules split
    the problem (UNALIGNED_SPLITS: their tiles and shares then). `narrow`: NARROW_TILE_SPEEDS's
    tiles for B's layout (`b_k_major`) are weighed too (their speeds are the bf16 GEMM's). `one_row`: for
    128 < M <= 192 (one matrix, aligned rows), ONE_ROW_TILE_SPEEDS's 192-row tiles are weighed too, and a last row
    of 128-row tiles part past M costs the more of PAST_END_COST the emptier it is (TMA fills a box past A's end
    with zeros slowly). `a_aligned`: where only B's rows are unaligned (A K-major), 128 < M <= 192 rows take one
    row of 192 x 64 tiles where those fill between half the SMs and all of them (`UNALIGNED_ONE_ROW`).
    `fill_widths`: with a K-major B, aligned rows and FILL_WIDTH_MIN_STEPS k-steps or more, FILL_WIDTH_SPEEDS'
    128-row tiles are weighed too, and NARROW_FILL_SPEEDS' where they fill one wave and the last row of tiles is
    not nearly empty (rows not 128-byte aligned, one matrix: UNALIGNED_FILL_WIDTHS' tiles, in clusters that add no
    wave, `unaligned_fill_speeds`). `row_split` (aligned rows; the caller names no tile, warpgroups or
    turns): one row of 64 x 64 tiles split in two (`one_row_split`), and where the rule takes 64-row tiles for
    64 < M <= TALL_ROW_ROWS over a deep K, a K-major A (`a_aligned`), one row of 128 x 64 tiles instead
    (`tall_row_split`). Rows not 128-byte aligned: UNALIGNED_TILE_SPEEDS' tiles at their speed in the cluster each
    gets (`unaligned_tile_speeds`), where they get one (`clusters`: the caller names nothing of UNCLUSTERING; else the
    table as it is, no fill widths)."""
    if (unaligned and a_aligned and one_row and batch == 1 and 128 < M <= 192
            and multiprocessors * UNALIGNED_ONE_ROW <= tiles_of(M, N, 192, 64) <= multiprocessors):
        return 192, 64, 1, 1
    if unaligned and batch == 1 and UNALIGNED_SPLITS:
        aligned = tile_shape(M, N, K, multiprocessors, batch, False, b_k_major, narrow, one_row, a_aligned,
                             fill_widths, row_split=False)
        if aligned[3] > 1:
            return aligned
    if unaligned:
        speeds = unaligned_tile_speeds(M // batch, N, multiprocessors, batch) if clusters else UNALIGNED_TILE_SPEEDS
        if clusters and fill_widths and b_k_major and batch == 1 and K // 64 >= FILL_WIDTH_MIN_STEPS:
            speeds = {**speeds, **unaligned_fill_speeds(M, N, multiprocessors)}
    else:
        speeds = {**TILE_SPEEDS, **NARROW_TILE_SPEEDS[b_k_major]} if narrow else TILE_SPEEDS
        if fill_widths and b_k_major and K // 64 >= FILL_WIDTH_MIN_STEPS:
            speeds = {**speeds, **FILL_WIDTH_SPEEDS}
            if batch == 1:
                speeds.update(narrow_fill_speeds(M, N, multiprocessors))
    one_row = one_row and not unaligned and batch == 1 and 128 < M <= 192   # (where ONE_ROW_TILE_SPEEDS was measured)
    if one_row:
        speeds = {**speeds, **ONE_ROW_TILE_SPEEDS}
    tile_m, tile_n = min(speeds, key=lambda tile: wave_cost(M // batch, N, tile, multiprocessors, batch, speeds,
                                                            one_row))
    if row_split and a_aligned and not unaligned and batch == 1 and tile_m == 64:
        split = tall_row_split(M, N, K, multiprocessors)
        if split:   # (a second row of 64-row tiles mostly past M over a deep K)
            return 128, 64, 1, split
    cluster_m = 2 if (tile_m, tile_n) == (128, 256) and M >= 8192 else 1
    tiles = batch * tiles_of(M // batch, N, tile_m, tile_n)
    split_k = 1
    if SPLIT_K_BY_DEFAULT and 2 * tiles <= multiprocessors:
        split_k = max(1, min(multiprocessors // tiles, 8, K // (4 * 64)))
    elif (batch == 1 and not unaligned and M >= DEEP_K_ROWS and tiles <= multiprocessors
          and K // 64 >= (DEEP_K_STEPS if 4 * tiles > multiprocessors else DEEP_K_FEW_TILES_STEPS)
          and (tile_m, tile_n) in DEEP_K_SPEEDS):
        tile_m, tile_n, split_k = deep_k_tiles(M, N, K, multiprocessors)
    elif batch == 1 and (not unaligned or tiles == tiles_of(tile_m, N, tile_m, tile_n)):
        # (rows not 128-byte aligned: only one row of tiles, which takes no cluster; 7 x 280 x 2816 1.01x torch in
        # 4 shares against 0.75x unsplit)
        shallow_row = not unaligned and (tile_m, tile_n) == (64, 64) and SHALLOW_ROW_MIN_ROWS <= M <= 64
        split_k = few_tiles_split(tiles, K // 64, multiprocessors, shallow_row)
        if split_k == 1 and not unaligned and -(-M // tile_m) > 1:
            split_k = half_wave_split(tiles, K // 64, multiprocessors)
        elif split_k == 1 and not unaligned and row_split and (tile_m, tile_n) == (64, 64):
            split_k = one_row_split(tiles, K // 64, multiprocessors)
    return tile_m, tile_n, cluster_m, split_k


def deep_k_tiles(M: int, N: int, K: int, multiprocessors: int = 132) -> tuple:
    """(tile_m, tile_n, split_k) for an M x N x K problem whose tiles fit one wave over a deep K: of DEEP_K_SPEEDS'
    tiles, unsplit or in 2 to 8 shares of at least DEEP_K_MIN_STEPS k-steps whose units still fit one wave, the
    least (k-steps / shares / speed + DEEP_K_SHARE_COST if split) x the tile's work x its waves, a 64-row tile's
    the more (DEEP_K_PAST_N_COST) the more of its last column lies past N; 128 x 128 tiles in shares from
    DEEP_K_TALL_TILE_STEPS k-steps."""
    k_steps = K // 64

    def cost(choice):
        (tile_m, tile_n), split = choice
        waves = -(-tiles_of(M, N, tile_m, tile_n) * split // multiprocessors)
        past_n = (-N % tile_n) / tile_n if tile_m == 64 and N > tile_n else 0
        return (k_steps / split / DEEP_K_SPEEDS[tile_m, tile_n] + (DEEP_K_SHARE_COST if split > 1 else 0)) \
            * tile_m * tile_n * waves * (1 + DEEP_K_PAST_N_COST * past_n)

    choices = [(tile, split) for tile in DEEP_K_SPEEDS for split in range(1, 9)
               if split == 1 or ((tile[0] < 128 or k_steps >= DEEP_K_TALL_TILE_STEPS)
                                 and tiles_of(M, N, *tile) * split <= multiprocessors
                                 and k_steps >= DEEP_K_MIN_STEPS * split)]
    (tile_m, tile_n), split = min(choices, key=cost)
    return tile_m, tile_n, split


def half_wave_split(tiles: int, k_steps: int, multiprocessors: int = 132) -> int:
    """The shares of split-K for `tiles` tiles (several rows of them, aligned rows) that fill more than a quarter
    of the SMs and at most half: the most shares (3 or 2) whose units fit one wave, each HALF_WAVE_MIN_STEPS k-steps
    deep at least; 1 where none do."""
    if not multiprocessors < 4 * tiles <= 2 * multiprocessors:
        return 1
    for split in (3, 2):   # (four shares of more than a quarter of the SMs' tiles would not fit one wave)
        if tiles * split <= multiprocessors and k_steps >= HALF_WAVE_MIN_STEPS * split:
            return split
    return 1


def tall_row_split(M: int, N: int, K: int, multiprocessors: int = 132) -> int:
    """The shares of split-K for one row of 128 x 64 tiles over 64 < M <= TALL_ROW_ROWS rows (`one_row_split`'s), or
    0 where they are not taken: under TALL_ROW_STEPS k-steps (TALL_ROW_SPLIT_STEPS where they would split), or where
    they fill at most a quarter of the SMs or more than all."""
    tiles, k_steps = tiles_of(M, N, 128, 64), K // 64
    if not (64 < M <= TALL_ROW_ROWS and multiprocessors < 4 * tiles <= 4 * multiprocessors
            and k_steps >= TALL_ROW_STEPS):
        return 0
    split = one_row_split(tiles, k_steps, multiprocessors)
    return split if split == 1 or k_steps >= TALL_ROW_SPLIT_STEPS else 0


def one_row_split(tiles: int, k_steps: int, multiprocessors: int = 132) -> int:
    """The shares of split-K (2 or 1) for one row of `tiles` tiles 64 wide (64 x 64, or 128 x 64 for TALL_ROW_ROWS)
    of `k_steps` k-steps each that fill more than a quarter of the SMs and at most half: 2 where the model of
    ONE_ROW_SPLIT_FIXED_STEPS, ONE_ROW_SPLIT_SHARE_COST and ONE_ROW_SPLIT_BANDWIDTH puts the two shares
    ONE_ROW_SPLIT_GAIN faster or more."""
    if not multiprocessors < 4 * tiles <= 2 * multiprocessors:
        return 1
    bandwidth = ONE_ROW_SPLIT_BANDWIDTH * multiprocessors   # (the SMs whose reads fill the DRAM's bandwidth)

    def time(split):
        return (ONE_ROW_SPLIT_FIXED_STEPS + (ONE_ROW_SPLIT_SHARE_COST if split > 1 else 0)
                + k_steps / split * max(1.0, tiles * split / bandwidth))

    return 2 if time(1) >= ONE_ROW_SPLIT_GAIN * time(2) else 1


def few_tiles_split(tiles: int, k_steps: int, multiprocessors: int = 132, shallow_row: bool = False) -> int:
    """The shares of split-K for `tiles` tiles of `k_steps` k-steps each: 1 unless the tiles fill at most a quarter
    of the SMs; then the most shares (up to 8) that keep FEW_TILES_SHARE of the SMs busy at most, each share
    FEW_TILES_MIN_STEPS k-steps deep at least. `shallow_row` (one row of 64 x 64 tiles of SHALLOW_ROW_MIN_ROWS
    rows or more, aligned rows): 1 where they fill more than SHALLOW_ROW_FILL of the SMs over at most
    SHALLOW_ROW_STEPS k-steps."""
    if 4 * tiles > multiprocessors:
        return 1
    if shallow_row and k_steps <= SHALLOW_ROW_STEPS and tiles > SHALLOW_ROW_FILL * multiprocessors:
        return 1
    for split in range(8, 1, -1):
        if tiles * split <= FEW_TILES_SHARE * multiprocessors and k_steps >= FEW_TILES_MIN_STEPS * split:
            return split
    return 1
