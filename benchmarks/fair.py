"""Timing two or more callables side by side without favouring one: each is timed once a round, every round
starts after the GPU rested (its clocks recover from the power cap) and with the next callable first, so each takes
the first slot after a rest equally often; the best round of each is kept.

Why (benchmarks/NOTES.md, tenth session): at a power-limited shape the first 100 ms of work after a pause runs
faster than the next. Timing cuBLAS always first put 4096³ at 0.92–0.98 of it; skc first, 1.00."""
import json
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


def sustained(calls: dict, flops: int, reps: int, rounds: int = 8, rest_s: float = 0.1) -> dict:
    """{name: [TFLOP/s of each round]} of back-to-back batches of `reps` calls (CUDA events around each batch),
    the callables alternated over the rounds (the order reversed every other round, a rest before each batch):
    sustained load, for telling kernels a few percent apart (benchmarks/fp8_kernel_ab.py, gemm_kernel_ab.py)."""
    import torch

    def batch(call, count):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(count):
            call()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / count

    names = list(calls)
    for call in calls.values():
        batch(call, 5)
    results = {name: [] for name in names}
    for round_ in range(rounds):
        for name in (names if round_ % 2 == 0 else names[::-1]):
            time.sleep(rest_s)
            results[name].append(flops / batch(calls[name], reps) / 1e9)
    return results


def report(title: str, results: dict, width: int = 32):
    """The medians (and the spread) of sustained()'s rounds, each against the first callable's."""
    import statistics

    names = list(results)
    base = statistics.median(results[names[0]])
    print(title)
    for name, values in results.items():
        median = statistics.median(values)
        print(f"  {name:{width}s} median {median:7.0f}  min {min(values):7.0f} max {max(values):7.0f}  "
              f"vs {names[0]}: {median / base:.3f}")


def bench_ms(fn, rep_ms: int = 100) -> float:
    """Milliseconds a call: triton's do_bench median (L2 flushed before each call), the one-callable timer that
    fair_times takes in the sweeps."""
    from triton.testing import do_bench

    return do_bench(fn, warmup=25, rep=rep_ms, return_mode="median")


def geomean(values) -> float:
    values = list(values)
    return math.exp(sum(map(math.log, values)) / len(values))


def save(rows: list, json_path=None, plot_path=None, plot=None):
    """A run's rows written as JSON (json_path) and drawn by plot(rows, plot_path), where asked."""
    if json_path:
        with open(json_path, "w") as handle:
            json.dump(rows, handle, indent=1)
    if plot_path:
        plot(rows, plot_path)
