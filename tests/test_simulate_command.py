"""`chatload simulate` end to end, as a subprocess: results.json, progress bar, exit codes."""
from __future__ import annotations

import json
import subprocess
import sys

from harness.simulate import kernel

from .support import ROOT, time_unit


def chatload(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", "simulate", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60 * time_unit())


def test_writes_results_with_live_sections(tmp_path):
    out = tmp_path / "sim"
    proc = chatload("--dau", "60000", "--hours", "0.1", "--seed", "3", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "100%" in proc.stderr                     # the progress bar, both stages
    assert "simulating" in proc.stderr and "analysing" in proc.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["run"]["seed"] == 3 and res["run"]["simulated"] is True and res["run"]["duration_s"] == 360.0
    built = kernel._kernel is not None
    assert res["run"]["engine"] == ("kernel" if built else "python")
    assert ("the Python engine runs" in proc.stderr) is not built
    assert res["pair_latency_ms"]["count"] > 100
    assert res["throughput"]["pairs_per_s"] > 0
    assert res["users"]["sessions"] > 0 and res["users"]["peak_concurrent"] > 0
    f = res["fairness"]
    for key in ("jain_index", "fifo_inversion_rate", "wait_ms", "wait_p99_ms_by_cohort", "starved",
                "interest_match_rate", "fallback_rate", "repeat_partner_rate", "worst_to_best_p99_ratio"):
        assert key in f, key
    assert f["fifo_inversion_rate"] == 0.0
    assert set(f["wait_ms"]) >= {"p50", "p90", "p99", "max"}
    assert f["pairings"] * 2 == res["pair_latency_ms"]["count"]
    # what the report plots: the raw histogram, a timeline, a sample of tickets; and the report itself
    assert res["histograms"]["pair"]["count"] == res["pair_latency_ms"]["count"]
    assert len(res["timeline"]) == 360 and {"t", "pairs", "online", "waiting", "in_chat"} <= set(res["timeline"][0])
    assert 0 < len(res["tickets"]) <= 4000 and all("t_join" in t for t in res["tickets"])
    html = (out / "report.html").read_text()
    assert "simulated in-process: no correctness checks" in html and "Waiting time against join time" in html


def test_params_file_and_custom_matcher(tmp_path):
    params = tmp_path / "sim.toml"
    params.write_text('[population]\ninterest_share = 0.0\n[fairness]\nstarvation_threshold_s = 1.0\n')
    out = tmp_path / "lifo"
    proc = chatload("--dau", "60000", "--hours", "0.1", "--out", str(out), "--quiet",
                    "--matcher", "tests.unfair_matchers:LifoMatcher", "--params", str(params))
    assert proc.returncode == 0, proc.stderr
    assert "simulating" not in proc.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["run"]["target"].endswith("tests.unfair_matchers:LifoMatcher")
    assert res["run"]["engine"] == "python" and "the Python engine runs" in proc.stderr   # said before the wait
    f = res["fairness"]
    assert f["interest_match_rate"] is None          # nobody has interests
    assert f["params"]["starvation_threshold_s"] == 1.0


def test_usage_errors_exit_2(tmp_path):
    bad = chatload("--hours", "0.1", "--out", str(tmp_path / "x"), "--matcher", "no_such_module:Nope")
    assert bad.returncode == 2 and "no_such_module" in bad.stderr
    params = tmp_path / "bad.toml"
    params.write_text("[population]\nno_such_knob = 1\n")
    bad = chatload("--hours", "0.1", "--out", str(tmp_path / "y"), "--params", str(params))
    assert bad.returncode == 2 and "no_such_knob" in bad.stderr
