"""Autotuning the GEMM (`matmul(..., autotune=True)` or SKC_AUTOTUNE=1): a few Hopper configurations around
MatmulConfig.for_problem's choice (tile width, clusters, stages, grouping), timed with `skc.autotune` on the
operands of the call, the winner kept on disk per device and problem. AMD problems keep the default config."""
from __future__ import annotations

import dataclasses

import skc

from .config import MatmulConfig

# fields tried around the default, each a variation on MatmulConfig.for_problem's choice
VARIATIONS = ({}, {"tile_n": 128, "cluster_m": 1}, {"tile_n": 256, "cluster_m": 1}, {"tile_n": 256, "cluster_m": 2},
              {"tile_n": 128, "cluster_m": 2}, {"group_m": 16}, {"tile_n": 192, "cluster_m": 1},
              {"tile_m": 64, "tile_n": 256, "cluster_m": 1}, {"tile_m": 64, "tile_n": 128, "cluster_m": 1},
              {"tile_m": 128, "tile_n": 256, "cluster_m": 1}, {"split_k": 1})
# and, where the operands' rows start at no multiple of 128 bytes from each other, the tiles in the clusters that
# share them (tile_rules.unaligned_cluster)
UNALIGNED_VARIATIONS = ({"tile_m": 192, "tile_n": 192, "cluster_n": 2}, {"tile_m": 192, "tile_n": 192, "cluster_m": 2},
                        {"tile_m": 128, "tile_n": 192, "cluster_m": 2}, {"tile_m": 64, "tile_n": 128, "cluster_m": 2},
                        {"tile_m": 64, "tile_n": 64, "cluster_m": 2})

_TUNERS: dict = {}


def candidates(target, problem, spec, multiprocessors: int = 132, unaligned: tuple = (False, False)) -> list:
    """The distinct valid configurations tried for a problem (the default first); `unaligned`: by how many bytes
    past a multiple of 128 A's and B's rows start from each other (0: aligned; unaligned, the default goes in
    clusters where tile_rules says they pay, and more of them are tried)."""
    M, N, K, dtype, a_k_major, b_k_major = problem
    found = []
    for overrides in VARIATIONS + (UNALIGNED_VARIATIONS if any(unaligned) else ()):
        try:
            config = MatmulConfig.for_problem(M, N, K, dtype, a_k_major, b_k_major, target.max_shared_bytes,
                                              multiprocessors, unaligned=unaligned, epilogue=spec, **overrides)
        except ValueError:  # e.g. clusters with a transposed B
            continue
        if config not in found:
            found.append(config)
    return found


def tune(device, problem, spec, operands, matmul, unaligned: tuple = (False, False)):
    """The fastest configuration for this problem on this (Hopper) device, timed the first time, then from disk.
    `matmul` is the host function that runs one configuration (skc.blocks.matmul; passed in, as it calls here);
    `unaligned` as `candidates` takes it (a key of its own: another problem for the tuner)."""
    target = device.target
    where = (target.name, problem, spec, unaligned)
    tuner = _TUNERS.get(where)
    if tuner is None:
        def run(a, b, c, bias, config):
            matmul(a, b, None, c=c, bias=bias, alpha=1.0 if spec.alpha else None, beta=1.0 if spec.beta else None,
                   activation=spec.activation, config=config)

        configs = [{"config": config}
                   for config in candidates(target, problem, spec, device.multiprocessors, unaligned)]
        key = (problem, dataclasses.astuple(spec)) + ((unaligned,) if any(unaligned) else ())
        tuner = _TUNERS[where] = skc.autotune.Autotuner(run, configs, key=lambda *args: key, name="skc.blocks.matmul")
    a, b, _, c, bias = operands
    return tuner.choose(a, b, c, bias)["config"]
