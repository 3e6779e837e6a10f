"""What skc says about code it does not take (diagnostics_gen.py): a valid kernel with one drawn snippet of Python
(every statement and expression kind, wrong calls, annotations, constexpr misuse, constants out of range, ...) must
compile and mean what Python says, or be refused by an skc error at the snippet's line, in skc's words.
Of 12,000 drawn cases (seeds 1 to 4, fifty-fourth session) the first run found: Python's exceptions shown as
`TypeError: ...` (compile-time operators, indexing, item assignment, builtins given wrong arguments, calling a
number or a module), skc builtins named by their factory's inner function, abs(x, 1) failing inside skc, an integer
`//` or `%` by a constant 0 compiling, and a run-time value stored into an object a module global names, which
stayed there and broke the next compile. CI draws SKC_DIAGFUZZ_COUNT cases (default 120, a few seconds);
`python tests/fuzz/diagnostics_gen.py --seed N --count C` draws more."""
import os
import tempfile

import numpy as np
import pytest

import diagnostics_gen as gen

COUNT = int(os.environ.get("SKC_DIAGFUZZ_COUNT", "120"))
SEED = int(os.environ.get("SKC_DIAGFUZZ_SEED", "54"))


def test_drawn_snippets_compile_as_python_or_are_refused_at_their_line():
    found = gen.run(SEED, COUNT)
    bad = {outcome: cases for outcome, cases in found.items() if outcome.startswith("BAD")}
    assert not bad, "\n".join(f"{outcome}: {case.name}/{case.context} {case.lines}\n{detail}"
                              for outcome, cases in bad.items() for case, detail in cases[:2])


def outcome_of(name, context="top", seed=0):
    case = gen.draw(np.random.default_rng(seed), name, context)
    return gen.run_case(case, tempfile.mkdtemp(), f"{name}_{context}")


@pytest.mark.parametrize("name, context, phrase", [
    # Python's exceptions from compile-time code, once `TypeError: ...` and the like
    ("float_shift", "top", "'<<' of float 1.5"),
    ("float_invert", "top", "'~' of float 1.5"),
    ("index_float", "if", "float 1.5 with int 1: 'float' object is not subscriptable"),
    ("index_tuple_out_of_range", "func", "indexing tuple (1, 2, 3) with int 5: tuple index out of range"),
    ("aug_subscript_tuple", "top", "assigning to an element of tuple (1, 2, 3)"),
    ("dict_runtime_key", "else", "is not in the dict"),
    ("floordiv_constexpr_zero", "for", "divides by zero"),
    ("shift_negative", "top", "shifts by a negative count"),
    ("module_plus", "top", "module math"),
    ("attribute_of_skc", "top", "module skc has no attribute 'foo'"),
    ("builtin_len_int", "top", "len() of"),
    ("builtin_min_empty", "func", "min() of no arguments"),
    ("method_tuple", "top", "tuple.index() of"),
    # calling what is no function
    ("call_int", "top", "is not a function and cannot be called"),
    ("call_tuple", "if", "tuple (1, 2, 3) is not a function"),
    ("module_call", "top", "module math is not a function"),
    ("shadow_range", "func", "int 3 is not a function"),
    # wrong arguments to skc's builtins and Python's abs
    ("skc_sqrt_two", "top", "sqrt() is called with the wrong arguments"),
    ("skc_thread_id_keyword", "top", "thread_id() is called with the wrong arguments: got an unexpected keyword"),
    ("builtin_abs_two", "top", "abs() takes exactly one argument (2 given)"),
    # an integer division by a constant 0 of a run-time value
    ("floordiv_zero", "top", "integer '//' by the constant 0 divides by zero"),
    ("mod_zero", "if", "integer '%' by the constant 0"),
    ("aug_floordiv_zero", "func", "by the constant 0"),
    ("divmod_zero", "top", "by the constant 0"),
    # a run-time value into an object a module global names: it outlived the compile
    ("aug_attribute", "if", "outlives the kernel"),
    ("tuple_target_attribute", "func", "outlives the kernel"),
])
def test_each_class_found_is_refused_in_skc_words(name, context, phrase):
    details = []
    for seed in range(16):   # (draws of the operands: a compile-time one may make the snippet valid)
        outcome, detail = outcome_of(name, context, seed)
        assert not outcome.startswith("BAD"), (outcome, detail)
        if outcome.startswith("refused") and phrase in detail:
            return
        details.append(detail)
    raise AssertionError(f"no draw of {name} says {phrase!r}: {details}")
