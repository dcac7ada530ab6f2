"""Interests: who has any, how many, and which (Zipf-like popularity over a large vocabulary).

Stored as CSR: user i's interests are ids[offsets[i]:offsets[i + 1]] (int32 vocabulary
indices; the wire name of index k is f"t{k}"). A user's interests are distinct: the first is
an exact Zipf draw; later ones that repeat an earlier one are redrawn.
"""
from __future__ import annotations

import numpy as np

from .params import PopulationParams


def zipf_probabilities(vocab: int, s: float) -> np.ndarray:
    """P(rank k) proportional to 1 / k^s for k = 1..vocab (index 0 is the most popular)."""
    w = 1.0 / np.arange(1, vocab + 1, dtype=np.float64) ** s
    return w / w.sum()


def interest_name(idx: int) -> str:
    return f"t{int(idx)}"


def draw_interests(p: PopulationParams, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(offsets int64[n + 1], ids int32[total]) for n users."""
    has = rng.random(n) < p.interest_share
    counts = np.zeros(n, dtype=np.int64)
    k = int(has.sum())
    counts[has] = rng.integers(p.interests_min, p.interests_max + 1, size=k)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    total = int(offsets[-1])
    if total == 0:
        return offsets, np.empty(0, dtype=np.int32)
    cum = np.cumsum(zipf_probabilities(p.interest_vocab, p.interest_zipf_s))
    cum[-1] = 1.0

    def draw(m: int) -> np.ndarray:
        return np.minimum(np.searchsorted(cum, rng.random(m), side="right"), p.interest_vocab - 1)

    ids = draw(total).astype(np.int32)
    owner_counts = counts[has]
    starts = offsets[:-1][has]
    # Slot j of every user with more than j interests; redraw repeats of any earlier slot.
    for j in range(1, p.interests_max):
        rows = starts[owner_counts > j]
        for _ in range(1000):
            dup = np.zeros(rows.shape[0], dtype=bool)
            for i in range(j):
                dup |= ids[rows + j] == ids[rows + i]
            if not dup.any():
                break
            ids[rows[dup] + j] = draw(int(dup.sum()))
        else:  # pragma: no cover - only with a tiny vocabulary and extreme skew
            raise RuntimeError("could not draw distinct interests; vocabulary too small for interests_max")
    return offsets, ids
