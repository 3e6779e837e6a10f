"""What a cached kernel's code says beyond the text of the functions it inlines, checked when it is served from disk:
which function a name bound to a DSL function stands for (not only the name it was defined under)."""
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


