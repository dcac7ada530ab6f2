"""The server throughput benchmark runs (--smoke) and prints its figures as name=value lines."""
from __future__ import annotations

import subprocess
import sys

from tests.support import ROOT, time_unit

FIGURES = ("pairs_per_second", "relayed_messages_per_second", "pair_latency_p50_ms", "pair_latency_p99_ms")


def test_server_throughput_smoke_prints_positive_figures() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "server_throughput.py"), "--smoke"],
        cwd=ROOT, capture_output=True, text=True, timeout=120 * time_unit(),
    )
    assert out.returncode == 0, out.stderr
    figures = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    for name in FIGURES:
        assert name in figures, out.stdout
        assert float(figures[name]) > 0, f"{name}={figures[name]}"
    assert float(figures["pair_latency_p99_ms"]) >= float(figures["pair_latency_p50_ms"])
