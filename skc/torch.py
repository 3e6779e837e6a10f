"""skc kernels as PyTorch operators: `register_op` wraps a host function that launches skc kernels on
torch tensors into a `torch.library.custom_op` with a fake (meta) implementation, so that a model calling
it compiles under `torch.compile(fullgraph=True)` and records into CUDA graphs; `torch.ops.skc.matmul`
(and `torch.ops.skc.matmul_out`) is the ready one, over `skc.blocks.matmul`.

    import torch, skc.torch                      # importing this module registers torch.ops.skc.*
    y = torch.ops.skc.matmul(x, w, bias=b, activation="relu")

Not imported by `import skc`: torch is optional, and importing it takes seconds. An operator launches on
the tensors' own device (a CUDA tensor's GPU, or the CPU interpreter for CPU tensors) and on torch's
current stream there, reads and writes the tensors in place (no copies), and allocates its result with
torch (so CUDA-graph capture takes it from the graph's memory pool).
"""

import contextlib
import functools
import inspect
from typing import Callable, Optional, Sequence

try:
    import torch
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError("skc.torch needs PyTorch 2.4 or newer (torch.library.custom_op): pip install torch") from error

if not hasattr(torch.library, "custom_op"):  # pragma: no cover
    raise ImportError(f"skc.torch needs PyTorch 2.4 or newer (torch.library.custom_op); found {torch.__version__}")

from .runtime import devices

__all__ = ["register_op", "current_stream", "on_device_of", "skc_device"]


def register_op(name: str, fn: Callable, *, fake: Callable, mutates_args: Sequence[str] = ()):
    """Make `fn` the torch operator `torch.ops.<namespace>.<op>` (name "namespace::op") and return it.

    `fn` is ordinary host code that launches skc kernels on its tensor arguments; its parameters and
    result carry type annotations (torch.Tensor, Optional[torch.Tensor], int, float, bool, str, ...), from
    which torch builds the operator's schema. It should launch on `current_stream(x)` and allocate what
    it returns with torch. `fake(*args)` has the same signature and returns tensors of the result's shape,
    dtype and device without computing anything: torch.compile traces with it. An operator that writes
    into arguments names them in `mutates_args` and returns None."""
    op = torch.library.custom_op(name, fn, mutates_args=tuple(mutates_args))
    op.register_fake(fake)
    return op


def skc_device(tensor) -> devices.Device:
    """The skc device of a torch tensor: its GPU (CUDA, or HIP on a ROCm build of torch), or the CPU
    interpreter for a CPU tensor."""
    kind = tensor.device.type
    if kind == "cuda":
        return devices.Device("hip" if getattr(torch.version, "hip", None) else "cuda", tensor.device.index or 0)
    if kind == "cpu":
        return devices.Device("interpreter")
    raise TypeError(f"skc runs on CUDA, ROCm and CPU (interpreter) tensors, found one on {tensor.device}")


@contextlib.contextmanager
def on_device_of(tensor):
    """Launch skc kernels on `tensor`'s device inside the block (skc's own device selection is restored
    after it)."""
    wanted = skc_device(tensor)
    if devices.current_device() == wanted:
        yield wanted
        return
    with devices.using_device(wanted):
        yield wanted


def current_stream(tensor) -> Optional[int]:
    """The handle of torch's current stream on `tensor`'s GPU (what a launch's `stream=` takes), or None
    for a CPU tensor (the interpreter has no streams)."""
    if tensor.device.type != "cuda":
        return None
    return torch.cuda.current_stream(tensor.device).cuda_stream


# -- torch.ops.skc.matmul ---------------------------------------------------------------------------------
# skc.blocks is imported at the first matmul: it compiles nothing at import but pulls the whole GEMM composition
# (measured about 130 ms), which registering the op must not cost.
@functools.lru_cache(maxsize=None)
def _matmul_takes_stream() -> bool:
    """Whether skc.blocks.matmul has a `stream=` parameter (asked once: it gained one after this module)."""
    from .blocks import matmul

    return "stream" in inspect.signature(matmul).parameters


def _launch_matmul(a, b, out, bias, c, alpha, beta, activation):
    from .blocks import matmul

    options = dict(out=out, bias=bias, c=c, alpha=alpha, beta=beta, activation=activation)
    if _matmul_takes_stream():
        options["stream"] = current_stream(a)
    with on_device_of(a):
        matmul(a, b, **options)


def _check_operands(a, b, bias, c) -> tuple:
    """(M, N) of a valid problem; the messages match what skc.blocks.matmul says at launch."""
    torch._check(a.dim() == 2 and b.dim() == 2, lambda: f"skc::matmul multiplies matrices, found {a.dim()}-d "
                                                        f"and {b.dim()}-d tensors")
    torch._check(a.dtype in (torch.bfloat16, torch.float16),
                 lambda: f"skc::matmul multiplies bf16 or fp16 operands, found {a.dtype}")
    torch._check(b.dtype == a.dtype, lambda: f"a is {a.dtype} and b is {b.dtype}; skc::matmul needs one type")
    torch._check(a.shape[1] == b.shape[0], lambda: f"cannot multiply {tuple(a.shape)} by {tuple(b.shape)}: "
                                                   f"inner dimensions differ")
    M, N = a.shape[0], b.shape[1]
    if bias is not None:
        torch._check(tuple(bias.shape) == (N,), lambda: f"bias has shape {tuple(bias.shape)}, expected ({N},)")
    if c is not None:
        torch._check(tuple(c.shape) == (M, N), lambda: f"c has shape {tuple(c.shape)}, expected ({M}, {N})")
    return M, N


def _matmul(a: torch.Tensor, b: torch.Tensor, bias: Optional[torch.Tensor] = None, c: Optional[torch.Tensor] = None,
            alpha: Optional[float] = None, beta: Optional[float] = None,
            activation: Optional[str] = None) -> torch.Tensor:
    M, N = _check_operands(a, b, bias, c)
    out = torch.empty((M, N), dtype=a.dtype, device=a.device)
    _launch_matmul(a, b, out, bias, c, alpha, beta, activation)
    return out


def _matmul_fake(a, b, bias=None, c=None, alpha=None, beta=None, activation=None):
    M, N = _check_operands(a, b, bias, c)
    return a.new_empty((M, N))


def _matmul_out(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, bias: Optional[torch.Tensor] = None,
                c: Optional[torch.Tensor] = None, alpha: Optional[float] = None, beta: Optional[float] = None,
                activation: Optional[str] = None) -> None:
    M, N = _check_operands(a, b, bias, c)
    torch._check(tuple(out.shape) == (M, N) and out.dtype == a.dtype,
                 lambda: f"out is {tuple(out.shape)} {out.dtype}, expected ({M}, {N}) {a.dtype}")
    _launch_matmul(a, b, out, bias, c, alpha, beta, activation)


def _matmul_out_fake(a, b, out, bias=None, c=None, alpha=None, beta=None, activation=None):
    _check_operands(a, b, bias, c)


matmul = register_op("skc::matmul", _matmul, fake=_matmul_fake)
"""activation(alpha · a @ b + beta · c + bias) as a new tensor: `torch.ops.skc.matmul(a, b, bias=None,
c=None, alpha=None, beta=None, activation=None)` (activation: None, "relu", "gelu" or "silu")."""
matmul_out = register_op("skc::matmul_out", _matmul_out, fake=_matmul_out_fake, mutates_args=("out",))
"""The same into a given row-major `out`: `torch.ops.skc.matmul_out(a, b, out, ...)`."""
