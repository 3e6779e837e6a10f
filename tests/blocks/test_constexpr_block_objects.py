"""A block object given as a constexpr argument that the kernel writes run-time state into: a TilePayload, whose
`allocate` (the pipeline's) stores its stages' shared address in it. The compile left this compile's variable in the
user's object, so the launch's key, taken again after the compile, failed with keying's Unkeyable (no skc error), and
every later launch with it with a LaunchError about a SourceFileLoader "field base: field compile: ...". Now the
store is a CompileError at the user's line naming the argument and saying to make the object inside the kernel; the
object is left as it was. Made inside the kernel from constexpr layouts, the same kernel runs."""
import inspect

import numpy as np
import pytest

import skc
from skc.blocks import (DirectStoreEpilogue, EpilogueArgs, EpilogueSpec, InputTilePipeline, OperandLayout,
                        TilePayload, TmaLoader, WarpRoles, Wgmma)

T = 64


@skc.func
def gemm_of(a, b, out, K, payload):
    load = TmaLoader(payload, a=a, b=b)
    with InputTilePipeline(payload, 2, load, consumers=1) as pipe:   # HERE
        roles = WarpRoles(1)
        if roles.is_producer():
            if load.is_issuing():
                with pipe.producer() as producer:
                    for k in range(skc.cdiv(K, T)):
                        with producer.acquire() as stage:
                            load(stage, k, a=0, b=0)
        else:
            mma = Wgmma(T, T, skc.bf16)
            acc = mma.zeros()
            with pipe.consumer(mma) as consumer:
                for k in range(skc.cdiv(K, T)):
                    with consumer.acquire() as stage:
                        mma(acc, stage.a, stage.b)
            DirectStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(), T, T))(acc, 0, 0)


@skc.kernel
def given_payload(a: skc.TensorMap, b: skc.TensorMap, out: skc.Ptr[skc.f32], K: skc.i32, payload: skc.constexpr):
    gemm_of(a, b, out, K, payload)


@skc.kernel
def given_parts(a: skc.TensorMap, b: skc.TensorMap, out: skc.Ptr[skc.f32], K: skc.i32, parts: skc.constexpr):
    gemm_of(a, b, out, K, parts.payload)


@skc.kernel
def given_layouts(a: skc.TensorMap, b: skc.TensorMap, out: skc.Ptr[skc.f32], K: skc.i32, layouts: skc.constexpr):
    gemm_of(a, b, out, K, TilePayload(a=layouts[0], b=layouts[1]))


class Parts:
    """A user's holder of compile-time parts (a config of their own)."""

    def __init__(self, payload):
        self.payload = payload


def operands():
    rng = np.random.default_rng(0)
    A, B = (rng.integers(-2, 3, (T, 2 * T)).astype(np.float32) for _ in range(2))
    maps = tuple(skc.TensorMap(skc.to_device(x, dtype=skc.bf16), box=(T, T)) for x in (A, B))
    return A, B, maps


def payload():
    return TilePayload(a=OperandLayout(T, T), b=OperandLayout(T, T))


def test_a_payload_made_in_the_kernel_from_constexpr_layouts_runs(hopper_interpreter):
    A, B, maps = operands()
    for _ in range(2):   # (the second launch keys the same layouts again, and finds the kernel compiled)
        out = np.full((T, T), np.nan, np.float32)
        given_layouts[1, 256](*maps, out, 2 * T, (OperandLayout(T, T), OperandLayout(T, T)))
        assert np.array_equal(out, A @ B.T)


@pytest.mark.parametrize("kernel, holds", [(given_payload, "constexpr argument 'payload' \\('TilePayload' object\\)"),
                                           (given_parts, "'TilePayload' object that constexpr argument 'parts' "
                                                         "holds")])
def test_a_payload_given_as_a_constexpr_is_refused_naming_the_argument(hopper_interpreter, kernel, holds):
    A, B, maps = operands()
    given = payload()
    argument = given if kernel is given_payload else Parts(given)
    for _ in range(2):   # (the second launch: the same error, not keying's words about the first compile's leftovers)
        with pytest.raises(skc.CompileError, match=f"the kernel stores a run-time value into 'base' of {holds}: a "
                                                   "constexpr value is the compile's key") as error:
            kernel[1, 256](*maps, np.zeros((T, T), np.float32), 2 * T, argument)
        assert "make the TilePayload inside the kernel" in error.value.hint
        lines, first = inspect.getsourcelines(gemm_of.__wrapped__ if hasattr(gemm_of, "__wrapped__") else gemm_of)
        line = first + next(i for i, text in enumerate(lines) if text.rstrip().endswith("# HERE"))
        assert str(error.value).startswith(f"{__file__}:{line}:")
        assert vars(given) == {"layouts": payload().layouts}   # (the user's object as it was)
