"""RMSNorm of a rows x cols bf16 matrix, out = x / sqrt(mean(x²) + eps) · w, from skc's blocks though it is no GEMM:
a producer warpgroup's TmaLoader streams 8-row blocks of x, 512 columns a stage, into an InputTilePipeline; consumer
warpgroups (WarpRoles) each take a whole row block as one run of stages (`consumer.acquire(steps)`), read it from
shared memory element-wise (`stage.x.load`: the tile's swizzle is the layout's business) for the sum of squares
and again for the scaled row, and store it with 16-byte stores; the next row blocks load meanwhile. x is read from
memory once and out written once. A TileScheduler walks the row blocks; several consumers take them in turn.
Run it: `skc run examples/rmsnorm.py` (small shapes in the interpreter when no Hopper GPU is present); compile it:
`skc compile examples/rmsnorm.py::rmsnorm --target sm_90a`.
"""
import numpy as np

import skc
from skc.blocks import InputTilePipeline, OperandLayout, TilePayload, TileScheduler, TmaLoader, WarpRoles

ROWS = 8       # rows of a block (a tile's rows come in groups of 8)
STEP = 512     # columns of a stage: eight 128-byte chunks of bf16
VEC = 8        # bf16 a 16-byte vector
LANES = 32


@skc.kernel
def rmsnorm(x: skc.TensorMap, w: skc.Ptr[skc.bf16], out: skc.Ptr[skc.bf16], rows: skc.i32, eps: skc.f32,
            cols: skc.constexpr, consumers: skc.constexpr = 1):
    """x is a tensor map of boxes ROWS x 64 (one 128-byte chunk); w holds cols values; out is row-major."""
    steps = skc.cdiv(cols, STEP)   # stages a row block
    payload = TilePayload(x=OperandLayout(ROWS, STEP))
    load = TmaLoader(payload, x=x)
    # each consumer holds a row block while the producer loads the next one, as many stages as fit (at least a block)
    fitting = (skc.current_target().max_shared_bytes - 2048) // payload.stage_bytes
    with InputTilePipeline(payload, max(steps, min((consumers + 1) * steps, fitting)), load, consumers=1) as pipe:
        roles = WarpRoles(consumers)
        blocks = TileScheduler(rows, cols, ROWS, cols)
        if roles.is_producer():
            roles.enter_producer()
            if load.is_issuing():
                with pipe.producer() as producer:
                    for block in blocks:
                        for k in range(steps):
                            with producer.acquire() as stage:
                                load(stage, k, x=block.row0)
        else:
            roles.enter_consumer()
            me = roles.consumer_index()
            with pipe.consumer() as consumer:
                consumer.skip(me * steps)   # the consumers take the row blocks in turn
                for block in blocks.every(consumers, me):
                    with consumer.acquire(steps) as run:
                        normalize(run, block.row0, w, out, rows, eps, cols, steps)
                    consumer.skip((consumers - 1) * steps)


@skc.func
def normalize(run, row0, w, out, rows, eps, cols, steps):
    """A warpgroup's row block (its run of stages): each warp normalizes ROWS / 4 rows, a lane VEC columns at a time:
    the row's sum of squares, then the row scaled (each pass reads the row from shared memory)."""
    lane, warp = skc.lane_id(), skc.warp_id() % 4
    for r in skc.static_range(ROWS // 4):
        row = warp * (ROWS // 4) + r
        squares = 0.0
        for s in skc.static_range(steps):
            for p in skc.static_range(STEP // (VEC * LANES)):
                values = skc.f32(run.stage(s).x.load(row, (p * LANES + lane) * VEC, skc.bf16, width=VEC))
                for i in skc.static_range(VEC):
                    squares += values[i] * values[i]
        scale = skc.rsqrt(skc.warp_sum(squares) / cols + eps)
        for s in skc.static_range(steps):
            for p in skc.static_range(STEP // (VEC * LANES)):
                column = s * STEP + (p * LANES + lane) * VEC
                inside = column < cols
                values = skc.f32(run.stage(s).x.load(row, (p * LANES + lane) * VEC, skc.bf16, width=VEC))
                weights = skc.f32(skc.load(w + column, width=VEC, mask=inside))
                skc.store(out + (skc.i64(row0 + row) * cols + column), skc.bf16(values * scale * weights),
                          mask=inside & (row0 + row < rows))


def launch(x, w, out, rows: int, cols: int, eps: float = 1e-6, consumers: int = 1):
    """out = rmsnorm(x) * w for row-major rows x cols bf16 x and out (cols a multiple of 8: TMA reads 16-byte rows)."""
    if cols % VEC:
        raise ValueError(f"this example reads rows with TMA: cols must be a multiple of {VEC}, found {cols}")
    device = skc.current_device()
    grid = TileScheduler.grid(rows, cols, ROWS, cols, device.multiprocessors)
    rmsnorm[grid, 128 * (1 + consumers)](skc.TensorMap(x, box=(ROWS, 64)), w, out, rows, eps, cols, consumers)


def compile_arguments(kernel: str, target):
    """What `skc compile` compiles rmsnorm for: rows of 4096 (cols is a compile-time constant), two consumers."""
    if kernel == "rmsnorm":
        from skc import ir

        return {"x": ir.TensorMapType(ir.ScalarType("bf16"), (ROWS, 64), 128), "cols": 4096, "consumers": 2,
                "block": 384}
    return None


def bf16_round(x: np.ndarray) -> np.ndarray:
    """The float32 values x takes once rounded to bf16."""
    from skc.runtime.dtypes import bf16_bits_to_float32, float32_to_bf16_bits

    return bf16_bits_to_float32(float32_to_bf16_bits(x.astype(np.float32)))


def reference(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    x = x.astype(np.float64)
    return x / np.sqrt((x * x).mean(axis=1, keepdims=True) + eps) * w


def main(rows=None, cols=None, consumers=None) -> str:
    small = skc.current_device().is_interpreter
    rows, cols = rows or (16384 if not small else 37), cols or (4096 if not small else 1000)
    consumers = consumers or (2 if not small else 2)
    rng = np.random.default_rng(0)
    x_host = bf16_round(rng.standard_normal((rows, cols), dtype=np.float32) * 3)
    w_host = bf16_round(rng.standard_normal(cols, dtype=np.float32))
    x, w = skc.to_device(x_host, dtype=skc.bf16), skc.to_device(w_host, dtype=skc.bf16)
    out = skc.empty((rows, cols), skc.bf16).fill_bytes(0xFF)   # NaN until written
    launch(x, w, out, rows, cols, consumers=consumers)
    error = skc.testing.relative_error(out.numpy(), reference(x_host, w_host, 1e-6))
    if not error <= 1e-2:
        raise AssertionError(f"rmsnorm: relative error {error:.3g} (expected <= 1e-2)")
    return f"{rows}x{cols} bf16, {consumers} consumer warpgroup(s): relative error {error:.2g}"


if __name__ == "__main__":
    print(main())
