"""Arrivals: a non-homogeneous Poisson process on the diurnal curve, with a burst."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from harness.population import PopulationModel
from harness.population.arrivals import DAY_S, HOUR_S, ArrivalCurve


def closed_form_hour(curve: ArrivalCurve, h: int) -> float:
    """Integral of the sinusoid over model hour h, written out independently of the grid."""
    base, a = curve.dau / DAY_S, curve.amplitude
    phase = lambda t: 2 * math.pi * (curve.start_hour + t / HOUR_S - curve.peak_hour_utc) / 24
    return base * (HOUR_S + a * DAY_S / (2 * math.pi) * (math.sin(phase((h + 1) * HOUR_S)) - math.sin(phase(h * HOUR_S))))


def test_expected_counts_match_the_closed_form():
    curve = PopulationModel(dau=1_000_000).curve(start_hour=5.0)
    for h in range(24):
        assert curve.expected_count(h * HOUR_S, (h + 1) * HOUR_S, DAY_S) == pytest.approx(closed_form_hour(curve, h), rel=1e-6)
    assert curve.expected_count(0, DAY_S) == pytest.approx(1_000_000, rel=1e-6)


def test_peak_to_trough_and_peak_hour():
    curve = PopulationModel(peak_to_trough=1.5, peak_hour_utc=3.0).curve()
    ts = np.arange(0, DAY_S, 60.0)
    rate = curve.rate(ts)
    assert rate.max() / rate.min() == pytest.approx(1.5, rel=1e-3)
    assert ts[np.argmax(rate)] / HOUR_S == pytest.approx(3.0, abs=1 / 60)


def test_hourly_counts_inside_their_poisson_intervals():
    model = PopulationModel(dau=400_000)
    plan = model.build(seed=7, hours=24.0)
    counts = plan.hourly_counts()
    expected = np.array([model.curve().expected_count(h * HOUR_S, (h + 1) * HOUR_S, DAY_S) for h in range(24)])
    lo, hi = stats.poisson.interval(0.9999, expected)
    assert np.all((counts >= lo) & (counts <= hi)), (counts, expected)
    # jointly: the 24 counts fit their expectations
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert stats.chi2.sf(chi2, df=24) > 1e-3
    # and the daily shape is there: the peak hour has clearly more arrivals than the trough
    assert counts[2] > 1.3 * counts[14]


def test_flat_curve_gives_exponential_gaps():
    curve = ArrivalCurve(dau=DAY_S * 20, peak_to_trough=1.0, peak_hour_utc=0.0)  # 20 a second
    t = curve.sample(np.random.default_rng(3), 600.0)
    gaps = np.diff(t)
    assert stats.kstest(gaps, stats.expon(scale=1 / 20).cdf).pvalue > 1e-3
    per_second = np.bincount(t.astype(int), minlength=600)
    assert per_second.var() / per_second.mean() == pytest.approx(1.0, abs=0.15)  # Poisson dispersion


def test_flash_crowd_multiplies_arrivals_within_a_minute():
    model = PopulationModel(dau=86_400 * 5, peak_to_trough=1.0, burst_multiplier=10.0, burst_start_s=1200.0,
                            burst_ramp_s=60.0, burst_hold_s=600.0, burst_decay_s=300.0)
    curve = model.curve()
    assert curve.rate(1260.0) == pytest.approx(50.0)  # 10x after a minute
    assert curve.rate(1230.0) == pytest.approx(27.5)  # halfway up the ramp
    assert curve.rate(1199.0) == pytest.approx(5.0) and curve.rate(2400.0) == pytest.approx(5.0)
    plan = model.build(seed=11, hours=1.0)
    t = plan.arrival_s
    before = np.count_nonzero(t < 1200)
    plateau = np.count_nonzero((t >= 1260) & (t < 1860))
    for observed, mean in ((before, 1200 * 5.0), (plateau, 600 * 50.0)):
        lo, hi = stats.poisson.interval(0.9999, mean)
        assert lo <= observed <= hi, (observed, mean)
    assert curve.expected_count(0, HOUR_S) == pytest.approx(5 * 3600 + 45 * (30 + 600 + 150), rel=1e-4)


def test_zero_length_ramp_is_a_step():
    curve = ArrivalCurve(dau=DAY_S, peak_to_trough=1.0, peak_hour_utc=0, burst_multiplier=4.0, burst_start_s=100.0,
                         burst_ramp_s=0.0, burst_hold_s=100.0, burst_decay_s=0.0)
    assert curve.expected_count(0, 1000) == pytest.approx(1000 + 3 * 100, rel=1e-6)


def test_arrivals_sorted_inside_window_and_empty_cases():
    plan = PopulationModel(dau=100_000).build(seed=1, start_hour=20.0, hours=2.0)
    assert np.all(np.diff(plan.arrival_s) >= 0)
    assert plan.arrival_s[0] >= 0 and plan.arrival_s[-1] < 2 * HOUR_S
    assert PopulationModel(dau=0).build(seed=1, hours=1).n == 0
    with pytest.raises(ValueError, match="hours must be positive"):
        PopulationModel().build(seed=1, hours=0)
