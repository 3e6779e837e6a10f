"""Session 56, helper B: gradients through skc.blocks' matmul, conv2d and attention (torch.ops.skc's operators) on a
CUDA GPU against torch's in float64 at the same bf16 / fp16 values; the refusals of alpha / beta / scale tensors that
require grad on the GPU's plan paths (after a warm call with the same facts); backward's skipped gradients; double
backward; torch.compile (inductor) with backward. One line per case; exits 1 if any case fails.

    python gpu_B_grads.py            (GPU_B_DEVICE=cpu runs it in the interpreter, for a dry run)
"""
import os
import sys
import traceback

import torch
import torch.nn.functional as F

import skc
import skc.torch  # noqa: F401
from skc.blocks import attention, conv2d, matmul

DEVICE = os.environ.get("GPU_B_DEVICE", "cuda")
FAILURES = []


def randn(*shape, seed=0, scale=1.0, dtype=torch.bfloat16):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=generator) * scale).to(dtype).to(DEVICE)


def cl(t):
    return t.contiguous(memory_format=torch.channels_last)


def relative(got, want):
    if want.numel() == 0:
        return 0.0
    return ((got.double() - want.double()).abs().max() / want.double().abs().max().clamp_min(1e-30)).item()


def case(name):
    def wrap(function):
        try:
            detail = function()
            print(f"PASS {name}" + (f": {detail}" if detail else ""), flush=True)
        except Exception as error:   # (one line per case; the traceback to stderr)
            FAILURES.append(name)
            print(f"FAIL {name}: {type(error).__name__}: {str(error)[:300]}", flush=True)
            traceback.print_exc(file=sys.stderr)
        return function
    return wrap


def compare(ours, torchs, inputs, wanted=None, tolerance=0.03):
    """ours(*inputs) against torchs(*inputs) in float64: the output and the gradients of the inputs in `wanted`
    (indices; all by default), the others requiring none (their .grad stays None)."""
    wanted = range(len(inputs)) if wanted is None else wanted
    xs = [t.detach().clone().requires_grad_(i in wanted) for i, t in enumerate(inputs)]
    out = ours(*xs)
    cotangent = torch.randn(out.shape, generator=torch.Generator().manual_seed(9)).to(DEVICE)
    (out.float() * cotangent).sum().backward()
    wide = [t.detach().double().requires_grad_(i in wanted) for i, t in enumerate(inputs)]
    want = torchs(*wide)
    (want * cotangent.double()).sum().backward()
    errors = [relative(out, want)]
    for i, (x, w) in enumerate(zip(xs, wide)):
        if i not in wanted:
            assert x.grad is None, f"input {i} needs no gradient, but has one"
            continue
        g = x.grad
        assert (g.dtype, g.shape, g.device) == (x.dtype, x.shape, x.device), \
            f"input {i}'s gradient is {g.dtype} {tuple(g.shape)} on {g.device}, the input {x.dtype} {tuple(x.shape)}"
        errors.append(relative(g, w.grad))
    assert max(errors) <= tolerance, f"relative errors {[round(e, 4) for e in errors]} (output, then gradients)"
    return f"max relative error {max(errors):.4f}"


# -- matmul ----------------------------------------------------------------------------------------------------
for label, ours, torchs, shapes in [
        ("a @ b", lambda a, b: matmul(a, b), lambda a, b: a @ b, [(128, 256), (256, 192)]),
        ("a @ b, K-major b (x @ w.t())", lambda a, w: matmul(a, w.t()), lambda a, w: a @ w.t(), [(128, 256), (192, 256)]),
        ("a.t() @ b", lambda a, b: matmul(a.t(), b), lambda a, b: a.t() @ b, [(256, 128), (256, 192)]),
        ("relu(0.5 a@b + 0.25 c + bias)",
         lambda a, b, c, bias: matmul(a, b, c=c, bias=bias, alpha=0.5, beta=0.25, activation="relu"),
         lambda a, b, c, bias: torch.relu(0.5 * (a @ b) + 0.25 * c + bias), [(128, 256), (256, 192), (128, 192), (192,)]),
        ("gelu(a@b + bias)", lambda a, b, bias: matmul(a, b, bias=bias, activation="gelu"),
         lambda a, b, bias: F.gelu(a @ b + bias, approximate="tanh"), [(64, 128), (128, 256), (256,)]),
        ("silu(a@b), few rows", lambda a, b: matmul(a, b, activation="silu"), lambda a, b: F.silu(a @ b),
         [(8, 512), (512, 256)]),
        ("batch BxMxK @ KxN", lambda a, b: matmul(a, b), lambda a, b: a @ b, [(3, 64, 128), (128, 192)]),
        ("batch BxMxK @ BxKxN", lambda a, b: matmul(a, b), lambda a, b: a @ b, [(3, 64, 128), (3, 128, 192)]),
        ("batch with c and bias", lambda a, b, c, bias: matmul(a, b, c=c, bias=bias),
         lambda a, b, c, bias: a @ b + c + bias, [(2, 64, 128), (2, 128, 64), (2, 64, 64), (64,)]),
        ("4-D broadcast", lambda a, b: matmul(a, b), lambda a, b: a @ b, [(2, 1, 64, 128), (3, 128, 64)]),
        ("1-D a", lambda a, b: matmul(a, b), lambda a, b: a @ b, [(128,), (128, 64)]),
        ("1-D b", lambda a, b: matmul(a, b), lambda a, b: a @ b, [(64, 128), (128,)])]:
    for dtype in (torch.bfloat16, torch.float16):
        @case(f"matmul {label} {str(dtype)[6:]}")
        def _(ours=ours, torchs=torchs, shapes=shapes, dtype=dtype):
            scale = 1.0 / 16
            return compare(ours, torchs, [randn(*s, seed=i, scale=scale if i < 2 else 1.0, dtype=dtype)
                                          for i, s in enumerate(shapes)])


@case("matmul: only a requires grad (b's .grad None)")
def _():
    return compare(lambda a, b: matmul(a, b), lambda a, b: a @ b, [randn(128, 256), randn(256, 192, seed=1)], (0,))


# -- conv2d ----------------------------------------------------------------------------------------------------
for geometry in [dict(padding=1), dict(stride=2, padding=1), dict(stride=(1, 2), padding=(2, 1), dilation=(2, 1)),
                 dict(groups=2, padding=1), dict(groups=4, stride=2, padding=1, dilation=2),
                 dict(groups=32, padding=1), dict(padding="same")]:
    for activation in (None, "relu"):
        @case(f"conv2d {geometry} {activation}")
        def _(geometry=geometry, activation=activation):
            groups, channels = geometry.get("groups", 1), 32
            act = {None: lambda z: z, "relu": torch.relu}[activation]
            inputs = [cl(randn(2, channels, 12, 10)), cl(randn(32, channels // groups, 3, 3, seed=1, scale=0.2)),
                      randn(32, seed=2)]
            return compare(lambda x, w, b: conv2d(x, w, b, activation=activation, **geometry),
                           lambda x, w, b: act(F.conv2d(x, w, b, **geometry)), inputs)


@case("conv2d: only w requires grad")
def _():
    return compare(lambda x, w: conv2d(x, w, padding=1), lambda x, w: F.conv2d(x, w, padding=1),
                   [cl(randn(2, 32, 8, 8)), cl(randn(32, 32, 3, 3, seed=1, scale=0.2))], (1,))


# -- attention -------------------------------------------------------------------------------------------------
def reference_attention(causal, scale, layout, lse=False):
    def function(q, k, v):
        if layout == "bshd":
            q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        group = q.shape[1] // k.shape[1]
        k, v = (t.repeat_interleave(group, 1) for t in (k, v))
        scores = (q @ k.transpose(-1, -2)) * (q.shape[-1] ** -0.5 if scale is None else scale)
        if causal:
            scores = scores.masked_fill(torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device).triu(1),
                                        -torch.inf)
        if lse:
            return torch.logsumexp(scores, -1)
        out = torch.softmax(scores, -1) @ v
        return out.transpose(1, 2) if layout == "bshd" else out
    return function


for H, Hkv, Sq, Skv, D in [(4, 4, 128, 128, 64), (8, 2, 96, 160, 128), (4, 1, 200, 72, 64), (2, 2, 64, 64, 256)]:
    for layout in ("bhsd", "bshd"):
        for causal in (False, True):
            scale = 0.1 if causal else None
            shape = (lambda h, s: (2, h, s, D)) if layout == "bhsd" else (lambda h, s: (2, s, h, D))
            shapes = [shape(H, Sq), shape(Hkv, Skv), shape(Hkv, Skv)]

            @case(f"attention H {H}/{Hkv} Sq {Sq} Skv {Skv} D {D} {layout} causal={causal} scale={scale}")
            def _(shapes=shapes, layout=layout, causal=causal, scale=scale):
                return compare(lambda q, k, v: attention(q, k, v, causal=causal, scale=scale, layout=layout),
                               reference_attention(causal, scale, layout), [randn(*s, seed=i) for i, s in enumerate(shapes)])

            @case(f"attention lse loss H {H}/{Hkv} Sq {Sq} Skv {Skv} D {D} {layout} causal={causal}")
            def _(shapes=shapes, layout=layout, causal=causal, scale=scale):
                return compare(lambda q, k, v: attention(q, k, v, causal=causal, scale=scale, layout=layout,
                                                         return_lse=True)[1],
                               reference_attention(causal, scale, layout, lse=True),
                               [randn(*s, seed=i) for i, s in enumerate(shapes)], (0, 1))


@case("attention: packed qkv (bshd views of one tensor)")
def _():
    return compare(lambda qkv: attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], causal=True, layout="bshd"),
                   lambda qkv: reference_attention(True, None, "bshd")(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]),
                   [randn(2, 128, 3, 4, 64)])


# -- refusals on the GPU's plan paths (each after a warm call with the same facts) ------------------------------
def refused(call, message):
    try:
        call()
    except skc.LaunchError as error:
        assert message in str(error), f"refused, but with {str(error)[:200]!r}"
        return
    raise AssertionError("ran (the scalar's gradient lost silently)")


for label, call in [("2-D", lambda s: matmul(randn(128, 256), randn(256, 128, seed=1), alpha=s)),
                    ("batch", lambda s: matmul(randn(2, 64, 128), randn(128, 64, seed=1), alpha=s)),
                    ("few rows", lambda s: matmul(randn(4, 512), randn(512, 256, seed=1), alpha=s)),
                    ("1-D", lambda s: matmul(randn(128), randn(128, 64, seed=1), alpha=s))]:
    @case(f"matmul alpha tensor requiring grad refused ({label})")
    def _(call=call):
        call(0.5)
        call(torch.tensor(0.5, device=DEVICE))
        refused(lambda: call(torch.tensor(0.5, device=DEVICE, requires_grad=True)),
                "matmul's alpha is a tensor that requires grad")


@case("matmul beta tensor requiring grad refused")
def _():
    a, b, c = randn(128, 256), randn(256, 128, seed=1), randn(128, 128, seed=2)
    matmul(a, b, c=c, beta=0.5)
    refused(lambda: matmul(a, b, c=c, beta=torch.tensor(0.5, device=DEVICE, requires_grad=True)),
            "matmul's beta is a tensor that requires grad")


@case("attention scale tensor requiring grad refused")
def _():
    q = randn(1, 2, 128, 64)
    attention(q, q, q, scale=0.2)
    attention(q, q, q, scale=torch.tensor(0.2, device=DEVICE))
    refused(lambda: attention(q, q, q, scale=torch.tensor(0.2, device=DEVICE, requires_grad=True)),
            "attention's scale is a tensor that requires grad")


# -- double backward, torch.compile ----------------------------------------------------------------------------
@case("double backward (matmul gelu, attention causal)")
def _():
    errors = []
    for ours, torchs, shapes in [
            (lambda a, b: matmul(a, b, activation="gelu"), lambda a, b: F.gelu(a @ b, approximate="tanh"),
             [(64, 128), (128, 64)]),
            (lambda q, k, v: attention(q, k, v, causal=True), reference_attention(True, None, "bhsd"),
             [(1, 2, 64, 64)] * 3)]:
        inputs = [randn(*s, seed=i, scale=0.25).requires_grad_() for i, s in enumerate(shapes)]
        grads = torch.autograd.grad(ours(*inputs).float().sum(), inputs, create_graph=True)
        got = torch.autograd.grad(sum((g.float() ** 2).sum() for g in grads), inputs)
        wide = [t.detach().double().requires_grad_() for t in inputs]
        grads = torch.autograd.grad(torchs(*wide).sum(), wide, create_graph=True)
        want = torch.autograd.grad(sum((g ** 2).sum() for g in grads), wide)
        errors += [relative(g, w) for g, w in zip(got, want)]
    assert max(errors) <= 0.03, f"relative errors {[round(e, 4) for e in errors]}"
    return f"max relative error {max(errors):.4f}"


@case("torch.compile (inductor) with backward gives eager's gradients")
def _():
    import torch._dynamo

    def loss(a, b, bias, x, w, q, k, v):
        y = matmul(a, b.t(), bias=bias, activation="relu")
        z = conv2d(x, w, padding=1, groups=2)
        o, lse = attention(q, k, v, causal=True, return_lse=True, layout="bshd")
        return y.float().sum() + (z.float() ** 2).sum() + (o.float() * 0.5).sum() + lse.sum()

    inputs = [randn(64, 128, scale=0.1), randn(128, 128, seed=1, scale=0.1), randn(128, seed=2),
              cl(randn(2, 32, 8, 8, seed=3)), cl(randn(32, 16, 3, 3, seed=4, scale=0.2)),
              randn(1, 64, 4, 64, seed=5), randn(1, 64, 2, 64, seed=6), randn(1, 64, 2, 64, seed=7)]
    eager = [t.clone().requires_grad_(i != 3) for i, t in enumerate(inputs)]
    loss(*eager).backward()
    torch._dynamo.reset()
    compiled = [t.clone().requires_grad_(i != 3) for i, t in enumerate(inputs)]
    torch.compile(loss, fullgraph=True)(*compiled).backward()
    assert compiled[3].grad is None
    errors = [relative(m.grad, e.grad) for m, e in zip(compiled, eager) if e.grad is not None]
    assert all(m.grad.dtype == e.dtype for m, e in zip(compiled, eager) if e.grad is not None)
    assert max(errors) <= 0.02, f"relative errors {[round(e, 4) for e in errors]}"   # (inductor fuses the reference)
    return f"max relative difference from eager {max(errors):.4f}"


print(f"{len(FAILURES)} failed" + (f": {FAILURES}" if FAILURES else ""))
sys.exit(1 if FAILURES else 0)
