"""Random `skc.blocks.conv2d` calls: bf16 and fp16 channels_last torch tensors, batches of 1-8, 1-256 channels (RGB's
3 among them), images of 1-64 pixels a side, filters of 1-7 taps, strides, paddings (numbers, pairs, "same",
"valid"), dilations, a bias and an activation, outputs given (poisoned) or made, a plan used three times.

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
    repeated: bool = False  # three calls on one plan, the inputs fresh before each later one

    def label(self) -> str:
        parts = [f"conv2d {self.dtype} N{self.N} C{self.C} {self.H}x{self.W} K{self.K} {self.R}x{self.S}",
                 f"stride {self.stride}", f"padding {self.padding}", f"dilation {self.dilation}"]
        flags = (("bias", self.bias), ("out given", self.out_given), ("repeated", self.repeated))
        parts += [name for name, on in flags if on]
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
                    out_given=rng.random() < 0.3, repeated=rng.random() < 0.25)
        P, Q = case.output_size()
        if P >= 1 and Q >= 1 and case.N * P * Q * case.K * case.C * R * S <= MOST_VALUES:
            return case


def cases(count: int, seed: int) -> list:
    rng = random.Random(seed)
    return [draw(rng) for _ in range(count)]


def run_case(case: Case, seed: int = 0):
    """A call_checks.Result against torch's conv2d in float32 (TF32 off): the call made once, or three times where
    `repeated`."""
    import torch

    import call_checks
    import skc

    torch.backends.cudnn.allow_tf32 = False
    generator = torch.Generator(device="cuda").manual_seed(seed)
    dtype = torch.bfloat16 if case.dtype == "bf16" else torch.float16

    def values(*shape):
        x = torch.randn(shape, device="cuda", generator=generator).to(dtype)
        return x.contiguous(memory_format=torch.channels_last) if len(shape) == 4 else x

    makers = [lambda: values(case.N, case.C, case.H, case.W), lambda: values(case.K, case.C, case.R, case.S)]
    if case.bias:
        makers.append(lambda: values(case.K))
    tensors = [make() for make in makers]
    x, w, bias = tensors + [None] * (3 - len(tensors))
    geometry = {"stride": case.stride, "padding": case.padding, "dilation": case.dilation}

    def reference():
        want = torch.nn.functional.conv2d(x.float(), w.float(), None if bias is None else bias.float(), **geometry)
        return gemm_cases.activated(torch, want, case.activation)

    def call(out):
        return skc.blocks.conv2d(x, w, bias=bias, activation=case.activation or None, out=out, **geometry)

    P, Q = case.output_size()
    setup = call_checks.Setup(list(zip(tensors, makers)), reference, call, (case.N, case.K, P, Q), dtype,
                              memory_format=torch.channels_last)
    return call_checks.run(torch, setup, 3 if case.repeated else 1, case.out_given, limits)


def limits(rounding: tuple) -> tuple:
    """As gemm_cases.limits for bf16 and fp16: 2.5 times the output type's rounding, plus 2e-4 (fp32 accumulation)."""
    return 2.5 * rounding[0] + 2e-4, 2.5 * rounding[1] + 8e-4
