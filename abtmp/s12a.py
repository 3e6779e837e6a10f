"""A/B of block-scaled fp8 configs: back-to-back launches timed with events, configs alternated over rounds."""
import sys, statistics, time
sys.path.insert(0, "benchmarks")
import torch, skc
from fp8_gemm import operands, block_scales, cublas_block, VARIANTS
from skc.blocks.fp8 import Fp8MatmulConfig as C

def timeit(fn, reps):
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(reps):
        fn()
    e.record(); e.synchronize()
    return s.elapsed_time(e) / reps

shapes = [tuple(map(int, s.split("x"))) for s in sys.argv[1].split(",")]
names = sys.argv[2].split(",")
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 8
for M, N, K in shapes:
    a, b = operands(M, N, K); sa, sb = block_scales(M, N, K)
    out = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
    fns = {}
    for n in names:
        if n == "cublas":
            fns[n] = cublas_block(a, b, sa, sb)[0]
        else:
            cfg = C.for_fp8_problem(M, N, K, block_scaled=True, **({} if n == "default" else VARIANTS[n]))
            fns[n] = (lambda cfg=cfg: skc.blocks.matmul(a, b, out, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16, config=cfg))
    flops = 2 * M * N * K
    reps = max(10, int(0.15e-3 * 1.1e15 / flops * 1000 / 1000 * 1000))  # ~150 ms per sample
    reps = max(10, int(150 / (flops / 1.1e15 * 1e3)))
    for f in fns.values(): f(); timeit(f, 5)
    res = {n: [] for n in fns}
    for r in range(rounds):
        order = list(fns) if r % 2 == 0 else list(reversed(fns))
        for n in order:
            time.sleep(0.1)
            res[n].append(flops / timeit(fns[n], reps) / 1e9)
    base = statistics.median(res[names[0]])
    print(f"{M}x{N}x{K} reps={reps}")
    for n, v in res.items():
        med = statistics.median(v)
        print(f"  {n:32s} median {med:7.0f}  min {min(v):7.0f} max {max(v):7.0f}  vs {names[0]}: {med/base:.3f}")
