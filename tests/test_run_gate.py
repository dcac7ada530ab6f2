"""`chatload run ... --gate`: run and gate in one, on real short runs.

Real `python -m harness.cli run` subprocesses (Locust master and one worker, the embedded
reference server or a faulty server on 127.0.0.1) gated with the repository's gates.toml:
the reference server passes against a baseline saved from its own earlier run; a server
that leaks messages to other chats fails, naming correctness.violations_total; a broken
gates file or baseline stops the command with exit 2 before any process starts.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.commands.run import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, EXIT_VIOLATIONS, _gate
from harness.gate.baseline import read_results
from tests.support import ROOT, free_port, python_server, time_unit

GATES = ROOT / "gates.toml"
USERS, DURATION = 12, "4s"
# The homogeneous, quick-chatting crowd of tests/test_gate_e2e.py: pair latency measures
# the server's pairing, not who can match whom, so an unchanged server passes reliably.
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
RELATIVE = ("pair latency p50 vs baseline", "pair latency p99 vs baseline", "relay latency p99 vs baseline")


def chatload(*args: str, timeout: float = 90.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout * time_unit(), stdin=subprocess.DEVNULL)


def swarm(out: Path, params: Path, *extra: str, seed: int = 3) -> subprocess.CompletedProcess:
    return chatload("run", "smoke", "--users", str(USERS), "--duration", DURATION, "--workers", "1",
                    "--seed", str(seed), "--params", str(params), "--out", str(out), *extra)


def rows(stdout: str) -> dict[str, str]:
    """Gate table rows printed by the run: check name -> result column (PASS, FAIL, SKIP...)."""
    table = stdout[stdout.index("check "):]
    out = {}
    for line in table.splitlines()[2:]:
        if not line.strip():
            break
        for verdict in ("PASS (within noise)", "PASS", "FAIL", "SKIP"):
            if f"  {verdict}" in line:
                out[line.split("  ")[0].strip()] = verdict
                break
    return out


def junit_cases(path: Path) -> dict[str, str]:
    """JUnit testcases: name -> 'failure' | 'skipped' | 'ok'."""
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None
    return {tc.get("name"): next((c.tag for c in tc if c.tag in ("failure", "skipped")), "ok")
            for tc in suite.iter("testcase")}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("run_gate")
    (d / "params.toml").write_text(PARAMS)
    return d


@pytest.fixture(scope="module")
def first_run(workdir: Path) -> subprocess.CompletedProcess:
    """The reference server gated without a baseline (relative checks skipped)."""
    return swarm(workdir / "first", workdir / "params.toml", "--gate", str(GATES))


# ---- exit 2 before anything starts ------------------------------------------------------------------
@pytest.mark.parametrize("gates, baseline, message", [
    ('[thresholds]\n"pair_latncy_ms.p99" = "< 5"\n', None, "did you mean 'pair_latency_ms'"),
    ('[thresholds\n', None, "gates.toml"),
    ('[thresholds]\n"pair_latency_ms.p99" = "about 5"\n', None, "pair_latency_ms.p99"),
    (None, "{not json", "BASE.json"),
    (None, "missing", "BASE.json"),
])
def test_broken_gates_file_or_baseline_exits_2_before_any_process_starts(
        tmp_path: Path, gates: str | None, baseline: str | None, message: str) -> None:
    gates_path = tmp_path / "gates.toml"
    if gates is None:
        gates_path.write_text(GATES.read_text())
    else:
        gates_path.write_text(gates)
    args = ["--gate", str(gates_path)]
    if baseline is not None:
        if baseline != "missing":
            (tmp_path / "BASE.json").write_text(baseline)
        args += ["--baseline", str(tmp_path / "BASE.json")]
    out = tmp_path / "out"
    proc = chatload("run", "smoke", "--out", str(out), *args, timeout=30)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not out.exists()  # no output directory: no server, no Locust process was started
    assert "starting the reference server" not in proc.stdout


def test_baseline_or_junit_without_gate_is_a_usage_error(tmp_path: Path) -> None:
    proc = chatload("run", "smoke", "--junit", str(tmp_path / "j.xml"), "--out", str(tmp_path / "o"), timeout=30)
    assert proc.returncode == 2 and "go with --gate" in proc.stderr
    assert not (tmp_path / "o").exists()


# ---- real runs ------------------------------------------------------------------------------------
def test_run_gates_without_baseline_and_writes_junit_in_out(workdir: Path, first_run) -> None:
    out = first_run.stdout
    assert first_run.returncode == 0, out[-3000:] + first_run.stderr[-2000:]
    assert out.index("correctness    violations_total") < out.index("GATE PASSED")  # the table after the summary
    table = rows(out)
    assert table["correctness.violations_total == 0"] == "PASS"
    assert all(table[name] == "SKIP" for name in RELATIVE), table
    cases = junit_cases(workdir / "first" / "junit.xml")
    assert cases["correctness.violations_total == 0"] == "ok" and cases["pair latency p99 vs baseline"] == "skipped"


def test_reference_server_passes_against_its_own_baseline(workdir: Path, first_run) -> None:
    assert first_run.returncode == 0
    saved = chatload("baseline", "save", str(workdir / "first" / "results.json"), "--out", str(workdir / "BASE.json"),
                     timeout=30)
    assert saved.returncode == 0, saved.stderr
    junit = workdir / "reports" / "again.xml"
    proc = swarm(workdir / "again", workdir / "params.toml", "--gate", str(GATES), "--baseline",
                 str(workdir / "BASE.json"), "--junit", str(junit), seed=11)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    table = rows(proc.stdout)
    assert "GATE PASSED" in proc.stdout
    assert all(table[name].startswith("PASS") for name in RELATIVE), table  # compared, not skipped
    cases = junit_cases(junit)
    assert set(cases.values()) == {"ok"} and set(RELATIVE) <= set(cases)
    assert not (workdir / "again" / "junit.xml").exists()  # --junit chose the place


def test_leaking_server_fails_the_gate_naming_violations(workdir: Path) -> None:
    port = free_port()
    with python_server(["-m", "tests.faulty_servers", "--fault", "leak", "--rate", "0.2", "--port", str(port)],
                       f"http://127.0.0.1:{port}/healthz"):
        proc = swarm(workdir / "leak", workdir / "params.toml", "--target", f"ws://127.0.0.1:{port}/ws",
                     "--gate", str(GATES))
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "GATE FAILED" in proc.stdout
    assert rows(proc.stdout)["correctness.violations_total == 0"] == "FAIL"
    assert junit_cases(workdir / "leak" / "junit.xml")["correctness.violations_total == 0"] == "failure"
    assert read_results(workdir / "leak" / "results.json")["correctness"]["cross_talk"] > 0


def test_a_failed_check_alone_makes_exit_1_and_never_hides_another_code(workdir: Path, first_run, capsys) -> None:
    """The exit code rule of --gate on real results: 0 -> 1 when a check fails; 130, 2, 3 stand."""
    assert first_run.returncode == 0
    results = read_results(workdir / "first" / "results.json")
    strict = workdir / "strict.toml"
    strict.write_text('[thresholds]\n"pair_latency_ms.p50" = "< 0.000001"\n')
    args = argparse.Namespace(gate=str(strict), baseline=None, junit=str(workdir / "strict.xml"))
    assert _gate(args, results, workdir, "completed", EXIT_OK) == EXIT_VIOLATIONS
    assert "GATE FAILED" in capsys.readouterr().out
    assert _gate(args, results, workdir, "interrupted", EXIT_INTERRUPTED) == EXIT_INTERRUPTED
    assert "did not complete (interrupted)" in capsys.readouterr().err
    args.gate = str(GATES)
    assert _gate(args, results, workdir, "completed", EXIT_OK) == EXIT_OK
    assert _gate(args, results, workdir, "completed", EXIT_VIOLATIONS) == EXIT_VIOLATIONS
    args.gate = str(workdir / "deleted-since.toml")  # vanished after the up-front check
    assert _gate(args, results, workdir, "completed", EXIT_OK) == EXIT_USAGE
