"""Random `skc.blocks.conv2d` calls of every grouping conv2d takes, judged against torch's conv2d (float64 on the
CPU, cuDNN's float32 on a GPU): groups of one channel (depthwise, with 1 to 32 filters a channel), of 2, 4 and 8 (the
group stencil), of 16 and other multiples of 8 (the batched GEMM), of other sizes (the dense convolution with
block-diagonal filters) and none; filters of 1 to 7 taps a side, square or not; strides, paddings (ints, pairs,
"same", "valid"), dilations; a bias and an activation or not; bf16 and fp16 (and float32 or mixed types, which skc
refuses); torch tensors in channels_last memory, in NCHW memory, views off the 16-byte boundary (x; w and the bias),
views of a larger image, numpy arrays (NHWC); x that requires grad (torch.ops.skc.conv2d's path); outputs made or
given (poisoned with NaN first, aligned or not); three calls with fresh inputs; sizes at the edges (outputs of one
pixel, filters as large as the padded image, odd channels, a batch of none).

Each case ends in one outcome: `right` (within the limits of `judge`), `refused` (an skc error that skc's rules
expect: its text is checked against the first broken rule's words), or a failure: `wrong` (an error past the limit,
a value not finite, an out not written in place), `foreign` (an exception that is not skc's), `unexpected refusal`
(an skc error where the rules say the call runs, or the words of another rule) or `path` (another plan ran than the
rules choose: conv._PLANS' plan for the call).

    PYTHONPATH=. python tests/fuzz/conv_group_cases.py --count 3000 --seed 1 --seconds 3000 --quiet  # interpreter
    (on a GPU: --device cuda, which draws at realistic sizes, scale "gpu")

tests/fuzz/test_conv_group_cases.py runs a call of each path and a few seeded ones in the interpreter."""
from __future__ import annotations

import dataclasses
import math
import random

GROUP_CHANNELS = (1, 1, 1, 2, 2, 4, 4, 8, 8, 16, 3, 6, 12, 24, 5)   # channels a group (drawn; with weights by repeats)
ACTIVATIONS = ("relu", "gelu", "silu")
LAYOUTS = ("channels_last",) * 12 + ("nchw", "offset", "offset", "rows", "channels", "numpy", "numpy")
DTYPES = ("bf16",) * 10 + ("fp16",) * 8 + ("fp32", "mixed")
GPU_DTYPES = ("bf16",) * 10 + ("fp16",) * 8 + ("fp32",)
# (R, S, stride, padding, dilation) of the GPU's cases: the filters of common networks, and a few others
GPU_GEOMETRIES = ((3, 3, 1, 1, 1),) * 4 + ((3, 3, 2, 1, 1),) * 2 + (
    (1, 1, 1, 0, 1), (5, 5, 1, 2, 1), (7, 7, 1, 3, 1), (7, 7, 2, 3, 1), (3, 3, 1, 2, 2), (3, 3, 1, "same", 1),
    (1, 7, 1, (0, 3), 1), (7, 1, 1, (3, 0), 1), (5, 5, 2, "valid", 1), (3, 5, (1, 2), (1, 2), 1), (1, 1, 2, 0, 1))


@dataclasses.dataclass(frozen=True)
class Case:
    dtype: str          # bf16, fp16; fp32 (refused), mixed (x bf16, w fp16: refused)
    N: int
    C: int
    H: int
    W: int
    K: int
    groups: int
    R: int
    S: int
    stride: object = 1        # an int or a pair
    padding: object = 0       # an int, a pair, "same" or "valid"
    dilation: object = 1
    bias: bool = False
    activation: str = ""
    layout: str = "channels_last"   # x's: channels_last, nchw, offset (a view off 16 bytes), rows (of a taller
    #                                 image), channels (of a wider one: not channels_last-contiguous), numpy (NHWC)
    out: str = ""             # "": made; "given": poisoned, aligned; "offset": poisoned, a view off 16 bytes
    repeated: bool = False    # three calls, the inputs given fresh values in place before each later one
    grad: bool = False        # x requires grad: the call goes through torch.ops.skc.conv2d (its checks, its fake)
    w_offset: bool = False    # w (and the bias) views off 16 bytes

    def label(self) -> str:
        parts = [f"conv2d {self.dtype} N{self.N} C{self.C} {self.H}x{self.W} K{self.K} groups {self.groups} "
                 f"{self.R}x{self.S}", f"stride {self.stride}", f"padding {self.padding!r}",
                 f"dilation {self.dilation}", self.layout]
        parts += [name for name, on in (("bias", self.bias), (self.activation, self.activation),
                                        (f"out {self.out}", self.out), ("repeated", self.repeated),
                                        ("x requires grad", self.grad), ("w off 16 bytes", self.w_offset)) if on]
        return ", ".join(parts)

    def pairs(self) -> tuple:
        """(stride, dilation) as (h, w) pairs."""
        pair = lambda v: tuple(v) if isinstance(v, tuple) else (v, v)
        return pair(self.stride), pair(self.dilation)

    def output_size(self):
        """(P, Q) as torch computes them, or None where torch refuses the padding ('same' with a stride)."""
        stride, dilation = self.pairs()
        if self.padding == "same":
            return None if stride != (1, 1) else (self.H, self.W)
        pad = (0, 0) if self.padding == "valid" else (
            self.padding if isinstance(self.padding, tuple) else (self.padding, self.padding))
        return tuple((size + 2 * p - d * (taps - 1) - 1) // s + 1 for size, p, d, taps, s in
                     zip((self.H, self.W), pad, dilation, (self.R, self.S), stride))


def draw(rng: random.Random, scale: str = "cpu") -> Case:
    """One call: tiny sizes for the interpreter (scale "cpu"), realistic ones for a GPU ("gpu": batches of 1-32,
    up to 512 channels, images of 7-112 pixels a side)."""
    gpu = scale == "gpu"
    g = rng.choice(GROUP_CHANNELS)
    if rng.random() < 0.12:   # no groups
        groups, C = 1, rng.choice((3, 8, 16, 24, 32) if not gpu else (3, 32, 64, 128, 256))
    elif gpu:
        groups = max(1, rng.choice((8, 16, 32, 64)) // max(1, g // 4))
        C = g * groups
        if C > 512:
            groups = 512 // g
            C = g * groups
    else:
        groups = rng.choice((1, 2, 3, 4, 6, 8)) if g > 1 else rng.choice((1, 2, 3, 5, 8, 16))
        C = g * groups
    g = C // groups
    # filters a group: a whole multiple of the group's channels (what the stencil takes) mostly, or any
    per_group = rng.choice((g, g, g, 2 * g, 4 * g, 1, 2, 3, 8, 8, 16, 32)) if g <= 8 else rng.choice(
        (8, 16, g, 2 * g, 3, 6))
    if rng.random() < 0.5 and per_group * groups % 8 and per_group % g:   # (mostly K a multiple of 8 off the stencil)
        per_group = -(-per_group * groups // 8) * 8 // groups if 8 % groups == 0 or groups % 8 == 0 else per_group
    if gpu:
        per_group = min(per_group, max(1, 512 // groups))
    K = per_group * groups
    if gpu:   # (common filters: each kernel a GPU case compiles serves several)
        R, S, stride, padding, dilation = rng.choice(GPU_GEOMETRIES)
        N, H = rng.choice((1, 1, 2, 4, 8, 16, 32)), rng.choice((7, 14, 28, 56, 112, rng.randint(7, 112)))
        W = H if rng.random() < 0.8 else rng.randint(7, 112)
        while max(N * C, N * K) * H * W > 16 * 2 ** 20 and (N > 1 or H * W > 49):   # (16 M values at most)
            N, H, W = (N // 2, H, W) if N > 1 else (N, max(7, H // 2), max(7, W // 2))
    else:
        R = rng.choice((1, 3, 3, 3, 5, 7, 2, 4, 6))
        S = R if rng.random() < 0.75 else rng.choice((1, 2, 3, 5, 7))
        stride = rng.choice((1, 1, 1, 2, 2, (1, 2), (2, 1), 3, 4, (9, 1)))
        dilation = 1 if rng.random() < 0.8 else rng.choice((2, (1, 2), (2, 1), 3, 4))
        padding = rng.choice((0, R // 2, (R // 2, S // 2), 1, 2, (0, 3), "valid", "same", "same", 5, (9, 0)))
        if padding == "same" and rng.random() < 0.9:   # (torch refuses it with a stride)
            stride = 1
        N = rng.choice((1, 1, 1, 2, 3)) if rng.random() > 0.02 else 0
        H = rng.choice((1, 2, 3, 4, 5, 6, 7, 8, 9, 6, 7, 8, 9, 11, 12))
        W = rng.choice((1, 2, 3, 5, 6, 7, 8, 10)) if rng.random() < 0.4 else H
    layout = rng.choice(LAYOUTS)
    if gpu and layout == "numpy":
        layout = "channels_last"
    out = rng.choice(("", "", "given", "offset"))
    if layout == "numpy" and out == "offset":
        out = "given"
    grad = layout != "numpy" and rng.random() < 0.1
    return Case(rng.choice(GPU_DTYPES if gpu else DTYPES), N, C, H, W, K, groups, R, S, stride, padding, dilation,
                bias=rng.random() < 0.4, activation=rng.choice(ACTIVATIONS) if rng.random() < 0.25 else "",
                layout=layout, out="" if grad else out, repeated=rng.random() < 0.2, grad=grad,
                w_offset=layout != "numpy" and rng.random() < 0.1)


def cases(count: int, seed: int, scale: str = "cpu") -> list:
    rng = random.Random(seed)
    return [draw(rng, scale) for _ in range(count)]


# -- what skc's rules say a call does -------------------------------------------------------------------------
def expected(case: Case, torch_refuses: bool, channels_last: bool = True):
    """(the plan's kind conv2d makes, or None where it refuses; the words its refusal holds, or None): the rules of
    conv.py's _checked and stencil.takes, restated from the call's facts (`channels_last`: whether x, a torch tensor,
    is in channels_last memory)."""
    from skc.blocks.stencil import takes

    (sh, sw), (dh, dw) = case.pairs()
    g, per_group = case.C // case.groups, case.K // case.groups
    refusals = {"layout": (not channels_last, "channels_last"), "dtype": (case.dtype == "fp32", "bf16 or fp16"),
                "types": (case.dtype == "mixed", "needs one type"), "padding": (_padding_words(case),) * 2,
                "pixels": (torch_refuses, "no output pixels")}
    # (conv2d's order; where x requires grad, torch.ops.skc.conv2d's: the padding as numbers, then the types first)
    order = ("padding", "dtype", "types", "layout") if case.grad else ("layout", "dtype", "types", "padding")
    for name in order + ("pixels",):
        wrong, words = refusals[name]
        if wrong:
            return None, words
    import skc

    from skc.blocks.conv import slab_takes, slab_work

    target = skc.current_device().target
    work = slab_work(case.N, case.H, case.W, case.K, case.R, case.S, case.C, case.groups, (sh, sw))
    slabs = slab_takes(case.C, case.K, case.groups, work) and target.has("tma")   # (every layout drawn is torch's or numpy's)
    stencil = not slabs and takes(case.C, case.K, case.groups, case.R, case.S, sw, dw, target.max_shared_bytes)
    dense = case.groups > 1 and (g % 8 or per_group % 8) and not stencil and not slabs
    if case.N == 0:
        return "_no_launch", None
    if stencil:
        return "_Stencil", None
    if case.K % 8:
        return None, "must be a multiple of 8"
    if dense or slabs:
        return "_BlockDiagonal", None
    if case.C % 8:
        return "_PaddedChannels", None
    return f"GemmPlan of {case.groups} groups" if case.groups > 1 else "GemmPlan", None


def _padding_words(case: Case):
    """The words of conv2d's refusal of the case's padding='same', or None."""
    (sh, sw), (dh, dw) = case.pairs()
    if case.padding == "same" and (sh, sw) != (1, 1):
        return "needs stride 1"
    if case.padding == "same" and ((case.R - 1) * dh % 2 or (case.S - 1) * dw % 2):
        return "pads one side more"
    return None


# -- one call ---------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Outcome:
    kind: str        # right, refused, wrong, foreign, unexpected refusal, path
    detail: str = ""
    path: str = ""

    @property
    def failed(self) -> bool:
        return self.kind not in ("right", "refused")


def _values(torch, rng, shape, dtype, device):
    """Small random values of `dtype` (a normal's, rounded to the type), float32 on `device`."""
    return torch.randn(shape, generator=rng, device="cpu").to(dtype).to(device)


def _view_at(torch, t, by: int, memory_format=None):
    """t's values in a view `by` elements into a buffer of its own, with t's strides."""
    buffer = torch.zeros(t.numel() + by + 64, dtype=t.dtype, device=t.device)
    view = buffer[by:].as_strided(t.shape, t.stride())
    view.copy_(t)
    return view


def arguments(case: Case, device: str = "cpu", seed: int = 0) -> dict:
    """The call's arrays as conv2d takes them (x, w, bias, out: out poisoned with NaN) on `device`, in the case's
    layout."""
    import torch

    rng = torch.Generator().manual_seed(seed)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32, "mixed": torch.bfloat16}[case.dtype]
    w_dtype = torch.float16 if case.dtype == "mixed" else dtype
    cl = torch.channels_last
    x = _values(torch, rng, (case.N, case.C, case.H, case.W), dtype, device)
    w = _values(torch, rng, (case.K, case.C // case.groups, case.R, case.S), w_dtype, device).contiguous(
        memory_format=cl)
    bias = _values(torch, rng, (case.K,), dtype, device) if case.bias else None
    if case.layout == "nchw":
        x = x.contiguous()
    elif case.layout == "offset":
        x = _view_at(torch, x.contiguous(memory_format=cl), rng_int(seed, 1, 7))
    elif case.layout == "rows":   # rows 1.. of an image one row taller
        big = torch.zeros(case.N, case.C, case.H + 1, case.W, dtype=dtype, device=device).contiguous(memory_format=cl)
        big[:, :, 1:] = x
        x = big[:, :, 1:]
    elif case.layout == "channels":   # channels 1.. of an image of one more
        big = torch.zeros(case.N, case.C + 1, case.H, case.W, dtype=dtype, device=device).contiguous(memory_format=cl)
        big[:, 1:] = x
        x = big[:, 1:]
    else:
        x = x.contiguous(memory_format=cl)
    out = None
    size = case.output_size()
    if case.out and size is not None and min(size) >= 1:
        out = torch.full((case.N, case.K, *size), float("nan"), dtype=dtype, device=device).contiguous(
            memory_format=cl)
        if case.out == "offset":
            out = _view_at(torch, out, rng_int(seed, 1, 7))
    if case.w_offset:
        w = _view_at(torch, w, rng_int(seed, 2, 7))
        bias = None if bias is None else _view_at(torch, bias, rng_int(seed, 3, 7))
    if case.grad:
        x.requires_grad_()
    if case.layout == "numpy":
        x, w = (_numpy_nhwc(t) for t in (x, w))
        bias = None if bias is None else _numpy(bias)
        out = None if out is None else _numpy_nhwc(out)
    return {"x": x, "w": w, "bias": bias, "out": out}


def refresh(args: dict, seed: int):
    """New values for x, w and bias, in place (their layouts, views and addresses kept)."""
    import numpy as np
    import torch

    rng = torch.Generator().manual_seed(seed)
    for name in ("x", "w", "bias"):
        a = args[name]
        if a is None:
            continue
        if isinstance(a, np.ndarray):
            shape = (a.shape[0], a.shape[3], a.shape[1], a.shape[2]) if a.ndim == 4 else a.shape
            dtype = torch.float16 if a.dtype == np.float16 else torch.float32 if a.dtype == np.float32 else \
                torch.bfloat16
            fresh = _values(torch, rng, shape, dtype, "cpu")
            a[...] = _numpy_nhwc(fresh) if a.ndim == 4 else _numpy(fresh)
        else:
            with torch.no_grad():
                a.copy_(_values(torch, rng, tuple(a.shape), a.dtype, a.device))


def _as_torch(a, device: str):
    """An argument as a torch tensor of torch's order (NCHW, OIHW) in the reference's type: float64 on the CPU,
    float32 on a GPU."""
    import numpy as np
    import torch

    if a is None:
        return None
    if isinstance(a, np.ndarray):
        t = torch.from_numpy(np.asarray(a, np.float32))
        t = t.permute(0, 3, 1, 2) if t.dim() == 4 else t
    else:
        t = a.detach()
    return t.to(device, torch.float64 if device == "cpu" else torch.float32)


def rng_int(seed: int, low: int, high: int) -> int:
    return random.Random(seed * 7919 + low).randint(low, high)


def _numpy(t):
    import numpy as np

    if str(t.dtype) == "torch.bfloat16":
        import ml_dtypes

        return t.float().cpu().numpy().astype(ml_dtypes.bfloat16)
    return t.cpu().numpy().astype(np.float16 if str(t.dtype) == "torch.float16" else np.float32)


def _numpy_nhwc(t):
    import numpy as np

    return np.ascontiguousarray(_numpy(t.permute(0, 2, 3, 1)))


def reference(case: Case, args: dict, device: str = "cpu"):
    """torch's conv2d of the call's inputs (float64 on the CPU; float32 on a GPU, TF32 off: cuDNN), the activation
    applied; and a bound of each output's error from accumulating in f32: conv2d of |x| by |w| (plus |bias|) times
    2**-20 times log2 of the terms of a sum (roundings of f32 sums, skc's and the reference's)."""
    import torch
    import torch.nn.functional as F

    torch.backends.cudnn.allow_tf32 = False   # (cuDNN's float32 of float32's rounding)
    x, w, b = (_as_torch(args[name], device) for name in ("x", "w", "bias"))
    geometry = dict(stride=case.stride, padding=case.padding, dilation=case.dilation, groups=case.groups)
    want = F.conv2d(x, w, b, **geometry)
    size = F.conv2d(x.abs(), w.abs(), None if b is None else b.abs(), **geometry)
    if case.activation == "relu":
        want = want.relu()
    elif case.activation == "gelu":
        want = F.gelu(want, approximate="tanh")
    elif case.activation == "silu":
        want = F.silu(want)
    return want, size * 2.0 ** -20 * max(1, math.log2(max(2, case.C // case.groups * case.R * case.S)))


def judge(case: Case, got, want, size) -> str:
    """'' where each of got's values is within the output type's rounding of want (half a unit in the last place,
    1.5 of them for the activation's own rounding in f32) plus the accumulation's bound; else what is wrong."""
    import torch

    if tuple(got.shape) != tuple(want.shape):
        return f"shape {tuple(got.shape)}, torch's {tuple(want.shape)}"
    got = got.detach().to(want.device, want.dtype)
    not_finite = int((~torch.isfinite(got)).sum())
    if not_finite:
        return f"{not_finite} values not finite of {got.numel()}"
    unit = 2.0 ** -8 if case.dtype == "bf16" else 2.0 ** -11   # (half a unit in the last place, relative)
    tiny = 1e-6 if case.dtype == "bf16" else 6e-8 * 2
    limit = 1.5 * unit * want.abs() + 1.2 * size + tiny
    excess = (got - want).abs() - limit
    if excess.numel() and excess.max() > 0:
        at = int(excess.argmax())
        index = tuple(int(i) for i in torch.unravel_index(torch.tensor(at), got.shape))
        bad = int((excess > 0).sum())
        return (f"{bad} of {got.numel()} values past the limit; at {index} got {got.flatten()[at].item():.6g}, "
                f"torch {want.flatten()[at].item():.6g} (limit {limit.flatten()[at].item():.3g})")
    return ""


def torch_refuses(case: Case) -> bool:
    """Whether torch's conv2d refuses the call's geometry (no output pixels, or 'same' with a stride)."""
    size = case.output_size()
    return size is None or min(size) < 1


def _plan_kind(before: set) -> str:
    """The kind of plan the call made: the first of conv._PLANS' entries not in `before` (a fall-back's inner plans
    come after its own); '' where the call found its plan made by an earlier one."""
    from skc.blocks import conv

    made = [plan for key, (_, plan) in conv._PLANS.items() if key not in before]
    if not made:
        return ""
    kind = getattr(made[0], "__name__", None) or type(made[0]).__name__
    batches = getattr(made[0], "batches", None)   # (a grouped GEMM's launch over its groups)
    return f"{kind} of {batches} groups" if kind == "GemmPlan" and batches else kind


def run(case: Case, device: str = "cpu", seed: int = 0) -> Outcome:
    """The call (three calls where `repeated`, fresh inputs before each later one), judged. On the CPU each case
    starts from no plans; on a GPU the plans are kept (compiled kernels serve later cases)."""
    import numpy as np
    import torch

    import skc
    from skc.blocks import conv, conv2d

    if device == "cpu":
        conv._PLANS.clear()
    before = set(conv._PLANS)
    args = arguments(case, device, seed)
    x = args["x"]
    plan, words = expected(case, torch_refuses(case),
                           isinstance(x, np.ndarray) or x.is_contiguous(memory_format=torch.channels_last))
    path = ""
    for call in range(3 if case.repeated and plan is not None else 1):
        if call:
            refresh(args, seed + call)
        outcome, got = _call(case, args, device, plan, words)
        if outcome is not None:
            return outcome
        path = path or _plan_kind(before)
        if plan is None:
            return Outcome("path", f"ran ({path}) where the rules expect a refusal naming {words!r}", path)
        if isinstance(got, np.ndarray):
            got = torch.from_numpy(np.asarray(got, np.float32)).permute(0, 3, 1, 2)
        want, size = reference(case, args, device)
        wrong = judge(case, got, want, size)
        if wrong:
            return Outcome("wrong", wrong + (f" (call {call + 1})" if call else ""), path)
    if path and path != plan:
        return Outcome("path", f"ran {path}, the rules choose {plan}", path)
    return Outcome("right", "", path)


def _call(case: Case, args: dict, device: str, plan, words):
    """(an Outcome where the call failed or was refused, else None; its result): the call, its output poisoned with
    NaN first (out given: filled in place; made: a NaN block of its size freed just before, which torch's caching
    allocator hands the call)."""
    import numpy as np
    import torch

    import skc
    from skc.blocks import conv2d

    out = args["out"]
    if out is not None:
        out[...] = float("nan")
    elif device == "cuda" and case.output_size() is not None and min(case.output_size()) >= 1:
        poison = torch.full((case.N, case.K, *case.output_size()), float("nan"), device=device,
                            dtype=args["w"].dtype)
        del poison
    try:
        got = conv2d(args["x"], args["w"], args["bias"], case.stride, case.padding, case.dilation,
                     case.activation or None, out=out, groups=case.groups)
        if device == "cuda":
            torch.cuda.synchronize()
    except skc.SkcError as error:
        text = str(error)
        if plan is None and words.lower() in text.lower():
            return Outcome("refused", text.splitlines()[0][:200]), None
        rule = f"the rules expect {plan}" if plan else f"the rules expect a refusal naming {words!r}"
        return Outcome("unexpected refusal", f"{type(error).__name__}: {text.splitlines()[0][:300]} ({rule})"), None
    except Exception as error:   # noqa: BLE001 - anything not skc's is what the fuzzing looks for
        import traceback

        where = traceback.extract_tb(error.__traceback__)[-1]
        text = str(error).splitlines()[0][:300] if str(error) else ""
        return Outcome("foreign", f"{type(error).__name__}: {text} at {where.filename.split('/skc/')[-1]}:"
                                  f"{where.lineno}"), None
    if out is not None:
        same = (got is out) if isinstance(out, np.ndarray) else got.data_ptr() == out.data_ptr()
        if not same:
            return Outcome("wrong", "the call returned another array than the out= it was given"), None
    return None, got


def interpreter():
    """Make the interpreter modelling sm_90a the current device (as tests/blocks/conftest.py's fixture)."""
    import os

    os.environ["SKC_INTERPRETER_TARGET"] = "sm_90a"
    from skc.runtime import devices

    devices._selected[:] = [devices.Device("interpreter")]
    devices._target_of.cache_clear()


def main(argv=None):
    import argparse
    import signal
    import time

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--first", type=int, default=0, help="skip the cases before this one")
    parser.add_argument("--seconds", type=float, default=600.0, help="stop drawing after this long")
    parser.add_argument("--case-seconds", type=int, default=300, help="a case running longer is a failure")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--scale", default=None, choices=("cpu", "gpu"))
    parser.add_argument("--quiet", action="store_true", help="print failures and the summary alone")
    options = parser.parse_args(argv)
    if options.device == "cpu":
        interpreter()

    def too_long(*_):
        raise TimeoutError("the case ran past --case-seconds")

    signal.signal(signal.SIGALRM, too_long)
    start, counts = time.time(), {}
    drawn = cases(options.count, options.seed, options.scale or ("gpu" if options.device == "cuda" else "cpu"))
    for index, case in enumerate(drawn):
        if index < options.first:
            continue
        if time.time() - start > options.seconds:
            print(f"stopped after {options.seconds:.0f} s, at case {index}")
            break
        began = time.time()
        signal.alarm(options.case_seconds)
        try:
            outcome = run(case, options.device, seed=options.seed * 100003 + index)
        except TimeoutError as error:
            outcome = Outcome("foreign", str(error))
        finally:
            signal.alarm(0)
        counts[outcome.kind] = counts.get(outcome.kind, 0) + 1
        if options.quiet and index % 100 == 99:
            print(f"{index + 1} cases, {time.time() - start:.0f} s:", counts, flush=True)
        if outcome.failed or not options.quiet:
            print(f"case {index}: {case!r}: {outcome.kind.upper()} {outcome.path} {outcome.detail} "
                  f"({time.time() - began:.1f} s)", flush=True)
    print("SUMMARY:", ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())), flush=True)


if __name__ == "__main__":
    main()
