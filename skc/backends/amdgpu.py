"""AMDGPU facts and lowerings: address spaces, LDS, the kernel signature (code object v5),
math instructions, saturating and fp8 conversions. The execution-model ops (ids, barriers,
wavefront shuffles and votes, MFMA) are in amdgpu_ops.py."""
from __future__ import annotations

from .. import ir
from ..diagnostics import CompileError
from ..target import Target
from . import amdgpu_ops, angles
from .llvm_text import llvm_type
from .lowering import FunctionLowering, intrinsic_suffix

# LLVM AMDGPUAS (llvm/Support/AMDGPUAddrSpace.h): FLAT, GLOBAL, LOCAL (LDS), CONSTANT, PRIVATE.
ADDRESS_SPACES = {"generic": 0, "global": 1, "shared": 3, "const": 4, "local": 5}
# LLVM 22's datalayout for amdgcn-amd-amdhsa (the same for gfx942 and gfx90a); a test checks it
# against llvmlite's target machine. A5: allocas live in the private address space.
DATALAYOUT = ("e-m:e-p:64:64-p1:64:64-p2:32:32-p3:32:32-p4:64:64-p5:32:32-p6:32:32-p7:160:256:256:32"
              "-p8:128:128:128:48-p9:192:256:256:32-i64:64-v16:16-v24:32-v32:32-v48:64-v96:128-v192:256"
              "-v256:256-v512:512-v1024:1024-v2048:2048-n32:64-S32-A5-G1-ni:7:8:9")
TRIPLE = "amdgcn-amd-amdhsa"
# Code object v5 (ROCm 5.x and newer load it): LLVM 22 defaults to v6, which ld.lld-16 rejects
# ("unknown abi version") and older ROCm runtimes cannot load.
CODE_OBJECT_VERSION = 500
SHARED_SYMBOL = "@__skc_shared"
LOG2_E = 1.4426950408889634
# OCP fp8 formats (skc's f8e4m3/f8e5m2): the largest finite values, where conversions saturate.
_FP8_MAX = {"f8e4m3": 448.0, "f8e5m2": 57344.0, "f8e4m3fnuz": 240.0, "f8e5m2fnuz": 57344.0}
_FP8_KIND = {"f8e4m3": "fp8", "f8e5m2": "bf8", "f8e4m3fnuz": "fp8", "f8e5m2fnuz": "bf8"}


class AMDGPU:
    """Target lowering for AMD CDNA GPUs (LLVM's AMDGPU backend), wavefronts of 64."""

    address_spaces = ADDRESS_SPACES
    triple = TRIPLE
    datalayout = DATALAYOUT
    atomic_scope = 'syncscope("agent")'
    alloca_space = ADDRESS_SPACES["local"]
    splits_odd_half_vectors = True   # (16-bit float vectors of 5-7 lanes convert lane by lane: lowering._split_lanes)

    def __init__(self, target: Target):
        self.target = target
        self.name = target.name
        self.ops = dict(amdgpu_ops.OPS)

    # -- the kernel's shape -----------------------------------------------------------
    def kernel_params(self, fn: ir.Function):
        params = []
        for i, value in enumerate(fn.args):
            if isinstance(value.type, ir.TensorMapType):
                raise CompileError(f"kernel '{fn.name}' takes a TMA tensor map (argument {i}); tensor maps are "
                                   f"Hopper's (sm_90a): {self.name} has no TMA", fn.loc,
                                   hint="pass a pointer and load tiles with the AMD blocks")
            name = f"%arg{i}"
            params.append((f"{llvm_type(value.type, ADDRESS_SPACES)} {name}", name))
        return params

    def kernel_header(self, fn: ir.Function, params) -> str:
        x, y, z = fn.attrs.get("block", (1, 1, 1))
        threads = x * y * z
        if tuple(fn.attrs.get("cluster", (1, 1, 1))) != (1, 1, 1):
            raise CompileError(f"kernel '{fn.name}' asks for clusters of {fn.attrs['cluster']} blocks; clusters "
                               f"need sm_90a, {self.name} has none", fn.loc)
        # The launch uses exactly this block, and HIP grids count whole blocks (uniform work groups).
        attrs = [f'"amdgpu-flat-work-group-size"="1,{threads}"', '"uniform-work-group-size"="true"']
        if "min_blocks" in fn.attrs:
            # Blocks resident per CU -> waves per SIMD (4 SIMDs per CU, CDNA3 ISA 2.1), which caps registers.
            waves = -(-fn.attrs["min_blocks"] * -(-threads // self.target.warp_size) // 4)
            attrs.append(f'"amdgpu-waves-per-eu"="{max(1, waves)}"')
        return f"define amdgpu_kernel void @{fn.name}({', '.join(params)}) {' '.join(attrs)}"

    def module_prelude(self, text, module: ir.Module):
        text.module_flag("amdhsa_code_object_version", CODE_OBJECT_VERSION)
        for fn in module.functions:
            size = fn.attrs.get("shared_bytes", 0)
            if size:
                # A static LDS buffer per kernel: its size goes into the code object's group segment
                # (.group_segment_fixed_size), so a launch passes no dynamic LDS. LDS has no initializer.
                align = fn.attrs.get("shared_align", 16)
                text.globals.append(f"{_shared_symbol(fn)} = internal addrspace(3) global [{size} x i8] poison, "
                                    f"align {align}")

    def prologue(self, lowering: FunctionLowering):
        pass

    def shared_base(self, lowering: FunctionLowering) -> str:
        return _shared_symbol(lowering.fn)

    # -- math and conversions -----------------------------------------------------------
    @property
    def f32_math(self) -> dict:
        """op name -> emitter of its f32 form (the other float types are legalized to f32 first)."""
        return _F32_MATH

    def opaque(self, lw: FunctionLowering, name: str, t: ir.Type) -> str:
        """The value as it is: whether AMDGPU makes a select against a constant zero a min or max whose zeros are
        ordered (NVPTX does: nvptx.NVPTX.opaque) has not been checked on an AMD GPU."""
        return name

    def float_to_int(self, lw: FunctionLowering, name: str, src: ir.Type, dst: ir.Type) -> str:
        """llvm.fpto[su]i.sat: saturates at the integer's range and gives 0 for NaN, as the IR defines."""
        if ir.element_type(src).bits < 32:  # f16 and bf16 widen to f32 first (exactly): one path for both
            wide = ir.with_element(src, ir.f32)
            name = lw.convert_name(name, src, wide)   # (lane by lane where LLVM needs it: lowering._split_lanes)
            src = wide
        kind = "fptosi" if ir.element_type(dst).is_signed else "fptoui"
        return lw.call(f"llvm.{kind}.sat{intrinsic_suffix(dst)}{intrinsic_suffix(src)}", lw.type(dst),
                       [f"{lw.type(src)} {name}"])

    def convert_fp8(self, lw: FunctionLowering, value: ir.Value, dst: ir.Type, op) -> str:
        """Through f32 and gfx942's v_cvt_f32_fp8/bf8 and v_cvt_pk_fp8/bf8_f32 (the fp8 instructions come
        with its fp8 matrix cores); vectors lane by lane."""
        if not self.target.has("mfma_fp8"):
            lw.fail(op, f"fp8 conversions need gfx942 (MI300); {self.name} has no fp8 instructions")
        src_elem, dst_elem = ir.element_type(value.type), ir.element_type(dst)

        def scalar(name: str) -> str:
            if src_elem.is_float and src_elem.bits == 8:
                name = _decode_fp8(lw, name, src_elem.name)
            else:
                name = lw.convert_name(name, src_elem, ir.f32)
            if dst_elem.is_float and dst_elem.bits == 8:
                return _encode_fp8(lw, name, dst_elem.name)
            return lw.convert_name(name, ir.f32, dst_elem)

        if isinstance(dst, ir.VectorType):
            return lw.lanewise(dst, [value], scalar)
        return scalar(lw.get(value))


def _shared_symbol(fn: ir.Function) -> str:
    return f"{SHARED_SYMBOL}.{fn.name}"


# -- f32 math: LLVM intrinsics the AMDGPU backend selects to v_exp_f32, v_log_f32, v_sin_f32 ... ---
def _afn(name):
    """An LLVM math intrinsic with `afn` (approximate functions allowed): v_exp/v_log/v_sin/v_cos_f32
    with the range and denormal scaling LLVM adds around them."""
    return lambda lw, x: lw.call(f"llvm.{name}.f32", "float", [f"float {x}"], flags="afn")


def _pow(lw, a, b):
    log2 = _afn("log2")(lw, a)
    return _afn("exp2")(lw, lw.text.value(f"fmul afn float {log2}, {b}"))


def _tanh(lw, x):
    """tanh x = sign(x) (1 - 2 / (e^{2|x|} + 1)); below 2^-7, x itself (the two errors meet near 2e-5)."""
    size = lw.call("llvm.fabs.f32", "float", [f"float {x}"])
    scaled = lw.text.value(f"fmul float {size}, {lw.constant(2 * LOG2_E, ir.f32)}")
    power = _afn("exp2")(lw, scaled)
    denominator = lw.text.value(f"fadd float {power}, {lw.constant(1.0, ir.f32)}")
    quotient = lw.text.value(f"fdiv afn float {lw.constant(2.0, ir.f32)}, {denominator}")
    magnitude = lw.text.value(f"fsub float {lw.constant(1.0, ir.f32)}, {quotient}")
    signed = lw.call("llvm.copysign.f32", "float", [f"float {magnitude}", f"float {x}"])
    small = lw.text.value(f"fcmp olt float {size}, {lw.constant(2.0 ** -7, ir.f32)}")
    return lw.text.value(f"select i1 {small}, float {x}, float {signed}")


def _rsqrt(lw, x):
    """v_rsq_f32 around a scaling of subnormal inputs, which it does not handle (it gave +inf for rsqrt(1e-40), where
    the interpreter and NVIDIA's rsqrt.approx.f32 give 1e20): below 2^-126, rsqrt(x 2^24) 2^12, as LLVM's own rsq
    expansion does where f32 denormals are on (they are: .amdhsa_float_denorm_mode_32 3)."""
    text = lw.text
    small = text.value(f"fcmp olt float {x}, {lw.constant(2.0 ** -126, ir.f32)}")
    up = text.value(f"fmul float {x}, {lw.constant(2.0 ** 24, ir.f32)}")
    root = lw.call("llvm.amdgcn.rsq.f32", "float", [f"float {text.value(f'select i1 {small}, float {up}, float {x}')}"])
    down = text.value(f"fmul float {root}, {lw.constant(2.0 ** 12, ir.f32)}")
    return text.value(f"select i1 {small}, float {down}, float {root}")


def _exp2_ftz(lw, x):
    """exp2 with results under 2^-126 flushed to 0, as NVIDIA's ex2.approx.ftz gives them."""
    power = _afn("exp2")(lw, x)
    tiny = lw.text.value(f"fcmp olt float {power}, {lw.constant(2.0 ** -126, ir.f32)}")
    return lw.text.value(f"select i1 {tiny}, float {lw.constant(0.0, ir.f32)}, float {power}")


_F32_MATH = {
    "math.exp": _afn("exp"),
    "math.exp2": _afn("exp2"),
    "math.exp2_ftz": _exp2_ftz,
    "math.log": _afn("log"),
    "math.log2": _afn("log2"),
    "math.rsqrt": _rsqrt,
    "math.sin": angles.after_reduction(_afn("sin")),
    "math.cos": angles.after_reduction(_afn("cos")),
    "math.tanh": _tanh,
    "math.pow": _pow,
}


# -- fp8 ---------------------------------------------------------------------------------------------
# gfx942's fp8 instructions use the FNUZ formats (MLIR amdgpu dialect: f8E4M3FNUZ / f8E5M2FNUZ on
# gfx94x); skc's are OCP's. The FNUZ bias is one larger, so the same bits mean half the value (for
# normal and subnormal codes alike): convert through the hardware with a factor of 2, and fix the codes
# whose meaning differs (OCP -0 is FNUZ NaN; OCP NaN and infinities are FNUZ finite values). skc's
# f8e4m3fnuz / f8e5m2fnuz are the hardware's formats: converted directly.
def _decode_fp8(lw, byte: str, fmt: str) -> str:
    text = lw.text
    word = text.value(f"zext i8 {byte} to i32")
    fnuz = lw.call(f"llvm.amdgcn.cvt.f32.{_FP8_KIND[fmt]}", "float", [f"i32 {word}", "i32 0"])
    if fmt.endswith("fnuz"):   # the hardware's own format
        return fnuz
    value = text.value(f"fmul float {fnuz}, 2.0")
    negative_zero = text.value(f"icmp eq i8 {byte}, -128")
    value = text.value(f"select i1 {negative_zero}, float -0.0, float {value}")
    nan = lw.constant(float("nan"), ir.f32)
    magnitude = text.value(f"and i8 {byte}, 127")
    if fmt == "f8e4m3":  # S.1111.111 is NaN; there are no infinities
        special = text.value(f"icmp eq i8 {magnitude}, 127")
        return text.value(f"select i1 {special}, float {nan}, float {value}")
    special = text.value(f"icmp uge i8 {magnitude}, 124")  # S.11111.mm: infinity (mm = 0) or NaN
    infinite = text.value(f"icmp eq i8 {magnitude}, 124")
    negative = text.value(f"icmp slt i8 {byte}, 0")
    inf = lw.constant(float("inf"), ir.f32)
    signed_inf = text.value(f"select i1 {negative}, float {lw.constant(float('-inf'), ir.f32)}, float {inf}")
    either = text.value(f"select i1 {infinite}, float {signed_inf}, float {nan}")
    return text.value(f"select i1 {special}, float {either}, float {value}")


def _encode_fp8(lw, x: str, fmt: str) -> str:
    """Round to nearest even, saturating finite overflow and infinities (as PTX cvt.rn.satfinite and the
    interpreter do); NaN gives 0x7F (FNUZ: 0x80); a result of zero keeps x's sign (FNUZ: it is 0)."""
    text = lw.text
    top, fnuz = _FP8_MAX[fmt], fmt.endswith("fnuz")
    clamped = lw.call("llvm.maxnum.f32", "float", [f"float {x}", f"float {lw.constant(-top, ir.f32)}"])
    clamped = lw.call("llvm.minnum.f32", "float", [f"float {clamped}", f"float {lw.constant(top, ir.f32)}"])
    # OCP through the FNUZ hardware: the same bits mean half the value
    scaled = clamped if fnuz else text.value(f"fmul float {clamped}, 0.5")
    packed = lw.call(f"llvm.amdgcn.cvt.pk.{_FP8_KIND[fmt]}.f32", "i32",
                     [f"float {scaled}", "float 0.0", "i32 0", "i1 false"])
    byte = text.value(f"trunc i32 {packed} to i8")
    magnitude = text.value(f"and i8 {byte}, 127")
    zero = text.value(f"icmp eq i8 {magnitude}, 0")
    bits = text.value(f"bitcast float {x} to i32")
    negative = text.value(f"icmp slt i32 {bits}, 0")
    if fnuz:   # FNUZ has no -0 (0x80 is its NaN): every zero is 0
        signed_zero = "i8 0"
    else:      # an OCP zero keeps x's sign
        signed_zero = "i8 " + text.value(f"select i1 {negative}, i8 -128, i8 0")
    byte = text.value(f"select i1 {zero}, {signed_zero}, i8 {byte}")
    nan = text.value(f"fcmp uno float {x}, 0.0")
    return text.value(f"select i1 {nan}, i8 {-128 if fnuz else 127}, i8 {byte}")
