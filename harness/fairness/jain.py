"""Jain's fairness index over the tickets' waits.

x_i is the wait of ticket i in seconds (paired: until paired; gave up: until it gave up;
still waiting at the end: until the end of the run). J = (sum x)^2 / (n * sum x^2), between
1/n (one ticket did all the waiting) and 1 (everyone waited the same). No tickets: None.
All waits zero: 1.0 (everyone waited the same, nothing).
"""
from __future__ import annotations

import numpy as np

from .tickets import TicketTable


def jain_index(x: np.ndarray) -> float | None:
    """Jain's index of non-negative values; None when empty, 1.0 when all are zero."""
    n = int(x.shape[0])
    if n == 0:
        return None
    x = x.astype(np.float64)
    sq = float(np.dot(x, x))
    if sq == 0.0:
        return 1.0
    s = float(x.sum())
    return (s * s) / (n * sq)


def jain_of_waits(t: TicketTable) -> float | None:
    return jain_index(t.wait_s)
