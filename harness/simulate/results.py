"""results.json of a simulation: the live run's sections that apply, in simulated time."""
from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from harness.fairness import FairnessParams, analyse
from harness.histogram import LogHistogram

from .engine import SimResult


def build_results(sim: SimResult, *, matcher: str, seed: int, dau: int, hours: float, wall_s: float,
                  fairness_params: FairnessParams, population: dict[str, Any] | None = None) -> dict[str, Any]:
    t = sim.tickets
    hist = LogHistogram()
    waits_ms = (t.t_paired[t.paired] - t.t_join[t.paired]) * 1000.0
    if waits_ms.size:
        hist.record_many(np.maximum(waits_ms, 0.0))
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
        },
        "pair_latency_ms": hist.summary(),
        "throughput": {
            "pairs_per_s": sim.pairings / horizon if horizon > 0 else None,
            "messages_per_s": None,
        },
        "users": {"peak_concurrent": sim.peak_online, "sessions": sim.visits},
        "fairness": analyse(t, fairness_params),
        "histograms": {"pair_latency_ms": hist.to_dict()},
        "population": population or {},
    }
