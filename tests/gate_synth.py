"""Synthetic results dicts for the gate tests, built with real LogHistogram objects.

Why: the gate's unit tests must not depend on a swarm run; a results dict with the
contract's shape and raw histograms drawn from a known distribution lets them assert
exactly what a regression of a given size does to each check.
"""
from __future__ import annotations

import numpy as np

from harness.histogram import LogHistogram

LATENCY_SECTIONS = ("pair_latency_ms", "relay_latency_ms")


def lognormal_ms(rng: np.random.Generator, n: int, median_ms: float = 40.0, sigma: float = 0.5) -> np.ndarray:
    return rng.lognormal(np.log(median_ms), sigma, n)


def results_from_samples(samples: dict[str, np.ndarray], violations: int = 0, jain: float = 0.97,
                         pairs_per_s: float = 50.0) -> dict:
    """A results dict in the results.json shape, summaries computed from real histograms."""
    out: dict = {
        "run": {"scenario": "synthetic", "target": "ws://127.0.0.1:1/ws", "seed": 1,
                "started": "2024-01-01T00:00:00Z", "duration_s": 10, "workers": 1},
        "throughput": {"pairs_per_s": pairs_per_s, "messages_per_s": 10 * pairs_per_s},
        "users": {"peak_concurrent": 100, "sessions": 500},
        "correctness": {"double_match": 0, "self_match": 0, "asymmetric_pair": 0, "cross_talk": violations,
                        "after_end_delivery": 0, "lost_messages": 0, "reordered_messages": 0, "ghost_match": 0,
                        "missing_partner_left": 0, "violations_total": violations, "examples": {}},
        "errors": {"total": 0},
        "fairness": {"jain_index": jain},
        "abuse": {"benign_exposure": 0.01},
        "histograms": {},
    }
    for name, values in samples.items():
        h = LogHistogram()
        h.record_many(values)
        out[name] = h.summary()
        out["histograms"][name.removesuffix("_ms").removesuffix("_latency")] = h.to_dict()  # "pair", as results.json
    return out


def synthetic_run(seed: int, n: int = 2000, shift_ms: float = 0.0, median_ms: float = 40.0,
                  violations: int = 0, jain: float = 0.97) -> dict:
    """One run: pair and relay latencies drawn from a lognormal, pair latency shifted by shift_ms."""
    rng = np.random.default_rng(seed)
    return results_from_samples(
        {
            "pair_latency_ms": lognormal_ms(rng, n, median_ms) + shift_ms,
            "relay_latency_ms": lognormal_ms(rng, 5 * n, 2.0, 0.4),
        },
        violations=violations, jain=jain,
    )
