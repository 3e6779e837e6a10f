"""AMD matrix-core ops (mfma.mma): a wavefront of 64 lanes computes D = acc + A(m x k) B(k x n)
from registers (v_mfma_f32_32x32x8_{bf16,f16} and v_mfma_f32_16x16x16_{bf16,f16}, CDNA3 ISA
section 7.1; the same layouts as CDNA2's *_1k forms).

Register layouts (AMD Matrix Instruction Calculator, --register-layout, checked for both
shapes and both types on CDNA2 and CDNA3): with M = m (32 or 16) and lane l of the wave,
  A value e of lane l is A[l % M][4 (l // M) + e];   B value e of lane l is B[4 (l // M) + e][l % M]
  accumulator value v of lane l is D[row][l % M] with
    32x32x8:   row = 8 (v // 4) + 4 (l // 32) + v % 4
    16x16x16:  row = 4 (l // 16) + v
Numerics as wgmma's: the products of each element are summed exactly, rounded once to f32 and
added to acc in f32 (the hardware's accumulation may differ in the last bits of f32).
"""
from __future__ import annotations

import numpy as np

from .access import failing
from .wgmma import whole_units

WAVE = 64


def accumulator_layout(m: int, n: int):
    """(rows, cols), each (64, m*n/64): the D element each lane holds as each of its accumulator values."""
    lane = np.arange(WAVE)[:, None]
    value = np.arange(m * n // WAVE)[None, :]
    if m == 32:
        rows = 8 * (value // 4) + 4 * (lane // 32) + value % 4
    else:
        rows = 4 * (lane // 16) + value
    return rows, np.broadcast_to(lane % n, rows.shape)


def operand_layout(m: int):
    """(index, k), each (64, 4): the row of A (column of B) and the k of each lane's 4 operand values."""
    lane = np.arange(WAVE)[:, None]
    value = np.arange(4)[None, :]
    return np.broadcast_to(lane % m, (WAVE, 4)), 4 * (lane // m) + value


def _mma(op, launch):
    m, n, k = op.attrs["m"], op.attrs["n"], op.attrs["k"]
    if launch.warp_size != WAVE:
        return failing(f"mfma.mma needs wavefronts of 64 lanes; the target {launch.target.name} has warps of "
                       f"{launch.warp_size}", hint="run AMD kernels with an AMD CDNA target (gfx90a, gfx942)")
    rows, cols = accumulator_layout(m, n)
    index, depth = operand_layout(m)
    acc, a_value, b_value = op.operands
    result = op.result

    def mma(group):
        env = group.env
        out = env[acc].copy()
        for lanes in whole_units(group, "mfma.mma", WAVE, "wavefront"):
            a = np.empty((m, k), np.float64)
            b = np.empty((k, n), np.float64)
            a[index, depth] = env[a_value][lanes]
            b[depth, index] = env[b_value][lanes]
            d = np.empty((m, n), np.float32)
            d[rows, cols] = env[acc][lanes]
            d = d + (a @ b).astype(np.float32)
            out[lanes] = d[rows, cols]
        env[result] = out
    return mma


EFFECTS = {"mfma.mma": _mma}
