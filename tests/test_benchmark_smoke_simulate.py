"""benchmarks/simulate_day.py --smoke runs end to end (the speed itself is measured by hand)."""
from __future__ import annotations

import subprocess
import sys

from .support import ROOT, time_unit


def test_simulate_day_smoke():
    proc = subprocess.run([sys.executable, "benchmarks/simulate_day.py", "--smoke"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120 * time_unit())
    assert proc.returncode == 0, proc.stderr
    out = dict(kv.split("=", 1) for line in proc.stdout.splitlines() for kv in line.split() if "=" in kv)
    assert int(out["pairings"]) > 0 and int(out["tickets"]) > int(out["pairings"])
    assert out["fifo_inversion_rate"] == "0.0"
    assert float(out["simulate_window_seconds"]) > 0
