"""A PTX emulator for the fuzz kernels: LLVM's NVPTX output run thread by thread with the PTX ISA's semantics, to
check the backend (tile IR -> LLVM -> PTX) against the interpreter with no GPU. It covers the instruction subset
that fuzzgen's kernels compile to (integer and f32 arithmetic, setp/selp, cvt, global loads and stores, bra and
brx.idx jump tables) and raises NotImplementedError on anything else; ptxas and the hardware are not covered.
Registers hold unsigned bit patterns; f32 arithmetic is numpy float32 (one IEEE rounding per operation, as the
`.rn` instructions define). Written for the 2026-11-30 diagnosis in benchmarks/NOTES.md."""
import re

import numpy as np

M32, M64, M16 = (1 << 32) - 1, (1 << 64) - 1, (1 << 16) - 1


def f32(bits):
    return np.uint32(bits).view(np.float32)


def bits(x):
    return int(np.float32(x).view(np.uint32))


def s32(v):
    v &= M32
    return v - (1 << 32) if v >> 31 else v


def s16(v):
    v &= M16
    return v - (1 << 16) if v >> 15 else v


def s64(v):
    v &= M64
    return v - (1 << 64) if v >> 63 else v


def tdiv(a, b):
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def trem(a, b):
    return a - tdiv(a, b) * b


class Program:
    def __init__(self, ptx: str, entry: str):
        body = ptx[ptx.index(f".entry {entry}("):]
        params = re.findall(r"\.param \.\S+ (?:\.ptr \.global \.align \d+ )?(\w+)", body[:body.index(")")])
        self.params = params
        code = body[body.index("{") + 1:body.rindex("}")]
        self.insts, self.labels, self.tables = [], {}, {}
        lines = code.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i].split("//")[0].strip()
            i += 1
            if not line or line.startswith(".reg"):
                continue
            m = re.match(r"(\$\w+): \.branchtargets", line)
            if m:
                targets = []
                while True:
                    t = lines[i].strip(); i += 1
                    targets.append(t.rstrip(",;"))
                    if t.endswith(";"):
                        break
                self.tables[m.group(1)] = targets
                continue
            if line.startswith(".pragma"):
                continue
            if line.endswith(":"):
                self.labels[line[:-1]] = len(self.insts)
                continue
            if line.startswith("{") and line.endswith("}"):   # a scope with its own registers, on one line
                statements = [t.strip() for t in line[1:-1].split(";") if t.strip()]
                names = [n.strip() for t in statements if t.startswith(".reg") for n in t.split(None, 2)[2].split(",")]
                for t in statements:
                    if not t.startswith(".reg"):
                        for name in names:
                            t = re.sub(rf"(?<![%\w]){name}\b", f"%{name}", t)
                        self.insts.append(t)
                continue
            assert line.endswith(";"), line
            self.insts.append(line[:-1].strip())
        self.decoded = [self.decode(t) for t in self.insts]

    def decode(self, text):
        guard = None
        m = re.match(r"@(!?)(%p\d+)\s+(.*)", text)
        if m:
            guard = (m.group(1) == "!", m.group(2))
            text = m.group(3)
        parts = text.split(None, 1)
        op = parts[0]
        args = [a.strip() for a in re.split(r",(?![^\[]*\])", parts[1])] if len(parts) > 1 else []
        return guard, op, args

    def run(self, memory, params, tid, ctaid, limit=10_000_000):
        regs = {"%tid.x": tid, "%ctaid.x": ctaid}
        pc, steps = 0, 0

        def val(a):
            if a in regs:
                return regs[a]
            if a.startswith("0f"):
                return int(a[2:], 16)  # noqa: FURB166 (PTX's 0fXXXXXXXX: the f32 bits in hex)
            if a.startswith("%"):
                raise KeyError(f"undefined register {a} (read before written)")
            return int(a, 0) & M64

        while True:
            steps += 1
            if steps > limit:
                raise RuntimeError("step limit")
            guard, op, a = self.decoded[pc]
            pc += 1
            if guard is not None:
                p = regs[guard[1]]
                if p == guard[0]:
                    continue
            parts = op.split(".")
            name = parts[0]
            if name in ("ret", "exit"):
                return
            if name == "bra":
                pc = self.labels[a[0]]; continue
            if name == "brx":
                idx = val(a[0]); pc = self.labels[self.tables[a[1]][idx]]; continue
            if name == "ld":
                if parts[1] == "param":
                    regs[a[0]] = params[a[1].strip("[]")]
                else:
                    addr = self.address(a[1], regs)
                    regs[a[0]] = memory.load(addr, int(parts[-1][1:]) // 8)
                continue
            if name == "st":
                width = int(parts[-1][1:])
                assert width in (32, 64), parts
                memory.store(self.address(a[0], regs), val(a[1]) & (M32 if width == 32 else M64), width // 8)
                continue
            regs[a[0]] = self.compute(name, parts, [val(x) for x in a[1:]], a)

    @staticmethod
    def address(text, regs):
        m = re.match(r"\[(%\w+)(?:\+(-?\d+))?\]", text)
        return regs[m.group(1)] + int(m.group(2) or 0)

    def compute(self, name, parts, v, a):
        t = parts[-1]
        if name == "mov":
            return v[0] & (M16 if t.endswith("16") else M32 if t.endswith("32") else M64)
        if name == "setp":
            return self.setp(parts[1], t, v[0], v[1] if len(v) > 1 else None)
        if name == "selp":
            return (v[0] if v[2] else v[1]) & (M16 if t.endswith("16") else M32 if t.endswith("32") else M64)
        if t == "pred":
            if name == "and": return v[0] and v[1]
            if name == "or": return v[0] or v[1]
            if name == "not": return not v[0]
            if name == "xor": return v[0] != v[1]
        if t == "f32" and name in ("add", "sub", "mul", "div", "abs", "neg", "sqrt", "min", "max"):
            assert name in ("abs", "neg", "min", "max") or parts[1] == "rn", parts
            assert not (name in ("min", "max") and len(parts) > 2), parts
            x = [f32(u) for u in v]
            with np.errstate(all="ignore"):
                r = {"add": lambda: x[0] + x[1], "sub": lambda: x[0] - x[1], "mul": lambda: x[0] * x[1],
                     "div": lambda: x[0] / x[1], "abs": lambda: np.abs(x[0]), "neg": lambda: -x[0],
                     "sqrt": lambda: np.sqrt(x[0]),
                     # PTX ISA min/max.f32: a NaN operand gives the other one (both NaN: NaN)
                     "max": lambda: np.fmax(x[0], x[1]), "min": lambda: np.fmin(x[0], x[1])}[name]()
            return bits(r)
        if name in ("ex2", "lg2") and t == "f32":
            # the approximate instructions, modelled as correctly rounded (the hardware's error is a few ulp)
            with np.errstate(all="ignore"):
                return bits((np.exp2 if name == "ex2" else np.log2)(f32(v[0])))
        if name == "cvt" and parts[-2:] == ["f32", "f32"]:   # cvt.{rzi,rmi,rpi,rni}.f32.f32: round to an integer
            return bits({"rzi": np.trunc, "rmi": np.floor, "rpi": np.ceil, "rni": np.rint}[parts[1]](f32(v[0])))
        if name == "cvt":
            dst, src = parts[-2], parts[-1]
            if dst == "f32":
                assert parts[1] == "rn"
                x = s32(v[0]) if src == "s32" else v[0] & M32
                return bits(np.float32(x))  # int -> float32, round to nearest even
            if dst[0] in "sub" and src[0] in "sub" and len(parts) == 3:
                sw, dw = int(src[1:]), int(dst[1:])
                x = v[0] & ((1 << sw) - 1)
                if src[0] == "s" and x >> (sw - 1):
                    x -= 1 << sw            # sign-extend from the source width
                return x & ((1 << dw) - 1)
            raise NotImplementedError(parts)
        width = {"b32": 32, "s32": 32, "u32": 32, "b64": 64, "s64": 64, "u64": 64, "b16": 16, "s16": 16, "u16": 16}[t]
        mask = (1 << width) - 1
        sgn = {16: s16, 32: s32, 64: s64}[width]
        signed = t.startswith("s")
        if name == "and": return v[0] & v[1] & mask
        if name == "or": return (v[0] | v[1]) & mask
        if name == "xor": return (v[0] ^ v[1]) & mask
        if name == "not": return ~v[0] & mask
        if name == "add": return (v[0] + v[1]) & mask
        if name == "sub": return (v[0] - v[1]) & mask
        if name == "neg": return -v[0] & mask
        if name == "abs": return abs(sgn(v[0])) & mask
        if name == "mul":
            x, y = (sgn(v[0]), sgn(v[1])) if signed else (v[0] & mask, v[1] & mask)
            if parts[1] == "lo": return (x * y) & mask
            if parts[1] == "hi": return ((x * y) >> width) & mask
            if parts[1] == "wide": return (x * y) & ((1 << (2 * width)) - 1)
        if name == "mad":
            assert parts[1] == "lo"
            return (sgn(v[0]) * sgn(v[1]) + sgn(v[2])) & mask
        if name in ("min", "max"):
            x, y = (sgn(v[0]), sgn(v[1])) if signed else (v[0] & mask, v[1] & mask)
            r = min(x, y) if name == "min" else max(x, y)
            if "relu" in parts:   # PTX ISA min/max .relu: a negative result becomes 0
                r = max(r, 0)
            return r & mask
        if name in ("div", "rem"):
            x, y = (sgn(v[0]), sgn(v[1])) if signed else (v[0] & mask, v[1] & mask)
            assert y != 0, ("division by zero", a)
            return (tdiv(x, y) if name == "div" else trem(x, y)) & mask
        if name == "shf":   # PTX ISA shf: funnel shift of the 64-bit {b, a}
            n = (v[2] & 31) if parts[2] == "wrap" else min(v[2] & M32, 32)
            joined = ((v[1] & M32) << 32) | (v[0] & M32)
            return ((joined << n) >> 32) & M32 if parts[1] == "l" else (joined >> n) & M32
        if name == "bfe":   # PTX ISA bfe: pos and len taken from their low 8 bits, clamped to the width
            pos, length = v[1] & 0xFF, v[2] & 0xFF
            x = v[0] & mask
            if length == 0:
                return 0
            sbit = (x >> min(pos + length - 1, width - 1)) & 1 if signed else 0
            out = 0
            for i in range(width):
                bit = ((x >> (pos + i)) & 1) if i < length and pos + i <= width - 1 else sbit
                out |= bit << i
            return out
        if name == "bfi":
            pos, length = v[2] & 0xFF, v[3] & 0xFF
            out = v[1] & mask
            for i in range(length):
                if pos + i >= width:
                    break
                out = (out & ~(1 << (pos + i))) | (((v[0] >> i) & 1) << (pos + i))
            return out & mask
        if name == "clz":   # PTX ISA clz: leading zeros of the width-bit value (the width for 0)
            return width - (v[0] & mask).bit_length()
        if name == "shl":
            n = min(v[1] & M32, width)
            return (v[0] << n) & mask
        if name == "shr":
            n = min(v[1] & M32, width)
            if signed:
                return (sgn(v[0]) >> min(n, width - 1 if n >= width else n)) & mask
            return ((v[0] & mask) >> n) & mask if n < width else 0
        raise NotImplementedError(name, parts, a)

    @staticmethod
    def setp(cmp, t, x, y):
        if t == "f32":
            p, q = f32(x), f32(y)
            unordered = bool(np.isnan(p) or np.isnan(q))
            if cmp == "nan": return unordered
            if cmp == "num": return not unordered
            base, u = (cmp[:-1], True) if cmp.endswith("u") and cmp not in ("lu",) else (cmp, False)
            if unordered:
                return u
            return {"eq": p == q, "ne": p != q, "lt": p < q, "le": p <= q, "gt": p > q, "ge": p >= q}[base]
        if t in ("s32", "s64", "s16"):
            sgn = {"s32": s32, "s64": s64, "s16": s16}[t]
            p, q = sgn(x), sgn(y)
        else:
            width = int(t[1:])
            p, q = x & ((1 << width) - 1), y & ((1 << width) - 1)
        return {"eq": p == q, "ne": p != q, "lt": p < q, "le": p <= q, "gt": p > q, "ge": p >= q}[cmp]


class Memory:
    """Arrays at fake global addresses, 4-byte words."""

    def __init__(self, arrays):
        self.arrays = arrays
        self.bases = [(i + 1) << 40 for i in range(len(arrays))]

    def locate(self, addr):
        k = (addr >> 40) - 1
        off = addr - self.bases[k]
        assert off % 4 == 0 and 0 <= off // 4 < self.arrays[k].size, ("out of bounds", k, off)
        return self.arrays[k].view(np.uint32), off // 4

    def load(self, addr, size=4):
        if size == 4:
            arr, i = self.locate(addr)
            return int(arr[i])
        k = (addr >> 40) - 1
        off = addr - self.bases[k]
        raw = self.arrays[k].view(np.uint8)
        assert 0 <= off and off + size <= raw.size
        return int.from_bytes(raw[off:off + size].tobytes(), "little")

    def store(self, addr, value, size=4):
        if size == 4:
            arr, i = self.locate(addr)
            arr[i] = value
            return
        k = (addr >> 40) - 1
        off = addr - self.bases[k]
        raw = self.arrays[k].view(np.uint8)
        assert 0 <= off and off + size <= raw.size, ("out of bounds", k, off)
        raw[off:off + size] = np.frombuffer(value.to_bytes(size, "little"), np.uint8)


def run_grid(ptx: str, entry: str, arrays: list, blocks: int, threads: int) -> list:
    """Run kernel `entry` of `ptx` over a 1-D grid, thread by thread, its pointer parameters bound to `arrays` in
    order (changed in place); gives the arrays."""
    program = Program(ptx, entry)
    memory = Memory(arrays)
    params = dict(zip(program.params, memory.bases))
    for block in range(blocks):
        for thread in range(threads):
            program.run(memory, params, thread, block)
    return arrays


def run_batch(batch, ptx: str) -> tuple:
    """The int and float outputs of a fuzzgen batch kernel's PTX (its inputs copied, outputs zeroed)."""
    import fuzzgen

    arrays = [batch.xi.copy(), batch.xf.copy(), np.zeros_like(batch.xi), np.zeros_like(batch.xf)]
    run_grid(ptx, "batch", arrays, batch.count, fuzzgen.T)
    return arrays[2], arrays[3]
