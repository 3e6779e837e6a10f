"""skc at shapes the issues' tables do not list, against the same references, end to end (the Python call, host
included; do_bench medians taken in turn, benchmarks/fair.py): where a user's own shapes would find skc slow.

- GEMM (bf16): `skc.blocks.matmul(a, b)` against `torch.matmul(a, b)`, b row-major, and `linear`: b the transpose of
  an N x K weight (`x @ w.t()`, what torch.nn.functional.linear computes), over small, odd and mid sizes.
- FP8 (e4m3, bf16 out, b column-major as torch._scaled_mm takes it): per-tensor and block-wise scales.
- Attention (bf16): against torch SDPA with the cuDNN backend (flash where cuDNN refuses a shape): other batch,
  head and sequence sizes, query and key lengths that differ, grouped-query heads, (B, S, H, D) tensors.

Every output is checked against the reference first. Prints one line a case and the geometric mean per kind.
    python benchmarks/shape_sweep.py [--kinds gemm,linear,fp8,attention] [--json FILE] [--plot FILE.png]
    python benchmarks/shape_sweep.py --random 20 --seed 7   (20 shapes a kind drawn at random instead of the lists:
                                                            cases no one tuned for)
    python benchmarks/shape_sweep.py --replot FILE.json --plot FILE.png   (draws a run's figures again, no GPU)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import skc  # noqa: E402
from fair import bench_ms, fair_times, geomean, save  # noqa: E402

GEMM = ["1x4096x4096", "8x4096x4096", "32x4096x11008", "64x5120x5120", "256x4096x4096", "512x12288x4096",
        "1000x1000x1000", "1536x1536x1536", "3000x3000x3000", "3072x3072x3072", "5120x5120x5120", "6144x6144x6144",
        "4096x4096x512", "4096x4096x1024", "1024x4096x4096", "4096x1024x4096", "2048x8192x2048",
        "16384x4096x1024", "2048x2048x8192", "4096x11008x4096", "333x777x999", "127x8192x8192", "100x3000x5000"]
LINEAR = ["16x4096x4096", "128x4096x4096", "512x11008x4096", "1536x1536x1536", "2048x4096x4096", "4096x4096x4096", "8192x14336x4096",
          "4096x4096x14336", "3000x5120x5120"]
FP8 = ["16x4096x4096", "256x4096x4096", "2048x2048x2048", "3072x3072x3072", "6144x6144x6144", "8192x4096x1024",
       "2048x7168x2048", "512x24576x1536"]
ATTENTION = [  # (B, H, H_kv, Sq, Skv, D, causal, layout)
    (1, 8, 8, 512, 512, 128, False, "bhsd"), (4, 16, 16, 1024, 1024, 64, False, "bhsd"),
    (2, 32, 32, 2048, 2048, 64, True, "bhsd"), (1, 16, 16, 8192, 8192, 128, True, "bhsd"),
    (2, 32, 8, 4096, 4096, 128, False, "bhsd"), (2, 32, 8, 4096, 4096, 128, True, "bhsd"),
    (4, 16, 16, 3000, 3000, 128, False, "bhsd"), (8, 16, 16, 1024, 4096, 128, False, "bhsd"),
    (4, 16, 16, 4096, 4096, 128, False, "bshd"), (4, 16, 16, 4096, 4096, 128, True, "bshd"),
    (2, 16, 16, 2048, 2048, 256, False, "bhsd"), (16, 8, 8, 512, 512, 64, True, "bhsd"),
]


def random_cases(count: int, seed: int) -> dict:
    """`count` cases a kind, drawn with `seed`: sizes log-uniform, a GEMM's a third of the time on rows no multiple
    of 8 elements (16-byte unaligned: the padded copies) or of 64 (128-byte unaligned), the work capped at 2 TFLOP a
    GEMM so that a case times in a second. fp8's K and N are multiples of 16 (what torch._scaled_mm takes)."""
    import random

    draw = random.Random(seed)

    def size(low, high, align):
        value = int(math.exp(draw.uniform(math.log(low), math.log(high))))
        return max(align, value // align * align)

    def gemm_shape(align16=False):
        while True:
            aligns = [draw.choice([1, 8, 64, 64]) for _ in range(3)] if not align16 else [1, 16, 128]
            M, N, K = size(1, 8192, aligns[0]), size(256, 16384, aligns[1]), size(256, 16384, aligns[2])
            if 2 * M * N * K <= 2e12:
                return f"{M}x{N}x{K}"

    attention = []
    for _ in range(count):
        H = draw.choice([8, 16, 32])
        S = size(128, 8192, draw.choice([1, 64]))
        B = max(1, min(16, int(2 ** 24 // (S * S * H) * 4) or 1))
        attention.append((draw.randint(1, B), H, H // draw.choice([1, 1, 4, 8]), S,
                          draw.choice([S, S, size(128, 8192, 1)]), draw.choice([64, 128, 128]),
                          draw.random() < 0.4, draw.choice(["bhsd", "bhsd", "bshd"])))
    return {"gemm": [gemm_shape() for _ in range(count)], "linear": [gemm_shape() for _ in range(count)],
            "fp8": [gemm_shape(align16=True) for _ in range(count)], "attention": attention}


def side_by_side(ours, reference, flops):
    times = fair_times({"skc": ours, "reference": reference}, bench_ms)
    return flops / times["skc"] / 1e9, flops / times["reference"] / 1e9


def sizes(shape):
    return [int(v) for v in shape.split("x")]


def gemm_case(shape, linear):
    M, N, K = sizes(shape)
    a = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(N, K, device="cuda", dtype=torch.bfloat16).t() if linear else \
        torch.randn(K, N, device="cuda", dtype=torch.bfloat16)
    expected = torch.matmul(a, b).float()
    try:
        got = skc.blocks.matmul(a, b).float()
    except skc.LaunchError as error:
        return {"kind": "linear" if linear else "gemm", "case": shape, "note": f"refused: {str(error)[:150]}"}
    error = ((got - expected).norm() / expected.norm()).item()
    ours, ref = side_by_side(lambda: skc.blocks.matmul(a, b), lambda: torch.matmul(a, b), 2 * M * N * K)
    return {"kind": "linear" if linear else "gemm", "case": shape, "skc": ours, "reference": ref,
            "ratio": ours / ref, "error": error, "ok": error < 1e-2}


def fp8_cases(shape):
    M, N, K = sizes(shape)
    a = (torch.randn(M, K, device="cuda") * 8).clamp(-400, 400).to(torch.float8_e4m3fn)
    b = (torch.randn(N, K, device="cuda") * 8).clamp(-400, 400).to(torch.float8_e4m3fn).t()
    rows = []
    sa, sb = torch.tensor(0.01, device="cuda"), torch.tensor(0.02, device="cuda")
    kinds = [("fp8 per-tensor", sa, sb)]
    if K % 128 == 0:
        block_a = (torch.rand(M, K // 128, device="cuda") * 2 ** -6 + 2 ** -8).t().contiguous().t()
        block_b = torch.rand(K // 128, -(-N // 128), device="cuda") * 2 ** -6 + 2 ** -8
        kinds.append(("fp8 block-wise", block_a, block_b))
    for kind, scale_a, scale_b in kinds:
        def ours(scale_a=scale_a, scale_b=scale_b):
            return skc.blocks.matmul(a, b, scale_a=scale_a, scale_b=scale_b, out_dtype=torch.bfloat16)

        if kind == "fp8 block-wise":   # the scale layouts cuBLASLt takes (benchmarks/fp8_gemm.py)
            from fp8_gemm import cublas_block

            reference, layouts = cublas_block(a, b, scale_a, scale_b)
            if reference is None:
                rows.append({"kind": kind, "case": shape, "note": f"reference failed: {layouts[:120]}"})
                continue
        else:
            def reference(scale_a=scale_a, scale_b=scale_b):
                return torch._scaled_mm(a, b, scale_a=scale_a, scale_b=scale_b, out_dtype=torch.bfloat16)

        try:
            expected = reference().float()
        except RuntimeError as error:   # a shape cuBLASLt refuses
            rows.append({"kind": kind, "case": shape, "note": f"reference failed: {str(error).splitlines()[0][:120]}"})
            continue
        if kind == "fp8 block-wise":
            # against the dequantized operands in float32: cuBLASLt's block-wise product is wrong where K / 128 is no
            # multiple of 4 (relative error 0.3-2e5 there, twenty-sixth session), so it is no reference for skc's
            exact = dequantized(a, b, scale_a, scale_b)
            wrong = ((expected - exact).norm() / exact.norm()).item()
            if wrong > 2e-2:
                rows.append({"kind": kind, "case": shape, "note": f"reference wrong (error {wrong:.3g} against the "
                             "dequantized float32 product)", "skc_error": ((ours().float() - exact).norm()
                                                                           / exact.norm()).item()})
                continue
            expected = exact
        try:
            error = ((ours().float() - expected).norm() / expected.norm()).item()
        except skc.LaunchError as error:
            rows.append({"kind": kind, "case": shape, "note": f"refused: {str(error)[:150]}"})
            continue
        mine, ref = side_by_side(ours, reference, 2 * M * N * K)
        rows.append({"kind": kind, "case": shape, "skc": mine, "reference": ref, "ratio": mine / ref,
                     "error": error, "ok": error < 2e-2})
    return rows


def dequantized(a, b, scale_a, scale_b):
    """(a · scale_a) @ (b · scale_b) in float32, each block scale spread over its 1 x 128 or 128 x 128 block."""
    K, N = b.shape
    a32 = a.float() * scale_a.repeat_interleave(128, dim=1)[:, :K]
    b32 = b.float() * scale_b.repeat_interleave(128, dim=0).repeat_interleave(128, dim=1)[:K, :N]
    return a32 @ b32


def attention_case(B, H, Hkv, Sq, Skv, D, causal, layout):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from skc.blocks.attention_host import attention

    torch.manual_seed(0)
    q = torch.randn(B, H, Sq, D, device="cuda", dtype=torch.bfloat16)
    k, v = (torch.randn(B, Hkv, Skv, D, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    if layout == "bshd":   # (B, S, H, D) memory, seen as (B, H, S, D) views for torch
        q, k, v = (x.transpose(1, 2).contiguous().transpose(1, 2) for x in (q, k, v))

    def ours():
        if layout == "bshd":
            return attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal=causal,
                             layout="bshd").transpose(1, 2)
        return attention(q, k, v, causal=causal)

    def torch_sdpa(backend):
        def call():
            with sdpa_kernel(backend):
                return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal,
                                                                        enable_gqa=Hkv != H)
        return call

    reference, name = None, None
    for name, backend in (("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION)):
        try:
            expected = torch_sdpa(backend)().float()
            reference = torch_sdpa(backend)
            break
        except RuntimeError:
            continue
    case = f"{B}x{H}/{Hkv}x{Sq}/{Skv}x{D}{' causal' if causal else ''} {layout}"
    if reference is None:
        return {"kind": "attention", "case": case, "note": "no torch backend takes it"}
    try:
        difference = (ours().float() - expected).abs().max().item()
    except skc.LaunchError as error:
        return {"kind": "attention", "case": case, "note": f"refused: {str(error)[:150]}"}
    # causal with Sq != Skv: torch's mask is top-left aligned, as skc's; the pairs a query sees
    pairs = sum(min(i + 1, Skv) for i in range(Sq)) if causal else Sq * Skv
    mine, ref = side_by_side(ours, reference, 4 * B * H * pairs * D)
    return {"kind": "attention", "case": case, "reference_name": name, "skc": mine, "reference": ref,
            "ratio": mine / ref, "error": difference, "ok": difference < 2e-2}


def plot(rows, path):
    """skc's and the reference's TFLOP/s per case, one panel per kind (PNG, plot_results.bars)."""
    from plot_results import bars, plt

    kinds = list(dict.fromkeys(row["kind"] for row in rows if "ratio" in row))
    figure, axes = plt.subplots(len(kinds), 1, figsize=(13, 3.6 * len(kinds)), squeeze=False)
    for axis, kind in zip(axes[:, 0], kinds):
        mine = [row for row in rows if row["kind"] == kind and "ratio" in row]
        reference = "cuDNN (SDPA)" if kind == "attention" else "cuBLAS"
        bars(axis, [row["case"] for row in mine], [(reference, [row["reference"] for row in mine]),
                                                   ("skc", [row["skc"] for row in mine])],
             f"{kind}: end to end, skc against {reference} (ratio on top)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kinds", default="gemm,linear,fp8,attention")
    parser.add_argument("--json")
    parser.add_argument("--from", dest="start", default="", help="skip the GEMM shapes before this one")
    parser.add_argument("--plot", help="draw the figures to this PNG")
    parser.add_argument("--replot", help="only draw a run's --json file (with --plot)")
    parser.add_argument("--random", type=int, default=0, help="this many random cases a kind instead of the lists")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.replot:
        with open(args.replot) as handle:
            plot(json.load(handle), args.plot)
        return
    kinds = args.kinds.split(",")
    rows = []

    def show(row):
        rows.append(row)
        if "note" in row:
            extra = f"; skc's error {row['skc_error']:.3g}" if "skc_error" in row else ""
            print(f"{row['kind']:15s} {row['case']:36s} {row['note']}{extra}", flush=True)
        else:
            print(f"{row['kind']:15s} {row['case']:36s} skc {row['skc']:7.1f}  reference {row['reference']:7.1f}"
                  f"  {row['ratio']:.2f}{'' if row['ok'] else '  WRONG (error ' + format(row['error'], '.3g') + ')'}",
                  flush=True)

    cases = random_cases(args.random, args.seed) if args.random else \
        {"gemm": GEMM, "linear": LINEAR, "fp8": FP8, "attention": ATTENTION}
    if "gemm" in kinds:
        gemm = cases["gemm"]
        for shape in gemm[gemm.index(args.start) if args.start else 0:]:
            show(gemm_case(shape, linear=False))
            torch.cuda.empty_cache()
    if "linear" in kinds:
        for shape in cases["linear"]:
            show(gemm_case(shape, linear=True))
            torch.cuda.empty_cache()
    if "fp8" in kinds:
        for shape in cases["fp8"]:
            for row in fp8_cases(shape):
                show(row)
            torch.cuda.empty_cache()
    if "attention" in kinds:
        for case in cases["attention"]:
            show(attention_case(*case))
            torch.cuda.empty_cache()
    for kind in dict.fromkeys(row["kind"] for row in rows):
        ratios = [row["ratio"] for row in rows if row["kind"] == kind and row.get("ok")]
        if ratios:
            print(f"{kind}: geometric mean {geomean(ratios):.3f}, "
                  f"lowest {min(ratios):.2f} over {len(ratios)} cases", flush=True)
    save(rows, args.json, args.plot, plot)


if __name__ == "__main__":
    main()
