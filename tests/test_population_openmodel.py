"""Open-model scheduler: arrivals stay on schedule against a slow backend; drops and lateness are counted."""
from __future__ import annotations

import heapq

import numpy as np
import pytest

from harness.population import PopulationModel
from harness.population.openmodel import OpenModelScheduler, lateness
from harness.population.timescale import plan_to_real


def simulate(arrivals: np.ndarray, slots: int, hold_s: float, start_delay_s: float = 0.0, max_wait_s: float = 0.0):
    """Drive the scheduler as a runner would: poll at every due time and every release, each user
    holding its slot for `hold_s` (the backend's speed) and really starting `start_delay_s` late.
    Returns the scheduler and the offered count seen at each poll (time, offered)."""
    sched = OpenModelScheduler(arrivals, slots, max_wait_s=max_wait_s)
    releases: list[tuple[float, int]] = []
    seen: list[tuple[float, int]] = []
    for _ in range(20 * arrivals.shape[0] + 100):  # bounded: every step starts, drops or releases someone
        candidates = [t for t in (sched.next_due_s(), releases[0][0] if releases else None) if t is not None]
        if not candidates:
            break
        now = min(candidates)
        while releases and releases[0][0] <= now:
            sched.release(heapq.heappop(releases)[1])
        for i in sched.poll(now):
            sched.started(i, now + start_delay_s)
            heapq.heappush(releases, (now + start_delay_s + hold_s, i))
        seen.append((now, sched.offered))
    else:
        raise AssertionError("the scheduler made no progress")
    return sched, seen


@pytest.fixture(scope="module")
def arrivals() -> np.ndarray:
    # 20 arrivals a real second for 60 s: a plan of 1,728,000 daily users... at K = 1
    plan = PopulationModel(dau=20 * 86_400 // 60, peak_to_trough=1.0).build(seed=2, hours=1.0)
    return plan_to_real(plan, 60).arrival_s


def test_slow_backend_does_not_lower_the_offered_load(arrivals):
    fast, seen_fast = simulate(arrivals, slots=100, hold_s=1.0)
    slow, seen_slow = simulate(arrivals, slots=100, hold_s=10.0)
    for sched, seen in ((fast, seen_fast), (slow, seen_slow)):
        # at every poll, exactly the arrivals scheduled so far were offered
        for now, offered in seen:
            assert offered == int(np.searchsorted(arrivals, now, side="right"))
        assert sched.offered == arrivals.shape[0]
        assert sched.started_count + sched.dropped_arrivals == arrivals.shape[0]
    assert fast.dropped_arrivals == 0  # about 20 online, 100 slots
    # slow: about 200 would be online, only 100 slots: many drops, slots saturated
    assert slow.dropped_arrivals > 0.3 * arrivals.shape[0]
    assert slow.started_count < 0.7 * arrivals.shape[0]


def test_lateness_is_measured_from_the_schedule(arrivals):
    sched, _ = simulate(arrivals, slots=1000, hold_s=1.0, start_delay_s=0.25)
    s = sched.lateness()
    assert s.count == arrivals.shape[0]
    assert s.p50 == pytest.approx(0.25) and s.max == pytest.approx(0.25) and s.late_over_1s == 0
    stats = sched.stats()
    assert stats["dropped_arrivals"] == 0 and stats["lateness_s"]["p99"] == pytest.approx(0.25)


def test_waiting_for_a_slot_until_the_deadline():
    sched, _ = simulate(np.array([0.0, 0.5, 0.6]), slots=1, hold_s=1.0, max_wait_s=0.7)
    # a0 starts at 0 and leaves at 1.0; a1 (waited 0.5 s) takes its slot; a2 hits its deadline at 1.3
    assert sched.dropped_arrivals == 1 and sched.dropped == [2]
    s = sched.lateness()
    assert s.count == 2 and s.max == pytest.approx(0.5)


def test_no_wait_drops_immediately_and_fifo():
    sched = OpenModelScheduler(np.array([0.0, 0.1, 0.2]), slots=1)
    assert sched.poll(0.0) == [0]
    assert sched.next_due_s() == pytest.approx(0.1)
    assert sched.poll(0.2) == [] and sched.dropped_arrivals == 2
    sched.release(0)
    assert sched.done and sched.next_due_s() is None
    with pytest.raises(ValueError, match="holds no slot"):
        sched.release(0)
    with pytest.raises(ValueError, match="was not started"):
        sched.started(1, 0.3)


def test_lateness_function_and_bad_input():
    s = lateness(np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.0, 1.5, 4.5, 2.9]))
    assert s.count == 4 and s.max == pytest.approx(2.5) and s.late_over_1s == 1
    assert s.p50 == pytest.approx(0.25)  # early starts count as on time
    assert lateness(np.array([]), np.array([])).p99 is None
    with pytest.raises(ValueError, match="differ in length"):
        lateness(np.array([0.0]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="sorted"):
        OpenModelScheduler(np.array([1.0, 0.0]), slots=1)
