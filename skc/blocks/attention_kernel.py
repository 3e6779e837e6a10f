"""Attention forward (FlashAttention-style), composed from the blocks: O = softmax(scale · Q Kᵀ) V per head.

A producer warpgroup loads the block's Q tile once (a one-stage pipeline) and streams K and V blocks through
two InputTilePipelines with TMA (K's stage is free once S is computed, V's once P·V is: the next K loads early);
two consumer warpgroups each own 64 query rows: S = Q Kᵀ with the Wgmma TileOp
(operands in shared memory), the OnlineSoftmax TileOp turns S into P and rescales O, O += P V with the
register-A WgmmaRegA TileOp (P never leaves the registers), and a TMA-store epilogue writes O / l. Tensors are
(batch, heads, sequence, head_dim) views with any strides (TMA maps of rank 4), so (B, S, H, D) tensors need
no copy; grouped-query attention maps a query head to its K/V head. Causal attention visits the key blocks up
to the diagonal and masks only the blocks that cross it (and the key tail)."""
from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass

import skc
from skc import frontend

from .epilogue import TmaStoreEpilogue
from .layout import OperandLayout
from .mma import Wgmma, WgmmaRegA
from .payload import TilePayload
from .pipeline import InputTilePipeline
from .roles import WarpgroupTurns, WarpRoles, check_counts, fill_register_shares, is_flag, needs_hopper
from .softmax import OnlineSoftmax
from .tile_io import TmaLoader

ROWS = Wgmma.rows_per_warpgroup
SHARED_PER_SM = 233472   # bytes of shared memory an SM gives its blocks (sm_90: 228 KB, 1 KB of it per block reserved)


@dataclass(frozen=True)
class HeadLayout(OperandLayout):
    """An operand tile of one head of a (batch, heads, sequence, head_dim) tensor: TMA boxes of rank 4, whose
    origin is (batch, head, first sequence position); the sequence is the tile's rows (K-major: Q, K) or its k
    (MN-major: V, read as the k x head_dim B operand of P V)."""

    def box(self) -> tuple:
        return (1, 1) + super().box()

    def box_coordinates(self, chunk: int, origin, k0) -> tuple:
        batch, head, first = origin
        if self.k_major:
            return (batch, head) + super().box_coordinates(chunk, first, 0)
        return (batch, head) + super().box_coordinates(chunk, 0, first)


@dataclass(frozen=True)
class AttentionConfig:
    """One block computes `block_m` query rows (64 per consumer warpgroup) of one head against `block_n` keys
    at a time, through `stages` K stages and `value_stages` V stages."""

    head_dim: int = 128
    block_m: int = 128
    block_n: int = 128
    stages: int = 2
    value_stages: int = 0        # V's stages (0: as many as K's): with overlap, V's stage is held one block longer
    consumers: int = 2
    dtype: str = "bf16"
    causal: bool = False
    lse: bool = False
    persistent: bool = False     # a grid of at most one block per SM walking the tiles (Q double-buffered)
    fetch_tiles: bool = False    # persistent: each block takes its next tile from a counter (longest first), not a share
    overlap: bool = False        # softmax of key block j during P·V of block j - 1 in each warpgroup
    pingpong: bool = False       # the consumer warpgroups take turns issuing their MMAs (WarpgroupTurns)
    exp2_on_fma: int = 0         # every n-th score of a row takes its exp2 on the FMA pipe, not the MUFU (0: none)
    tree_reductions: bool = False  # the softmax reduces rows pairwise
    lazy_rescale: float = 0.0    # > 0: a row's maximum moves only past 2^lazy_rescale in P, O rescaled only then
    exact_exponents: bool | str = False  # True: each exponent (s - m)·c, exact at any magnitude (attention() takes
                                         # it for a large scale: OnlineSoftmax's `exact`), not one fma; "far": one fma
                                         # while a warp's row maxima stay within 2^24 in exp2's units, exact past;
                                         # "checked": one fma, each warp flagging whether its rows passed 2^24, and
                                         # a second launch (`recomputing()`) computes the flagged tiles with "far"
    flagged_only: bool = False   # compute only the tiles a "checked" launch flagged (the flags it wrote)
    head_group: int = 1          # causal: the query blocks of this many heads interleaved, longest first across them
    blocks_per_sm: int = 1       # blocks sharing an SM (registers and shared memory planned for that many)
    producer_registers: int = None   # None: roles.register_shares(consumers), as consumer_registers
    consumer_registers: int = None

    def __post_init__(self):
        check_counts(self, head_dim=1, block_m=1, block_n=1, stages=1, value_stages=0, exp2_on_fma=0)
        fill_register_shares(self)
        if self.head_dim not in (64, 128, 256):
            raise ValueError(f"head_dim must be 64, 128 or 256, found {self.head_dim}")
        if self.block_m != ROWS * self.consumers:
            # (the rows are the consumers': block_m=64 beside the default two said "must be 64 ..., found 64")
            fix = (f"pass consumers={self.block_m // ROWS} with it" if self.block_m % ROWS == 0 else
                   f"a multiple of {ROWS}")
            raise ValueError(f"block_m must be {ROWS} per consumer warpgroup, {ROWS * self.consumers} for "
                             f"consumers={self.consumers}, found {self.block_m}: {fix}")
        if self.block_m > 256:   # (a TMA box has at most 256 rows: cuTensorMapEncodeTiled's boxDim)
            raise ValueError(f"Q's tile of block_m rows is one TMA box, at most 256 rows: at most 4 consumer "
                             f"warpgroups, found {self.consumers}")
        if self.block_n % 16 or not 64 <= self.block_n <= 256:
            raise ValueError(f"block_n must be 64 to 256 in steps of 16 (P·V's k-steps), found {self.block_n}")
        if self.fetch_tiles and not self.persistent:
            raise ValueError("fetch_tiles=True is how persistent blocks share the tiles: use it with persistent=True")
        if self.persistent and not self.overlap:
            raise ValueError("persistent=True needs overlap=True: in the persistent tile loop ptxas serializes the "
                             "wgmmas of the serial key-block loop (C7519, 'WG.AR in divergent path')")
        if (isinstance(self.lazy_rescale, bool) or not isinstance(self.lazy_rescale, numbers.Real)
                or not 0.0 <= self.lazy_rescale <= 15.0):   # (P up to 2^15 stays finite in f16 as in bf16)
            raise ValueError(f"lazy_rescale must be 0 to 15 (P may reach 2^lazy_rescale), found {self.lazy_rescale}")
        if self.overlap and self.v_stages < 2:
            raise ValueError("overlap holds a V stage for P·V while the next one is read: it needs 2 V stages or more")
        if not (isinstance(self.exact_exponents, str) and self.exact_exponents in ("far", "checked")
                or is_flag(self.exact_exponents)):   # (bool | str: outside check_flags' annotated bools)
            raise ValueError(f"exact_exponents must be True, False, \"far\" or \"checked\", found "
                             f"{self.exact_exponents!r}")
        if self.flagged_only and (self.exact_exponents != "far" or self.fetch_tiles):
            raise ValueError(f"flagged_only computes again, with exact_exponents=\"far\" and a share of the tiles "
                             f"(no fetch_tiles), what a \"checked\" launch flagged; found exact_exponents="
                             f"{self.exact_exponents!r}, fetch_tiles={self.fetch_tiles}: make it with the \"checked\" "
                             "configuration's recomputing()")
        if self.dtype not in ("bf16", "f16"):
            raise ValueError(f"attention runs on bf16 or f16, not {self.dtype}")
        if type(self.head_group) is not int or self.head_group < 1:
            raise ValueError(f"head_group must be a positive int (heads whose query blocks interleave), found "
                             f"{self.head_group!r}")
        if self.head_group > 1 and not self.causal:
            raise ValueError("head_group orders causal tiles, longest first (tiles of one length need no order): "
                             "use it with causal=True")
        if self.blocks_per_sm not in (1, 2) or (self.blocks_per_sm == 2 and self.consumers > 2):
            raise ValueError(f"blocks_per_sm must be 1, or 2 for blocks of one or two consumers, found "
                             f"{self.blocks_per_sm} with {self.consumers} consumers")
        if self.blocks_per_sm > 1 and self.shared_bytes() > SHARED_PER_SM // self.blocks_per_sm - 1024:
            raise ValueError(f"{self.blocks_per_sm} blocks a SM have {SHARED_PER_SM // self.blocks_per_sm - 1024} "
                             f"bytes of shared memory each; this configuration takes {self.shared_bytes()}: use "
                             "fewer stages or a narrower block_n")

    @property
    def checked(self) -> bool:
        return isinstance(self.exact_exponents, str) and self.exact_exponents == "checked"

    def recomputing(self) -> "AttentionConfig":
        """The configuration that computes again, with exact_exponents="far", the tiles a "checked" launch of this
        one flagged: in persistent blocks where they fit (a block a SM reading its share's flags at once, not a block a
        tile), each taking its share (not fetched, no counter read)."""
        if not self.checked:
            raise ValueError(f"recomputing() is the second launch of an exact_exponents=\"checked\" configuration; "
                             f"this one has exact_exponents={self.exact_exponents!r}")
        persistent = self.persistent or self.overlap and (
            dataclasses.replace(self, persistent=True).shared_bytes() <= SHARED_PER_SM - 1024)
        return dataclasses.replace(self, exact_exponents="far", fetch_tiles=False, flagged_only=True,
                                   persistent=persistent)

    def grid(self, tiles: int, multiprocessors: int) -> int:
        """The blocks of a launch over `tiles` tiles: one a tile, or (persistent) at most one a SM."""
        return min(tiles, multiprocessors) if self.persistent else tiles

    def flag_words(self, tiles: int) -> int:
        """The i32 flags of `tiles` tiles: one a warp of the consumers."""
        return tiles * self.consumers * 4

    @property
    def v_stages(self) -> int:
        return self.value_stages or self.stages

    @property
    def q_stages(self) -> int:
        """A persistent block loads the next tile's Q while it computes the current one."""
        return 2 if self.persistent else 1

    @property
    def threads(self) -> int:
        return 128 * (1 + self.consumers)

    def q_payload(self) -> TilePayload:
        return TilePayload(q=HeadLayout(self.block_m, self.head_dim, 2, True))

    def k_payload(self) -> TilePayload:
        return TilePayload(key=HeadLayout(self.block_n, self.head_dim, 2, True))

    def v_payload(self) -> TilePayload:
        return TilePayload(value=HeadLayout(self.head_dim, self.block_n, 2, False))

    def boxes(self) -> dict:
        return {"q": self.q_payload().layouts["q"].box(), "k": self.k_payload().layouts["key"].box(),
                "v": self.v_payload().layouts["value"].box(), "o": (1, 1, ROWS, 64)}

    def shared_bytes(self) -> int:
        tile = self.block_n * self.head_dim * 2   # a K or a V tile (the epilogue stages in Q's tile)
        barriers = 16 * (self.stages + self.v_stages + self.q_stages + self.fetch_tiles)   # (and the tile slots)
        aligning = 3 * 1024   # Q's, K's and V's stages each start on a 1024-byte boundary after the barriers
        return self.q_stages * self.block_m * self.head_dim * 2 + (self.stages + self.v_stages) * tile + aligning + barriers


@skc.kernel
def attention_kernel(q, k, v, o, lse, counter, flags, Sq: skc.i32, Skv: skc.i32, batches: skc.i32, heads: skc.i32,
                     group: skc.i32, scale: skc.f32, cfg: skc.constexpr):
    """q, k, v, o are rank-4 tensor maps (batch, heads, sequence, head_dim), lse a pointer to (batch, heads, Sq) f32
    (written when cfg.lse), counter a pointer to one i32, zero between launches (read when cfg.fetch_tiles), flags a
    pointer to cfg.flag_words(tiles) i32 (each written when cfg.checked, read when cfg.flagged_only); a query
    head reads K/V head head // group. One block per tile (query block, batch and head), or (cfg.persistent) a grid
    of at most one block per SM walking the tiles."""
    needs_hopper("attention")
    tiles = HeadTiles(Sq, Skv, batches * heads, heads, cfg, flags)
    mine = tiles.mine()   # (before the roles split: the producer runs on few registers)
    if cfg.flagged_only:   # no tile of the block's flagged: nothing to set up
        if not tiles.any_flagged(mine):
            return
    q_load, k_load, v_load = (TmaLoader(cfg.q_payload(), q=q), TmaLoader(cfg.k_payload(), key=k),
                              TmaLoader(cfg.v_payload(), value=v))
    with InputTilePipeline(cfg.q_payload(), cfg.q_stages, q_load, consumers=cfg.consumers) as q_pipe, \
            InputTilePipeline(cfg.k_payload(), cfg.stages, k_load, consumers=cfg.consumers) as k_pipe, \
            InputTilePipeline(cfg.v_payload(), cfg.v_stages, v_load, consumers=cfg.consumers) as v_pipe:
        # (its slots after the stages: before them, they would push the stages' 1024-byte alignment)
        fetched = FetchedTiles(tiles, counter, cfg.q_stages, cfg.consumers) if cfg.fetch_tiles else None
        roles = WarpRoles(cfg.consumers, cfg.producer_registers, cfg.consumer_registers, cfg.blocks_per_sm)
        if roles.is_producer():
            roles.enter_producer()
            if q_load.is_issuing() & k_load.is_issuing() & v_load.is_issuing():
                for loader in (q_load, k_load, v_load):
                    loader.prefetch()
                # Q stays in its stage until the consumers' last key block: drain the Q pipeline last
                with q_pipe.producer() as q_producer, k_pipe.producer() as k_producer, \
                        v_pipe.producer() as v_producer:
                    loads = (q_producer, k_producer, v_producer, q_load, k_load, v_load)
                    if cfg.fetch_tiles:
                        index = skc.block_id(0)   # (the grid has at most as many blocks as tiles)
                        while index < tiles.count:
                            taken = fetched.take(q_load.issuer)   # the next one's index, on its way meanwhile
                            _load_tile(tiles, tiles.__skc_item__(index), group, loads, fetched, index)
                            index = taken
                        with q_producer.acquire() as stage:   # a Q stage without copies: the end of the tiles
                            fetched.announce(stage, index, q_load.issuer)
                            if q_load.issuer:
                                skc.hopper.mbarrier_arrive(stage.full)
                    else:
                        for tile in mine:
                            if tiles.wanted(tile):
                                _load_tile(tiles, tile, group, loads)
        else:
            roles.enter_consumer()
            _consume(q_pipe, k_pipe, v_pipe, mine, fetched, tiles, o, lse, Sq, Skv, scale, roles.consumer_index(), cfg)


@skc.func
def _load_tile(tiles, tile, group, loads, fetched=None, index=0):
    """The producer's copies for one tile: its Q (with, for fetched tiles, its index in the slot beside the stage),
    then its key blocks' K and V."""
    q_producer, k_producer, v_producer, q_load, k_load, v_load = loads
    cfg = tiles.cfg
    with q_producer.acquire() as stage:
        if fetched is not None:
            fetched.announce(stage, index, q_load.issuer)
        q_load(stage, 0, q=(tile.batch, tile.head, tile.row0))
    for j in range(tiles.key_blocks(tile.row0)):
        keys = (tile.batch, tile.head // group, j * cfg.block_n)
        with k_producer.acquire() as stage:
            k_load(stage, 0, key=keys)
        with v_producer.acquire() as stage:
            v_load(stage, 0, value=keys)


@skc.func
def _consume(q_pipe, k_pipe, v_pipe, mine, fetched, tiles, o, lse, Sq, Skv, scale, warpgroup, cfg):
    """A consumer warpgroup: for each of its tiles, S = Q Kᵀ, the online softmax and O += P V over the key blocks,
    then the epilogue. With cfg.pingpong the consumers take turns issuing their MMAs (WarpgroupTurns); with
    cfg.fetch_tiles each tile's index comes with its Q stage, until one past the tiles."""
    dtype = skc.bf16 if cfg.dtype == "bf16" else skc.f16
    qk = Wgmma(cfg.block_n, cfg.head_dim, dtype, warpgroup=warpgroup)
    pv = WgmmaRegA(cfg.head_dim, cfg.block_n, dtype, warpgroup=warpgroup)
    epilogue = HeadTileEpilogue(o, dtype, warpgroup, cfg.consumers)
    turn = WarpgroupTurns(cfg.consumers, warpgroup, enabled=cfg.pingpong)
    # with overlap, pv keeps one V stage in flight: it is released once the P·V reading it completed
    with epilogue, q_pipe.consumer() as q_consumer, k_pipe.consumer() as k_consumer, \
            v_pipe.consumer(pv if cfg.overlap else None) as v_consumer:
        if cfg.fetch_tiles:
            index = skc.i32(0)
            while index < tiles.count:
                with q_consumer.acquire() as q_stage:
                    index = fetched.read(q_stage)
                    if index < tiles.count:
                        tile = tiles.__skc_item__(index)
                        scores, acc = _start_tile(qk, pv, tile, scale, Skv, warpgroup, cfg)
                        rows_lse = _tile(q_stage, k_consumer, v_consumer, tiles, tile, scores, pv, acc, epilogue, turn,
                                         cfg)
                        _tile_done(lse, acc, rows_lse, tiles, tile, scores, Sq, warpgroup, cfg)
        else:
            for tile in mine:
                if tiles.wanted(tile):
                    scores, acc = _start_tile(qk, pv, tile, scale, Skv, warpgroup, cfg)
                    with q_consumer.acquire() as q_stage:
                        rows_lse = _tile(q_stage, k_consumer, v_consumer, tiles, tile, scores, pv, acc, epilogue,
                                         turn, cfg)
                    _tile_done(lse, acc, rows_lse, tiles, tile, scores, Sq, warpgroup, cfg)


@skc.func
def _tile_done(lse, acc, rows_lse, tiles, tile, scores, Sq, warpgroup, cfg):
    """After a tile's epilogue: its rows' log-sum-exp (cfg.lse), and (cfg.checked) each warp's flag."""
    if cfg.lse:
        _store_lse(lse, acc, rows_lse, tile.index * Sq, scores.row0, Sq)
    if cfg.checked:
        tiles.flag(tile, warpgroup, scores.softmax.passed_far())


@skc.func
def _start_tile(qk, pv, tile, scale, Skv, warpgroup, cfg):
    """S and its softmax for this warpgroup's rows of the tile (from its first query row), and O."""
    softmax = OnlineSoftmax(scale, exp2_on_fma=cfg.exp2_on_fma, tree=cfg.tree_reductions, lazy=cfg.lazy_rescale,
                            exact=cfg.exact_exponents)
    return KeyBlockScores(qk, softmax, tile.row0 + warpgroup * ROWS, Skv, cfg), pv.zeros()


@skc.func
def _tile(q_stage, k_consumer, v_consumer, tiles, tile, scores, pv, acc, epilogue, turn, cfg):
    """One tile with its Q in q_stage: the key blocks, then the epilogue; gives the rows' log-sum-exp."""
    if cfg.overlap:
        _overlapped(q_stage.q, k_consumer, v_consumer, scores, pv, acc, tiles.key_blocks(tile.row0), turn)
    else:  # the two consumer warpgroups overlap each other's softmax and MMAs
        for j in range(tiles.key_blocks(tile.row0)):
            with k_consumer.acquire() as stage:
                with turn:
                    scores.issue(q_stage.q, stage.key)              # S = Q K_jᵀ
                scores.retire(0)
            scores.softmax.rescale(acc, scores.softmax_step(j))
            with v_consumer.acquire() as stage:
                with turn:
                    pv(acc, pv.operand(scores.s), stage.value)      # O += P V_j
                acc.wait()
    rows_lse = scores.softmax.finish(acc)
    epilogue(acc, tile.batch, tile.head, scores.row0, q_stage.q)
    epilogue.sync(0)   # its stores have read the staging in Q: the stage may take the next Q
    return rows_lse


@skc.func
def _overlapped(q, k_consumer, v_consumer, scores, pv, acc, key_blocks, turn):
    """The key blocks with block j's softmax running while the tensor cores compute block j - 1's P·V
    (FlashAttention-3's overlap inside a warpgroup); V's consumer holds a stage for pv. A turn (cfg.pingpong)
    covers the MMAs issued together."""
    with k_consumer.acquire() as stage:
        with turn:
            scores.issue(q, stage.key)
        scores.retire(0)
    scores.softmax_step(0)
    p = pv.operand(scores.s)
    for j in range(1, key_blocks):
        with k_consumer.acquire() as key_stage, v_consumer.acquire() as value_stage:
            with turn:
                scores.issue(q, key_stage.key)                          # S = Q K_jᵀ
                pv(acc, p, value_stage.value)                           # O += P V_j-1, in flight
            scores.retire(1)                                            # S is ready, P·V may still run
        factors = scores.softmax_step(j)
        pv.retire(0)
        scores.softmax.rescale(acc, factors)
        p = pv.operand(scores.s)
    with v_consumer.acquire() as stage:
        with turn:
            pv(acc, p, stage.value)
    acc.wait()


class HeadTile:
    def __init__(self, batch, head, index, row0):
        self.batch, self.head, self.index, self.row0 = batch, head, index, row0


class HeadTiles:
    """`for tile in HeadTiles(...)`: the tiles (query block, batch · heads + head) this block computes, query blocks
    of one head after another (they share K and V in L2); causal ones longest first, across groups of
    `cfg.head_group` heads (the short ones fill the GPU's tail); one per block, or a persistent block's share
    (stride: the grid)."""

    def __init__(self, Sq, Skv, batch_heads, heads, cfg, flags=None):
        self.Skv, self.heads, self.cfg, self.flags = Skv, heads, cfg, flags
        self.batch_heads = batch_heads
        self.query_blocks = skc.cdiv(Sq, cfg.block_m)
        self.count = self.query_blocks * batch_heads

    def _first_flag(self, tile):
        """The index of the tile's first flag: its consumers' warps' flags in a row, tiles in (batch · heads + head,
        query block) order."""
        return skc.i64(tile.index * self.query_blocks + tile.row0 // self.cfg.block_m) * self.cfg.flag_words(1)

    def wanted(self, tile):
        """Whether the block computes this tile of its share: each, or (cfg.flagged_only) where a warp flagged it (a
        block of one tile has returned at once where none did)."""
        return self.flagged(tile) if self.cfg.flagged_only and self.cfg.persistent else True

    def flagged(self, tile):
        """Whether a warp of a "checked" launch flagged the tile (a run-time bool)."""
        first = self._first_flag(tile)
        flagged = skc.load(self.flags + first)
        for w in skc.static_range(1, self.cfg.flag_words(1)):
            flagged = flagged | skc.load(self.flags + (first + w))
        return flagged != 0

    def any_flagged(self, mine):
        """(cfg.flagged_only; every thread of the block alike) Whether a warp flagged a tile of the block's: its one
        tile, or a persistent block's share, whose tiles each warp's lanes read 32 at a time (a vote: every warp
        reads the same flags and agrees, so a block with none returns at once, not after a load a tile)."""
        if not self.cfg.persistent:
            return self.flagged(mine[0])
        grid = skc.grid_dim(0)
        found = False
        for index in range(skc.block_id(0) + skc.lane_id() * grid, self.count, 32 * grid):
            found = found | self.flagged(self.__skc_item__(index))
        return skc.vote_any(found)

    def flag(self, tile, warpgroup, passed):
        """(Each thread of a consumer warpgroup, its tile done.) The warp's flag: 1 where a thread's `passed`."""
        passed = skc.vote_any(passed)
        thread = skc.thread_index() % skc.current_target().warpgroup_size
        if thread % 32 == 0:
            skc.store(self.flags + (self._first_flag(tile) + warpgroup * 4 + thread // 32), skc.where(passed, 1, 0))

    def mine(self):
        """What `for tile in ...` walks: this scheduler (a run-time loop) when persistent, else the block's one tile
        (a compile-time list: no loop)."""
        return self if self.cfg.persistent else [self.__skc_item__(skc.block_id(0))]

    def __skc_range__(self):
        return skc.block_id(0), self.count, skc.grid_dim(0)

    def __skc_item__(self, index):
        if self.cfg.persistent and self.cfg.causal and not self.cfg.fetch_tiles:
            index = self.snaked(index)
        if self.cfg.causal:
            batch_head, block = self.longest_first(index)
        else:
            batch_head, block = index // self.query_blocks, index % self.query_blocks
        return HeadTile(batch_head // self.heads, batch_head % self.heads, batch_head, block * self.cfg.block_m)

    def longest_first(self, index):
        """The causal grid's i-th tile (batch · heads + head, query block): the heads in groups of cfg.head_group
        (the last one smaller), each group's query blocks from the last (the longest) to the first, the group's
        heads taking turns at each. A greedy model of the block dispatch (benchmarks/causal_tile_model.py) has one
        head at a time end 3 % later than groups of 4 at 8 × 16 heads of 32 query blocks; on the H200 the two
        measured alike (benchmarks/NOTES.md, tenth session), so the default stays 1."""
        group = self.cfg.head_group
        if group == 1:
            return index // self.query_blocks, self.query_blocks - 1 - index % self.query_blocks
        span = group * self.query_blocks
        first = index // span * group
        heads_here = skc.minimum(group, self.batch_heads - first)
        within = index % span
        return first + within % heads_here, self.query_blocks - 1 - within // heads_here

    def snaked(self, index):
        """A persistent block's i-th tile of a causal grid: every other round of `grid` tiles is taken in reverse,
        so that a block which took one of a round's long tiles takes one of the next round's short ones (striding
        alone, a block keeps the same place within each head's longest-first tiles: 132 blocks over heads of 32
        query blocks gave each block one residue mod 4, and the longest share 1.2x the shortest's work). A last
        partial round keeps its order (reversed, it would name tiles past the end)."""
        grid = skc.grid_dim(0)
        round_ = index // grid
        reverse = (round_ % 2 == 1) & ((round_ + 1) * grid <= self.count)
        return skc.where(reverse, round_ * grid + grid - 1 - index % grid, index)

    def key_blocks(self, row0):
        """Key blocks the tile at query row row0 visits: all, or (causal) those up to its last row's diagonal."""
        blocks = skc.cdiv(self.Skv, self.cfg.block_n)
        if self.cfg.causal:
            blocks = skc.minimum(blocks, skc.cdiv(row0 + self.cfg.block_m, self.cfg.block_n))
        return blocks


class FetchedTiles:
    """Tiles handed out at run time (cfg.fetch_tiles): a persistent block's producer starts with the tile of its
    block id and takes each next one from `counter` (an atomic add: the grid's blocks after the first ones, in the
    order HeadTiles gives, causal ones longest first), so a block that drew short tiles draws more. The producer puts
    each tile's index in a slot beside the Q stage it loads (before the stage's arrival, which publishes it), where
    the consumers read it; an index past the tiles ends them. Every consumer thread arrives on the slot's `read_by`
    barrier once it read the slot, and the producer writes the slot again only once all have: each reader's own
    arrival releases its read. (The Q stage's release, one thread's arrival a warpgroup, orders the others' reads
    too, through their named barrier before it, but compute-sanitizer's racecheck does not follow that chain: it
    reported the slot's reuse as a hazard until each reader arrived itself.) The counter is zero between launches:
    a launch takes from it once for each tile past the grid's first ones and once more for each block (its index
    past the end), as many times as there are tiles, and the last take (the one that finds tiles - 1) sets it back
    to zero."""

    def __init__(self, tiles, counter, stages: int, consumers: int):
        self.tiles, self.counter = tiles, counter
        self.slots = skc.shared((stages,), skc.i32)
        self.read_by = skc.shared((stages,), skc.u64, align=8)
        if skc.thread_index() == 0:
            for s in skc.static_range(stages):
                skc.hopper.mbarrier_init(self.read_by + s, consumers * skc.current_target().warpgroup_size)
            skc.hopper.fence_mbarrier_init()
        skc.barrier()

    def take(self, issuer):
        """(The producer's loading warp.) The index of the block's next tile, from the counter."""
        taken = skc.i32(0)
        if issuer:
            taken = skc.atomic_add(self.counter, 1)
            if taken == self.tiles.count - 1:   # the last take of the launch: no block reads the counter again
                skc.store(self.counter, 0)
        return skc.grid_dim(0) + skc.shfl_idx(taken, 0)

    def announce(self, stage, index, issuer):
        """(The producer's loading warp, the Q stage acquired.) Once the slot's last readers are done with it (the
        first time round at once, as the stage's own wait), `index` into the slot."""
        skc.hopper.mbarrier_wait(self.read_by + stage.index, stage.role.phase ^ 1)
        if issuer:
            skc.store(self.slots + stage.index, index)

    def read(self, stage):
        """(A consumer thread, once the stage is full.) The index of the stage's tile; the thread's arrival on the
        slot's `read_by` barrier releases its read."""
        index = skc.load(self.slots + stage.index)
        skc.hopper.mbarrier_arrive(self.read_by + stage.index)
        return index


class KeyBlockScores:
    """S = Q K_jᵀ for a warpgroup's rows and key block j, and its softmax step, masked only where the block
    crosses the end of the keys or (causal) the diagonal of this warpgroup's rows."""

    def __init__(self, qk, softmax, row0, Skv, cfg):
        self.qk, self.softmax, self.row0, self.Skv, self.cfg = qk, softmax, row0, Skv, cfg
        self.s = qk.zeros()

    def issue(self, q, key):
        self.s.zero()
        self.qk(self.s, q, key)

    def retire(self, pending: int):
        self.qk.retire(pending)

    def softmax_step(self, j):
        """S becomes P; gives the factors for O (OnlineSoftmax.update)."""
        first_key = j * self.cfg.block_n
        crossing = first_key + self.cfg.block_n > self.Skv
        if self.cfg.causal:
            crossing = crossing | (first_key + self.cfg.block_n - 1 > self.row0)
        if crossing:
            factors = self.softmax.update(self.s, mask=lambda row, column: _visible(
                first_key + column, self.row0 + row, self.Skv, self.cfg.causal))
        else:
            factors = self.softmax.update(self.s)
        return factors


@skc.func
def _visible(key, query, Skv, causal: bool):
    inside = key < Skv
    return inside & (key <= query) if causal else inside


@skc.func
def _store_lse(lse, acc, values, head_offset, row0, Sq):
    """Each row's log-sum-exp, stored by the thread that holds the row's first column."""
    if acc.op.thread % 4 == 0:
        for (row, indices), value in zip(acc.rows(), values):
            skc.store(lse + (skc.i64(head_offset) + row0 + row), value, mask=row0 + row < Sq)


class HeadTileEpilogue(TmaStoreEpilogue):
    """The TMA-store epilogue for a warpgroup's 64 x head_dim output rows of one head of a rank-4
    (batch, heads, sequence, head_dim) tensor map; rows past the sequence are not stored (TMA skips them). It
    stages its chunks in the Q tile, in this warpgroup's rows of its first two 64-column chunks: only this
    warpgroup's S = Q Kᵀ read them, and they are done once its accumulator is (no shared memory of its own)."""

    def __init__(self, out_map, dtype, warpgroup, warpgroups: int):
        super().__init__(out_map, dtype, None, warpgroup, warpgroups, allocate=False)

    def __call__(self, acc, batch, head, row0, q):
        acc.wait()   # (and with it every MMA of this warpgroup that read q)
        chunk_elements = q.layout.chunk_bytes // self.dtype.itemsize   # a 64-column chunk of all the tile's rows
        if chunk_elements != self.warpgroups * self.rows * self.columns:
            raise frontend.current().error(f"the epilogue stages in a Q tile of {self.warpgroups * self.rows} rows of "
                                           f"128 bytes a chunk, not {q.layout}")
        q.check_live()
        mine = skc.int_to_ptr(q.address, self.dtype, "shared") + self.warpgroup * self.rows * self.columns
        self.store(acc, row0, 0, (batch, head), mine, chunk_elements)


def padding_hint(D: int) -> str:
    """What to do with a head dimension attention does not run (the torch operators' fake says it too)."""
    if D > 256:   # (zeros added to q and k add nothing to a score, but nothing larger runs)
        return "none is larger, so padding cannot reach one; compute it another way"
    return "pad q, k and v with zeros to the next of them (and pass scale=1/sqrt(D) of the unpadded D)"
