"""The pass registry and the pipeline that runs passes by name."""
from __future__ import annotations

from typing import Callable, Sequence, Union

from .dce import dce
from .simplify import simplify

# name -> pass; a pass takes a Module or a Function, rewrites it in place and returns it.
PASSES: dict[str, Callable] = {
    "simplify": simplify,
    "dce": dce,
}

DEFAULT_PIPELINE = ("simplify", "dce")


def run_pipeline(module, passes: Sequence[Union[str, Callable]] = DEFAULT_PIPELINE):
    """Run `passes` (names in PASSES, or pass functions) over module in order; return it.

    No pass verifies: the caller runs `verify` where it wants the IR checked.
    """
    for item in passes:
        if callable(item):
            module = item(module)
            continue
        if item not in PASSES:
            raise KeyError(f"unknown IR pass {item!r}; known passes: {', '.join(sorted(PASSES))}")
        module = PASSES[item](module)
    return module
