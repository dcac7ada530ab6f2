"""`chatload gate` and `chatload baseline` as CI runs them: real subprocesses, exit codes
0 (pass) / 1 (a check failed) / 2 (usage error), JUnit file, baseline save and use."""
from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from harness.gate import gate_results
from harness.gate.baseline import BaselineError, load_baseline, make_baseline
from harness.gate.thresholds import ThresholdsError
from tests.gate_synth import synthetic_run
from tests.support import ROOT, time_unit

GATES = """
[thresholds]
"correctness.violations_total" = "== 0"
"pair_latency_ms.p99" = ["< 1500", "<= 1.2 * baseline"]
"pair_latency_ms.p50" = "<= 1.2 * baseline"
"""


def chatload(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60 * time_unit())


@pytest.fixture()
def files(tmp_path):
    def write(name: str, data) -> str:
        path = tmp_path / name
        path.write_text(data if isinstance(data, str) else json.dumps(data))
        return str(path)

    return write


def test_baseline_save_then_gate_pass_and_fail(files, tmp_path):
    r1, r2 = files("r1.json", synthetic_run(1)), files("r2.json", synthetic_run(3))
    base = tmp_path / "ci" / "base.json"
    saved = chatload("baseline", "save", r1, r2, "--out", str(base))
    assert saved.returncode == 0, saved.stderr
    stored = json.loads(base.read_text())
    assert stored["chatload_baseline"] == 1 and len(stored["runs"]) == 2
    env = stored["environment"]
    assert {"python", "platform", "cpu_count", "cpu_model", "chatload_version", "git_commit", "date"} <= set(env)
    assert env["cpu_count"] >= 1 and env["python"].count(".") == 2
    assert stored["sources"] == ["r1.json", "r2.json"]

    shown = chatload("baseline", "show", str(base))
    assert shown.returncode == 0 and "2 run(s)" in shown.stdout

    gates = files("gates.toml", GATES)
    junit = tmp_path / "junit.xml"
    ok = chatload("gate", files("cur.json", synthetic_run(2)), "--thresholds", gates, "--baseline", str(base),
                  "--junit", str(junit))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "GATE PASSED: 4 checks, 4 passed" in ok.stdout
    assert ET.parse(junit).getroot().find("testsuite").get("failures") == "0"

    slow = chatload("gate", files("slow.json", synthetic_run(2, shift_ms=200.0)), "-t", gates, "-b", str(base),
                    "--junit", str(junit))
    assert slow.returncode == 1
    assert "FAIL pair_latency_ms.p99 <= 1.2 * baseline" in slow.stdout
    assert "FAIL pair_latency_ms.p50 <= 1.2 * baseline" in slow.stdout
    failed = [c.get("name") for c in ET.parse(junit).getroot().iter("testcase") if c.find("failure") is not None]
    assert failed == ["pair_latency_ms.p99 <= 1.2 * baseline", "pair_latency_ms.p50 <= 1.2 * baseline"]


def test_gate_without_baseline_skips_relative_checks_and_fails_on_violations(files):
    gates = files("gates.toml", GATES)
    clean = chatload("gate", files("r.json", synthetic_run(1)), "--thresholds", gates)
    assert clean.returncode == 0 and "2 skipped" in clean.stdout and "no baseline given" in clean.stdout
    broken = chatload("gate", files("v.json", synthetic_run(1, violations=4)), "--thresholds", gates)
    assert broken.returncode == 1 and "4 is not == 0" in broken.stdout


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing_results", "cannot read"),
        ("bad_json", "not valid JSON"),
        ("bad_thresholds", "did you mean 'pair_latency_ms'"),
        ("missing_thresholds", "cannot read thresholds file"),
        ("bad_baseline", "'runs' must be a non-empty list"),
    ],
)
def test_usage_errors_exit_2_with_a_message(files, tmp_path, case, message):
    results = files("r.json", synthetic_run(1))
    gates = files("gates.toml", GATES)
    base = None
    if case == "missing_results":
        results = str(tmp_path / "absent.json")
    elif case == "bad_json":
        results = files("broken.json", "{not json")
    elif case == "bad_thresholds":
        gates = files("typo.toml", '[thresholds]\n"pair_latncy_ms.p99" = "< 5"')
    elif case == "missing_thresholds":
        gates = str(tmp_path / "nope.toml")
    elif case == "bad_baseline":
        base = files("base.json", {"chatload_baseline": 1, "runs": []})
    args = ["gate", results, "--thresholds", gates] + (["--baseline", base] if base else [])
    proc = chatload(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_baseline_usage_errors(files, tmp_path):
    assert chatload("baseline").returncode == 2
    proc = chatload("baseline", "save", str(tmp_path / "absent.json"), "--out", str(tmp_path / "b.json"))
    assert proc.returncode == 2 and "cannot read" in proc.stderr
    assert not (tmp_path / "b.json").exists()


def test_gate_results_api_for_chatload_run(files, tmp_path):
    gates = files("gates.toml", GATES)
    base = files("base.json", make_baseline([synthetic_run(1)], ["r1.json"]))
    junit = tmp_path / "j.xml"
    passed, table = gate_results(synthetic_run(2), gates, base, junit)
    assert passed and table.startswith("check") and junit.exists()
    passed, table = gate_results(synthetic_run(2, shift_ms=200.0), gates, base)
    assert not passed and "GATE FAILED" in table
    # A plain results file is accepted as a one-run baseline.
    passed, _ = gate_results(synthetic_run(2), gates, files("plain.json", synthetic_run(1)))
    assert passed
    with pytest.raises(ThresholdsError):
        gate_results(synthetic_run(2), files("bad.toml", "[thresholds]\n'x.y' = '<'"))
    with pytest.raises(BaselineError):
        gate_results(synthetic_run(2), gates, str(tmp_path / "absent.json"))


def test_baseline_drops_tickets_and_refuses_a_baseline_as_input(files):
    run = synthetic_run(1)
    run["tickets"] = [{"user": "u1", "t_join": 0.0}] * 10
    data = make_baseline([run], ["r.json"])
    assert "tickets" not in data["runs"][0] and "histograms" in data["runs"][0]
    with pytest.raises(BaselineError, match="already a baseline"):
        make_baseline([data], ["base.json"])
    loaded = load_baseline(files("b.json", data))
    assert loaded.sources == ["r.json"] and loaded.environment == data["environment"]


def test_environment_notes_name_a_machine_change():
    from harness.gate.baseline import collect_environment, environment_notes

    here = collect_environment()
    assert environment_notes(here, here) == []
    other = {**here, "cpu_model": "Some Other CPU", "cpu_count": 64}
    notes = environment_notes(other, here)
    assert len(notes) == 2 and "CPU model 'Some Other CPU'" in notes[0] and "CPU count 64" in notes[1]
    assert environment_notes({}, here) == []
