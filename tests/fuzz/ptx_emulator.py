"""A PTX emulator for the fuzz kernels: LLVM's NVPTX output run thread by thread with the PTX ISA's semantics, to
check the backend (tile IR -> LLVM -> PTX) against the interpreter with no GPU. It covers the instruction subset
that the fuzz kernels compile to: integer arithmetic in 16, 32 and 64 bits, f16/bf16/f32/f64 arithmetic (every
rounding modifier, results correctly rounded from the exact value), setp/selp, cvt between every integer and float
type (rounding modifiers, .sat, saturating float-to-int with NaN to 0), min/max, fma, byte permutes, global loads
and stores of 1 to 16 bytes, loads of module constants (.const), bra and brx.idx jump tables; anything else
raises NotImplementedError. ptxas and the hardware are not covered. Registers hold unsigned bit patterns. Written
for the 2026-11-30 diagnosis in benchmarks/NOTES.md; widened to every scalar type for the mixed-type fuzzer
(mixgen.py)."""
import math
import re
from fractions import Fraction

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


def signed(v, width):
    v &= (1 << width) - 1
    return v - (1 << width) if v >> (width - 1) else v


def tdiv(a, b):
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def trem(a, b):
    return a - tdiv(a, b) * b


# -- floats: exact values and correct rounding --------------------------------------------------------
class Fmt:
    def __init__(self, name, width, ebits, precision):
        self.name, self.width, self.ebits, self.p = name, width, ebits, precision
        self.bias = (1 << (ebits - 1)) - 1
        self.emin, self.emax = 1 - self.bias, self.bias
        self.mant = precision - 1
        self.sign = 1 << (width - 1)
        self.inf = ((1 << ebits) - 1) << self.mant
        self.nan = self.inf | (1 << (self.mant - 1)) | ((1 << (self.mant - 1)) - 1)   # PTX's canonical NaN
        self.max_finite = self.inf - 1


FMTS = {"f16": Fmt("f16", 16, 5, 11), "bf16": Fmt("bf16", 16, 8, 8), "f32": Fmt("f32", 32, 8, 24),
        "f64": Fmt("f64", 64, 11, 53)}


class FV:
    """A float value: kind 'num' (value an exact Fraction, neg the sign bit, for zeros), 'inf' or 'nan'."""
    __slots__ = ("kind", "neg", "value")

    def __init__(self, kind, neg, value=Fraction(0)):
        self.kind, self.neg, self.value = kind, neg, value

    def is_nan(self):
        return self.kind == "nan"

    def is_zero(self):
        return self.kind == "num" and self.value == 0

    def as_float(self):
        if self.kind == "nan":
            return math.nan
        if self.kind == "inf":
            return -math.inf if self.neg else math.inf
        if self.value == 0:
            return -0.0 if self.neg else 0.0
        return float(self.value)


def decode(b, fmt: Fmt) -> FV:
    neg = bool(b & fmt.sign)
    e = (b >> fmt.mant) & ((1 << fmt.ebits) - 1)
    m = b & ((1 << fmt.mant) - 1)
    if e == (1 << fmt.ebits) - 1:
        return FV("nan", neg) if m else FV("inf", neg)
    if e == 0:
        v = Fraction(m) * Fraction(2) ** (fmt.emin - fmt.mant)
    else:
        v = Fraction(m + (1 << fmt.mant)) * Fraction(2) ** (e - fmt.bias - fmt.mant)
    return FV("num", neg, -v if neg else v)


def _ilog2(a: Fraction) -> int:
    """floor(log2 a) for a > 0."""
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1
    if Fraction(2) ** (e + 1) <= a:
        e += 1
    return e


def encode(x: FV, fmt: Fmt, mode: str = "rn", sat: bool = False) -> int:
    """x rounded to fmt with rounding mode rn/rz/rm/rp (.sat clamps to [0, 1], NaN to 0)."""
    if x.kind == "nan":
        return 0 if sat else fmt.nan
    if sat:
        f = x.as_float()
        if not f > 0:
            return 0
        if f >= 1:
            return encode(FV("num", False, Fraction(1)), fmt)
    sign = fmt.sign if x.neg else 0
    if x.kind == "inf":
        return sign | fmt.inf
    if x.value == 0:
        return sign
    a = abs(x.value)
    e = max(_ilog2(a), fmt.emin)
    quantum = Fraction(2) ** (e - fmt.mant)
    q = a / quantum
    n = q.numerator // q.denominator
    rest = q - n
    if rest:
        up = {"rn": rest > Fraction(1, 2) or (rest == Fraction(1, 2) and n & 1),
              "rz": False, "rm": x.neg, "rp": not x.neg}[mode]
        n += up
    if n == 1 << fmt.p:
        n >>= 1
        e += 1
    if e > fmt.emax:
        to_inf = {"rn": True, "rz": False, "rm": x.neg, "rp": not x.neg}[mode]
        return sign | (fmt.inf if to_inf else fmt.max_finite)
    if n < 1 << fmt.mant:       # subnormal (e == emin)
        return sign | n
    return sign | ((e + fmt.bias) << fmt.mant) | (n - (1 << fmt.mant))


def _special(op, xs):
    """The IEEE result of op on operands with an infinity or NaN (or a division by zero), through float64."""
    fs = [np.float64(x.as_float()) for x in xs]
    with np.errstate(all="ignore"):
        r = {"add": lambda: fs[0] + fs[1], "sub": lambda: fs[0] - fs[1], "mul": lambda: fs[0] * fs[1],
             "div": lambda: fs[0] / fs[1], "fma": lambda: fs[0] * fs[1] + fs[2]}[op]()
    r = float(r)
    if math.isnan(r):
        return FV("nan", False)
    if math.isinf(r):
        return FV("inf", r < 0)
    return FV("num", math.copysign(1, r) < 0, Fraction(r))


def _sum(x: FV, y: FV, mode):
    """x + y exactly (finite operands), with IEEE's sign of an exact zero."""
    v = x.value + y.value
    if v == 0:
        if x.is_zero() and y.is_zero() and x.neg == y.neg:
            neg = x.neg
        else:
            neg = mode == "rm"
        return FV("num", neg, Fraction(0))
    return FV("num", v < 0, v)


def float_op(op, mode, fmt: Fmt, xs):
    """op (add sub mul div fma) on decoded values, rounded once to fmt; gives bits."""
    if any(x.kind == "nan" for x in xs):
        return fmt.nan
    if any(x.kind == "inf" for x in xs) or (op == "div" and xs[1].is_zero()):
        r = _special(op, xs)
        return fmt.nan if r.kind == "nan" else encode(r, fmt, mode)
    if op == "add":
        r = _sum(xs[0], xs[1], mode)
    elif op == "sub":
        r = _sum(xs[0], FV("num", not xs[1].neg, -xs[1].value), mode)
    elif op in ("mul", "div"):
        v = xs[0].value * xs[1].value if op == "mul" else xs[0].value / xs[1].value
        r = FV("num", xs[0].neg != xs[1].neg, v)
    elif op == "fma":
        p = FV("num", xs[0].neg != xs[1].neg, xs[0].value * xs[1].value)
        r = _sum(p, xs[2], mode)
    else:
        raise NotImplementedError(op)
    return encode(r, fmt, mode)


E5M2 = Fmt("e5m2", 8, 5, 3)
E4M3 = Fmt("e4m3", 8, 4, 4)
E4M3.emax = 8            # e4m3fn: exponent field 15 holds numbers too; only S.1111.111 is NaN, and no infinity


def _satfinite(b: int, fmt: Fmt) -> int:
    """.satfinite on a float result: NaN stays NaN; an infinity becomes the largest finite value of its sign."""
    if b & (fmt.sign - 1) == fmt.inf:
        return (b & fmt.sign) | fmt.max_finite
    return b


def encode_f8(x: FV, kind: str) -> int:
    """x to e4m3 or e5m2 with .rn.satfinite (PTX ISA cvt): NaN gives NaN (0x7F); a value past the largest
    finite one, or an infinity, gives the largest finite value with x's sign (448 for e4m3, 57344 for e5m2)."""
    if x.kind == "nan":
        return 0x7F
    sign = 0x80 if x.neg else 0
    if kind == "e5m2":
        b = encode(x, E5M2, "rn")
        return sign | 0x7B if b & 0x7F >= 0x7C else b
    if x.kind == "inf" or abs(x.value) > 448:      # rounds to 448 or past it: saturate to 448 (0x7E)
        return sign | 0x7E
    return encode(x, E4M3, "rn")


def decode_f8(b: int, kind: str) -> FV:
    if kind == "e5m2":
        return decode(b, E5M2)
    if b & 0x7F == 0x7F:
        return FV("nan", bool(b & 0x80))
    neg = bool(b & 0x80)
    e, m = (b >> 3) & 15, b & 7
    v = Fraction(m, 8) * Fraction(2) ** -6 if e == 0 else Fraction(8 + m, 8) * Fraction(2) ** (e - 7)
    return FV("num", neg, -v if neg else v)


def int_to_float(v: int, fmt: Fmt, mode: str) -> int:
    return encode(FV("num", v < 0, Fraction(v)), fmt, mode)


def float_to_int(x: FV, mode: str, width: int, is_signed: bool) -> int:
    """PTX cvt float -> int: round by the .rXi mode, saturate to the destination range. NaN gives the sign bit alone:
    PTX does not promise 0 (the IR's casts give 0 through the NVPTX lowering's own select), and an H200 gave
    INT64_MIN for an f64 NaN made an i64 in mixgen's programs (forty-third session; an f32 NaN made a u32 read 0
    there), so the emulator takes the value that would show a missing select."""
    lo, hi = ((-(1 << (width - 1)), (1 << (width - 1)) - 1) if is_signed else (0, (1 << width) - 1))
    if x.kind == "nan":
        return 1 << (width - 1)
    if x.kind == "inf":
        return (lo if x.neg else hi) & ((1 << width) - 1)
    n = _round_integer(x.value, mode)
    return min(max(n, lo), hi) & ((1 << width) - 1)


def _round_integer(v: Fraction, mode: str) -> int:
    fl = math.floor(v)
    if mode == "rmi":
        return fl
    if mode == "rpi":
        return math.ceil(v)
    if mode == "rzi":
        return math.trunc(v)
    if mode == "rni":
        rest = v - fl
        return fl + (rest > Fraction(1, 2) or (rest == Fraction(1, 2) and fl & 1))
    raise NotImplementedError(mode)


FLOAT_TYPES = ("f16", "bf16", "f32", "f64")
INT_WIDTH = {"b8": 8, "s8": 8, "u8": 8, "b16": 16, "s16": 16, "u16": 16, "b32": 32, "s32": 32, "u32": 32,
             "b64": 64, "s64": 64, "u64": 64, "f16": 16, "bf16": 16, "f32": 32, "f64": 64, "pred": 1}


def _fmt_of(t):
    return FMTS[t]


def _reg_mask(name):
    m = re.match(r"%(rd|rs|r|p)\d", name)
    if m is None:
        return M64
    return {"rd": M64, "rs": M16, "r": M32, "p": 1}[m.group(1)]


class Program:
    def __init__(self, ptx: str, entry: str):
        body = ptx[ptx.index(f".entry {entry}("):]
        params = re.findall(r"\.param \.\S+ (?:\.ptr \.global \.align \d+ )?(\w+)", body[:body.index(")")])
        self.params = params
        code = body[body.index("{") + 1:body.rindex("}")]
        self.insts, self.labels, self.tables = [], {}, {}
        # state-space symbols: shared arrays (module level or in the entry; an .extern one, dynamic shared memory,
        # gets what is left of SHARED_SIZE) and the per-thread local depot (LLVM's spill and array area)
        self.symbols, self.local_size, shared_at = {}, 0, 0
        for m in re.finditer(r"^\s*(?:\.extern\s+)?\.shared\s+\.align\s+(\d+)\s+\.b8\s+(\w+)\[(\d*)\];", ptx, re.M):
            align, name, size = int(m.group(1)), m.group(2), m.group(3)
            shared_at = -(-shared_at // align) * align
            self.symbols[name] = (SHARED_KEY << 40) + shared_at
            shared_at += int(size) if size else 0
        # module constants (`.const .align N .b8 name[size] = {bytes}`): read-only bytes in a window of their own
        self.constants = bytearray()
        for m in re.finditer(r"^\s*\.const\s+\.align\s+(\d+)\s+\.b8\s+(\w+)\[(\d+)\]\s*=\s*\{([^}]*)\};", ptx, re.M):
            align, values = int(m.group(1)), [int(v) for v in m.group(4).split(",")]
            assert len(values) == int(m.group(3)), m.group(2)
            self.constants.extend(bytes(-len(self.constants) % align))
            self.symbols[m.group(2)] = (CONST_KEY << 40) + len(self.constants)
            self.constants.extend(values)
        for m in re.finditer(r"^\s*\.local\s+\.align\s+(\d+)\s+\.b8\s+(\w+)\[(\d+)\];", code, re.M):
            self.symbols[m.group(2)] = (LOCAL_KEY << 40) + self.local_size
            self.local_size += -(-int(m.group(3)) // 16) * 16
        lines = code.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i].split("//")[0].strip()
            i += 1
            if not line or line.startswith(".reg") or line.startswith(".local") or line.startswith(".shared"):
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
            if line in ("{", "}"):
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
        args = [a.strip() for a in re.split(r",(?![^\[{]*[\]}])", parts[1])] if len(parts) > 1 else []
        return guard, op, args

    def run(self, memory, params, tid, ctaid, limit=10_000_000, ntid=1, nctaid=1):
        """Run one thread alone (a barrier passes at once; a warp collective sees a warp of this one thread)."""
        memory.start_block(ntid)
        thread = self.thread(memory, params, tid, ctaid, limit, ntid, nctaid)
        reply = None
        while True:
            try:
                event = thread.send(reply)
            except StopIteration:
                return
            reply = None if event[0] == "bar" else self.resolve_warp(event[2], {tid % 32: event[3]})[tid % 32]

    def thread(self, memory, params, tid, ctaid, limit=10_000_000, ntid=1, nctaid=1):
        """One thread as a generator: it yields ("bar", pc) at a CTA barrier and ("warp", pc, kind, args) at a warp
        collective (shfl.sync, activemask, vote.sync, elect.sync, redux.sync), and is sent the collective's result."""
        regs = {"%tid.x": tid, "%ctaid.x": ctaid, "%ntid.x": ntid, "%nctaid.x": nctaid, "%tid.y": 0, "%tid.z": 0,
                "%ctaid.y": 0, "%ctaid.z": 0, "%ntid.y": 1, "%ntid.z": 1, "%nctaid.y": 1, "%nctaid.z": 1,
                "%laneid": tid % 32, "%warpid": tid // 32}
        pc, steps = 0, 0
        path = 0   # the branches this thread took since the last bar.sync (a hash): its group without reconvergence
        symbols = self.symbols

        def val(a):
            if a in regs:
                return regs[a]
            if a.startswith("!"):
                return int(not val(a[1:]))
            if a.startswith("0f"):
                return int(a[2:], 16)  # noqa: FURB166 (PTX's 0fXXXXXXXX: the f32 bits in hex)
            if a.startswith("0d"):
                return int(a[2:], 16)  # noqa: FURB166 (0dXXXXXXXXXXXXXXXX: the f64 bits)
            if a.startswith("%"):
                raise KeyError(f"undefined register {a} (read before written)")
            if a in symbols:
                return symbols[a]
            return int(a.rstrip("U"), 0) & M64

        while True:
            steps += 1
            if steps > limit:
                raise RuntimeError("step limit")
            guard, op, a = self.decoded[pc]
            pc += 1
            if guard is not None:
                p = regs[guard[1]]
                if op.startswith("bra"):
                    path = hash((path, pc, p == guard[0]))
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
            if name in ("bar", "barrier") and parts[1] in ("sync", "cta") or op == "barrier.sync.aligned":
                assert not a or val(a[0]) == 0 and len(a) == 1, ("only the whole-CTA barrier 0", op, a)
                yield ("bar", pc)
                path = 0
                continue
            if op in ("bar.warp.sync", "membar.cta", "fence.sc.cta", "fence.acq_rel.cta"):
                continue
            if name == "activemask":
                regs[a[0]] = yield ("warp", pc, "activemask", None, path)
                continue
            if name == "shfl":     # shfl.sync.mode.b32 d[|p], a, b, c, membermask
                assert parts[1] == "sync", op
                d, pval = yield ("warp", pc, "shfl", (parts[2], val(a[1]) & M32, val(a[2]), val(a[3]), val(a[4])), path)
                dst = a[0].split("|")
                regs[dst[0]] = d
                if len(dst) > 1 and dst[1] != "_":
                    regs[dst[1]] = pval
                continue
            if name == "vote":     # vote.sync.{all,any,uni}.pred d, {!}a, mask; vote.sync.ballot.b32 d, {!}a, mask
                assert parts[1] == "sync", op
                regs[a[0]] = yield ("warp", pc, "vote", (parts[2], bool(val(a[1])), val(a[2])), path)
                continue
            if name == "elect":    # elect.sync d|p, membermask
                assert parts[1] == "sync", op
                leader, elected = yield ("warp", pc, "elect", (val(a[1]),), path)
                dst = a[0].split("|")
                if dst[0] != "_":
                    regs[dst[0]] = leader
                regs[dst[1]] = elected
                continue
            if name == "redux":    # redux.sync.op.type d, a, membermask
                assert parts[1] == "sync", op
                regs[a[0]] = yield ("warp", pc, "redux", (parts[2], parts[3], val(a[1]) & M32, val(a[2])), path)
                continue
            if name == "cvta":     # state-space windows and generic addresses are the same numbers here
                regs[a[0]] = val(a[1]) & _reg_mask(a[0])
                continue
            if name == "ld":
                if parts[1] == "param":
                    regs[a[0]] = params[a[1].strip("[]")]
                    continue
                space = self._space(parts)
                t = parts[-1]
                width = INT_WIDTH[t] // 8
                addr = self.address(a[1], regs, symbols)
                dsts = self._vector(a[0])
                for k, d in enumerate(dsts):
                    v = (self.constant(addr + k * width, width) if space == "const"
                         else memory.load(addr + k * width, width, space, tid))
                    if t.startswith("s") and width < 8:   # a narrow signed load sign-extends into its register
                        v = signed(v, width * 8)
                    regs[d] = v & _reg_mask(d)
                continue
            if name == "st":
                space = self._space(parts)
                width = INT_WIDTH[parts[-1]] // 8
                addr = self.address(a[0], regs, symbols)
                for k, s in enumerate(self._vector(a[1])):
                    memory.store(addr + k * width, val(s) & ((1 << (8 * width)) - 1), width, space, tid)
                continue
            if name in ("atom", "red"):
                space = self._space(parts)
                t = parts[-1]
                width = INT_WIDTH[t] // 8
                ops = [x for x in parts[1:-1] if x in ("add", "min", "max", "and", "or", "xor", "exch", "cas",
                                                         "inc", "dec")]
                assert len(ops) == 1, op
                dst, rest = (a[0], a[1:]) if name == "atom" else (None, a)
                addr = self.address(rest[0], regs, symbols)
                old = memory.load(addr, width, space, tid)
                new = self.atomic(ops[0], t, old, [val(x) for x in rest[1:]], space)
                memory.store(addr, new & ((1 << (8 * width)) - 1), width, space, tid)
                if dst is not None:
                    regs[dst] = old & _reg_mask(dst)
                continue
            if name == "mov" and a[0].startswith("{"):     # unpack: mov.b32 {%rs1, %rs2}, %r1
                width = INT_WIDTH[parts[-1]]
                dsts = self._vector(a[0])
                piece = width // len(dsts)
                v = val(a[1])
                for k, d in enumerate(dsts):
                    if d != "_":
                        regs[d] = (v >> (k * piece)) & ((1 << piece) - 1)
                continue
            if name == "mov" and a[1].startswith("{"):     # pack: mov.b32 %r1, {%rs1, %rs2}
                width = INT_WIDTH[parts[-1]]
                srcs = self._vector(a[1])
                piece = width // len(srcs)
                # a lane LLVM left undefined (never written) reads as 0
                regs[a[0]] = sum(((regs.get(s, 0) if s.startswith("%") else val(s)) & ((1 << piece) - 1))
                                 << (k * piece) for k, s in enumerate(srcs))
                continue
            if name == "setp":
                self._setp(parts, a, regs, val)
                continue
            if name == "prmt":   # LLVM packs vectors with undefined lanes from registers never written: poison bytes
                r = self.compute(name, parts, [regs.get(x, 0xA5A5A5A5) if x.startswith("%") else val(x)
                                               for x in a[1:]], a)
            else:
                r = self.compute(name, parts, [val(x) for x in a[1:]], a)
            if name == "cvt" and parts[-2] == "s8":    # a narrow signed result sign-extends into its register
                r = signed(r, 8)
            regs[a[0]] = r & _reg_mask(a[0]) if not isinstance(r, bool) else r

    def constant(self, addr, size):
        off = addr - (CONST_KEY << 40)
        assert 0 <= off and off + size <= len(self.constants), ("out of bounds", "const", off, size)
        assert off % size == 0, ("misaligned", "const", off, size)
        return int.from_bytes(self.constants[off:off + size], "little")

    @staticmethod
    def _space(parts):
        for space in ("global", "shared", "local", "const"):
            if space in parts[1:-1]:
                return space
        return "generic"

    def _setp(self, parts, a, regs, val):
        """PTX ISA setp: t = a CmpOp b; p = BoolOp(t, c), q = BoolOp(!t, c); for f16x2/bf16x2, p from the low
        halves and q from the high halves."""
        cmp, t = parts[1], parts[-1]
        boolop = parts[2] if len(parts) == 4 else None
        assert len(parts) in (3, 4) and (boolop is None or boolop in ("and", "or", "xor")), parts
        x, y = val(a[1]), val(a[2])
        c = bool(val(a[3])) if boolop else None
        combine = lambda u: (u if boolop is None else {"and": u and c, "or": u or c, "xor": u != c}[boolop])  # noqa
        dst = a[0].split("|")
        if t in ("f16x2", "bf16x2"):
            results = [self.setp(cmp, t[:-2], (x >> (16 * k)) & M16, (y >> (16 * k)) & M16) for k in range(2)]
        else:
            u = self.setp(cmp, t, x, y)
            results = [u, not u]
        for d, r in zip(dst, results):
            if d != "_":
                regs[d] = combine(bool(r))

    @staticmethod
    def atomic(op, t, old, v, space):
        """The new memory value of atom/red op on old with operands v (PTX ISA atom)."""
        width = INT_WIDTH[t]
        mask = (1 << width) - 1
        if op == "exch":
            return v[0]
        if op == "cas":
            return v[1] if (old & mask) == (v[0] & mask) else old
        if t in FLOAT_TYPES:
            fmt = FMTS[t]
            x, y = decode(old & mask, fmt), decode(v[0] & mask, fmt)
            if op == "add":
                if t == "f32" and space in ("global", "generic"):
                    # atom.add.f32 on global memory flushes subnormal inputs and results to sign-preserving zero
                    x, y = _ftz(x, fmt), _ftz(y, fmt)
                    r = float_op("add", "rn", fmt, [x, y])
                    return _ftz_bits(r, fmt)
                return float_op("add", "rn", fmt, [x, y])
            raise NotImplementedError("atom", op, t)
        is_signed = t.startswith("s")
        a, b = (signed(old, width), signed(v[0], width)) if is_signed else (old & mask, v[0] & mask)
        if op == "add": return (a + b) & mask
        if op == "min": return min(a, b) & mask
        if op == "max": return max(a, b) & mask
        if op == "and": return a & b & mask
        if op == "or": return (a | b) & mask
        if op == "xor": return (a ^ b) & mask
        if op == "inc": return 0 if a >= b else (a + 1) & mask
        if op == "dec": return b if a == 0 or a > b else (a - 1) & mask
        raise NotImplementedError("atom", op, t)

    @staticmethod
    def resolve_warp(kind, lanes, exited: int = 0):
        """The results of one warp collective executed together by `lanes` (lane -> its operands), by the PTX ISA;
        `exited`: the warp's lanes that have exited, which the .sync forms do not wait for (PTX ISA 9.7.13)."""
        group = sum(1 << lane for lane in lanes)
        out = {}
        for lane, args in lanes.items():
            if kind == "activemask":
                out[lane] = group
                continue
            member = args[-1] & M32 & ~exited
            if member & ~group:
                raise RuntimeError(f"{kind}.sync with member mask {member:#x} but lanes {group:#x} arrived together")
            if kind == "shfl":
                mode, _, b, c, _ = args
                bval, cval, segmask = b & 31, c & 31, (c >> 8) & 31
                max_lane = (lane & segmask) | (cval & ~segmask)
                min_lane = lane & segmask
                if mode == "up":
                    j = lane - bval; pval = j >= max_lane
                elif mode == "down":
                    j = lane + bval; pval = j <= max_lane
                elif mode == "bfly":
                    j = lane ^ bval; pval = j <= max_lane
                elif mode == "idx":
                    j = min_lane | (bval & ~segmask & 31); pval = j <= max_lane
                else:
                    raise NotImplementedError(mode)
                if not pval:
                    j = lane
                # a source lane that is not active gives an undefined value: a poison pattern
                out[lane] = (lanes[j][1] if j in lanes else 0xDEADBEEF, pval)
            elif kind == "vote":
                mode, _, _ = args
                preds = {k: lanes[k][1] for k in lanes if member >> k & 1}
                if mode == "ballot":
                    out[lane] = sum(1 << k for k, p in preds.items() if p)
                else:
                    out[lane] = {"all": all(preds.values()), "any": any(preds.values()),
                                 "uni": len(set(preds.values())) <= 1}[mode]
            elif kind == "elect":   # PTX promises one leader, the same for the same mask: the lowest lane here, as the
                # interpreter elects
                leader = (member & -member).bit_length() - 1
                out[lane] = (leader, lane == leader)
            elif kind == "redux":
                op, t, _, _ = args
                vals = [lanes[k][2] for k in lanes if member >> k & 1]
                if t == "s32":
                    vals = [signed(x, 32) for x in vals]
                r = {"add": lambda: sum(vals), "min": lambda: min(vals), "max": lambda: max(vals),
                     "and": lambda: _fold(vals, lambda x, y: x & y), "or": lambda: _fold(vals, lambda x, y: x | y),
                     "xor": lambda: _fold(vals, lambda x, y: x ^ y)}[op]()
                out[lane] = r & M32
            else:
                raise NotImplementedError(kind)
        return out

    @staticmethod
    def _vector(text):
        text = text.strip()
        if text.startswith("{"):
            return [t.strip() for t in text[1:-1].split(",")]
        return [text]

    @staticmethod
    def address(text, regs, symbols=None):
        m = re.match(r"\[(%?\w+)(?:\+(-?\d+))?\]", text)
        base = m.group(1)
        return (regs[base] if base.startswith("%") else symbols[base]) + int(m.group(2) or 0)

    def compute(self, name, parts, v, a):
        t = parts[-1]
        if name == "mov":
            return v[0] & ((1 << INT_WIDTH[t]) - 1) if t != "pred" else v[0]
        if name == "setp":
            return self.setp(parts[1], t, v[0], v[1] if len(v) > 1 else None)
        if name == "selp":
            return (v[0] if v[2] else v[1]) & ((1 << INT_WIDTH[t]) - 1)
        if t == "pred":
            if name == "and": return bool(v[0] and v[1])
            if name == "or": return bool(v[0] or v[1])
            if name == "not": return not v[0]
            if name == "xor": return bool(v[0]) != bool(v[1])
            raise NotImplementedError(name, parts, a)
        if name == "cvt" and (parts[-2].endswith("x2") or parts[-1].endswith("x2")):
            return self.cvt_packed(parts, v)
        if name == "cvt":
            return self.cvt(parts, v[0])
        if name == "testp":
            x = decode(v[0], FMTS[t])
            return {"notanumber": x.kind == "nan", "number": x.kind != "nan", "infinite": x.kind == "inf",
                    "finite": x.kind == "num"}[parts[1]]
        if t in FLOAT_TYPES:
            return self.float_compute(name, parts, v, a)
        if t in ("u16x2", "s16x2"):     # two 16-bit lanes in a b32
            lanes = [[(x >> (16 * k)) & M16 for x in v] for k in range(2)]
            sub = parts[:-1] + [t[:-2]]
            r = [self.int_compute(name, sub, lane, a) for lane in lanes]
            return (r[0] & M16) | ((r[1] & M16) << 16)
        if t in ("f16x2", "bf16x2"):
            lanes = [[(x >> (16 * k)) & M16 for x in v] for k in range(2)]
            sub = parts[:-1] + [t[:-2]]
            r = [self.float_compute(name, sub, lane, a) for lane in lanes]
            return r[0] | (r[1] << 16)
        return self.int_compute(name, parts, v, a)

    # -- floats ---------------------------------------------------------------------------------------
    def float_compute(self, name, parts, v, a):
        t = parts[-1]
        fmt = FMTS[t]
        mods = parts[1:-1]
        assert "ftz" not in mods and "sat" not in mods and "relu" not in mods, parts
        mode = next((m for m in mods if m in ("rn", "rz", "rm", "rp")), "rn")
        if name in ("add", "sub", "mul", "div", "fma"):
            if name == "div":
                assert mode in mods or t == "f64" and not mods or mods == ["rn"], parts   # no div.approx/full
            if name != "div" and not mods and t in ("f32", "f64"):
                pass   # add.f32 without a rounding modifier: .rn (and may be contracted by ptxas; noted)
            xs = [decode(x, fmt) for x in v]
            return float_op(name, mode, fmt, xs)
        if name == "rcp":    # rcp.rn: 1 / a correctly rounded (rcp.approx is not modelled)
            assert mode in mods, parts
            return float_op("div", mode, fmt, [FV("num", False, Fraction(1)), decode(v[0], fmt)])
        if name == "neg":
            return v[0] ^ fmt.sign
        if name == "abs":
            return v[0] & (fmt.sign - 1)
        if name in ("min", "max"):
            assert not mods or mods == ["NaN"], parts
            x, y = decode(v[0], fmt), decode(v[1], fmt)
            if x.is_nan() and y.is_nan():
                return fmt.nan
            if x.is_nan() or y.is_nan():
                if mods == ["NaN"]:
                    return fmt.nan
                return v[1] if x.is_nan() else v[0]
            fx, fy = x.as_float(), y.as_float()
            if fx == fy:
                # +0 and -0: the PTX ISA's pseudo-code takes (a < b) ? a : b; the hardware orders -0 below +0.
                # Either is allowed by LLVM's minnum/maxnum; record that the sign was a free choice.
                if v[0] != v[1]:
                    self.zero_sign_choice = True
                want_neg = name == "min"
                return v[0] if x.neg == want_neg else v[1]
            return v[0] if (fx < fy) == (name == "min") else v[1]
        if name == "sqrt":
            assert mode in mods, parts   # sqrt.rn only, not sqrt.approx
            x = decode(v[0], fmt)
            if x.kind == "nan" or (x.kind != "inf" and x.value < 0) or (x.kind == "inf" and x.neg):
                if x.is_zero():
                    return v[0]
                return fmt.nan
            if x.kind == "inf" or x.is_zero():
                return v[0]
            return encode(FV("num", False, _sqrt_fraction(x.value, fmt)), fmt, mode)
        if name == "copysign":     # copysign.type d, a, b: |b| with the sign of a
            return (v[1] & (fmt.sign - 1)) | (v[0] & fmt.sign)
        if name in _APPROXIMATE and t == "f32":
            # the approximate instructions, modelled as numpy's float32 functions (the hardware's error is a few
            # ulp: a model for comparing one PTX with another, not the GPU's bits)
            with np.errstate(all="ignore"):
                return bits(_APPROXIMATE[name](f32(v[0])))
        raise NotImplementedError(name, parts, a)

    def cvt(self, parts, x):
        dst, src = parts[-2], parts[-1]
        mods = parts[1:-2]
        assert "ftz" not in mods, parts
        sat = "sat" in mods
        satfinite = "satfinite" in mods
        relu = "relu" in mods
        assert not satfinite and not relu, parts
        if src in FLOAT_TYPES:
            xv = decode(x & ((1 << FMTS[src].width) - 1), FMTS[src])
            if dst in FLOAT_TYPES:
                irnd = next((m for m in mods if m in ("rni", "rzi", "rmi", "rpi")), None)
                if irnd is not None:     # round to an integer in the same or another float format
                    if xv.kind != "num":
                        r = xv
                    else:
                        r = FV("num", xv.neg, Fraction(_round_integer(xv.value, irnd)))
                    return encode(r, FMTS[dst], "rn", sat)
                mode = next((m for m in mods if m in ("rn", "rz", "rm", "rp")), None)
                if FMTS[dst].width > FMTS[src].width or (src == "bf16" and dst == "f32"):
                    assert mode is None or True
                    mode = mode or "rn"     # widening is exact
                elif FMTS[dst].width == FMTS[src].width and dst == src:
                    mode = mode or "rn"
                else:
                    assert mode is not None, ("a narrowing cvt needs a rounding modifier", parts)
                return encode(xv, FMTS[dst], mode, sat)
            # float -> int
            irnd = next((m for m in mods if m in ("rni", "rzi", "rmi", "rpi")), None)
            assert irnd is not None, parts
            w = INT_WIDTH[dst]
            return float_to_int(xv, irnd, w, dst.startswith("s"))
        sw = INT_WIDTH[src]
        xi = x & ((1 << sw) - 1)
        if src.startswith("s"):
            xi = signed(xi, sw)
        if dst in FLOAT_TYPES:
            mode = next((m for m in mods if m in ("rn", "rz", "rm", "rp")), None)
            assert mode is not None, parts
            return int_to_float(xi, FMTS[dst], mode)
        dw = INT_WIDTH[dst]
        if sat:
            lo, hi = ((-(1 << (dw - 1)), (1 << (dw - 1)) - 1) if dst.startswith("s") else (0, (1 << dw) - 1))
            xi = min(max(xi, lo), hi)
        # PTX: a destination register wider than dst gets dst's value sign- or zero-extended; cvt.u16.u8 into a
        # 16-bit register: the value's low bits. The register is dst's width here (ld/st/setp read their own width).
        r = xi & ((1 << dw) - 1)
        return r

    @staticmethod
    def cvt_packed(parts, v):
        """PTX ISA cvt with a packed side: cvt.rn{.satfinite}.{f16x2,bf16x2,e4m3x2,e5m2x2}.f32 d, a, b (a to the
        upper half of d, b to the lower); cvt.rn.satfinite.{e4m3x2,e5m2x2}.f16x2 d, a (each half);
        cvt.rn.f16x2.{e4m3x2,e5m2x2} d, a (each byte of a, exactly)."""
        dst, src = parts[-2], parts[-1]
        mods = parts[1:-2]
        assert "relu" not in mods and "ftz" not in mods, parts
        mode = next((m for m in mods if m in ("rn", "rz", "rm", "rp")), None)
        satfinite = "satfinite" in mods
        if dst in ("f16x2", "bf16x2") and src == "f32":
            assert mode is not None, parts
            fmt = FMTS[dst[:-2]]
            halves = [_satfinite(encode(decode(x & M32, FMTS["f32"]), fmt, mode), fmt) if satfinite
                      else encode(decode(x & M32, FMTS["f32"]), fmt, mode) for x in v[:2]]
            return (halves[0] << 16) | halves[1]
        if dst in ("e4m3x2", "e5m2x2"):
            assert mode == "rn" and satfinite, ("cvt to fp8 needs .rn.satfinite", parts)
            kind = dst[:-2]
            if src == "f32":
                xs = [decode(x & M32, FMTS["f32"]) for x in v[:2]]
            elif src in ("f16x2", "bf16x2"):
                xs = [decode((v[0] >> 16) & M16, FMTS[src[:-2]]), decode(v[0] & M16, FMTS[src[:-2]])]
            else:
                raise NotImplementedError(parts)
            codes = [encode_f8(x, kind) for x in xs]
            return (codes[0] << 8) | codes[1]
        if dst == "f16x2" and src in ("e4m3x2", "e5m2x2"):
            kind = src[:-2]
            halves = [encode(decode_f8((v[0] >> (8 * k)) & 0xFF, kind), FMTS["f16"], "rn") for k in range(2)]
            return halves[0] | (halves[1] << 16)
        raise NotImplementedError(parts)

    # -- integers -------------------------------------------------------------------------------------
    def int_compute(self, name, parts, v, a):
        t = parts[-1]
        width = INT_WIDTH[t]
        mask = (1 << width) - 1
        is_signed = t.startswith("s")
        sgn = lambda u: signed(u, width)  # noqa: E731
        if name == "and": return v[0] & v[1] & mask
        if name == "or": return (v[0] | v[1]) & mask
        if name == "xor": return (v[0] ^ v[1]) & mask
        if name == "not": return ~v[0] & mask
        if name == "cnot": return int((v[0] & mask) == 0)
        if name == "add": return (v[0] + v[1]) & mask
        if name == "sub": return (v[0] - v[1]) & mask
        if name == "neg": return -v[0] & mask
        if name == "abs": return abs(sgn(v[0])) & mask
        if name == "popc": return bin(v[0] & mask).count("1")
        if name == "brev": return int(format(v[0] & mask, f"0{width}b")[::-1], 2)
        if name == "mul":
            x, y = (sgn(v[0]), sgn(v[1])) if is_signed else (v[0] & mask, v[1] & mask)
            if parts[1] == "lo": return (x * y) & mask
            if parts[1] == "hi": return ((x * y) >> width) & mask
            if parts[1] == "wide": return (x * y) & ((1 << (2 * width)) - 1)
        if name == "mad":
            x, y = (sgn(v[0]), sgn(v[1])) if is_signed else (v[0] & mask, v[1] & mask)
            if parts[1] == "lo":
                return (x * y + v[2]) & mask
            if parts[1] == "hi":
                return (((x * y) >> width) + v[2]) & mask
            if parts[1] == "wide":
                return (x * y + v[2]) & ((1 << (2 * width)) - 1)
        if name in ("min", "max"):
            x, y = (sgn(v[0]), sgn(v[1])) if is_signed else (v[0] & mask, v[1] & mask)
            r = min(x, y) if name == "min" else max(x, y)
            if "relu" in parts:   # PTX ISA min/max .relu: a negative result becomes 0
                r = max(r, 0)
            return r & mask
        if name in ("div", "rem"):
            x, y = (sgn(v[0]), sgn(v[1])) if is_signed else (v[0] & mask, v[1] & mask)
            if y == 0:     # PTX ISA: division by zero gives an unspecified value (LLVM may hoist a guarded one)
                return mask if name == "div" else x & mask
            return (tdiv(x, y) if name == "div" else trem(x, y)) & mask
        if name == "shf":   # PTX ISA shf: funnel shift of the 2*32-bit {b, a}
            n = (v[2] & 31) if parts[2] == "wrap" else min(v[2] & M32, 32)
            joined = ((v[1] & mask) << width) | (v[0] & mask)
            return ((joined << n) >> width) & mask if parts[1] == "l" else (joined >> n) & mask
        if name == "bfe":   # PTX ISA bfe: pos and len taken from their low 8 bits, clamped to the width
            pos, length = v[1] & 0xFF, v[2] & 0xFF
            x = v[0] & mask
            if length == 0:
                return 0
            sbit = (x >> min(pos + length - 1, width - 1)) & 1 if is_signed else 0
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
            if is_signed:
                return (sgn(v[0]) >> min(n, width - 1)) & mask
            return ((v[0] & mask) >> n) & mask if n < width else 0
        if name == "prmt":    # PTX ISA prmt.b32 (default mode): byte selectors from c's low 16 bits
            assert len(parts) == 2, parts
            data = (v[0] & M32) | ((v[1] & M32) << 32)
            out = 0
            for k in range(4):
                sel = (v[2] >> (4 * k)) & 0xF
                byte = (data >> (8 * (sel & 7))) & 0xFF
                if sel & 8:
                    byte = 0xFF if byte & 0x80 else 0
                out |= byte << (8 * k)
            return out
        raise NotImplementedError(name, parts, a)

    @staticmethod
    def setp(cmp, t, x, y):
        if t in FLOAT_TYPES:
            fmt = FMTS[t]
            p, q = decode(x & ((1 << fmt.width) - 1), fmt), decode(y & ((1 << fmt.width) - 1), fmt)
            unordered = p.is_nan() or q.is_nan()
            if cmp == "nan": return unordered
            if cmp == "num": return not unordered
            base, u = (cmp[:-1], True) if cmp.endswith("u") else (cmp, False)
            if unordered:
                return u
            p, q = p.as_float(), q.as_float()
            return {"eq": p == q, "ne": p != q, "lt": p < q, "le": p <= q, "gt": p > q, "ge": p >= q}[base]
        width = INT_WIDTH[t]
        if t.startswith("s"):
            p, q = signed(x, width), signed(y, width)
        else:
            p, q = x & ((1 << width) - 1), y & ((1 << width) - 1)
        return {"eq": p == q, "ne": p != q, "lt": p < q, "le": p <= q, "gt": p > q, "ge": p >= q,
                "lo": p < q, "ls": p <= q, "hi": p > q, "hs": p >= q}[cmp]


_APPROXIMATE = {"ex2": np.exp2, "lg2": np.log2, "rsqrt": lambda x: np.float32(1) / np.sqrt(x), "sin": np.sin,
                "cos": np.cos, "tanh": np.tanh}


def _sqrt_fraction(v: Fraction, fmt: Fmt) -> Fraction:
    """sqrt(v) to enough bits that rounding it to fmt is correct (truncated, with a sticky bit below)."""
    bits_needed = fmt.p + 4
    e = _ilog2(v)
    shift = 2 * (bits_needed - e // 2 + 2)
    scaled = v * Fraction(2) ** shift
    n = scaled.numerator // scaled.denominator
    r = math.isqrt(n)
    exact = r * r == n and scaled.denominator == 1
    value = Fraction(r) / Fraction(2) ** (shift // 2)
    if not exact:
        value += Fraction(1) / Fraction(2) ** (shift // 2 + 1)   # sticky: strictly between r and r + 1
    return value


# address bits 40 and up: which memory (global arrays are 1, 2, ...)
SHARED_KEY, LOCAL_KEY, CONST_KEY = 0x800, 0x1000, 0x400
SHARED_SIZE = 1 << 16
POISON = 0xA5        # the bytes of fresh shared and local memory (reading them unwritten is a bug of the kernel)


class Memory:
    """Arrays at fake global addresses, byte-addressed; the block's shared memory and each thread's local memory in
    windows of their own (a state-space address and its generic address are the same number here)."""

    def __init__(self, arrays):
        self.arrays = arrays
        self.bases = [(i + 1) << 40 for i in range(len(arrays))]
        self.shared = np.full(SHARED_SIZE, POISON, np.uint8)
        self.local = {}

    def start_block(self, threads):
        self.shared = np.full(SHARED_SIZE, POISON, np.uint8)
        self.local = {}

    def _raw(self, addr, size, space="global", tid=0):
        k = addr >> 40
        if space == "shared" or (space == "generic" and k == SHARED_KEY):
            raw, off = self.shared, addr & ((1 << 32) - 1)
        elif space == "local" or (space == "generic" and k >= LOCAL_KEY):
            raw = self.local.setdefault(tid, np.full(1 << 14, POISON, np.uint8))
            off = addr & ((1 << 32) - 1)
        else:
            assert space in ("global", "generic"), space
            raw = self.arrays[k - 1].view(np.uint8).reshape(-1)
            off = addr - self.bases[k - 1]
        assert 0 <= off and off + size <= raw.size, ("out of bounds", space, k, off, size)
        assert off % size == 0, ("misaligned", space, k, off, size)
        return raw, off

    def load(self, addr, size=4, space="global", tid=0):
        raw, off = self._raw(addr, size, space, tid)
        return int.from_bytes(raw[off:off + size].tobytes(), "little")

    def store(self, addr, value, size=4, space="global", tid=0):
        raw, off = self._raw(addr, size, space, tid)
        raw[off:off + size] = np.frombuffer(int(value).to_bytes(size, "little"), np.uint8)


def _ftz(x: FV, fmt: Fmt) -> FV:
    if x.kind == "num" and x.value != 0 and abs(x.value) < Fraction(2) ** fmt.emin:
        return FV("num", x.neg, Fraction(0))
    return x


def _ftz_bits(b: int, fmt: Fmt) -> int:
    if (b >> fmt.mant) & ((1 << fmt.ebits) - 1) == 0:
        return b & fmt.sign
    return b


def _fold(vals, f):
    r = vals[0]
    for v in vals[1:]:
        r = f(r, v)
    return r


def run_grid(ptx: str, entry: str, arrays: list, blocks: int, threads: int, reconverge: bool = True,
             scalars: tuple = ()) -> list:
    """Run kernel `entry` of `ptx` over a 1-D grid, its pointer parameters bound to `arrays` in order (changed in
    place), then its scalar parameters to `scalars` (ints); gives the arrays. The threads of a block run one after
    another up to a barrier (bar.sync: all of the block's live threads wait there) or a warp collective (the warp's
    threads that reach the same instruction together execute it as one group), so shared memory, barriers and
    shuffles work; atomics run in thread order.

    reconverge=False: the warp never gathers again after its threads' branches went apart (until a bar.sync), as
    a GPU may do (PTX promises nothing more): `activemask` names only the lanes that took the same branches, and a
    .sync collective groups the lanes of its member mask at one instruction, waiting until every one of them not
    exited is there. In either case a .sync collective waits for every lane of its member mask not exited (a group
    that can never complete is an error)."""
    program = Program(ptx, entry)
    memory = Memory(arrays)
    params = dict(zip(program.params, list(memory.bases) + [value & M64 for value in scalars]))
    for block in range(blocks):
        memory.start_block(threads)
        live = {t: program.thread(memory, params, t, block, ntid=threads, nctaid=blocks) for t in range(threads)}
        reply = dict.fromkeys(live)
        waiting = {}
        while live:
            for t in list(live):
                if t in waiting:
                    continue
                try:
                    waiting[t] = live[t].send(reply[t])
                except StopIteration:
                    del live[t]
            if not live:
                break
            warp = [(t, e) for t, e in waiting.items() if e[0] == "warp"]
            if warp:
                groups = {}
                for t, e in warp:
                    if reconverge:
                        key = e[1]
                    else:   # (activemask: the lanes of one path; a .sync form: those of one member mask)
                        key = (e[1], e[4] if e[3] is None else e[3][-1] & M32)
                    groups.setdefault((t // 32, key, e[2]), {})[t % 32] = e[3]
                resolved = False
                for (w, _, kind), lanes in groups.items():
                    exited = sum(1 << lane for lane in range(32) if w * 32 + lane not in live)
                    if kind != "activemask":
                        member = next(iter(lanes.values()))[-1] & M32 & ~exited
                        if member & ~sum(1 << lane for lane in lanes):
                            continue   # some lanes of its mask are not there yet
                    resolved = True
                    for lane, r in program.resolve_warp(kind, lanes, exited).items():
                        reply[w * 32 + lane] = r
                        del waiting[w * 32 + lane]
                if not resolved:
                    raise RuntimeError(f"warp collectives that never complete: {sorted(groups)[:4]}")
            else:
                for t in waiting:
                    reply[t] = None
                waiting.clear()
    return arrays


def run_batch(batch, ptx: str) -> tuple:
    """The int and float outputs of a fuzzgen batch kernel's PTX (its inputs copied, outputs zeroed)."""
    import fuzzgen

    arrays = [batch.xi.copy(), batch.xf.copy(), np.zeros_like(batch.xi), np.zeros_like(batch.xf)]
    run_grid(ptx, "batch", arrays, batch.count, fuzzgen.T)
    return arrays[2], arrays[3]
