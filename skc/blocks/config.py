"""The GEMM's compile-time configuration: tile shape, pipeline depth, warp roles, operand layouts
and epilogue, with the shared-memory plan derived from them and checked against the device."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import ClassVar

from skc.ir.ops_async import CP_ASYNC_BYTES
from skc.target import get_target

from .epilogue import EpilogueSpec, TmaStoreEpilogue
from .layout import OperandLayout
from .mma import Wgmma
from .payload import TilePayload
from .roles import check_counts, fill_register_shares, held_registers, whole

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
            raise ValueError(f"tile_m must be {ROWS} or {2 * ROWS} per consumer warpgroup: {ROWS * self.consumers} or "
                             f"{2 * ROWS * self.consumers}, found {self.tile_m}")
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
        if self.batched and (self.split_k > 1 or self.loader != "tma"):
            raise ValueError("a batch in one launch takes the TMA loader without split-K")
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
        rows start at no multiple of 128 bytes from each other: such tiles go in clusters of two
        (`unaligned_cluster`) unless the caller names a tile, a cluster, a split or another loader."""
        if (cls.swappable and multiprocessors is not None and not set(overrides) - {"epilogue"} and a_k_major
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
            one_row = not {"tile_n", "consumers", "pingpong"} & set(overrides)
            tile_m, tile_n, cluster_m, split_k = tile_shape(M, N, K, multiprocessors, batch, any(unaligned), b_k_major,
                                                            one_row=one_row, a_aligned=a_k_major and not unaligned[0],
                                                            fill_widths=cls.fill_widths,
                                                            row_split=one_row and "tile_m" not in overrides,
                                                            clusters=not UNCLUSTERING & set(overrides))
        named = set(overrides)
        if named & {"tile_m", "tile_n", "stream_k", "split_tail", "cluster_m", "cluster_n", "loader", "store",
                    "swap_ab", "batched", "pingpong"}:
            split_k = 1   # (the rule's shares are for its own tiles; a caller's tiles or schedule keep theirs)
        tile_m = overrides.pop("tile_m", tile_m)
        tile_n = overrides.pop("tile_n", tile_n)
        if any(unaligned) and multiprocessors is not None and split_k == 1 and not UNCLUSTERING & named:
            # (the rule's shares go unclustered; where no cluster fits, none: not the aligned rule's)
            overrides.update(unaligned_cluster(M // batch, N, tile_m, tile_n, multiprocessors, batch)
                             or {"cluster_m": 1})
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


def tiles_of(M: int, N: int, tile_m: int, tile_n: int) -> int:
    return -(-M // tile_m) * -(-N // tile_n)


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def wave_cost(M: int, N: int, tile: tuple, multiprocessors: int = 132, batch: int = 1,
              speeds: dict = TILE_SPEEDS, past_end: bool = False) -> float:
    """The time of an M x N output (a batch of `batch` of them) in tiles of `tile`, in units of one SM's time for a
    128 x 256 tile's work (K cancels): the waves of tiles over the SMs, rounded up (a part-full last wave takes as
    long as a full one), times each tile's work over the tile shape's speed (TILE_SPEEDS). `past_end`: a last row
    of 128-row tiles part past M (after a full one) adds PAST_END_COST of a wave for its rows past M."""
    tile_m, tile_n = tile
    waves = -(-batch * tiles_of(M, N, tile_m, tile_n) // multiprocessors)
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
    tiles_m, tiles_n = -(-M // tile_m), -(-N // tile_n)
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
    128-row tiles are weighed too (rows not 128-byte aligned, one matrix: UNALIGNED_FILL_WIDTHS' tiles, in clusters
    that add no wave, `unaligned_fill_speeds`). `row_split` (aligned rows; the caller names no tile, warpgroups or
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
