"""Benchmark: build the full day's plan for 3 million daily users, every attribute. Target < 10 s.

    python -m pytest benchmarks/bench_population.py --benchmark-enable   # timed rounds
    python benchmarks/bench_population.py                                 # prints plan_build_seconds=X

Under the default `--benchmark-disable` (CI) the test runs the build once, as a smoke test.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # script mode: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.population import PopulationModel  # noqa: E402

DAU = 3_000_000


def build_day(dau: int = DAU, seed: int = 1):
    return PopulationModel(dau=dau).build(seed=seed, start_hour=0.0, hours=24.0)


def check(plan) -> None:
    """The plan really holds a day of visits with their attributes (so the timing means something)."""
    assert abs(plan.n - DAU) < 10_000, plan.n
    assert plan.interest_offsets[-1] == plan.interest_ids.shape[0] > 0
    for col in plan.COLUMNS:
        assert getattr(plan, col).shape == (plan.n,), col


def test_build_full_day_3m(benchmark):
    plan = benchmark.pedantic(build_day, rounds=3, iterations=1, warmup_rounds=0)
    check(plan)


def main() -> int:
    t0 = time.perf_counter()
    plan = build_day()
    elapsed = time.perf_counter() - t0
    check(plan)
    print(f"visits={plan.n} interests={plan.interest_ids.shape[0]}")
    print(f"plan_build_seconds={elapsed:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
