"""`benchmarks/loadgen.py --smoke` runs end to end against the reference server and ends
with `msgs_per_cpu_second=N` (N > 0); the speed target itself is judged in the benchmark."""
from __future__ import annotations

import re
import subprocess
import sys

from tests.support import ROOT, time_unit


def test_loadgen_smoke_prints_positive_figure_last():
    out = subprocess.run(
        [sys.executable, "benchmarks/loadgen.py", "--smoke", "--users", "8"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90 * time_unit(),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.strip().splitlines()
    m = re.fullmatch(r"msgs_per_cpu_second=(\d+)", lines[-1])
    assert m, lines[-1]
    assert int(m.group(1)) > 0
    checks = next(line for line in lines if line.startswith("checks"))
    assert "bad_order=0" in checks and "cross_talk=0" in checks and "errors=[]" in checks
    assert "paired users       8" in out.stdout
