"""Pairing-core throughput (pytest-benchmark). Full figures: `python benchmarks/core_throughput.py`."""
from __future__ import annotations

import pytest

from benchmarks.core_workloads import WORKLOADS, joins_with_waiting_crowd, naive_with_waiting_crowd

N = 50_000


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_core_joins(benchmark, name):
    run = WORKLOADS[name](N)
    benchmark.extra_info["joins"] = N
    benchmark.pedantic(run, rounds=3, iterations=1)


def test_core_vs_naive_at_10k_waiting(benchmark):
    """The reference core and a clone-style list scan, each with 10,000 users waiting."""
    benchmark.extra_info["joins"] = 2_000
    core = joins_with_waiting_crowd(2_000, crowd=10_000)
    naive = naive_with_waiting_crowd(2_000, crowd=10_000)
    benchmark.pedantic(lambda: (core(), naive()), rounds=1, iterations=1)
