"""Run `chatload run` through an adapter against a backend, for the adapter tests."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT, free_port, python_server, time_unit

MAPPINGS = ROOT / "examples" / "mappings"
DURATION = "5s"
# Short deadlines so missing tokens count within a short run; text only unless asked.
COMMON = ["oracle_deadline_s=1.0", "token_wait_s=1.0", "think_time_s=[0.05, 0.2]", 'lang_mix={"en": 1.0}']


def chatload_run(target: str | None, out: Path, protocol: str, mapping: str | None, users: int,
                 params: list[str], duration: str = DURATION) -> tuple[int, dict, str]:
    args = [sys.executable, "-m", "harness.cli", "run", "smoke", "--users", str(users), "--spawn-rate", str(users),
            "--duration", duration, "--workers", "1", "--seed", "13", "--out", str(out), "--protocol", protocol]
    if mapping:
        args += ["--mapping", str(MAPPINGS / mapping)]
    if target:
        args += ["--target", target]
    for p in COMMON + params:
        args += ["--param", p]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120 * time_unit(),
                          stdin=subprocess.DEVNULL)
    output = proc.stdout + proc.stderr
    path = out / "results.json"
    assert path.exists(), f"no results (exit {proc.returncode}):\n{output}"
    return proc.returncode, json.loads(path.read_text()), output


def against_clone(module: str, server_args: list[str], tmp: Path, protocol: str, mapping: str | None, users: int,
                  params: list[str], ws_path: str = "/socket") -> tuple[int, dict, str]:
    port = free_port()
    with python_server(["-m", f"tests.clone_servers.{module}", "--port", str(port), *server_args],
                       f"http://127.0.0.1:{port}/healthz"):
        return chatload_run(f"ws://127.0.0.1:{port}{ws_path}", tmp, protocol, mapping, users, params)
