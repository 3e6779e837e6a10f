"""The CPU interpreter of the tile IR: every thread of a block in numpy, barriers and warp ops
honoured, faults and deadlocks reported at the kernel's source line.

    from skc.runtime.interpreter import Memory, run
    mem = Memory()
    x = mem.map_array(np.arange(1024, dtype=np.float32), name="x")
    run(function, grid=(8, 1, 1), block=(128, 1, 1), args=[x, 1024], memory=mem)

A `tmap` parameter takes a TensorMapDescriptor: `map_tensor_map(skc.TensorMap(a, box=(64, 64)), mem, "a")`
maps the tensor map's host array into `mem` and describes it (passing the TensorMap itself does the same).
"""
from .launch import run
from .memory import Memory
from .tma import TensorMapDescriptor, map_tensor_map

__all__ = ["Memory", "TensorMapDescriptor", "map_tensor_map", "run"]
