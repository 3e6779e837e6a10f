"""Random `skc.blocks.matmul` calls, drawn where the configuration rules decide the most: every dtype and scaling,
row counts weighted toward the small ones (decoding steps, the 65-320-row rules), N and K from a few to 16k, aligned
and unaligned rows, transposed operands, batches, fused epilogues, outputs given or made, a plan used three times.

Used by benchmarks/blocks_fuzz.py (many draws, on the GPU) and tests/gpu/test_blocks_fuzz_gpu.py (a fixed few). A
case is plain data; `run_case` makes its tensors, calls skc and judges the results (call_checks.run)."""
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
    repeated: bool = False      # three calls on one plan, the inputs fresh and the output poisoned before each
    block_scaled: bool = False  # fp8: block-wise scales (else one per tensor)
    fast_accum: bool = False    # fp8: use_fast_accum=True
    out_dtype: str = "bf16"     # fp8: bf16, fp16 or f32
    b_e5m2: bool = False        # fp8: b in e5m2

    def label(self) -> str:
        parts = [f"{self.kind} {self.M}x{self.N}x{self.K}"]
        if self.batch:
            parts.append(f"batch {self.batch}{' (b too)' if self.b_batched else ''}")
        flags = {"aT": self.a_transposed, "b K-major": self.b_k_major and self.kind != "fp8", "bias": self.bias,
                 "repeated": self.repeated, "out made": not self.out_given, "block": self.block_scaled,
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
                    out_given=rng.random() < 0.7, repeated=rng.random() < 0.25)
    M, N, K = (_rounded(rng, M, 8, 0.75), _rounded(rng, N, 8, 0.75), _rounded(rng, K, 8, 0.75))
    batch = rng.randint(2, 6) if rng.random() < 0.12 else 0
    return Case(kind, M, N, K, a_transposed=rng.random() < 0.2, b_k_major=rng.random() < 0.5, batch=batch,
                b_batched=bool(batch) and rng.random() < 0.5,
                c_beta=rng.choice((0.5, 1.0, -1.0)) if rng.random() < 0.2 else 0.0,
                alpha=rng.choice((2.0, 0.5, -1.5)) if rng.random() < 0.2 else 0.0, bias=rng.random() < 0.25,
                activation=rng.choice(ACTIVATIONS) if rng.random() < 0.25 else "",
                out_given=rng.random() < 0.7, repeated=rng.random() < 0.25)


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
    """A call_checks.Result: the call made once, or three times where `repeated` (call_checks.run)."""
    import torch

    import call_checks

    generator = torch.Generator(device="cuda").manual_seed(seed)
    setup = _fp8_setup(torch, case, generator) if case.kind == "fp8" else _gemm_setup(torch, case, generator)
    return call_checks.run(torch, setup, 3 if case.repeated else 1, case.out_given,
                           lambda rounding: limits(case, rounding))


def _gemm_setup(torch, case, generator):
    import call_checks
    import skc

    dtype = torch.bfloat16 if case.kind == "bf16" else torch.float16
    shape = ((case.batch,) if case.batch else ()) + (case.M, case.N)

    def make(maker):   # a tensor and its maker, for call_checks' fresh values
        return maker(), maker

    a, make_a = make(lambda: _operand(torch, case.M, case.K, dtype, case.a_transposed, case.batch, generator))
    b, make_b = make(lambda: _operand(torch, case.K, case.N, dtype, case.b_k_major,
                                      case.batch if case.b_batched else 0, generator))
    inputs, extras = [(a, make_a), (b, make_b)], {}
    if case.alpha:
        extras["alpha"] = case.alpha
    if case.c_beta:
        c, make_c = make(lambda: torch.randn(shape, device="cuda", generator=generator).to(dtype))
        extras.update(c=c, beta=case.c_beta)
        inputs.append((c, make_c))
    if case.bias:
        bias, make_bias = make(lambda: torch.randn(case.N, device="cuda", generator=generator).to(dtype))
        extras["bias"] = bias
        inputs.append((bias, make_bias))
    if case.activation:
        extras["activation"] = case.activation

    def reference():
        want = a.float() @ b.float() * (case.alpha or 1.0)
        if case.c_beta:
            want = want + case.c_beta * extras["c"].float()
        if case.bias:
            want = want + extras["bias"].float()
        return activated(torch, want, case.activation)

    return call_checks.Setup(inputs, reference, lambda out: skc.blocks.matmul(a, b, out=out, **extras), shape, dtype)


def _fp8_setup(torch, case, generator):
    import call_checks
    import skc

    M, N, K = case.M, case.N, case.K
    b_type = torch.float8_e5m2 if case.b_e5m2 else torch.float8_e4m3fn

    def values(rows, cols, dtype):   # spread over the format's range
        return (torch.randn(rows, cols, device="cuda", generator=generator) * 8).clamp(-400, 400).to(dtype)

    def scales(*shape):
        return torch.rand(shape, device="cuda", generator=generator) * 2 ** -6 + 2 ** -8

    k_blocks, n_blocks = K // 128, -(-N // 128)
    makers = [lambda: values(M, K, torch.float8_e4m3fn), lambda: values(N, K, b_type).t()]
    makers += ([lambda: scales(M, k_blocks), lambda: scales(k_blocks, n_blocks)] if case.block_scaled
               else [lambda: scales(), lambda: scales()])
    a, b, sa, sb = (make() for make in makers)
    inputs = list(zip((a, b, sa, sb), makers))
    out_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "f32": torch.float32}[case.out_dtype]
    extras = {"scale_a": sa, "scale_b": sb, "out_dtype": out_dtype}
    if case.fast_accum:
        extras["use_fast_accum"] = True
    if case.activation:
        extras["activation"] = case.activation

    def product():
        if case.block_scaled:
            a32 = a.float() * sa.repeat_interleave(128, dim=1)[:, :K]
            b32 = b.float() * sb.repeat_interleave(128, dim=0).repeat_interleave(128, dim=1)[:K, :N]
            return a32 @ b32
        return (a.float() * sa) @ (b.float() * sb)

    if case.bias:   # as large as the product, which it must not hide
        bias_type = out_dtype if case.out_dtype != "f32" else torch.bfloat16
        spread = product().std().item() or 1.0

        def make_bias():
            return (torch.randn(N, device="cuda", generator=generator) * spread).to(bias_type)

        extras["bias"] = make_bias()
        inputs.append((extras["bias"], make_bias))

    def reference():
        want = product()
        if case.bias:
            want = want + extras["bias"].float()
        return activated(torch, want, case.activation)

    return call_checks.Setup(inputs, reference, lambda out: skc.blocks.matmul(a, b, out, **extras), (M, N),
                             out_dtype)


def limits(case: Case, rounding: tuple) -> tuple:
    """(relative, largest) errors a right result stays under, from the output type's own (relative, largest)
    rounding of the reference: 2.5 times it, plus the accumulation's share (fp32: 2e-4 relative; fp8 each k-block
    into f32: 5e-4, measured 1.3e-4 with f32 out; fp8 fast accumulation: 6e-3, measured 3.1e-3 with f32 out and
    3.9e-3 with bf16 at K = 14-16k). One K column of 16384 dropped reads 7.6e-3 relative."""
    share = 2e-4 if case.kind != "fp8" else 6e-3 if case.fast_accum else 5e-4
    return 2.5 * rounding[0] + share, 2.5 * rounding[1] + 4 * share
