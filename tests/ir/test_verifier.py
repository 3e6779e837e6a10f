"""Invalid IR is rejected with the verifier's message: the op, what was expected, what was found."""
import pytest

from skc.diagnostics import Location, VerificationError
from skc.ir import Builder, Function, Module, i32, parse_module, verify
from skc.ir.types import PointerType

HEAD = ("kernel @k(%0: ptr<global>, %1: i32, %2: f32, %3: i1, %4: vec<4xf32>, %5: i64, %6: ptr<shared>) "
        "{shared_bytes = 256} {\n")


def kernel(body: str) -> str:
    return HEAD + body + "}\n"


def rejects(body: str) -> str:
    """The verifier's message for a kernel with this body (which must parse)."""
    module = parse_module(kernel(body))
    with pytest.raises(VerificationError) as caught:
        verify(module)
    return str(caught.value)


@pytest.mark.parametrize("body, message", [
    # arith
    ("%7 = arith.add %1, %5 : i32", "'arith.add' op: operand 1 is i64, expected i32 like the result"),
    ("%7 = arith.and %2, %2 : f32", "'arith.and' op: not defined on f32 (takes int types)"),
    ("%7 = math.exp %1 : i32", "'math.exp' op: not defined on i32 (takes float types)"),
    ("%7 = arith.add %1 : i32", "'arith.add' op: expected 2 operands, found 1"),
    ("%7 = arith.constant {value = 1.5} : i32", "'arith.constant' op: value of an integer constant must be an int, found 1.5"),
    ("%7 = arith.constant {value = true} : i1", "'arith.constant' op: value must be an int or a float, found True"),
    ("%7 = arith.constant : i32", "'arith.constant' op: missing attribute 'value'"),
    ("%7 = arith.constant {value = 1} : ptr<global>", "'arith.constant' op: result must be a scalar or vector, found ptr<global>"),
    ('%7 = arith.cmp %1, %5 {pred = "lt"} : i1', "'arith.cmp' op: operands are i32 and i64, expected one type"),
    ('%7 = arith.cmp %1, %1 {pred = "ult"} : i1', "'arith.cmp' op: predicate must be one of eq, ne, lt, le, gt, ge, found 'ult'"),
    ('%7 = arith.cmp %4, %4 {pred = "eq"} : i1', "'arith.cmp' op: result is i1, expected vec<4xi1>"),
    ("%7 = arith.select %1, %1, %1 : i32", "'arith.select' op: condition is i32, expected i1"),
    ("%7 = arith.select %3, %1, %2 : i32", "'arith.select' op: choices are i32 and f32 giving i32, expected one type"),
    ("%7 = arith.cast %4 : f32", "'arith.cast' op: cannot cast vec<4xf32> to f32: shapes differ"),
    ("%7 = arith.bitcast %1 : i64", "'arith.bitcast' op: cannot bitcast i32 (32 bits) to i64 (64 bits)"),
    # memory
    ("%7 = ptr.offset %0, %2 {elem = f32} : ptr<global>", "'ptr.offset' op: offset is f32, expected an integer"),
    ("%7 = ptr.offset %1, %1 {elem = f32} : ptr<global>", "'ptr.offset' op: address is i32, expected a pointer"),
    ("%7 = ptr.cast %0 : ptr<shared>", "'ptr.cast' op: casts ptr<global> to ptr<shared>; one side must be ptr<generic>"),
    ("%7 = mem.load %0, %1 : f32", "'mem.load' op: mask is i32, expected i1"),
    ("%7 = mem.load %0, %3, %1 : f32", "'mem.load' op: other value is i32, expected f32"),
    ("%7 = mem.load %0 : vec<8xf32>", "'mem.load' op: accesses 32 bytes (vec<8xf32>); one access moves 1, 2, 4, 8 or 16 bytes"),
    ("mem.store %0", "'mem.store' op: expected an address, a value and an optional mask, found 1 operands"),
    ('%7 = mem.atomic %0, %3 {op = "add"} : i1', "'mem.atomic' op: atomics take 16-, 32- or 64-bit scalars, found i1"),
    ('%7 = mem.atomic %0, %1 {op = "nand"} : i32', "'mem.atomic' op: op must be one of add, min, max, and, or, xor, xchg, found 'nand'"),
    ("%7 = mem.atomic_cas %0, %2, %2 : f32", "'mem.atomic_cas' op: compare-and-swap takes 32- or 64-bit integers, found f32"),
    ("%7 = mem.shared {offset = 0, bytes = 4} : ptr<global>", "'mem.shared' op: result is ptr<global>, expected ptr<shared>"),
    ("%7 = var.alloc : i32", "'var.alloc' op: result is i32, expected var<...>"),
    ("%7 = var.alloc : var<i32>\n  var.store %7, %2", "'var.store' op: stores f32 into var<i32>"),
    ("%7 = var.alloc : var<i32>\n  %8 = var.load %7 : f32", "'var.load' op: loads f32 from var<i32>"),
    ("%7 = vec.extract %4 {index = 4} : f32", "'vec.extract' op: index 4 out of range for vec<4xf32>"),
    ("%7 = vec.from %2, %2 : vec<4xf32>", "'vec.from' op: builds vec<4xf32> from 2 elements"),
    ("%7 = vec.splat %1 : vec<4xf32>", "'vec.splat' op: splats i32 into vec<4xf32>"),
    ("%7 = vec.insert %4, %1 {index = 0} : vec<4xf32>", "'vec.insert' op: inserts i32 into vec<4xf32> giving vec<4xf32>"),
    # gpu
    ("%7 = gpu.thread_id {dim = 3} : i32", "'gpu.thread_id' op: dim must be 0, 1 or 2, found 3"),
    ("%7 = gpu.block_id {dim = 0} : i64", "'gpu.block_id' op: result is i64, expected i32"),
    ("gpu.barrier {id = 16}", "'gpu.barrier' op: barrier id must be within 0..15, found 16"),
    ("gpu.barrier {threads = 100}", "'gpu.barrier' op: thread count must be a positive multiple of 32, found 100"),
    ('%7 = gpu.shuffle %2, %5 {mode = "xor"} : f32', "'gpu.shuffle' op: lane is i64, expected i32"),
    ('%7 = gpu.vote %3 {mode = "ballot"} : i1', "'gpu.vote' op: result is i1, expected u32"),
    ('gpu.assert %1 {message = "m"}', "'gpu.assert' op: condition is i32, expected i1"),
    # attributes the backends and the interpreter read as a string or a type (an AttributeError or TypeError there)
    ("gpu.assert %3 {message = 5}", "'gpu.assert' op: message must be a string, found 5"),
    ("gpu.print %1 {format = 5}", "'gpu.print' op: format must be a string, found 5"),
    ('%7 = ptr.offset %0, %1 {elem = "f32"} : ptr<global>', "'ptr.offset' op: elem must be a type, found 'f32'"),
    ('%7 = gpu.asm {code = "", constraints = "=l"} : ptr<global>', "'gpu.asm' op: results must be scalars or vectors, found ptr<global>"),
    # async
    ("mbarrier.arrive %6 {count = 0}", "'mbarrier.arrive' op: count must be an int from 1 to 1048575, found 0"),
    ("tma.wait {pending = -1, read = true}", "'tma.wait' op: pending must be an int >= 0 (the groups left unfinished), found -1"),
    ("wgmma.wait {pending = -1}", "'wgmma.wait' op: pending must be an int >= 0"),
    # control flow
    ("scf.if %1 {\n  } {\n  }", "'scf.if' op: condition is i32, expected i1"),
    ("scf.if %3 {\n  }", "'scf.if' op: expected 2 regions, found 1"),
    ('scf.for %1, %5, %1 {label = "L"} { ^(%7: i32)\n  }', "'scf.for' op: bounds are i32 and i64, expected one type"),
    ('scf.for %2, %2, %2 {label = "L"} { ^(%7: f32)\n  }', "'scf.for' op: bounds are f32, expected an integer type"),
    ('scf.for %1, %1, %1 {label = "L"} {\n  }', "'scf.for' op: body must take one i32 induction variable"),
    ("scf.loop {\n  }", "'scf.loop' op: missing attribute 'label'"),
])
def test_op_checks(body, message):
    assert message in rejects("  " + body + "\n")


# -- SSA dominance -----------------------------------------------------------------------------
def test_value_used_outside_its_region():
    message = rejects("  scf.if %3 {\n    %7 = arith.add %1, %1 : i32\n  } {\n  }\n  %8 = arith.mul %7, %1 : i32\n")
    assert "'arith.mul' op: operand 0 (i32) is used where its definition is not visible" in message


def test_value_used_in_a_sibling_region():
    message = rejects("  scf.if %3 {\n    %7 = arith.add %1, %1 : i32\n  } {\n    %8 = arith.neg %7 : i32\n  }\n")
    assert "'arith.neg' op: operand 0 (i32) is used where its definition is not visible" in message


def test_loop_variable_used_after_the_loop():
    message = rejects('  scf.for %1, %1, %1 {label = "L"} { ^(%7: i32)\n  }\n  %8 = arith.add %7, %7 : i32\n')
    assert "'arith.add' op: operand 0 (i32) is used where its definition is not visible" in message


def _function_using_before_definition() -> Module:
    # The parser cannot write this (it resolves names as it reads), so build it: the add reads the mul's result.
    fn = Function("k", [i32])
    builder = Builder(fn)
    add = builder.create("arith.add", (fn.args[0], fn.args[0]), (i32,))
    mul = builder.create("arith.mul", (fn.args[0], fn.args[0]), (i32,))
    add.operands[1] = mul.result
    return Module([fn])


def test_value_used_before_its_definition():
    with pytest.raises(VerificationError, match=r"'arith.add' op: operand 1 \(i32\) is used where its definition is not visible"):
        verify(_function_using_before_definition())


def test_op_using_its_own_result():
    fn = Function("k", [i32])
    add = Builder(fn).create("arith.add", (fn.args[0], fn.args[0]), (i32,))
    add.operands[0] = add.result
    with pytest.raises(VerificationError, match=r"'arith.add' op: operand 0 \(i32\) is used where"):
        verify(fn)


def test_op_whose_parent_is_another_region():
    fn = Function("k", [PointerType("global")])
    builder = Builder(fn)
    barrier = builder.create("gpu.barrier")
    barrier.parent = None
    with pytest.raises(VerificationError, match="'gpu.barrier' op: is listed in a region that is not its parent"):
        verify(fn)


# -- jumps and labels --------------------------------------------------------------------------
def test_break_to_a_label_that_does_not_enclose_it():
    message = rejects('  scf.loop {label = "A"} {\n    scf.break {label = "A"}\n  }\n'
                      '  scf.loop {label = "B"} {\n    scf.break {label = "A"}\n  }\n')
    assert "'scf.break' op: jumps to label 'A', which does not enclose it" in message


def test_break_to_an_unknown_label():
    assert "'scf.break' op: jumps to label 'nowhere', which does not enclose it" in rejects(
        '  scf.break {label = "nowhere"}\n')


def test_continue_of_a_block():
    message = rejects('  scf.loop {label = "L"} {\n    scf.block {label = "B"} {\n'
                      '      scf.continue {label = "B"}\n    }\n  }\n')
    assert "'scf.continue' op: continues 'B', which is a scf.block, not a loop" in message


def test_continue_of_an_enclosing_loop_through_a_block_is_fine():
    verify(parse_module(kernel('  scf.loop {label = "L"} {\n    scf.block {label = "B"} {\n'
                               '      scf.continue {label = "L"}\n    }\n  }\n')))


def test_duplicate_labels():
    message = rejects('  scf.block {label = "X"} {\n  }\n  scf.loop {label = "X"} {\n    scf.break {label = "X"}\n  }\n')
    assert "'scf.loop' op: label 'X' is used by two constructs" in message


def test_label_must_be_a_string():
    assert "'scf.block' op: label must be a string, found 5" in rejects("  scf.block {label = 5} {\n  }\n")


def test_ops_after_a_terminator():
    message = rejects('  scf.loop {label = "L"} {\n    scf.break {label = "L"}\n    gpu.barrier\n  }\n')
    assert "'gpu.barrier' op: unreachable: follows 'scf.break' in the same region" in message
    assert "'arith.add' op: unreachable: follows 'func.return'" in rejects(
        "  func.return\n  %7 = arith.add %1, %1 : i32\n")


def test_region_arguments_only_where_the_op_defines_them():
    message = rejects('  scf.loop {label = "L"} { ^(%7: i32)\n    scf.break {label = "L"}\n  }\n')
    assert "'scf.loop' op: regions take no arguments (nothing would define them)" in message


# -- shared memory -----------------------------------------------------------------------------
def test_shared_buffer_beyond_shared_bytes():
    verify(parse_module(kernel("  %7 = mem.shared {offset = 128, bytes = 128} : ptr<shared>\n")))
    message = rejects("  scf.if %3 {\n    %7 = mem.shared {offset = 128, bytes = 129} : ptr<shared>\n  } {\n  }\n")
    assert "'mem.shared' op: buffer at offset 128 of 129 bytes exceeds the function's shared_bytes = 256" in message


@pytest.mark.parametrize("value", ['"x"', "-4", "true"])
def test_shared_bytes_that_is_no_count(value):
    # a string compared with the buffers' ends was a TypeError escaping the verifier
    module = parse_module(f"kernel @k() {{shared_bytes = {value}}} {{\n  %0 = mem.shared {{offset = 0, bytes = 4}} : "
                          "ptr<shared>\n}\n")
    with pytest.raises(VerificationError, match="kernel @k: shared_bytes must be a non-negative int"):
        verify(module)


def test_shared_buffer_without_shared_bytes():
    module = parse_module("kernel @k() {\n  %0 = mem.shared {offset = 0, bytes = 4} : ptr<shared>\n}\n")
    with pytest.raises(VerificationError, match="exceeds the function's shared_bytes = 0"):
        verify(module)


@pytest.mark.parametrize("attrs, found", [("offset = -8, bytes = 8", "offset must be a non-negative int, found -8"),
                                          ('offset = 0, bytes = "4"', "bytes must be a non-negative int, found '4'")])
def test_shared_buffer_bounds_are_non_negative_ints(attrs, found):
    assert f"'mem.shared' op: {found}" in rejects(f"  %7 = mem.shared {{{attrs}}} : ptr<shared>\n")


# -- malformed attributes and the message's form ----------------------------------------------
def test_malformed_attribute_names_the_op_instead_of_crashing():
    message = rejects('  %7 = vec.extract %4 {index = "first"} : f32\n')
    assert "'vec.extract' op: malformed operands or attributes (TypeError:" in message


def test_message_points_at_the_source_location():
    module = parse_module(kernel('  %7 = arith.add %1, %5 : i32 loc("user_kernel.py":7:4)\n'))
    with pytest.raises(VerificationError) as caught:
        verify(module)
    assert str(caught.value).startswith("user_kernel.py:7:5: error: 'arith.add' op: operand 1 is i64")
    assert caught.value.loc == Location("user_kernel.py", 7, 4)


def test_verify_takes_modules_and_functions_only():
    with pytest.raises(VerificationError, match="expected a function, found str"):
        verify(Module(["not a function"]))
