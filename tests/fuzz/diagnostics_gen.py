"""What skc says about code it does not take: a small valid kernel with one snippet of Python put in, drawn from
every statement and expression kind Python has (lambda, comprehensions, walrus, match, try, with, global, del,
yield, starred, f-strings, slices, chained and identity comparisons, augmented assignment to attributes and
subscripts, tuple targets, nested defs, calls of plain Python functions and methods, recursion, wrong arguments to
builtins and @skc.func helpers, annotations that are no type, modules as values, shadowed builtins, constexpr
misuse, branches of two types, out-of-range constants, negative shifts, division by a constant zero, indexing a
scalar, calling a pointer). The snippet stands in one of several places (the kernel's body, a run-time `if` or its
`else`, a run-time loop, an @skc.func helper), with its operands drawn from run-time and compile-time values.

Each case is compiled for the interpreter and for sm_90a (PTX, no GPU) and judged:
  refused  an skc error (SkcError) whose first line is FILE:LINE of the snippet's marked line in the user's file,
           with no foreign exception's name in its text;
  compiles the interpreter's result is the one the same source gives as plain Python (or Python cannot run it,
           as where it calls skc's own builtins);
  BAD      anything else: a foreign exception, an skc error at skc's own files, at another line or with a foreign
           exception in its text, an answer other than Python's, code Python refuses that skc runs, the two targets
           disagreeing on whether the kernel compiles.

    python tests/fuzz/diagnostics_gen.py --seed 1 --count 2000      # the classes of BAD outcomes, one example each
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import importlib.util
import os
import re
import signal
import sys
import tempfile
import warnings

import numpy as np

PRELUDE = '''import math
import numpy as np
import skc


@skc.func
def twice(v):
    return v * 2


@skc.func
def fact(v):
    return 1 if v <= 1 else v * fact(v - 1)


@skc.func
def forever(v):
    return forever(v - 1)


def plain(v):
    return v + 1


class Box:
    def __init__(self, v):
        self.v = v

    def grow(self, w):
        return self.v + w


BOX = Box(4)
TABLE = (1, 2, 3, 4)
'''

KERNEL_HEAD = '''
@skc.kernel
def kernel(of: skc.Ptr[skc.f32], f: skc.Ptr[skc.f32], n: skc.i32, C: skc.constexpr):
    a = f[0]
    b = n
    k5 = 5
    t = (1, 2, 3)
'''

N, CONST = 7, 3
F_VALUES = (1.5, 2.5, -0.5, 4.0)

# Operands: run-time int (b), compile-time ints, run-time float (a), compile-time floats.
INTS = ("b", "C", "3", "k5", "(b + 1)", "TABLE[1]")
FLOATS = ("a", "1.5", "(a * 2.0)", "f[1]")

# Snippets: lines (4 spaces a level); `@` marks the line an error must point at (else the first); `<I>` an int
# operand, `<F>` a float one, `<X>` either. Each leaves its result in `r`.
SNIPPETS = {
    # -- expressions Python has
    "lambda": ["g = lambda v: v + <X>", "@r = g(<X>)"],
    "lambda_runtime_capture": ["g = lambda v: v * b", "@r = g(<I>)"],
    "listcomp": ["r = sum([v * <I> for v in range(3)])"],
    "listcomp_runtime_range": ["r = sum([v for v in range(<I>)])"],
    "genexp": ["r = sum(v for v in (1, 2, <X>))"],
    "setcomp": ["r = len({v % 2 for v in range(4)})"],
    "dictcomp_index": ["r = {v: v * 2 for v in range(3)}[<I> % 3]"],
    "dict_runtime_key": ["d = {1: 2, 3: 4}", "@r = d[<I>]"],
    "walrus": ["r = (w := <X>) + w"],
    "walrus_in_if": ["r = 0", "@if (w := <I>) > 2:", "    r = w"],
    "fstring": ["s = f\"{<X>}\"", "@r = len(s)"],
    "fstring_print": ["print(f\"value {<X>}\")", "r = 1"],
    "string_plus_number": ["r = \"s\" + <X>"],
    "none_plus_number": ["r = None + <X>"],
    "slice_step": ["r = t[::-1][0] + <I>"],
    "slice_runtime": ["@r = t[<I>::2][0]"],
    "slice_pointer": ["@r = f[0:2]"],
    "slice_pointer_step": ["@r = f[::2][0]"],
    "chained_compare": ["r = int(0 < <X> < 10)"],
    "chained_compare_mixed": ["r = int(<F> < <I> <= C)"],
    "is_none": ["r = int(<X> is None)"],
    "is_not_literal": ["r = int(<I> is not 3)"],
    "in_tuple": ["r = int(<X> in t)"],
    "not_in_pointer": ["r = int(<X> not in f)"],
    "starred_call": ["r = max(*t) + <I>"],
    "starred_target": ["p, *rest = t", "r = p + len(rest)"],
    "starred_runtime": ["@p, *rest = <X>", "r = p"],
    "starred_helper": ["r = twice(*t[:1])"],
    "ifexp_types": ["r = <I> if b > 3 else <F>"],
    "ifexp_tuple": ["@r = (1, 2) if b > 3 else 3", "r = 1"],
    "boolop_values": ["r = <I> or <F>"],
    "boolop_and": ["r = <X> and <X>"],
    "unary_not_pointer": ["r = int(not f)"],
    "matmul": ["r = <X> @ <X>"],
    "power_negative": ["r = <I> ** -1"],
    "power_runtime": ["r = <I> ** b"],
    "zero_power_negative": ["r = 0 ** -1"],
    "float_bitwise": ["r = <F> & <I>"],
    "float_invert": ["r = ~<F>"],
    "float_shift": ["r = <F> << 1"],
    "tuple_plus_int": ["r = t + <I>"],
    "tuple_times_runtime": ["@r = len(t * <I>)"],
    "list_times_runtime": ["@r = len([0] * <I>)"],
    "index_tuple_runtime": ["r = t[<I> % 3]"],
    "index_tuple_out_of_range": ["r = t[5]"],
    "index_tuple_negative": ["r = t[-4]"],
    "index_tuple_float": ["r = t[1.0]"],
    "index_pointer_float": ["r = f[<F>]"],
    "index_pointer_tuple": ["r = f[0, 1]"],
    "index_pointer_string": ["r = f[\"x\"]"],
    "pointer_plus_pointer": ["r = f + f"],
    "pointer_times": ["r = f * 2"],
    "pointer_compare": ["r = int(f < f)"],
    "pointer_negate": ["r = -f"],
    "pointer_to_float": ["r = float(f)"],
    "pointer_as_value": ["r = f"],
    "attribute_of_int": ["r = <I>.foo"],
    "attribute_of_pointer": ["r = f.foo"],
    "attribute_of_skc": ["r = skc.foo(<X>)"],
    "pointer_shape": ["r = f.shape[0]"],
    "undefined_name": ["r = not_defined_anywhere + <X>"],
    "used_before_assignment": ["r = later + 1", "later = 2"],
    # -- statements
    "match": ["@match <I>:", "    case 1:", "        r = 1", "    case _:", "        r = 2"],
    "try_except": ["@try:", "    r = <X>", "except ValueError:", "    r = 0"],
    "try_finally": ["@try:", "    r = <X>", "finally:", "    pass"],
    "with_number": ["@with <X>:", "    r = 1"],
    "with_open": ["@with open(\"/dev/null\") as handle:", "    r = 1"],
    "with_pointer": ["@with f as g:", "    r = 1"],
    "global": ["global TABLE", "r = 1"],
    "global_assign": ["global BOX", "BOX = <X>", "r = 1"],
    "nonlocal_nested": ["w = <X>", "def g():", "    @nonlocal w", "    w = 2", "g()", "r = w"],
    "del_then_use": ["w = <X>", "del w", "@r = w"],
    "del_subscript": ["@del f[0]", "r = 1"],
    "del_attribute": ["@del BOX.v", "r = 1"],
    "del_param": ["del a", "@r = a"],
    "assert_true": ["assert <X> > -100, \"too small\"", "r = 1"],
    "assert_false_constant": ["assert C > 100, \"C too small\"", "r = 1"],
    "assert_runtime_message": ["@assert <X> > -100, f\"got {b}\"", "r = 1"],
    "assert_tuple": ["assert (b, \"always true\")", "r = 1"],
    "yield": ["@yield <X>", "r = 1"],
    "yield_from": ["@yield from t", "r = 1"],
    "await": ["@await twice(<X>)", "r = 1"],
    "async_def": ["@async def g():", "    return 1", "r = 1"],
    "class_def": ["@class Local:", "    pass", "r = 1"],
    "import": ["@import os", "r = 1"],
    "import_from": ["@from math import sqrt", "r = 1"],
    "aug_attribute": ["BOX.v += <I>", "r = BOX.v"],
    "aug_attribute_pointer": ["@f.x += 1", "r = 1"],
    "aug_subscript_tuple": ["@t[0] += 1", "r = 1"],
    "aug_subscript_list": ["lst = [1, 2]", "lst[0] += <I>", "r = lst[0]"],
    "aug_subscript_pointer": ["f[1] += <X>", "r = f[1]"],
    "aug_subscript_pointer_runtime_index": ["f[b - 6] -= <X>", "r = f[1]"],
    "aug_floordiv_zero": ["w = <I>", "@w //= 0", "r = w"],
    "aug_shift_negative": ["w = <I>", "@w <<= -1", "r = w"],
    "assign_attribute_int": ["@b.x = 1", "r = 1"],
    "assign_attribute_pointer": ["@f.x = 1", "r = 1"],
    "assign_subscript_int": ["w = <I>", "@w[0] = 1", "r = w"],
    "assign_pointer_tuple": ["@f[1] = t", "r = 1"],
    "assign_pointer_string": ["@f[1] = \"x\"", "r = 1"],
    "assign_pointer_none": ["@f[1] = None", "r = 1"],
    "assign_constexpr": ["@C = <I>", "r = C"],
    "assign_pointer_param": ["@f = <X>", "r = 1"],
    "tuple_target": ["p, q = <I>, <F>", "r = p + q"],
    "tuple_target_from_int": ["@p, q = <I>", "r = p"],
    "tuple_target_too_many": ["@p, q = t", "r = p"],
    "tuple_target_nested": ["(p, q), s = (1, <I>), <F>", "r = p + q + s"],
    "tuple_target_pointer": ["@p, q = f", "r = p"],
    "tuple_target_attribute": ["BOX.v, w = <I>, 2", "r = BOX.v + w"],
    "nested_def": ["def g(v):", "    return v + <X>", "r = g(<I>)"],
    "nested_def_recursive": ["def g(v):", "    return 1 if v <= 0 else g(v - 1)", "@r = g(<I>)"],
    "nested_def_default_runtime": ["def g(v, w=<X>):", "    return v + w", "r = g(1)"],
    "nested_def_decorated": ["@@twice", "def g(v):", "    return v", "r = 1"],
    "nested_def_kwargs": ["def g(*args, **kwargs):", "    return len(args) + len(kwargs)", "r = g(<X>, w=<X>)"],
    # -- calls
    "plain_function": ["r = plain(<X>)"],
    "plain_function_constant": ["r = plain(C)"],
    "math_sqrt": ["r = math.sqrt(<F>)"],
    "math_floor": ["r = math.floor(<F>)"],
    "math_pi": ["r = math.pi * <X>"],
    "numpy_call": ["r = np.sqrt(<X>)"],
    "numpy_zeros": ["r = np.zeros(3)[0] + <X>"],
    "builtin_abs": ["r = abs(<X>)"],
    "builtin_round": ["r = round(<F>)"],
    "builtin_round_digits": ["r = round(<F>, 1)"],
    "builtin_int": ["r = int(<F>)"],
    "builtin_divmod": ["r = divmod(<I>, 3)[0]"],
    "builtin_pow": ["r = pow(<I>, 2)"],
    "builtin_pow_mod": ["r = pow(<I>, 2, 5)"],
    "builtin_sum_tuple": ["r = sum(t)"],
    "builtin_len_pointer": ["r = len(f)"],
    "builtin_len_int": ["r = len(<I>)"],
    "builtin_sorted": ["r = sorted(t)[0] + <X>"],
    "builtin_sorted_runtime": ["r = sorted((b, 1, 2))[0]"],
    "builtin_hash": ["r = hash(<X>) % 7"],
    "builtin_id": ["r = id(<X>) % 7"],
    "builtin_isinstance": ["r = int(isinstance(<X>, int))"],
    "builtin_str": ["r = int(str(<X>))"],
    "builtin_bool_pointer": ["r = int(bool(f))"],
    "builtin_min_empty": ["r = min()"],
    "builtin_max_one_runtime": ["r = max(<X>)"],
    "builtin_abs_two": ["r = abs(<X>, 1)"],
    "builtin_range_four": ["@for j in range(1, 2, 3, 4):", "    pass", "r = 1"],
    "builtin_input": ["r = input()"],
    "builtin_open": ["r = open(\"x\")"],
    "builtin_chr": ["r = len(chr(<I> + 60))"],
    "method_python_object": ["r = BOX.grow(<X>)"],
    "method_int": ["r = <I>.bit_length()"],
    "method_float": ["r = int(<F>.is_integer())"],
    "method_tuple": ["r = t.index(<I>)"],
    "method_tuple_count": ["r = t.count(<X>)"],
    "attribute_real": ["r = <X>.real"],
    "recursion_runtime": ["r = fact(<I>)"],
    "recursion_endless": ["r = forever(<X>)"],
    "helper_too_many": ["r = twice(<X>, 1)"],
    "helper_too_few": ["r = twice()"],
    "helper_bad_keyword": ["r = twice(w=<X>)"],
    "helper_keyword": ["r = twice(v=<X>)"],
    "skc_min_one": ["r = skc.min(<X>)"],
    "skc_thread_id_none": ["r = skc.thread_id()"],
    "skc_thread_id_two": ["r = skc.thread_id(0, 1)"],
    "skc_thread_id_keyword": ["r = skc.thread_id(axis=0)"],
    "skc_thread_id_runtime_axis": ["r = skc.thread_id(<I>)"],
    "skc_thread_id_axis_out_of_range": ["r = skc.block_id(3)"],
    "skc_sqrt_two": ["r = skc.sqrt(<X>, <X>)"],
    "skc_sqrt_keyword": ["r = skc.sqrt(x=<X>)"],
    "skc_exp_int": ["r = skc.exp(<I>)"],
    "skc_cast_two": ["r = skc.i32(<X>, 1)"],
    "skc_cast_none": ["r = skc.f32()"],
    "skc_cast_pointer": ["r = skc.f32(f)"],
    "skc_cast_tuple": ["r = skc.f32(t)"],
    "skc_atomic_one": ["skc.atomic_add(f)", "r = 1"],
    "skc_atomic_value_pointer": ["@skc.atomic_add(f, f)", "r = 1"],
    "skc_atomic_int_target": ["@skc.atomic_add(<I>, 1)", "r = 1"],
    "skc_static_range_runtime": ["r = 0", "@for j in skc.static_range(<I>):", "    r += j"],
    "skc_constexpr_runtime": ["r = skc.constexpr(<X>)"],
    "skc_ptr_call": ["r = skc.Ptr(<X>)"],
    "skc_syncthreads_argument": ["skc.syncthreads(<X>)", "r = 1"],
    # -- annotations
    "annotation_number": ["w: 3 = <X>", "r = w"],
    "annotation_module": ["w: skc = <X>", "r = w"],
    "annotation_runtime": ["w: b = <X>", "r = w"],
    "annotation_ptr_unsubscripted": ["w: skc.Ptr = <X>", "r = w"],
    "annotation_f32_pointer": ["@w: skc.f32 = f", "r = w"],
    "annotation_int": ["w: int = <F>", "r = w"],
    "annotation_string": ["w: \"f32\" = <X>", "r = w"],
    "annotation_i8_big": ["@w: skc.i8 = 300", "r = w"],
    "annotation_only": ["w: skc.i32", "@r = w"],
    # -- modules and shadowed builtins
    "module_plus": ["r = math + <X>"],
    "module_call": ["r = math(<X>)"],
    "module_value": ["@r = skc", "r = 1"],
    "module_as_index": ["r = t[math]"],
    "shadow_range": ["range = 3", "@for j in range(2):", "    pass", "r = 1"],
    "shadow_min": ["min = twice", "r = min(<X>)"],
    "shadow_int": ["int = skc.f32", "r = int(<I>)"],
    "shadow_len": ["def len(v):", "    return 9", "r = len(t)"],
    "shadow_print": ["print = 4", "@print(<X>)", "r = 1"],
    # -- constexpr and compile time
    "constexpr_if": ["r = 1 if C else 2"],
    "constexpr_index_tuple": ["r = t[C - 1]"],
    "constexpr_range": ["r = 0", "for j in skc.static_range(C):", "    r += j"],
    "constexpr_list_runtime_size": ["@w = [0] * <I>", "r = len(w)"],
    "constexpr_call": ["@r = C(<X>)"],
    "constexpr_iterate": ["r = 0", "@for j in C:", "    r += j"],
    # -- branches and loops of two types
    "branch_int_float": ["if b > 3:", "    w = <I>", "else:", "    w = <F>", "r = w"],
    "branch_tuple_int": ["if b > 3:", "    w = t", "else:", "    w = 2", "@r = w"],
    "branch_pointer_float": ["if b > 3:", "    w = a", "else:", "    w = f", "@r = w"],
    "branch_tuple_lengths": ["if b > 3:", "    w = (1, 2)", "else:", "    w = (1, 2, 3)", "@r = len(w)"],
    "branch_bool_int": ["if b > 3:", "    w = True", "else:", "    w = 2", "r = w"],
    "branch_widths": ["if b > 3:", "    w = skc.i64(1)", "else:", "    w = skc.i8(1)", "r = w"],
    "branch_one_side": ["if b > 3:", "    w = <X>", "@r = w"],
    "branch_none": ["w = None", "if b > 3:", "    w = <X>", "@r = w"],
    "loop_int_to_float": ["w = 0", "for j in range(b):", "    w = w + 0.5", "r = w"],
    "loop_float_to_tuple": ["w = 0.5", "for j in range(b):", "    @w = (w, 1)", "r = 1"],
    "loop_first_assign": ["for j in range(b):", "    w = <X>", "@r = w"],
    "loop_variable_after": ["for j in range(b):", "    pass", "r = j"],
    "while_type_change": ["w = 1", "while w < b:", "    w = w * 1.5", "r = w"],
    "while_else": ["w = 0", "while w < <I>:", "    w += 1", "else:", "    w += 10", "r = w"],
    "for_else": ["r = 0", "for j in range(<I>):", "    r += j", "else:", "    r += 100"],
    "for_float_range": ["r = 0", "@for j in range(<F>):", "    r += j"],
    "for_zero_step": ["r = 0", "@for j in range(0, <I>, 0):", "    r += j"],
    "for_zero_step_constexpr": ["r = 0", "@for j in range(0, b, C - 3):", "    r += j"],
    "for_over_pointer": ["r = 0", "@for j in f:", "    r += j"],
    "for_over_int": ["r = 0", "@for j in <I>:", "    r += j"],
    "for_tuple_target_range": ["r = 0", "@for j, q in range(3):", "    r += j"],
    "for_runtime_tuple": ["r = 0", "for j in (b, <X>):", "    r += j"],
    "while_true_break": ["r = 0", "while True:", "    r += 1", "    if r > <I>:", "        break"],
    "return_in_loop": ["r = 0", "for j in range(b):", "    r += j"],
    # -- constants out of range, shifts, division
    "i8_out_of_range": ["r = skc.i8(300)"],
    "u8_negative": ["r = skc.u8(-1)"],
    "i32_out_of_range": ["r = skc.i32(2 ** 31)"],
    "i64_out_of_range": ["r = skc.i64(2 ** 64)"],
    "big_literal": ["r = 2 ** 40 + <I>"],
    "huge_literal": ["r = 10 ** 400 + <I>"],
    "huge_literal_alone": ["r = 10 ** 400"],
    "float_overflow_literal": ["r = 1e400 * <F>"],
    "f16_overflow": ["r = skc.f16(1e6)"],
    "int_of_huge_float": ["r = int(1e30) + <I>"],
    "shift_past_width": ["r = <I> << 40"],
    "shift_right_past_width": ["r = <I> >> 40"],
    "shift_negative": ["r = <I> << -1"],
    "shift_negative_right": ["r = <I> >> -2"],
    "shift_negative_constexpr": ["r = <I> << (C - 4)"],
    "shift_negative_runtime": ["r = 1 << (b - 8)"],
    "floordiv_zero": ["r = <I> // 0"],
    "mod_zero": ["r = <I> % 0"],
    "truediv_zero": ["r = <X> / 0"],
    "truediv_float_zero": ["r = <X> / 0.0"],
    "fmod_zero": ["r = <F> % 0.0"],
    "floordiv_constexpr_zero": ["r = <I> // (C - 3)"],
    "divmod_zero": ["r = divmod(<I>, 0)[0]"],
    "mod_runtime_zero": ["r = <I> % (b - 7)"],
    # -- scalars indexed, pointers called
    "index_int": ["r = <I>[0]"],
    "index_float": ["r = <F>[1]"],
    "index_expression": ["r = (<I> + 1)[0]"],
    "slice_int": ["r = <I>[0:1]"],
    "call_pointer": ["r = f(0)"],
    "call_int": ["r = <I>(1)"],
    "call_float": ["r = <F>()"],
    "call_tuple": ["r = t(0)"],
    "call_string": ["r = \"x\"()"],
    "call_none": ["r = None()"],
}

# Where plain Python cannot stand for the kernel: pointers are numpy arrays there; id() differs between runs; and
# isinstance(x, int) of a run-time value is False in a kernel, where it asks whether x is known at compile time (the
# blocks choose compile-time paths by it: mma.py, epilogue.py).
NO_REFERENCE = {"pointer_compare", "builtin_bool_pointer", "not_in_pointer", "builtin_id", "builtin_isinstance"}

# Where Python raises for a value the kernel meets only when it runs, and skc's meaning is the GPU's (docs/tutorial.md:
# a float divided by zero is x / 0, an integer one unspecified; a shift by a run-time negative count).
RUN_TIME_FAULTS = {"truediv_zero", "truediv_float_zero", "fmod_zero", "mod_runtime_zero", "shift_negative_runtime"}

CONTEXTS = ("top", "if", "else", "for", "func")


@dataclasses.dataclass
class Case:
    name: str
    context: str
    lines: list          # the snippet's lines, operands filled in
    marked: int          # index in lines of the line an error must point at

    def source(self):
        """(text, line number of the marked line, line numbers of the snippet and of the line storing its result)"""
        head = PRELUDE + ("\n@skc.func\ndef body(a, b, C, f, t, k5):\n" if self.context == "func" else "")
        body, indent, after = [], "    ", []
        if self.context == "func":
            after = ["    return r"]
        elif self.context == "if":
            body, indent = ["    if b > 0:"], "        "
        elif self.context == "else":
            body, indent = ["    if b < 0:", "        of[1] = 1.0", "    else:"], "        "
        elif self.context == "for":
            body, indent = ["    for j0 in range(b - 6):"], "        "
        if self.context != "func":
            after = [indent + "of[0] = r"]
        lines = [indent + line for line in self.lines]
        if self.context == "func":
            text = head + "\n".join(lines + after) + "\n" + KERNEL_HEAD + "    of[0] = body(a, b, C, f, t, k5)\n"
            first = head.count("\n") + 1
            nearby = set(range(first, first + len(lines) + 1)) | {text.count("\n")}
        else:
            prefix = PRELUDE + KERNEL_HEAD + "".join(line + "\n" for line in body)
            text = prefix + "\n".join(lines + after) + "\n"
            first = prefix.count("\n") + 1
            nearby = set(range(first, first + len(lines) + 1))
        return text, first + self.marked, nearby


def draw(rng, name=None, context=None) -> Case:
    name = name or rng.choice(sorted(SNIPPETS))
    context = context or rng.choice(CONTEXTS)
    lines, marked = [], 0
    for k, line in enumerate(SNIPPETS[name]):
        text = line.lstrip()
        if text.startswith("@") and not text.startswith("@@"):
            marked = k
            line = line.replace("@", "", 1)
        elif text.startswith("@@"):
            marked = k
            line = line.replace("@@", "@", 1)
        lines.append(line)
    pick = {"I": INTS, "F": FLOATS, "X": INTS + FLOATS}
    filled = []
    for line in lines:
        filled.append(re.sub(r"<([IFX])>", lambda m: str(rng.choice(pick[m.group(1)])), line))
    return Case(name, context, filled, marked)


def _load(text, folder, module_name):
    path = os.path.join(folder, module_name + ".py")
    with open(path, "w") as handle:
        handle.write(text)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)   # (Python's own remark on `3[0]`: the case is the point)
        spec.loader.exec_module(module)
    return module, path


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


FOREIGN_WORDS = ("TypeError", "AttributeError", "KeyError", "AssertionError", "RecursionError", "IndexError",
                 "ValueError", "NameError", "OverflowError", "ZeroDivisionError", "llvmlite", "ptxas", "Traceback",
                 "internal error")


def judge_error(error, path, marked, snippet=()):
    """'refused' or a BAD class for an skc error: `snippet` holds the other lines of the snippet (and the line
    storing its result), where an error is 'refused nearby' (a later use of what the marked line made)."""
    import skc
    from skc.diagnostics import LocatedError
    first = str(error).splitlines()[0] if str(error) else ""
    if any(word in str(error) for word in FOREIGN_WORDS):
        return "BAD foreign text"
    if not isinstance(error, LocatedError) or error.loc is None:
        return f"BAD unplaced {type(error).__name__}"
    m = re.match(r"^(.*?):(\d+):(\d+): error:", first)
    if not m:
        return "BAD unplaced text"
    if os.path.abspath(m.group(1)) != os.path.abspath(path):
        inside = os.path.dirname(os.path.abspath(skc.__file__))
        return "BAD at skc's files" if m.group(1).startswith(inside) else "BAD at another file"
    if int(m.group(2)) != marked:
        if int(m.group(2)) in snippet:
            return "refused nearby"
        # (in a helper of the user's, called from the marked line: the notes name the call)
        called = f"note: at {m.group(1)}:{marked}:"
        return "refused in a helper" if any(line.strip().startswith(called) for line in str(error).splitlines()) \
            else "BAD wrong line"
    return "refused"


def run_case(case: Case, folder: str, tag: str, timeout: int = 30):
    """(outcome, detail): outcome 'refused', 'compiles', or 'BAD ...'."""
    import skc
    text, marked, nearby = case.source()
    try:
        compile(text, "case", "exec")
    except SyntaxError:
        return "syntax", ""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    try:
        return _run(case, text, marked, nearby, folder, tag, skc)
    except _Timeout:
        return "BAD timeout", ""
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _run(case, text, marked, nearby, folder, tag, skc):
    try:
        module, path = _load(text, folder, f"diag_{tag}")
    except skc.SkcError as e:
        return judge_error(e, folder + f"/diag_{tag}.py", marked, nearby), str(e)
    except Exception as e:   # noqa: BLE001 - Python itself refuses the module (not skc's to judge)
        return "python refuses module", f"{type(e).__name__}: {e}"
    results = {}
    got = np.zeros(4, np.float32)
    for target in ("interpreter", "sm_90a"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if target == "interpreter":
                    module.kernel.interpret[1, 1](got, np.array(F_VALUES, np.float32), N, C=CONST)
                else:
                    module.kernel.compile(skc.Ptr[skc.f32], skc.Ptr[skc.f32], skc.i32, C=CONST, target=target,
                                          block=(1, 1, 1)).asm("ptx")
            results[target] = ("compiles", "")
        except skc.SkcError as e:
            results[target] = (judge_error(e, path, marked, nearby), str(e))
        except _Timeout:
            raise
        except RecursionError as e:
            results[target] = ("BAD foreign RecursionError", str(e)[:300])
        except Exception as e:   # noqa: BLE001 - the point: every foreign exception is a finding
            import traceback
            results[target] = (f"BAD foreign {type(e).__name__}", traceback.format_exc()[-1500:])
    a, b = results["interpreter"], results["sm_90a"]
    if a[0].startswith("BAD"):
        return a
    if b[0].startswith("BAD"):
        return b
    if (a[0] == "compiles") != (b[0] == "compiles"):
        return "BAD targets differ", f"interpreter: {a[1][:400]}\nsm_90a: {b[1][:400]}"
    if a[0] != "compiles":
        return a
    if case.name in NO_REFERENCE:
        return "compiles", "(no Python reference)"
    return _compare_with_python(case.name, text, folder, tag, got)


def _compare_with_python(name, text, folder, tag, got):
    """The same source as plain Python (decorators dropped, @skc.func helpers plain functions)."""
    plain_text = "\n".join(line for line in text.splitlines() if line.strip() not in ("@skc.kernel", "@skc.func"))
    want = np.zeros(4, np.float32)
    try:
        with np.errstate(divide="raise", invalid="ignore", over="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module, _ = _load(plain_text, folder, f"plain_{tag}")
            module.kernel(want, np.array(F_VALUES, np.float32), N, CONST)
    except Exception as e:   # noqa: BLE001
        import skc
        origin = getattr(e, "__traceback__", None)
        frames = []
        while origin is not None:
            frames.append(origin.tb_frame.f_code.co_filename)
            origin = origin.tb_next
        skc_dir = os.path.dirname(os.path.abspath(skc.__file__))
        if isinstance(e, skc.SkcError) or any(frame.startswith(skc_dir) for frame in frames) or "skc" in str(e):
            return "compiles", "(Python cannot run skc's builtins)"
        if name in RUN_TIME_FAULTS:
            return "compiles", f"(a run-time fault: Python raises {type(e).__name__})"
        return f"BAD python raises {type(e).__name__}", str(e)[:300]
    if not (abs(want[0]) < 2 ** 31):
        return "compiles", "(Python's int is past i32, where skc's run-time ints wrap)"
    same = (got == want) | (np.isnan(got) & np.isnan(want)) | np.isclose(got, want, rtol=1e-6)
    if not same.all():
        return "BAD answer differs", f"skc {got.tolist()} python {want.tolist()}"
    return "compiles", ""


def run(seed, count, names=None, contexts=None, verbose=False):
    """{outcome: [(case, detail)]} over `count` drawn cases."""
    import skc
    folder = tempfile.mkdtemp(prefix="skc_diag_")
    skc.set_cache_dir(os.path.join(folder, "cache"))
    rng = np.random.default_rng(seed)
    found = collections.defaultdict(list)
    for k in range(count):
        name = rng.choice(names) if names else None
        context = rng.choice(contexts) if contexts else None
        case = draw(rng, name, context)
        outcome, detail = run_case(case, folder, f"{seed}_{k}")
        found[outcome].append((case, detail))
        if verbose and outcome.startswith("BAD"):
            print(f"[{k}] {case.name}/{case.context}: {outcome}", flush=True)
    return found


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--snippet", action="append", help="only these snippets")
    parser.add_argument("--context", action="append", choices=CONTEXTS)
    parser.add_argument("--show", type=int, default=1, help="examples shown of each BAD class and snippet")
    args = parser.parse_args()
    found = run(args.seed, args.count, args.snippet, args.context, verbose=True)
    for outcome in sorted(found):
        print(f"{outcome}: {len(found[outcome])}")
    for outcome in sorted(o for o in found if o.startswith("BAD")):
        by_name = collections.defaultdict(list)
        for case, detail in found[outcome]:
            by_name[case.name].append((case, detail))
        print(f"\n=== {outcome}: {sorted(by_name)}")
        for name, cases in sorted(by_name.items()):
            for case, detail in cases[:args.show]:
                print(f"--- {name}/{case.context}: {case.lines}\n{detail}")
    return 1 if any(o.startswith("BAD") for o in found) else 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    sys.exit(main())
