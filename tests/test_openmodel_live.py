"""Open-model arrivals in the live harness: on schedule whatever the backend does.

1. The dispatcher with real greenlets and slots that hold their visit: every arrival comes
   due on time, and those that find no slot are dropped, never delayed into a lower rate.
2. A real distributed swarm (master + 2 workers) against a deliberately slow backend (the
   faulty server's `slow` fault: every join waits before it is matched): the arrivals
   offered match the plan, the slots run out, and dropped arrivals and lateness are
   reported in results.json.
"""
from __future__ import annotations

import time
from pathlib import Path

import gevent
import numpy as np

from harness.openmodel_locust import ArrivalTally, Dispatcher, MergedArrivals, share_of
from harness.population import PopulationModel
from harness.population.timescale import plan_to_real
from harness.scenario_config import load
from tests.support import free_port, python_server, time_unit
from tests.swarm_support import run_swarm
from tests.test_scenarios import SMOKE


def test_worker_shares_are_disjoint_and_cover_the_plan() -> None:
    arrivals = np.arange(103, dtype=float)
    shares = [share_of(arrivals, i, 3) for i in range(3)]
    assert sorted(np.concatenate(shares).tolist()) == list(range(103))
    assert all(len(s) in (34, 35) for s in shares)


def _plan(n_per_s: float, seconds: float, k: float = 100.0):
    model = PopulationModel(dau=int(n_per_s / k * 86_400), peak_to_trough=1.0)
    return plan_to_real(model.build(seed=3, hours=seconds * k / 3600), k)


def test_dispatcher_keeps_the_schedule_when_slots_run_out() -> None:
    plan = _plan(40.0, 1.5)
    tally = ArrivalTally()
    d = Dispatcher(plan, np.arange(plan.n), time.time() + 0.1, max_wait_s=0.0, tally=tally)
    started: list[float] = []

    def slot() -> None:
        while True:
            got = d.take(timeout=0.2)
            if got is None:
                if d.sched.done:
                    return
                continue
            started.append(time.time() - got[2])
            gevent.sleep(0.5)  # a slow backend holds the slot
            d.release(got[0])

    for _ in range(4):
        d.add_slot()
    d.start()
    workers = [gevent.spawn(slot) for _ in range(4)]
    gevent.joinall([d.greenlet, *workers], timeout=10 * time_unit())
    stats = tally.drain()
    assert stats["scheduled"] == plan.n > 30  # every arrival came due, on the plan's clock
    assert stats["started"] + stats["dropped_arrivals"] == plan.n
    assert stats["dropped_arrivals"] > plan.n / 3  # 4 slots held 0.5 s cannot take 40 a second
    assert stats["started"] >= 4 and max(started) < 0.5 * time_unit()  # the started ones were on time
    merged = MergedArrivals()
    merged.merge(stats)
    section = merged.section(int(time.time()) - 5)
    assert section["lateness_ms"]["count"] == stats["started"] and section["pending_at_end"] == 0


def test_slow_backend_gets_the_scheduled_arrivals_and_drops_are_reported(tmp_path: Path) -> None:
    run_s, slots = 6, 10
    params = {**SMOKE, "arrival_max_wait_s": 0.2}
    port = free_port()
    with python_server(["-m", "tests.faulty_servers", "--fault", "slow", "--delay-ms", "1500", "--port", str(port)],
                       f"http://127.0.0.1:{port}/healthz"):
        run = run_swarm("steady", f"ws://127.0.0.1:{port}/ws", tmp_path, params, run_s, slots, workers=2)
    r = run["results"]
    assert r is not None and run["rc"] == 0, run["logs"]
    a = r["arrivals"]
    cfg = load("steady", overrides=params)
    plan = plan_to_real(cfg.model().build(seed=7, start_hour=cfg.start_hour, hours=cfg.window_hours(run_s)),
                        cfg.time_scale)
    # Plan time 0 is 0.5 s after the test start and dispatching stops when the run does.
    due = int(np.count_nonzero(plan.arrival_s < run_s - 1.0))
    assert 0.9 * due <= a["scheduled"] <= plan.n, (a, due, plan.n)
    assert a["started"] + a["dropped_arrivals"] + a["pending_at_end"] == a["scheduled"]
    assert a["dropped_arrivals"] > 0 and a["lateness_ms"]["count"] == a["started"] >= slots
    assert a["lateness_ms"]["p50"] is not None and a["lateness_ms"]["p50"] < 1000
    # The offered rate stayed on the plan's: about 10 a second in every full second.
    per = [p["scheduled"] for p in a["per_second"] if 1 <= p["t"] <= run_s - 2]
    assert per and min(per) >= 3 and sum(per) >= 0.7 * 10 * len(per), a["per_second"]
    assert r["pair_latency_ms"]["p50"] >= 1400  # the backend really was slow
    assert r["correctness"]["violations_total"] == 0, r["correctness"]["examples"]
    assert r["run"]["workers_reported"] == 2
