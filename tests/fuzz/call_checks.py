"""Running one drawn call of a host-side block and judging its results: gemm_cases.py, attention_cases.py and
conv_cases.py describe a call as a Setup, `run` makes it one or three times.

Each call finds its output poisoned: an `out` given is filled with NaN in place (the same tensor every call, so a
plan binds its address on the second call and looks the binding up on the third), and where skc makes the output,
a NaN tensor of its size is freed just before, so torch's caching allocator hands skc that block. Before each later
call the inputs get fresh values in place and the reference is computed again, so a plan that kept stale inputs or
results fails. A result is wrong where its error passes limits set from the output type's own rounding of the
reference (a multiple of it, plus the accumulation's share), where a value is not finite, or where a call given
`out` wrote elsewhere."""
from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass
class Setup:
    inputs: list        # (tensor, make): make() returns fresh values of the tensor's shape and type
    reference: object   # () -> the float32 result of the inputs' present values
    call: object        # (out or None) -> skc's output tensor
    shape: tuple
    dtype: object       # the output's torch dtype
    memory_format: object = None
    others: object = None   # () -> [(name, error, limit)]: checks beyond the output, after a call (the log-sum-exp)
    device: str = "cuda"


@dataclasses.dataclass
class Result:
    relative: float = 0.0         # |got - want| / |want| (Frobenius norms)
    largest: float = 0.0          # max |got - want| / max |want|
    nans: int = 0                 # values not finite
    relative_limit: float = math.inf
    largest_limit: float = math.inf
    others: list = dataclasses.field(default_factory=list)   # (name, error, limit) of each call's other checks

    @property
    def right(self) -> bool:
        return (self.nans == 0 and self.relative <= self.relative_limit and self.largest <= self.largest_limit
                and all(error <= limit for _, error, limit in self.others))

    def describe(self) -> str:
        text = (f"relative {self.relative:.2e} (limit {self.relative_limit:.1e}), largest {self.largest:.2e} "
                f"(limit {self.largest_limit:.1e}), not finite {self.nans}")
        worst = {}
        for name, error, limit in self.others:
            worst[name] = max(worst.get(name, (0.0, limit)), (error, limit))
        return text + "".join(f", {name} {error:.2e} (limit {limit:.1e})" for name, (error, limit) in worst.items())


def rounding(torch, want, dtype) -> tuple:
    """(relative, largest) error of rounding the reference to the output's type: a right result's floor."""
    if dtype == torch.float32:
        return 0.0, 0.0
    difference = (want.to(dtype).float() - want).abs()
    return ((difference.norm() / want.norm().clamp_min(1e-30)).item(),
            (difference.max() / want.abs().max().clamp_min(1e-30)).item())


def run(torch, setup: Setup, calls: int, out_given: bool, limits) -> Result:
    """`calls` calls (each with its inputs refreshed but the first), the worst of their errors; `limits(rounding)`
    maps the output type's (relative, largest) rounding of a reference to the (relative, largest) limits."""
    result = Result()
    options = {} if setup.memory_format is None else {"memory_format": setup.memory_format}
    out = torch.empty(setup.shape, device=setup.device, dtype=setup.dtype, **options) if out_given else None
    for index in range(calls):
        if index:
            for tensor, make in setup.inputs:
                tensor.copy_(make())
        want = setup.reference()
        if out is not None:
            out.fill_(float("nan"))
        else:   # the block skc's own output will most likely take
            poison = torch.full(setup.shape, float("nan"), device=setup.device, dtype=setup.dtype)
            del poison
        got = setup.call(out)
        if setup.device == "cuda":
            torch.cuda.synchronize()
        if out is not None:
            if got is not None and got.data_ptr() != out.data_ptr():
                raise AssertionError("the call returned another tensor than the out= it was given")
            got = out
        got = got.float()
        result.nans = max(result.nans, int((~torch.isfinite(got)).sum()))
        difference = (got.nan_to_num(0.0) - want).abs()
        result.relative = max(result.relative, (difference.norm() / want.norm().clamp_min(1e-30)).item())
        result.largest = max(result.largest, (difference.max() / want.abs().max().clamp_min(1e-30)).item())
        relative_limit, largest_limit = limits(rounding(torch, want, setup.dtype))
        result.relative_limit = min(result.relative_limit, relative_limit)
        result.largest_limit = min(result.largest_limit, largest_limit)
        if setup.others is not None:
            result.others += setup.others()
    return result
