"""Waiting-time percentiles, overall and by cohort, and the worst-to-best cohort p99 ratio.

Percentiles are nearest-rank (the smallest wait with at least p% of waits at or below it),
so every reported figure is a wait some ticket really had, and the slow reference in
`reference_impl.py` can state it in one line.

Mergeable form (`WaitCells`): the waits grouped by *cell*, one combination of the four
cohort codes (interests, mode, lang, cls), each cell sorted. Every cohort of every
dimension is a union of cells, and the union of several parts' cells is still a set of
sorted segments, so an exact nearest-rank percentile of any cohort over any parts is a
k-th smallest of sorted segments (`kth_smallest`): a few binary searches per segment,
never a concatenation or a sort of the whole.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np

from .params import FairnessParams
from .prepared import bits_for

PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0))
DIMENSIONS = ("interests", "mode", "lang", "cls")
INTEREST_NAMES = ("none", "interests")
#: Segments' elements in the bracket below which kth_smallest just selects among them.
_SMALL = 1 << 16
_SAMPLE = 1 << 16


def rank_index(p: float, n: int) -> int:
    """0-based index of the nearest-rank p-th percentile of n sorted values (n >= 1)."""
    milli = int(round(p * 1000))                  # p with up to 3 decimals, as an exact integer
    rank = -(-milli * n // 100_000)               # ceil(p/100 * n) in integers
    return min(max(rank, 1), n) - 1


@dataclass(eq=False)
class WaitCells:
    """Waits (seconds) grouped by cohort cell, ascending inside each cell."""

    codes: np.ndarray                       # (cells, 4) int64: interests (0/1), mode, lang, cls
    names: tuple[tuple[str, str, str, str], ...]
    offsets: np.ndarray                     # int64 (cells + 1): cell k is waits[offsets[k]:offsets[k+1]]
    waits: np.ndarray                       # float64

    def segment(self, k: int) -> np.ndarray:
        return self.waits[self.offsets[k]:self.offsets[k + 1]]


def _factor(col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct codes ascending, index of each value among them)."""
    col = col.astype(np.int64)
    if col.size and int(col.min()) >= 0 and int(col.max()) < (1 << 22):
        present = np.bincount(col) > 0
        lut = np.cumsum(present) - 1
        return np.flatnonzero(present), lut[col]
    uniq, inv = np.unique(col, return_inverse=True)
    return uniq, inv.reshape(-1)


def _name(names: Sequence[str], code: int) -> str:
    return str(names[code]) if 0 <= code < len(names) else str(code)


def _cell_numbers(cols: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Mixed-radix cell number per ticket and, per column, the code of each digit value.

    Small non-negative codes (the usual case) are their own digits, computed in place in
    int16: at 25M tickets every int64 temporary is 200 MB of fresh pages.
    """
    if all(c.size and int(c.min()) >= 0 for c in cols):
        radix = [int(c.max()) + 1 for c in cols]
        if int(np.prod(radix, dtype=np.float64)) < (1 << 31):
            dtype = np.int16 if int(np.prod(radix, dtype=np.float64)) < (1 << 15) else np.int32
            cell = cols[0].astype(dtype)
            for c, r in zip(cols[1:], radix[1:]):
                np.multiply(cell, r, out=cell)
                np.add(cell, c, out=cell, casting="unsafe")
            return cell, [np.arange(r) for r in radix]
    factors = [_factor(c) for c in cols]
    cell = np.zeros(cols[0].shape[0], dtype=np.int64)
    for uniq, idx in factors:
        np.multiply(cell, max(uniq.size, 1), out=cell)
        np.add(cell, idx, out=cell)
    return cell, [uniq for uniq, _ in factors]


def _group_by_cell(cell: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order grouping tickets by cell number, cell numbers present ascending, their sizes)."""
    if cell.dtype == np.int16:
        order = np.argsort(cell, kind="stable")              # a radix sort for 16-bit keys
        counts = np.bincount(cell)
        numbers = np.flatnonzero(counts)
        return order, numbers, counts[numbers]
    numbers, dense = _factor(cell)
    b = bits_for(cell.shape[0])
    key = (dense << b) | np.arange(cell.shape[0], dtype=np.int64)
    key.sort()
    return key & ((1 << b) - 1), numbers, np.bincount(dense, minlength=numbers.size)


def wait_cells(wait: np.ndarray, has: np.ndarray, mode: np.ndarray, lang: np.ndarray, cls: np.ndarray,
               names: dict[str, tuple[str, ...]]) -> WaitCells:
    """Group and sort the waits by cell: one O(n) grouping, then a sort per cell."""
    cell, digits = _cell_numbers([has, mode, lang, cls])
    order, numbers, sizes = _group_by_cell(cell)
    del cell
    waits = wait[order]
    del order
    offsets = np.zeros(numbers.size + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    for k in range(numbers.size):
        waits[offsets[k]:offsets[k + 1]].sort()
    codes = np.zeros((numbers.size, 4), dtype=np.int64)
    rest = numbers.astype(np.int64)
    for j in range(3, -1, -1):                               # undo the mixed-radix cell number
        size = max(digits[j].size, 1)
        codes[:, j] = digits[j][rest % size] if digits[j].size else 0
        rest //= size
    dim_names = (INTEREST_NAMES, names["mode"], names["lang"], names["cls"])
    cell_names = tuple(tuple(_name(dim_names[j], int(codes[k, j])) for j in range(4)) for k in range(numbers.size))
    return WaitCells(codes=codes, names=cell_names, offsets=offsets, waits=waits)  # type: ignore[arg-type]


def _count(segs: list[np.ndarray], v: float, side: Literal["left", "right"]) -> int:
    return sum(int(np.searchsorted(s, v, side=side)) for s in segs)


def kth_smallest(segs: Sequence[np.ndarray], k: int) -> float:
    """The k-th smallest (0-based) value of the union of ascending segments, exactly.

    Keeps a bracket [lo, hi] with (#values < lo) <= k < (#values <= hi) and narrows it with
    a strided sample of what lies inside (strided positions of a sorted segment are exact
    order statistics, so the sample's estimate is off by at most one stride per segment);
    once few values are inside, selects among them.
    """
    segs = [s for s in segs if s.size]
    if len(segs) == 1:
        return float(segs[0][k])
    lo, hi, below = -math.inf, math.inf, 0
    prev_m = -1
    while True:
        spans = [(0 if lo == -math.inf else int(np.searchsorted(s, lo, side="left")),
                  s.size if hi == math.inf else int(np.searchsorted(s, hi, side="right"))) for s in segs]
        m = sum(b - a for a, b in spans)
        if m <= _SMALL or m == prev_m:
            vals = np.concatenate([s[a:b] for s, (a, b) in zip(segs, spans)])
            return float(np.partition(vals, k - below)[k - below])
        if lo == hi:
            return float(lo)
        prev_m = m
        step = max(m // _SAMPLE, 1)
        sample = np.sort(np.concatenate([s[a:b:step] for s, (a, b) in zip(segs, spans)]))
        est = (k - below) * sample.size // m
        margin = len(segs) + 16
        lo2 = float(sample[max(est - margin, 0)])
        hi2 = float(sample[min(est + margin, sample.size - 1)])
        below_lo2 = _count(segs, lo2, "left")
        if below_lo2 <= k:
            lo, below = max(lo, lo2), max(below, below_lo2)
        else:
            hi = min(hi, lo2)
        if _count(segs, hi2, "right") > k:
            hi = min(hi, hi2)
        else:
            lo, below = hi2, _count(segs, hi2, "left")


def summary_ms(segs: Sequence[np.ndarray]) -> dict[str, Any]:
    """{count, p50, p90, p99, max} in milliseconds from ascending segments of waits in seconds."""
    segs = [s for s in segs if s.size]
    n = int(sum(s.size for s in segs))
    out: dict[str, Any] = {"count": n}
    for name, p in PERCENTILES:
        out[name] = kth_smallest(segs, rank_index(p, n)) * 1000.0 if n else None
    out["max"] = float(max(float(s[-1]) for s in segs)) * 1000.0 if n else None
    return out


def wait_figures(cells: Sequence[WaitCells], params: FairnessParams) -> dict[str, Any]:
    """wait_ms overall, wait_ms_by_cohort, wait_p99_ms_by_cohort and the worst-to-best ratios.

    Cohorts are named by the parts' names and listed in code order (as one table would).
    """
    all_segs: list[np.ndarray] = []
    groups: dict[str, dict[str, tuple[int, list[np.ndarray]]]] = {d: {} for d in DIMENSIONS}
    for wc in cells:
        for k in range(len(wc.names)):
            seg = wc.segment(k)
            all_segs.append(seg)
            for j, dim in enumerate(DIMENSIONS):
                name = wc.names[k][j]
                code, segs = groups[dim].setdefault(name, (int(wc.codes[k, j]), []))
                segs.append(seg)
    by_cohort: dict[str, dict[str, Any]] = {}
    for dim in DIMENSIONS:
        ordered = sorted(groups[dim].items(), key=lambda kv: (kv[1][0], kv[0]))
        by_cohort[dim] = {name: summary_ms(segs) for name, (_, segs) in ordered}
    ratios = worst_to_best(by_cohort, params)
    overall = [r["ratio"] for r in ratios.values() if r["ratio"] is not None]
    return {
        "wait_ms": summary_ms(all_segs),
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
