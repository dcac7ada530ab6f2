"""results.json of a simulation: the live run's sections that apply, in simulated time."""
from __future__ import annotations

import datetime as dt
from typing import Any

from .shard import SimSummary


def build_results(sim: SimSummary, *, matcher: str, seed: int, dau: int, hours: float, wall_s: float,
                  population: dict[str, Any] | None = None, engine: str | None = None) -> dict[str, Any]:
    horizon = sim.horizon_s
    return {
        "run": {
            "scenario": "simulate",
            "target": f"in-process:{matcher}",
            "seed": seed,
            "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "duration_s": horizon,
            "workers": 0,
            "simulated": True,
            "dau": dau,
            "hours": hours,
            "wall_s": round(wall_s, 3),
            "events": sim.events,
            "engine": engine,
            "tickets": sim.tickets,
            "processes": sim.jobs,
            "pools_per_process": sim.shards,
        },
        "pair_latency_ms": sim.hist.summary(),
        "throughput": {
            "pairs_per_s": sim.pairings / horizon if horizon > 0 else None,
            "messages_per_s": None,
        },
        "users": {"peak_concurrent": sim.peak_online, "sessions": sim.visits},
        "fairness": sim.fairness,
        "histograms": {"pair": sim.hist.to_dict()},
        "timeline": sim.timeline,
        "tickets": sim.ticket_sample,
        "population": population or {},
    }
