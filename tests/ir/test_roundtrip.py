"""Every op's textual form round-trips: print -> parse -> print gives the same text, and verifies."""
import math

import pytest

from skc.diagnostics import Location
from skc.ir import OPS, ParseError, parse_module, print_module, verify
from skc.ir.ops_arith import BINARY, UNARY

HEAD = ("kernel @k(%0: ptr<global>, %1: i32, %2: f32, %3: i1, %4: vec<4xf32>, %5: tmap, %6: u32) "
        "{block = [128, 1, 1], shared_bytes = 256} {\n")


def kernel(body: str) -> str:
    """A kernel whose arguments %0..%6 the samples use; the body's values start at %7."""
    return HEAD + body + "}\n"


def _elementwise_sample(name: str, cls) -> str:
    value = "%1" if "int" in cls.allowed else "%2"
    type_ = "i32" if "int" in cls.allowed else "f32"
    operands = ", ".join([value] * cls.num_operands)
    return f"  %7 = {name} {operands} : {type_}\n"


# Elementwise ops are defined by their tables (ops_arith.BINARY/UNARY): one sample each from there.
SAMPLES = {name: _elementwise_sample(name, cls) for name, cls in {**BINARY, **UNARY}.items()}

SAMPLES.update({
    "arith.constant": (
        "  %7 = arith.constant {value = 7} : i32\n"
        "  %8 = arith.constant {value = -9223372036854775808} : i64\n"
        "  %9 = arith.constant {value = -0.0} : f32\n"
        "  %10 = arith.constant {value = inf} : f32\n"
        "  %11 = arith.constant {value = -inf} : f64\n"
        "  %12 = arith.constant {value = nan} : f32\n"
        "  %13 = arith.constant {value = 1e+30} : f32\n"
        "  %14 = arith.constant {value = 1e-05} : bf16\n"
        "  %15 = arith.constant {value = 2.5} : vec<4xf32>\n"
        "  %16 = arith.constant {value = 1} : i1\n"
        "  %17 = arith.constant {value = 3} : f8e4m3\n"),
    "arith.cmp": (
        "  %7 = arith.cmp %2, %2 {pred = \"ne\"} : i1\n"
        "  %8 = arith.cmp %4, %4 {pred = \"lt\"} : vec<4xi1>\n"
        "  %9 = arith.cmp %0, %0 {pred = \"eq\"} : i1\n"),
    "arith.select": "  %7 = arith.select %3, %6, %6 : u32\n",
    "arith.cast": "  %7 = arith.cast %1 : f32\n  %8 = arith.cast %4 : vec<4xf16>\n",
    "arith.bitcast": "  %7 = arith.bitcast %2 : u32\n  %8 = arith.bitcast %4 : vec<2xf64>\n",
    "math.fma": "  %7 = math.fma %2, %2, %2 : f32\n",
    "scf.if": (
        "  scf.if %3 {\n"
        "    %7 = arith.add %1, %1 : i32\n"
        "    scf.if %3 {\n"
        "    } {\n"
        "      gpu.barrier\n"
        "    }\n"
        "  } {\n"
        "  }\n"),
    "scf.for": (
        "  %7 = arith.constant {value = 0} : i32\n"
        "  %8 = arith.constant {value = 1} : i32\n"
        "  scf.for %7, %1, %8 {label = \"L0\"} { ^(%9: i32)\n"
        "    %10 = arith.add %9, %1 : i32\n"
        "    scf.if %3 {\n"
        "      scf.continue {label = \"L0\"}\n"
        "    } {\n"
        "      scf.break {label = \"L0\"}\n"
        "    }\n"
        "  }\n"),
    "scf.loop": (
        "  scf.loop {label = \"outer\"} {\n"
        "    scf.loop {label = \"inner\"} {\n"
        "      scf.if %3 {\n"
        "        scf.break {label = \"outer\"}\n"
        "      } {\n"
        "        scf.continue {label = \"outer\"}\n"
        "      }\n"
        "    }\n"
        "  }\n"),
    "scf.block": (
        "  scf.block {label = \"B0\"} {\n"
        "    scf.if %3 {\n"
        "      scf.break {label = \"B0\"}\n"
        "    } {\n"
        "    }\n"
        "    gpu.barrier\n"
        "  }\n"),
    "func.return": "  scf.if %3 {\n    func.return\n  } {\n  }\n  func.return\n",
    "ptr.offset": "  %7 = ptr.offset %0, %6 {elem = vec<4xf32>} : ptr<global>\n",
    "ptr.to_int": "  %7 = ptr.to_int %0 : i64\n",
    "ptr.from_int": "  %7 = ptr.to_int %0 : u64\n  %8 = ptr.from_int %7 : ptr<global>\n",
    "ptr.cast": "  %7 = ptr.cast %0 : ptr<generic>\n  %8 = ptr.cast %7 : ptr<global>\n",
    "mem.load": "  %7 = mem.load %0 {align = 4} : f32\n  %8 = mem.load %0, %3, %4 : vec<4xf32>\n",
    "mem.store": "  mem.store %0, %2 {align = 4}\n  mem.store %0, %4, %3\n",
    "mem.atomic": "  %7 = mem.atomic %0, %1 {op = \"add\"} : i32\n  %8 = mem.atomic %0, %2, %3 {op = \"xchg\"} : f32\n",
    "mem.atomic_cas": "  %7 = mem.atomic_cas %0, %6, %6 : u32\n",
    "mem.shared": "  %7 = mem.shared {offset = 128, bytes = 128} : ptr<shared>\n",
    "var.alloc": "  %7 = var.alloc : var<vec<4xf32>>\n  %8 = var.alloc : var<ptr<global>>\n",
    "var.load": "  %7 = var.alloc : var<i32>\n  %8 = var.load %7 : i32\n",
    "var.store": "  %7 = var.alloc : var<i32>\n  var.store %7, %1\n",
    "vec.splat": "  %7 = vec.splat %2 : vec<4xf32>\n",
    "vec.from": "  %7 = vec.from %2, %2, %2, %2 : vec<4xf32>\n",
    "vec.extract": "  %7 = vec.extract %4 {index = 3} : f32\n",
    "vec.insert": "  %7 = vec.insert %4, %2 {index = 0} : vec<4xf32>\n",
    "gpu.thread_id": "  %7 = gpu.thread_id {dim = 0} : i32\n",
    "gpu.block_id": "  %7 = gpu.block_id {dim = 1} : i32\n",
    "gpu.grid_dim": "  %7 = gpu.grid_dim {dim = 2} : i32\n",
    "gpu.lane_id": "  %7 = gpu.lane_id : i32\n",
    "gpu.barrier": "  gpu.barrier\n  gpu.barrier {id = 1, threads = 128}\n  gpu.barrier %1 {threads = 256}\n",
    "gpu.barrier_arrive": "  gpu.barrier_arrive {id = 8, threads = 256}\n  gpu.barrier_arrive %1 {threads = 256}\n",
    "gpu.shuffle": "  %7 = gpu.shuffle %2, %1 {mode = \"xor\"} : f32\n",
    "gpu.vote": "  %7 = gpu.vote %3 {mode = \"ballot\"} : u32\n  %8 = gpu.vote %3 {mode = \"all\"} : i1\n",
    "gpu.asm": (  # several results, a string with quotes, a backslash, tabs and newlines, a bool
        r'  %7, %8 = gpu.asm %1, %2 {code = "mov.b32 $0, $2;\n\tmov.b32 $1, \"$3\"; // \\", '
        r'constraints = "=r,=f,r,f", side_effects = true} : i32, f32' "\n"
        r'  gpu.asm {code = "", constraints = ""}' "\n"),
    "gpu.print": r'  gpu.print %1, %2 {format = "x=%d y=%f caf\u00e9 {braces} [brackets]\n"}' "\n",
    "gpu.assert": "  gpu.assert %3 {message = \"i < n: \\\"index\\\" out of range\"}\n",
    # asynchronous and Hopper ops (ops_async.py); %7 is a shared pointer to a barrier
    "mbarrier.init": "  %7 = mem.shared {offset = 0, bytes = 8} : ptr<shared>\n  mbarrier.init %7, %1\n",
    "mbarrier.arrive": "  %7 = mem.shared {offset = 0, bytes = 8} : ptr<shared>\n  mbarrier.arrive %7 {count = 2}\n",
    "mbarrier.arrive_tx": "  %7 = mem.shared {offset = 0, bytes = 8} : ptr<shared>\n  mbarrier.arrive_tx %7, %1\n",
    "mbarrier.expect_tx": "  %7 = mem.shared {offset = 0, bytes = 8} : ptr<shared>\n  mbarrier.expect_tx %7, %1\n",
    "mbarrier.arrive_cluster": ("  %7 = mem.shared {offset = 0, bytes = 8} : ptr<shared>\n"
                                "  mbarrier.arrive_cluster %7, %1\n"),
    "mbarrier.wait": "  %7 = mem.shared {offset = 0, bytes = 8} : ptr<shared>\n  mbarrier.wait %7, %1\n",
    "mbarrier.try_wait": ("  %7 = mem.shared {offset = 0, bytes = 8} : ptr<shared>\n"
                          "  %8 = mbarrier.try_wait %7, %1 : i1\n"),
    "fence.proxy_async": "  fence.proxy_async\n",
    "fence.mbarrier_init": "  fence.mbarrier_init\n",
    "fence.acq_rel_gpu": "  fence.acq_rel_gpu\n",
    "tma.load": ("  %7 = mem.shared {offset = 0, bytes = 8} : ptr<shared>\n"
                 "  %8 = mem.shared {offset = 128, bytes = 128} : ptr<shared>\n"
                 "  tma.load %8, %7, %5, %1, %1 {rank = 2}\n"
                 "  %9 = arith.constant {value = 3} : i16\n"
                 "  tma.load %8, %7, %5, %1, %1, %9 {rank = 2, multicast = true}\n"),
    "tma.store": ("  %7 = mem.shared {offset = 128, bytes = 128} : ptr<shared>\n"
                  "  tma.store %5, %7, %1, %1, %1 {rank = 3}\n"),
    "tma.prefetch": "  tma.prefetch %5\n",
    "cp.async": ("  %7 = mem.shared {offset = 0, bytes = 16} : ptr<shared>\n"
                 "  cp.async %7, %0 {bytes = 16}\n"
                 "  cp.async %7, %0, %3 {bytes = 4}\n"),
    "cp.async.arrive": "  %7 = mem.shared {offset = 0, bytes = 8} : ptr<shared>\n  cp.async.arrive %7\n",
    "tma.commit": "  tma.commit\n",
    "tma.wait": "  tma.wait {pending = 1, read = true}\n",
    "wgmma.fence": "  wgmma.fence\n",
    "wgmma.commit": "  wgmma.commit\n",
    "wgmma.wait": "  wgmma.wait {pending = 0}\n",
    "wgmma.mma": ("  %7 = arith.constant {value = 0.0} : vec<4xf32>\n"
                  "  %8 = arith.constant {value = 1} : i64\n"
                  "  %9 = wgmma.mma %7, %8, %8 {n = 8, dtype = \"bf16\", trans_a = 0, trans_b = 1} : vec<4xf32>\n"),
    "wgmma.mma_rs": ("  %7 = arith.constant {value = 0.0} : vec<4xf32>\n"
                     "  %8 = arith.constant {value = 1} : i64\n"
                     "  %9 = arith.constant {value = 1.0} : vec<8xbf16>\n"
                     "  %10 = wgmma.mma_rs %7, %9, %8 {n = 8, dtype = \"bf16\", trans_b = 1} : vec<4xf32>\n"),
    "gpu.setmaxnreg": "  gpu.setmaxnreg {count = 240, action = \"inc\"}\n",
    "gpu.elect_one": "  %7 = gpu.elect_one : i1\n",
    "cluster.id": "  %7 = cluster.id {dim = 1} : i32\n",
    "cluster.rank": "  %7 = cluster.rank : i32\n",
    "cluster.arrive": "  cluster.arrive\n",
    "cluster.wait": "  cluster.wait\n",
    "mfma.mma": ("  %7 = arith.constant {value = 0.0} : vec<16xf32>\n"
                 "  %8 = arith.constant {value = 1.0} : vec<4xbf16>\n"
                 "  %9 = mfma.mma %7, %8, %8 {m = 32, n = 32, k = 8, dtype = \"bf16\"} : vec<16xf32>\n"),
})


SAMPLES["tma.load_im2col"] = ("  %7 = mem.shared {offset = 0, bytes = 8} : ptr<shared>\n"
                               "  %8 = arith.constant {value = 2} : i16\n"
                               "  tma.load_im2col %7, %7, %5, %1, %1, %1, %1, %8, %8 {rank = 4}\n")
SAMPLES["scf.break"] = SAMPLES["scf.block"]
SAMPLES["scf.continue"] = SAMPLES["scf.for"]


def roundtrip(text: str):
    """Parse, verify, print; the text must come back unchanged, and again from the printed text."""
    module = parse_module(text)
    verify(module)
    printed = print_module(module)
    assert printed == text
    assert print_module(parse_module(printed)) == printed
    return module


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_round_trips(name):
    assert name in SAMPLES, f"op {name} has no round-trip sample: add one to SAMPLES"
    module = roundtrip(kernel(SAMPLES[name]))
    assert name in {op.name for op in module.function().walk()}, f"the sample for {name} does not use it"


def test_no_sample_for_an_op_that_does_not_exist():
    assert set(SAMPLES) <= set(OPS), f"samples for unknown ops: {sorted(set(SAMPLES) - set(OPS))}"


def test_float_attributes_keep_their_value():
    fn = roundtrip(kernel(SAMPLES["arith.constant"])).function()
    values = [op.attrs["value"] for op in fn.body.ops]
    assert values[0] == 7 and type(values[0]) is int
    assert values[2] == 0.0 and math.copysign(1.0, values[2]) == -1.0  # -0.0 keeps its sign
    assert values[3] == math.inf and values[4] == -math.inf
    assert math.isnan(values[5])  # NaN reads back as a NaN (its payload is not printed)
    assert values[6] == 1e30 and values[7] == 1e-05


def test_strings_read_back_exactly():
    fn = roundtrip(kernel(SAMPLES["gpu.asm"] + SAMPLES["gpu.print"])).function()
    asm, _, printf = fn.body.ops
    assert asm.attrs["code"] == 'mov.b32 $0, $2;\n\tmov.b32 $1, "$3"; // \\'
    assert asm.attrs["side_effects"] is True
    assert printf.attrs["format"] == "x=%d y=%f caf\u00e9 {braces} [brackets]\n"


def test_lists_and_types_as_attributes():
    hint = '[[1, -2], [], ["a", f32, vec<2xi64>, ptr<shared>], 0.5, false]'
    text = kernel(f"  %7 = mem.load %0 {{align = 16, hint = {hint}}} : f32\n")
    load = roundtrip(text).function().body.ops[0]
    assert load.attrs["hint"][0] == (1, -2)
    kinds = load.attrs["hint"][2]
    assert str(kinds[1]) == "f32" and str(kinds[2]) == "vec<2xi64>" and str(kinds[3]) == "ptr<shared>"
    assert kinds[0] == "a"


def test_module_attributes_and_several_functions():
    text = ('module {target = "sm_90a", options = ["fast"]}\n\n'
            + kernel("  func.return\n")
            + "\nkernel @second(%0: i32) {\n  %1 = arith.add %0, %0 : i32\n}\n")
    module = roundtrip(text)
    assert [fn.name for fn in module.functions] == ["k", "second"]
    assert module.attrs["target"] == "sm_90a"


LOCATED = kernel(
    '  %7 = arith.add %1, %1 : i32 loc("kernel.py":12:4)\n'
    '  mem.store %0, %2 {align = 4} loc("dir \\"q\\"\\\\kernel.py":13:0)\n'
    '  scf.if %3 loc("kernel.py":14:8) {\n'
    '    gpu.barrier loc("lib.py":1:2)\n'
    '  } {\n'
    '  }\n')


def test_locations_print_and_parse_back():
    module = parse_module(LOCATED)
    verify(module)
    assert print_module(module, locs=True) == LOCATED
    ops = module.function().body.ops
    assert ops[0].loc == Location("kernel.py", 12, 4)
    assert ops[1].loc.file == 'dir "q"\\kernel.py'
    assert ops[2].regions[0].ops[0].loc == Location("lib.py", 1, 2)


def test_locations_are_left_out_unless_asked():
    printed = print_module(parse_module(LOCATED))
    assert "loc(" not in printed
    assert '  %7 = arith.add %1, %1 : i32\n' in printed


def test_values_are_renumbered_in_order_of_definition():
    text = "kernel @k(%n: i32) {\n  %x = arith.add %n, %n : i32\n  %a = arith.mul %x, %n : i32\n}\n"
    assert print_module(parse_module(text)) == (
        "kernel @k(%0: i32) {\n  %1 = arith.add %0, %0 : i32\n  %2 = arith.mul %1, %0 : i32\n}\n")


@pytest.mark.parametrize("text, message", [
    (kernel("  %7 = arith.add %99, %1 : i32\n"), "use of undefined value %99"),
    (kernel("  %7 = arith.frobnicate %1 : i32\n"), "unknown op 'arith.frobnicate'"),
    (kernel("  %1 = arith.add %1, %1 : i32\n"), "value %1 defined twice"),
    (kernel("  %7, %8 = arith.add %1, %1 : i32\n"), "names 2 results but gives 1 types"),
    (kernel("  %7 = arith.add %1, %1 : i33\n"), "expected a type"),
    (kernel("  %7 = arith.add %1 $ %1 : i32\n"), "unexpected character '$'"),
    # a known type's shape with a bad part, a bad loc() and a bad escape were bare ValueErrors without a line
    (kernel("  %7 = arith.constant {value = 1} : vec<0xf32>\n"), "line 2: bad type 'vec<0xf32>'"),
    (kernel("  %7 = arith.constant {value = 1} : vec<4xfoo>\n"), "line 2: bad type 'vec<4xfoo>'"),
    (kernel("  %7 = ptr.offset %0, %1 {elem = f32} : ptr<foo>\n"), "line 2: bad type 'ptr<foo>'"),
    (kernel("  %7 = arith.add %1, %1 : i32 loc(\"k.py\":x:4)\n"), "line 2: expected an int in loc"),
    (kernel("  %7 = arith.add %1, %1 : i32 loc(12:3:4)\n"), "line 2: expected a quoted file name in loc"),
    (kernel('  gpu.print %1 {format = "\\q"}\n'), "line 2: bad string"),
])
def test_parse_errors_name_the_problem(text, message):
    with pytest.raises(ParseError, match=message.replace("(", r"\(").replace("$", r"\$")):
        parse_module(text)
