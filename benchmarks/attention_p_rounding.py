"""What the rounding of P costs attention's max abs error, on the CPU (numpy, ml_dtypes): one head's online softmax
over key blocks of 128, P rounded to bf16 (as skc, flash and cuDNN do for bf16 inputs) or to f16, against a float64
reference, with bf16 inputs and a bf16 output; `floor` is the float64 result rounded to bf16 (the output's own
rounding). A model of the kernels' arithmetic, not the kernels.

    python benchmarks/attention_p_rounding.py [--rows 512] [--seeds 4]"""
import argparse

import ml_dtypes
import numpy as np


def rounded(x, dtype):
    return x.astype(dtype).astype(np.float32)


def max_errors(keys: int, head_dim: int, seed: int, rows: int, block: int = 128) -> dict:
    rng = np.random.default_rng(seed)
    q, k, v = (rounded(rng.standard_normal((n, head_dim)).astype(np.float32), ml_dtypes.bfloat16)
               for n in (rows, keys, keys))
    scale = 1 / np.sqrt(head_dim)
    s64 = (q.astype(np.float64) @ k.T.astype(np.float64)) * scale
    p64 = np.exp(s64 - s64.max(1, keepdims=True))
    reference = (p64 @ v.astype(np.float64)) / p64.sum(1, keepdims=True)
    s = (q @ k.T).astype(np.float32) * np.float32(scale)
    errors = {"floor": np.abs(rounded(reference.astype(np.float32), ml_dtypes.bfloat16) - reference).max()}
    for name, dtype in (("P in bf16", ml_dtypes.bfloat16), ("P in f16", np.float16)):
        m = np.full((rows, 1), -np.inf, np.float32)
        total, o = np.zeros((rows, 1), np.float32), np.zeros((rows, head_dim), np.float32)
        for j in range(0, keys, block):
            new = np.maximum(m, s[:, j:j + block].max(1, keepdims=True))
            alpha, p = np.exp(m - new).astype(np.float32), np.exp(s[:, j:j + block] - new).astype(np.float32)
            total = total * alpha + p.sum(1, keepdims=True)
            o = o * alpha + rounded(p, dtype) @ v[j:j + block]
            m = new
        errors[name] = np.abs(rounded(o / total, ml_dtypes.bfloat16) - reference).max()
    return errors


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args()
    for keys in (2048, 4096):
        for seed in range(args.seeds):
            errors = max_errors(keys, 128, seed, args.rows)
            print(f"{keys} keys, seed {seed}: " + ", ".join(f"{name} {value:.2e}" for name, value in errors.items()))


if __name__ == "__main__":
    main()
