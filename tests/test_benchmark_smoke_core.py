"""benchmarks/core_throughput.py runs in its smoke mode and prints every figure."""
from __future__ import annotations

import re
import subprocess
import sys

from tests.support import ROOT, time_unit

FIGURES = [
    "joins_no_interests_per_s", "joins_20pct_interests_per_s", "next_churn_per_s",
    "joins_100k_waiting_per_s", "core_10k_waiting_per_s", "naive_10k_waiting_per_s",
    "core_over_naive_ratio",
]


def test_core_throughput_smoke():
    out = subprocess.run(
        [sys.executable, "benchmarks/core_throughput.py", "--smoke"],
        cwd=ROOT, capture_output=True, text=True, timeout=120 * time_unit(), check=True,
    ).stdout
    values = dict(re.findall(r"^(\w+)=([0-9.]+)$", out, re.M))
    assert sorted(values) == sorted(FIGURES), out
    assert all(float(v) > 0 for v in values.values())
