"""Timing two or more callables side by side without favouring one: each is timed once a round, every round
starts after the GPU rested (its clocks recover from the power cap) and with the next callable first, so each takes
the first slot after a rest equally often; the best round of each is kept.

Why (benchmarks/NOTES.md, tenth session): at a power-limited shape the first 100 ms of work after a pause runs
faster than the next. Timing cuBLAS always first put 4096³ at 0.92–0.98 of it; skc first, 1.00."""
import math
import time

REST_S = 0.25


def fair_times(calls: dict, timer, rounds: int = 0, rest_s: float = REST_S) -> dict:
    """{name: the least of timer(call) over the rounds}; rounds: a multiple of len(calls) (0: len(calls))."""
    import torch

    names = list(calls)
    rounds = rounds or len(names)
    if rounds % len(names):
        raise ValueError(f"{rounds} rounds do not give each of {len(names)} callables the first slot equally often")
    best = dict.fromkeys(names, math.inf)
    for round_ in range(rounds):
        torch.cuda.synchronize()
        time.sleep(rest_s)
        first = round_ % len(names)
        for name in names[first:] + names[:first]:
            best[name] = min(best[name], timer(calls[name]))
    return best
