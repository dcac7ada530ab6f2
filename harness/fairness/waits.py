"""Waiting-time percentiles, overall and by cohort, and the worst-to-best cohort p99 ratio.

Percentiles are nearest-rank (the smallest wait with at least p% of waits at or below it),
so every reported figure is a wait some ticket really had, and the slow reference in
`reference_impl.py` can state it in one line.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .params import FairnessParams
from .tickets import TicketTable

PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0))


def rank_index(p: float, n: int) -> int:
    """0-based index of the nearest-rank p-th percentile of n sorted values (n >= 1)."""
    milli = int(round(p * 1000))                  # p with up to 3 decimals, as an exact integer
    rank = -(-milli * n // 100_000)               # ceil(p/100 * n) in integers
    return min(max(rank, 1), n) - 1


def summary_ms(sorted_wait_s: np.ndarray) -> dict[str, Any]:
    """{count, p50, p90, p99, max} in milliseconds from ascending waits in seconds."""
    n = int(sorted_wait_s.shape[0])
    out: dict[str, Any] = {"count": n}
    for name, p in PERCENTILES:
        out[name] = float(sorted_wait_s[rank_index(p, n)]) * 1000.0 if n else None
    out["max"] = float(sorted_wait_s[-1]) * 1000.0 if n else None
    return out


def cohorts(t: TicketTable) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
    """Cohort dimensions: code per ticket and the name of each code."""
    return {
        "interests": (t.has_interests.astype(np.int64), ("none", "interests")),
        "mode": (t.mode.astype(np.int64), tuple(t.mode_names)),
        "lang": (t.lang.astype(np.int64), tuple(t.lang_names)),
        "cls": (t.cls.astype(np.int64), tuple(t.cls_names)),
    }


def wait_figures(t: TicketTable, params: FairnessParams) -> dict[str, Any]:
    """wait_ms overall, wait_ms_by_cohort, wait_p99_ms_by_cohort and the worst-to-best ratios."""
    wait = t.wait_s
    order = np.argsort(wait, kind="stable")
    sorted_wait = wait[order]
    by_cohort: dict[str, dict[str, Any]] = {}
    for dim, (codes, names) in cohorts(t).items():
        codes_sorted = codes[order]
        dim_out: dict[str, Any] = {}
        for code in np.unique(codes_sorted):
            name = names[code] if 0 <= code < len(names) else str(code)
            dim_out[name] = summary_ms(sorted_wait[codes_sorted == code])
        by_cohort[dim] = dim_out
    ratios = worst_to_best(by_cohort, params)
    overall = [r["ratio"] for r in ratios.values() if r["ratio"] is not None]
    return {
        "wait_ms": summary_ms(sorted_wait),
        "wait_ms_by_cohort": by_cohort,
        "wait_p99_ms_by_cohort": {dim: {k: v["p99"] for k, v in d.items()} for dim, d in by_cohort.items()},
        "worst_to_best_p99_ratio": max(overall) if overall else None,
        "worst_to_best_p99_by_dimension": ratios,
    }


def worst_to_best(by_cohort: dict[str, dict[str, Any]], params: FairnessParams) -> dict[str, dict[str, Any]]:
    """Per dimension: max(worst p99, floor) / max(best p99, floor), among cohorts big enough."""
    out: dict[str, dict[str, Any]] = {}
    for dim, d in by_cohort.items():
        big = {k: v["p99"] for k, v in d.items() if v["count"] >= params.min_cohort_tickets}
        if len(big) < 2:
            out[dim] = {"ratio": None, "worst": None, "best": None}
            continue
        worst = max(big, key=lambda k: (big[k], k))
        best = min(big, key=lambda k: (big[k], k))
        floor = params.p99_floor_ms
        out[dim] = {"ratio": max(big[worst], floor) / max(big[best], floor), "worst": worst, "best": best}
    return out
