"""Pipeline misuses that compile (no compile-time check can see them) and hang at run time: the hang guard's
subjects. `python hang_kernels.py NAME [interpreter]` runs one in debug mode and prints the error it raises
(tests/gpu/test_hang_guard.py runs it in a subprocess with a timeout, so a real hang fails instead of hanging)."""
import sys

import numpy as np

import skc
from skc.blocks import InputTilePipeline, MatmulConfig, TmaLoader, WarpRoles, Wgmma

STAGES = 2
GEMM = MatmulConfig(stages=2)


@skc.kernel(block=64, debug=True)
def short_producer(out: skc.Ptr[skc.i32], n: skc.i32):
    """Warp 0 produces n - 1 items into a ring of 2 stages; warp 1 consumes n: it waits forever on the last."""
    full = skc.shared((STAGES,), skc.u64, align=8)
    empty = skc.shared((STAGES,), skc.u64, align=8)
    data = skc.shared((STAGES,), skc.i32)
    t = skc.thread_id(0)
    if t == 0:
        for s in skc.static_range(STAGES):
            skc.hopper.mbarrier_init(full + s, 1)
            skc.hopper.mbarrier_init(empty + s, 32)
        skc.hopper.fence_mbarrier_init()
    skc.barrier()
    if t < 32:
        if t == 0:
            for k in range(n - 1):                                    # the misuse: one item fewer
                skc.hopper.mbarrier_wait(empty + k % STAGES, ((k // STAGES) & 1) ^ 1)
                data[k % STAGES] = k * 10
                skc.hopper.mbarrier_arrive(full + k % STAGES)
    else:
        for k in range(n):
            skc.hopper.mbarrier_wait(full + k % STAGES, (k // STAGES) & 1)   # HANG: consumer
            out[k * 32 + t - 32] = data[k % STAGES]
            skc.hopper.mbarrier_arrive(empty + k % STAGES)


@skc.kernel(block=64, debug=True)
def wrong_expect_tx(tile: skc.TensorMap, out: skc.Ptr[skc.f32], extra: skc.i32):
    """One thread expects 8x32 f32 (1024 bytes) + `extra` bytes of a TMA copy that brings 1024: with extra > 0
    the phase never completes."""
    full = skc.shared((1,), skc.u64, align=8)
    stage = skc.shared((8 * 32,), skc.f32, align=1024)
    t = skc.thread_id(0)
    if t == 0:
        skc.hopper.mbarrier_init(full, 1)
        skc.hopper.fence_mbarrier_init()
    skc.barrier()
    if t == 0:
        skc.hopper.mbarrier_arrive_tx(full, 8 * 32 * 4 + extra)        # the misuse: a wrong byte count
        skc.hopper.tma_load(stage, full, tile, (0, 0))
    skc.hopper.mbarrier_wait(full, 0)                                   # HANG: every thread
    for i in range(t, 8 * 32, 64):
        out[i] = stage[i]


@skc.kernel(debug=True)
def gemm_short_producer(a: skc.TensorMap, b: skc.TensorMap, K: skc.i32, cfg: skc.constexpr):
    """The structured pipeline (TMA loader, wgmma consumers) with a producer loop one k-tile short: the consumers
    wait in `consumer.acquire()` for a stage that is never filled."""
    payload = cfg.payload()
    load = TmaLoader(payload, a=a, b=b)
    with InputTilePipeline(payload, cfg.stages, load, consumers=cfg.consumers) as pipe:
        roles = WarpRoles(cfg.consumers)
        k_tiles = skc.cdiv(K, cfg.tile_k)
        if roles.is_producer():
            if load.is_issuing():
                with pipe.producer() as producer:
                    for k in range(k_tiles - 1):                        # the misuse: one k-tile fewer
                        with producer.acquire() as stage:
                            load(stage, k, a=0, b=0)
        else:
            mma = Wgmma(cfg.tile_n, cfg.tile_k, skc.bf16, warpgroup=roles.consumer_index())
            acc = mma.zeros()
            with pipe.consumer(mma) as consumer:
                for k in range(k_tiles):
                    with consumer.acquire() as stage:                   # HANG: consumers
                        mma(acc, stage.a, stage.b)


@skc.kernel(block=32, debug=True)
def faults_after_wait(out: skc.Ptr[skc.i32], far: skc.i32):
    """Not a hang: a wait that completes, then stores far past the end of `out` (an illegal address): the debug
    launch fails with no record, and the DeviceError names the kernel's guarded waits."""
    full = skc.shared((1,), skc.u64, align=8)
    t = skc.thread_id(0)
    if t == 0:
        skc.hopper.mbarrier_init(full, 32)
        skc.hopper.fence_mbarrier_init()
    skc.barrier()
    skc.hopper.mbarrier_arrive(full)
    skc.hopper.mbarrier_wait(full, 0)                                   # SITE: completes
    out[t * far] = t                                                    # the fault: gigabytes past the end


def _run_gemm(device: str):
    K = 4 * GEMM.tile_k
    boxes = GEMM.boxes()
    on = "interpreter" if device == "interpreter" else None
    a = skc.to_device(np.zeros((GEMM.tile_m, K), np.float32), dtype=skc.bf16, device=on)
    b = skc.to_device(np.zeros((K, GEMM.tile_n), np.float32), dtype=skc.bf16, device=on)
    kernel = gemm_short_producer.interpret if on else gemm_short_producer
    kernel[1, GEMM.threads](skc.TensorMap(a, boxes["a"]), skc.TensorMap(b, boxes["b"]), K, GEMM)
    return np.zeros(8)


def run(name: str, device: str = "gpu"):
    if name == "gemm_short_producer":
        return _run_gemm(device)
    if name == "faults_after_wait":
        target = skc.to_device(np.zeros(32, np.int32))
        faults_after_wait[1, 32](target, 1 << 26)
        return target.numpy()
    if name == "short_producer":
        out = np.zeros(4 * 32, np.int32)
        kernel = short_producer.interpret if device == "interpreter" else short_producer
        if device == "interpreter":
            kernel[1, 64](out, 4)
        else:
            target = skc.to_device(out)
            kernel[1, 64](target, 4)
            out = target.numpy()
        return out
    tensor = np.arange(8 * 32, dtype=np.float32).reshape(8, 32)
    extra = int(name.rsplit("_", 1)[1]) if name.startswith("expect_tx_") else 16
    out = np.zeros(8 * 32, np.float32)
    if device == "interpreter":
        wrong_expect_tx.interpret[1, 64](skc.TensorMap(tensor, box=(8, 32)), out, extra)
        return out
    source = skc.to_device(tensor)
    target = skc.to_device(out)
    wrong_expect_tx[1, 64](skc.TensorMap(source, box=(8, 32)), target, extra)
    return target.numpy()


KERNELS = {"short_producer": short_producer, "expect_tx_16": wrong_expect_tx, "expect_tx_0": wrong_expect_tx,
           "gemm_short_producer": gemm_short_producer, "faults_after_wait": faults_after_wait}


if __name__ == "__main__":
    try:
        result = run(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "gpu")
        print("finished:", result[:8])
    except skc.SkcError as error:
        print(f"{type(error).__name__}: {error}")
        sys.exit(3)
