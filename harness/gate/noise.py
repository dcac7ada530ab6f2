"""Confidence intervals for percentiles from raw histograms, for noise-aware comparisons.

Why: a CI job compares a run's p99 with a baseline's p99. Both are estimates from a
finite sample, so an unchanged backend sometimes shows a higher p99 by chance. A plain
"p99 <= 1.2 * baseline" then fails now and then; the gate instead fails only when the
current run is worse than the bound *beyond the noise*.

Method (distribution-free, "order-statistic" interval). Among n samples, the number B
that fall below the true q-quantile is Binomial(n, q). So the true quantile lies between
the l-th and the u-th smallest samples with probability >= 1 - alpha, where
l = ppf(alpha/2) and u = ppf(1 - alpha/2) + 1 of that binomial (1-based ranks). The
histogram gives those order statistics up to one bucket: the interval takes the lower
edge of the bucket holding rank l and the upper edge of the bucket holding rank u
(clamped into the exact [min, max] seen), so bucketing only widens it. When the sample is
too small for a rank (p99 of 100 samples has no bounded upper rank at 99%), the
interval is clamped to the observed min/max and flagged `capped`.

A relative check "value <= F * baseline" then fails only if the *lower* end of the current
run's interval is above F times the *upper* end of the baseline's interval (plus an
optional absolute `min_delta`). If both intervals cover their true values (each misses
with probability <= alpha/2), an unchanged backend cannot fail, so the false-failure rate
per check is at most alpha (1% at the default confidence 0.99), for independent samples.

Samples within one run are not fully independent (a GC pause or a noisy neighbour hits
many pairings at once), so run-to-run spread can exceed these intervals. Two things cover
that: the factor F itself (1.2 = 20% slack), and baselines made of several repeated runs:
"envelope" (default) bounds by the worst run (max of the runs' upper ends for a `<`
check, min of their lower ends for a `>` check), which measures the machine's real
run-to-run spread; "pooled" merges the runs' histograms (exact: counts are summed) and
takes one tighter interval, for quiet machines.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.histogram import LogHistogram, bucket_lower, bucket_upper


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval; `capped` when clamped to the data's min/max."""

    point: float
    lo: float
    hi: float
    n: int
    capped: bool = False

    def text(self, confidence: float) -> str:
        cap = ", capped at data range" if self.capped else ""
        return f"{round(confidence * 100, 2):g}% CI [{_fmt(self.lo)}, {_fmt(self.hi)}] (n={self.n}{cap})"


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def _log_pmf(k: int, n: int, p: float) -> float:
    return (
        math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
        + k * math.log(p) + (n - k) * math.log1p(-p)
    )


def binom_ppf(prob: float, n: int, p: float) -> int:
    """Smallest k with P(Binomial(n, p) <= k) >= prob (exact, summed over a window that holds
    all but a negligible tail of the mass, so it costs O(sqrt(n)) not O(n))."""
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"probability {prob} not in [0, 1]")
    if n <= 0:
        return 0
    if p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    mean = n * p
    sd = math.sqrt(n * p * (1.0 - p))
    k0 = max(0, int(mean - 12 * sd - 40))
    k1 = min(n, int(mean + 12 * sd + 40))
    cdf = 0.0
    for k in range(k0, k1 + 1):
        cdf += math.exp(_log_pmf(k, n, p))
        if cdf >= prob * (1.0 - 1e-12):
            return k
    return k1


def rank_interval(n: int, q: float, confidence: float) -> tuple[int | None, int | None]:
    """0-based ranks (lo, hi) of the order statistics bracketing the q-th percentile (0..100)
    with the given confidence; None where the bracket falls outside the sample."""
    if n <= 0:
        return None, None
    alpha = 1.0 - confidence
    p = q / 100.0
    lower_1 = binom_ppf(alpha / 2.0, n, p)          # 1-based rank; 0 means below the sample
    upper_1 = binom_ppf(1.0 - alpha / 2.0, n, p) + 1  # 1-based rank; n+1 means above it
    lo = lower_1 - 1 if lower_1 >= 1 else None
    hi = upper_1 - 1 if upper_1 <= n else None
    return lo, hi


def _bucket_of_rank(counts: Sequence[int], rank: int) -> int:
    seen = 0
    for i, c in enumerate(counts):
        if c:
            seen += c
            if seen > rank:
                return i
    raise ValueError(f"rank {rank} beyond histogram count {seen}")


def percentile_interval(hist: LogHistogram, q: float, confidence: float) -> Interval | None:
    """The q-th percentile of a histogram with its confidence interval; None when empty."""
    if hist.count == 0:
        return None
    point = hist.percentile(q)
    lo_rank, hi_rank = rank_interval(hist.count, q, confidence)
    capped = lo_rank is None or hi_rank is None
    lo = hist.min if lo_rank is None else max(hist.min, bucket_lower(_bucket_of_rank(hist.counts, lo_rank)))
    hi = hist.max if hi_rank is None else min(hist.max, bucket_upper(_bucket_of_rank(hist.counts, hi_rank)))
    # The point estimate is interpolated from bucket values; keep the interval around it.
    return Interval(point=point, lo=min(lo, point), hi=max(hi, point), n=hist.count, capped=capped)


def as_histogram(raw: LogHistogram | Mapping[str, Any]) -> LogHistogram:
    return raw if isinstance(raw, LogHistogram) else LogHistogram.from_dict(raw)


def envelope(intervals: Iterable[Interval], upper: bool) -> Interval:
    """Combine several baseline runs by their worst case: for an upper bound (`<`, `<=`) the
    largest point and upper end, for a lower bound (`>`, `>=`) the smallest point and lower end."""
    items = list(intervals)
    if not items:
        raise ValueError("no intervals to combine")
    point = max(i.point for i in items) if upper else min(i.point for i in items)
    return Interval(
        point=point,
        lo=min(i.lo for i in items),
        hi=max(i.hi for i in items),
        n=sum(i.n for i in items),
        capped=any(i.capped for i in items),
    )


def pooled(hists: Iterable[LogHistogram | Mapping[str, Any]], q: float, confidence: float) -> Interval | None:
    """Merge repeated runs' histograms (exact) and take one interval from the pooled sample."""
    return percentile_interval(LogHistogram.merged(hists), q, confidence)


def baseline_interval(
    hists: Sequence[LogHistogram | Mapping[str, Any]], q: float, confidence: float, mode: str, upper: bool
) -> Interval | None:
    """The baseline's interval for a percentile from one or several runs."""
    if mode == "pooled" or len(hists) == 1:
        return pooled(hists, q, confidence)
    parts = [percentile_interval(as_histogram(h), q, confidence) for h in hists]
    present = [p for p in parts if p is not None]
    return envelope(present, upper) if present else None
