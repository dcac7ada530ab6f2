"""Pre-fill: the visitors already online when a real-time window opens.

Why: an open-model run starts empty and reaches its steady concurrency only after about
one mean visit (over 20 minutes at the peak hour, K = 1). A real service at its peak hour
is not empty: about `arrival rate x mean visit` people are already there. The pre-fill adds
that many visits to the plan, drawn from the same model (the hour before the window, on a
seed stream of their own, so the window's own arrivals are unchanged), arriving evenly over
a short ramp instead of over the hour before. They play whole visits from there, which is
the approximation: someone online at the window's start would on average be part-way
through a visit.

Pure numpy over `Plan` (harness/population/model.py): no clock, no I/O.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from harness.population import PopulationModel
from harness.population.model import Plan
from harness.population.timescale import plan_to_real

#: Added to the run's seed for the pre-fill's own stream (any fixed offset works).
SEED_OFFSET = 0x5EED
MAX_HOURS = 48.0


def concat(a: Plan, b: Plan) -> Plan:
    """Rows of `a` then rows of `b` (same langs), with a's window metadata; unsorted."""
    if a.langs != b.langs:
        raise ValueError("plans with different language tables cannot be joined")
    cols = {c: np.concatenate([getattr(a, c), getattr(b, c)]) for c in Plan.COLUMNS}
    offsets = np.concatenate([a.interest_offsets[:-1], b.interest_offsets + a.interest_offsets[-1]])
    ids = np.concatenate([a.interest_ids, b.interest_ids])
    return dataclasses.replace(a, interest_offsets=offsets, interest_ids=ids, **cols)


def sort_by_arrival(plan: Plan) -> Plan:
    """The plan in arrival order (stable: equal times keep their order)."""
    order = np.argsort(plan.arrival_s, kind="stable")
    return plan.select(order)


def prefill_rows(model: PopulationModel, count: int, seed: int, start_hour: float, time_scale: float,
                 start_s: float, ramp_s: float) -> Plan:
    """`count` visits of the model from the hour before `start_hour`, on the real clock of a
    run at `time_scale`, re-timed to arrive evenly over [start_s, start_s + ramp_s).

    Only the visitors' attributes come from the model (their arrival times are replaced),
    so the hour is built with at least enough daily users to hold `count` visits: a small
    `dau` (an idle-connection run sets it near 0) still pre-fills."""
    if count < 0 or ramp_s <= 0 or start_s < 0:
        raise ValueError("count >= 0, ramp_s > 0 and start_s >= 0 are required")
    source = model
    if model.params.dau < count * 48:  # an hour holds at least dau / 24 x (1 - a) > count / 1.5 visits
        source = PopulationModel(dataclasses.replace(model.params, dau=count * 48))
    hours = 1.0
    while True:
        before = source.build(seed=int(seed) + SEED_OFFSET, start_hour=(start_hour - hours) % 24.0, hours=hours)
        if before.n >= count or hours >= MAX_HOURS:
            break
        hours *= 2
    if before.n < count:
        raise ValueError(f"the model has only {before.n} visits in {hours:g} hours; cannot pre-fill {count}")
    rows = plan_to_real(before.select(slice(before.n - count, before.n)), time_scale)  # the latest arrivals
    arrival = start_s + ramp_s * (np.arange(count, dtype=np.float64) + 0.5) / max(count, 1)
    return dataclasses.replace(rows, arrival_s=arrival, langs=model.langs, params=model.params)


def with_prefill(plan: Plan, model: PopulationModel, count: int, seed: int, start_s: float, ramp_s: float) -> Plan:
    """`plan` (on the real clock) plus `count` pre-fill visits, in arrival order."""
    if count <= 0:
        return plan
    extra = prefill_rows(model, count, seed, plan.start_hour, plan.time_scale, start_s, ramp_s)
    return sort_by_arrival(concat(plan, extra))


def expected_online(model: PopulationModel, start_hour: float) -> int:
    """About how many are online at `start_hour` (the preview's Little's law figure)."""
    from harness.population.planning import preview

    pv = preview(model, start_hour=start_hour, hours=1.0, time_scale=1.0)
    return int(round(pv.peak_online))

