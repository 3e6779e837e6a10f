"""Random `skc.blocks.conv2d` calls: bf16 and fp16 channels_last torch tensors, batches of 1-8, 1-256 channels (RGB's
3 among them), images of 1-64 pixels a side, filters of 1-7 taps, strides, paddings (numbers, pairs, "same",
"valid"), dilations, a bias and an activation, outputs given (poisoned) or made.

Used by benchmarks/blocks_fuzz.py and tests/gpu/test_blocks_fuzz_gpu.py, as gemm_cases.py."""
from __future__ import annotations

import dataclasses
import random

import gemm_cases

MOST_VALUES = 4e10    # N·P·Q·K·C·R·S at most


@dataclasses.dataclass(frozen=True)
class Case:
    dtype: str
    N: int
    C: int
    H: int
    W: int
    K: int
    R: int
    S: int
    stride: tuple = (1, 1)
    padding: object = 0     # an int, a pair, "same" or "valid"
    dilation: tuple = (1, 1)
    bias: bool = False
    activation: str = ""
    out_given: bool = False

    kind = "conv2d"

    def label(self) -> str:
        parts = [f"conv2d {self.dtype} N{self.N} C{self.C} {self.H}x{self.W} K{self.K} {self.R}x{self.S}",
                 f"stride {self.stride}", f"padding {self.padding}", f"dilation {self.dilation}"]
        parts += [name for name, on in (("bias", self.bias), ("out given", self.out_given)) if on]
        if self.activation:
            parts.append(self.activation)
        return ", ".join(parts)

    def output_size(self) -> tuple:
        if self.padding == "same":
            return self.H, self.W
        pad = (0, 0) if self.padding == "valid" else (self.padding if isinstance(self.padding, tuple)
                                                      else (self.padding, self.padding))
        return tuple((size + 2 * p - d * (taps - 1) - 1) // s + 1 for size, p, d, taps, s in
                     zip((self.H, self.W), pad, self.dilation, (self.R, self.S), self.stride))


def draw(rng: random.Random) -> Case:
    while True:
        R = rng.choice((1, 1, 3, 3, 3, 5, 7))
        S = R if rng.random() < 0.85 else rng.choice((1, 3, 5))
        stride = rng.choice(((1, 1), (1, 1), (2, 2), (1, 2)))
        dilation = (1, 1) if rng.random() < 0.8 else rng.choice(((2, 2), (1, 2)))
        padding = rng.choice((0, R // 2, (R // 2, S // 2), "valid") + (("same",) if stride == (1, 1) else ()))
        case = Case(rng.choice(("bf16", "bf16", "fp16")), rng.randint(1, 8),
                    rng.choice((3, 8, 16, 24, 32, 64, 96, 128, 256, rng.randint(1, 200))),
                    rng.randint(1, 64), rng.randint(1, 64), rng.choice((8, 16, 32, 64, 96, 128, 192, 256,
                                                                         8 * rng.randint(1, 40))),
                    R, S, stride, padding, dilation, bias=rng.random() < 0.3,
                    activation=rng.choice(("relu", "gelu", "silu")) if rng.random() < 0.2 else "",
                    out_given=rng.random() < 0.3)
        P, Q = case.output_size()
        if P >= 1 and Q >= 1 and case.N * P * Q * case.K * case.C * R * S <= MOST_VALUES:
            return case


def cases(count: int, seed: int) -> list:
    rng = random.Random(seed)
    return [draw(rng) for _ in range(count)]


def run_case(case: Case, seed: int = 0):
    """(relative error, max error over the reference's largest value, NaN count) against torch's conv2d in float32
    (TF32 off)."""
    import torch

    import skc

    torch.backends.cudnn.allow_tf32 = False
    generator = torch.Generator(device="cuda").manual_seed(seed)
    dtype = torch.bfloat16 if case.dtype == "bf16" else torch.float16
    x = torch.randn(case.N, case.C, case.H, case.W, device="cuda", generator=generator).to(dtype)
    w = torch.randn(case.K, case.C, case.R, case.S, device="cuda", generator=generator).to(dtype)
    x, w = (t.contiguous(memory_format=torch.channels_last) for t in (x, w))
    bias = torch.randn(case.K, device="cuda", generator=generator).to(dtype) if case.bias else None
    want = torch.nn.functional.conv2d(x.float(), w.float(), None if bias is None else bias.float(), case.stride,
                                      case.padding, case.dilation)
    want = gemm_cases.activated(torch, want, case.activation)
    out = None
    if case.out_given:
        out = torch.full(want.shape, float("nan"), device="cuda", dtype=dtype).contiguous(
            memory_format=torch.channels_last)
    got = skc.blocks.conv2d(x, w, bias=bias, stride=case.stride, padding=case.padding, dilation=case.dilation,
                            activation=case.activation or None, out=out)
    torch.cuda.synchronize()
    got = got.float()
    nans = int((~torch.isfinite(got)).sum())
    difference = (got.nan_to_num(0.0) - want).abs()
    scale = want.abs().max().clamp_min(1e-30)
    return (difference.norm() / want.norm().clamp_min(1e-30)).item(), (difference.max() / scale).item(), nans


def tolerance(case: Case) -> tuple:
    return 1e-2, 4e-2
