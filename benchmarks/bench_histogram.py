"""pytest-benchmark: LogHistogram.record (per-message path) and merging worker histograms."""
from __future__ import annotations

import numpy as np

from harness.histogram import LogHistogram

SAMPLES = np.random.default_rng(1).lognormal(mean=1.0, sigma=1.0, size=10_000).tolist()


def test_bench_record(benchmark):
    def run() -> LogHistogram:
        h = LogHistogram()
        rec = h.record
        for v in SAMPLES:
            rec(v)
        return h

    h = benchmark(run)
    assert h.count == len(SAMPLES)


def test_bench_merge_and_summary(benchmark):
    workers = []
    for k in range(8):
        h = LogHistogram()
        h.record_many(np.random.default_rng(k).lognormal(mean=1.0, sigma=1.2, size=5_000))
        workers.append(h.to_dict())

    def run() -> dict:
        return LogHistogram.merged(workers).summary()

    s = benchmark(run)
    assert s["count"] == 40_000
