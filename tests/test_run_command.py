"""`chatload run`: exit codes, clear messages, Ctrl-C and a dying backend, with real processes.

Everything runs for real: `python -m harness.cli run ...` as a subprocess, a Locust master
and workers, the reference server on 127.0.0.1. Orphans are looked for by the
CHATLOAD_OUT value that `chatload run` gives every child it starts.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.commands.run import parse_duration
from harness.runner import finalize_results, normalize_target
from harness.scenario_files import ScenarioError, build_params, parse_param
from tests.support import ROOT, free_port, reference_server, time_unit

SWARM_SCENARIO = "smoke"


def chatload(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def processes_with_out_dir(out: Path) -> list[int]:
    """PIDs of live processes started for the run writing to `out` (orphans, after it ended)."""
    marker = f"CHATLOAD_OUT={out}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            env = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in env.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


# ---- pure argument parsing ---------------------------------------------------------------
@pytest.mark.parametrize(
    "text, seconds",
    [("30", 30.0), ("30s", 30.0), ("2m", 120.0), ("1m30s", 90.0), ("1h", 3600.0), ("0.5", 0.5), (" 10S ", 10.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0s", "abc", "10x", "5 m", "m", "-3", "1.5.2s", "30s5"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(Exception, match="bad duration"):
        parse_duration(text)


def test_params_parse_literals_and_later_ones_win(tmp_path: Path) -> None:
    assert parse_param("message_rate_per_s=5") == ("message_rate_per_s", 5)
    assert parse_param("give_up_share=0.5") == ("give_up_share", 0.5)
    assert parse_param("flag=true") == ("flag", True)
    assert parse_param("sizes=[1, 2]") == ("sizes", [1, 2])
    assert parse_param("mix={\"text\": 1}") == ("mix", {"text": 1})
    assert parse_param("name=hello world") == ("name", "hello world")
    f = tmp_path / "p.toml"
    f.write_text('message_rate_per_s = 2.0\nchat_median_s = 4\n[mode_mix]\ntext = 1.0\n')
    params = build_params([str(f)], ["chat_median_s=9"])
    assert params == {"message_rate_per_s": 2.0, "chat_median_s": 9, "mode_mix": {"text": 1.0}}


@pytest.mark.parametrize("item", ["novalue", "=3", " =x", "bad key=1"])
def test_bad_params(item: str) -> None:
    with pytest.raises(ScenarioError):
        parse_param(item)


@pytest.mark.parametrize(
    "given, expected",
    [
        ("ws://127.0.0.1:8080/ws", "ws://127.0.0.1:8080/ws"),
        ("ws://127.0.0.1:8080", "ws://127.0.0.1:8080/ws"),
        ("http://localhost:9000/chat?x=1", "ws://localhost:9000/chat?x=1"),
        ("https://example.test/ws", "wss://example.test/ws"),
    ],
)
def test_target_urls(given: str, expected: str) -> None:
    assert normalize_target(given) == expected


@pytest.mark.parametrize("bad", ["127.0.0.1:8080", "ftp://h/ws", "ws://", "ws://h:notaport/ws"])
def test_bad_target_urls(bad: str) -> None:
    with pytest.raises(ValueError, match="bad --target"):
        normalize_target(bad)


def test_results_fall_back_to_the_partial_file_and_record_why(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text('{"run": {"scenario": "smo')  # cut short by a kill
    (tmp_path / "results.partial.json").write_text(json.dumps({"run": {"scenario": "smoke"}, "partial": True}))
    results, path = finalize_results(tmp_path, "interrupted")
    assert path == tmp_path / "results.json"
    assert results["run"] == {
        "scenario": "smoke", "interrupted": True, "stop_reason": "interrupted", "results_source": "results.partial.json",
    }  # fmt: skip
    assert json.loads(path.read_text()) == results


def test_final_results_are_kept_and_marked(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(json.dumps({"run": {"scenario": "smoke"}, "pair_latency_ms": {"count": 3}}))
    (tmp_path / "results.partial.json").write_text(json.dumps({"run": {}, "pair_latency_ms": {"count": 1}}))
    results, _ = finalize_results(tmp_path, "completed")
    assert results["pair_latency_ms"]["count"] == 3
    assert results["run"]["interrupted"] is False and "results_source" not in results["run"]
    assert finalize_results(tmp_path / "nothing", "completed") == (None, None)


# ---- exit code 2: usage and scenario errors -----------------------------------------------
def test_unknown_scenario_lists_the_bundled_ones() -> None:
    proc = chatload("no_such_scenario", "--target", "ws://127.0.0.1:9/ws", timeout=30 * time_unit())
    assert proc.returncode == 2, proc.stderr
    assert "unknown scenario 'no_such_scenario'" in proc.stderr
    assert "bundled scenarios:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_scenario_file() -> None:
    proc = chatload("nowhere/none.py", timeout=30 * time_unit())
    assert proc.returncode == 2
    assert "scenario file not found: nowhere/none.py" in proc.stderr


def test_scenario_with_a_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.py"
    bad.write_text("from locust import User\n\nclass A(User):\n    def task(self)\n        pass\n")
    proc = chatload(str(bad), timeout=30 * time_unit())
    assert proc.returncode == 2
    assert f"syntax error in scenario {bad}:4" in proc.stderr
    assert not list(tmp_path.glob("chatload-out*"))


def test_scenario_without_a_user_class(tmp_path: Path) -> None:
    empty = tmp_path / "nousers.py"
    empty.write_text("from locust import events\nX = 1\n")
    proc = chatload(str(empty), "--target", "ws://127.0.0.1:9/ws", timeout=60 * time_unit())
    assert proc.returncode == 2
    assert "defines no Locust User class" in proc.stderr


def test_scenario_that_fails_to_import_shows_the_error(tmp_path: Path) -> None:
    broken = tmp_path / "imports.py"
    broken.write_text("import no_such_module_here\n")
    proc = chatload(str(broken), "--target", "ws://127.0.0.1:9/ws", timeout=60 * time_unit())
    assert proc.returncode == 2
    assert "failed to import" in proc.stderr and "no_such_module_here" in proc.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--duration", "ten"], "bad duration 'ten'"),
        (["--duration", "0s"], "must be more than zero"),
        (["--users", "0"], "must be at least 1"),
        (["--workers", "two"], "expected a whole number"),
        (["--param", "novalue"], "bad --param 'novalue': expected KEY=VALUE"),
        (["--params", "missing.toml"], "params file not found: missing.toml"),
        (["--target", "http:/nohost"], "bad --target"),
        (["--target", "ftp://127.0.0.1/ws"], "bad --target"),
    ],
)
def test_bad_arguments(args: list[str], message: str) -> None:
    proc = chatload(SWARM_SCENARIO, *args, timeout=30 * time_unit())
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr


def test_unknown_scenario_parameter_is_a_usage_error() -> None:
    proc = chatload("smoke", "--target", "ws://127.0.0.1:9/ws", "--param", "no_such_knob=1", timeout=60 * time_unit())
    assert proc.returncode == 2
    assert "no_such_knob" in proc.stderr


# ---- exit code 3: the backend cannot be reached ---------------------------------------------
def test_nothing_listening_is_unreachable() -> None:
    port = free_port()
    proc = chatload(SWARM_SCENARIO, "--target", f"ws://127.0.0.1:{port}/ws", timeout=60 * time_unit())
    assert proc.returncode == 3, proc.stderr
    assert f"backend unreachable: cannot connect to 127.0.0.1:{port}" in proc.stderr


def test_http_server_without_websocket_is_unreachable(tmp_path: Path) -> None:
    with reference_server() as (base, _):
        host_port = base.split("//", 1)[1]
        proc = chatload(SWARM_SCENARIO, "--target", f"ws://{host_port}/healthz", "--out", str(tmp_path / "o"), timeout=60 * time_unit())
    assert proc.returncode == 3, proc.stderr
    assert "did not accept a WebSocket upgrade" in proc.stderr
    assert "HTTP/1.1 200" in proc.stderr


# ---- robustness: Ctrl-C and a backend that dies ------------------------------------------------
def _partial_pairs(out: Path) -> int:
    try:
        partial = json.loads((out / "results.partial.json").read_text())
    except (OSError, ValueError):  # not written yet, or caught mid-write
        return 0
    return int((partial.get("pair_latency_ms") or {}).get("count") or 0)


def test_ctrl_c_keeps_results_and_leaves_no_process(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", SWARM_SCENARIO, "--users", "6", "--workers", "2",
         "--duration", "2m", "--out", str(out), "--seed", "5", "--progress-every", "1"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        # Interrupt once pairs are on record: what was gathered before Ctrl-C must survive it.
        wait_for(lambda: _partial_pairs(out) > 0, 60 * time_unit(), "pairs in results.partial.json")
        assert len(processes_with_out_dir(out)) == 4  # server, master, 2 workers
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=30 * time_unit())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stdout
    assert "INTERRUPTED" in stdout and "latency (ms)" in stdout
    results = json.loads((out / "results.json").read_text())
    assert results["run"]["interrupted"] is True
    assert results["run"]["stop_reason"] == "interrupted"
    assert results["run"]["workers"] == 2 and results["run"]["seed"] == 5
    assert results["pair_latency_ms"]["count"] > 0
    assert processes_with_out_dir(out) == []


def test_backend_killed_mid_run_still_writes_results(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with reference_server() as (base, server):
        target = "ws://" + base.split("//", 1)[1] + "/ws"
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness.cli", "run", SWARM_SCENARIO, "--target", target, "--users", "6",
             "--workers", "1", "--duration", "2m", "--out", str(out), "--unreachable-grace", "2", "--progress-every", "1"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_for(lambda: (out / "results.partial.json").exists(), 60 * time_unit(), "results.partial.json")
            time.sleep(2)
            server.kill()
            stdout, _ = proc.communicate(timeout=60 * time_unit())
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 3, stdout
    assert "the backend has been unreachable for 2s; stopping" in stdout
    assert "STOPPED EARLY: backend_unreachable" in stdout
    results = json.loads((out / "results.json").read_text())
    assert results["run"]["stop_reason"] == "backend_unreachable"
    assert results["run"]["interrupted"] is False
    assert results["errors"]["total"] > 0
    assert processes_with_out_dir(out) == []


def test_swarm_whose_workers_all_die_stops_and_says_so(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", SWARM_SCENARIO, "--users", "4", "--workers", "1",
         "--duration", "2m", "--out", str(out), "--progress-every", "1"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: (out / "results.partial.json").exists(), 60 * time_unit(), "results.partial.json")
        workers = [pid for pid in processes_with_out_dir(out) if b"--worker" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(workers) == 1
        os.kill(workers[0], signal.SIGKILL)
        stdout, _ = proc.communicate(timeout=40 * time_unit())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 2, stdout
    assert "every Locust worker has exited; stopping" in stdout
    assert "did not finish normally (workers_lost)" in stdout
    results = json.loads((out / "results.json").read_text())
    assert results["run"]["stop_reason"] == "workers_lost"
    assert processes_with_out_dir(out) == []


def test_probe_without_upgrade_accepts_any_http_answer() -> None:
    """Socket.IO and Omegle-style backends are probed for HTTP only: their adapters pick the paths."""
    from harness.runner import BackendUnreachable, probe_target

    with reference_server() as (base, _):
        url = "ws://" + base.split("//", 1)[1] + "/healthz"
        probe_target(url, websocket=False)  # answers 200/404 on /: reachable
        with pytest.raises(BackendUnreachable, match="did not accept a WebSocket upgrade"):
            probe_target(url)
        probe_target(url.replace("/healthz", "/ws"))
    with pytest.raises(BackendUnreachable, match="cannot connect"):
        probe_target(url, websocket=False)
