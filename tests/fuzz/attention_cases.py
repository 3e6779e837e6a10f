"""Random `skc.blocks.attention` calls: bf16 and fp16, head dimensions 64, 128 and 256, grouped-query heads, query
and key lengths from 1 to 4096 that differ, causal or not, both layouts, a scale given or not, the log-sum-exp asked
for, outputs given (poisoned) or made, a plan used three times. The kernels are the ones skc chooses itself.

Used by benchmarks/blocks_fuzz.py and tests/gpu/test_blocks_fuzz_gpu.py, as gemm_cases.py (call_checks.run judges
the results)."""
from __future__ import annotations

import dataclasses
import math
import random

MOST_SCORES = 1.2e8   # B·H·Sq·Sk at most: the float32 reference's scores fit a few hundred MB


@dataclasses.dataclass(frozen=True)
class Case:
    dtype: str            # "bf16" or "fp16"
    B: int
    H: int
    Hkv: int
    Sq: int
    Sk: int
    D: int
    causal: bool = False
    layout: str = "bhsd"
    scale: float = 0.0    # 0: the default, 1/sqrt(D)
    lse: bool = False
    out_given: bool = True
    repeated: bool = False  # three calls on one plan, the inputs fresh and the output poisoned before each

    def label(self) -> str:
        parts = [f"attention {self.dtype} {self.B}x{self.H}/{self.Hkv}x{self.Sq}/{self.Sk}x{self.D}", self.layout]
        flags = {"causal": self.causal, "lse": self.lse, "out made": not self.out_given,
                 "repeated": self.repeated}
        parts += [name for name, on in flags.items() if on]
        if self.scale:
            parts.append(f"scale {self.scale:.3g}")
        return ", ".join(parts)


def _length(rng: random.Random) -> int:
    return int(round(math.exp(rng.uniform(0.0, math.log(4096)))))


def draw(rng: random.Random) -> Case:
    while True:
        H = rng.choice((1, 2, 4, 8, 12, 16, 32))
        Sq = _length(rng)
        case = Case(rng.choices(("bf16", "fp16"), (0.7, 0.3))[0], rng.randint(1, 8), H,
                    rng.choice([d for d in (1, 2, 4, 8, H) if H % d == 0]), Sq,
                    Sq if rng.random() < 0.5 else _length(rng), rng.choices((64, 128, 256), (0.35, 0.5, 0.15))[0],
                    causal=rng.random() < 0.4, layout=rng.choice(("bhsd", "bshd")),
                    scale=rng.choice((0.05, 0.3, 1.0)) if rng.random() < 0.2 else 0.0, lse=rng.random() < 0.3,
                    out_given=rng.random() < 0.5, repeated=rng.random() < 0.2)
        if case.B * case.H * case.Sq * case.Sk <= MOST_SCORES:
            return case


def cases(count: int, seed: int) -> list:
    rng = random.Random(seed)
    return [draw(rng) for _ in range(count)]


def run_case(case: Case, seed: int = 0):
    """A call_checks.Result: the call made once, or three times where `repeated`; with the log-sum-exp, its largest
    absolute error is checked too."""
    import torch

    import call_checks
    import skc

    generator = torch.Generator(device="cuda").manual_seed(seed)
    dtype = torch.bfloat16 if case.dtype == "bf16" else torch.float16

    def tensor(heads, length):   # (B, heads, length, D) values, stored in the case's layout
        x = torch.randn(case.B, length, heads, case.D, device="cuda", generator=generator).to(dtype)
        return x if case.layout == "bshd" else x.transpose(1, 2).contiguous()

    makers = [lambda: tensor(case.H, case.Sq), lambda: tensor(case.Hkv, case.Sk), lambda: tensor(case.Hkv, case.Sk)]
    q, k, v = (make() for make in makers)
    heads = (lambda x: x.transpose(1, 2)) if case.layout == "bshd" else (lambda x: x)   # (B, H, S, D) views
    options = {"causal": case.causal, "layout": case.layout, "return_lse": case.lse}
    if case.scale:
        options["scale"] = case.scale
    kept = {}

    def reference():
        group = case.H // case.Hkv
        kf, vf = (heads(x).float().repeat_interleave(group, 1) for x in (k, v))
        scores = (heads(q).float() @ kf.transpose(-1, -2)) * (case.scale or 1 / math.sqrt(case.D))
        if case.causal:
            keep = torch.ones(case.Sq, case.Sk, dtype=torch.bool, device="cuda").tril()
            scores = scores.masked_fill(~keep, float("-inf"))
        kept["lse"] = torch.logsumexp(scores, -1)
        return heads(torch.softmax(scores, -1) @ vf)   # in the case's layout, as skc's output

    def call(out):
        result = skc.blocks.attention(q, k, v, out=out, **options)
        if case.lse:
            result, kept["got_lse"] = result
        return result

    def others():
        if not case.lse:
            return []
        lse = kept["got_lse"].float()
        error = (lse.nan_to_num(0.0) - kept["lse"]).abs().max().item() if torch.isfinite(lse).all() else math.inf
        return [("log-sum-exp", error, LSE_LIMIT + 2e-5 * kept["lse"].abs().max().item())]

    setup = call_checks.Setup(list(zip((q, k, v), makers)), reference, call, tuple(q.shape), dtype, others=others)
    return call_checks.run(torch, setup, 3 if case.repeated else 1, case.out_given, limits)


# the log-sum-exp's absolute error limit (plus 2e-5 of its largest value, for large scales), as the attention GPU
# tests': one key block of 32 skipped moves a row's by ~0.03
LSE_LIMIT = 1e-3


def limits(rounding: tuple) -> tuple:
    """Each row's output is a weighted mean of V's rows: 2.5 times the output type's rounding of the reference, plus
    P's 16-bit rounding (measured: 2.4e-3 relative in all with bf16, against 1.7e-3 for the output's rounding)."""
    return 2.5 * rounding[0] + 2e-3, 2.5 * rounding[1] + 4e-3
