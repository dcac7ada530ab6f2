"""The swarm-at-scale benchmark runs (--smoke: a 2-worker server, 2 Locust workers, 400
pre-filled visitors plus real-time arrivals for 15 s) and prints its figures."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.support import ROOT, time_unit


def test_swarm_scale_smoke_prints_its_figures() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "swarm_scale.py"), "--smoke"],
        cwd=ROOT, capture_output=True, text=True, timeout=180 * time_unit(),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    f = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line and not line.startswith("#"))
    assert int(f["peak_connected_users"]) >= 300, out.stdout  # most of the 400 pre-filled are on at once
    assert int(f["results_peak_concurrent"]) >= 300
    assert float(f["pair_latency_p99_ms"]) >= float(f["pair_latency_p50_ms"]) > 0
    assert float(f["relay_latency_p99_ms"]) > 0 and int(f["messages"]) > 0
    assert int(f["arrivals_started"]) >= 400 and f["dropped_arrivals"] == "0"
    assert int(f["violations"]) == 0 and json.loads(f["errors"]) == {}
    assert int(f["server_bytes_per_connection"]) > 0 and int(f["harness_bytes_per_connection_total"]) > 0
    assert f["limit"]  # "none" or the first limit hit
