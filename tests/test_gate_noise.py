"""Percentile confidence intervals from histograms: exact binomial ranks, real coverage,
small samples, and the two ways of combining repeated baseline runs."""
from __future__ import annotations

import numpy as np
import pytest

from harness.gate.noise import (
    Interval, baseline_interval, binom_ppf, envelope, percentile_interval, pooled, rank_interval,
)
from harness.histogram import LogHistogram

scipy_stats = pytest.importorskip("scipy.stats")


def hist_of(values) -> LogHistogram:
    h = LogHistogram()
    h.record_many(values)
    return h


@pytest.mark.parametrize("n", [1, 10, 100, 537, 5000, 200_000])
@pytest.mark.parametrize("p", [0.5, 0.9, 0.99, 0.999])
@pytest.mark.parametrize("prob", [0.0005, 0.005, 0.025, 0.5, 0.975, 0.995, 0.9995])
def test_binom_ppf_matches_scipy(n, p, prob):
    assert binom_ppf(prob, n, p) == int(scipy_stats.binom.ppf(prob, n, p))


def test_binom_ppf_edges():
    assert binom_ppf(0.5, 0, 0.5) == 0
    assert binom_ppf(0.5, 10, 0.0) == 0
    assert binom_ppf(0.5, 10, 1.0) == 10
    with pytest.raises(ValueError):
        binom_ppf(1.5, 10, 0.5)


def test_rank_interval_brackets_the_point_rank_and_opens_for_small_samples():
    lo, hi = rank_interval(10_000, 99.0, 0.99)
    assert lo is not None and hi is not None and lo < 9899 < hi
    assert 9860 < lo and hi < 9930  # about +-2.6 sd of Binomial(10000, 0.99) around rank 9900
    # p99 of 100 samples: no sample rank is high enough for a 99% upper bound.
    assert rank_interval(100, 99.0, 0.99)[1] is None
    assert rank_interval(0, 50.0, 0.99) == (None, None)


def test_interval_covers_the_true_percentile_at_least_at_its_confidence():
    """Draw many samples from a known lognormal; the interval must hold the true p99 in at
    least ~95% of them at confidence 0.95 (bucketing only widens it)."""
    rng = np.random.default_rng(7)
    true_p99 = float(np.exp(np.log(40.0) + 0.5 * scipy_stats.norm.ppf(0.99)))
    trials, covered, widths = 300, 0, []
    for _ in range(trials):
        iv = percentile_interval(hist_of(rng.lognormal(np.log(40.0), 0.5, 3000)), 99.0, 0.95)
        covered += iv.lo <= true_p99 <= iv.hi
        widths.append((iv.hi - iv.lo) / true_p99)
        assert iv.lo <= iv.point <= iv.hi and not iv.capped
    assert covered / trials >= 0.92
    # ...and it is not vacuous: a few percent of the value wide, not the whole data range.
    assert np.median(widths) < 0.25


def test_interval_of_small_sample_is_capped_to_the_data():
    h = hist_of(np.linspace(10.0, 20.0, 50))
    iv = percentile_interval(h, 99.0, 0.99)
    assert iv.capped and iv.hi == pytest.approx(20.0) and iv.lo >= 10.0
    assert percentile_interval(LogHistogram(), 99.0, 0.99) is None


def test_interval_is_bucket_conservative_for_a_constant_sample():
    h = hist_of(np.full(1000, 42.0))
    iv = percentile_interval(h, 50.0, 0.99)
    assert iv.lo == iv.hi == pytest.approx(42.0)  # clamped into the exact [min, max]


def test_envelope_takes_the_worst_run_in_the_direction_of_the_check():
    a = Interval(point=10.0, lo=9.0, hi=11.0, n=100)
    b = Interval(point=12.0, lo=11.0, hi=14.0, n=100, capped=True)
    up = envelope([a, b], upper=True)
    down = envelope([a, b], upper=False)
    assert (up.point, up.lo, up.hi, up.n, up.capped) == (12.0, 9.0, 14.0, 200, True)
    assert down.point == 10.0
    with pytest.raises(ValueError):
        envelope([], upper=True)


def test_pooled_is_tighter_than_envelope_and_sits_inside_it():
    rng = np.random.default_rng(3)
    runs = [hist_of(rng.lognormal(np.log(40.0), 0.5, 2000)) for _ in range(5)]
    env = baseline_interval(runs, 99.0, 0.99, "envelope", upper=True)
    pool = baseline_interval([h.to_dict() for h in runs], 99.0, 0.99, "pooled", upper=True)
    assert pool.n == env.n == 10_000
    assert pool.hi - pool.lo < env.hi - env.lo
    assert env.lo <= pool.lo and pool.hi <= env.hi
    assert pooled(runs[:1], 99.0, 0.99) == percentile_interval(runs[0], 99.0, 0.99)
