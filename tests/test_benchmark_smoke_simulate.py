"""benchmarks/simulate_day.py --smoke runs end to end (the speed itself is measured by hand)."""
from __future__ import annotations

import os
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


def test_simulate_day_refuses_a_full_run_without_the_kernel():
    """Without the C kernel a day would take hours and run out of memory: it says so instead."""
    proc = subprocess.run([sys.executable, "benchmarks/simulate_day.py", "--dau", "1000", "--hours", "0.01"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60 * time_unit(),
                          env={**os.environ, "CHATLOAD_SIM_KERNEL": "0"})
    assert proc.returncode == 2 and "engine=python" in proc.stdout
    assert "CHATLOAD_SIM_KERNEL=0" in proc.stderr and "pip install -e ." in proc.stderr
