"""RMSNorm of a rows x cols bf16 matrix, out = x / sqrt(mean(x²) + eps) · w, from skc's blocks though it is no GEMM:
a producer warpgroup's TmaLoader streams 8-row blocks of x, 512 columns a stage, into an
InputTilePipeline; the consumer warpgroups (WarpRoles) take each row block as one run of stages
(`consumer.acquire(steps)`), each warp its rows, read them from shared memory element-wise (`stage.x.load`: the
tile's swizzle is the layout's business) for the sum of squares and again for the scaled row, and store them with
16-byte stores; the next row block loads meanwhile. x is read from memory once and out written once. A persistent
TileScheduler walks the row blocks.
Run it: `skc run examples/rmsnorm.py` (small shapes in the interpreter when no Hopper GPU is present); compile it:
`skc compile examples/rmsnorm.py::rmsnorm --target sm_90a`.
"""
import numpy as np

import skc
from skc.blocks import InputTilePipeline, OperandLayout, TilePayload, TileScheduler, TmaLoader, WarpRoles

STEP = 512     # columns of a stage: eight 128-byte chunks of bf16
VEC = 8        # bf16 a 16-byte vector
LANES = 32


ROWS = 8       # rows of a row block (a tile's rows come in groups of 8): a warp's 2 or 1 of them


@skc.kernel
def rmsnorm(x: skc.TensorMap, w: skc.Ptr[skc.bf16], out: skc.Ptr[skc.bf16], rows: skc.i32, eps: skc.f32,
            cols: skc.constexpr, consumers: skc.constexpr = 1):
    """x is a tensor map of boxes ROWS x 64 (one 128-byte chunk); w holds cols values; out is row-major.
    consumers: 1 or 2 warpgroups, each reading every stage (its warps' rows of each block)."""
    if consumers not in (1, 2):
        raise skc.frontend.current().error(f"rmsnorm runs 1 or 2 consumer warpgroups, not {consumers}",
                                           hint="a warp's rows of a block: 2 with one consumer, 1 with two")
    steps = skc.cdiv(cols, STEP)   # stages a row block
    payload = TilePayload(x=OperandLayout(ROWS, STEP))
    load = TmaLoader(payload, x=x)
    # the consumers hold a row block while the producer loads the next one: as many stages as fit, at least a block
    fitting = (skc.current_target().max_shared_bytes - 2048) // payload.stage_bytes
    if steps > fitting:
        raise skc.frontend.current().error(f"a row block of {ROWS} x {cols} bf16 takes {steps} stages of "
                                           f"{payload.stage_bytes} bytes; shared memory holds {fitting}",
                                           hint=f"rows of at most {fitting * STEP} columns")
    with InputTilePipeline(payload, max(steps, min(2 * steps, fitting)), load, consumers=consumers) as pipe:
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
            with pipe.consumer() as consumer:
                for block in blocks:
                    with consumer.acquire(steps) as run:
                        normalize(run, roles.consumer_index(), block.row0, w, out, rows, eps, cols, steps, consumers)


@skc.func
def normalize(run, consumer, row0, w, out, rows, eps, cols, steps, consumers):
    """A consumer warpgroup's rows of a row block (a run of stages): each warp normalizes its rows, a lane VEC
    columns at a time: the row's sum of squares, then the row scaled (each pass reads the row from shared memory)."""
    lane, warp = skc.lane_id(), consumer * 4 + skc.warp_id() % 4
    per_warp = ROWS // (4 * consumers)
    for r in skc.static_range(per_warp):
        row = warp * per_warp + r
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
    rmsnorm[grid, 128 * (1 + consumers)](skc.TensorMap(x, box=(ROWS, 64)), w, out, rows, eps, cols,
                                         consumers)


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
    consumers = consumers or 2
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
