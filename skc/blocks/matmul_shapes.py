"""torch.matmul's shapes over the GEMM's own: operands of one dimension or of more than three, as torch.matmul takes
them, made the 2-D or 3-D problem matmul's plans run.

A 1-D a (K) is a row (1 x K) and a 1-D b (K) a column (K x 1), the added dimension removed from the result; the
dimensions before the last two are batch dimensions, broadcast against each other as torch's are (each pair equal,
or one of them 1, or missing). Without copies where the memory allows: a batch times one matrix folds the batch
into a's rows when a's rows lie evenly, one (B·M) x K GEMM; batch dimensions that flatten into one stride are one
batch of the 3-D plans (matmul_host's batched plans, which take a batch of one beside a batch as torch does). A
batch whose dimensions do not flatten, and operands broadcast against each other's batch dimensions (a of 2 x 1 x
M x K with b of 1 x 3 x K x N), are copied into one batch, as torch.matmul copies them (torch tensors and numpy
arrays; other arrays are refused by name). out is written in place: it must be the result's shape and flatten as
the problem's out does.
"""
from __future__ import annotations

import math

import skc

from .host_plans import element_strides, on_stream, paddable, view


def broadcast_batch(a_shape, b_shape, what: str = "matmul"):
    """The batch dimensions of the product of operands of these shapes (each at least 2-D), as torch.matmul
    broadcasts them; a LaunchError where a pair is neither equal nor 1."""
    a_batch, b_batch = tuple(a_shape[:-2]), tuple(b_shape[:-2])
    rank = max(len(a_batch), len(b_batch))
    a_batch, b_batch = (1,) * (rank - len(a_batch)) + a_batch, (1,) * (rank - len(b_batch)) + b_batch
    if any(m != n and 1 not in (m, n) for m, n in zip(a_batch, b_batch)):
        raise skc.LaunchError(f"{what}: the batch sizes differ: a is {tuple(a_shape)}, b is {tuple(b_shape)} (batch "
                              "dimensions broadcast as torch.matmul's: each pair equal, or one of them 1)")
    return tuple(m if n == 1 else n for m, n in zip(a_batch, b_batch))   # (1 against 0 is 0)


def flattens(shape, strides) -> bool:
    """Whether the dimensions of these sizes and element strides are one dimension of one stride in memory (a view
    of them with their product as one size exists: torch's view(), numpy's reshape without a copy)."""
    if 0 in tuple(shape):
        return True
    inner = None   # (size, stride) of the next dimension inwards that is not of size 1
    for size, stride in reversed(tuple(zip(shape, strides))):
        if size == 1:
            continue
        if inner is not None and stride != inner[0] * inner[1]:
            return False
        inner = (size, stride)
    return True


class TorchShapes:
    """A product of torch.matmul's shapes run as the problem of `inner` shapes (a's, b's, out's: 2-D or 3-D): each
    call views (or, where `copies` says, copies) the operands and out into those shapes, calls matmul on them, and
    gives the result torch.matmul's shape."""

    def __init__(self, matmul, result, inner, copies, expanded, activation, config):
        self.matmul, self.result, self.inner = matmul, result, inner
        self.copies, self.expanded = copies, expanded   # (per operand a, b: copied; the full shape it broadcasts to)
        self.activation, self.config = activation, config

    @classmethod
    def checked(cls, matmul, a, b, out, c, bias, activation, config) -> "TorchShapes":
        """The plan of a call whose a or b is 1-D or more than 3-D, once its shapes are checked (the problem's own
        checks, of types, rows and the epilogue, are the inner plan's, made at the first call)."""
        if not (len(a.shape) and len(b.shape)):
            raise skc.LaunchError(f"matmul: both operands need a dimension at least, as torch.matmul's do; a is "
                                  f"{tuple(a.shape)}, b is {tuple(b.shape)}: scale by a number with alpha=")
        a_shape = (1, a.shape[0]) if len(a.shape) == 1 else tuple(a.shape)
        b_shape = (b.shape[0], 1) if len(b.shape) == 1 else tuple(b.shape)
        (M, K), N = a_shape[-2:], b_shape[-1]
        if b_shape[-2] != K:
            raise skc.LaunchError(f"cannot multiply a {tuple(a.shape)} by b {tuple(b.shape)}: inner dimensions differ")
        batch = broadcast_batch(a_shape, b_shape)
        result = (*batch, *((M,) if len(a.shape) > 1 else ()), *((N,) if len(b.shape) > 1 else ()))
        for name, x in (("out", out), ("c", c)):
            if x is not None and tuple(x.shape) != result:
                raise skc.LaunchError(f"matmul: {name} has shape {tuple(x.shape)}; the product of {tuple(a.shape)} "
                                      f"and {tuple(b.shape)} is {result}, as torch.matmul's")
        if bias is not None and len(b.shape) == 1 and tuple(bias.shape) != (1,):
            raise skc.LaunchError(f"matmul: bias (shape {tuple(bias.shape)}) adds to each column of the product, "
                                  f"and a 1-D b {tuple(b.shape)} makes one: pass a bias of shape (1,), or add yours "
                                  "to the result")
        a_strides = (1, 1) if len(a.shape) == 1 else element_strides(a)
        batches = math.prod(batch)
        a_batched, b_batched = (any(n != 1 for n in x[:-2]) for x in (a_shape, b_shape))
        # (out as the product of a_shape and b_shape: a removed dimension is one of size 1, of any stride)
        out_shape, out_strides = (None, None) if out is None else _promoted(out, len(a.shape) == 1,
                                                                            len(b.shape) == 1)
        expanded = (None, None)
        if not b_batched and flattens(a_shape[:-1], a_strides[:-1]) and (
                out is None or flattens(out_shape[:-1], out_strides[:-1])):
            # (a batch times one matrix: the batch in a's rows, one GEMM)
            inner = ((batches * M, K), (K, N), (batches * M, N))
        elif not b_batched:
            inner = ((batches, M, K), (K, N), (batches, M, N))
        elif not a_batched:
            inner = ((M, K), (batches, K, N), (batches, M, N))
        else:   # (a batch times a batch: each broadcast to the result's batch, unless it has all of it)
            expanded = tuple(None if (1,) * (len(batch) + 2 - len(x)) + tuple(x[:-2]) == batch else (*batch, *x[-2:])
                             for x in (a_shape, b_shape))
            inner = ((batches, M, K), (batches, K, N), (batches, M, N))
        copies = tuple(cls._copied(name, x, shape, inner_shape, full is not None)
                       for name, x, shape, inner_shape, full in zip("ab", (a, b), (a_shape, b_shape), inner[:2],
                                                                     expanded))
        if out is not None and not flattens_into(out_shape, out_strides, inner[2]):
            raise skc.LaunchError(f"matmul: out (shape {tuple(out.shape)}, strides {element_strides(out)}) is written "
                                  f"as the {inner[2]} out of the problem it runs, which no view of it is: pass a "
                                  "contiguous out, or none")
        return cls(matmul, result, inner, copies, expanded, activation, config)

    @staticmethod
    def _copied(name, x, shape, inner_shape, broadcast: bool) -> bool:
        """Whether operand x (of `shape`, a 1-D one's as a row or column) is copied into its `inner_shape`: its
        batch broadcast, or its dimensions no view of that shape (a 1-D a of a stride: its row would be neither
        row-major nor a transposed view; a 1-D b of a negative stride, numpy's b[::-1]: its column's rows would go
        backwards, which no map reads); a LaunchError where it would be but cannot be (not torch's, numpy's)."""
        strides = element_strides(x)
        if len(x.shape) == 1:
            needed = x.shape[0] > 1 and (strides[0] != 1 if name == "a" else strides[0] < 0)
        else:
            needed = broadcast or not flattens_into(shape, strides, inner_shape)
        if needed and not paddable(x):
            raise skc.LaunchError(f"matmul: {name} (shape {tuple(x.shape)}, strides {strides}) is multiplied as "
                                  f"{inner_shape}, which needs a copy of it" + (" broadcast to the result's batch"
                                                                                if broadcast else "")
                                  + f", and skc copies torch tensors and numpy arrays only: pass {name} as one, or "
                                  "a contiguous one of the result's batch")
        return needed

    def __call__(self, a, b, out, c, bias, alpha, beta, stream):
        with on_stream(a, stream):   # (copies and the result in the launch's stream's order and memory)
            a_in, b_in = (self._operand(x, shape, copy, full) for x, shape, copy, full
                          in zip((a, b), self.inner[:2], self.copies, self.expanded))
            c_in = None if c is None else _reshaped(c, self.inner[2])
        out_in = None if out is None else view(out, self.inner[2])
        product = self.matmul(a_in, b_in, out_in, bias=bias, c=c_in, alpha=alpha, beta=beta,
                              activation=self.activation, config=self.config, stream=stream)
        return out if out is not None else product.reshape(self.result)   # (a view: the product is new, dense)

    @staticmethod
    def _operand(x, shape, copy: bool, full):
        if not copy:
            return view(x, shape)
        if full is not None:   # (broadcast: torch's expand, numpy's broadcast_to, a view of stride 0, then copied)
            x = x.expand(full) if hasattr(x, "expand") else _numpy().broadcast_to(x, full)
        elif len(x.shape) == 1:
            x = x.contiguous() if hasattr(x, "contiguous") else _numpy().ascontiguousarray(x)
        return _reshaped(x, shape)


def flattens_into(shape, strides, inner) -> bool:
    """Whether an array of `shape` and `strides` has a view of shape `inner` (2-D or 3-D) that keeps its last
    dimension: its leading dimensions flatten into the inner's."""
    shape, strides = tuple(shape), tuple(strides)
    if len(inner) == 2:   # (the rows: every dimension but the last)
        return inner[-1] == shape[-1] and flattens(shape[:-1], strides[:-1])
    return inner[-2:] == shape[-2:] and flattens(shape[:-2] or (1,), strides[:-2] or (1,))


def _promoted(out, a_vector: bool, b_vector: bool) -> tuple:
    """(shape, element strides) of out with the dimensions a 1-D operand's product removed put back (size 1)."""
    shape, strides = list(out.shape), list(element_strides(out))
    if a_vector:   # (the product's rows: one, before its columns, or last where b is 1-D too)
        at = len(shape) - (0 if b_vector else 1)
        shape.insert(at, 1)
        strides.insert(at, 1)
    if b_vector:
        shape.append(1)
        strides.append(1)
    return tuple(shape), tuple(strides)


def _reshaped(x, shape):
    """x as `shape`: a view where one exists, else (torch, numpy) a copy."""
    return x.reshape(shape)


def _numpy():
    import numpy

    return numpy
