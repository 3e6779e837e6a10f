"""What a launcher knows of a kernel's run-time parameters (their kinds and types)."""
from __future__ import annotations

from dataclasses import dataclass

POINTER, SCALAR, TENSORMAP = "pointer", "scalar", "tensormap"


@dataclass(frozen=True)
class LaunchParam:
    """A run-time kernel parameter: its name, kind and type (the element type for pointers)."""

    name: str
    kind: str
    type: object = None
