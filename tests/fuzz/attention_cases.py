"""Random `skc.blocks.attention` calls: bf16 and fp16, head dimensions 64, 128 and 256, grouped-query heads, query
and key lengths from 1 to 4096 that differ, causal or not, both layouts, a scale given or not, the log-sum-exp asked
for, outputs given (poisoned) or made, a plan used twice. The kernels are the ones skc chooses itself.

Used by benchmarks/blocks_fuzz.py and tests/gpu/test_blocks_fuzz_gpu.py, as gemm_cases.py."""
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
    twice: bool = False

    kind = "attention"

    def label(self) -> str:
        parts = [f"attention {self.dtype} {self.B}x{self.H}/{self.Hkv}x{self.Sq}/{self.Sk}x{self.D}", self.layout]
        flags = {"causal": self.causal, "lse": self.lse, "out made": not self.out_given, "twice": self.twice}
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
                    out_given=rng.random() < 0.5, twice=rng.random() < 0.2)
        if case.B * case.H * case.Sq * case.Sk <= MOST_SCORES:
            return case


def cases(count: int, seed: int) -> list:
    rng = random.Random(seed)
    return [draw(rng) for _ in range(count)]


def run_case(case: Case, seed: int = 0):
    """(relative error, max error over the reference's largest value, NaN count) of the output, the worst of the
    calls; with the log-sum-exp, its largest absolute error counts in the second (its values are a few units)."""
    import torch

    import skc

    generator = torch.Generator(device="cuda").manual_seed(seed)
    dtype = torch.bfloat16 if case.dtype == "bf16" else torch.float16

    def tensor(heads, length):   # (B, heads, length, D) values, stored in the case's layout
        x = torch.randn(case.B, length, heads, case.D, device="cuda", generator=generator).to(dtype)
        return x if case.layout == "bshd" else x.transpose(1, 2).contiguous()

    q, k, v = tensor(case.H, case.Sq), tensor(case.Hkv, case.Sk), tensor(case.Hkv, case.Sk)
    heads = (lambda x: x.transpose(1, 2)) if case.layout == "bshd" else (lambda x: x)   # (B, H, S, D) views
    group = case.H // case.Hkv
    kf, vf = (heads(x).float().repeat_interleave(group, 1) for x in (k, v))
    scale = case.scale or 1 / math.sqrt(case.D)
    scores = (heads(q).float() @ kf.transpose(-1, -2)) * scale
    if case.causal:
        keep = torch.ones(case.Sq, case.Sk, dtype=torch.bool, device="cuda").tril()
        scores = scores.masked_fill(~keep, float("-inf"))
    want, want_lse = torch.softmax(scores, -1) @ vf, torch.logsumexp(scores, -1)
    del scores
    options = {"causal": case.causal, "layout": case.layout, "return_lse": case.lse}
    if case.scale:
        options["scale"] = case.scale
    worst = (0.0, 0.0, 0)
    for _ in range(2 if case.twice else 1):
        out = torch.full(q.shape, float("nan"), device="cuda", dtype=dtype) if case.out_given else None
        result = skc.blocks.attention(q, k, v, out=out, **options)
        got, lse = result if case.lse else (result, None)
        torch.cuda.synchronize()
        if out is not None and got.data_ptr() != out.data_ptr():
            raise AssertionError("attention returned another tensor than the out= it was given")
        got = heads(got).float()
        nans = int((~torch.isfinite(got)).sum())
        difference = (got.nan_to_num(0.0) - want).abs()
        relative = (difference.norm() / want.norm()).item()
        largest = (difference.max() / want.abs().max()).item()
        if lse is not None:
            nans += int((~torch.isfinite(lse)).sum())
            largest = max(largest, (lse.float().nan_to_num(0.0) - want_lse).abs().max().item())
        worst = (max(worst[0], relative), max(worst[1], largest), max(worst[2], nans))
    return worst


def tolerance(case: Case) -> tuple:
    """Each row's output is a weighted mean of V's rows: P's 16-bit rounding and the output's, with room."""
    return 2e-2, 4e-2
