"""The scaling benchmark runs (--smoke) and prints its figures as name=value lines."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.support import ROOT, time_unit

LIMIT = 120 * time_unit()  # about 15 s on a quiet 2-core machine
pytestmark = pytest.mark.timeout(LIMIT + 30 * time_unit())


def _run_smoke() -> tuple[int, str, str]:
    """The benchmark in its own process group, so a hang cannot leave its servers behind."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "server_scaling.py"), "--smoke"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=LIMIT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"server_scaling.py --smoke took over {LIMIT:.0f}s:\n{out}\n{err}")
    return proc.returncode, out, err


def test_server_scaling_smoke_prints_positive_figures() -> None:
    code, stdout, stderr = _run_smoke()
    assert code == 0, stderr
    figures = dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)
    for n in (1, 2):
        assert float(figures[f"workers_{n}_pairs_per_second"]) > 0, stdout
        assert float(figures[f"workers_{n}_relayed_messages_per_second"]) > 0, stdout
    assert float(figures["workers_1_crossed_share"]) == 0.0  # one process: nothing can cross
    assert 0.0 <= float(figures["workers_2_crossed_share"]) <= 1.0
    for label in ("single", "local", "crossing"):
        assert float(figures[f"cost_{label}_server_cpu_us_per_message"]) > 0, stdout
        assert float(figures[f"cost_{label}_one_pair_message_latency_us"]) > 0, stdout
    assert int(figures["idle_300_connections"]) == 300 and int(figures["idle_300_failed"]) == 0
    assert float(figures["idle_300_server_bytes_per_connection"]) > 0
    assert all(n > 0 for n in json.loads(figures["idle_300_per_worker"]))  # both workers took some
