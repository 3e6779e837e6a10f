"""skc's structured building blocks, written in the DSL: TileIO (TMA, vector and LDS loaders), TilePipeline
(producer/consumer stages over mbarriers on Hopper, a ping-pong pair of LDS stages over the block barrier on
AMD), TileOp (wgmma, MFMA), payloads, warp roles, tile schedulers, epilogues and configs, and the GEMM composed
from them for both (`skc.blocks.matmul`)."""
from .amd_config import AmdMatmulConfig
from .attention_host import attention
from .attention_kernel import AttentionConfig, attention_kernel
from .config import BatchedOperandLayout, MatmulConfig
from .conv import conv2d
from .epilogue import DirectStoreEpilogue, EpilogueArgs, EpilogueSpec, FusedEpilogue, TmaStoreEpilogue
from .fp8 import BlockScaledWgmma, Fp8MatmulConfig, ScaleLayout
from .gemm import matmul_kernel
from .im2col import ConvShape, Im2colLoader
from .layout import OperandLayout
from .matmul_host import compile_arguments, matmul
from .lds import LdsLayout, LdsLoader
from .mfma import Mfma, MfmaAccumulator
from .mma import Accumulator, Wgmma, WgmmaRegA
from .payload import SmemTile, TilePayload
from .pingpong import LdsConsumer, LdsPipeline, LdsProducer
from .pipeline import ConsumerRole, InputTilePipeline, ProducerRole, StageLease
from .roles import WarpgroupTurns, WarpRoles
from .scheduler import Tile, TileScheduler
from .softmax import OnlineSoftmax
from .tile_io import TmaLoader, VectorLoader

__all__ = ["AmdMatmulConfig", "MatmulConfig", "DirectStoreEpilogue", "EpilogueArgs", "EpilogueSpec", "FusedEpilogue",
           "TmaStoreEpilogue", "compile_arguments", "matmul", "matmul_kernel", "OperandLayout",
           "BatchedOperandLayout", "LdsLayout",
           "LdsLoader", "Mfma", "MfmaAccumulator", "Accumulator", "Wgmma", "SmemTile", "TilePayload", "LdsConsumer",
           "LdsPipeline", "LdsProducer", "ConsumerRole", "InputTilePipeline", "ProducerRole", "StageLease",
           "WarpgroupTurns", "WarpRoles", "Tile", "TileScheduler", "TmaLoader", "VectorLoader", "conv2d", "ConvShape",
           "Im2colLoader",
           "Fp8MatmulConfig", "BlockScaledWgmma", "ScaleLayout",
           "attention", "AttentionConfig", "attention_kernel", "OnlineSoftmax", "WgmmaRegA"]
