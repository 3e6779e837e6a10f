"""The AMD GEMM's compile-time configuration: the block's tile, how its waves share it, the MFMA shape
and the LDS plan (a ping-pong pair of k-packed stages), checked against CDNA's limits, and the choice
of all of it for a problem."""
from __future__ import annotations

from dataclasses import dataclass, field

from .epilogue import EpilogueSpec
from .lds import PACK, LdsLayout
from .mfma import SHAPES
from .payload import TilePayload
from .roles import check_counts

DTYPES = {"bf16": 2, "f16": 2}
WAVE = 64
LDS_BYTES = 65536               # per work-group on gfx90a and gfx942 (CDNA3 ISA 11)
MAX_ACCUMULATORS = 128          # f32 accumulator values per lane, leaving registers for operands and addresses


@dataclass(frozen=True)
class AmdMatmulConfig:
    """C[M, N] = A[M, K] · B[K, N] on AMD CDNA, one `tile_m` x `tile_n` output tile per step of a persistent
    block of `waves_m` x `waves_n` wavefronts, each computing a (tile_m / waves_m) x (tile_n / waves_n) share
    with `mfma` x `mfma` MFMAs; the waves load `tile_k`-deep A and B tiles through `stages` LDS stages."""

    tile_m: int = 128
    tile_n: int = 128
    tile_k: int = 32
    waves_m: int = 2
    waves_n: int = 2
    mfma: int = 32               # 32: v_mfma_f32_32x32x8; 16: v_mfma_f32_16x16x16
    stages: int = 2
    group_m: int = 8
    dtype: str = "bf16"
    a_k_major: bool = True       # A stored M x K (row-major A); False: stored K x M (A transposed)
    b_k_major: bool = False      # B stored N x K (B transposed); False: stored K x N (row-major B)
    epilogue: EpilogueSpec = field(default_factory=EpilogueSpec)

    def __post_init__(self):
        # ints (no float, no bool) before the arithmetic below reads them: 2.5 stages or 'x' as tile_k failed there
        check_counts(self, tile_m=1, tile_n=1, tile_k=1, waves_m=1, waves_n=1, mfma=1, stages=1, group_m=1)
        if self.dtype not in DTYPES:
            raise ValueError(f"the GEMM multiplies {' or '.join(DTYPES)}, not {self.dtype}")
        if self.mfma not in SHAPES:
            raise ValueError(f"mfma must be 32 (32x32x8) or 16 (16x16x16), found {self.mfma}")
        for what, tile, waves in (("tile_m", self.tile_m, self.waves_m), ("tile_n", self.tile_n, self.waves_n)):
            if waves < 1 or tile % (waves * self.mfma):
                raise ValueError(f"{what} = {tile} does not split into {waves} waves of {self.mfma}-wide MFMAs")
        round_k = PACK * WAVE // self.mfma
        if self.tile_k % round_k:
            raise ValueError(f"tile_k must be a multiple of {round_k} for {self.mfma}x{self.mfma} MFMAs, "
                             f"found {self.tile_k}")
        if self.stages < 2:
            raise ValueError(f"the waves fill and read the stages in turn: stages must be 2 or more, found "
                             f"{self.stages}")
        if self.threads > 1024:
            raise ValueError(f"{self.waves_m} x {self.waves_n} waves are {self.threads} threads; at most 1024")
        if self.shared_bytes() > LDS_BYTES:
            raise ValueError(f"the stages need {self.shared_bytes()} bytes of LDS; a work-group has {LDS_BYTES}")
        if self.accumulators > MAX_ACCUMULATORS:
            raise ValueError(f"each lane would hold {self.accumulators} f32 accumulators (at most "
                             f"{MAX_ACCUMULATORS}): use more waves or a smaller tile")

    @property
    def threads(self) -> int:
        return WAVE * self.waves_m * self.waves_n

    @property
    def wave_m(self) -> int:
        return self.tile_m // self.waves_m

    @property
    def wave_n(self) -> int:
        return self.tile_n // self.waves_n

    @property
    def accumulators(self) -> int:
        return self.wave_m * self.wave_n // WAVE

    @property
    def elem_bytes(self) -> int:
        return DTYPES[self.dtype]

    def payload(self) -> TilePayload:
        return TilePayload(a=LdsLayout(self.tile_m, self.tile_k, self.elem_bytes),
                           b=LdsLayout(self.tile_n, self.tile_k, self.elem_bytes))

    def shared_bytes(self) -> int:
        return self.stages * (LdsLayout(self.tile_m, self.tile_k).bytes + LdsLayout(self.tile_n, self.tile_k).bytes)

    def wave_corner(self, wave):
        """(row, column) of wave `wave`'s share in the block's tile (waves along N first)."""
        return (wave // self.waves_n) * self.wave_m, (wave % self.waves_n) * self.wave_n

    @property
    def blocks_per_cu(self) -> int:
        """Blocks a compute unit runs at once, as LDS allows (at most 2: registers for 8 waves of 4 SIMDs)."""
        return max(1, min(2, LDS_BYTES // self.shared_bytes()))

    @classmethod
    def for_problem(cls, M: int, N: int, K: int, dtype: str = "bf16", a_k_major: bool = True,
                    b_k_major: bool = False, **overrides) -> "AmdMatmulConfig":
        """128 x 128 x 32 tiles of 2 x 2 waves with 32x32x8 MFMAs; 64- or 32-wide tiles along a short M or N,
        with 16x16x16 MFMAs once a wave's share is narrower than 32."""
        def extent(size: int) -> int:
            return 128 if size > 64 else 64 if size > 32 else 32

        tile_m = overrides.pop("tile_m", extent(M))
        tile_n = overrides.pop("tile_n", extent(N))
        waves_m, waves_n = overrides.pop("waves_m", 2), overrides.pop("waves_n", 2)
        mfma = overrides.pop("mfma", 32 if min(tile_m // waves_m, tile_n // waves_n) >= 32 else 16)
        return cls(tile_m=tile_m, tile_n=tile_n, waves_m=waves_m, waves_n=waves_n, mfma=mfma, dtype=dtype,
                   a_k_major=a_k_major, b_k_major=b_k_major, **overrides)
