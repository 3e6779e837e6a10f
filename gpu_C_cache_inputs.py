"""GPU check of session 56 task C (cache keys): kernels launched on the GPU with inputs the keys used to confuse.
Prints one line per case and exits non-zero on any failure. Run from the clone's root: python gpu_C_cache_inputs.py"""
import sys
import tempfile

import ml_dtypes
import numpy as np
import torch

import skc

failures = 0


def check(name, ok, detail=""):
    global failures
    failures += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {name} {detail}")


def by_dtype_name(out: skc.Ptr[skc.f32], DT: skc.constexpr):
    if DT.name == "float8_e4m3fn":
        out[0] = 1.0
    else:
        out[0] = 2.0


def tf32_kernel(out: skc.Ptr[skc.f32]):
    out[0] = 1.0 if torch.backends.cuda.matmul.allow_tf32 else 2.0


def sm_kernel(out: skc.Ptr[skc.f32]):
    out[0] = float(skc.current_device().multiprocessors)


def launch(kernel, *constants):
    out = torch.zeros(1, dtype=torch.float32, device="cuda")
    kernel[1, 32](out, *constants)
    torch.cuda.synchronize()
    return out.item()


skc.set_cache_dir(tempfile.mkdtemp(prefix="skc-gpu-C-"))
device = skc.current_device()
check("device is a CUDA GPU", device.kind == "cuda", str(device))

# 1. ml_dtypes' one-byte types, in one process (memory) and through fresh kernels (disk)
kernel = skc.kernel(block=32)(by_dtype_name)
for name, expected in [("float8_e4m3fn", 1.0), ("float8_e4m3fnuz", 2.0), ("int4", 2.0), ("float8_e4m3fn", 1.0)]:
    got = launch(kernel, np.dtype(getattr(ml_dtypes, name)))
    check(f"memory: DT={name}", got == expected, f"got {got}, expected {expected}")
for name, expected in [("float8_e4m3fn", 1.0), ("float8_e4m3fnuz", 2.0), ("float8_e5m2fnuz", 2.0)]:
    got = launch(skc.kernel(block=32)(by_dtype_name), np.dtype(getattr(ml_dtypes, name)))
    check(f"disk: DT={name} (a new Kernel)", got == expected, f"got {got}, expected {expected}")

# 2. torch's allow_tf32 read at compile time, through fresh kernels (the disk cache is all they share)
saved = torch.backends.cuda.matmul.allow_tf32
try:
    for flag in (True, False, True):
        torch.backends.cuda.matmul.allow_tf32 = flag
        got = launch(skc.kernel(block=32)(tf32_kernel))
        check(f"allow_tf32={flag} (a new Kernel)", got == (1.0 if flag else 2.0), f"got {got}")
finally:
    torch.backends.cuda.matmul.allow_tf32 = saved

# 3. the current device's SM count read at compile time: this GPU's, and kept off disk
kernel = skc.kernel(block=32)(sm_kernel)
got = launch(kernel)
check("SM count read at compile time", got == float(device.multiprocessors), f"got {got}, device {device.multiprocessors}")
compiled = kernel.compile()
check("SM count kernel not stored on disk", bool(compiled.metadata.get("uncached_reads")),
      str(compiled.metadata.get("uncached_reads"))[:120])

print("failures:", failures)
sys.exit(1 if failures else 0)
