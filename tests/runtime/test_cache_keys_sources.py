"""What a cached kernel's code says beyond the text of the functions it inlines, checked when it is served from disk:
which function a name bound to a DSL function stands for (not only the name it was defined under), the source
lines an assertion's message names, and an enum member's own attributes."""
import enum
import re

import numpy as np
import pytest

import skc
from skc.frontend import keying
from test_cache_keys import run_compiles
from test_cache_keys_more import constants, two_versions

HEADER = "import skc\n"


def aliased(first: float, last: float) -> str:
    return HEADER + f'''
@skc.func
def act(v):
    return v * {first}

double = act   # the first act, which the second def below no longer names


@skc.func
def act(v):
    return v * {last}


@skc.kernel(block=32)
def k(x: skc.Ptr[skc.f32]):
    x[0] = double(x[0] + 1.0)
'''


def test_a_dsl_function_bound_to_another_name_is_keyed_by_what_it_is(tmp_path):
    """`double` stood for `dsl:kernels.act`, and the check of inlined functions read `act` as bound now: with the
    first act's text given to the second, the kernel inlining the first (now 5.0) was served from disk with 2.0."""
    second, fresh = two_versions(tmp_path, {"kernels.py": aliased(2.0, 3.0)}, {"kernels.py": aliased(5.0, 2.0)})
    assert second["from_cache"] is False
    assert constants(second["tile"]) == constants(fresh["tile"]) and "5.0" in constants(second["tile"])



def asserting(lines_above: int, helper_lines_above: int = 0) -> dict:
    kernel = HEADER + "import helpers\n" + "\n" * lines_above + '''
@skc.kernel(block=32)
def k(x: skc.Ptr[skc.f32], n: skc.i32):
    assert n < 5, "n too big"
    x[0] = helpers.checked(x[0])
'''
    helpers = HEADER + "\n" * helper_lines_above + '''
@skc.func
def checked(v):
    assert v < 100.0, "v too big"
    return v + 1.0
'''
    return {"kernels.py": kernel, "helpers.py": helpers}


def named_lines(llvm: str) -> list:
    return re.findall(r"assertion failed at [^\"]*?(\w+\.py):(\d+)", llvm)


@pytest.mark.parametrize("above", [(3, 0), (0, 3)], ids=["kernel moved", "helper moved"])
def test_an_assertion_names_the_line_it_is_on_now(tmp_path, above):
    """A kernel whose text is unchanged keeps its key; its PTX names each assertion's file and line, which a
    kernel (or a function it inlines) moved down its file does not have any more: the message named the old line."""
    second, fresh = two_versions(tmp_path, asserting(0), asserting(*above))
    assert second["from_cache"] is False
    assert named_lines(second["llvm"]) == named_lines(fresh["llvm"])
    assert len(named_lines(fresh["llvm"])) == 2


def test_an_assertion_not_moved_hits(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    for name, text in asserting(2, 1).items():
        (code / name).write_text(text)
    run_compiles(code, tmp_path / "cache", ["k"])
    assert run_compiles(code, tmp_path / "cache", ["k"])["kernels"]["k"]["from_cache"] is True


def slopes(slope: float) -> str:
    return HEADER + f'''
import enum


class Act(enum.Enum):
    RELU = 1
    LEAKY = 2


Act.LEAKY.slope = {slope}   # an attribute of the member's own, set after the class


@skc.kernel(block=32)
def k(x: skc.Ptr[skc.f32], act: skc.constexpr = Act.LEAKY):
    x[0] = x[0] * act.slope
'''


def test_an_enum_members_own_attributes_are_part_of_its_key(tmp_path):
    """An enum member was keyed by its class and name: its own attributes (set after the class, or by the class's
    __init__) were left out, and the kernel compiled for slope 0.1 was served from disk for 0.2."""
    second, fresh = two_versions(tmp_path, {"kernels.py": slopes(0.1)}, {"kernels.py": slopes(0.2)})
    assert second["from_cache"] is False
    assert constants(second["tile"]) == constants(fresh["tile"]) and "0.2" in constants(second["tile"])


class Leak(enum.Enum):
    A = 1


@skc.kernel(block=1)
def times_slope(x: skc.Ptr[skc.f32], act: skc.constexpr):
    x[0] = x[0] * act.slope


def test_an_enum_members_attribute_set_again_gets_a_kernel_of_its_own():
    x = np.ones(1, np.float32)
    try:
        Leak.A.slope = 2.0
        times_slope.interpret[1, 1](x, Leak.A)
        Leak.A.slope = 3.0
        times_slope.interpret[1, 1](x, Leak.A)
        assert x[0] == 6.0
    finally:
        del Leak.A.slope
    assert keying.value_key(Leak.A) == keying.value_key(Leak.A)
