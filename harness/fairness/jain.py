"""Jain's fairness index over the tickets' waits.

x_i is the wait of ticket i in seconds (paired: until paired; gave up: until it gave up;
still waiting at the end: until the end of the run). J = (sum x)^2 / (n * sum x^2), between
1/n (one ticket did all the waiting) and 1 (everyone waited the same). No tickets: None.
All waits zero: 1.0 (everyone waited the same, nothing).

Mergeable: a part keeps n, sum x and sum x^2; parts add up (up to float rounding).
"""
from __future__ import annotations

import numpy as np


def jain_sums(x: np.ndarray) -> tuple[float, float]:
    """(sum x, sum x^2) of one part's waits."""
    x = x.astype(np.float64, copy=False)
    return float(x.sum()), float(np.dot(x, x))


def jain_from_sums(n: int, s: float, sq: float) -> float | None:
    """Jain's index from the sums; None when empty, 1.0 when all are zero."""
    if n == 0:
        return None
    if sq == 0.0:
        return 1.0
    return (s * s) / (n * sq)


def jain_index(x: np.ndarray) -> float | None:
    """Jain's index of non-negative values; None when empty, 1.0 when all are zero."""
    return jain_from_sums(int(x.shape[0]), *jain_sums(x))
