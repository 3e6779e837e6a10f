"""Do wgmma and mma.sync accumulate bf16 products alike? C = P @ V with P in [0, 1] (softmax-like) and V normal,
f32 out, against float64, K = 512 ... 32768, for a Triton kernel compiled to wgmma (4 or 8 warps) and to mma.sync
(2 warps; the PTX says which), and with each 128 of K summed into a fresh accumulator then added in f32 (chunk=2).
Prints the RMS error, the mean error toward zero and the max, each relative to the mean |C|. Run on the GPU:
`python benchmarks/mma_accumulation.py` (seventeenth session, benchmarks/NOTES.md)."""
import sys, torch, triton, triton.language as tl

@triton.jit
def gemm(a, b, c, M, N, K, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, CHUNK: tl.constexpr):
    pm, pn = tl.program_id(0), tl.program_id(1)
    rm = pm * BM + tl.arange(0, BM); rn = pn * BN + tl.arange(0, BN); rk = tl.arange(0, BK)
    acc = tl.zeros((BM, BN), tl.float32)
    part = tl.zeros((BM, BN), tl.float32)
    for k0 in range(0, K, BK):
        x = tl.load(a + rm[:, None] * K + (k0 + rk)[None, :])
        y = tl.load(b + (k0 + rk)[:, None] * N + rn[None, :])
        if CHUNK > 0:
            part = tl.dot(x, y, part)
            if (k0 // BK) % CHUNK == CHUNK - 1:
                acc += part
                part = tl.zeros((BM, BN), tl.float32)
        else:
            acc = tl.dot(x, y, acc)
    tl.store(c + rm[:, None] * N + rn[None, :], acc)

torch.manual_seed(0)
M, N = 4096, 128
for K in (512, 2048, 8192, 32768):
    p = torch.exp(-torch.randn(M, K, device="cuda").abs() * 2).bfloat16()
    v = torch.randn(K, N, device="cuda").bfloat16()
    ref = p.double() @ v.double()
    scale = ref.abs().mean().item()
    for warps, chunk in ((4, 0), (2, 0), (4, 2), (8, 0)):
        c = torch.empty(M, N, device="cuda")
        k = gemm[(M // 64, N // 128)](p, v, c, M, N, K, BM=64, BN=128, BK=64, CHUNK=chunk, num_warps=warps)
        asm = k.asm["ptx"]
        kind = "wgmma" if "wgmma" in asm else ("mma.sync" if "mma.sync" in asm else "fma")
        err = (c.double() - ref)
        # signed error relative to |C|: a truncating accumulator biases toward zero, so sign(C)*err < 0
        toward = (err * ref.sign()).mean().item() / scale
        print(f"K={K:6d} warps={warps} chunk={chunk} {kind:8s} rms/|C| {err.pow(2).mean().sqrt().item()/scale:.3e}"
              f"  mean(err*sign C)/|C| {toward:+.3e}  max {err.abs().max().item()/scale:.3e}", flush=True)
