"""Ready plans of the Hopper host paths (matmul, conv2d): the cheap facts of a call's operands, which key a plan
made and checked by the first call with those facts, and each operand's tensor maps encoded once per address.

A plan is what a host path keeps of a checked call: its launcher, its grid and its tensor maps' geometry, never
the caller's tensors. `facts(x)` is the part of a plan key that describes an operand (type, shape, strides,
dtype, device); `MapsByAddress` turns a tensor of the plan's geometry into the encoded map a launch passes.
"""
from __future__ import annotations

import skc


# -- cheap facts of an operand (the plan key) -------------------------------------------------------------------
def _torch_facts(x):
    return (x.shape, x.stride(), x.dtype, x.device)


def _numpy_facts(x):
    return (x.shape, x.strides, x.dtype)


def _array_facts(x):
    return (x.shape, x.dtype, x.device)


def _other_facts(x):
    return (x.shape, getattr(x, "strides", None), str(getattr(x, "dtype", None)))


_FACTS: dict = {}


def _facts_function(kind: type):
    found = _FACTS.get(kind)
    if found is None:
        if kind.__module__.split(".")[0] == "torch" and hasattr(kind, "data_ptr"):
            found = _torch_facts
        elif kind.__module__.split(".")[0] == "numpy" and hasattr(kind, "ctypes"):
            found = _numpy_facts
        elif isinstance(kind, type) and issubclass(kind, skc.DeviceArray):
            found = _array_facts
        else:
            found = _other_facts
        _FACTS[kind] = found
    return found


def facts(x):
    """(type, shape, strides, dtype[, device]) of an operand: what a plan made for it assumed."""
    kind = type(x)
    function = _FACTS.get(kind) or _facts_function(kind)
    return (kind, function(x))


def remember(plans: dict, key, plan, limit: int = 1024):
    """Keep `plan` under `key` in a bounded plan cache (cleared when full: plans are cheap to remake); return it."""
    if len(plans) >= limit:
        plans.clear()
    plans[key] = plan
    return plan


# -- tensor maps per address -----------------------------------------------------------------------------------------
class MapsByAddress:
    """One operand's tensor maps, encoded once per address: `make(tensor)` gives the operand's (checked) TensorMap
    for the first tensor (`first`, when the plan has it, else the first call's); later addresses reuse its
    geometry (`encoded_at` patches the address into the descriptor where the driver allows), except im2col maps,
    which `make` encodes anew per new address. Called with a tensor of the plan's facts (or a view of the same
    memory), it gives the EncodedTensorMap a launch passes."""

    __slots__ = ("make", "pointer", "seen", "template")

    def __init__(self, make, first=None):
        self.make, self.template, self.pointer, self.seen = make, None, None, {}
        if first is not None:
            self._first(first)

    def _first(self, tensor):
        template = self.template = self.make(tensor)
        self.pointer = template.pointer_function()
        if isinstance(template, skc.Im2colTensorMap):
            self.seen[self.pointer(tensor)] = _encoded(template)
        template.tensor = None  # a plan keeps the geometry, never the caller's tensors alive

    def __call__(self, tensor):
        if self.pointer is None:
            self._first(tensor)
        pointer = self.pointer(tensor)
        found = self.seen.get(pointer)
        if found is None:
            if isinstance(self.template, skc.Im2colTensorMap):
                found = _encoded(self.make(tensor))
            else:
                found = self.template.encoded_at(pointer)  # checks the address's alignment
            remember(self.seen, pointer, found, limit=64)
        return found


def _encoded(tensor_map):
    return skc.EncodedTensorMap(tensor_map.descriptor_bytes, tensor_map.spec, tensor_map.dtype)
