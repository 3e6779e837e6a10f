"""GPU check of examples/gated_gemm.py and examples/rmsnorm.py (session 56, helper D) against torch on one Hopper GPU.

Each line: the case, the max error against a float64 torch reference (outputs poisoned with NaN first), and the time
(median of CUDA-event-timed launches, tensor maps made once) as TFLOP/s (gated GEMM) or GB/s (RMSNorm: x read, out
written, w read once) next to torch's equivalent on the same tensors:
  gated_gemm: F.gelu(torch.addmm(bias, a, b), approximate="tanh") * gate (three kernels), and a @ b alone (cuBLAS);
  rmsnorm:    F.rms_norm(x, (cols,), w, eps), and torch.compile of the same (if it compiles); 1 and 2 consumer
              warpgroups (rows of 8192 spill 176 bytes in ptxas: a data point, not a target).
Exits 1 if any case is wrong or fails. Run from the repo root: python benchmarks/user_examples.py"""
import os
import statistics
import sys
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "examples")]

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import skc  # noqa: E402
import gated_gemm  # noqa: E402
import rmsnorm  # noqa: E402
from skc.blocks import TileScheduler  # noqa: E402

failures = []


def timed(fn, iterations=30, warmup=5):
    """Median milliseconds of fn() over `iterations` CUDA-event-timed calls."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iterations):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def check_gated(M, N, K):
    torch.manual_seed(0)
    a, b = (torch.randn(s, device="cuda", dtype=torch.bfloat16) for s in ((M, K), (K, N)))
    gate, bias = torch.randn(M, N, device="cuda", dtype=torch.bfloat16), torch.randn(N, device="cuda",
                                                                                     dtype=torch.bfloat16)
    out = torch.full((M, N), float("nan"), device="cuda", dtype=torch.bfloat16)
    cfg = gated_gemm.config(M, N, K)
    device = skc.current_device()
    grid = TileScheduler.grid(M, N, cfg.tile_m, cfg.tile_n, device.cluster_blocks(cfg.cluster), cfg.cluster_m,
                              cluster_n=cfg.cluster_n)
    maps = gated_gemm.tensor_maps(a, b, out, cfg)

    def run():
        gated_gemm.gated_gemm[grid, cfg.threads](*maps, gate, bias, M, N, K, cfg)

    run()
    torch.cuda.synchronize()
    v = a.double() @ b.double() + bias.double()
    expected = F.gelu(v, approximate="tanh") * gate.double()
    scale = expected.abs().max().item()
    error = (out.double() - expected).abs().max().item()
    torch_out = F.gelu(torch.addmm(bias, a, b), approximate="tanh") * gate
    torch_error = (torch_out.double() - expected).abs().max().item()
    ok = not out.isnan().any().item() and error <= max(2 * torch_error, 1e-2 * scale)
    flops = 2 * M * N * K
    t_skc = timed(run)
    t_torch = timed(lambda: F.gelu(torch.addmm(bias, a, b), approximate="tanh") * gate)
    t_mm = timed(lambda: a @ b)
    print(f"gated_gemm {M}x{N}x{K} tile {cfg.tile_m}x{cfg.tile_n} cluster {cfg.cluster_m}x{cfg.cluster_n}: "
          f"max err {error:.3g} (torch's {torch_error:.3g}, |ref| max {scale:.3g}) "
          f"skc {flops / t_skc / 1e9:.0f} TFLOP/s ({t_skc * 1e3:.1f} us), torch gelu(addmm)*gate "
          f"{flops / t_torch / 1e9:.0f} ({t_torch * 1e3:.1f} us), torch a@b alone {flops / t_mm / 1e9:.0f} "
          f"-> {'OK' if ok else 'WRONG'}", flush=True)
    if not ok:
        failures.append(f"gated_gemm {M}x{N}x{K}")


def check_rmsnorm(rows, cols, consumers, compiled_torch):
    torch.manual_seed(0)
    eps = 1e-6
    x = torch.randn(rows, cols, device="cuda", dtype=torch.bfloat16) * 3
    w = torch.randn(cols, device="cuda", dtype=torch.bfloat16)
    out = torch.full((rows, cols), float("nan"), device="cuda", dtype=torch.bfloat16)
    device = skc.current_device()
    grid = TileScheduler.grid(rows, cols, rmsnorm.ROWS, cols, device.multiprocessors)
    tensor_map = skc.TensorMap(x, box=(rmsnorm.ROWS, 64))

    def run():
        rmsnorm.rmsnorm[grid, 128 * (1 + consumers)](tensor_map, w, out, rows, eps, cols, consumers)

    run()
    torch.cuda.synchronize()
    xd = x.double()
    expected = xd * torch.rsqrt((xd * xd).mean(1, keepdim=True) + eps) * w.double()
    error = (out.double() - expected).abs().max().item()
    torch_out = F.rms_norm(x, (cols,), w, eps)
    torch_error = (torch_out.double() - expected).abs().max().item()
    ok = not out.isnan().any().item() and error <= max(2 * torch_error, 1e-2 * expected.abs().max().item())
    moved = 2 * rows * cols * 2 + cols * 2
    t_skc = timed(run)
    t_torch = timed(lambda: F.rms_norm(x, (cols,), w, eps))
    compiled = ""
    if compiled_torch is not None:
        try:
            t_compiled = timed(lambda: compiled_torch(x, w))
            compiled = f", torch.compile {moved / t_compiled / 1e6:.0f}"
        except Exception as error_:   # (torch.compile is optional here)
            compiled = f", torch.compile failed: {type(error_).__name__}"
    print(f"rmsnorm {rows}x{cols} consumers {consumers}: max err {error:.3g} (torch's {torch_error:.3g}) "
          f"skc {moved / t_skc / 1e6:.0f} GB/s ({t_skc * 1e3:.1f} us), torch F.rms_norm {moved / t_torch / 1e6:.0f}"
          f"{compiled} -> {'OK' if ok else 'WRONG'}", flush=True)
    if not ok:
        failures.append(f"rmsnorm {rows}x{cols} consumers {consumers}")


def main():
    print(skc.current_device(), torch.cuda.get_device_name(), flush=True)
    for shape in ((136, 200, 96), (4096, 4096, 4096), (8192, 8192, 8192), (2048, 11008, 4096), (1000, 3000, 1024)):
        try:
            check_gated(*shape)
        except Exception:
            traceback.print_exc()
            failures.append(f"gated_gemm {shape}: raised")
    try:
        compiled_torch = torch.compile(lambda x, w: F.rms_norm(x, (x.shape[1],), w, 1e-6))
    except Exception:
        compiled_torch = None
    for rows, cols in ((37, 1000), (1024, 4096), (16384, 4096), (65536, 4096), (8192, 8192)):
        for consumers in (1, 2):
            try:
                check_rmsnorm(rows, cols, consumers, compiled_torch)
            except Exception:
                traceback.print_exc()
                failures.append(f"rmsnorm {rows}x{cols} consumers {consumers}: raised")
    print("FAILED: " + "; ".join(failures) if failures else "all cases OK", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
