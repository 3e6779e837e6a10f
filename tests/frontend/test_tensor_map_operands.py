"""A tensor map where a number or a pointer is wanted (a helper gave SplitKEpilogue one for its out, this session):
each operator, conversion, load, store, index and builtin that met one failed inside the typing rules ("'TensorMapType'
object has no attribute 'is_signed'", "... 'bits'") or in the IR's verifier ("'arith.cast' op: casts tmap<...>"), or
compiled an asm operand 'r' of its 64-bit address. Each is now an error at the user's line naming the operation, what
it takes and the tensor map found. A choice between two tensor maps of one type still compiles (TMA copies take it),
and so does an asm operand 'l'. Iterating an skc array (shared memory) is an error saying so: it ended at "index 16
is out of range" (and one of a run-time shape never ended). A name given another tensor map under a run-time `if` or
loop said it "holds different compile-time values" (hint: "use a run-time value") of two run-time tensor maps; it now
says that no variable holds a tensor map, and to choose one with skc.where."""
import pytest

import skc
from skc import ir
from helpers import line_of

F32 = skc.Ptr[skc.f32]
MAP = ir.TensorMapType(ir.f32, (16, 16), 0)
OTHER_MAP = ir.TensorMapType(ir.f32, (8, 16), 0)


@skc.kernel(block=32)
def misuse(t: skc.TensorMap, u: skc.TensorMap, x: F32, n: skc.i32, which: skc.constexpr):
    if which == "add":
        x[0] = t + 1   # HERE add
    if which == "radd":
        x[0] = n + t   # HERE radd
    if which == "pointer_minus":
        x[0] = t - x   # HERE pointer_minus
    if which == "pointer_plus":
        y = x + t   # HERE pointer_plus
    if which == "mul":
        x[0] = t * 2   # HERE mul
    if which == "floordiv":
        x[0] = t // n   # HERE floordiv
    if which == "pow":
        x[0] = t ** 2   # HERE pow
    if which == "shift":
        x[0] = t << 1   # HERE shift
    if which == "and":
        x[0] = t & 1   # HERE and
    if which == "augmented":
        z = t
        z += 1   # HERE augmented
    if which == "less":
        x[0] = t < 1   # HERE less
    if which == "reversed_less":
        x[0] = n < t   # HERE reversed_less
    if which == "equal_pointer":
        x[0] = t == x   # HERE equal_pointer
    if which == "neg":
        x[0] = -t   # HERE neg
    if which == "invert":
        x[0] = ~t   # HERE invert
    if which == "not":
        x[0] = not t   # HERE not
    if which == "abs":
        x[0] = abs(t)   # HERE abs
    if which == "cast":
        x[0] = skc.f32(t)   # HERE cast
    if which == "int":
        x[0] = int(t)   # HERE int
    if which == "bitcast":
        x[0] = skc.bitcast(t, skc.i64)   # HERE bitcast
    if which == "if":
        if t:   # HERE if
            x[0] = 1.0
    if which == "and_or":
        x[0] = t and n   # HERE and_or
    if which == "choice":
        x[0] = t if n > 0 else 0   # HERE choice
    if which == "where_condition":
        x[0] = skc.where(t, 1, 2)   # HERE where_condition
    if which == "where_maps_of_two_types":
        skc.hopper.tma_prefetch(skc.where(n > 0, t, u))   # HERE where_maps_of_two_types
    if which == "where_lanes":
        skc.hopper.tma_prefetch(skc.where(skc.load(x, width=2) > 0, t, t))   # HERE where_lanes
    if which == "max":
        x[0] = max(t, n)   # HERE max
    if which == "minimum":
        x[0] = skc.minimum(t, 1.0)   # HERE minimum
    if which == "index":
        x[0] = t[0]   # HERE index
    if which == "store_index":
        t[0] = 1.0   # HERE store_index
    if which == "load":
        x[0] = skc.load(t)   # HERE load
    if which == "store_value":
        x[n] = t   # HERE store_value
    if which == "atomic_value":
        skc.atomic_add(x, t)   # HERE atomic_value
    if which == "sqrt":
        x[0] = skc.sqrt(t)   # HERE sqrt
    if which == "fma":
        x[0] = skc.fma(t, 1.0, 2.0)   # HERE fma
    if which == "warp_sum":
        x[0] = skc.warp_sum(t)   # HERE warp_sum
    if which == "block_sum":
        x[0] = skc.block_sum(t)   # HERE block_sum
    if which == "shuffle":
        x[0] = skc.shfl_xor(t, 1)   # HERE shuffle
    if which == "vector":
        v = skc.vector(t, t)   # HERE vector
    if which == "print":
        print(t)   # HERE print
    if which == "asm_r":
        skc.asm("mov.u32 $0, $1;", t, constraints="=r,r", dtype=skc.u32)   # HERE asm_r


CASES = {
    "add": "'+' takes numbers, or a pointer and an integer, found a tensor map",
    "radd": "'+' takes numbers, or a pointer and an integer, found a tensor map",
    "pointer_minus": "'-' takes numbers, or a pointer and an integer, found a tensor map",
    "pointer_plus": "'+' takes numbers, or a pointer and an integer, found a tensor map",
    "mul": "'*' takes numbers, found a tensor map",
    "floordiv": "'//' takes numbers, found a tensor map",
    "pow": "'**' takes numbers, found a tensor map",
    "shift": "'<<' takes numbers, found a tensor map",
    "and": "'&' takes numbers, found a tensor map",
    "augmented": "'+' takes numbers, or a pointer and an integer, found a tensor map",
    "less": "'<' takes numbers, or two pointers, found a tensor map",
    "reversed_less": "'<' takes numbers, or two pointers, found a tensor map",
    "equal_pointer": "'==' takes numbers, or two pointers, found a tensor map",
    "neg": "unary '-' takes a number, found a tensor map",
    "invert": "'~' takes a number, found a tensor map",
    "not": "'not' takes a number or a pointer, found a tensor map",
    "abs": "abs() takes a number, found a tensor map",
    "cast": "cannot convert a tensor map (tmap<f32, 16x16, swizzle=0>) to f32: it is no number",
    "int": "cannot convert a tensor map (tmap<f32, 16x16, swizzle=0>) to i32: it is no number",
    "bitcast": "cannot bitcast a tensor map (tmap<f32, 16x16, swizzle=0>) to i64",
    "if": "a condition (if, while, and / or / not, a mask) takes a number or a pointer, found a tensor map",
    "and_or": "a condition (if, while, and / or / not, a mask) takes a number or a pointer, found a tensor map",
    "choice": "a choice between a tensor map (tmap<f32, 16x16, swizzle=0>) and 0: it chooses between numbers, "
              "pointers, or tensor maps of one type",
    "where_condition": "a choice's condition takes a number or a pointer, found a tensor map",
    "where_maps_of_two_types": "a choice between a tensor map (tmap<f32, 16x16, swizzle=0>) and a tensor map "
                               "(tmap<f32, 8x16, swizzle=0>)",
    "where_lanes": "a choice of tensor map takes a scalar condition, found vec<2xi1>",
    "max": "max() takes numbers, found a tensor map",
    "minimum": "min() takes numbers, found a tensor map",
    "index": "cannot index a tensor map (tmap<f32, 16x16, swizzle=0>): only pointers and vectors can be indexed",
    "store_index": "cannot assign to an element of a tensor map (tmap<f32, 16x16, swizzle=0>)",
    "load": "expected a pointer, found a tensor map (tmap<f32, 16x16, swizzle=0>)",
    "store_value": "cannot store a tensor map (tmap<f32, 16x16, swizzle=0>) into an element of type f32",
    "atomic_value": "cannot store a tensor map (tmap<f32, 16x16, swizzle=0>) into a place of type f32",
    "sqrt": "cannot convert a tensor map (tmap<f32, 16x16, swizzle=0>) to f32",
    "fma": "cannot convert a tensor map (tmap<f32, 16x16, swizzle=0>) to f32",
    "warp_sum": "a reduction (sum) takes a number, found a tensor map",
    "block_sum": "a reduction (sum) takes a number, found a tensor map",
    "shuffle": "shfl_xor takes a number, found a tensor map",
    "vector": "skc.vector takes numbers, found a tensor map",
    "print": "print() takes numbers, pointers and compile-time values, found a tensor map",
    "asm_r": "asm constraint 'r' holds 32-bit values, but its operand has 64 bits",
}


@pytest.mark.parametrize("which", list(CASES))
def test_a_tensor_map_where_a_number_is_wanted_is_an_error_at_the_users_line(which):
    with pytest.raises(skc.CompileError) as info:
        misuse.compile(MAP, OTHER_MAP if which == "where_maps_of_two_types" else MAP, F32, skc.i32, which,
                       target="sm_90a")
    text = str(info.value)
    first = text.splitlines()[0]
    assert f":{line_of(misuse, f'# HERE {which}')}:" in first, text
    assert CASES[which] in first, text
    if which not in ("asm_r", "where_lanes"):
        assert "a tensor map (skc.TensorMap) is a TMA descriptor" in text   # the hint


@skc.kernel(block=32)
def chosen_map(t: skc.TensorMap, u: skc.TensorMap, x: skc.Ptr[skc.u64], n: skc.i32):
    skc.hopper.tma_prefetch(skc.where(n > 0, t, u))
    skc.hopper.tma_prefetch(t if n > 1 else u)
    x[0] = skc.asm("mov.b64 $0, $1;", t, constraints="=l,l", dtype=skc.u64)


def test_a_choice_between_tensor_maps_of_one_type_and_an_asm_operand_l_still_compile():
    ptx = chosen_map.compile(MAP, MAP, skc.Ptr[skc.u64], skc.i32, target="sm_90a").asm("ptx")
    assert ptx.count("prefetch.tensormap") == 2 and "selp.b64" in ptx


@skc.kernel(block=32)
def iterate_shared(x: F32, which: skc.constexpr):
    a = skc.shared((16,), skc.f32)
    if which == "loop":
        for v in a:   # HERE loop
            x[0] = v
    else:
        x[0] = sum(a)   # HERE sum


@pytest.mark.parametrize("which", ["loop", "sum"])
def test_iterating_a_shared_array_is_an_error_saying_so(which):
    with pytest.raises(skc.CompileError, match="an skc array is not iterated") as info:
        iterate_shared.compile(F32, which, target="sm_90a")
    assert f":{line_of(iterate_shared, f'# HERE {which}')}:" in str(info.value).splitlines()[0]


@skc.kernel(block=32)
def rebound_map(t: skc.TensorMap, u: skc.TensorMap, n: skc.i32, which: skc.constexpr):
    m = t
    if which == "if":
        if n > 0:
            m = u
    else:
        for i in range(n):
            m = u
    skc.hopper.tma_prefetch(m)   # HERE read


@pytest.mark.parametrize("which, message", [
    ("if", "'m' holds different tensor maps (or a tensor map and another value) after the branches of a run-time "
           "`if`: a tensor map cannot be held in a variable"),
    ("loop", "'m' changes to another tensor map inside a run-time loop: a tensor map cannot be held in a variable")])
def test_a_name_given_another_tensor_map_under_run_time_control_says_to_choose_one(which, message):
    """They said 'holds different compile-time values' ('use a run-time value'), of two run-time tensor maps."""
    with pytest.raises(skc.CompileError) as info:
        rebound_map.compile(MAP, MAP, skc.i32, which, target="sm_90a")
    text = str(info.value)
    assert message in text and "m = skc.where(cond, t, u)" in text, text
    assert f":{line_of(rebound_map, '# HERE read')}:" in text.splitlines()[0]
