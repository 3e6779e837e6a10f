"""Deep-K GEMMs whose tiles fit one wave (tile_rules.deep_k_tiles), end to end against torch.matmul (the Python call,
host included; triton's do_bench medians with L2 flushed, each callable timed in rotating order, best round kept).

    python benchmarks/deep_k_splits.py grid [MxNxK[:linear],...]   every tile of 64 x 64 to 128 x 256 in 1-8 shares
                                                                   (and stream-K) beside the default: what
                                                                   config.DEEP_K_* was fitted to (the twenty-ninth
                                                                   session's figures came from a scratch form of it)
    python benchmarks/deep_k_splits.py draw [SEED]                 shapes whose choice the rules before (BEFORE)
                                                                   and the code it runs on make differently (no GPU;
                                                                   "ab 30": seed 32's at 2d7bf0f, whose rules made a
                                                                   few more choices differently than the final code)
    python benchmarks/deep_k_splits.py grid edges                  the same over a K of 64-127 k-steps and over
                                                                   tiles whose last row or column is part past the
                                                                   output (thirtieth session)
    python benchmarks/deep_k_splits.py ab [MxNxK[:linear],...]     the default against the rules before the
                                                                   thirtieth session (BEFORE), given as a
                                                                   configuration, on shapes they were not fitted to
                                                                   ("fitted": the 24 the twenty-ninth's were; its own
                                                                   ab turned DEEP_K_STEPS off instead)
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import skc  # noqa: E402
from fair import bench_ms, geomean  # noqa: E402
from skc.blocks import MatmulConfig, matmul_host  # noqa: E402
from skc.blocks import tile_rules as rules  # noqa: E402

GRID = ["192x640x14208", "867x576x15488", "256x1024x16384", "512x512x12288", "384x768x8192", "640x640x16384",
        "1024x512x8192", "320x1280x12288", "448x896x10240", "1024x1024x16384", "256x2048x8192", "128x1536x16384",
        "704x1152x6144", "576x576x24576"]
# the shapes the rule was fitted to against the rule before it: drawn at random (seed 29: 65 <= M <= 1200, N and K
# multiples of 64, K >= 8192, the rule's tiles before in one wave), the twenty-seventh session's half-wave shapes, and
# four of GRID's
AB_FITTED = ["1187x512x19520", "656x576x24896", "240x2240x18944", "414x1152x22400", "676x1344x24960",
             "817x768x16832:linear", "762x512x26240:linear", "383x1536x14912", "96x320x21248", "1188x768x22464:linear",
             "84x448x9472", "695x704x8384", "82x832x13888", "459x1280x24512:linear", "448x320x12288:linear",
             "96x2048x10240", "95x1936x13632:linear", "277x2048x15552", "1137x1024x25984", "693x1472x27392",
             "192x640x14208", "576x576x24576", "384x768x8192", "640x640x16384"]
# shapes it was not fitted to (seed 30: 128 <= M <= 1500, otherwise as above; 18 whose choice changed, 3 not)
AB = ["1073x256x25280", "624x320x10560", "950x320x16320", "356x2752x24384", "292x768x16128", "370x320x21568",
      "589x1088x23808:linear", "372x1600x26560:linear", "1475x256x12864", "808x320x14528", "1103x256x12864",
      "259x1792x16320", "828x256x23872", "362x960x13376", "832x320x26688:linear", "583x1536x24576:linear",
      "179x1920x17664:linear", "1088x512x16000:linear", "1232x1408x28160:linear", "1466x1088x16576:linear",
      "898x2880x12544"]
# a K of 64-127 k-steps (the rule's tiles in one wave), and deep-K shapes whose 64 x 128 or 128 x 128 tiles have a
# last column or row part past N or M (the twenty-ninth session's three validation losses among them)
GRID_EDGES = ["368x344x7392", "512x512x6144", "256x1024x5120", "640x384x4608", "300x900x7040", "1024x512x4096",
              "200x1200x6656:linear", "768x768x5120", "808x320x14528", "832x320x26688:linear", "259x1792x16320",
              "600x448x16384", "300x960x12288", "1000x192x16384", "450x576x20480"]
# the thirtieth session's shapes drawn after the fit (seed 32, `python benchmarks/deep_k_splits.py draw` at 2d7bf0f)
AB30 = ["539x704x7680:linear", "129x2176x6720", "1013x384x6464", "196x1088x7808:linear", "209x1280x6784",
        "585x640x6144", "204x1664x5824:linear", "209x1152x6976", "1299x320x16192:linear", "322x1216x14656",
        "1095x704x15360", "340x1216x15296", "259x1088x23296", "1391x576x22912", "1115x576x17664",
        "250x1216x21312:linear", "167x1984x17960:linear", "338x768x6112", "191x360x9008", "401x240x11288",
        "674x800x9200:linear", "76x1344x5816:linear", "335x416x9736", "203x2208x6592"]
# the rules as the twenty-ninth session left them
BEFORE = {"DEEP_K_STEPS": 128, "DEEP_K_PAST_N_COST": 0, "UNALIGNED_SPLITS": False}
TILES = [(64, 64), (64, 128), (128, 128), (128, 256)]


def operands(spec):
    shape, _, kind = spec.partition(":")
    M, N, K = map(int, shape.split("x"))
    linear = kind == "linear"
    a = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
    b = (torch.randn(N, K, device="cuda", dtype=torch.bfloat16).t() if linear
         else torch.randn(K, N, device="cuda", dtype=torch.bfloat16))
    return M, N, K, linear, a, b


@contextlib.contextmanager
def rules_as(values: dict, module=rules):
    """The configuration rules with these constants of `module` (skc.blocks.config's: BEFORE's), restored after."""
    now = {name: getattr(module, name) for name in values}
    try:
        for name, value in values.items():
            setattr(module, name, value)
        yield
    finally:
        for name, value in now.items():
            setattr(module, name, value)


def unaligned(linear: bool, N: int, K: int) -> tuple:
    """How many bytes past a multiple of 128 (A's, B's) rows start from each other, as matmul's host reads them (0:
    aligned): A's are K long, B's N (K for a K-major B)."""
    return tuple(pitch % 64 * 2 for pitch in ((K, K) if linear else (K, N)))


def named(config) -> str:
    return (f"{config.tile_m}x{config.tile_n} k{config.split_k}"
            + (f" c{config.cluster_m}x{config.cluster_n}" if config.cluster > 1 else ""))


def default_config(a, b):
    """The configuration skc.blocks.matmul chooses for a @ b (its plan's, made now; for rows TMA cannot address,
    the GEMM's behind the padded path's copies)."""
    matmul_host._PLANS.clear()
    skc.blocks.matmul(a, b)
    (plan,) = matmul_host._PLANS.values()
    return plan.gemm.cfg if isinstance(plan, matmul_host._PaddedRows) else plan.cfg


def timed(calls: dict, rounds: int) -> dict:
    best = {}
    for round_ in range(rounds):
        names = list(calls)[round_ % len(calls):] + list(calls)[:round_ % len(calls)]
        torch.cuda.synchronize()
        time.sleep(0.2)
        for name in names:
            best[name] = min(best.get(name, math.inf), bench_ms(calls[name], 40))
    return best


def error(got, expected) -> float:
    return ((got.float() - expected).norm() / expected.norm()).item()


def grid(specs):
    for spec in specs:
        M, N, K, linear, a, b = operands(spec)
        expected = a.float() @ b.float()
        calls = {"torch": lambda: torch.matmul(a, b), "default": lambda: skc.blocks.matmul(a, b)}
        for tile_m, tile_n in TILES:
            tiles = -(-M // tile_m) * -(-N // tile_n)
            variants = {f"k{split}": {"split_k": split} for split in (1, 2, 3, 4, 6, 8)
                        if tiles * split <= 2 * 132 and K // 64 >= 16 * split and (split == 1 or tiles * split >= 40)}
            if tiles < 132:
                variants["streamk"] = {"stream_k": True}
            for name, fields in variants.items():
                config = MatmulConfig.for_problem(M, N, K, multiprocessors=132, b_k_major=linear, tile_m=tile_m,
                                                  tile_n=tile_n, cluster_m=1, **fields)
                calls[f"{tile_m}x{tile_n} {name} ({tiles * config.split_k})"] = \
                    lambda config=config: skc.blocks.matmul(a, b, config=config)
        print_grid(spec, a, b, expected, calls, 2)


def print_grid(spec, a, b, expected, calls: dict, rounds: int):
    """Each of `calls` (torch's among them) checked against `expected`, timed, and printed as torch's time over its,
    fastest first, with the default's configuration named."""
    wrong = [name for name, call in calls.items() if error(call(), expected) > 1e-2]
    default = named(default_config(a, b))
    best = timed(calls, rounds)
    reference = best.pop("torch")
    print(f"{spec} (default {default}) torch {reference * 1e3:.1f}us  " + "  ".join(
        f"{name} {reference / ms:.2f}" for name, ms in sorted(best.items(), key=lambda kv: kv[1])), flush=True)
    if wrong:
        print("  WRONG:", wrong, flush=True)


def chosen(M, N, K, linear, values=None):
    """The configuration the rules choose for this problem (with `values` for some of their constants)."""
    with rules_as(values or {}):
        return MatmulConfig.for_problem(M, N, K, multiprocessors=132, b_k_major=linear,
                                        unaligned=unaligned(linear, N, K))


def ab(specs, rules_before=None):
    """The default against the rules with `rules_before`'s constants (BEFORE's by default), given as a configuration."""
    ratios = {"before": [], "default": []}
    for spec in specs:
        M, N, K, linear, a, b = operands(spec)
        expected = a.float() @ b.float()
        before = chosen(M, N, K, linear, BEFORE if rules_before is None else rules_before)
        default = default_config(a, b)
        errors = (error(skc.blocks.matmul(a, b), expected), error(skc.blocks.matmul(a, b, config=before), expected))
        calls = {"torch": lambda: torch.matmul(a, b), "before": lambda: skc.blocks.matmul(a, b, config=before),
                 "default": lambda: skc.blocks.matmul(a, b)}
        best = timed(calls, 3)
        for name in ratios:
            ratios[name].append(best["torch"] / best[name])
        print(f"{spec}: torch {best['torch'] * 1e3:.1f}us  before {named(before)} {ratios['before'][-1]:.2f}  "
              f"default {named(default)} {ratios['default'][-1]:.2f}  errors {errors[1]:.1e} {errors[0]:.1e}",
              flush=True)
        assert max(errors) <= 1e-2, (spec, errors)
    print(f"geometric mean before {geomean(ratios['before']):.3f}, default {geomean(ratios['default']):.3f}; "
          f"lowest {min(ratios['before']):.2f}, {min(ratios['default']):.2f}")


def draw(seed: int, count: int = 8):
    """`count` shapes a group, drawn with `seed`, whose configuration the rules before (BEFORE) and now choose
    differently: a K of 64-127 k-steps (aligned rows), a deep K with N an odd multiple of 64, and rows not 128-byte
    aligned (N and K multiples of 8, one of them not of 64)."""
    import random

    generator = random.Random(seed)

    def size(low, high, align):
        return max(align, int(math.exp(generator.uniform(math.log(low), math.log(high)))) // align * align)

    groups = {
        "64-127 k-steps": lambda: (size(128, 1500, 1), size(192, 3072, 64), size(4096, 8191, 64)),
        "N an odd multiple of 64": lambda: (size(128, 1500, 1), 64 + 128 * generator.randint(1, 9),
                                            size(8192, 28672, 64)),
        "rows not 128-byte aligned": lambda: (size(8, 1500, 1), size(200, 3000, 8), size(2048, 28672, 8)),
    }
    for group, shape in groups.items():
        found = []
        while len(found) < count:
            M, N, K = shape()
            linear = generator.random() < 0.5
            if group == "rows not 128-byte aligned" and not any(unaligned(linear, N, K)):
                continue

            def choice(values=None):
                config = chosen(M, N, K, linear, values)
                return config.tile_m, config.tile_n, config.split_k, config.cluster_m, config.cluster_n

            if choice(BEFORE) != choice():
                found.append(f"{M}x{N}x{K}" + (":linear" if linear else ""))
        print(f"{group}: {','.join(found)}")


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "ab"
    if mode == "draw":
        draw(int(sys.argv[2]) if len(sys.argv) > 2 else 32)
        sys.exit()
    named = {"fitted": AB_FITTED, "edges": GRID_EDGES, "30": AB30}
    specs = (named.get(sys.argv[2]) or sys.argv[2].split(",") if len(sys.argv) > 2 else
             GRID if mode == "grid" else AB)
    {"grid": grid, "ab": ab}[mode](specs)
