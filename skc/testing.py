"""Checks used by the examples, the tests and `skc run`: results against a reference."""
from __future__ import annotations

import numpy as np


def relative_error(got, expected) -> float:
    """‖got − expected‖ / ‖expected‖ in float64 (the Frobenius norm)."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    denominator = np.linalg.norm(expected.ravel())
    difference = np.linalg.norm((got - expected).ravel())
    return float(difference / denominator) if denominator else float(difference)


def assert_close(got, expected, rtol: float = 1e-5, atol: float = 1e-6, what: str = "result") -> str:
    """Raise AssertionError unless every element is close (and none is NaN); give a one-line summary."""
    got = np.asarray(got)
    expected = np.asarray(expected)
    if got.shape != expected.shape:
        raise AssertionError(f"{what}: shape {got.shape}, expected {expected.shape}")
    if np.isnan(got).any() and not np.isnan(expected).any():
        raise AssertionError(f"{what}: {int(np.isnan(got).sum())} NaN values (unwritten or poisoned outputs?)")
    g, e = got.astype(np.float64), expected.astype(np.float64)
    bad = ~np.isclose(g, e, rtol=rtol, atol=atol, equal_nan=True)
    if bad.any():
        index = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), bad.shape))   # (not np.int64(0))
        raise AssertionError(f"{what}: {int(bad.sum())} of {bad.size} elements differ; first at {index}: "
                             f"{got[index].item()!r}, expected {expected[index].item()!r}")
    error = float(np.max(np.abs(g - e))) if g.size else 0.0
    return f"{g.size} elements match (max abs error {error:.3g})"
