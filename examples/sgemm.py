"""SGEMM without tensor cores: C = A @ B in float32, row-major, any M, N, K.

Each block computes a BM x BN tile of C. Per step of BK along K, the block stages an A tile
(stored transposed, so the inner loop reads a column as a row) and a B tile in shared memory;
each thread then accumulates a TM x TN patch in registers. Loads past the matrix edges are
masked to zero and stores past them are skipped. Run it: `skc run examples/sgemm.py`.
"""
import numpy as np

import skc

BM, BN, BK = 64, 64, 16
TM, TN = 4, 4
THREADS = (BM // TM) * (BN // TN)  # 256


@skc.kernel(block=THREADS)
def sgemm(a: skc.Ptr[skc.f32], b: skc.Ptr[skc.f32], c: skc.Ptr[skc.f32], M: skc.i32, N: skc.i32, K: skc.i32):
    tid = skc.thread_id(0)
    thread_row = tid // (BN // TN)
    thread_col = tid % (BN // TN)
    row0 = skc.block_id(1) * BM
    col0 = skc.block_id(0) * BN
    a_tile = skc.shared((BK, BM), skc.f32)  # a_tile[k, m] = A[row0 + m, k0 + k]
    b_tile = skc.shared((BK, BN), skc.f32)  # b_tile[k, n] = B[k0 + k, col0 + n]
    acc = [0.0] * (TM * TN)
    for k0 in range(0, K, BK):
        for i in skc.static_range(BM * BK // THREADS):
            e = tid + i * THREADS
            m, k = e // BK, e % BK
            gm, gk = row0 + m, k0 + k
            a_tile[k, m] = skc.load(a + gm * K + gk, mask=(gm < M) & (gk < K), other=0.0)
        for i in skc.static_range(BK * BN // THREADS):
            e = tid + i * THREADS
            k, n = e // BN, e % BN
            gk, gn = k0 + k, col0 + n
            b_tile[k, n] = skc.load(b + gk * N + gn, mask=(gk < K) & (gn < N), other=0.0)
        skc.barrier()
        for k in skc.static_range(BK):
            a_column = [a_tile[k, thread_row * TM + i] for i in range(TM)]
            b_row = [b_tile[k, thread_col * TN + j] for j in range(TN)]
            for i in skc.static_range(TM):
                for j in skc.static_range(TN):
                    acc[i * TN + j] += a_column[i] * b_row[j]
        skc.barrier()
    for i in skc.static_range(TM):
        for j in skc.static_range(TN):
            gm = row0 + thread_row * TM + i
            gn = col0 + thread_col * TN + j
            skc.store(c + gm * N + gn, acc[i * TN + j], mask=(gm < M) & (gn < N))


def launch(a, b, c, M: int, N: int, K: int):
    sgemm[(skc.cdiv(N, BN), skc.cdiv(M, BM)), THREADS](a, b, c, M, N, K)


def main(M=None, N=None, K=None) -> str:
    device = skc.current_device()
    small = device.is_interpreter
    M, N, K = M or (1000 if not small else 70), N or (1100 if not small else 66), K or (900 if not small else 37)
    rng = np.random.default_rng(0)
    a_host = rng.standard_normal((M, K), dtype=np.float32)
    b_host = rng.standard_normal((K, N), dtype=np.float32)
    c = skc.empty((M, N), skc.f32).fill_bytes(0xFF)
    launch(skc.to_device(a_host), skc.to_device(b_host), c, M, N, K)
    expected = a_host.astype(np.float64) @ b_host.astype(np.float64)
    error = skc.testing.relative_error(c.numpy(), expected)
    if not error < 1e-5:
        raise AssertionError(f"sgemm: relative error {error:.3g} (expected < 1e-5)")
    return f"{M}x{N}x{K}: relative error {error:.2g}"


if __name__ == "__main__":
    print(main())
