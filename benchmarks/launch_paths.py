"""Per-launch host time of the ways to call cuLaunchKernel from Python (an empty 4-argument kernel):
cuda.bindings with a ready argument array, ctypes into libcuda, skc's native entry (runtime.native), and skc's whole
launch path (with and without
stream=, on a side stream); and host time per skc.blocks.matmul call against torch.matmul. Needs a GPU."""
import ctypes
import sys

import torch

sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.dirname(__file__)))
import skc  # noqa: E402
from run import per_launch  # noqa: E402  (benchmarks/run.py: host time per call, median of batches)
from skc.runtime import cuda  # noqa: E402


@skc.kernel(block=32)
def empty(a: skc.Ptr[skc.f32], b: skc.Ptr[skc.f32], c: skc.Ptr[skc.f32], n: skc.i32):
    if n < 0:
        a[0] = 1.0


x = torch.zeros(1024, device="cuda")
launch = empty[1, 32]
launch(x, x, x, 1024)
torch.cuda.synchronize()
compiled = empty._compiled[next(iter(empty._compiled))]
module = cuda.Module(compiled.stages["ptx"].encode(), "empty", 0)
slots = [ctypes.c_uint64(x.data_ptr()) for _ in range(3)] + [ctypes.c_int32(1024)]
array = (ctypes.c_void_p * 4)(*[ctypes.addressof(s) for s in slots])
address = ctypes.addressof(array)
bindings = cuda.driver().cuLaunchKernel
function = module.function
results = {}
results["cuda.bindings, ready array"] = per_launch(lambda: bindings(function, 1, 1, 1, 32, 1, 1, 0, 0, address, 0))
libcuda = ctypes.CDLL("libcuda.so.1")
raw = libcuda.cuLaunchKernel
raw.restype = ctypes.c_int
raw.argtypes = [ctypes.c_void_p] + [ctypes.c_uint] * 7 + [ctypes.c_void_p] * 3
handle = int(function)
results["ctypes libcuda, argtypes"] = per_launch(lambda: raw(handle, 1, 1, 1, 32, 1, 1, 0, None, address, None))
results["ctypes libcuda, argtypes, stream from torch"] = per_launch(
    lambda: raw(handle, 1, 1, 1, 32, 1, 1, 0, torch._C._cuda_getCurrentRawStream(0), address, None))
native_launch, handle, _ = cuda.launch_entry()   # skc's entry: a JIT-compiled builtin around libcuda's cuLaunchKernel
native_function = handle(function)
results["skc native entry, ready array"] = per_launch(
    lambda: native_launch(native_function, 1, 1, 1, 32, 1, 1, 0, 0, address))
generated = launch._chosen[2]   # skc's per-kernel launcher (the one the launch chose): native code, the Python one behind it
args = (x, x, x, 1024)
python_launch = launch.ready(x, x, x, 1024).launcher.python_launch
results["skc Python launcher alone, stream=None"] = per_launch(lambda: python_launch(args, (1, 1, 1), None))
results["skc launcher, stream=0"] = per_launch(lambda: generated(args, (1, 1, 1), 0))
results["skc launcher, stream=None"] = per_launch(lambda: generated(args, (1, 1, 1), None))
results["torch: 3x (dtype, get_device, data_ptr)"] = per_launch(
    lambda: (x.dtype, x.get_device(), x.data_ptr(), x.dtype, x.get_device(), x.data_ptr(), x.dtype, x.get_device(),
             x.data_ptr()))
results["torch._C._cuda_getCurrentRawStream(0)"] = per_launch(lambda: torch._C._cuda_getCurrentRawStream(0))
results["skc.current_device()"] = per_launch(skc.runtime.devices.current_device)
results["skc k[grid, block](...)"] = per_launch(lambda: launch(x, x, x, 1024))
results["skc k[grid, block](..., stream=0)"] = per_launch(lambda: launch(x, x, x, 1024, stream=0))
side = torch.cuda.Stream()
with torch.cuda.stream(side):
    results["skc k[grid, block](...) on a side stream"] = per_launch(lambda: launch(x, x, x, 1024))
results["torch.add"] = per_launch(lambda: torch.add(x, x, out=x))
a, b = (torch.randn(256, 256, device="cuda", dtype=torch.bfloat16) for _ in range(2))
c = torch.empty(256, 256, device="cuda", dtype=torch.bfloat16)
skc.blocks.matmul(a, b, out=c)
results["skc.blocks.matmul(a, b, out=c) 256^3"] = per_launch(lambda: skc.blocks.matmul(a, b, out=c))
results["torch.matmul(a, b, out=c) 256^3"] = per_launch(lambda: torch.matmul(a, b, out=c))
results["skc.blocks.matmul(a, b) 256^3"] = per_launch(lambda: skc.blocks.matmul(a, b))
results["torch.matmul(a, b) 256^3"] = per_launch(lambda: torch.matmul(a, b))
for name, us in results.items():
    print(f"{name:44s} {us:6.2f} us")
print(f"skc launch / bare cuLaunchKernel: "
      f"{results['skc k[grid, block](...)'] / results['cuda.bindings, ready array']:.2f} (target <= 1.3)")
print(f"skc matmul / torch.matmul host time: "
      f"{results['skc.blocks.matmul(a, b) 256^3'] / results['torch.matmul(a, b) 256^3']:.2f} (target <= 1.0)")
