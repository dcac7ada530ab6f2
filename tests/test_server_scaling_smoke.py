"""The scaling benchmark runs (--smoke) and prints its figures as name=value lines."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.support import ROOT, time_unit


def test_server_scaling_smoke_prints_positive_figures() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "server_scaling.py"), "--smoke"],
        cwd=ROOT, capture_output=True, text=True, timeout=180 * time_unit(),
    )
    assert out.returncode == 0, out.stderr
    figures = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    for n in (1, 2):
        assert float(figures[f"workers_{n}_pairs_per_second"]) > 0, out.stdout
        assert float(figures[f"workers_{n}_relayed_messages_per_second"]) > 0, out.stdout
    assert float(figures["workers_1_crossed_share"]) == 0.0  # one process: nothing can cross
    assert 0.0 <= float(figures["workers_2_crossed_share"]) <= 1.0
    for label in ("single", "local", "crossing"):
        assert float(figures[f"cost_{label}_server_cpu_us_per_message"]) > 0, out.stdout
    assert int(figures["idle_300_connections"]) == 300 and int(figures["idle_300_failed"]) == 0
    assert float(figures["idle_300_server_bytes_per_connection"]) > 0
    assert all(n > 0 for n in json.loads(figures["idle_300_per_worker"]))  # both workers took some
