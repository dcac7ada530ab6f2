"""Run a scenario swarm for a test: Locust as subprocesses on loopback, exactly as `chatload
run` starts them (one master and N workers, or one local process with workers=0), with the
run contract's environment (CHATLOAD_TARGET, CHATLOAD_OUT, CHATLOAD_SEED, CHATLOAD_RUN,
CHATLOAD_SCENARIO_PARAMS). Nothing here imports locust: the test process stays un-patched.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support import ROOT, free_port, time_unit


def _locust(scenario: str, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    fh = open(log, "w")  # noqa: SIM115 - the child owns it; closed when the test process exits
    return subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "scenarios" / f"{scenario}.py"), *args],
        cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )


def run_swarm(scenario: str, target: str, out: Path, params: dict[str, Any], duration_s: int, users: int,
              workers: int = 1, seed: int = 7) -> dict[str, Any]:
    """Run the swarm to its end; returns {"results", "logs", "rc"} (results None if missing)."""
    out.mkdir(parents=True, exist_ok=True)
    run_info = {"scenario": scenario, "target": target, "seed": seed, "users": users, "spawn_rate": users,
                "duration_s": duration_s, "workers": workers, "started": "2024-01-01T00:00:00Z"}
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "CHATLOAD_TARGET": target, "CHATLOAD_OUT": str(out), "CHATLOAD_SEED": str(seed),
        "CHATLOAD_RUN": json.dumps(run_info), "CHATLOAD_SCENARIO_PARAMS": json.dumps(params),
        "CHATLOAD_PARTIAL_INTERVAL": "2",
    }
    common = ["-u", str(users), "-r", str(users), "-t", f"{duration_s}s", "--host", target, "--only-summary"]
    if workers == 0:
        procs = [_locust(scenario, ["--headless", *common], env, out / "local.log")]
    else:
        port = free_port()
        master = _locust(scenario, ["--headless", "--master", "--expect-workers", str(workers),
                                    "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port), *common],
                         env, out / "master.log")
        procs = [master] + [
            _locust(scenario, ["--worker", "--master-host", "127.0.0.1", "--master-port", str(port)], env,
                    out / f"worker{i}.log")
            for i in range(workers)
        ]
    try:
        procs[0].wait(timeout=(duration_s + 60) * time_unit())
        for p in procs[1:]:
            p.wait(timeout=30 * time_unit())
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    logs = "\n".join(f"--- {f.name}\n" + f.read_text()[-4000:] for f in sorted(out.glob("*.log")))
    path = out / "results.json"
    results = json.loads(path.read_text()) if path.exists() else None
    return {"results": results, "logs": logs, "rc": procs[0].returncode}
