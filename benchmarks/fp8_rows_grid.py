"""Per-tensor fp8 at 129-320 rows, end to end against torch._scaled_mm (benchmarks/fair.py, in turn): the rule's
tiles against swapped operands in one, two or three columns of tiles (out^T = b^T a^T, 128 x M/c rounded up to 16),
64 x 128 and 64 x 256 tiles (one consumer) and, with fast_accum, 192 x 128; each output checked against cuBLASLt's.
The shapes are the ones the thirty-sixth session's first draws at these rows read lowest on (`fp8_wave_fill.py --rows
129,320 --changed`, seeds 3601 and 3602); it fitted fp8.FAST_ROWS_64 and SWAPPED_COLUMN_ROWS to this grid, run at
2fb2d59, where "rule" was the thirty-fifth session's (now it is the rule those constants made).
    python benchmarks/fp8_rows_grid.py       (writes $OUT/fp8_rows_grid.json where OUT is set, else ./)"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import skc  # noqa: E402
from fair import bench_ms, fair_times  # noqa: E402
from fp8_gemm import operands  # noqa: E402
from skc.blocks.fp8 import SWAPPED, Fp8MatmulConfig, _two_fragments  # noqa: E402

PROMOTED = [(156, 10192, 12032), (191, 9552, 4736), (271, 10288, 8192), (257, 8704, 3200), (281, 15408, 14080),
            (147, 9296, 13056), (311, 10480, 8320)]
FAST = [(258, 9280, 15616), (282, 13200, 8320), (270, 12192, 5376), (166, 9760, 16384), (300, 13088, 10496),
        (143, 10240, 5248), (211, 13456, 12928)]


def variants(M, N, K, fast):
    """{name: configuration}: the rule's, swapped ones in 1-3 columns, and the other tile heights."""
    found = {"rule": Fp8MatmulConfig.for_fp8_problem(M, N, K, fast_accum=fast)}
    for columns in (1, 2, 3):
        rows = -(-M // columns)   # (each column's share of M, rounded up to 16: wgmma's n in steps the rule takes)
        width = -(-rows // 16) * 16
        if not 32 <= width <= 256:
            continue
        fields = {"fast_accum": fast}
        if not fast and width > 128:
            _two_fragments(fields, width)
        try:
            found[f"swap{columns} w{width}"] = Fp8MatmulConfig.for_problem(N, M, K, "f8e4m3", True, True, 232448,
                                                                         **fields, **SWAPPED, tile_n=width)
        except ValueError as refusal:
            print("skip", M, N, K, columns, refusal)
    heights = {"m64 w128": {"tile_m": 64, "consumers": 1, "tile_n": 128},
               "m64 w256": {"tile_m": 64, "consumers": 1, "tile_n": 256},
               "m192 w128": {"tile_m": 192, "consumers": 3, "tile_n": 128}}
    for name, fields in heights.items():
        fields = {**fields, "fast_accum": fast}
        if not fast and fields["tile_n"] == 128:
            fields["overlap_scaling"] = True
        try:
            found[name] = Fp8MatmulConfig.for_fp8_problem(M, N, K, **fields)
        except ValueError as refusal:
            print("skip", name, refusal)
    return found


def main():
    rows = []
    for fast, shapes in ((False, PROMOTED), (True, FAST)):
        for M, N, K in shapes:
            a, b = operands(M, N, K)
            sa, sb = torch.tensor(0.01, device="cuda"), torch.tensor(0.02, device="cuda")
            scaled = dict(scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16, use_fast_accum=fast)
            reference = torch._scaled_mm(a, b, **scaled).float()
            out = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
            calls = {"cublas": lambda: torch._scaled_mm(a, b, **scaled)}
            for name, config in variants(M, N, K, fast).items():
                out.fill_(float("nan"))
                try:
                    skc.blocks.matmul(a, b, out, config=config, **scaled)
                except Exception as failure:
                    print(f"  {name}: {type(failure).__name__} {str(failure)[:200]}", flush=True)
                    continue
                error = ((out.float() - reference).abs().max() / reference.abs().max()).item()
                if not error < (3e-2 if fast else 1e-2):
                    print(f"  {M}x{N}x{K} {name}: WRONG {error}", flush=True)
                    continue
                calls[name] = lambda config=config: skc.blocks.matmul(a, b, out, config=config, **scaled)
            times = fair_times(calls, lambda fn: bench_ms(fn, 30), rounds=len(calls))
            ratio = {name: times["cublas"] / time for name, time in times.items() if name != "cublas"}
            print(f"{'fast' if fast else 'prom'} {M}x{N}x{K}: " + "  ".join(
                f"{name} {value:.3f}" for name, value in sorted(ratio.items(), key=lambda kv: -kv[1])), flush=True)
            rows.append({"shape": [M, N, K], "fast": fast, "ratio": ratio})
    with open(os.path.join(os.environ.get("OUT", "."), "fp8_rows_grid.json"), "w") as handle:
        json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
