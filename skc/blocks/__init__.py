"""skc's structured building blocks, written in the DSL: TileIO (TMA and vector loaders), TilePipeline
(producer/consumer stages over mbarriers), TileOp (wgmma), payloads, warp roles, tile schedulers,
epilogues and configs, and the Hopper GEMM composed from them (`skc.blocks.matmul`)."""
from .config import MatmulConfig
from .epilogue import EpilogueSpec, TmaStoreEpilogue
from .gemm import matmul, matmul_kernel
from .layout import OperandLayout
from .mma import Accumulator, Wgmma
from .payload import SmemTile, TilePayload
from .pipeline import ConsumerRole, InputTilePipeline, ProducerRole, StageLease
from .roles import WarpRoles
from .scheduler import Tile, TileScheduler
from .tile_io import TmaLoader, VectorLoader

__all__ = ["MatmulConfig", "EpilogueSpec", "TmaStoreEpilogue", "matmul", "matmul_kernel", "OperandLayout",
           "Accumulator", "Wgmma", "SmemTile", "TilePayload", "ConsumerRole", "InputTilePipeline", "ProducerRole",
           "StageLease", "WarpRoles", "Tile", "TileScheduler", "TmaLoader", "VectorLoader"]
