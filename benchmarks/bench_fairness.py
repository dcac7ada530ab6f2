"""Fairness analysis of one million tickets (target: 0.7 s here; issue 5 asks under 5 s).

    python -m pytest benchmarks/bench_fairness.py --benchmark-enable
With benchmarks disabled (the default test run) it analyses 100,000 tickets once, as a smoke test.
`benchmarks/fairness_scale.py` measures the day's scale: partial() of 25M tickets, merging
parts, and the live path from ledger records.
"""
from __future__ import annotations

from harness.fairness import analyse

from .fairness_data import synthetic_tickets


def test_analyse_one_million_tickets(benchmark):
    n = 100_000 if benchmark.disabled else 1_000_000

    def setup():
        return (synthetic_tickets(n, seed=1),), {}

    result = benchmark.pedantic(analyse, setup=setup, rounds=1 if benchmark.disabled else 3, iterations=1)
    assert result["tickets"] == n
    assert result["pairings"] > 0.2 * n
    assert 0.0 < result["jain_index"] <= 1.0
