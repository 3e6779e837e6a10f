"""Layer norm forward: y = (x - mean) / sqrt(var + eps) · w + b over each row of an f16 or bf16 matrix, the
statistics in f32; mean and rstd (1 / sqrt(var + eps)) are stored per row as well, as a backward pass needs them.

One block per row. The row is read once, 16 bytes a thread at a time, and stays in registers between the passes
(how many vectors a thread holds is a compile-time constant, so those loops unroll); masks cover any row width.
Rows too long to hold so (more than MAX_CHUNKS vectors a thread of 1024) take `layer_norm_wide`, which reads the
row three times in run-time loops (the second and third reads mostly from L2).
The variance is the mean of (x - mean)², not E[x²] - mean², which cancels badly for rows far from zero.
Run it: `skc run examples/layer_norm.py`.
"""
import numpy as np

import skc


MAX_CHUNKS = 8   # vectors a thread holds in registers (8 of 8 elements: 64 f32 values); LLVM's time grows past it


def vector_width(cols: int) -> int:
    """Elements a 16-byte access holds (8 of f16/bf16), or fewer where the row width needs it: a row starts
    cols elements after the last, so its vectors stay aligned only when the width divides cols."""
    width = 8
    while cols % width:
        width //= 2
    return width


def block_size(cols: int, vec: int, warp_size: int = 32) -> int:
    """Threads per row: two vectors each, whole warps (the block reductions shuffle across every lane),
    at most 1024 threads."""
    vectors = skc.cdiv(cols, vec)
    return min(1024, max(warp_size, skc.cdiv(skc.cdiv(vectors, 2), warp_size) * warp_size))


@skc.func
def lanes_sum(v, vec):
    """The sum of v's lanes (a load of width 1 gives a scalar, which is its own sum)."""
    return sum(v) if vec > 1 else v


@skc.kernel
def layer_norm(x, w, b, y, mean_out: skc.Ptr[skc.f32], rstd_out: skc.Ptr[skc.f32], cols: skc.i32, eps: skc.f32,
               vec: skc.constexpr, chunks: skc.constexpr):
    """x and y: rows x cols, row-major, of one type (f16 or bf16); w and b: cols values of it. vec elements a
    vector, chunks vectors a thread (chunks · vec · threads >= cols)."""
    threads = skc.block_dim(0)
    row, t = skc.block_id(0), skc.thread_id(0)
    base = skc.i64(row) * cols
    values, inside = [], []
    total = 0.0
    for c in skc.static_range(chunks):
        column = (c * threads + t) * vec
        inside.append(column < cols)
        values.append(skc.f32(skc.load(x + base + column, width=vec, mask=inside[c], other=0.0)))
        total += lanes_sum(values[c], vec)
    mean = skc.block_sum(total) / cols
    squares = 0.0
    for c in skc.static_range(chunks):
        centered = skc.where(inside[c], values[c] - mean, 0.0)
        squares += lanes_sum(centered * centered, vec)
    rstd = skc.rsqrt(skc.block_sum(squares) / cols + eps)
    for c in skc.static_range(chunks):
        column = (c * threads + t) * vec
        weight = skc.f32(skc.load(w + column, width=vec, mask=inside[c], other=0.0))
        bias = skc.f32(skc.load(b + column, width=vec, mask=inside[c], other=0.0))
        skc.store(y + base + column, (values[c] - mean) * rstd * weight + bias, mask=inside[c])
    if t == 0:
        mean_out[row] = mean
        rstd_out[row] = rstd


@skc.kernel
def layer_norm_wide(x, w, b, y, mean_out: skc.Ptr[skc.f32], rstd_out: skc.Ptr[skc.f32], cols: skc.i32,
                    eps: skc.f32, vec: skc.constexpr):
    """layer_norm for rows of any length: each pass a run-time loop over the row, vec elements at a time (vec
    divides cols, so no vector crosses the row's end)."""
    threads = skc.block_dim(0)
    row, t = skc.block_id(0), skc.thread_id(0)
    base = skc.i64(row) * cols
    total = 0.0
    for column in range(t * vec, cols, threads * vec):
        total += lanes_sum(skc.f32(skc.load(x + base + column, width=vec)), vec)
    mean = skc.block_sum(total) / cols
    squares = 0.0
    for column in range(t * vec, cols, threads * vec):
        centered = skc.f32(skc.load(x + base + column, width=vec)) - mean
        squares += lanes_sum(centered * centered, vec)
    rstd = skc.rsqrt(skc.block_sum(squares) / cols + eps)
    for column in range(t * vec, cols, threads * vec):
        values = skc.f32(skc.load(x + base + column, width=vec))
        weight = skc.f32(skc.load(w + column, width=vec))
        bias = skc.f32(skc.load(b + column, width=vec))
        skc.store(y + base + column, (values - mean) * rstd * weight + bias)
    if t == 0:
        mean_out[row] = mean
        rstd_out[row] = rstd


def compile_arguments(kernel: str, target):
    """What `skc compile` compiles layer_norm for: f16 rows of 4096."""
    if kernel == "layer_norm":
        half = skc.Ptr[skc.f16]
        vec = vector_width(4096)
        threads = block_size(4096, vec, target.warp_size)
        return {"x": half, "w": half, "b": half, "y": half, "vec": vec,
                "chunks": skc.cdiv(4096, vec * threads), "block": threads}
    if kernel == "layer_norm_wide":
        half = skc.Ptr[skc.f16]
        return {"x": half, "w": half, "b": half, "y": half, "vec": 8, "block": 1024}
    return None


def launch(x, w, b, y, mean, rstd, rows: int, cols: int, eps: float = 1e-5):
    """y = layer_norm(x) · w + b for rows x cols row-major x and y; mean and rstd receive rows f32 values."""
    vec = vector_width(cols)
    threads = block_size(cols, vec, skc.current_device().target.warp_size)
    chunks = skc.cdiv(cols, vec * threads)
    if chunks <= MAX_CHUNKS:
        layer_norm[rows, threads](x, w, b, y, mean, rstd, cols, eps, vec, chunks)
    else:
        layer_norm_wide[rows, threads](x, w, b, y, mean, rstd, cols, eps, vec)


def reference(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float):
    """(y, mean, rstd) in float64."""
    x = x.astype(np.float64)
    mean = x.mean(axis=1)
    rstd = 1 / np.sqrt(((x - mean[:, None]) ** 2).mean(axis=1) + eps)
    return (x - mean[:, None]) * rstd[:, None] * w + b, mean, rstd


def check(rows: int, cols: int, dtype=skc.f16, eps: float = 1e-5, seed: int = 0) -> float:
    """Run the kernel on random rows (offset from zero, so the variance's form matters) and compare with numpy;
    return y's largest error relative to the largest |y|."""
    rng = np.random.default_rng(seed)
    x_host = rng.standard_normal((rows, cols), dtype=np.float32) * 2 + 10
    w_host = rng.standard_normal(cols, dtype=np.float32)
    b_host = rng.standard_normal(cols, dtype=np.float32)
    x, w, b = (skc.to_device(a, dtype=dtype) for a in (x_host, w_host, b_host))
    y = skc.empty((rows, cols), dtype).fill_bytes(0xFF)     # NaN until written
    mean, rstd = skc.empty(rows, skc.f32).fill_bytes(0xFF), skc.empty(rows, skc.f32).fill_bytes(0xFF)
    launch(x, w, b, y, mean, rstd, rows, cols, eps)
    y_ref, mean_ref, rstd_ref = reference(x.numpy(), w.numpy(), b.numpy(), eps)   # from the rounded inputs
    skc.testing.assert_close(mean.numpy(), mean_ref, rtol=1e-5, atol=1e-5, what="layer_norm mean")
    skc.testing.assert_close(rstd.numpy(), rstd_ref, rtol=1e-4, atol=0, what="layer_norm rstd")
    error = float(np.abs(y.numpy().astype(np.float64) - y_ref).max() / np.abs(y_ref).max())
    if not error <= 2 ** -7:     # one rounding to bf16 of the largest value
        raise AssertionError(f"layer_norm {rows}x{cols}: relative error {error:.3g} (expected <= {2 ** -7})")
    return error


def main(rows=None, cols=None) -> str:
    small = skc.current_device().is_interpreter
    rows, cols = rows or (4096 if not small else 5), cols or (4096 if not small else 1003)
    errors = [check(rows, cols, dtype) for dtype in (skc.f16, skc.bf16)]
    return f"{rows}x{cols} f16 and bf16: relative error {max(errors):.2g}, mean and rstd match"


if __name__ == "__main__":
    print(main())
