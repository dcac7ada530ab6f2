"""Pools dealt out to processes report exactly what one process would."""
from __future__ import annotations

import math
import os
import signal

import numpy as np
import pytest

from harness.fairness import FairnessParams
from harness.simulate import make_matcher, shard, simulate

from .sim_population import small_model

HOURS = 0.15


@pytest.fixture(scope="module")
def model_plan():
    model = small_model(lang_mix={"en": 0.5, "es": 0.3, "de": 0.2})
    return model, model.build(seed=7, hours=HOURS)


def _run(model_plan, jobs, **kw):
    model, plan = model_plan
    return shard.run(plan, model.chat_length_s, seed=3, horizon_s=HOURS * 3600, mode_names=model.MODES,
                     class_names=model.CLASSES, params=FairnessParams(), jobs=jobs, **kw)


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or math.isclose(a, b, rel_tol=1e-9) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def test_two_processes_report_what_one_does(model_plan):
    one = _run(model_plan, 1)
    two = _run(model_plan, 2)
    assert one.jobs == 1 and two.jobs == 2
    assert one.pairings > 1000 and one.fairness["pairings"] == one.pairings
    for name in ("visits", "pairings", "gave_up", "events", "tickets", "peak_online"):
        assert getattr(one, name) == getattr(two, name), name
    assert one.hist.to_dict()["buckets"] == two.hist.to_dict()["buckets"] and one.hist.count == one.fairness["paired"]
    assert _same(one.fairness, two.fairness)
    assert one.timeline == two.timeline and len(one.timeline) > 10         # the report's rows, split or not
    assert sum(r["pairs"] for r in one.timeline) * (one.timeline[1]["t"] - one.timeline[0]["t"]) == pytest.approx(one.pairings)
    assert 0 < len(two.ticket_sample) <= 4001 and len(one.ticket_sample) == 4000
    # every pool ran exactly once
    pools = [p for group in two.shards for p in group]
    assert sorted(pools) == sorted(one.shards[0]) and len(set(pools)) == len(pools) == 6


def test_the_peak_from_visit_spans_is_the_engines(model_plan):
    model, plan = model_plan
    sim = simulate(plan, make_matcher(), model.chat_length_s, seed=3, horizon_s=HOURS * 3600,
                   class_names=model.CLASSES)
    arrive, depart = shard.visit_spans(sim, plan.arrival_s)
    assert np.isfinite(depart).sum() > 100 and np.isinf(depart).sum() > 0
    assert np.all(depart >= arrive)
    assert shard.peak_online(arrive, depart) == sim.peak_online


def test_pools_are_dealt_whole_and_balanced(model_plan):
    _, plan = model_plan
    groups = shard.assign_pools(plan, 2)
    assert len(groups) == 2
    allv = np.sort(np.concatenate(groups))
    assert np.array_equal(allv, np.arange(plan.n))
    pools = shard.pool_of(plan.mode, plan.lang, len(plan.langs))
    assert not set(pools[groups[0]]) & set(pools[groups[1]])
    sizes = sorted(g.size for g in groups)
    assert sizes[0] > 0.6 * sizes[1]
    assert len(shard.assign_pools(plan, 50)) == 6      # never more processes than pools


def test_a_matcher_that_does_not_declare_independent_pools_runs_in_one_process(model_plan):
    s = _run(model_plan, 2, matcher="tests.unfair_matchers:LanguageFirst")
    assert s.jobs == 1 and s.pairings > 1000


def _failing_sampler(ca, cb, rng, n):
    raise RuntimeError("sampler exploded")


def test_a_failing_process_is_reported_with_its_error(model_plan):
    _, plan = model_plan
    with pytest.raises(shard.SimulationError, match="sampler exploded"):
        shard.run(plan, _failing_sampler, seed=1, horizon_s=HOURS * 3600, jobs=2)


def _killing_sampler(ca, cb, rng, n):
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_process_that_dies_is_reported(model_plan):
    _, plan = model_plan
    with pytest.raises(shard.SimulationError, match="died with exit code -9"):
        shard.run(plan, _killing_sampler, seed=1, horizon_s=HOURS * 3600, jobs=2)


def test_jobs_below_one_are_refused(model_plan):
    with pytest.raises(ValueError, match="jobs"):
        _run(model_plan, 0)


@pytest.mark.parametrize("jobs", [1, 2])
def test_progress_runs_through_both_stages(model_plan, jobs):
    seen: list[float] = []
    _run(model_plan, jobs, progress=seen.append)
    assert seen[-1] == 2.0
    assert all(b >= a for a, b in zip(seen, seen[1:])), "progress went backwards"
    if jobs == 1:   # (processes are polled every 0.2 s: this small run may be over before a poll)
        assert any(x < 1.0 for x in seen) and any(1.0 <= x < 2.0 for x in seen)   # simulating, then analysing


def test_stage_of_waits_for_every_process_to_finish_simulating():
    assert shard._stage_of([1.6, 0.5]) == 0.75          # one still simulates: the simulating stage
    assert shard._stage_of([1.0, 1.0]) == 1.0
    assert shard._stage_of([1.5, 1.25]) == pytest.approx(1.375)
    assert shard._stage_of([2.0, 2.0]) == 1.999         # 2.0 only once the results are in
