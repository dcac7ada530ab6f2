"""budget: the memory a simulation will need, estimated from its plan before the run."""
from __future__ import annotations

from harness.population import PopulationModel
from harness.simulate import budget


def test_estimate_follows_the_planned_chats_and_warns_only_past_what_is_available():
    plan = PopulationModel(dau=200_000).build(seed=1, hours=1.0, start_hour=18.0)
    need = budget.estimate_bytes(plan)
    assert need == int(plan.chats.sum()) * budget.BYTES_PER_TICKET > 0
    assert budget.warning(plan, available=need) is None
    text = budget.warning(plan, available=need - 1)
    assert text is not None and "GB" in text and "--dau" in text


def test_a_day_of_3m_daily_users_is_estimated_near_its_measured_peak():
    # Measured (docs/simulate.md, Speed): 2 processes x 8.2 GB for 85.4M tickets.
    plan = PopulationModel(dau=3_000_000).build(seed=1, hours=24.0)
    assert 14e9 < budget.estimate_bytes(plan) < 19e9


def test_available_memory_is_read_from_the_system():
    have = budget.available_bytes()
    assert have is None or have > 0
