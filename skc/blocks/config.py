"""The GEMM's compile-time configuration: tile shape, pipeline depth, warp roles, operand layouts
and epilogue, with the shared-memory plan derived from them and checked against the device."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import ClassVar

from skc.ir.ops_async import CP_ASYNC_BYTES
from skc.target import get_target

from .arguments import invalid
from .epilogue import EpilogueSpec, TmaStoreEpilogue
from .layout import OperandLayout
from .mma import Wgmma
from .payload import TilePayload
from .roles import check_counts, fill_register_shares, held_registers, whole
from .tile_rules import (ONE_ROW_TILE_SPEEDS, UNCLUSTERING, shares_b, swaps, tile_shape, tiles_of,
                         unaligned_cluster)

DTYPES = {"bf16": 2, "f16": 2}
WARPGROUP = get_target("sm_90a").warpgroup_size
ROWS = Wgmma.rows_per_warpgroup  # of the tile, per consumer warpgroup


# (producer, consumer) registers a thread beside 1 or 2 consumer warpgroups when the producer is the vector loader,
# and the 4-byte registers of loaded data it keeps in flight: each of its threads keeps loads and their addresses
# (TMA's one issuing thread, a few), and with the 40 registers of a TMA producer ptxas spills them; more in flight
# spills too (tests/blocks/test_gemm_compile.py)
VECTOR_LOADER_REGISTERS = {1: (160, 232, 16), 2: (96, 200, 8)}


@dataclass(frozen=True)
class MatmulConfig:
    """C[M, N] = A[M, K] · B[K, N] on Hopper, one `tile_m` x `tile_n` output tile per step of a
    persistent block: a producer warpgroup streams `tile_k`-deep A and B tiles through `stages`
    shared-memory stages; `consumers` warpgroups each compute 64 rows of the tile with wgmma."""

    tile_m: int = 128
    tile_n: int = 128
    tile_k: int = 64
    stages: int = 4
    consumers: int = 2
    group_m: int = 8
    cluster_m: int = 1           # blocks per cluster along M; they share (multicast) the B tile (each block loads a
                                 # share of its 64- or 32-column chunks, or, B K-major or its chunks not splitting
                                 # evenly, of its rows)
    loader: object = "tma"       # "tma"; "vector": the producer copies tiles with 16-byte loads; or a spec
                                 # whose build(payload, a=, b=) gives the loader (conv2d's ConvShape)
    dtype: str = "bf16"
    a_k_major: bool = True       # A stored M x K (row-major A); False: stored K x M (A transposed)
    b_k_major: bool = False      # B stored N x K (B transposed); False: stored K x N (row-major B)
    epilogue: EpilogueSpec = field(default_factory=EpilogueSpec)
    batched: str = ""            # operands with a batch dimension ("ab", "a" or "b"; out too): 3-D tensor maps
    split_k: int = 1             # work units per output tile, each over a share of K (partial sums added in fp32)
    stream_k: bool = False       # the last waves' k-steps shared evenly between the blocks (a tile split between
                                 # two blocks completed by the second: StreamKScheduler, StreamKFixup)
    split_tail: bool = False     # the part-full last wave's tiles split along K into as many shares as the grid
                                 # holds (up to 4; SplitTailScheduler), the last share to finish adds them up
    pingpong: bool = False       # each consumer computes its own tiles (tile_m 64 or 128), the consumers taking
                                 # turns at the tensor cores: one's epilogue runs during the other's mainloop
    stage_turns: bool = False    # the consumers of a tile take turns issuing each stage's MMAs: one's register work
                                 # on a stage (a block-scaled fold) runs during the next one's MMAs
    a_rows: int = 0              # rows of A's tile a stage loads (0: tile_m): a problem of fewer rows than a tile
                                 # loads only those (a box past the end of A is filled with zeros, slowly); the
                                 # rest of the tile's rows compute outputs that are never stored
    a_box_rows: int = 0          # rows of each TMA box of a K-major A's tile (0: the whole tile in one box): the
                                 # boxes that start past A's last row are not loaded (the last row of tiles of a
                                 # problem whose M is no multiple of tile_m; a box past the end of A is slow)
    cluster_n: int = 1           # blocks per cluster along N; they share (multicast) the A tile (each block loads a
                                 # share of its rows, or, A transposed, of its 64-row chunks, or, those not splitting
                                 # evenly, of its rows of K)
    epilogue_buffers: int = 2    # the TMA-store epilogue's staging buffers a consumer: 2, or 1 (half the shared
                                 # memory, for a deeper pipeline; each chunk waits for the store of the one before)
    producer_registers: int = None   # None: roles.register_shares(consumers), as consumer_registers
    consumer_registers: int = None
    vector_width: int = 8        # elements a load of the vector loader copies: 8 (16 bytes), or 4, 2 or 1 for rows of
                                 # a length (or at an address) TMA cannot address: a multiple of 8 elements
    vector_in_flight: int = 0    # 4-byte registers of loaded data a vector loader's thread keeps in flight (0: the
                                 # default of its consumer count, VECTOR_LOADER_REGISTERS)
    vector_async: bool = False   # the vector loader copies by cp.async (no registers: a stage's copies all in flight;
                                 # vectors of 4, 8 or 16 bytes) instead of through registers
    store: str = "tma"           # "tma": the TMA-store epilogue; "direct": each consumer thread stores its values to a
                                 # dense row-major out of any row length (DirectStoreEpilogue; one matrix, no split)
    swap_ab: bool = False        # the kernel computes out^T = b^T a^T: its problem is the caller's with M and N (and
                                 # a and b) swapped, so few rows become wgmma's n (any multiple of 8), and its
                                 # epilogue stores each tile transposed into the caller's row-major out
    input_types: ClassVar[dict] = DTYPES  # operand type -> bytes (the fp8 configuration has its own)
    swappable: ClassVar[bool] = True      # for_problem may swap a and b (swaps()); the fp8 configuration's own rule
    fill_widths: ClassVar[bool] = True    # for_problem weighs FILL_WIDTH_SPEEDS' tiles (a K-major B); not fp8's

    def __post_init__(self):
        check_counts(self, tile_m=1, tile_n=1, tile_k=1, stages=1, split_k=1, a_rows=0, a_box_rows=0,
                     cluster_m=1, cluster_n=1, epilogue_buffers=1, vector_in_flight=0)
        shares = VECTOR_LOADER_REGISTERS.get(self.consumers, (None, None, 8)) if self.loader == "vector" else None
        if shares and self.producer_registers is None and self.consumer_registers is None:
            object.__setattr__(self, "producer_registers", shares[0])
            object.__setattr__(self, "consumer_registers", shares[1])
        if shares and not self.vector_in_flight:
            object.__setattr__(self, "vector_in_flight", shares[2])
        fill_register_shares(self)
        if self.dtype not in self.input_types:
            raise ValueError(f"the GEMM multiplies {' or '.join(self.input_types)}, not {self.dtype}")
        self.check_stages()
        if self.pingpong and (self.tile_m not in (ROWS, 2 * ROWS) or self.consumers < 2):
            raise ValueError(f"pingpong: each of 2 or more consumer warpgroups computes its own tiles of {ROWS} or "
                             f"{2 * ROWS} rows, found tile_m={self.tile_m} with {self.consumers} consumers")
        if not self.pingpong and self.tile_m not in (ROWS * self.consumers, 2 * ROWS * self.consumers):
            raise invalid(f"tile_m must be {ROWS} or {2 * ROWS} per consumer warpgroup: {ROWS * self.consumers} or "
                          f"{2 * ROWS * self.consumers}, found {self.tile_m}",
                          hint=f"tile_m={ROWS * self.consumers} or {2 * ROWS * self.consumers} (each consumer "
                               f"warpgroup multiplies {ROWS}-row shares of the tile)")
        if self.a_k_major and self.tile_m > 256:
            raise ValueError(f"a K-major A tile is one TMA box of tile_m rows, at most 256, found {self.tile_m}: use "
                             "fewer consumers or 64 rows each")
        if self.pingpong and (self.split_k > 1 or self.cluster > 1):
            raise ValueError("pingpong takes whole tiles without clusters: use split_k=1, cluster_m=1, cluster_n=1")
        if self.stage_turns and (self.pingpong or self.consumers < 2):
            raise ValueError("stage_turns: two or more consumer warpgroups of one tile take turns at each stage; "
                             "pingpong consumers take turns over whole tiles already")
        # B's tile is rows of K when B is K-major (any multiple of 8 of them, as wgmma's n), else 64-column chunks,
        # or 32-column ones (the 64-byte swizzle) where tile_n is an odd multiple of 32
        if self.tile_n % (8 if self.b_k_major else 32) or not 8 <= self.tile_n <= 256:
            raise ValueError(f"tile_n must be a multiple of 32 up to 256 (of 8 when B is K-major), found "
                             f"{self.tile_n}")
        if not self.b_k_major and self.tile_n % 64 and self.loader != "tma":
            raise ValueError(f"a row-major B {self.tile_n} columns wide takes the 64-byte swizzle, which only the TMA "
                             "loader writes: use a tile_n that is a multiple of 64, or loader='tma'")
        if self.tile_k * self.elem_bytes % 128:
            raise ValueError(f"tile_k must fill 128-byte rows: a multiple of {128 // self.elem_bytes} for "
                             f"{self.dtype}, found {self.tile_k}")
        if self.loader not in ("tma", "vector") and not hasattr(self.loader, "build"):
            raise ValueError(f"loader must be 'tma', 'vector' or a loader spec with build(), found {self.loader!r}")
        if not isinstance(self.loader, str) and self.cluster > 1:
            raise ValueError(f"{type(self.loader).__name__} loads its own tiles without multicast: use cluster_m=1 "
                             "and cluster_n=1")
        if self.loader == "vector" and self.cluster > 1:
            raise ValueError("the vector loader does not multicast: use cluster_m=1 and cluster_n=1")
        if self.vector_width not in (1, 2, 4, 8) or (self.vector_width != 8 and self.loader != "vector"):
            raise ValueError(f"vector_width is how many elements the vector loader copies a load: 8, 4, 2 or 1 with "
                             f"loader='vector', found {self.vector_width!r} with loader={self.loader!r}")
        if self.vector_async and (self.loader != "vector" or self.vector_width * self.elem_bytes not in CP_ASYNC_BYTES):
            raise ValueError(f"vector_async: the vector loader copies by cp.async, 4, 8 or 16 bytes a copy; found "
                             f"loader={self.loader!r} and vectors of {self.vector_width * self.elem_bytes} bytes: use "
                             "loader='vector' and a vector_width of 2 or more")
        if self.loader == "vector" and any(rows * self.tile_k // self.vector_width % WARPGROUP
                                           for rows in (self.tile_m, self.tile_n)):
            pieces = self.tile_k // self.vector_width   # a row's loads
            raise ValueError(f"the vector loader's {WARPGROUP} threads copy {self.vector_width} elements each at a "
                             f"time: a tile's rows x tile_k must be a multiple of {WARPGROUP * self.vector_width} "
                             f"elements, found {self.tile_m} x {self.tile_k} and {self.tile_n} x {self.tile_k}; use a "
                             f"tile_n that is a multiple of {WARPGROUP // math.gcd(WARPGROUP, pieces)}")
        if self.store not in ("tma", "direct"):
            raise ValueError(f"store must be 'tma' or 'direct', found {self.store!r}")
        if self.store == "direct" and (self.batched or self.split_k > 1 or self.stream_k or self.split_tail):
            raise ValueError("store='direct' writes one matrix's tiles whole: use it without a batch in one launch, "
                             "split_k, stream_k or split_tail")
        if self.swap_ab and (self.store != "tma" or self.loader != "tma" or self.batched or self.split_k > 1
                             or self.stream_k or self.split_tail or self.out_bytes != 2):
            raise ValueError("swap_ab stores each tile transposed through the TMA-store epilogue, 64 two-byte outputs "
                             "a row: use it with loader='tma', store='tma', a 16-bit output and no batch in one "
                             "launch, split_k, stream_k or split_tail")
        if not whole(self.group_m) or self.group_m < 1:
            raise ValueError(f"group_m is how many tile-rows the scheduler walks at a time, 1 or more, found "
                             f"{self.group_m!r}")
        if self.epilogue_buffers not in (1, 2):
            raise ValueError(f"epilogue_buffers must be 1 or 2, found {self.epilogue_buffers}")
        if self.cluster_m not in (1, 2):
            raise ValueError(f"cluster_m must be 1 or 2, found {self.cluster_m}")
        if self.cluster_m > 1 and self.b_k_major and self.tile_n % (8 * self.cluster_m):
            raise ValueError(f"a cluster of {self.cluster_m} along M splits a K-major B tile's {self.tile_n} rows "
                             f"evenly between its blocks, in whole 8-row groups: use a tile_n that is a multiple of "
                             f"{8 * self.cluster_m}, or cluster_m=1")
        if self.cluster_n not in (1, 2, 4):
            raise ValueError(f"cluster_n must be 1, 2 or 4, found {self.cluster_n}")
        if self.cluster_n > 1 and self.cluster_m > 1:
            raise ValueError("a cluster runs along M (cluster_m, B shared) or along N (cluster_n, A shared), not both")
        if self.cluster_n > 1 and self.a_k_major and (self.a_rows or self.tile_m) % (8 * self.cluster_n):
            raise ValueError(f"a cluster of {self.cluster_n} along N splits A's {self.a_rows or self.tile_m} loaded "
                             f"rows evenly between its blocks in 8-row groups: use a tile_m (or a_rows) that is a "
                             f"multiple of {8 * self.cluster_n}, or cluster_n=1")
        if self.split_k < 1 or self.split_k > 16:
            raise ValueError(f"split_k must be 1 to 16, found {self.split_k}")
        if self.split_k > 1 and (self.cluster > 1 or not isinstance(self.loader, str)):
            raise ValueError("split-K takes the TMA or the vector loader without clusters: use cluster_m=1 and "
                             "cluster_n=1")
        if self.stream_k and (self.split_k > 1 or self.cluster > 1 or self.pingpong or self.batched):
            raise ValueError("stream_k shares the k-steps of whole tiles between single blocks: use it without "
                             "split_k, clusters, pingpong or a batch in one launch")
        if self.split_tail and (self.stream_k or self.split_k > 1 or self.cluster > 1 or self.pingpong
                                or self.batched):
            raise ValueError("split_tail splits the last wave's tiles between single blocks: use it without "
                             "stream_k, split_k, clusters, pingpong or a batch in one launch")
        if self.a_rows and not (self.a_k_major and self.loader == "tma" and self.a_rows % 8 == 0
                                and 8 <= self.a_rows <= self.tile_m):
            raise ValueError(f"a_rows is how many of a K-major A tile's rows the TMA loader fills: a multiple of 8 "
                             f"from 8 to tile_m={self.tile_m}, with a_k_major=True and loader='tma'; found "
                             f"a_rows={self.a_rows}, a_k_major={self.a_k_major}, loader={self.loader!r}")
        if self.a_box_rows and not (self.a_k_major and self.loader == "tma" and not self.a_rows
                                    and self.cluster_n == 1 and not self.batched and self.a_box_rows % 8 == 0
                                    and self.tile_m % self.a_box_rows == 0 and self.a_box_rows < self.tile_m):
            raise ValueError(f"a_box_rows is how many rows each TMA box of a K-major A tile fills: a multiple of 8 "
                             f"dividing tile_m={self.tile_m} (and less), with a_k_major=True, loader='tma', no a_rows, "
                             f"cluster_n=1 and no batch in one launch; found a_box_rows={self.a_box_rows}")
        if self.batched not in ("", "a", "b", "ab"):
            raise ValueError(f"batched names the operands with a batch dimension ('a', 'b' or 'ab'), found "
                             f"{self.batched!r}")
        if self.batched and (self.split_k > 1 or self.loader == "vector"):   # (a loader spec: conv2d's groups)
            raise ValueError("a batch in one launch takes the TMA loader (or a loader spec's) without split-K")
        # ptxas compiles for the registers of an even share of the file; a consumer's accumulator (tile_n / 2
        # registers) and its addresses and loop state (about 24) must fit in it
        share = held_registers(self.consumers) // self.threads
        rows = self.consumer_rows   # a consumer's accumulator
        if rows // ROWS * self.tile_n // 2 + 24 > share:
            raise ValueError(f"{self.consumers} consumer warpgroups leave {share} registers a thread at compile time, "
                             f"too few for a {rows} x {self.tile_n} accumulator: use a tile_n of at most "
                             f"{(share - 24) * 2 * ROWS // rows // 64 * 64}")

    def tile_op(self):
        """The TileOp class of a consumer's 64-row part (the fp8 configuration's depends on its scaling)."""
        return Wgmma

    def check_stages(self):
        """Refuse a pipeline too shallow for the consumers' TileOp: a step acquires `stages_per_step` stages, and
        its MMAs keep reading `stages_in_flight` more while the next step waits (wgmma's are asynchronous). With
        fewer stages the consumer would wait for a stage it still holds."""
        op = self.tile_op()
        step, lag = getattr(op, "stages_per_step", 1), op.stages_in_flight
        if self.stages < step + lag:
            raise ValueError(f"stages must be at least {step + lag} for {op.__name__}, which takes {step} stage(s) a "
                             f"step and keeps {lag} more in flight while the next step waits, found "
                             f"stages={self.stages}: the consumer would wait for a stage it still holds")

    @property
    def shares_tiles(self) -> bool:
        """Whether tiles of the last waves are split between blocks (stream-K or a split tail): the launch takes
        host_plans.stream_k_buffers'."""
        return self.stream_k or self.split_tail

    @property
    def cluster(self) -> int:
        """Blocks per cluster (along M or along N)."""
        return self.cluster_m * self.cluster_n

    @property
    def threads(self) -> int:
        return WARPGROUP * (1 + self.consumers)

    @property
    def consumer_rows(self) -> int:
        """Rows of the tile each consumer warpgroup computes: 64, or 128 as two stacked 64-row parts (a pingpong
        consumer's own 128-row tiles, or its half of a cooperative 256-row tile)."""
        return self.tile_m if self.pingpong else self.tile_m // self.consumers

    @property
    def elem_bytes(self) -> int:
        return self.input_types[self.dtype]

    def payload(self) -> TilePayload:
        # a K-major B shared along M, or a K-major A along N: each block of the cluster loads a share of its rows; an
        # MN-major operand whose 64-row chunks do not split evenly: a share of its rows of K
        def shares(name, rows, k_major, cluster):
            chunk = self.swizzle(name) // self.elem_bytes
            return cluster if k_major or (rows // chunk) % cluster else 1

        operands = (("a", self.tile_m, self.a_k_major, self.a_rows, self.cluster_n),
                    ("b", self.tile_n, self.b_k_major, 0, self.cluster_m))
        layouts = {name: (BatchedOperandLayout if name in self.batched else OperandLayout)(
                       rows, self.tile_k, self.elem_bytes, k_major, self.swizzle(name), loaded_rows=loaded,
                       row_shares=(rows // self.a_box_rows if name == "a" and self.a_box_rows else
                                   shares(name, rows, k_major, cluster)))
                   for name, rows, k_major, loaded, cluster in operands}
        return TilePayload(**layouts)

    def swizzle(self, operand: str) -> int:
        """The shared-memory swizzle (bytes) of operand "a", "b" or "out"'s tiles, which its tensor map must name:
        128, but 64 for a row-major B whose tiles are an odd multiple of 32 columns wide (32-column chunks)."""
        return mn_major_swizzle(self.tile_n, self.elem_bytes) if operand == "b" and not self.b_k_major else 128

    @property
    def epilogue_columns(self) -> int:
        """Columns the epilogue stores at a time: one 128-byte swizzled row of outputs, or the part of one, a
        multiple of 16 bytes and of wgmma's groups of 8 columns dividing tile_n, that takes the fewest stores, a
        chunk's row counted in pieces of a power of two of 16-byte units (144 wide: 3 chunks of 48 bf16 columns,
        64 + 32 bytes a row, against 9 of 16: 1.05-1.08x end to end at four waves of 128 x 144 tiles, K of 832
        and 2048; 160 wide stays at 5 of 32, its 4 of 40 measured 0.97-0.99x; benchmarks/NOTES.md, thirty-third
        session)."""
        def stores(columns):   # (ties: the wider)
            return self.tile_n // columns * bin(columns * self.out_bytes // 16).count("1"), -columns

        step = max(16 // self.out_bytes, 8)
        return min((columns for columns in range(step, 128 // self.out_bytes + 1, step) if self.tile_n % columns == 0),
                   key=stores)

    @property
    def out_bytes(self) -> int:
        return self.elem_bytes

    def through_pointer(self, operand: str) -> bool:
        """Whether a launch passes operand `operand` ("a", "b" or "out") as a pointer rather than a tensor map: the
        vector loader reads a and b through pointers, and direct stores write out through one."""
        return self.store == "direct" if operand == "out" else self.loader == "vector"

    @property
    def staging_elements(self) -> int:
        """Each consumer's epilogue buffers (the TMA-store epilogue allocates them; direct stores need none)."""
        if self.store == "direct":
            return 0
        return TmaStoreEpilogue.staging_elements(self.elem_bytes, buffers=self.epilogue_buffers)

    def shared_bytes(self) -> int:
        stage = (self.tile_m + self.tile_n) * self.tile_k * self.elem_bytes
        return (stage * self.stages + self.consumers * self.staging_elements * self.elem_bytes
                + 16 * self.stages + 1024)

    def stored_shapes(self, M, N, K) -> dict:
        """(rows, cols) of each operand's row-major stored matrix (for the vector loader)."""
        return {"a": (M, K) if self.a_k_major else (K, M), "b": (N, K) if self.b_k_major else (K, N)}

    def covering(self, M: int) -> "MatmulConfig":
        """This configuration for a problem of M rows (A's rows, all of a batch's): a_rows, chosen for fewer rows
        (for_problem), grows to M rounded up to 8 (to 8 a block of a cluster sharing A), or to the whole tile (0)
        once M fills one; the rows past a_rows would keep whatever a stage held before."""
        if not self.a_rows or M <= self.a_rows:
            return self
        return replace(self, a_rows=0 if M >= self.tile_m else loaded_rows(M, self.tile_m, self.cluster_n))

    def boxes(self) -> dict:
        """The TMA box of each operand's tensor map (outermost dimension first)."""
        payload = self.payload()
        return {"a": payload.layouts["a"].box(), "b": payload.layouts["b"].box(), "out": self.out_box()}

    def out_box(self) -> tuple:
        """The TMA box of the output's tensor map: a warpgroup's rows by a chunk of columns (one matrix's, of a
        batch's 3-D map), or, swap_ab, the output's rows that a chunk of the accumulator's columns are."""
        if self.batched:
            return 1, ROWS, self.epilogue_columns
        return (self.epilogue_columns, ROWS) if self.swap_ab else (ROWS, self.epilogue_columns)

    @classmethod
    def for_problem(cls, M: int, N: int, K: int, dtype: str = "bf16", a_k_major: bool = True,
                    b_k_major: bool = False, max_shared_bytes: int = 232448, multiprocessors: int | None = None,
                    batch: int = 1, unaligned: tuple = (False, False), **overrides) -> "MatmulConfig":
        """A configuration for this problem: the tile shape that fills the device's `multiprocessors` (see
        `tile_shape`), split-K when even the smallest tiles leave most of them idle, and as many stages as fit
        the device's shared memory (2 to 12). Without `multiprocessors` (the GPU unknown): 128 x 256 tiles in
        clusters of 2 for large outputs, 128 x 128 otherwise, no split-K. `batch`: M counts that many matrices of
        M / batch rows (a batch in one launch, whose tiles do not cross matrices). `unaligned`: whether A's and B's
        rows start at no multiple of 128 bytes from each other (or by how many bytes past one): such tiles go in
        clusters of two (`unaligned_cluster`) unless the caller names a tile, a cluster, a split or another loader,
        along M only where that pays (`shares_b`: B's rows cross 32-byte sectors, or A's do and B's are unaligned)."""
        named = set(overrides)
        if (cls.swappable and multiprocessors is not None and not named - {"epilogue"} and a_k_major
                and swaps(M, N, K, multiprocessors, batch, any(unaligned))):
            # out^T = b^T a^T on one consumer's 64 x M tiles (M rounded up to 8: wgmma's n, which a K-major a^T
            # allows; a transposed a would be a row-major B of whole 32-column chunks)
            return cls.for_problem(N, M, K, dtype, b_k_major, a_k_major, max_shared_bytes, multiprocessors,
                                   tile_m=ROWS, consumers=1, tile_n=-(-M // 8) * 8, swap_ab=True, **overrides)
        if multiprocessors is None:
            large = N >= 256 and M * N >= 2 ** 22
            tile_m, tile_n, cluster_m, split_k = 128, 256 if large else 128, 2 if large else 1, 1
        else:
            # (one row of 192-row tiles only where the caller names no tile width, warpgroups or turns: those
            # are 128-row tiles' choices)
            one_row = not {"tile_n", "consumers", "pingpong"} & named
            tile_m, tile_n, cluster_m, split_k = tile_shape(M, N, K, multiprocessors, batch, any(unaligned), b_k_major,
                                                            one_row=one_row, a_aligned=a_k_major and not unaligned[0],
                                                            fill_widths=cls.fill_widths,
                                                            row_split=one_row and "tile_m" not in overrides,
                                                            clusters=not UNCLUSTERING & named)
        if named & {"tile_m", "tile_n", "stream_k", "split_tail", "cluster_m", "cluster_n", "loader", "store",
                    "swap_ab", "batched", "pingpong"}:
            split_k = 1   # (the rule's shares are for its own tiles; a caller's tiles or schedule keep theirs)
        tile_m = overrides.pop("tile_m", tile_m)
        tile_n = overrides.pop("tile_n", tile_n)
        if any(unaligned) and multiprocessors is not None and split_k == 1 and not UNCLUSTERING & named:
            # (the rule's shares go unclustered; where no cluster fits, none: not the aligned rule's)
            cluster = unaligned_cluster(M // batch, N, tile_m, tile_n, multiprocessors, batch)
            if cluster.get("cluster_m") and not shares_b(unaligned):
                cluster = {}   # (sharing B's tile pays only where B's rows, or A's over unaligned B's, cross sectors)
            overrides.update(cluster or {"cluster_m": 1})
        overrides.setdefault("consumers", tile_m // ROWS)
        cluster_n = overrides.get("cluster_n", 1)
        elem_bytes = cls.input_types.get(dtype, 2)   # (a dtype it does not take is the config's own error)
        overrides.setdefault("cluster_m", 1 if (b_k_major or overrides.get("stream_k") or overrides.get("split_tail")
                                                or tile_n * elem_bytes // mn_major_swizzle(tile_n, elem_bytes)
                                                % cluster_m or cluster_n > 1) else cluster_m)
        tma = overrides.get("loader", "tma") == "tma"
        clustered = overrides["cluster_m"] > 1 or cluster_n > 1
        overrides.setdefault("split_k", split_k if tma and not clustered else 1)
        if M < tile_m and a_k_major and tma and "a_box_rows" not in named:
            # fewer rows than a tile: load only those (a box past A's end is slow)
            overrides.setdefault("a_rows", loaded_rows(M, tile_m, cluster_n))
        if ((tile_m, tile_n) in ONE_ROW_TILE_SPEEDS and not {"tile_m", "tile_n"} & named and tma
                and tiles_of(M, N, tile_m, tile_n) <= multiprocessors):
            overrides.setdefault("epilogue_buffers", 1)   # (one tile a block: a sixth stage instead)
        stages = overrides.pop("stages", None)
        config = cls(tile_m=tile_m, tile_n=tile_n, dtype=dtype, a_k_major=a_k_major, b_k_major=b_k_major, stages=2,
                     **overrides)
        if stages is None:
            fitting = [n for n in range(2, 13) if replace(config, stages=n).shared_bytes() <= max_shared_bytes]
            stages = max(fitting) if fitting else 2
        return replace(config, stages=stages)


def mn_major_swizzle(extent: int, elem_bytes: int) -> int:
    """The swizzle (bytes) of an MN-major tile `extent` elements wide: 128, in 128-byte chunks, or 64 where it is an
    odd multiple of 64 bytes (a row-major B tile 96 or 160 wide: 32-column chunks)."""
    return 128 if extent * elem_bytes % 128 == 0 else 64


def loaded_rows(M: int, tile_m: int, cluster_n: int = 1) -> int:
    """The rows a K-major A's boxes load for a problem of M < tile_m rows: M rounded up to whole 8-row groups, one
    group or more a block of a cluster sharing A (its row shares), at most the tile."""
    group = 8 * cluster_n
    return min(tile_m, -(-M // group) * group)


class BatchedOperandLayout(OperandLayout):
    """An operand tile of one matrix of a batch (B x rows x k or B x k x rows): the tensor map is 3-D with a box
    one matrix deep; the tile's origin is (batch, row0)."""

    def box(self) -> tuple:
        return (1, *super().box())

    def share_corner(self, origin, k0, share) -> tuple:
        batch, row0 = origin
        row0, k0 = super().share_corner(row0, k0, share)
        return (batch, row0), k0

    def box_coordinates(self, chunk: int, origin, k0) -> tuple:
        batch, row0 = origin
        return (batch, *super().box_coordinates(chunk, row0, k0))
