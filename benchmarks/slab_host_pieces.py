"""Where conv2d's slab path spends its host time (sixty-first session): the whole call, the copy of w onto the kept
filters' diagonals, the convolution over the kept filters, torch's own grouped conv, copy and empty beside them;
host µs a call (200 calls, then the synchronize) and events µs a call (30 back to back); then a profile of the
whole call. Slabs at any work (conv.SLAB_WORK = 0).
Run from the repo root on a GPU: PYTHONPATH=$PWD python benchmarks/slab_host_pieces.py"""
import time
import torch
import torch.nn.functional as F
from skc.blocks import conv, conv2d

conv.SLAB_WORK = 0
torch.backends.cudnn.benchmark = True


def host_us(fn, n=200):
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    h = (time.perf_counter() - t) / n * 1e6
    torch.cuda.synchronize()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    for _ in range(30):
        fn()
    e1.record(); e1.synchronize()
    return f"host {h:6.1f} us events {e0.elapsed_time(e1) / 30 * 1e3:6.1f} us"


for (N, C, H, K, groups) in [(1, 64, 56, 64, 8), (32, 128, 56, 128, 32)]:
    x = torch.randn(N, C, H, H, device="cuda", dtype=torch.bfloat16).to(memory_format=torch.channels_last)
    w = torch.randn(K, C // groups, 3, 3, device="cuda", dtype=torch.bfloat16).to(memory_format=torch.channels_last)
    print(f"N{N} C{C} H{H} K{K} g{groups}")
    conv._PLANS.clear()
    call = lambda: conv2d(x, w, None, 1, 1, 1, groups=groups)
    print("  whole slab call   ", host_us(call))
    plan = [g for c, g in conv._PLANS.values() if isinstance(g, conv._BlockDiagonal)][0]
    kept = next(iter(plan.kept.values()))
    print("  fill (diag copy)  ", host_us(lambda: kept.fill(w)))
    filters = kept.filters
    inner = lambda: conv2d(x, filters, None, 1, 1, 1, groups=C // 64)
    print("  inner conv2d      ", host_us(inner))
    given = conv2d(x, w, None, 1, 1, 1, groups=groups)
    print("  inner, out given  ", host_us(lambda: conv2d(x, filters, None, 1, 1, 1, out=given, groups=C // 64)))
    with torch.no_grad():
        print("  inner, no_grad    ", host_us(inner))
    print("  whole, out given  ", host_us(lambda: conv2d(x, w, None, 1, 1, 1, out=given, groups=groups)))
    wd = torch.randn(K, 64, 3, 3, device="cuda", dtype=torch.bfloat16).to(memory_format=torch.channels_last)
    print("  inner w/ fixed w  ", host_us(lambda: conv2d(x, wd, None, 1, 1, 1, groups=C // 64)))
    print("  stream lookup     ", host_us(lambda: conv.keeping_stream(x, None)))
    print("  F.conv2d grouped  ", host_us(lambda: F.conv2d(x, w, None, 1, 1, 1, groups)))
    y = torch.empty_like(x)
    print("  torch copy_       ", host_us(lambda: y.copy_(x)))
    print("  empty             ", host_us(lambda: torch.empty(N, K, H, H, device="cuda", dtype=torch.bfloat16)))
    import cProfile, pstats, io
    pr = cProfile.Profile(); pr.enable()
    for _ in range(100):
        call()
    pr.disable(); s = io.StringIO(); pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(25); print(s.getvalue()[:5000])
