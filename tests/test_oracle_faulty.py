"""The correctness oracle, end to end: real short swarms through `chatload run`.

Each deliberately faulty server (tests/faulty_servers) must be flagged by the counter
that names its fault, with exit code 1; servers that are unfair or slow but correct,
and the reference server, must never be (exit code 0, violations_total 0). The chat
parameters are tuned per fault so it shows within a few seconds: short oracle deadlines,
fast messages for the per-message faults, many give-ups for the ghost fault.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, free_port, python_server, time_unit

pytestmark = pytest.mark.slow

DURATION = "6s"
# Deadlines of 1 s instead of 5 s make missing tokens count within a short run (a
# slow machine raises CHATLOAD_TEST_TIME_UNIT, and with it the deadlines).
DEADLINE_S = 1.0 * time_unit()
COMMON = [f"oracle_deadline_s={DEADLINE_S}", f"token_wait_s={DEADLINE_S}", "think_time_s=[0.05, 0.2]"]
ONE_LANG = ['lang_mix={"en": 1.0}']
TEXT_ONLY = ['mode_mix={"text": 1.0}']
FAST_MESSAGES = ["message_rate_per_s=10"]


def chatload_run(target: str | None, out: Path, users: int, params: list[str], workers: int = 1) -> tuple[int, dict, str]:
    args = [sys.executable, "-m", "harness.cli", "run", "smoke", "--users", str(users), "--spawn-rate", str(users),
            "--duration", DURATION, "--workers", str(workers), "--seed", "11", "--out", str(out)]  # fmt: skip
    if target:
        args += ["--target", target]
    for p in COMMON + params:
        args += ["--param", p]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120 * time_unit(), stdin=subprocess.DEVNULL)
    results_path = out / "results.json"
    assert results_path.exists(), f"no results (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.returncode, json.loads(results_path.read_text()), proc.stdout + proc.stderr


def run_against_fault(fault: str, server_args: list[str], tmp_path: Path, users: int, params: list[str]) -> tuple[int, dict, str]:
    port = free_port()
    with python_server(
        ["-m", "tests.faulty_servers", "--fault", fault, "--port", str(port), *server_args],
        f"http://127.0.0.1:{port}/healthz",
    ):
        return chatload_run(f"ws://127.0.0.1:{port}/ws", tmp_path / fault, users, params)


FAULTS = [
    # fault, server args, users, params, the counter that must fire
    ("await_race", ["--delay-ms", "50"], 12, ONE_LANG + TEXT_ONLY + ["chat_median_s=0.5", "chat_max_s=2.0"], "double_match"),
    ("leak", ["--rate", "0.05"], 12, ONE_LANG + FAST_MESSAGES, "cross_talk"),
    (
        "keep_disconnected",
        [],
        8,
        TEXT_ONLY
        + ['lang_mix={"en": 0.5, "es": 0.5}', "give_up_share=1.0", "give_up_disconnect_share=1.0"]
        + ["patience_mean_s=0.3", "chat_median_s=1.0"],
        "ghost_match",
    ),
    ("drop", ["--rate", "0.01"], 12, ONE_LANG + ["message_rate_per_s=20"], "lost_messages"),
]


@pytest.mark.parametrize("fault, server_args, users, params, counter", FAULTS, ids=[f[0] for f in FAULTS])
def test_faulty_server_is_flagged(
    fault: str, server_args: list[str], users: int, params: list[str], counter: str, tmp_path: Path
) -> None:
    code, results, output = run_against_fault(fault, server_args, tmp_path, users, params)
    corr = results["correctness"]
    assert corr[counter] > 0, f"{fault}: {counter} not flagged: {json.dumps(corr)}\n{output}"
    assert corr["examples"][counter], f"{fault}: no example kept for {counter}"
    assert corr["violations_total"] >= corr[counter]
    assert code == 1, output
    assert f"{counter}" in output and "VIOLATIONS" in output


def test_lifo_queue_is_unfair_but_correct(tmp_path: Path) -> None:
    code, results, output = run_against_fault("lifo", [], tmp_path, 12, ONE_LANG)
    assert results["correctness"]["violations_total"] == 0, json.dumps(results["correctness"])
    assert code == 0, output
    assert results["throughput"]["pairs"] > 5


def test_slow_pairing_is_correct_and_measured(tmp_path: Path) -> None:
    code, results, output = run_against_fault("slow", ["--delay-ms", "200"], tmp_path, 10, ONE_LANG)
    assert results["correctness"]["violations_total"] == 0, json.dumps(results["correctness"])
    assert code == 0, output
    # Every pairing waits 200 ms on the server: the harness must see it.
    assert results["pair_latency_ms"]["p50"] >= 200.0
    assert results["pair_latency_ms"]["count"] > 5


def test_reference_server_is_never_flagged(tmp_path: Path) -> None:
    """The embedded reference server under every stressor used above at once, two workers."""
    params = [f"oracle_deadline_s={2 * DEADLINE_S}", *FAST_MESSAGES, 'lang_mix={"en": 0.5, "es": 0.5}']
    params += ["give_up_share=0.5", "patience_mean_s=0.3"]
    params += ["chat_median_s=1.0"]
    code, results, output = chatload_run(None, tmp_path / "reference", 12, params, workers=2)
    corr = results["correctness"]
    assert corr["violations_total"] == 0, json.dumps(corr)
    assert code == 0, output
    assert results["run"]["workers"] == 2
    assert results["throughput"]["pairs"] > 5 and results["throughput"]["messages"] > 50
    assert results["users"]["gave_up"] > 0
