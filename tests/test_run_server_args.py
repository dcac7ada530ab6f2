"""A scenario's SERVER_ARGS (and --server-arg) reach the embedded reference server.

The flags are read when `chatload run` inspects the scenario (a subprocess with the run's
CHATLOAD_SCENARIO_PARAMS, so they follow --param time_scale=...), checked like the server
would parse them, appended to the embedded server's command line, and never applied to a
--target (a note says how to configure it instead). The end-to-end proof: the abuse
scenario through `chatload run` gets bans, which need --trust-forwarded-for on loopback.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.runner import EmbeddedServer, RunConfig, check_server_args, child_env, run_env, server_argv
from harness.scenario_config import load
from harness.scenario_files import inspect, resolve
from tests.support import ROOT, free_port, time_unit

# tests/test_abuse.py's crowd: a few seconds hold whole visits, many reported abusers,
# every partner reports them, two distinct addresses ban.
ABUSE_PARAMS = """
dau = 86400
time_scale = 10
lang_mix = {en = 1.0}
tail_share = 0.0
chats_mean = {skipper = 3, talker = 2, keeper = 2, impatient = 2, abuser = 3}
abuse_share = 0.45
report_probability = 1.0
abuse_kind_mix = {spammer = 0.1, flooder = 0.3, reported = 0.4, reconnect_storm = 0.05, malformed = 0.15}
malformed_share = 0.8
"server.report-threshold" = 2
"""


def chatload(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", "run", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout * time_unit(), stdin=subprocess.DEVNULL)


def inspected(name: str, params: dict) -> list[str]:
    env = child_env({"CHATLOAD_SCENARIO_PARAMS": json.dumps(params), "CHATLOAD_SEED": "1"})
    return inspect(resolve(name), env).server_args


def test_inspection_reads_server_args_with_the_run_params() -> None:
    params = {"time_scale": 20}
    args = inspected("abuse", params)
    assert args == load("abuse", overrides=params).server_args()
    assert args[args.index("--interest-fallback") + 1] == "0.25"  # 5 s / K
    assert args[args.index("--rate-limit") + 1] == "400.0"  # 20 x K
    assert "--trust-forwarded-for" in args
    assert inspected("smoke", {}) == []  # no SERVER_ARGS: the server's defaults


def test_embedded_server_command_line_carries_the_scenario_flags(tmp_path: Path) -> None:
    scenario_args = inspected("abuse", {"time_scale": 10})
    extra = ["--report-threshold", "2"]
    assert server_argv(8080, scenario_args + extra)[-len(scenario_args) - 2:] == scenario_args + extra
    server = EmbeddedServer(tmp_path, child_env({}), scenario_args + extra)
    try:
        server.wait_ready(15 * time_unit(), lambda: False)
        cmdline = Path(f"/proc/{server.child.proc.pid}/cmdline").read_bytes().decode().split("\0")[:-1]
        assert cmdline[-len(scenario_args) - 2:] == scenario_args + extra
        assert cmdline[cmdline.index("--port") + 1] == str(server.port)
    finally:
        server.stop()
    assert not server.child.alive()
    cfg = RunConfig(scenario=None, scenario_label="abuse", target=None, users=1, spawn_rate=1, duration_s=1,  # type: ignore[arg-type]
                    workers=1, seed=1, out_dir=tmp_path, server_args=scenario_args)
    assert json.loads(run_env(cfg, server.url, "now")["CHATLOAD_RUN"])["server_args"] == scenario_args


@pytest.mark.parametrize("args, message", [
    (["--port", "1"], "--port: chatload picks"),
    (["--ho", "0.0.0.0"], "--host: chatload picks"),  # an abbreviation the server would take
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["--rate-limit", "lots"], "invalid float value"),
    (["--max-frame-bytes", "10"], "max_frame_bytes must be at least 64"),
])
def test_bad_server_flags_are_refused(args: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_server_args(args)


def test_good_server_flags_pass() -> None:
    check_server_args(load("abuse").server_args() + ["--workers", "2", "--rate-limit=0"])


def test_bad_server_arg_is_a_usage_error_before_anything_starts(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = chatload("smoke", "--server-arg=--rate-limit=lots", "--out", str(out), timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "bad reference server flags" in proc.stderr and "invalid float value" in proc.stderr
    assert not out.exists()


def test_server_arg_with_a_target_is_a_usage_error() -> None:
    proc = chatload("smoke", "--target", "ws://127.0.0.1:9/ws", "--server-arg", "--rate-limit 0", timeout=30)
    assert proc.returncode == 2
    assert "--server-arg applies to the embedded reference server only" in proc.stderr


def test_a_target_gets_a_note_not_the_flags() -> None:
    port = free_port()  # nothing listens: the run stops at the probe, after the note
    proc = chatload("abuse", "--target", f"ws://127.0.0.1:{port}/ws", "--param", "time_scale=20", timeout=60)
    assert proc.returncode == 3, proc.stderr
    expected = " ".join(load("abuse", overrides={"time_scale": 20}).server_args())
    assert f"scenario abuse runs the embedded reference server with {expected}" in proc.stderr
    assert "configure the target to match" in proc.stderr


def test_abuse_scenario_through_chatload_run_gets_bans(tmp_path: Path) -> None:
    params = tmp_path / "abuse.toml"
    params.write_text(ABUSE_PARAMS)
    out = tmp_path / "out"
    proc = chatload("abuse", "--duration", "6", "--users", "30", "--workers", "1", "--seed", "4",
                    "--params", str(params), "--out", str(out), timeout=90)
    # 1 is allowed: what is tested is the server's reaction, and the oracle has been seen to
    # flag a rare cross_talk on this abuse crowd (a flooder's message just as a chat starts).
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "starting the reference server on 127.0.0.1 with --interest-fallback 0.5" in proc.stdout
    results = json.loads((out / "results.json").read_text())
    assert "--trust-forwarded-for" in results["run"]["server_args"]
    assert results["run"]["server_args"][-2:] == ["--report-threshold", "2"]  # server.* params come last
    ab = results["abuse"]
    assert ab["banned"] > 0 and ab["time_to_ban_ms"]["count"] == ab["banned"], ab


def test_time_constants_of_the_server_follow_the_time_scale() -> None:
    """At K = 10 the embedded server's fallback and rematch block are a tenth of the defaults."""
    args = load("interests", overrides={"time_scale": 10}).server_args()
    flags = dict(zip(args[::2], args[1::2]))
    assert float(flags["--interest-fallback"]) == pytest.approx(0.5)
    assert float(flags["--rematch-block"]) == pytest.approx(1.0)
