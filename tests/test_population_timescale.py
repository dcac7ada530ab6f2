"""Time compression: rates x K, durations / K, concurrency preserved."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from harness.population import PopulationModel
from harness.population.planning import preview
from harness.population.timescale import TimeScale, plan_to_real


def test_plan_to_real_divides_times_and_keeps_rows():
    plan = PopulationModel(dau=300_000).build(seed=3, hours=2)
    real = plan_to_real(plan, 60)
    assert real.time_scale == 60 and real.n == plan.n
    assert np.allclose(real.arrival_s * 60, plan.arrival_s)
    assert np.allclose(real.patience_s * 60, plan.patience_s, rtol=1e-6)
    assert np.array_equal(real.user_class, plan.user_class) and np.array_equal(real.chats, plan.chats)
    assert real.duration_s == pytest.approx(7200 / 60)
    assert np.array_equal(real.hourly_counts(), plan.hourly_counts())  # model hours are model hours
    twice = plan_to_real(plan_to_real(plan, 6), 10)
    assert twice.time_scale == 60 and np.allclose(twice.arrival_s, real.arrival_s)


def test_arrival_rate_per_real_second_is_k_times_the_model_rate():
    k = 120.0
    model = PopulationModel(dau=86_400, peak_to_trough=1.0)  # 1 arrival per model second
    real = plan_to_real(model.build(seed=4, hours=10), k)
    window = real.duration_s  # 300 real seconds
    per_real_s = real.n / window
    lo, hi = stats.poisson.interval(0.9999, k * window)
    assert lo <= real.n <= hi, per_real_s


def test_durations_shrink_and_rates_grow_consistently():
    ts = TimeScale(30)
    assert ts.to_real_s(3600.0) == 120.0 and ts.to_model_s(120.0) == 3600.0
    assert ts.rate_to_real(2.0) == 60.0 and ts.rate_to_model(60.0) == 2.0
    model = PopulationModel()
    d, _ = model.chat_length_s(1, 1, np.random.default_rng(1), size=10_000)
    real = ts.to_real_s(d)
    # messages in a chat are the same count on both clocks
    per_model = model.messages_rate(1) * d
    per_real = ts.rate_to_real(model.messages_rate(1)) * real
    assert np.allclose(per_model, per_real)


def test_preview_preserves_concurrency_and_multiplies_rates():
    model = PopulationModel()
    base = preview(model, hours=3, time_scale=1)
    fast = preview(model, hours=3, time_scale=60)
    for r1, r60 in zip(base.rows, fast.rows):
        assert r60.online == pytest.approx(r1.online) and r60.waiting == pytest.approx(r1.waiting)
        assert r60.arrivals_per_s == pytest.approx(60 * r1.arrivals_per_s)
        assert r60.pairs_per_s == pytest.approx(60 * r1.pairs_per_s)
        assert r60.messages_per_s == pytest.approx(60 * r1.messages_per_s)
    assert fast.real_duration_s == pytest.approx(3 * 3600 / 60)
    assert fast.slots == base.slots


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan"), "2", True])
def test_bad_time_scale_is_refused(bad):
    with pytest.raises(ValueError, match="time scale must be a positive number"):
        TimeScale(bad)
