"""Interest match rate, fallback rate and repeat-partner rate, as additive counts.

- interest_match_rate: among paired tickets of users with interests, the share whose
  pairing shared an interest (None if there are none).
- fallback_rate: among tickets of users with interests (any outcome), the share that waited
  at least `interest_fallback_s`, i.e. whose interest-only search ran out (None if none).
- repeat_partner_rate: among complete pairings, the share whose two users had already been
  paired with each other earlier in the run (None if no pairings). A pair of users paired
  k times makes k - 1 repeats, so the count is pairings minus distinct pairs of users: no
  time order needed, and parts add up (two users of one pairing are in one pool).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .prepared import CHUNK, Prepared


def share(num: int, den: int) -> float | None:
    return num / den if den else None


def distinct_user_pairs(user: np.ndarray, a: np.ndarray, b: np.ndarray) -> int:
    """Number of distinct pairs of users among the pairings (a[i], b[i])."""
    if not a.size:
        return 0
    if int(user.min()) >= 0 and int(user.max()) < (1 << 31):
        key = np.empty(a.size, dtype=np.int64)            # min << 31 | max, written chunk by chunk
        for i in range(0, a.size, CHUNK):
            ua, ub = user[a[i:i + CHUNK]], user[b[i:i + CHUNK]]
            k = key[i:i + ua.size]
            np.minimum(ua, ub, out=k)
            k <<= 31
            k |= np.maximum(ua, ub)
        key.sort()
        return int(1 + np.count_nonzero(key[1:] != key[:-1]))
    ua, ub = user[a], user[b]
    return int(np.unique(np.stack([np.minimum(ua, ub), np.maximum(ua, ub)], axis=1), axis=0).shape[0])


def rate_counts(pr: Prepared, wait: np.ndarray) -> dict[str, int]:
    """The counts behind the three rates (see the module docstring)."""
    paired_int = pr.has & pr.paired
    repeats = pr.n_pairs - distinct_user_pairs(pr.user, pr.a, pr.b)
    return {
        "interest_paired": int(paired_int.sum()),
        "interest_matched": int(np.count_nonzero(pr.via[paired_int])),
        "with_interests": int(pr.has.sum()),
        "fell_back": int(np.count_nonzero(wait[pr.has] >= pr.params.interest_fallback_s)),
        "repeat_pairings": int(repeats),
    }


def rate_figures(c: dict[str, int], pairings: int) -> dict[str, Any]:
    return {
        "interest_match_rate": share(c["interest_matched"], c["interest_paired"]),
        "fallback_rate": share(c["fell_back"], c["with_interests"]),
        "repeat_partner_rate": share(c["repeat_pairings"], pairings),
        "repeat_pairings": c["repeat_pairings"],
    }
