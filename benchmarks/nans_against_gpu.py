"""The interpreter's NaNs against a GPU's: every cast among f64, f32, f16, bf16, e4m3 and e5m2, and for f64, f32,
f16 and bf16 the unary ops (-a, abs, sqrt, floor, exp2 but for f64) of seven values and the binary ops (a + b, a - b,
a * b, a / b, minimum, maximum, fma(a, b, b)) of every pair, over NaNs of both signs, quiet and signalling, 1, inf
and 0: bits in, bits out.

    python benchmarks/nans_against_gpu.py --gpu                 # on a GPU: the cases where the two differ
    python benchmarks/nans_against_gpu.py --against TABLE.json  # anywhere: against a GPU's recorded bits
    python benchmarks/nans_against_gpu.py --dump TABLE.json     # the interpreter's bits (label -> bits)

The H100's table: benchmarks/results/session66-2026-12-08-nans-h100.json."""
import importlib.util
import json
import os
import sys
import tempfile
import warnings

import numpy as np

import skc

U = {"f64": "u64", "f32": "u32", "f16": "u16", "bf16": "u16", "e4m3": "u8", "e5m2": "u8"}
NP = {"u64": np.uint64, "u32": np.uint32, "u16": np.uint16, "u8": np.uint8}
CASTS = ["f64", "f32", "f16", "bf16", "e4m3", "e5m2"]
ARITH = ["f64", "f32", "f16", "bf16"]
UNARY = ["-a", "abs(a)", "skc.sqrt(a)", "skc.floor(a)", "skc.exp2(a)"]
BINARY = ["a + b", "a - b", "a * b", "a / b", "skc.minimum(a, b)", "skc.maximum(a, b)", "skc.fma(a, b, b)"]
INPUTS = {
    "f64": [0x7FF8000000000000, 0xFFF8000000000000, 0x7FF4000000000123, 0xFFFC000000000456, 0x3FF0000000000000,
            0x7FF0000000000000, 0],
    "f32": [0x7FC00000, 0xFFC00000, 0x7FA00123, 0xFFC00456, 0x3F800000, 0x7F800000, 0],
    "f16": [0x7E00, 0xFE00, 0x7D23, 0xFE45, 0x3C00, 0x7C00, 0],
    "bf16": [0x7FC0, 0xFFC0, 0x7FA1, 0xFFC5, 0x3F80, 0x7F80, 0],
    "e4m3": [0x7F, 0xFF, 0x38, 0x7E, 0],
    "e5m2": [0x7E, 0xFE, 0x7D, 0xFF, 0x3C, 0x7C, 0],
}


def unary(t):
    return UNARY[:-1] if t == "f64" else UNARY   # (exp2 is f32's approximation only)


def kernels_source() -> str:
    """A module of one kernel a cast and one an arithmetic type (skc reads a kernel's source from its file)."""
    lines = ["import skc", ""]
    for s in CASTS:
        for d in (d for d in CASTS if d != s):
            lines += ["", "@skc.kernel(block=1)",
                      f"def cast_{s}_{d}(x: skc.Ptr[skc.{U[s]}], o: skc.Ptr[skc.{U[d]}], n: skc.i32):",
                      "    for i in range(n):",
                      f"        o[i] = skc.bitcast(skc.{d}(skc.bitcast(x[i], skc.{s})), skc.{U[d]})", ""]
    for t in ARITH:
        u, ops = U[t], unary(t)
        lines += ["", "@skc.kernel(block=1)", f"def arith_{t}(x: skc.Ptr[skc.{u}], o: skc.Ptr[skc.{u}], n: skc.i32):",
                  "    for i in range(n):", f"        a = skc.bitcast(x[i], skc.{t})",
                  f"        base = i * ({len(ops)} + {len(BINARY)} * n)"]
        lines += [f"        o[base + {k}] = skc.bitcast({e}, skc.{u})" for k, e in enumerate(ops)]
        lines += ["        for j in range(n):", f"            b = skc.bitcast(x[j], skc.{t})",
                  f"            at = base + {len(ops)} + j * {len(BINARY)}"]
        lines += [f"            o[at + {k}] = skc.bitcast({e}, skc.{u})" for k, e in enumerate(BINARY)]
        lines.append("")
    return "\n".join(lines) + "\n"


def load_kernels():
    path = os.path.join(tempfile.mkdtemp(prefix="skc-nans-"), "nan_kernels.py")
    with open(path, "w") as f:
        f.write(kernels_source())
    spec = importlib.util.spec_from_file_location("nan_kernels", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cases(kernels):
    """(kernel, input bits, output type, labels) of every case."""
    for s in CASTS:
        for d in (d for d in CASTS if d != s):
            yield (getattr(kernels, f"cast_{s}_{d}"), np.array(INPUTS[s], NP[U[s]]), U[d],
                   [hex(v) for v in INPUTS[s]])
    for t in ARITH:
        labels = []
        for a in map(hex, INPUTS[t]):
            labels += [e.replace("(a)", f"({a})").replace("-a", f"-{a}") for e in unary(t)]
            labels += [f"{e.split('(')[0]} a={a} b={hex(b)}" for b in INPUTS[t] for e in BINARY]
        yield getattr(kernels, f"arith_{t}"), np.array(INPUTS[t], NP[U[t]]), U[t], labels


def main(argv):
    warnings.simplefilter("ignore")
    gpu = "--gpu" in argv
    interpreted, on_gpu = {}, {}
    for kernel, x, out_type, labels in cases(load_kernels()):
        out = np.zeros(len(labels), NP[out_type])
        kernel.interpret[1, 1](x.copy(), out, len(x))
        if gpu:
            device_out = skc.to_device(np.zeros(len(labels), NP[out_type]))
            kernel[1, 1](skc.to_device(x), device_out, len(x))
            got = device_out.numpy()
        for k, label in enumerate(labels):
            interpreted[f"{kernel.__name__} {label}"] = int(out[k])
            if gpu:
                on_gpu[f"{kernel.__name__} {label}"] = int(got[k])
    if "--dump" in argv:
        with open(argv[argv.index("--dump") + 1], "w") as f:
            json.dump(interpreted, f, indent=0)
    if "--against" in argv:
        with open(argv[argv.index("--against") + 1]) as f:
            on_gpu = json.load(f)
    if on_gpu:
        differ = [key for key, bits in interpreted.items() if on_gpu[key] != bits]
        for key in differ:
            print(f"{key:70s} interpreter {hex(interpreted[key]):>20s} gpu {hex(on_gpu[key]):>20s}")
        print(f"{len(interpreted) - len(differ)} cases agree, {len(differ)} differ")
        return 1 if differ else 0
    print(f"{len(interpreted)} cases interpreted")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
