"""A mergeable log-bucket latency histogram (HDR-like), values in milliseconds.

Why: percentiles across Locust workers must be merged from counts, never averaged
(DESIGN.md). Every worker records into buckets whose edges grow by a fixed factor, so
any two histograms built with the same layout merge exactly by summing counts, and any
percentile is within 1% of the exact sample percentile.

Layout: bucket 0 holds [0, LOWEST * GROWTH); bucket i >= 1 holds
[LOWEST * GROWTH**i, LOWEST * GROWTH**(i+1)). Values above HIGHEST go to the last bucket
(their exact max is still kept). A bucket is reported by the value that minimises the
largest relative error over the bucket, 2*lo*g/(1+g), i.e. (g-1)/(g+1) = 0.94% at worst,
and every reported value is clamped into the exact [min, max] seen.

`record` is O(1) with one math.log call and no numpy: it sits on the per-message path.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

#: Bucket growth factor; worst relative error of a reported value is (g-1)/(g+1) = 0.94%.
GROWTH = 1.019
#: Lowest resolved value in ms (1 microsecond); anything at or below goes to bucket 0.
LOWEST = 0.001
#: Highest resolved value in ms (1 hour); anything above goes to the last bucket.
HIGHEST = 3_600_000.0

_LOG_G = math.log(GROWTH)
_INV_LOG_G = 1.0 / _LOG_G
_LOG_LOWEST = math.log(LOWEST)
NBUCKETS = int(math.ceil((math.log(HIGHEST) - _LOG_LOWEST) * _INV_LOG_G)) + 1
_LAST = NBUCKETS - 1
_FORMAT = 1


def bucket_index(value: float) -> int:
    """The bucket a value falls in (pure function of the shared layout)."""
    if value <= LOWEST:
        return 0
    i = int((math.log(value) - _LOG_LOWEST) * _INV_LOG_G)
    return i if i < _LAST else _LAST


def bucket_lower(index: int) -> float:
    """Lower edge of a bucket (0 for bucket 0)."""
    return 0.0 if index <= 0 else LOWEST * GROWTH**index


def bucket_upper(index: int) -> float:
    """Upper edge of a bucket (exclusive); the last bucket is open-ended."""
    return math.inf if index >= _LAST else LOWEST * GROWTH ** (index + 1)


def bucket_value(index: int) -> float:
    """The value reported for samples in a bucket: equal worst relative error at both edges."""
    if index <= 0:
        return LOWEST / 2.0
    lo = LOWEST * GROWTH**index
    return 2.0 * lo * GROWTH / (1.0 + GROWTH)


class LogHistogram:
    """Counts of samples (ms) in log-spaced buckets plus exact count, sum, min and max."""

    __slots__ = ("counts", "count", "total", "min", "max")

    def __init__(self) -> None:
        self.counts: list[int] = [0] * NBUCKETS
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf

    # -- recording -------------------------------------------------------------------
    def record(self, value: float) -> None:
        """Add one sample in ms. Negative values (clock skew) count as 0."""
        if value > LOWEST:
            i = int((math.log(value) - _LOG_LOWEST) * _INV_LOG_G)
            if i > _LAST:
                i = _LAST
        else:
            if value < 0.0:
                value = 0.0
            i = 0
        self.counts[i] += 1
        self.count += 1
        self.total += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value

    def record_many(self, values: Iterable[float] | np.ndarray) -> None:
        """Add many samples at once (vectorised; same buckets as `record`)."""
        arr = np.asarray(values, dtype=np.float64).ravel()
        if arr.size == 0:
            return
        arr = np.maximum(arr, 0.0)
        idx = np.zeros(arr.shape, dtype=np.int64)
        above = arr > LOWEST
        if above.any():
            raw = ((np.log(arr[above]) - _LOG_LOWEST) * _INV_LOG_G).astype(np.int64)
            idx[above] = np.minimum(raw, _LAST)
        binc = np.bincount(idx, minlength=NBUCKETS)
        counts = self.counts
        for i in np.flatnonzero(binc).tolist():
            counts[i] += int(binc[i])
        self.count += int(arr.size)
        self.total += float(arr.sum())
        self.min = min(self.min, float(arr.min()))
        self.max = max(self.max, float(arr.max()))

    def merge(self, other: LogHistogram) -> LogHistogram:
        """Add another histogram's samples into this one (exact); returns self."""
        if other.count == 0:
            return self
        mine = self.counts
        for i, c in enumerate(other.counts):
            if c:
                mine[i] += c
        self.count += other.count
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        return self

    def copy(self) -> LogHistogram:
        h = LogHistogram()
        return h.merge(self)

    def clear(self) -> None:
        self.__init__()

    # -- serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Compact, JSON- and msgpack-safe form: sparse {"bucket_index": count} with str keys."""
        return {
            "format": _FORMAT,
            "growth": GROWTH,
            "lowest": LOWEST,
            "count": self.count,
            "sum": self.total,
            "min": self.min if self.count else None,
            "max": self.max if self.count else None,
            "buckets": {str(i): c for i, c in enumerate(self.counts) if c},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LogHistogram:
        """Inverse of `to_dict`; refuses a histogram built with another bucket layout."""
        if data.get("growth", GROWTH) != GROWTH or data.get("lowest", LOWEST) != LOWEST:
            raise ValueError(
                f"histogram layout differs (growth={data.get('growth')}, lowest={data.get('lowest')});"
                " cannot merge exactly"
            )
        h = cls()
        counts = h.counts
        for key, c in data.get("buckets", {}).items():
            i = int(key)
            if not 0 <= i < NBUCKETS:
                raise ValueError(f"bucket index {i} out of range")
            counts[i] += int(c)
        h.count = int(data.get("count", sum(counts)))
        if h.count != sum(counts):
            raise ValueError("histogram count does not match its buckets")
        h.total = float(data.get("sum", 0.0))
        if h.count:
            h.min = float(data["min"])
            h.max = float(data["max"])
        return h

    @classmethod
    def merged(cls, histograms: Iterable[LogHistogram | Mapping[str, Any]]) -> LogHistogram:
        """One histogram from many (objects or their dicts)."""
        out = cls()
        for h in histograms:
            out.merge(h if isinstance(h, LogHistogram) else cls.from_dict(h))
        return out

    # -- queries ---------------------------------------------------------------------
    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def _value_at_rank(self, rank: int) -> float:
        """Approximate value of the rank-th smallest sample (0-based)."""
        if rank <= 0:
            return self.min
        if rank >= self.count - 1:
            return self.max
        seen = 0
        for i, c in enumerate(self.counts):
            if c:
                seen += c
                if seen > rank:
                    v = bucket_value(i)
                    return self.min if v < self.min else self.max if v > self.max else v
        return self.max  # unreachable when counts are consistent

    def percentile(self, q: float) -> float | None:
        """The q-th percentile (0..100), interpolated between ranks like numpy's default."""
        if self.count == 0:
            return None
        if not 0.0 <= q <= 100.0:
            raise ValueError(f"percentile {q} not in [0, 100]")
        pos = (self.count - 1) * q / 100.0
        lo = math.floor(pos)
        hi = math.ceil(pos)
        v_lo = self._value_at_rank(lo)
        if hi == lo:
            return v_lo
        v_hi = self._value_at_rank(hi)
        return v_lo + (pos - lo) * (v_hi - v_lo)

    def percentiles(self, qs: Sequence[float]) -> list[float | None]:
        return [self.percentile(q) for q in qs]

    def summary(self) -> dict[str, float | int | None]:
        """{count, p50, p90, p99, p999, max, mean} in ms rounded to 3 decimals; None when empty."""
        if self.count == 0:
            return {"count": 0, "p50": None, "p90": None, "p99": None, "p999": None, "max": None, "mean": None}
        r = lambda v: round(v, 3)  # noqa: E731 - tiny local formatter
        return {
            "count": self.count,
            "p50": r(self.percentile(50.0)),
            "p90": r(self.percentile(90.0)),
            "p99": r(self.percentile(99.0)),
            "p999": r(self.percentile(99.9)),
            "max": r(self.max),
            "mean": r(self.total / self.count),
        }

    def prometheus_buckets(self, bounds: Sequence[float]) -> list[int]:
        """Cumulative counts of samples <= each upper bound (a bucket counts whole, by its
        reported value; +Inf gives the total), for a Prometheus histogram exposition."""
        out: list[int] = []
        sorted_bounds = sorted(bounds)
        if list(bounds) != sorted_bounds:
            raise ValueError("bounds must be ascending")
        cum = 0
        i = 0
        nonzero = [(bucket_value(j), c) for j, c in enumerate(self.counts) if c]
        for b in sorted_bounds:
            while i < len(nonzero) and min(max(nonzero[i][0], self.min), self.max) <= b:
                cum += nonzero[i][1]
                i += 1
            out.append(cum)
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LogHistogram):
            return NotImplemented
        return (
            self.counts == other.counts
            and self.count == other.count
            and (self.count == 0 or (self.min == other.min and self.max == other.max))
        )

    def __repr__(self) -> str:
        return f"LogHistogram({self.summary()})"
