"""Ready plans of the Hopper host paths (matmul, conv2d): the cheap facts of a call's operands, which key a plan
made and checked by the first call with those facts, and each operand's tensor maps encoded once per address.

A plan is what a host path keeps of a checked call: its launcher, its grid, its tensor maps' geometry and, on a
GPU, a bound launch per set of operand addresses, never the caller's tensors. `facts(x)` is the part of a plan key
that describes an operand (type, shape, strides, dtype, device); `MapsByAddress` turns a tensor of the plan's
geometry into the encoded map a launch passes; `GemmPlan` is a ready launch of the GEMM composition;
`filling_config` picks tiles that fill the GPU.
"""
from __future__ import annotations

import sys

import math
import numbers
from contextlib import nullcontext
from dataclasses import replace

import skc

from .scheduler import TileScheduler


# -- cheap facts of an operand (the plan key) -------------------------------------------------------------------
def _torch_facts(x):
    # (a lazily negated view has a plain one's facts but other values: its first call is refused, and so are later)
    return (x.shape, x.stride(), x.dtype, x.device, x.is_neg())


def _numpy_facts(x):
    return (x.shape, x.strides, x.dtype)


def _array_facts(x):
    return (x.shape, x.dtype, x.device)


def _other_facts(x):
    return (x.shape, getattr(x, "strides", None), str(getattr(x, "dtype", None)))


_FACTS: dict = {}


def _facts_function(kind: type):
    found = _FACTS.get(kind)
    if found is None:
        if skc.is_torch_tensor_type(kind):   # (torch's, and subclasses of it: a user's have no numpy-like .strides)
            found = _torch_facts
        elif kind.__module__.split(".")[0] == "numpy" and hasattr(kind, "ctypes"):
            found = _numpy_facts
        elif isinstance(kind, type) and issubclass(kind, skc.DeviceArray):
            found = _array_facts
        else:
            found = _other_facts
        _FACTS[kind] = found
    return found


def facts(x):
    """(type, shape, strides, dtype[, device]) of an operand: what a plan made for it assumed."""
    kind = type(x)
    function = _FACTS.get(kind) or _facts_function(kind)
    return (kind, function(x))


def traced(x) -> bool:
    """Whether torch.compile's Dynamo, or torch.jit.trace, is tracing a host entry point's call (x its first operand,
    a torch tensor): the call is then handed to torch.ops.skc's operator, which the graph holds (torch.jit.trace
    recorded no launch: its shapes are tensors there, which the checks refused with a ValueError, and a ready plan's
    launch was left out of the trace, which then replayed an empty result)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    if torch.compiler.is_compiling():   # (first: Dynamo answers it while tracing, and reads nothing below)
        return skc.is_torch_tensor_type(type(x))
    hooks = TORCH_HOOKS if TORCH_HOOKS[0] is torch else torch_hooks(torch)   # (no call on every launch's path)
    return hooks[1]() is not None and skc.is_torch_tensor_type(type(x))


# (torch, torch._C._get_tracing_state, torch.autograd.forward_ad, whether any torch.autocast region is open), found once
# per torch module: traced() fills it, and the host paths read forward_ad's level and the autocast test from it after
# traced() (their lookups through torch's modules were a fifth of a plain matmul call's host time on a slow host)
TORCH_HOOKS: list = [None, None, None, None]


def torch_hooks(torch) -> list:
    """TORCH_HOOKS, for this torch module."""
    if TORCH_HOOKS[0] is not torch:
        TORCH_HOOKS[:] = [torch, torch._C._get_tracing_state, torch.autograd.forward_ad, _any_autocast(torch)]
    return TORCH_HOOKS


def _any_autocast(torch):
    """A function telling whether a torch.autocast region of any device is open (about 0.1 µs)."""
    found = getattr(torch._C, "_is_any_autocast_enabled", None)
    if found is None:   # (an older torch: its CUDA regions; or a stand-in torch with none)
        found = getattr(torch, "is_autocast_enabled", None) or (lambda: False)
    return found


def autocast(*tensors) -> tuple:
    """The tensors as torch.autocast casts those of its lower-precision ops (torch.matmul, conv2d and
    scaled_dot_product_attention; and torch.ops.skc's operators, which a compiled call runs, so that eager and compiled
    calls agree): inside a region for their device, floating-point torch tensors other than float64 in the region's
    dtype; elsewhere (and None, and other arrays) as they are. For calls where TORCH_HOOKS[3]() is true."""
    torch = sys.modules["torch"]
    if not hasattr(torch, "get_autocast_dtype"):   # (a torch whose operators do not cast either)
        return tensors

    def cast(x):
        if isinstance(x, torch.Tensor) and x.is_floating_point() and x.dtype != torch.float64:
            device = x.device.type
            if torch.is_autocast_enabled(device):
                return x.to(torch.get_autocast_dtype(device))
        return x

    return tuple(cast(x) for x in tensors)


def differentiated(*tensors) -> bool:
    """Whether autograd follows a host entry point's call on torch tensors (None and other kinds among them skipped):
    grad is enabled and one of them requires grad, or one carries a forward-mode tangent (torch.autograd.forward_ad).
    The kernels compute no derivative, so such a call is handed to torch.ops.skc's operator, whose derivative is
    registered, or refused by name (its result came out with none: a silently lost gradient, or no tangent). Inside
    the operator (its autograd.Function's forward) grad is disabled and tangents are hidden: the kernel runs."""
    torch = sys.modules["torch"]
    try:
        for x in tensors:
            if x is not None and x.requires_grad:
                if torch.is_grad_enabled():
                    return True
                break
    except AttributeError:   # (an operand of another kind beside torch's, numpy's or a number: its checks name it)
        return differentiated(*(x for x in tensors if isinstance(x, torch.Tensor)))
    forward_ad = torch_hooks(torch)[2]
    if forward_ad._current_level < 0:   # (no dual level open: no tangents to ask for)
        return False
    return any(isinstance(x, torch.Tensor) and forward_ad.unpack_dual(x).tangent is not None for x in tensors)


def refuse_host_options(what: str, operator: str, **options):
    """A differentiated call (`differentiated`) given what torch.ops.skc's operator does not take (an out, a config, a
    stream) is a LaunchError that names them."""
    given = [name for name, value in options.items() if value is not None]
    if given:
        raise skc.LaunchError(f"{what}: an operand requires grad, and {operator}, which computes the derivative, "
                              f"takes no {', '.join(given)}: call {what} under torch.no_grad() (or on detached "
                              f"tensors), or leave {', '.join(given)} out")


def traced_numbers(*values):
    """The values with each numpy scalar among them as the Python number it holds, for a traced call's operator; None
    where one is a torch tensor (the call then runs outside the graph). Dynamo traces a numpy scalar (np.float64, what
    1 / np.sqrt(d) gives) as a 0-d numpy array, a tensor in the graph, which the operators' float and bool arguments
    refuse; .item() gives its number (a constant of the graph where the traced code computed it)."""
    np, torch = sys.modules.get("numpy"), sys.modules["torch"]
    numbers = tuple(value.item() if np is not None and isinstance(value, np.ndarray) and value.ndim == 0 else value
                    for value in values)
    return None if any(isinstance(value, torch.Tensor) for value in numbers) else numbers


def outside_graph(function, *args, **kwargs):
    """function(*args, **kwargs) where torch.compile traces it, run as torch.compiler.disable runs a function: a
    graph break, and under fullgraph=True an error that names it (what torch.ops.skc's operators do not take)."""
    import torch

    if torch_hooks(torch)[1]() is not None:   # (torch.jit.trace records operators only: this call would run untraced)
        raise skc.LaunchError(f"{function.__name__}: torch.jit.trace records torch's operators, and this call passes "
                              "what torch.ops.skc's operator does not take (an out, a config, a stream or a padding by "
                              "name): leave it out, or trace with torch.compile, which runs such a call outside its "
                              "graph")
    return torch.compiler.disable(function)(*args, **kwargs)


def require_arrays(what: str, optional: tuple = (), **operands):
    """Each operand must be a tensor or an array (it has a shape and a dtype), or None where its name is `optional`:
    a list, a number or another object is a LaunchError that names it, before a plan key reads its facts."""
    for name, x in operands.items():
        if not (hasattr(x, "shape") and hasattr(x, "dtype")) and not (x is None and name in optional):
            raise skc.LaunchError(f"{what}: {name} is a {type(x).__name__}, not a tensor or array; pass a torch or "
                                  f"cupy tensor, a numpy array (numpy.asarray(...) of a list) or an skc array")


def viewable(what: str, **operands) -> list:
    """The operands, with each array of another framework that lacks what the host paths read of an array (.T,
    reshape(), strides in bytes and an itemsize: one exporting only __cuda_array_interface__ beside a shape and a
    dtype) replaced by a view of its memory that has them (skc.strided_view); one exporting only DLPack is a
    LaunchError that names it (they raised AttributeErrors from inside skc)."""
    found = []
    for name, x in operands.items():
        if x is not None and type(x) not in _VIEWS and not _has_views(x):
            if hasattr(x, "__cuda_array_interface__"):
                x = skc.strided_view(x, x.__cuda_array_interface__["shape"], skc.array_strides(x))
            elif hasattr(x, "__dlpack__"):
                raise skc.LaunchError(f"{what}: {name} is a {type(x).__name__}, which exports only DLPack, whose "
                                      f"views skc cannot make: pass torch.from_dlpack({name}) (no copy)")
        found.append(x)
    return found


def _has_views(x) -> bool:
    """Whether x has what the host paths read of an array (viewable), remembered per class as array facts are (its
    methods asked of the class: an instance's .T is a new array each time, cupy's a microsecond; and skc.DeviceArray
    is a lookup through skc's lazy imports)."""
    kind = type(x)
    if kind in _VIEWS:
        return True
    if hasattr(kind, "T") and hasattr(kind, "reshape") and hasattr(x, "strides") and hasattr(x, "itemsize"):
        _VIEWS.add(kind)
        return True
    if torch_type(kind) or isinstance(x, skc.DeviceArray):   # (remembered too: skc.DeviceArray is a lazy lookup,
        _VIEWS.add(kind)                                       # microseconds at each call of conv2d)
        return True
    return all(hasattr(x, method) for method in ("T", "reshape", "strides", "itemsize"))


_VIEWS: set = set()   # the array types the host paths read as they are: torch's, skc's, and those whose class has .T
#                       and reshape() and whose arrays strides and an itemsize


def check_has_data(what: str, **operands):
    """No operand is a torch meta tensor (shapes without memory: every address reads 0, so they looked like
    overlapping arrays), nor a torch tensor whose memory its data pointer and strides do not describe (sparse,
    nested, a lazily negated view, a FakeTensor, one of no storage: interop.check_torch_readable), nor, on a GPU,
    an array in another device's memory or the host's (check_on_device)."""
    for name, x in operands.items():
        if getattr(x, "is_meta", False):
            raise skc.LaunchError(f"{what}: {name} is a meta tensor, which holds no data to compute on; pass tensors "
                                  "on a device (under torch.compile, skc's operators give meta results themselves)")
        if x is not None and skc.is_torch_tensor_type(type(x)):
            _check_untransformed(what, name, x)
            skc.check_torch_readable(x, f"{what}: {name}", name)
    check_on_device(what, skc.current_device(), **operands)


# the torch operator each host entry point hands a traced or differentiated call to
_OPERATORS = {"matmul": "torch.ops.skc.matmul", "scaled matmul": "torch.ops.skc.scaled_matmul",
              "conv2d": "torch.ops.skc.conv2d", "attention": "torch.ops.skc.attention (attention_with_lse)"}


def _check_untransformed(what: str, name: str, x):
    """x is no tensor of a torch.func transform (vmap's batched tensor, grad's): it holds no memory a launch reads,
    and the host entry point hands calls to its operator under torch.compile and autograd only. torch.func.vmap runs
    the operator, so the error names it (the generic one said to write an operator, skc.torch.register_op)."""
    functorch = getattr(sys.modules["torch"]._C, "_functorch", None)
    if functorch is not None and functorch.is_functorch_wrapped_tensor(x):
        operator = _OPERATORS.get(what, "its torch.ops.skc operator")
        raise skc.LaunchError(f"{what}: {name} is a tensor of a torch.func transform (vmap's or grad's), which holds "
                              f"no memory a launch reads: under torch.func.vmap call {operator}, which vmap runs "
                              "(torch.func's derivative transforms are refused there by name)")


def check_on_device(what: str, device, **operands):
    """On a GPU `device`, every operand whose memory is known (torch tensors, skc arrays, numpy arrays) lies in that
    GPU's memory: a tensor map or a bound launch takes an operand's address as it is, so one on another GPU (or in
    host memory) was read and written there from this GPU's kernel, which only an operand passed as a pointer
    refused (attention's k on cuda:1 beside q on cuda:0 launched). Asked when a plan is made: its key holds the
    devices of torch's tensors and skc's arrays. In the interpreter, every such operand lies in host memory (one
    in a GPU's was named by the interpreter's first read of it, after an output in GPU memory was made)."""
    if device.kind not in ("cuda", "hip"):
        return _check_on_host(what, device, operands)
    elsewhere = "pass operands on one device, and make it the current one (skc.set_device)"
    for name, x in operands.items():
        if x is None:
            continue
        if skc.is_torch_tensor_type(type(x)):
            where = x.device
            if where.type == "cuda" and where.index == device.index:   # (a ROCm torch's GPUs are "cuda" too)
                continue
            found, fix = str(where) if where.type != "cuda" else f"cuda:{where.index}", elsewhere
            if where.type == "cpu":   # (torch's words: all tensors on one device)
                fix = (f"expected all tensors on one device: copy it to the GPU ({name}.to('cuda:{device.index}')), "
                       "or run the interpreter on CPU tensors (skc.set_device('interpreter'))")
        elif isinstance(x, skc.DeviceArray):
            if x.device is device:
                continue
            found, fix = str(x.device), elsewhere
        elif type(x).__module__.split(".")[0] == "numpy" and hasattr(x, "ctypes"):
            found = "host memory (a numpy array)"
            fix = "copy it to the GPU first (skc.to_device(x), or torch.from_numpy(x).cuda())"
        else:
            continue   # (an array interface that names no device: cupy's, read where it says)
        raise skc.LaunchError(f"{what}: {name} is on {found}, the kernel runs on {device} (skc's current device): "
                              f"{fix}")


def _check_on_host(what: str, device, operands: dict):
    """check_on_device for the interpreter: torch's tensors on the CPU, skc's arrays the interpreter's."""
    for name, x in operands.items():
        if x is None:
            continue
        if skc.is_torch_tensor_type(type(x)) and x.device.type != "cpu":
            found, fix = f"{x.device.type}:{x.device.index or 0}", f"pass CPU tensors ({name}.cpu())"
        elif isinstance(x, skc.DeviceArray) and x.host is None:
            found, fix = str(x.device), f"pass host arrays ({name}.numpy())"
        else:
            continue
        raise skc.LaunchError(f"{what}: {name} is on {found}, the kernel runs in the interpreter (skc's current "
                              f"device): {fix}, or make {found} the current device (skc.set_device('{found}'))")


def facts_failed(what: str, error: Exception, **operands):
    """A plan key that could not read an operand's facts (torch raises for the strides of a sparse CSR tensor): the
    LaunchError check_has_data gives for the operands, else the error itself."""
    check_has_data(what, **operands)
    raise error


def check_writeable(what: str, out):
    """A numpy out must be writeable (a read-only one failed inside the kernel, after it ran)."""
    flags = getattr(out, "flags", None)
    if flags is not None and getattr(flags, "writeable", True) is False:
        raise skc.LaunchError(f"{what}: out is a read-only array; pass a writeable one (or none)")


def check_own_memory(what: str, out):
    """out's elements lie apart (an out expanded over a dimension, a stride of 0, would have every product written
    to the same memory, which then holds whichever came last)."""
    if out is not None and overlaps_itself(out):
        raise skc.LaunchError(f"{what}: out (shape {tuple(out.shape)}, strides {element_strides(out)}) has elements "
                              "that share memory (an expanded or stride-0 view); pass an out whose every element is "
                              "its own (out.contiguous(), or none)")


def overlaps_itself(x) -> bool:
    """Whether two of x's elements may share memory: its dimensions, by stride, do not each step past all the
    ones before (the test torch's and numpy's copies use to tell a view that may overlap)."""
    if 0 in tuple(x.shape):
        return False   # (no elements at all)
    reach = 1   # elements the smaller dimensions span
    for stride, size in sorted((abs(s), n) for s, n in zip(element_strides(x), x.shape) if n > 1):
        if stride < reach:
            return True
        reach += stride * (size - 1)
    return False


def check_activation(what: str, activation):
    """activation is a name or None: anything else is a LaunchError here, before a plan key holds it (a list would
    fail to hash there); EpilogueSpec.check() then refuses a name it does not know."""
    if activation is not None and type(activation) is not str:
        raise skc.LaunchError(f"{what}: activation is None, 'relu', 'gelu' or 'silu', found {activation!r}")


TORCH_TYPES: set = set()   # the torch tensor types seen: a host path keys their calls by their facts read in place


def torch_type(kind: type) -> bool:
    """Whether `kind` is torch's tensor type (whose facts are shape, stride(), dtype and device); remembered in
    TORCH_TYPES, so a host path tests `kind in TORCH_TYPES or torch_type(kind)`."""
    found = (_FACTS.get(kind) or _facts_function(kind)) is _torch_facts
    if found:
        TORCH_TYPES.add(kind)
    return found


def remember(plans: dict, key, plan, limit: int = 1024):
    """Keep `plan` under `key` in a bounded plan cache (cleared when full: plans are cheap to remake); return it."""
    if len(plans) >= limit:
        plans.clear()
    plans[key] = plan
    return plan


# -- outputs that share memory with inputs ----------------------------------------------------------------------------
def _layout(x):
    """(address, shape, element strides, item bytes) of an array's elements, or None where they are not known (an
    interpreter's skc array is read through its host array)."""
    if isinstance(x, skc.DeviceArray) and x.host is not None:
        x = x.host
    try:
        item = int(x.itemsize) if hasattr(x, "itemsize") else int(x.element_size())
        return skc.pointer_function(x)(x), tuple(int(n) for n in x.shape), element_strides(x), item
    except (skc.SkcError, AttributeError, TypeError, ValueError):
        return None


def _bounds(layout) -> tuple:
    """[first byte, past the last byte) of a layout's elements (empty for an empty array)."""
    start, shape, strides, item = layout
    if 0 in shape:
        return start, start
    low = sum((n - 1) * s for n, s in zip(shape, strides) if s < 0)
    high = sum((n - 1) * s for n, s in zip(shape, strides) if s > 0)
    return start + low * item, start + (high + 1) * item


def _runs(layout) -> tuple:
    """A layout's elements as runs of adjacent bytes: (their sorted start addresses, the runs' length in bytes)."""
    import numpy as np

    start, shape, strides, item = layout
    inner = bool(shape) and strides[-1] == 1
    outer, outer_strides = (shape[:-1], strides[:-1]) if inner else (shape, strides)
    starts = np.full(1, start, np.int64)
    for n, s in zip(outer, outer_strides):
        starts = (starts[:, None] + np.arange(n, dtype=np.int64)[None, :] * (s * item)).reshape(-1)
    return np.sort(starts), (shape[-1] if inner else 1) * item


def overlaps(x, y) -> bool:
    """Whether arrays x and y share an element's bytes (exact: two views of one buffer that interleave without
    sharing, such as two column blocks, do not overlap); False where an address is not known."""
    import numpy as np

    lx, ly = _layout(x), _layout(y)
    if lx is None or ly is None:
        return False
    (x0, x1), (y0, y1) = _bounds(lx), _bounds(ly)
    if x1 <= y0 or y1 <= x0 or x0 == x1 or y0 == y1:
        return False   # (the common case: separate memory, decided without listing any element)
    (xs, x_run), (ys, y_run) = _runs(lx), _runs(ly)
    # the last run of x that starts before each run of y ends reaches furthest: they overlap if it reaches that run
    last = np.searchsorted(xs, ys + y_run, side="left") - 1
    return bool(np.any((last >= 0) & (xs[np.maximum(last, 0)] + x_run > ys)))


def unread_stand_in(out, cuda: bool):
    """What a launch passes for a pointer the kernel never reads (c or bias where there is none): out itself, or,
    for the interpreter, which takes only dense arrays as pointers, one zero of out's type where out is not dense
    row-major (a batched out of strided rows, a channels_last conv2d out; a strided out was refused as "argument
    'c_in' is not contiguous")."""
    return out if cuda or contiguous(out) else zeros_like(out, 1)


def read_in_place(out, c):
    """c, or None where it is out itself element for element: the epilogue reads c as a dense row-major array, each
    element just before it writes out's at the same place, so c may be out (or its very view: the same address,
    shape and strides, dense), but no other view that shares its memory."""
    if c is None or c is out:
        return None
    lo = _layout(out)
    return None if lo is not None and lo == _layout(c) and contiguous(out) else c


def check_no_overlap(what: str, out, **inputs):
    """A LaunchError when `out` shares memory with one of `inputs` (None skipped): a kernel that still reads an
    input after writing part of out would read its own results (a wrong answer, which element depending on the
    order the tiles ran in)."""
    for name, x in inputs.items():
        if x is not None and overlaps(out, x):
            raise skc.LaunchError(f"{what}: out shares memory with {name}, which the kernel reads while it writes "
                                  f"out; pass an out in memory of its own (or none)")


def misaligned(what: str, *operands) -> tuple:
    """For each (name, array, address) of an operand that a tensor map (or 16-byte copies) reads or writes, whether
    it starts off a 16-byte boundary, which no map addresses: the host path then runs the call over an aligned copy
    of it (host_plans.aligned_copy: torch's tensors and numpy's arrays). Another array there is a LaunchError that
    names it (the driver's own refusal named no operand, and the interpreter, which reads any address, ran it).
    An operand given as (name, None, None) is not asked."""
    found = tuple(address is not None and address % 16 != 0 for _, _, address in operands)
    for (name, x, address), off in zip(operands, found):
        if off and not paddable(x):
            raise skc.LaunchError(f"{what}: {name} starts at address {address:#x}, not on a 16-byte boundary, which "
                                  f"TMA needs (16-byte aligned): pass a copy in new memory ({name}.copy() for a cupy "
                                  f"array; skc copies torch tensors and numpy arrays itself)")
    return found


_ALIGNED = (False, False, False)   # (GemmPlan._misaligned: none of a, b and out copied)


def _named_maps(make, first, name: str) -> "MapsByAddress":
    """MapsByAddress(make, first), whose refusal of the first tensor's geometry ("TMA needs every stride to be a
    multiple of 16 bytes") names the operand."""
    try:
        return MapsByAddress(make, first)
    except skc.LaunchError as error:
        raise skc.LaunchError(f"{name}: {error}") from None


# -- tensor maps per address -----------------------------------------------------------------------------------------
class MapsByAddress:
    """One operand's tensor maps, encoded once per address: `make(tensor)` gives the operand's (checked) TensorMap
    for the first tensor (`first`, when the plan has it, else the first call's); later addresses reuse its
    geometry (`encoded_at` patches the address into the descriptor where the driver allows), except im2col maps,
    which `make` encodes anew per new address. Called with a tensor of the plan's facts (or a view of the same
    memory), it gives the EncodedTensorMap a launch passes."""

    __slots__ = ("im2col", "make", "pointer", "seen", "template")

    def __init__(self, make, first=None):
        self.make, self.template, self.pointer, self.seen, self.im2col = make, None, None, {}, False
        if first is not None:
            self._first(first)

    def _first(self, tensor):
        template = self.template = self.make(tensor)
        self.pointer = template.pointer_function()
        self.im2col = isinstance(template, skc.Im2colTensorMap)
        if self.im2col:
            self.seen[self.pointer(tensor)] = _encoded(template)
        template.tensor = None  # a plan keeps the geometry, never the caller's tensors alive

    def __call__(self, tensor):
        if self.pointer is None:
            self._first(tensor)
        pointer = self.pointer(tensor)
        found = self.seen.get(pointer)
        if found is None:
            if self.im2col:
                found = _encoded(self.make(tensor))
            else:
                found = self.template.encoded_at(pointer)  # checks the address's alignment
            remember(self.seen, pointer, found, limit=64)
        return found


class Direct:
    """A GemmPlan operand passed as the array itself (a pointer, for a vector loader): `make(tensor)` at each call."""

    __slots__ = ("make",)

    def __init__(self, make):
        self.make = make

    def __call__(self, tensor):
        return self.make(tensor)


def _encoded(tensor_map):
    return skc.EncodedTensorMap(tensor_map.descriptor_bytes, tensor_map.spec, tensor_map.dtype)


# -- a ready GEMM launch ---------------------------------------------------------------------------------------------
class GemmPlan:
    """The GEMM composition over one checked geometry, ready (matmul's Hopper path and conv2d's): its configuration,
    grid and sizes ((M, N, K), with the batch count first for a batch in one launch), and a function per operand
    (a, b, out) from what the caller passes to that operand's tensor map. On a GPU a call with operands at addresses
    seen before (and the same alpha and beta) is a bound launch found by those addresses; a new set of addresses
    binds one: the maps encoded once per address (`first` gives an operand's first tensor, whose geometry is then
    checked at once), the launcher looked up once and split-K's buffers made once. Elsewhere (the interpreter)
    each call makes the maps over the arrays. `empty(a)` makes the output when a call passes none. A maker wrapped
    in `Direct` passes its operand as an array (a pointer) rather than a tensor map. A plan serves the operand
    types it was made for (its callers' keys hold them), and keeps addresses, never the caller's tensors."""

    def __init__(self, device, cfg, gemm: tuple, makers: tuple, first=(None, None, None), batches=None, empty=None,
                 names=("matmul", "a", "b"), aligned=None):
        from .gemm import matmul_batched_kernel, matmul_kernel, matmul_split_kernel, matmul_stream_k_kernel

        self.kernel = (matmul_split_kernel if cfg.split_k > 1 else matmul_batched_kernel if batches else
                       matmul_stream_k_kernel if cfg.shares_tiles else matmul_kernel)
        self.cfg, self.gemm, self.makers, self.empty, self.batches = cfg, tuple(gemm), makers, empty, batches
        self.names = names   # (the host function, its names of a and b): what an overlap error says
        self.sizes = self.gemm if batches is None else (batches, *self.gemm)
        self.grid = TileScheduler.grid(gemm[0], gemm[1], cfg.tile_m, cfg.tile_n, device.cluster_blocks(cfg.cluster),
                                       cfg.cluster_m, cfg.split_k, batches or 1, cfg.cluster_n)
        self.cuda = device.kind == "cuda"
        # split-K's and stream-K's workspace and counters, a set per launch stream
        self.buffers = (StreamBuffers(lambda a, zeros: split_buffers(a, gemm[0], gemm[1], cfg, zeros))
                        if cfg.split_k > 1 else
                        StreamBuffers(lambda a, zeros: stream_k_buffers(a, self.grid, cfg, zeros))
                        if cfg.shares_tiles else None)
        self.maps = [make if isinstance(make, Direct) else _named_maps(make, tensor, f"{names[0]}: {name}")
                     for make, tensor, name in zip(makers, first, (*names[1:], "out"))]
        # (a, b, out: whether each must start on a 16-byte boundary: those read through maps, and any `aligned` says;
        # split-K's out is none: its last share stores through a pointer, whatever out's maker)
        mapped = tuple(not isinstance(make, Direct) for make in makers)
        self.aligned = (mapped[0], mapped[1], mapped[2] and cfg.split_k == 1) if aligned is None else tuple(aligned)
        # (addresses of a, b, out, c, bias; alpha, beta; the stream where it picks buffers) -> its bound launch
        self.bound = Bindings(self.kernel[self.grid, cfg.threads], cfg)
        self.address = address_functions(5)   # a, b, out, c, bias

    def __call__(self, a, b, out, c=None, bias=None, alpha=None, beta=None, stream=None):
        if out is None:
            with on_stream(a, stream):   # (the launch's stream's memory, as the kernel writing it: on_stream)
                out = self.empty(a)
        what, a_name, b_name = self.names
        if not self.cuda:   # the interpreter: maps made over the arrays each call
            check_no_overlap(what, out, **{a_name: a, b_name: b, "c": read_in_place(out, c), "bias": bias})
            copies = self._misaligned(a, b, out, [self.address[i](x) for i, x in enumerate((a, b, out))])
            if any(copies):
                return self._through_aligned_copies(copies, a, b, out, c, bias, alpha, beta, stream)
            buffers = () if self.buffers is None else self.buffers(a, stream)
            self.kernel[self.grid, self.cfg.threads](*self.arguments(self.makers, a, b, out, c, bias, alpha, beta,
                                                                     buffers), self.cfg, stream=stream)
            return out
        captured = False
        if self.buffers is not None:   # the launch's stream picks its buffers: known now, and part of the key
            stream = skc.launch_stream(stream, a)
            captured = capturing(a, stream)    # (buffers of its own, never bound: StreamBuffers)
        # the scalars key by their bits (float.hex: -0.0 is not 0.0), never as objects a key would keep alive
        alpha_bits = None if alpha is None else real(alpha, "alpha").hex()
        beta_bits = None if beta is None else real(beta, "beta").hex()
        address = self.address
        key = (address[0](a), address[1](b), address[2](out), None if c is None else address[3](c),
               None if bias is None else address[4](bias), alpha_bits, beta_bits,
               None if self.buffers is None else stream)
        bound = None if captured else self.bound.get(key)
        if bound is not None:   # (its addresses were checked when they were new)
            bound(stream)
        else:
            check_no_overlap(what, out, **{a_name: a, b_name: b, "c": read_in_place(out, c), "bias": bias})
            copies = self._misaligned(a, b, out, key)
            if any(copies):   # (never bound: each such call copies)
                return self._through_aligned_copies(copies, a, b, out, c, bias, alpha, beta, stream)
            buffers = () if self.buffers is None else self.buffers(a, stream, captured)
            try:
                args = self.arguments(self.maps, a, b, out, c, bias, alpha, beta, buffers)
                if captured:
                    self.bound.ready(args)(args, stream)
                else:
                    self.bound.launch(key, args, stream)
            finally:
                released(buffers)   # (a captured call's own, beside arrays other than torch's: StreamBuffers)
        return out

    def _misaligned(self, a, b, out, addresses) -> tuple:
        """Which of a, b and out (at `addresses`; out None: not asked) to copy: those that must start on a 16-byte
        boundary (read or written through a tensor map, or the vector im2col loader's 16-byte copies) and do not
        (a view one element into its rows, x[:, 1:], or into a buffer); misaligned(), which refuses by name one the
        host cannot copy."""
        if not any(address % 16 for address, needed in zip(addresses, self.aligned) if needed and address is not None):
            return _ALIGNED   # (the common call, on every new address: no generator of the operands made)
        what, a_name, b_name = self.names
        return misaligned(what, *((name, x, address) if needed and x is not None else (name, None, None)
                                  for name, x, address, needed in zip((a_name, b_name, "out"), (a, b, out), addresses,
                                                                      self.aligned)))

    def check_operands(self, a, b):
        """On a GPU, encode a's and b's maps now (their geometry checked when the plan is made, not at its first
        launch), each unless it starts off a 16-byte boundary: a call runs over an aligned copy of it then (and a
        copy the host cannot make is refused here, by name)."""
        if self.cuda:
            copies = self._misaligned(a, b, None, [self.address[0](a), self.address[1](b), None])
            for make, x, copied in zip(self.maps, (a, b), copies):
                if not copied:
                    make(x)

    def _through_aligned_copies(self, copies, a, b, out, c, bias, alpha, beta, stream):
        """The call over copies in new (aligned) memory of their strides, the plan's geometry, of those of a, b and
        out that `copies` names, made in the launch's stream (out's copy written back into out after the launch)."""
        with on_stream(a, stream), without_grad(a):
            a_copy, b_copy, out_copy = (aligned_copy(x) if copy else x for x, copy in zip((a, b, out), copies))
            self(a_copy, b_copy, out_copy, c, bias, alpha, beta, stream)
            if copies[2]:
                write_into(out, out_copy)
        return out

    def arguments(self, maps, a, b, out, c, bias, alpha, beta, buffers=()) -> tuple:
        """The kernel's run-time arguments: a's and b's maps (or arrays), out's (or, split-K, out) and the plan's
        `buffers` (split-K's or stream-K's workspace and counters), the sizes, c (out when none), bias (c when
        none), alpha and beta."""
        if c is None:
            c = unread_stand_in(out, self.cuda)
        # (split-K: the last share of a tile stores through a pointer to a row-major out; stream-K: a tile split
        # between two blocks meets in the buffers)
        outputs = (out if self.cfg.split_k > 1 else maps[2](out), *buffers)
        return (maps[0](a), maps[1](b), *outputs, *self.sizes, c, c if bias is None else bias,
                1.0 if alpha is None else real(alpha, "alpha"), 0.0 if beta is None else real(beta, "beta"))


class Bindings:
    """A plan's launches of `kernel` (a kernel over its grid and block, `kernel[grid, block]`) with the compile-time
    arguments `constants`: its ready launch, looked up at the first call (`ready(args)`), and its bound launches
    (ReadyLaunch.bind) by the key of their operands' addresses and scalars. A key seen the first time launches
    through the ready launch, which checks and packs the arguments at each call: binding costs more than that, and a
    caller whose outputs are new memory at each call never sees a key again. Seen again, the key binds, and a call
    with it is then one lookup and the driver call. Both caches are bounded."""

    __slots__ = ("kernel", "constants", "ready_launch", "bound", "seen")

    def __init__(self, kernel, *constants):
        self.kernel, self.constants, self.ready_launch = kernel, constants, None
        self.bound, self.seen = {}, {}

    def ready(self, args):
        """The ready launch of the plan's kernel (looked up once, with the first call's run-time arguments)."""
        if self.ready_launch is None:
            self.ready_launch = self.kernel.ready(*args, *self.constants)
        return self.ready_launch

    def get(self, key):
        return self.bound.get(key)

    def values(self):
        return self.bound.values()

    def __len__(self):
        return len(self.bound)

    def launch(self, key, args, stream):
        """Launch `args` (their key not bound yet) through the ready launch; bind them if their key was seen
        before."""
        launch = self.ready(args)
        if key in self.seen:
            remember(self.bound, key, launch.bind(args), limit=256)(stream)
        else:
            remember(self.seen, key, True, limit=1024)
            launch(args, stream)


def address_functions(count: int) -> list:
    """Per operand of a plan, the function giving its address (skc.pointer_function of its type), each found at the
    first call given an operand there: a plan serves one type per operand (its key holds them)."""
    functions: list = [None] * count
    functions[:] = [_learning(functions, i) for i in range(count)]
    return functions


def _learning(functions: list, i: int):
    """Operand i's address function until its first call, which puts the function of its operand's type in its
    place."""
    def learn(x):
        functions[i] = skc.pointer_function(x)
        return functions[i](x)
    return learn


def unsplit_unless_row_major(cfg, out):
    """cfg, without split-K when the call's `out` is not row-major: split-K's last share stores through a pointer to
    a row-major out."""
    if getattr(cfg, "split_k", 1) > 1 and out is not None and not row_major(out):
        return replace(cfg, split_k=1)
    return cfg


class StreamBuffers:
    """A plan's split-K or stream-K buffers, a set per launch stream: a launch takes its counters from zero back to
    zero, so two launches running at once on two streams must not share them (they would add each other's partial
    sums, and stream-K's waits could wait for ever; `shared`: one set for every stream, as kept_stand_in's).
    `make(a, zeros)` makes a zero-filled set on a's device with `zeros` (host_plans.kept_zeros for a set kept, which
    waits for its fill; for a launch a CUDA graph captures, torch's from the graph's pool, or beside other arrays
    memory in the launch stream's order that its caller frees there after the launch, `released`); a kept set's
    fill is waited for once, and a launch on a stream other than the arrays' current one waits for the device."""

    __slots__ = ("make", "sets", "shared")

    def __init__(self, make, shared: bool = False):
        self.make, self.sets, self.shared = make, {}, shared   # (shared: one set for every stream)

    def __call__(self, a, stream, captured: bool = None):
        if captured if captured is not None else capturing(a, stream):
            # a launch a CUDA graph captures: buffers of its own, from the graph's memory and zero-filled in the
            # graph (a set made now and kept would be zero only once that graph replays, and the graphs and calls
            # sharing it could run at once); its callers never bind such a launch; filled in the launch's stream.
            # Beside torch's tensors, torch's graph pool holds them; beside other arrays (cupy's), memory in the
            # launch stream's order, the graph's own: its callers free it there after the launch (released)
            if not getattr(a, "is_cuda", False):
                return self.make(a, lambda a, shape, dtype: skc.zeros(shape, dtype, stream=stream))
            with on_stream(a, stream):
                return self.make(a, zeros_like)
        stream = None if self.shared else stream
        found = self.sets.get(stream)
        if found is None:
            found = self.sets[stream] = self.make(a, kept_zeros)
            if stream is not None and stream != skc.launch_stream(None, a):
                skc.synchronize()
        return found


def released(buffers):
    """Free the stream-ordered buffers StreamBuffers made for a call a CUDA graph captured over arrays other than
    torch's, in the launch stream's order after its launch: the graph's free nodes (the graph allocates them at each
    replay, and no call or other graph shares them). Torch's, from its graph's pool, are torch's to free."""
    for buffer in buffers:
        if isinstance(buffer, skc.DeviceArray) and getattr(buffer, "stream", None) is not None:
            buffer.release()


def kept_stand_in(shape, dtype: str) -> StreamBuffers:
    """A plan's stand-in for an operand its kernel does not read or write in this configuration (a log-sum-exp
    nobody asked for, a tile counter the schedule takes none from): one for every stream, made once and kept, or for
    a launch a CUDA graph captures, the graph's for the call, made in the launch's stream (a plan may be made under
    capture)."""
    return StreamBuffers(lambda a, zeros: zeros(a, shape, dtype), shared=True)


def kept_zeros(a, shape, dtype: str):
    """A zero-filled array of `shape` and `dtype` where a lives, which a plan keeps past the call (buffers per launch
    stream, stand-ins). Beside torch's CUDA tensors it is the driver's memory (skc.zeros, seen through a tensor),
    never torch's caching allocator's: torch.compile(mode="reduce-overhead") routes torch's allocations into its
    CUDA graphs' pool while it warms up and records, and a plan first made then would keep memory of that pool,
    which torch refuses ("tensor(s) in the cudagraph pool not tracked as outputs"). Never called while a CUDA graph
    captures the stream (the callers take memory of the graph's for the call then: the driver's would be refused)."""
    if skc.current_device().kind != "cuda" or not (getattr(a, "is_cuda", False) or device_array(a)):
        return zeros_like(a, shape, dtype)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    array = skc.zeros(shape, dtype)
    # (the fill runs on the driver's default stream, which torch's streams, and a cupy stream made non_blocking=True,
    # need not wait for: a first launch there read counters not yet zero)
    skc.synchronize()
    return _seen_by_torch(array, a) if getattr(a, "is_cuda", False) else array


def kept_empty(a, shape):
    """An uninitialized array of `shape` and a's dtype where a lives, which a plan keeps past the call (the padded
    rows' copies): beside torch's CUDA tensors the driver's memory, as kept_zeros' and for its reason."""
    if not getattr(a, "is_cuda", False) or skc.current_device().kind != "cuda":
        return empty_like(a, shape)
    # (the driver's array of a's element size, as integers: skc's bf16 is uint16 storage, which torch may not read)
    array = skc.empty(tuple(shape), f"int{8 * a.element_size()}")
    return _seen_by_torch(array, a).view(a.dtype)


def _seen_by_torch(array, a):
    """The skc array `array` as a torch tensor on a's device (which keeps it alive)."""
    import torch

    with torch.inference_mode(False):   # (an inference tensor could not be written outside inference_mode)
        return torch.as_tensor(array, device=a.device)


def split_buffers(a, M: int, N: int, cfg, zeros=None) -> tuple:
    """Split-K's fp32 workspace (a record of a strip's 64 x tile_n values for each share of each strip) and its
    zero-filled i32 counters (one a strip), on a's device; the kernel leaves the counters zero, so a plan makes them
    once per launch stream (StreamBuffers)."""
    from .gemm import split_counters

    strips = split_counters(M, N, cfg)
    zeros = zeros or zeros_like
    return zeros(a, strips * cfg.split_k * 64 * cfg.tile_n, "float32"), zeros(a, strips, "int32")


def stream_k_buffers(a, grid: int, cfg, zeros=None) -> tuple:
    """Stream-K's fp32 workspace (a record of 64 x tile_n values for each 64-row strip of a tile at each of the
    grid's slots: a block id) and its zero-filled i32 counters (one a strip), on a's device; the kernel leaves the
    counters zero (as split_buffers')."""
    strips = grid * (cfg.tile_m // 64)
    zeros = zeros or zeros_like
    return zeros(a, strips * 64 * cfg.tile_n, "float32"), zeros(a, strips, "int32")


def tile_counter(a, zeros=None):
    """A zero-filled i32 on a's device: the counter from which a kernel's blocks take tiles at run time (the kernel
    leaves it zero, so a plan makes one per launch stream: StreamBuffers)."""
    return (zeros or zeros_like)(a, 1, "int32")


def zeros_like(a, shape, dtype: str = None):
    """A zero-filled array of `shape` (a count: one dimension) and `dtype` (by default a's) where a lives (as
    empty_like makes one: beside another framework's GPU array, an skc array on the current device)."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if hasattr(a, "new_zeros"):  # torch
        import torch

        return a.new_zeros(shape) if dtype is None else a.new_zeros(shape, dtype=getattr(torch, dtype))
    if isinstance(a, skc.DeviceArray) or hasattr(a, "__cuda_array_interface__"):
        # (skc's arrays, and a plan's buffers beside another framework's GPU arrays, cupy's: on the current device)
        return skc.zeros(shape, dtype or a.dtype)
    import numpy as np

    return np.zeros(shape, dtype or a.dtype)


# -- tiles that fill the GPU -------------------------------------------------------------------------------------------
# (tile_m, tile_n) by preference; 192-row tiles (three consumer warpgroups) only where the 128-row ones leave a
# wave part-empty: they measured 1.02-1.28x of 128x128 there (512x7x7 conv: 33 x 4 tiles on 132 SMs), 0.91x
# with stride 2 or 16 k-steps (benchmarks/NOTES.md)
TILES = ((128, 256), (128, 128), (192, 128), (128, 64), (64, 256), (64, 128), (64, 64))


def wave_fill(M: int, N: int, tile_m: int, tile_n: int, multiprocessors: int) -> float:
    """The busy fraction of the SMs over the waves of output tiles."""
    tiles = -(-M // tile_m) * -(-N // tile_n)
    return tiles / (-(-tiles // multiprocessors) * multiprocessors)


def filling_config(M: int, N: int, multiprocessors: int, max_shared_bytes: int, stages=range(2, 9), k_steps=None,
                   **fields):
    """A MatmulConfig (with `fields`) of the largest tiles that fill the SMs' waves to 85 % (the fullest
    otherwise), 64 columns wide only where N is (narrower tiles ran at 0.7x on the H200: benchmarks/NOTES.md) or
    where K is one k-step (`k_steps`: the tiles are then copies bound by their stores, and 128 x 64 ran at
    1.04x of 128 x 256), with as many stages as fit in shared memory."""
    from .config import MatmulConfig

    narrow = N <= 64 or k_steps == 1
    fits = [(m, n) for m, n in TILES if n <= max(64, -(-N // 64) * 64) and (n > 64) != narrow]
    fill = {t: wave_fill(M, N, *t, multiprocessors) for t in fits}
    tile_m, tile_n = next((t for t in fits if fill[t] >= 0.85), max(fits, key=fill.get))
    config = MatmulConfig(tile_m=tile_m, tile_n=tile_n, consumers=tile_m // 64, **fields)
    fitting = [n for n in stages if replace(config, stages=n).shared_bytes() <= max_shared_bytes]
    return replace(config, stages=max(fitting or [2]))


def real(value, name: str) -> float:
    """A GEMM's alpha or beta as a float: a Python or numpy real number (or a one-element tensor) that the f32 the
    kernel takes it as holds (infinities and NaN as given); anything else (a string, a complex number, 1e300) an
    error that names it."""
    if type(value) is float and -F32_MAX <= value <= F32_MAX:
        return value
    if type(value) is int or not isinstance(value, (str, bytes)) and (isinstance(value, numbers.Real)
                                                                      or not isinstance(value, numbers.Complex)):
        if not complex_or_date(value):
            refuse_lost_gradient(value, "matmul", name, _SCALAR_FIXES[name])
            refuse_read_under_capture(value, name)
            try:
                number = float(value)
            except OverflowError:   # an int past float's range
                raise skc.LaunchError(f"{name} is an int of {value.bit_length()} bits, past the range of a float "
                                      "(the kernel takes it as f32)") from None
            except (TypeError, ValueError, RuntimeError):   # (RuntimeError: torch's, for a tensor float() cannot take)
                number = None
            if number is not None:
                if math.isfinite(number) and abs(number) > F32_MAX:   # (torch.addmm refuses it too)
                    raise skc.LaunchError(f"{name} = {number!r} is past the range of the f32 the kernel takes it as "
                                          f"(it would be infinite there): pass one of magnitude {F32_MAX:.8g} or "
                                          "less, or scale the operands instead")
                return number
    raise skc.LaunchError(f"{name} must be a real number, found {type(value).__name__} {value!r}")


F32_MAX = 3.4028234663852886e38   # float32's largest finite value


def check_stream_given(stream) -> None:
    """A call with nothing to launch (an empty problem) checks its stream= as a launch would: a LaunchError for what no
    stream is."""
    if stream is not None:
        skc.launch_stream(stream)


# (how a caller differentiates in a scalar the kernels read as a number)
_SCALAR_FIXES = {"alpha": "multiply the result by it (alpha * matmul(a, b))",
                 "beta": "fold it into c (c=beta * c, and no beta)"}


def refuse_lost_gradient(value, what: str, name: str, fix: str) -> None:
    """A scalar option (a GEMM's alpha or beta, attention's scale) given as a torch tensor that autograd follows is
    refused by name: the kernels read it as a number, which carries no gradient (the call ran, and the scalar's
    gradient was lost silently: the result had no grad_fn, or, where an operand required grad, one without the
    scalar's share). `fix` says how to differentiate in it."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor) and differentiated(value):
        why = "requires grad" if value.requires_grad and torch.is_grad_enabled() else "carries a forward-mode tangent"
        raise skc.LaunchError(f"{what}'s {name} is a tensor that {why}, and the kernel reads it as a number, which "
                              f"carries no gradient: pass {name}.detach() or a number, or {fix} to differentiate in "
                              "it")


def refuse_read_under_capture(value, name: str, argument: str = None):
    """A number given as a CUDA tensor is read on the host (a copy and a wait for it): under a CUDA graph's capture
    that is refused by name (the driver refuses the wait, which ends the capture, and torch's error came from the
    tensor's repr in skc's message; a replay would not read the tensor again anyway). `argument`: the keyword the
    caller passes it by, if not `name`."""
    if getattr(value, "is_cuda", False) and capturing(value):
        argument = argument or name
        raise skc.LaunchError(f"{name} is a CUDA tensor, which the host reads (a copy and a wait), and a CUDA graph "
                              f"captures the stream, which allows no wait (nor would a replay read {argument} again): "
                              f"pass {argument} as a number ({argument}.item() before the capture)")


def beta_without_c(beta) -> str:
    """What a GEMM says of a beta (not 0) given with no c: beta scales c alone, never out (as torch.addmm's beta
    scales its input; a BLAS caller who expects out = alpha·AB + beta·out would find out overwritten)."""
    return (f"matmul: beta={beta!r}, but beta scales c, and no c is given: pass c=out to add to out (out = alpha·a@b "
            "+ beta·out), or leave beta out")


def complex_or_date(value) -> bool:
    """Whether a number float() would take is a complex or a date: a numpy complex (or 0-d array of one) gives its
    real part, a complex tensor its real part or a RuntimeError, a numpy date or duration its count."""
    is_complex = getattr(value, "is_complex", None)   # (torch's tensors)
    return ((callable(is_complex) and is_complex() is True)
            or getattr(getattr(value, "dtype", None), "kind", None) in ("c", "m", "M"))


def check_epilogue_operands(what: str, rows, cols: int, c=None, bias=None):
    """c must be rows x cols and bias hold cols values: the kernel reads c as rows of `cols` elements and bias by
    column, so any other shape would read other elements, or past the end (the messages are torch.ops.skc's)."""
    if bias is not None and tuple(bias.shape) != (cols,):
        raise skc.LaunchError(f"{what}: bias has shape {tuple(bias.shape)}, expected ({cols},)")
    if c is not None and tuple(c.shape) != (rows, cols):
        raise skc.LaunchError(f"{what}: c has shape {tuple(c.shape)}, expected ({rows}, {cols})")
    check_real_operands(what, c=c, bias=bias)
    for name, x in (("c", c), ("bias", bias)):
        if x is not None and not contiguous(x):
            raise skc.LaunchError(f"{what}: {name} (strides {element_strides(x)}) must be contiguous: pass a "
                                  f"contiguous copy ({name}.contiguous() in torch, np.ascontiguousarray in numpy)")


def check_real_operands(what: str, **operands):
    """The epilogue reads c and bias as real numbers (converting each to f32): a complex, date or duration array is
    refused by its name here (the launch named the kernel's own parameter, 'c_in')."""
    for name, x in operands.items():
        if x is not None and complex_or_date(x):
            raise skc.LaunchError(f"{what}: {name} is {x.dtype}, which the epilogue cannot read as real numbers: pass "
                                  f"{name} of a real type (the output's)")


def view(x, shape):
    """A view of a contiguous array (torch, numpy, skc, host_plans.viewable's) with another shape; never a copy."""
    return x.view(*shape) if hasattr(x, "data_ptr") else x.reshape(shape)


def empty_like(a, shape):
    """An uninitialized array of `shape` and a's dtype where a lives (a torch tensor, an skc or numpy array; beside
    another framework's GPU array, an skc array on the current device, which exports __cuda_array_interface__)."""
    if hasattr(a, "new_empty"):  # torch
        return a.new_empty(shape)
    if isinstance(a, skc.DeviceArray) or hasattr(a, "__cuda_array_interface__"):   # (numpy's memory: the host's)
        return skc.empty(shape, a.dtype)
    import numpy as np

    return np.empty(shape, a.dtype)


def element_strides(x) -> tuple:
    """x's strides in elements: torch's stride(), numpy's and cupy's strides in bytes, skc arrays' row-major ones."""
    stride = getattr(x, "stride", None)
    if callable(stride):
        return tuple(stride())
    if hasattr(x, "strides") and hasattr(x, "itemsize"):
        return tuple(s // x.itemsize for s in x.strides)
    if isinstance(x, skc.DeviceArray):
        return _row_major_strides(x.shape)   # skc arrays are row-major
    return skc.array_strides(x)   # (an array that says its strides only in its __cuda_array_interface__ or DLPack)


def row_major(x) -> bool:
    """Whether x's elements lie row after row with no gaps."""
    return element_strides(x) == _row_major_strides(x.shape)


def matrices_packed(x) -> bool:
    """Whether x is a batch (B x M x N) whose matrices are each row-major with no gaps, whatever the batch stride
    (x[::2] of a contiguous batch): what a batch's c or out may be, one GEMM a matrix as a 2-D call takes them (the
    host path's check, and the torch operator's, so that torch.compile refuses at tracing what the call refuses)."""
    if len(x.shape) != 3:
        return False
    (rows, columns), (row_stride, column_stride) = tuple(x.shape)[1:], element_strides(x)[1:]
    return (columns <= 1 or column_stride == 1) and (rows <= 1 or row_stride == columns)


def contiguous(x) -> bool:
    """Whether x's elements lie row after row with no gaps, whatever the stride of a dimension of one element
    (numpy's and torch's contiguity: `big[i:i + 1, :n]`, one row of a wider array, is; so is one of no elements,
    whatever its strides: numpy's are all 0)."""
    return 0 in tuple(x.shape) or all(size == 1 or stride == dense for size, stride, dense
               in zip(x.shape, element_strides(x), _row_major_strides(x.shape)))


def _row_major_strides(shape) -> tuple:
    shape = tuple(int(s) for s in shape)
    return tuple(math.prod(shape[i + 1:]) for i in range(len(shape)))


def storage(x, k_major_if_row_major: bool, name: str, what: str = "matmul"):
    """(the row-major array holding x's elements, whether that makes the operand K-major); x is `what`'s operand
    `name`, which a refusal names."""
    strides = element_strides(x)
    if len(x.shape) != 2:
        raise skc.LaunchError(f"{what} takes 2-D operands, found {name} of shape {tuple(x.shape)}")
    transposed = read_transposed(x.shape, strides)
    if transposed is None:
        raise skc.LaunchError(f"{what}'s operands must be row-major or transposed views of row-major arrays; {name} "
                              f"(strides {strides}) is neither: pass a copy of it that is one")
    return (x.T, not k_major_if_row_major) if transposed else (x, k_major_if_row_major)


def read_transposed(shape, strides):
    """How a 2-D operand of these shape and strides is read in place: False for rows of unit stride, True for a
    transposed view of a row-major array, whose rows may be longer than this view's (W[:, :K].T); None for neither,
    such as numpy's reversed rows (x[::-1]: negative strides, which neither TMA nor the copies address) (the torch
    operators' fake implementations ask it too)."""
    rows, cols = shape
    if strides and strides[0] == 1 and strides[1] >= rows and not (rows == 1 or cols == 1):
        return True
    if strides and (strides[1] != 1 and cols > 1 or strides[0] < 0 and rows > 1):
        return None
    return False


# -- copies around a launch (operands a kernel cannot read as they are) -----------------------------------------------
def paddable(*arrays) -> bool:
    """Whether the operands are torch tensors or numpy arrays (or None): what the host paths copy, by slice
    assignment, into buffers a kernel can read (rows padded to 16 bytes)."""
    import numpy as np

    return all(x is None or isinstance(x, np.ndarray) or torch_type(type(x)) for x in arrays)


def padded(x, shape):
    """x at the top left of a zero-filled row-major array of `shape` (each dimension at least x's), of x's type and
    where x lives: a copy whose rows a kernel's 16-byte copies can address."""
    buffer = zeros_like(x, shape)
    buffer[tuple(slice(0, n) for n in x.shape)] = x
    return buffer


def span(x):
    """The flat array of x's elements from its first to its last, the gaps between its rows included (the same
    memory): a strided view as the interpreter takes a pointer argument, a contiguous array, where a GPU launch
    takes the address of its first element (torch tensors and numpy arrays)."""
    count = 1 + sum((n - 1) * s for n, s in zip(x.shape, element_strides(x)))
    if hasattr(x, "as_strided"):
        return x.as_strided((count,), (1,))
    return _numpy_strided(x, (count,), (x.itemsize,))


def aligned_copy(x):
    """A copy of x in new memory, of x's shape and strides (the elements between its rows copied too)."""
    if hasattr(x, "as_strided"):   # torch
        return span(x).clone().as_strided(tuple(x.shape), tuple(x.stride()))
    return _numpy_strided(span(x).copy(), x.shape, x.strides)


def _numpy_strided(x, shape, strides):
    """numpy's as_strided of x, made over x's bytes as unsigned integers and viewed back as x's dtype: as_strided
    rebuilds the dtype from the array interface's type string, which for ml_dtypes' float8_e5m2 ('<f1') numpy
    cannot read."""
    import numpy as np

    raw = x.view(np.dtype(f"u{x.itemsize}"))
    return np.lib.stride_tricks.as_strided(raw, shape=shape, strides=strides).view(x.dtype)


def on_stream(x, stream):
    """A context in which torch's copies of x go to the launch's `stream` (given, and torch's x): the copies
    around a launch run in its order, and what torch makes there (an out, a temporary) is memory of that stream's
    pool in torch's caching allocator, so that memory freed after the call is handed out again only in the order of
    the launch that uses it (made on another stream, it could be given to that stream's next tensor while the
    launch still reads or writes it). The default stream (handle 0, or CU_STREAM_LEGACY) is torch's default stream:
    torch.cuda.ExternalStream(0) is no wrapper of it but a new stream from torch's pool, which does not wait for the
    default stream's work (the copies of an out made there were written back before the launch had filled them)."""
    if stream is None or not hasattr(x, "new_zeros") or not x.is_cuda:
        return nullcontext()
    import torch

    handle = skc.launch_stream(stream)
    if handle == torch.cuda.current_stream(x.device).cuda_stream:
        return nullcontext()   # (torch's copies go there already)
    if handle in (0, 1):
        return torch.cuda.stream(torch.cuda.default_stream(x.device))
    return torch.cuda.stream(torch.cuda.ExternalStream(handle, device=x.device))


def keeping_stream(x, stream):
    """The launch stream whose buffers a plan may keep for a call over x (a handle), or None: arrays other than
    torch's CUDA tensors, or a call that a CUDA graph captures (whose memory the graph owns, not the plan)."""
    if not getattr(x, "is_cuda", False) or capturing(x):
        return None
    return skc.launch_stream(stream, x)


def capturing(x, stream: int = None) -> bool:
    """Whether a CUDA graph captures the call over x: for torch's CUDA tensor x, torch's current stream; for an
    array of another framework on a GPU (cupy's, under cupy.cuda.Stream.begin_capture) or skc's, the launch's
    `stream` (a handle; None: not asked)."""
    if getattr(x, "is_cuda", False):
        import torch

        return torch.cuda.is_current_stream_capturing()
    return stream is not None and device_array(x) and skc.stream_capturing(stream)


def device_array(x) -> bool:
    """Whether x is an array on a CUDA GPU other than torch's: skc's, or one exporting __cuda_array_interface__."""
    return (isinstance(x, skc.DeviceArray) and x.device.kind == "cuda") or hasattr(x, "__cuda_array_interface__")


def without_grad(x):
    """torch's no_grad for torch's x: the copies are no part of a graph (an out that requires grad is written as
    the kernel writes it)."""
    if not hasattr(x, "new_zeros"):
        return nullcontext()
    import torch

    return torch.no_grad()


def write_into(out, values):
    """out[...] = values, the host's own write into out (an aligned copy written back, an empty problem's zeros),
    as a kernel's stores write it: an inference tensor (made under torch.inference_mode) refuses torch's in-place
    updates outside that mode, which the kernel never meets, so there the write is made inside it (it raised torch's
    RuntimeError where the aligned out of the same call was written)."""
    is_inference = getattr(out, "is_inference", None)
    if callable(is_inference) and is_inference():
        import torch

        with torch.inference_mode():
            out[...] = values
    else:
        out[...] = values
