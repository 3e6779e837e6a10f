"""skc kernels as PyTorch operators: `register_op` wraps a host function that launches skc kernels on
torch tensors into a `torch.library.custom_op` with a fake (meta) implementation, so that a model calling
it compiles under `torch.compile(fullgraph=True)` and records into CUDA graphs. The ready ones are the host-side
blocks: `torch.ops.skc.matmul` / `matmul_out` (over `skc.blocks.matmul`), `torch.ops.skc.scaled_matmul` (its fp8
GEMM, torch._scaled_mm's), `torch.ops.skc.conv2d` (over `skc.blocks.conv2d`), and `torch.ops.skc.attention` /
`attention_with_lse` (over `skc.blocks.attention`).

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
import numbers
from typing import Callable, Optional, Sequence, Tuple

try:
    import torch
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError("skc.torch needs PyTorch 2.4 or newer (torch.library.custom_op): pip install torch") from error

if not hasattr(torch.library, "custom_op"):  # pragma: no cover
    raise ImportError(f"skc.torch needs PyTorch 2.4 or newer (torch.library.custom_op); found {torch.__version__}")

from .diagnostics import LaunchError
from .runtime import devices

Number = torch.types.Number   # (a scalar argument: the schema's Scalar, which takes a traced numpy scalar)

__all__ = ["register_op", "OperatorRefusal", "current_stream", "on_device_of", "skc_device"]


class OperatorRefusal(LaunchError, RuntimeError):
    """A call that a torch.ops.skc operator refuses (a bad argument, or a derivative it cannot give): skc's
    LaunchError, which skc.blocks' host calls raise for the same argument (a call that autograd follows reaches the
    operator's checks first, and raised a bare RuntimeError where the call under torch.no_grad raised a
    LaunchError), and the RuntimeError torch's own operators raise (torch._check's)."""


def _check(condition, message) -> None:
    """torch._check, raising an OperatorRefusal (a symbolic condition is handled as torch._check does)."""
    torch._check_with(OperatorRefusal, condition, message)


def register_op(name: str, fn: Callable, *, fake: Callable, mutates_args: Sequence[str] = (),
                schema: Optional[str] = None, exact_strides: bool = False):
    """Make `fn` the torch operator `torch.ops.<namespace>.<op>` (name "namespace::op") and return it.

    `fn` is ordinary host code that launches skc kernels on its tensor arguments; its parameters and
    result carry type annotations (torch.Tensor, Optional[torch.Tensor], int, float, bool, str, ...), from
    which torch builds the operator's schema. It should launch on `current_stream(x)` and allocate what
    it returns with torch. `fake(*args)` has the same signature and returns tensors of the result's shape,
    dtype and device without computing anything: torch.compile traces with it. An operator that writes
    into arguments names them in `mutates_args` and returns None. `schema` ("(Tensor x, int[2] stride) -> Tensor")
    replaces the inferred one where annotations cannot say it. `exact_strides` asks torch.compile to hand the op
    its inputs with the strides they have in eager mode (for kernels that read a given memory layout, such as
    channels_last, through tensor maps) rather than a layout its code generator prefers."""
    options = {} if schema is None else {"schema": schema}
    if exact_strides and _custom_ops_take_tags():
        options["tags"] = (torch.Tag.needs_exact_strides,)
    op = torch.library.custom_op(name, fn, mutates_args=tuple(mutates_args), **options)
    op.register_fake(fake)
    if mutates_args:
        _refuse_autograd(name, mutates_args)
    return op


_LIBRARIES: dict = {}   # namespace -> its torch.library.Library("...", "IMPL") (kept alive: it owns the kernels)


def _refuse_autograd(name: str, mutates_args: Sequence[str]):
    """An operator writing into its arguments computes nothing autograd can follow: with grad enabled and an
    argument that requires grad it is refused, as torch refuses `out=` (custom_op's own autograd kernel ran it, and
    the written tensor came out with no gradient: a silently wrong backward); so is an argument carrying a
    forward-mode tangent (out came out with none). Below autograd (torch.no_grad(), inference with parameters) it
    runs. Needs the dispatcher's redispatch hooks; where this torch lacks them the operator stays as custom_op made
    it."""
    below = getattr(torch._C, "_AutoDispatchBelowAutograd", None)
    after = getattr(torch._C, "_after_autograd_keyset", None)
    if below is None or after is None:
        return
    overload = _overload(name)

    def autograd_kernel(keyset, *args, **kwargs):
        bound = dict(zip(names, args), **kwargs)
        tensors = [t for t in bound.values() if isinstance(t, torch.Tensor)]
        if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
            needing = [arg for arg, t in bound.items() if isinstance(t, torch.Tensor) and t.requires_grad]
            raise OperatorRefusal(f"{name} writes into {', '.join(mutates_args)}, which autograd cannot follow, and "
                                  f"{', '.join(needing)} {'requires' if len(needing) == 1 else 'require'} grad: call "
                                  f"the operator that returns a new tensor (for matmul_out, torch.ops.skc.matmul), or "
                                  f"call it under torch.no_grad()")
        if _carry_tangents(tensors):
            raise OperatorRefusal(f"{name} writes into {', '.join(mutates_args)}, which forward-mode AD cannot follow, "
                               f"and an argument carries a tangent: call the operator that returns a new tensor (for "
                               f"matmul_out, torch.ops.skc.matmul)")
        _refuse_lazy_views(name, "it writes into", "pass a plain tensor as {arg} and copy it into the view after "
                           "({arg}.{resolve}() is a copy, which the writes would not leave)",
                           **{arg: bound.get(arg) for arg in mutates_args})
        with below():
            return overload.redispatch(keyset & after, *args, **kwargs)

    names = [argument.name for argument in overload._schema.arguments]
    _impl(name, autograd_kernel, "Autograd")


def _refuse_lazy_views(op: str, why: str, fix: str, **tensors):
    """A lazily negated (or conjugated) view that torch's own fallback cannot resolve before the operator runs (an
    argument it writes into: "Expected Tensor but got None"; an fp8 one: "neg_cpu not implemented for
    'Float8_e4m3fn'") is refused by its name, as skc.blocks refuses any."""
    for arg, x in tensors.items():
        if isinstance(x, torch.Tensor) and (x.is_neg() or x.is_conj()):
            resolve = "resolve_neg" if x.is_neg() else "resolve_conj"
            raise OperatorRefusal(f"{op}: {arg} is a lazily {'negated' if x.is_neg() else 'conjugated'} view (its "
                                  f"memory holds the values before that), which {why}: "
                                  + fix.format(arg=arg, resolve=resolve))


def _carry_tangents(tensors) -> bool:
    """Whether a tensor carries a forward-mode tangent: asked only inside a dual level (torch.autograd.forward_ad) or
    a torch.func transform, since unpack_dual costs about a microsecond a tensor on every call of an operator."""
    if getattr(torch.autograd.forward_ad, "_current_level", 0) < 0 and \
            torch._C._functorch.peek_interpreter_stack() is None:
        return False
    return any(torch.autograd.forward_ad.unpack_dual(t).tangent is not None for t in tensors)


def _overload(name: str):
    """The operator "namespace::name" as torch.ops holds it (its default overload)."""
    namespace, opname = name.split("::")
    return getattr(getattr(torch.ops, namespace), opname).default


def _impl(name: str, kernel: Callable, key: str) -> None:
    """Register `kernel(keyset, *args, **kwargs)` for the operator "namespace::name" at dispatch key `key`, replacing
    custom_op's."""
    namespace, opname = name.split("::")
    library = _LIBRARIES.get(namespace)
    if library is None:
        library = _LIBRARIES[namespace] = torch.library.Library(namespace, "IMPL")
    try:
        library.impl(opname, kernel, key, with_keyset=True, allow_override=True)
    except TypeError:   # (a torch whose Library.impl takes no allow_override)
        library.impl(opname, kernel, key, with_keyset=True)


def _autocast_to_the_regions_dtype(name: str) -> None:
    """Inside a `torch.autocast` region, the operator's floating-point tensors on the region's device (float64 aside)
    are cast to the region's dtype before it runs, as torch.matmul, conv2d and scaled_dot_product_attention do
    (torch's "lower precision" ops): a float32 input under bf16 autocast runs as bf16, and mixed fp16 / bf16 inputs
    as the region's type. (torch.library.register_autocast casts to one dtype fixed at registration, not the
    region's.) Where this torch lacks the hooks, the operator stays as custom_op made it."""
    exclude = getattr(torch._C, "_ExcludeDispatchKeyGuard", None)
    key_for_device = getattr(torch._C, "_dispatch_key_for_device", None)
    if exclude is None or key_for_device is None or not hasattr(torch, "get_autocast_dtype"):
        return
    overload = _overload(name)
    for device_type in ("cpu", "cuda"):
        key = "Autocast" + key_for_device(device_type)
        _impl(name, _autocast_kernel(overload, device_type, getattr(torch._C.DispatchKey, key)), key)


def _autocast_kernel(overload, device_type: str, key) -> Callable:
    def cast(value, dtype):
        eligible = (isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != torch.float64
                    and value.device.type == device_type)
        return value.to(dtype) if eligible else value

    def autocast_kernel(keyset, *args, **kwargs):
        dtype = torch.get_autocast_dtype(device_type)
        with torch._C._ExcludeDispatchKeyGuard(torch._C.DispatchKeySet(key)):
            return overload(*(cast(v, dtype) for v in args), **{k: cast(v, dtype) for k, v in kwargs.items()})

    return autocast_kernel


def _custom_ops_take_tags() -> bool:
    """Whether this PyTorch's custom_op takes `tags` and knows needs_exact_strides (both newer than 2.4)."""
    return hasattr(torch.Tag, "needs_exact_strides") and "tags" in inspect.signature(torch.library.custom_op).parameters


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
    with _refusing(), on_device_of(a):
        matmul(a, b, **options)


def _check_activation(op: str, activation) -> None:
    """The epilogue's activations (the keys of the backward's table below, which are skc.blocks' ACTIVATIONS)."""
    _check(activation in _ACTIVATIONS,
                 lambda: f"{op}: unknown activation {activation!r}; choose from {tuple(_ACTIVATIONS)}")


def _check_devices(op: str, **tensors) -> None:
    """Every tensor given lies on the first one's device, where the operator launches (as torch's own operators
    ask: "Expected all tensors to be on the same device"); eagerly and in the fake implementation."""
    (lead, first), *rest = [(name, x) for name, x in tensors.items() if x is not None]
    for name, x in rest:
        _check(x.device == first.device,
                     lambda name=name, x=x: f"{op}: expected all tensors on one device, found {name} on {x.device} "
                                            f"and {lead} on {first.device}: pass "
                                            + (f"an out on {lead}'s device" if name == "out" else
                                               f"{name}.to({lead}.device)"))


def _check_tensors(op: str, **tensors) -> None:
    """Each operand the schema types `Tensor` is one: torch's dispatcher lets None through for it (as an undefined
    tensor), and the checks after this one read its shape."""
    for name, x in tensors.items():
        _check(isinstance(x, torch.Tensor),
               lambda name=name, x=x: f"{op}'s {name} is a tensor, found {type(x).__name__}: pass a torch tensor")


def _check_operands(a, b, bias, c, activation) -> tuple:
    """The shape of a valid problem's result, torch.matmul's: a 1-D a is a row and a 1-D b a column (the added
    dimension removed), and the dimensions before the last two are batch dimensions, broadcast against each other
    (each pair equal, or one of them 1); the messages match what skc.blocks.matmul says at launch."""
    from .blocks.host_plans import matrices_packed, read_transposed

    _check_tensors("skc::matmul", a=a, b=b)
    _check(a.dim() >= 1 and b.dim() >= 1,
                 lambda: f"matmul: both operands need a dimension at least, as torch.matmul's do; a is "
                         f"{tuple(a.shape)}, b is {tuple(b.shape)}")
    _check(a.dtype in (torch.bfloat16, torch.float16),
                 lambda: f"skc::matmul multiplies bf16 or fp16 operands; a is {a.dtype}")
    _check(b.dtype == a.dtype, lambda: f"a is {a.dtype} and b is {b.dtype}; skc::matmul needs one type")
    _check_devices("skc::matmul", a=a, b=b, bias=bias, c=c)
    a_shape = (1, a.shape[0]) if a.dim() == 1 else tuple(a.shape)
    b_shape = (b.shape[0], 1) if b.dim() == 1 else tuple(b.shape)
    rank = max(len(a_shape), len(b_shape)) - 2
    a_batch, b_batch = ((1,) * (rank - len(x) + 2) + x[:-2] for x in (a_shape, b_shape))
    for m, n in zip(a_batch, b_batch):
        _check(m == n or m == 1 or n == 1,
                     lambda: f"matmul: the batch sizes differ: a is {tuple(a.shape)}, b is {tuple(b.shape)} (batch "
                             "dimensions broadcast as torch.matmul's: each pair equal, or one of them 1)")
    _check(a_shape[-1] == b_shape[-2], lambda: f"cannot multiply a {tuple(a.shape)} by b {tuple(b.shape)}: "
                                                     f"inner dimensions differ")
    batch = tuple(m if n == 1 else n for m, n in zip(a_batch, b_batch))
    shape = (*batch, *a_shape[-2:-1] * (a.dim() > 1), *b_shape[-1:] * (b.dim() > 1))
    for name, x in (("a", a), ("b", b)):   # (empty problems run, as torch.matmul's: K = 0 gives the epilogue of 0)
        _check(x.dim() == 1 or x.numel() == 0 or read_transposed(x.shape[-2:], x.stride()[-2:]) is not None,
                     lambda name=name, x=x: f"matmul's operands must be row-major or transposed views of row-major "
                                            f"arrays; {name} (strides {tuple(x.stride())}) is neither: pass a copy "
                                            "of it that is one")
    if bias is not None:   # (one value per column: a 1-D b's one)
        columns = b_shape[-1]
        _check(tuple(bias.shape) == (columns,), lambda: f"bias has shape {tuple(bias.shape)}, expected "
                                                              f"({columns},)")
    if c is not None:
        _check(tuple(c.shape) == shape, lambda: f"c has shape {tuple(c.shape)}, expected {shape}")
    for name, x in (("c", c), ("bias", bias)):
        _check(x is None or x.is_contiguous() or name == "c" and matrices_packed(x),
                     lambda name=name, x=x: f"matmul: {name} (strides {tuple(x.stride())}) must be contiguous (c of a "
                                            f"batch: each matrix row-major): pass a contiguous copy "
                                            f"({name}.contiguous())")
    _check_activation("skc::matmul", activation)
    return shape


def _symbolic(value) -> bool:
    """Whether a scalar argument is torch.compile's symbol for a value known only when the graph runs (a numpy
    scalar given to the compiled function): the fake implementation leaves its checks to the operator's run."""
    return isinstance(value, (torch.SymInt, torch.SymFloat, torch.SymBool))


def _check_scalars(c, alpha, beta) -> None:
    """alpha and beta are real numbers (a complex one passed the fake implementation, and the operator refused it at
    run time), and beta scales c alone: one (not 0) with no c is refused, as skc.blocks.matmul refuses it. Eagerly,
    skc.blocks.matmul checks alpha and beta again (about 0.1-0.9 us): kept, so that both paths refuse in one order."""
    from .blocks.host_plans import beta_without_c, real

    for name, value in (("alpha", alpha), ("beta", beta)):
        if value is not None and not _symbolic(value):
            with _refusing():
                real(value, name)
    _check(c is not None or beta is None or _symbolic(beta) or beta == 0.0, lambda: beta_without_c(beta))


def _matmul(a: torch.Tensor, b: torch.Tensor, bias: Optional[torch.Tensor] = None, c: Optional[torch.Tensor] = None,
            alpha: Optional[Number] = None, beta: Optional[Number] = None,
            activation: Optional[str] = None) -> torch.Tensor:
    _check_scalars(c, alpha, beta)
    out = torch.empty(_check_operands(a, b, bias, c, activation), dtype=a.dtype, device=a.device)
    _launch_matmul(a, b, out, bias, c, alpha, beta, activation)
    return out


def _matmul_fake(a, b, bias=None, c=None, alpha=None, beta=None, activation=None):
    _check_scalars(c, alpha, beta)
    return a.new_empty(_check_operands(a, b, bias, c, activation))


def _check_out(a, b, out, bias, c, activation, beta=None, alpha=None) -> None:
    """out must be the product's row-major tensor of the operands' type (eagerly and in the fake implementation, so
    that torch.compile refuses at tracing what the op refuses at run time): contiguous, or, for a batch, each matrix
    row-major at any batch stride, as skc.blocks.matmul takes it."""
    from .blocks.host_plans import matrices_packed

    _check_scalars(c, alpha, beta)
    shape = _check_operands(a, b, bias, c, activation)
    _check_tensors("skc::matmul_out", out=out)
    _check_devices("skc::matmul_out", a=a, out=out)
    _check(tuple(out.shape) == shape and out.dtype == a.dtype,
                 lambda: f"out is {tuple(out.shape)} {out.dtype}, expected {shape} {a.dtype}")
    _check(out.is_contiguous() or matrices_packed(out),
           lambda: f"out (strides {tuple(out.stride())}) must be row-major with its rows one after another (for a "
                   "batch, each matrix so; a transposed, strided or column-sliced view is not written, though a and b "
                   "may be such views): pass a contiguous out")


def _matmul_out(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, bias: Optional[torch.Tensor] = None,
                c: Optional[torch.Tensor] = None, alpha: Optional[Number] = None, beta: Optional[Number] = None,
                activation: Optional[str] = None) -> None:
    _check_out(a, b, out, bias, c, activation, beta, alpha)
    _launch_matmul(a, b, out, bias, c, alpha, beta, activation)


def _matmul_out_fake(a, b, out, bias=None, c=None, alpha=None, beta=None, activation=None):
    _check_out(a, b, out, bias, c, activation, beta, alpha)


matmul = register_op("skc::matmul", _matmul, fake=_matmul_fake)
"""activation(alpha · a @ b + beta · c + bias) as a new tensor: `torch.ops.skc.matmul(a, b, bias=None,
c=None, alpha=None, beta=None, activation=None)` (activation: None, "relu", "gelu" or "silu"), of torch.matmul's
shapes, as skc.blocks.matmul takes them: matrices, vectors (1-D), and batches of any number of batch dimensions,
broadcast as torch's."""
matmul_out = register_op("skc::matmul_out", _matmul_out, fake=_matmul_out_fake, mutates_args=("out",))
"""The same into a given row-major `out`: `torch.ops.skc.matmul_out(a, b, out, ...)`."""


# -- torch.ops.skc.scaled_matmul -------------------------------------------------------------------------------
# (skc.blocks.fp8_host makes every check: the fake implementation asks its checks of shapes, types and strides, so that
# a call refused at run time is refused, with the same message, while torch.compile traces it)

@contextlib.contextmanager
def _refusing():
    """skc.blocks' LaunchError for an argument as the operator's refusal: an OperatorRefusal of the same message (a
    RuntimeError, as _check's, which torch.compile reports as it reports torch's own operators' refusals)."""
    try:
        yield
    except OperatorRefusal:
        raise
    except LaunchError as error:
        raise OperatorRefusal(str(error)) from None


def _scaled_matmul(a: torch.Tensor, b: torch.Tensor, scale_a: torch.Tensor, scale_b: torch.Tensor,
                   bias: Optional[torch.Tensor] = None, out_dtype: Optional[torch.dtype] = None,
                   use_fast_accum: bool = False, activation: Optional[str] = None) -> torch.Tensor:
    from .blocks.fp8_host import scaled_matmul

    _check_tensors("skc::scaled_matmul", a=a, b=b, scale_a=scale_a, scale_b=scale_b)
    _check_devices("skc::scaled_matmul", a=a, b=b, scale_a=scale_a, scale_b=scale_b, bias=bias)
    with _refusing(), on_device_of(a):
        return scaled_matmul(a, b, scale_a, scale_b, out_dtype=out_dtype, bias=bias, activation=activation,
                             use_fast_accum=use_fast_accum, stream=current_stream(a))


def _scaled_matmul_fake(a, b, scale_a, scale_b, bias=None, out_dtype=None, use_fast_accum=False, activation=None):
    from .blocks.fp8_host import checked_result, torch_out_dtype

    _check_tensors("skc::scaled_matmul", a=a, b=b, scale_a=scale_a, scale_b=scale_b)
    _check_devices("skc::scaled_matmul", a=a, b=b, scale_a=scale_a, scale_b=scale_b, bias=bias)
    with _refusing():
        shape, out_name = checked_result(a, b, scale_a, scale_b, out_dtype, bias, activation, use_fast_accum)
    return a.new_empty(shape, dtype=torch_out_dtype(out_name))


def _refuse_derivatives(name: str) -> None:
    """The fp8 GEMM has no derivative (nor has torch._scaled_mm): a call that autograd follows, an operand requiring
    grad or carrying a forward-mode tangent, is refused by the name of those operands, as skc.blocks.matmul refuses
    it (custom_op's own autograd kernel gave a result whose backward raised, or no tangent). Below autograd it runs.
    Where this torch lacks the redispatch hooks, the operator stays as custom_op made it."""
    below = getattr(torch._C, "_AutoDispatchBelowAutograd", None)
    after = getattr(torch._C, "_after_autograd_keyset", None)
    if below is None or after is None:
        return
    overload = _overload(name)
    parameters = [(argument.name, argument.default_value) for argument in overload._schema.arguments]

    def autograd_kernel(keyset, *args, **kwargs):
        from .blocks.fp8_host import refuse_derivatives

        args = (*args, *(kwargs.get(key, default) for key, default in parameters[len(args):]))
        _refuse_lazy_views(name, "torch cannot resolve for float8",
                           "pass the tensor it views, with its scale negated (scale_{arg}=-scale_{arg})",
                           a=args[0], b=args[1])
        with _refusing():
            refuse_derivatives(*args[:5], None)   # (a, b, scale_a, scale_b, bias; no out)
        with below():
            return overload.redispatch(keyset & after, *args)

    _impl(name, autograd_kernel, "Autograd")


scaled_matmul = register_op("skc::scaled_matmul", _scaled_matmul, fake=_scaled_matmul_fake)
"""activation(scale_a · scale_b · (a @ b) + bias) of fp8 a and b as a new tensor of `out_dtype` (bf16 by default,
f16 or f32): `torch.ops.skc.scaled_matmul(a, b, scale_a, scale_b, bias=None, out_dtype=None, use_fast_accum=False,
activation=None)`, torch._scaled_mm's arguments in its order (less scale_result) and the epilogue's activation;
skc.blocks.matmul(a, b, scale_a=..., scale_b=...) as an operator. a is M x K row-major, b K x N column-major; the
scales are float32: one value each, row-wise (scale_a M x 1, scale_b 1 x N) or block-wise (scale_a M x (K / 128),
scale_b (K / 128) x (N / 128)). It has no derivative: an operand requiring grad is refused by name."""
_refuse_derivatives("skc::scaled_matmul")


# -- torch.ops.skc.conv2d -----------------------------------------------------------------------------------
_FLOATS = (torch.bfloat16, torch.float16)


def _conv_output_size(size, kernel, stride, padding, dilation) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _check_conv(x, w, bias, stride, padding, dilation, activation, groups=1) -> tuple:
    """(N, K, P, Q) of a valid convolution; the messages match what skc.blocks.conv2d says at launch."""
    _check_tensors("skc::conv2d", x=x, w=w)
    _check(x.dim() == 4 and w.dim() == 4,
                 lambda: f"skc::conv2d takes 4-d x and w (NCHW / OIHW shapes in the channels_last memory format), "
                         f"found {x.dim()}-d and {w.dim()}-d")
    _check(x.dtype in _FLOATS, lambda: f"skc::conv2d runs on bf16 or fp16 tensors, found x of {x.dtype}")
    _check(w.dtype == x.dtype, lambda: f"x is {x.dtype} and w is {w.dtype}; skc::conv2d needs one type")
    _check_devices("skc::conv2d", x=x, w=w, bias=bias)
    for name, tensor in (("x", x), ("w", w)):
        _check(tensor.is_contiguous(memory_format=torch.channels_last),
               lambda name=name, tensor=tensor: f"skc::conv2d's '{name}' must be in the channels_last memory format, "
                                                f"contiguous (found strides {tuple(tensor.stride())}): pass "
                                                f"{name}.contiguous(memory_format=torch.channels_last) (a slice of "
                                                "channels_last memory is no copy with .to(memory_format=))")
    for name, pair, least in (("stride", stride, 1), ("padding", padding, 0), ("dilation", dilation, 1)):
        _check(len(pair) == 2,
                     lambda name=name, pair=pair: f"skc::conv2d's {name} is an (h, w) pair, found {list(pair)}")
        # (before the output size is computed: a stride of 0 divides by zero, a negative one gives no pixels)
        _check(all(v >= least for v in pair),
                     lambda name=name, pair=pair, least=least: f"conv2d's {name} must be an int or an (h, w) pair of "
                                                               f"ints, each at least {least}, found {tuple(pair)}")
    (N, C, H, W), (K, C_w, R, S) = x.shape, w.shape
    _check(C > 0 and K > 0 and R > 0 and S > 0,   # (a batch of 0: torch's empty output, no launch)
                 lambda: f"conv2d of x {tuple(x.shape)} by w {tuple(w.shape)}: the channels, the filters and the "
                         "filter's extent must each be at least 1 (torch.nn.functional.conv2d refuses no filters too)")
    _check(groups >= 1, lambda: f"conv2d's groups must be a positive int (torch.nn.functional.conv2d's), found "
                                f"{groups}")
    from .blocks.im2col import grouping_mismatch, unaligned_filters
    from .blocks.stencil import takes

    mismatch = grouping_mismatch(C, K, C_w, groups)
    _check(mismatch is None, lambda: mismatch)
    if bias is not None:
        _check(tuple(bias.shape) == (K,), lambda: f"bias has shape {tuple(bias.shape)}, expected ({K},)")
        _check(bias.is_contiguous(), lambda: f"conv2d: bias (strides {tuple(bias.stride())}) must be "
                                                   "contiguous: pass a contiguous copy (bias.contiguous())")
    P = _conv_output_size(H, R, stride[0], padding[0], dilation[0])
    Q = _conv_output_size(W, S, stride[1], padding[1], dilation[1])
    _check(P >= 1 and Q >= 1, lambda: f"conv2d of a {H}x{W} input by a {R}x{S} filter (padding "
                                            f"{tuple(padding)}, dilation {tuple(dilation)}) has no output pixels")
    _check(N * P * Q < 2 ** 31, lambda: f"conv2d's output has {N} x {P} x {Q} = {N * P * Q} pixels (a {H}x{W} "
                                              f"input, stride {tuple(stride)}, padding {tuple(padding)}, dilation "
                                              f"{tuple(dilation)}), past the 2**31 - 1 its kernel counts in 32 bits: "
                                              "split the batch (or the image) into calls of fewer")
    # (after the output's size, as conv2d checks them; a batch of 0 launches nothing; the stencil, which conv2d runs
    # where it takes the convolution, stores any K)
    _check(N == 0 or K % 8 == 0 or takes(C, K, groups, R, S, stride[1], dilation[1], _shared_bytes(x)),
           lambda: unaligned_filters(K, groups))
    _check_activation("skc::conv2d", activation)
    return N, K, P, Q


def _shared_bytes(x) -> int:
    """The shared memory a block may use on x's device; for a meta tensor (a model made under torch.device("meta"),
    whose device comes later), on skc's current device."""
    device = devices.current_device() if x.device.type == "meta" else skc_device(x)
    return device.target.max_shared_bytes


def _conv2d(x, w, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), activation=None, groups=1):
    from .blocks import conv2d

    N, K, P, Q = _check_conv(x, w, bias, stride, padding, dilation, activation, groups)
    out = torch.empty((N, K, P, Q), dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
    with on_device_of(x):
        conv2d(x, w, bias=bias, stride=tuple(stride), padding=tuple(padding), dilation=tuple(dilation),
               activation=activation, out=out, stream=current_stream(x), groups=groups)
    return out


def _conv2d_fake(x, w, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), activation=None, groups=1):
    shape = _check_conv(x, w, bias, stride, padding, dilation, activation, groups)
    return torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=torch.channels_last)


conv2d = register_op("skc::conv2d", _conv2d, fake=_conv2d_fake, exact_strides=True,
                     schema="(Tensor x, Tensor w, Tensor? bias=None, int[2] stride=[1, 1], int[2] padding=[0, 0], "
                            "int[2] dilation=[1, 1], str? activation=None, int groups=1) -> Tensor")
"""activation(conv2d(x, w, groups) + bias) as a new channels_last tensor: `torch.ops.skc.conv2d(x, w, bias=None,
stride=(1, 1), padding=(0, 0), dilation=(1, 1), activation=None, groups=1)`. x (N, C, H, W) and w (K, C/groups, R,
S) are bf16 or fp16 in the channels_last memory format (NHWC / KRSC memory, read in place); stride, padding and
dilation are (h, w) pairs; activation: None, "relu", "gelu" or "silu"; groups as torch.nn.functional.conv2d takes
it. The output is (N, K, P, Q), channels_last."""


# -- torch.ops.skc.attention and attention_with_lse ------------------------------------------------------------
def _check_attention(q, k, v, layout) -> tuple:
    """(B, H, Sq) of a valid attention; the messages match what skc.blocks.attention says at launch."""
    _check_tensors("skc::attention", q=q, k=k, v=v)
    _check(layout in ("bhsd", "bshd"), lambda: f"layout must be one of bhsd, bshd, found {layout!r}")
    _check(q.dim() == 4 and k.dim() == 4 and v.dim() == 4,
                 lambda: f"attention takes 4-D tensors ({layout}), found shapes q {tuple(q.shape)}, k "
                         f"{tuple(k.shape)}, v {tuple(v.shape)}")
    _check(q.dtype in _FLOATS, lambda: f"attention runs on bfloat16 or float16 tensors, found q of {q.dtype}")
    _check(k.dtype == q.dtype and v.dtype == q.dtype,
                 lambda: f"q, k, v are {q.dtype}, {k.dtype}, {v.dtype}; skc::attention needs one type")
    _check_devices("skc::attention", q=q, k=k, v=v)
    heads = (lambda t: (t.shape[0], t.shape[1], t.shape[2], t.shape[3])) if layout == "bhsd" else \
        (lambda t: (t.shape[0], t.shape[2], t.shape[1], t.shape[3]))
    (B, H, Sq, D), (Bk, Hkv, Skv, Dk) = heads(q), heads(k)
    _check(heads(v) == (Bk, Hkv, Skv, Dk) and Bk == B and Dk == D,
                 lambda: f"attention: q, k, v must agree in batch and head_dim and k, v in shape; found "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)} ({layout})")
    _check(Hkv > 0 and H % Hkv == 0 if H > 0 else True,
                 lambda: f"grouped-query attention needs K/V heads dividing Q heads: {H} and {Hkv}")
    # (B, H, Sq or Skv of 0: an empty result, or zeros, with no launch, as torch's scaled_dot_product_attention)
    for name, x in () if B == 0 or H == 0 or Sq == 0 or Skv == 0 else (("q", q), ("k", k), ("v", v)):
        _check(x.stride(-1) == 1,
                     lambda name=name, x=x: f"attention: {name} (strides {tuple(x.stride())}) is not contiguous "
                                            f"along head_dim, which TMA copies need: pass {name}.contiguous()")
        # (TMA's other strides are 16-byte multiples; a dimension of one element has its stride made one)
        _check(all(size == 1 or stride * x.element_size() % 16 == 0
                         for size, stride in zip(x.shape[:-1], x.stride()[:-1])),
                     lambda name=name, x=x: f"attention: {name} (strides {tuple(x.stride())}) has a stride that is no "
                                            f"multiple of 16 bytes, which TMA copies need: pass {name}.contiguous()")
        # (torch's allocations are aligned: a view's offset into its storage says where it starts)
        _check(x.storage_offset() * x.element_size() % 16 == 0,
                     lambda name=name, x=x: f"attention: {name} starts {x.storage_offset()} elements into its storage, "
                                            f"no multiple of 16 bytes, which TMA copies need: pass {name}.clone()")
    return B, H, Sq


def _launch_attention(q, k, v, causal, scale, layout, return_lse):
    from .blocks import attention

    _check_attention(q, k, v, layout)
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device)  # q's layout, contiguous: what the block returns
    with on_device_of(q):
        return attention(q, k, v, causal=causal, scale=scale, out=out, layout=layout, return_lse=return_lse,
                         stream=current_stream(q))


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False, scale: Optional[Number] = None,
               layout: str = "bhsd") -> torch.Tensor:
    return _launch_attention(q, k, v, causal, scale, layout, False)


def _check_attention_options(q, scale) -> None:
    """What skc.blocks.attention refuses beyond the shapes (the fake implementations' share of its checks)."""
    D = q.shape[-1]
    from .blocks.attention_kernel import padding_hint

    _check(D in (64, 128, 256), lambda: f"attention runs head dimensions 64, 128 and 256, found {D}: "
                                              f"{padding_hint(D)}")
    if scale is None or _symbolic(scale):
        return
    _check(isinstance(scale, numbers.Real),
           lambda: f"attention's scale must be a number, found {type(scale).__name__}")
    _check(0.0 < scale < float("inf"),
                 lambda: f"attention's scale must be positive and finite, found {scale}")
    f32 = torch.finfo(torch.float32)   # (the kernel takes the scale as an f32)
    _check(f32.tiny <= scale <= f32.max,
                 lambda: f"attention's scale {scale} is {'0' if scale < f32.tiny else 'infinite'} as the f32 the "
                         f"kernel computes with: pass a scale between {f32.tiny:.3g} and {f32.max:.3g}")


def _attention_fake(q, k, v, causal=False, scale=None, layout="bhsd"):
    _check_attention(q, k, v, layout)
    _check_attention_options(q, scale)
    return q.new_empty(q.shape)


def _attention_with_lse(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
                        scale: Optional[Number] = None, layout: str = "bhsd") -> Tuple[torch.Tensor, torch.Tensor]:
    return _launch_attention(q, k, v, causal, scale, layout, True)


def _attention_with_lse_fake(q, k, v, causal=False, scale=None, layout="bhsd"):
    B, H, Sq = _check_attention(q, k, v, layout)
    _check_attention_options(q, scale)
    return q.new_empty(q.shape), q.new_empty((B, H, Sq), dtype=torch.float32)


attention = register_op("skc::attention", _attention, fake=_attention_fake, exact_strides=True)
"""softmax(scale · q kᵀ [causal mask]) v as a new tensor in q's shape (contiguous): `torch.ops.skc.attention(q, k,
v, causal=False, scale=None, layout="bhsd")`, for bf16 / fp16 q, k, v of shape (B, H, S, D) ("bhsd", as
torch.nn.functional.scaled_dot_product_attention takes them) or (B, S, H, D) ("bshd"), read in place whatever
their strides (the last one 1, the others multiples of 16 bytes, as TMA copies take them). k and v may have fewer
heads (grouped-query attention) and another length; scale defaults to 1/sqrt(D); the causal mask is torch's
(top-left aligned)."""
attention_with_lse = register_op("skc::attention_with_lse", _attention_with_lse, fake=_attention_with_lse_fake,
                                 exact_strides=True)
"""The same, returning (out, lse): lse is the natural log-sum-exp of each row's scaled scores, (B, H, Sq) float32."""


# -- autograd: the derivatives of each ready operator ------------------------------------------------------------
# skc's kernels are forward only. Without a registered formula, torch.compile of a model whose weights require grad
# (every nn.Parameter) fails while tracing even a forward-only call (AOTAutograd traces the backward), and eager
# backward fails. The derivatives below are those of a float32 torch reference of each operator, which also gives
# the gradient of the fused epilogue (alpha, beta, c, bias, activation).
# (gelu is the epilogue's: the tanh approximation, whose derivative differs from the exact one's by up to 9e-4)
_ACTIVATIONS = {None: lambda z: z, "relu": torch.relu,
                "gelu": functools.partial(torch.nn.functional.gelu, approximate="tanh"),
                "silu": torch.nn.functional.silu}


def _differentiate_by_reference(name: str, reference: Callable, tensors: int,
                                backward: Optional[Callable] = None) -> None:
    """Make the operator's autograd kernel an autograd.Function whose derivatives are those of `reference` (float32,
    torch's operators) in the first `tensors` arguments: its vector-Jacobian product for backward (torch.func.vjp) and
    its Jacobian-vector product for forward mode (torch.autograd.forward_ad). custom_op's register_autograd makes a
    Function without a jvp, and forward mode passed the op tangent-less inputs: silently zero tangents (torch.func.jvp
    and jacfwd too). The operator runs through the Function only where a derivative is asked for: an input requiring
    grad (grad enabled) or carrying a forward-mode tangent. torch.func's transforms cannot reach a Function applied
    inside an operator's kernel (nor custom_op's own: "must override the setup_context staticmethod"), so a derivative
    asked for under one is refused by name.

    `backward(saved, options, grads, wanted)`, where given, computes the same vector-Jacobian product another way
    (attention's, in memory bounded whatever the sequence lengths) and replaces the reference's in a first-order
    backward (grad mode off, as autograd runs one without create_graph, and as AOTAutograd traces one); a backward
    that builds a graph (create_graph=True, for a second derivative) differentiates the reference, which torch can
    differentiate again."""
    overload = _overload(name)
    parameters = [(argument.name, argument.default_value) for argument in overload._schema.arguments]
    function = _reference_function(overload, reference, tensors, backward)

    def autograd_kernel(keyset, *args, **kwargs):
        args = (*args, *(kwargs.get(key, default) for key, default in parameters[len(args):]))
        given = [t for t in args[:tensors] if t is not None]
        if (torch.is_grad_enabled() and any(t.requires_grad for t in given)) or _carry_tangents(given):
            if any(torch._C._functorch.is_functorch_wrapped_tensor(t) for t in given):
                raise OperatorRefusal(f"{name}: torch.func's derivative transforms (grad, vjp, jacrev, jvp, jacfwd, "
                                   "hessian) cannot differentiate a torch.library.custom_op (pytorch issue 168393): "
                                   "use torch.autograd.grad or .backward(), or torch.autograd.forward_ad for forward "
                                   "mode; torch.func.vmap runs the op")
            return function.apply(*args)
        with torch._C._AutoDispatchBelowAutograd():
            return overload.redispatch(keyset & torch._C._after_autograd_keyset, *args)

    _impl(name, autograd_kernel, "Autograd")


def _reference_function(overload, reference: Callable, tensors: int, first_order: Optional[Callable]):
    """The autograd.Function of `_differentiate_by_reference`."""
    def at(saved, options, varied, values):
        full = list(saved)
        for i, value in zip(varied, values):
            full[i] = value
        return reference(*full, *options)

    class ByReference(torch.autograd.Function):
        @staticmethod
        def forward(*args):
            with torch._C._AutoDispatchBelowAutograd():
                return overload(*args)

        @staticmethod
        def setup_context(ctx, inputs, output):
            # (saved, not kept on ctx: autograd then refuses a backward after an in-place change of one, as torch's
            # own operators do, where the gradient would be that of the changed values)
            ctx.save_for_backward(*inputs[:tensors])
            ctx.save_for_forward(*inputs[:tensors])
            ctx.options = inputs[tensors:]
            ctx.output_dtypes = tuple(o.dtype for o in (output if isinstance(output, tuple) else (output,)))

        @staticmethod
        def backward(ctx, *grads):
            # (only the inputs that need a gradient are differentiated; the others enter the reference as constants:
            # a's gradient alone took b's too, a third matmul, and attention's q's alone took k's and v's)
            saved = ctx.saved_tensors
            wanted = [i for i, t in enumerate(saved) if t is not None and ctx.needs_input_grad[i]]
            result = [None] * (tensors + len(ctx.options))
            if not wanted:
                return tuple(result)
            with _without_autocast(saved):
                if first_order is not None and not torch.is_grad_enabled():
                    needs = [i in wanted for i in range(tensors)]
                    got = first_order(saved, ctx.options, grads, needs)
                    wanted = [i for i, g in enumerate(got) if g is not None]
                    got = [got[i] for i in wanted]
                else:
                    cotangents = tuple(g.float() if g is not None else None for g in grads)
                    got = _vjp(lambda *values: at(saved, ctx.options, wanted, values),
                               [saved[i].float() for i in wanted], cotangents)
            for i, g in zip(wanted, got):
                result[i] = g.to(saved[i].dtype)
            return tuple(result)

        @staticmethod
        def jvp(ctx, *tangents):
            saved = ctx.saved_tensors
            present = [i for i, t in enumerate(saved) if t is not None]
            primals = tuple(saved[i].float() for i in present)
            directions = tuple(torch.zeros_like(p) if tangents[i] is None else tangents[i].float()
                               for i, p in zip(present, primals))
            # (torch.autograd.functional.jvp, by double backward: forward mode cannot nest inside forward mode)
            with torch.enable_grad(), _without_autocast(saved):
                _, got = torch.autograd.functional.jvp(lambda *values: at(saved, ctx.options, present, values),
                                                       primals, directions)
            got = got if isinstance(got, tuple) else (got,)
            cast = tuple(g.to(dtype) for g, dtype in zip(got, ctx.output_dtypes))
            return cast if len(cast) > 1 else cast[0]

    return ByReference


def _vjp(function, primals: list, cotangents: tuple) -> tuple:
    """The vector-Jacobian product of `function` (of the float32 `primals`; one output or a tuple) with `cotangents`
    (one an output, None for an output nobody differentiated): torch.func.vjp's; or, where saved-tensor hooks are on
    (torch.autograd.graph.save_on_cpu, activation offloading), which torch.func refuses ("don't yet support saved
    tensor hooks"), autograd's own, over the primals themselves where the backward builds a graph (create_graph: a
    second derivative reaches the operator's inputs) and over detached copies otherwise."""
    if torch._C._autograd._top_saved_tensors_default_hooks(True) is None:
        _, vjp = torch.func.vjp(function, *primals)
        return vjp(cotangents if len(cotangents) > 1 else cotangents[0])
    building = torch.is_grad_enabled()
    with torch.enable_grad():
        inputs = [p if building and p.requires_grad else p.detach().requires_grad_() for p in primals]
        outputs = function(*inputs)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        pairs = [(o, g) for o, g in zip(outputs, cotangents) if g is not None and o.requires_grad]
        return torch.autograd.grad([o for o, _ in pairs], inputs, [g for _, g in pairs], create_graph=building,
                                   allow_unused=True, materialize_grads=True)


def _without_autocast(tensors):
    """torch.autocast off on the tensors' device: the reference's float32 products stay float32 where a backward
    (or forward-mode derivative) runs inside an autocast region (they ran in its bf16 or fp16: attention's gradients
    up to 3 times further from float64 torch's)."""
    device = next((t.device.type for t in tensors if t is not None), "cpu")
    return torch.autocast(device, enabled=False)


def _matmul_reference(a, b, bias, c, alpha, beta, activation):
    z = (a.float() @ b.float()) * (1.0 if alpha is None else alpha)
    if c is not None and beta != 0:   # (with beta 0, c is ignored, as torch.addmm ignores it: NaN and inf in it too)
        z = z + (1.0 if beta is None else beta) * c.float()
    if bias is not None:
        z = z + bias.float()
    return _ACTIVATIONS[activation](z)


def _conv2d_reference(x, w, bias, stride, padding, dilation, activation, groups=1):
    z = torch.nn.functional.conv2d(x.float(), w.float(), None if bias is None else bias.float(), tuple(stride),
                                   tuple(padding), tuple(dilation), groups)
    return _ACTIVATIONS[activation](z)


def _attention_reference(q, k, v, causal, scale, layout, lse=False):
    if layout == "bshd":
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    group = q.shape[1] // k.shape[1]
    k, v = (t.float().repeat_interleave(group, dim=1) for t in (k, v))
    scores = (q.float() @ k.transpose(-1, -2)) * (q.shape[-1] ** -0.5 if scale is None else scale)
    if causal:
        mask = torch.ones(scores.shape[-2:], dtype=torch.bool, device=scores.device).triu(1)
        scores = scores.masked_fill(mask, float("-inf"))
    out = torch.softmax(scores, dim=-1) @ v
    out = out.transpose(1, 2) if layout == "bshd" else out
    return (out, torch.logsumexp(scores, dim=-1)) if lse else out


def _attention_backward(saved, options, grads, wanted):
    """The first-order backward of attention and attention_with_lse (grads: the output's, and the lse's for the
    second), blocked so that its memory is bounded whatever Sq · Skv (the reference's scores are (B, H, Sq, Skv) in
    float32: 34 GB at B=1, H=32, S=16384)."""
    from .torch_attention_backward import attention_backward

    causal, scale, layout = options
    return attention_backward(*saved, grads[0], grads[1] if len(grads) > 1 else None, causal, scale, layout, wanted)


for _name, _reference, _tensors, _backward in (
        ("skc::matmul", _matmul_reference, 4, None), ("skc::conv2d", _conv2d_reference, 3, None),
        ("skc::attention", _attention_reference, 3, _attention_backward),
        ("skc::attention_with_lse", functools.partial(_attention_reference, lse=True), 3, _attention_backward)):
    _differentiate_by_reference(_name, _reference, _tensors, _backward)
for _name in ("skc::matmul", "skc::conv2d", "skc::attention", "skc::attention_with_lse"):
    _autocast_to_the_regions_dtype(_name)
