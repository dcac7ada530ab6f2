"""Interest match rate, fallback rate and repeat-partner rate.

- interest_match_rate: among paired tickets of users with interests, the share whose
  pairing shared an interest (None if there are none).
- fallback_rate: among tickets of users with interests (any outcome), the share that waited
  at least `interest_fallback_s`, i.e. whose interest-only search ran out (None if none).
- repeat_partner_rate: among complete pairings, the share whose two users had already been
  paired with each other earlier in the run (None if no pairings).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .params import FairnessParams
from .tickets import TicketTable


def _share(num: int, den: int) -> float | None:
    return num / den if den else None


def rate_figures(t: TicketTable, params: FairnessParams) -> dict[str, Any]:
    with_int = t.has_interests
    paired_int = with_int & t.paired
    n_paired_int = int(paired_int.sum())
    n_int = int(with_int.sum())
    fell_back = int((t.wait_s[with_int] >= params.interest_fallback_s).sum())
    a, b = t.pairs
    repeats = 0
    if a.size:
        ua, ub = t.user[a], t.user[b]
        lo, hi = np.minimum(ua, ub), np.maximum(ua, ub)
        tp = np.maximum(t.t_paired[a], t.t_paired[b])
        order = np.lexsort((tp, hi, lo))
        lo, hi = lo[order], hi[order]
        repeats = int(((lo[1:] == lo[:-1]) & (hi[1:] == hi[:-1])).sum())
    return {
        "interest_match_rate": _share(int(t.via_interest[paired_int].sum()), n_paired_int),
        "fallback_rate": _share(fell_back, n_int),
        "repeat_partner_rate": _share(repeats, int(a.size)),
        "repeat_pairings": repeats,
    }
