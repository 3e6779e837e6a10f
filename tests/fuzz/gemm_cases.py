"""Random `skc.blocks.matmul` calls, drawn where the configuration rules decide the most: every dtype and scaling,
row counts weighted toward the small ones (decoding steps, the 65-320-row rules), N and K from a few to 16k, aligned
and unaligned rows, transposed operands, batches, fused epilogues, outputs given or made, a plan used twice.

Used by benchmarks/gemm_fuzz.py (many draws, on the GPU) and tests/gpu/test_gemm_fuzz_gpu.py (a fixed few). A case
is plain data; `run_case` makes its tensors, calls skc and returns the error against a float32 reference."""
from __future__ import annotations

import dataclasses
import math
import random

# (weight, lowest, highest) rows: decoding steps, the few-row rules, mid sizes, large
ROW_BANDS = ((0.2, 1, 64), (0.1, 65, 96), (0.1, 97, 192), (0.15, 193, 320), (0.3, 321, 2048), (0.15, 2049, 8192))
MOST_VALUES = 1.5e11       # M·N·K (times the batch) at most: a case runs in milliseconds
MOST_ELEMENTS = 1.2e8      # elements of any one operand or output at most
ACTIVATIONS = ("relu", "gelu", "silu")


@dataclasses.dataclass(frozen=True)
class Case:
    kind: str                   # "bf16", "fp16" or "fp8"
    M: int
    N: int
    K: int
    a_transposed: bool = False  # a an M-major view (a.t() of a K x M tensor)
    b_k_major: bool = False     # b the transpose of an N x K tensor (x @ w.t())
    batch: int = 0              # 0: 2-D; else a is batch x M x K
    b_batched: bool = False     # b batch x K x N too
    c_beta: float = 0.0         # c given with this beta (0: no c)
    alpha: float = 0.0          # 0: no alpha
    bias: bool = False
    activation: str = ""
    out_given: bool = True      # out made here, poisoned with NaN
    twice: bool = False         # the call again on the same plan, out poisoned again
    block_scaled: bool = False  # fp8: block-wise scales (else one per tensor)
    fast_accum: bool = False    # fp8: use_fast_accum=True
    out_dtype: str = "bf16"     # fp8: bf16, fp16 or f32
    b_e5m2: bool = False        # fp8: b in e5m2

    def label(self) -> str:
        parts = [f"{self.kind} {self.M}x{self.N}x{self.K}"]
        if self.batch:
            parts.append(f"batch {self.batch}{' (b too)' if self.b_batched else ''}")
        flags = {"aT": self.a_transposed, "b K-major": self.b_k_major and self.kind != "fp8", "bias": self.bias,
                 "twice": self.twice, "out made": not self.out_given, "block": self.block_scaled,
                 "fast": self.fast_accum, "b e5m2": self.b_e5m2}
        parts += [name for name, on in flags.items() if on]
        if self.c_beta:
            parts.append(f"c beta {self.c_beta}")
        if self.alpha:
            parts.append(f"alpha {self.alpha}")
        if self.activation:
            parts.append(self.activation)
        if self.kind == "fp8":
            parts.append(f"out {self.out_dtype}")
        return ", ".join(parts)


def _log_uniform(rng: random.Random, low: int, high: int) -> int:
    return int(round(math.exp(rng.uniform(math.log(low), math.log(high)))))


def _rounded(rng: random.Random, value: int, multiple: int, aligned_share: float) -> int:
    """value, rounded up to a multiple of `multiple` in aligned_share of the draws, half of those to a multiple of
    64 too (2-byte rows 128 bytes apart: the rules for aligned rows)."""
    if rng.random() < aligned_share:
        multiple = math.lcm(multiple, 64) if rng.random() < 0.5 and value > 64 else multiple
        return max(multiple, -(-value // multiple) * multiple)
    return max(1, value)


def _rows(rng: random.Random) -> int:
    weights = [band[0] for band in ROW_BANDS]
    _, low, high = rng.choices(ROW_BANDS, weights)[0]
    return rng.randint(low, high)


def draw(rng: random.Random) -> Case:
    """One case within MOST_VALUES and MOST_ELEMENTS."""
    while True:
        case = _draw_once(rng)
        batch = max(case.batch, 1)
        sizes = (case.M * case.K * batch, case.K * case.N * (batch if case.b_batched else 1), case.M * case.N * batch)
        if case.M * case.N * case.K * batch <= MOST_VALUES and max(sizes) <= MOST_ELEMENTS:
            return case


def _draw_once(rng: random.Random) -> Case:
    kind = rng.choices(("bf16", "fp16", "fp8"), (0.45, 0.2, 0.35))[0]
    M = _rows(rng)
    # a third of the draws over a wide N (weights of a model's layers), the rest anywhere from 8 to 16k
    N = rng.randint(2048, 16384) if rng.random() < 0.35 else _log_uniform(rng, 8, 16384)
    # half the draws over a deep K (the split and few-row rules' ground), half from 16 to 16k
    K = rng.randint(2048, 16384) if rng.random() < 0.5 else _log_uniform(rng, 16, 16384)
    if kind == "fp8":
        block = rng.random() < 0.35
        return Case("fp8", _rounded(rng, M, 8, 0.7), _rounded(rng, N, 8, 1.0),
                    _rounded(rng, K, 128 if block else 16, 1.0), b_k_major=True, block_scaled=block,
                    fast_accum=not block and rng.random() < 0.35,
                    out_dtype=rng.choices(("bf16", "fp16", "f32"), (0.6, 0.2, 0.2))[0],
                    b_e5m2=not block and rng.random() < 0.1, bias=rng.random() < 0.2,
                    activation=rng.choice(ACTIVATIONS) if rng.random() < 0.15 else "",
                    out_given=rng.random() < 0.7, twice=rng.random() < 0.25)
    M, N, K = (_rounded(rng, M, 8, 0.75), _rounded(rng, N, 8, 0.75), _rounded(rng, K, 8, 0.75))
    batch = rng.randint(2, 6) if rng.random() < 0.12 else 0
    return Case(kind, M, N, K, a_transposed=rng.random() < 0.2, b_k_major=rng.random() < 0.5, batch=batch,
                b_batched=bool(batch) and rng.random() < 0.5,
                c_beta=rng.choice((0.5, 1.0, -1.0)) if rng.random() < 0.2 else 0.0,
                alpha=rng.choice((2.0, 0.5, -1.5)) if rng.random() < 0.2 else 0.0, bias=rng.random() < 0.25,
                activation=rng.choice(ACTIVATIONS) if rng.random() < 0.25 else "",
                out_given=rng.random() < 0.7, twice=rng.random() < 0.25)


def cases(count: int, seed: int) -> list:
    rng = random.Random(seed)
    return [draw(rng) for _ in range(count)]


# -- running one (torch on the current device) ---------------------------------------------------------------
def _operand(torch, rows, cols, dtype, transposed, batch=0, generator=None):
    """rows x cols (batch x rows x cols), or a transposed view of cols x rows."""
    shape = ((batch,) if batch else ()) + ((cols, rows) if transposed else (rows, cols))
    x = torch.randn(shape, device="cuda", generator=generator).to(dtype)
    return x.transpose(-1, -2) if transposed else x


def activated(torch, out, activation):
    """torch's form of an epilogue's activation ("": none)."""
    if activation == "relu":
        return torch.relu(out)
    if activation == "gelu":
        return torch.nn.functional.gelu(out, approximate="tanh")
    if activation == "silu":
        return torch.nn.functional.silu(out)
    return out


def run_case(case: Case, seed: int = 0):
    """(relative error, max error over the reference's largest value, NaN count) of skc's result, the worst of the
    calls (twice: both)."""
    import torch

    import skc

    generator = torch.Generator(device="cuda").manual_seed(seed)
    if case.kind == "fp8":
        call, want, out_dtype, shape = _fp8_call(torch, case, generator)
    else:
        call, want, out_dtype, shape = _gemm_call(torch, skc, case, generator)
    worst = (0.0, 0.0, 0)
    for _ in range(2 if case.twice else 1):
        out = torch.full(shape, float("nan"), device="cuda", dtype=out_dtype) if case.out_given else None
        got = call(out)
        torch.cuda.synchronize()
        if out is not None and got is not None and got.data_ptr() != out.data_ptr():
            raise AssertionError("matmul returned another tensor than the out= it was given")
        got = (out if got is None else got).float()
        nans = int((~torch.isfinite(got)).sum())
        difference = (got.nan_to_num(0.0) - want).abs()
        relative = (difference.norm() / want.norm().clamp_min(1e-30)).item()
        largest = (difference.max() / want.abs().max().clamp_min(1e-30)).item()
        worst = (max(worst[0], relative), max(worst[1], largest), max(worst[2], nans))
    return worst


def _gemm_call(torch, skc, case, generator):
    dtype = torch.bfloat16 if case.kind == "bf16" else torch.float16
    a = _operand(torch, case.M, case.K, dtype, case.a_transposed, case.batch, generator)
    b = _operand(torch, case.K, case.N, dtype, case.b_k_major, case.batch if case.b_batched else 0, generator)
    shape = ((case.batch,) if case.batch else ()) + (case.M, case.N)
    extras = {}
    want = a.float() @ b.float()
    if case.alpha:
        extras["alpha"] = case.alpha
        want = case.alpha * want
    if case.c_beta:
        c = torch.randn(shape, device="cuda", generator=generator).to(dtype)
        extras.update(c=c, beta=case.c_beta)
        want = want + case.c_beta * c.float()
    if case.bias:
        bias = torch.randn(case.N, device="cuda", generator=generator).to(dtype)
        extras["bias"] = bias
        want = want + bias.float()
    if case.activation:
        extras["activation"] = case.activation
        want = activated(torch, want, case.activation)
    return (lambda out: skc.blocks.matmul(a, b, out=out, **extras)), want, dtype, shape


def _fp8_call(torch, case, generator):
    import skc

    M, N, K = case.M, case.N, case.K
    a = (torch.randn(M, K, device="cuda", generator=generator) * 8).clamp(-400, 400).to(torch.float8_e4m3fn)
    b_type = torch.float8_e5m2 if case.b_e5m2 else torch.float8_e4m3fn
    b = (torch.randn(N, K, device="cuda", generator=generator) * 8).clamp(-400, 400).to(b_type).t()
    if case.block_scaled:
        kb, nb = K // 128, -(-N // 128)
        sa = torch.rand(M, kb, device="cuda", generator=generator) * 2 ** -6 + 2 ** -8
        sb = torch.rand(kb, nb, device="cuda", generator=generator) * 2 ** -6 + 2 ** -8
        a32 = a.float() * sa.repeat_interleave(128, dim=1)[:, :K]
        b32 = b.float() * sb.repeat_interleave(128, dim=0).repeat_interleave(128, dim=1)[:K, :N]
    else:
        sa = torch.rand((), device="cuda", generator=generator) * 2 ** -6 + 2 ** -8
        sb = torch.rand((), device="cuda", generator=generator) * 2 ** -6 + 2 ** -8
        a32, b32 = a.float() * sa, b.float() * sb
    want = a32 @ b32
    out_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "f32": torch.float32}[case.out_dtype]
    extras = {"scale_a": sa, "scale_b": sb, "out_dtype": out_dtype}
    if case.fast_accum:
        extras["use_fast_accum"] = True
    if case.bias:
        bias = torch.randn(N, device="cuda", generator=generator).to(out_dtype if case.out_dtype != "f32"
                                                                     else torch.bfloat16)
        extras["bias"] = bias
        want = want + bias.float()
    if case.activation:
        extras["activation"] = case.activation
        want = activated(torch, want, case.activation)
    return (lambda out: skc.blocks.matmul(a, b, out, **extras)), want, out_dtype, (M, N)


def tolerance(case: Case) -> tuple:
    """(relative error, max error over the largest value) a right result stays under: the output's rounding and
    fp32 (fp8: the format's) accumulation, with room; a wrong tile, share or epilogue reads far above both."""
    if case.kind == "fp8":
        return (1e-2, 4e-2) if case.out_dtype != "f32" else (5e-3, 2e-2)
    return 1e-2, 4e-2
