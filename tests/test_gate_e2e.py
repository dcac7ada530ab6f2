"""The gate on real runs (short mode): the reference server passes against its own
baseline five times in a row; a server slowed by 200 ms per pairing and one that leaks
messages to other chats (cross-talk) fail, naming the right checks.

Every run is a real `chatload run` (Locust master and worker subprocesses, TCP on
127.0.0.1) against a real server subprocess, gated with the repository's gates.toml.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.gate import gate_results, run_gate
from harness.gate.evaluate import all_passed
from harness.gate.baseline import read_results, save_baseline
from tests.support import ROOT, free_port, python_server, time_unit

pytestmark = pytest.mark.slow

GATES = ROOT / "gates.toml"
USERS, DURATION, REPEATS = 12, "4s", 5

# A homogeneous crowd (one mode, one language, no interests, nobody gives up) that ends
# chats quickly: pair latency then measures the server's pairing, not who can match whom.
PARAMS = """
mode_mix = {text = 1.0}
lang_mix = {en = 1.0}
interest_share = 0.0
give_up_share = 0.0
chat_median_s = 0.6
chat_sigma = 0.4
chat_max_s = 2.0
message_rate_per_s = 4.0
typing_share = 0.0
end_next = 1.0
end_leave = 0.0
end_disconnect = 0.0
think_time_s = [0.05, 0.2]
"""


def chatload_run(out: Path, params: Path, target: str | None = None, seed: int = 3) -> tuple[int, dict]:
    args = [sys.executable, "-m", "harness.cli", "run", "smoke", "--users", str(USERS), "--duration", DURATION,
            "--workers", "1", "--seed", str(seed), "--params", str(params), "--out", str(out)]
    if target:
        args += ["--target", target]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=90 * time_unit())
    results_path = out / "results.json"
    assert results_path.exists(), f"no results (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc.returncode, read_results(results_path)


def failed_checks(table: str) -> set[str]:
    return {line.split(":")[0].removeprefix("  FAIL ").strip() for line in table.splitlines() if line.startswith("  FAIL ")}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("gate_e2e")
    (d / "params.toml").write_text(PARAMS)
    return d


@pytest.fixture(scope="module")
def baseline(workdir) -> Path:
    rc, _ = chatload_run(workdir / "base", workdir / "params.toml")
    assert rc == 0
    save_baseline([workdir / "base" / "results.json"], workdir / "BASE.json")
    return workdir / "BASE.json"


def test_unchanged_reference_server_passes_five_times(workdir, baseline):
    for i in range(REPEATS):
        rc, results = chatload_run(workdir / f"again{i}", workdir / "params.toml", seed=10 + i)
        assert rc == 0
        outcomes, table = run_gate(results, GATES, baseline, workdir / f"junit{i}.xml", verbose=True)
        print(f"--- unchanged run {i + 1}/{REPEATS}\n{table}")
        assert all_passed(outcomes), f"unchanged run {i + 1}/{REPEATS} failed the gate:\n{table}"
        # The relative checks really ran: a baseline was given and every figure was there.
        relative = [o for o in outcomes if "vs baseline" in o.name]
        assert len(relative) == 3 and not any(o.skipped for o in relative), table
        assert all("noise-aware limit" in o.detail for o in relative if "latency" in o.name), table


def _faulty(fault: str, workdir: Path, baseline: Path) -> tuple[dict, bool, str]:
    port = free_port()
    with python_server(["-m", "tests.faulty_servers", "--fault", fault, "--port", str(port)],
                       f"http://127.0.0.1:{port}/healthz"):
        _, results = chatload_run(workdir / fault, workdir / "params.toml", target=f"ws://127.0.0.1:{port}/ws")
    passed, table = gate_results(results, GATES, baseline, workdir / f"junit-{fault}.xml")
    return results, passed, table


def test_server_slowed_by_200ms_per_pairing_fails_on_pair_latency(workdir, baseline):
    _, passed, table = _faulty("slow", workdir, baseline)
    assert not passed
    failed = failed_checks(table)
    assert "pair latency p50 vs baseline" in failed, table
    assert not any(name.startswith("correctness") for name in failed), table


def test_cross_talk_server_fails_on_correctness(workdir, baseline):
    results, passed, table = _faulty("leak", workdir, baseline)
    assert results["correctness"]["cross_talk"] > 0
    assert not passed
    assert "correctness.violations_total == 0" in failed_checks(table), table
