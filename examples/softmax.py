"""Row softmax: out[r, :] = exp(x[r, :] - max) / sum(exp(x[r, :] - max)), one block per row.

The row stays in registers between the passes (its length is a compile-time constant, so the
loops over it unroll), so memory sees one read and one write of each element. The maximum and
the sum are block reductions: warp shuffles, then shared memory across warps.
Run it: `skc run examples/softmax.py`.
"""
import numpy as np

import skc

VEC = 4  # floats per 16-byte access


def block_size(n_cols: int, warp_size: int = 32) -> int:
    """Threads per row: about 32 floats each (held in registers), whole warps (the block reductions
    shuffle across every lane of a warp: 64-lane wavefronts on AMD), up to 1024 threads."""
    return max(warp_size, min(1024, n_cols // 32 // warp_size * warp_size))


@skc.kernel
def softmax(x: skc.Ptr[skc.f32], out: skc.Ptr[skc.f32], n_rows: skc.i32, n_cols: skc.constexpr):
    threads = skc.block_dim(0)
    chunks = skc.cdiv(n_cols, threads * VEC)  # vectors per thread (a compile-time int)
    row = skc.block_id(0)
    base = skc.i64(row) * n_cols
    tid = skc.thread_id(0)
    values = []
    for c in skc.static_range(chunks):
        column = (c * threads + tid) * VEC
        inside = column < n_cols
        values.append(skc.load(x + base + column, width=VEC, mask=inside, other=float("-inf")))
    local_max = values[0]
    for v in values[1:]:
        local_max = skc.maximum(local_max, v)
    row_max = skc.block_max(max(local_max[0], local_max[1], local_max[2], local_max[3]))
    exps = [skc.exp(v - row_max) for v in values]
    local_sum = exps[0]
    for e in exps[1:]:
        local_sum = local_sum + e
    total = skc.block_sum(local_sum[0] + local_sum[1] + local_sum[2] + local_sum[3])
    scale = 1.0 / total
    for c in skc.static_range(chunks):
        column = (c * threads + tid) * VEC
        skc.store(out + base + column, exps[c] * scale, mask=column < n_cols)


def compile_arguments(kernel: str, target):
    """What `skc compile` compiles softmax for: rows of 4096 floats (n_cols is a compile-time constant)."""
    if kernel == "softmax":
        return {"n_cols": 4096, "block": block_size(4096, target.warp_size)}
    return None


def launch(x, out, n_rows: int, n_cols: int):
    if n_cols % VEC:
        raise ValueError(f"this example needs rows of a multiple of {VEC} floats, found {n_cols}")
    softmax[n_rows, block_size(n_cols, skc.current_device().target.warp_size)](x, out, n_rows, n_cols)


def reference(x: np.ndarray) -> np.ndarray:
    shifted = x.astype(np.float64) - x.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def main(n_rows=None, n_cols=None) -> str:
    device = skc.current_device()
    n_rows = n_rows or (4096 if not device.is_interpreter else 3)
    n_cols = n_cols or (4096 if not device.is_interpreter else 1000)
    rng = np.random.default_rng(0)
    x_host = rng.standard_normal((n_rows, n_cols), dtype=np.float32) * 4
    x = skc.to_device(x_host)
    out = skc.empty((n_rows, n_cols), skc.f32).fill_bytes(0xFF)
    launch(x, out, n_rows, n_cols)
    return skc.testing.assert_close(out.numpy(), reference(x_host), rtol=1e-4, atol=1e-7, what="softmax")


if __name__ == "__main__":
    print(main())
