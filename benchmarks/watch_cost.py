"""What a launch's watch of the values a kernel read at compile time costs on the host (sixty-third session): the
native call of `k[1, 1](out)` with its launch replaced by a function that does nothing, for kernels reading a float,
a list, a dict, a small and a large numpy array, a dataclass, an enum, a module read whole, and a small and a large
torch tensor (sixty-fourth session). No GPU: the kernels
compile for the interpreter, whose launch is the one replaced. Run it once with this tree and once with an older
tree first on PYTHONPATH (from a folder other than the project's) to compare. ns a launch, best of five rounds of
100,000."""
import importlib
import os
import sys
import tempfile
import timeit

import numpy as np

KERNELS = '''import dataclasses
import enum

import numpy as np
import torch
import skc

import watch_cost_config

SCALE = 2.0
SMALL = [1.0, 2.0, 3.0, 4.0]
TABLE = {"a": 1.0, "b": 2.0, "c": 3.0}
SMALL_ARRAY = np.arange(256, dtype=np.float32)
LARGE_ARRAY = np.arange(1 << 16, dtype=np.float32)
SMALL_TENSOR = torch.arange(256, dtype=torch.float32)
LARGE_TENSOR = torch.arange(1 << 16, dtype=torch.float32)


@dataclasses.dataclass
class Config:
    a: float = 2.0
    b: float = 1.0
    c: int = 1


CONFIG = Config()


class Act(enum.Enum):
    RELU = 1
    GELU = 2


@skc.kernel(block=1)
def a_float(x: skc.Ptr[skc.f32]):
    x[0] = SCALE


@skc.kernel(block=1)
def a_list_of_4(x: skc.Ptr[skc.f32]):
    x[0] = SMALL[1]


@skc.kernel(block=1)
def a_dict_of_3(x: skc.Ptr[skc.f32]):
    x[0] = TABLE["b"]


@skc.kernel(block=1)
def an_array_of_1_kib(x: skc.Ptr[skc.f32]):
    x[0] = float(SMALL_ARRAY[2])


@skc.kernel(block=1)
def an_array_of_256_kib(x: skc.Ptr[skc.f32]):
    x[0] = float(LARGE_ARRAY.shape[0])


@skc.kernel(block=1)
def a_dataclass(x: skc.Ptr[skc.f32]):
    x[0] = CONFIG.a


@skc.kernel(block=1)
def an_enum(x: skc.Ptr[skc.f32]):
    x[0] = 2.0 if Act.RELU.value == 1 else 1.0


@skc.kernel(block=1)
def a_module_whole(x: skc.Ptr[skc.f32]):
    x[0] = vars(watch_cost_config)["SCALE"]


@skc.kernel(block=1)
def a_tensor_of_1_kib(x: skc.Ptr[skc.f32]):
    x[0] = float(SMALL_TENSOR[2])


@skc.kernel(block=1)
def a_tensor_of_256_kib(x: skc.Ptr[skc.f32]):
    x[0] = float(LARGE_TENSOR.shape[0])
'''


def main():
    folder = tempfile.mkdtemp()
    with open(os.path.join(folder, "watch_cost_kernels.py"), "w") as f:
        f.write(KERNELS)
    with open(os.path.join(folder, "watch_cost_config.py"), "w") as f:
        f.write("SCALE = 2.0\nOTHER = 1\n")
    sys.path.insert(0, folder)
    import skc

    kernels = importlib.import_module("watch_cost_kernels")
    print(f"skc from {os.path.dirname(skc.__file__)}")
    out = np.zeros(1, np.float32)

    def nothing(args, grid, stream):
        pass
    for name in [n for n in vars(kernels) if isinstance(getattr(kernels, n), skc.jit.Kernel)]:
        launch = getattr(kernels, name)[1, 1]
        launch(out)
        if launch._fast is None:
            print(f"{name:22s} no native call")
            continue
        launch._fast = (nothing,) + launch._fast[1:]
        best = min(timeit.repeat(lambda: launch(out), number=100_000, repeat=5)) / 100_000
        print(f"{name:22s} {len(getattr(kernels, name)._watch):3d} watched {best * 1e9:7.0f} ns")


if __name__ == "__main__":
    main()
