"""Every fairness figure equals the slow reference implementation on small random tables."""
from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings

from harness.fairness import analyse
from harness.fairness import reference_impl as ref

from .fairness_cases import params_strategy, ticket_tables

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def close(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@SETTINGS
@given(ticket_tables(), params_strategy)
def test_fifo_and_starvation_match_reference(t, p):
    fast = analyse(t, p)
    slow = ref.analyse(t, p)
    assert fast["pairings"] == slow["pairings"]
    assert fast["fifo_inversions"] == slow["fifo_inversions"]
    assert close(fast["fifo_inversion_rate"], slow["fifo_inversion_rate"])
    assert fast["starved"] == slow["starved"]
    assert fast["starved_detail"]["waited_past_threshold"] == slow["waited_past_threshold"]
    assert fast["starved_detail"]["gave_up_passed_over"] == slow["gave_up_passed_over"]


@SETTINGS
@given(ticket_tables(), params_strategy)
def test_waits_jain_and_rates_match_reference(t, p):
    fast = analyse(t, p)
    slow = ref.analyse(t, p)
    assert fast["wait_ms"] == slow["wait_ms"]
    assert fast["wait_ms_by_cohort"] == slow["wait_ms_by_cohort"]
    assert {d: v["ratio"] for d, v in fast["worst_to_best_p99_by_dimension"].items()} == slow["ratio_by_dimension"]
    assert close(fast["worst_to_best_p99_ratio"], slow["worst_to_best_p99_ratio"])
    assert close(fast["jain_index"], slow["jain_index"])
    for key in ("interest_match_rate", "fallback_rate", "repeat_partner_rate"):
        assert close(fast[key], slow[key]), key
