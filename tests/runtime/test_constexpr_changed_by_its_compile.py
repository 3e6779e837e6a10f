"""A constexpr argument that the kernel's compile-time code changes (`cfg.append(0)`, an attribute it sets once): the
kernel is kept under the key of the value it was compiled from, the value as the launch gave it. It was also kept
under the key of the value as the compile left it, so a later launch given that value (a list equal to the changed
one, or the same list again) ran the kernel compiled from the value before, a wrong answer."""
import numpy as np

import skc

F32P = skc.Ptr[skc.f32]


@skc.kernel
def scales_by_length(x: F32P, out: F32P, cfg: skc.constexpr):
    n = len(cfg)
    cfg.append(0)
    out[0] = x[0] * n


def test_a_value_equal_to_what_a_compile_left_gets_its_own_kernel():
    x = np.array([1.0], np.float32)
    for given, length in (([1], 1), ([1, 0], 2), ([1, 0, 0], 3)):
        out = np.zeros(1, np.float32)
        scales_by_length.interpret[1, 1](x, out, given)
        assert out[0] == length   # (1.0 for each: the kernel compiled for [1], after which the list was [1, 0])


def test_the_same_list_changed_by_its_compile_is_compiled_for_as_it_is():
    x, given = np.array([1.0], np.float32), [7]
    for length in (1, 2, 3):
        out = np.zeros(1, np.float32)
        scales_by_length.interpret[1, 1](x, out, given)
        assert out[0] == length and len(given) == length + 1


class Config:
    def __init__(self, n):
        self.n = n


@skc.kernel
def tiles_of(x: F32P, out: F32P, cfg: skc.constexpr):
    if not hasattr(cfg, "tiles"):   # (set once, by the first compile: the same every compile after)
        cfg.tiles = cfg.n * 2
    out[0] = x[0] * cfg.tiles


def test_an_attribute_a_compile_sets_once_reads_right_in_every_launch():
    x = np.array([1.0], np.float32)
    given = Config(3)
    for cfg, expected in ((given, 6), (given, 6), (Config(3), 6), (Config(4), 8), (given, 6)):
        out = np.zeros(1, np.float32)
        tiles_of.interpret[1, 1](x, out, cfg)
        assert out[0] == expected
