"""A real distributed Locust run on loopback: reference server, one master, two workers.

Everything is a separate process talking TCP on 127.0.0.1, exactly as `chatload run`
starts them. The run is short and small (about 40 users for about 12 s). Checks: chats and
messages flowed, every behaviour happened, the merged histograms in results.json are
exactly the union of what each worker shipped (each worker dumps its shipped samples with
CHATLOAD_DEBUG_DUMP_SAMPLES=1), the oracle found no violation on a correct server, and the
chat latencies reached Locust's own stats.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.histogram import LogHistogram
from tests.support import ROOT, free_port, reference_server, time_unit

USERS = 40
RUN_S = 12
PARAMS = {
    "chat_median_s": 1.0,
    "chat_max_s": 3.0,
    "end_next": 0.5,
    "end_leave": 0.25,
    "end_disconnect": 0.25,
    "give_up_share": 0.4,
    "patience_mean_s": 0.3,
    "think_time_s": [0.1, 0.3],
}


def _locust(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    fh = open(log, "w")  # noqa: SIM115 - closed by the caller via proc.stdout
    return subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "scenarios" / "smoke.py"), *args],
        cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def swarm(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("swarm")
    with reference_server() as (base, _server):
        target = base.replace("http://", "ws://") + "/ws"
        port = free_port()
        run_info = {"scenario": "smoke", "target": target, "seed": 7, "users": USERS, "spawn_rate": 20,
                    "duration_s": RUN_S, "workers": 2, "started": "2024-01-01T00:00:00Z"}
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "CHATLOAD_TARGET": target,
            "CHATLOAD_OUT": str(out),
            "CHATLOAD_SEED": "7",
            "CHATLOAD_RUN": json.dumps(run_info),
            "CHATLOAD_SCENARIO_PARAMS": json.dumps(PARAMS),
            "CHATLOAD_DEBUG_DUMP_SAMPLES": "1",
            "CHATLOAD_PARTIAL_INTERVAL": "2",
        }
        master = _locust(
            ["--headless", "--master", "--expect-workers", "2", "--master-bind-host", "127.0.0.1",
             "--master-bind-port", str(port), "-u", str(USERS), "-r", "20", "-t", f"{RUN_S}s",
             "--host", target, "--json-file", str(out / "locust_stats"), "--only-summary"],
            env, out / "master.log",
        )
        workers = [
            _locust(["--worker", "--master-host", "127.0.0.1", "--master-port", str(port)], env,
                    out / f"worker{i}.log")
            for i in range(2)
        ]
        procs = [master, *workers]
        try:
            master.wait(timeout=(RUN_S + 60) * time_unit())
            for w in workers:
                w.wait(timeout=30 * time_unit())
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    logs = "\n".join(f"--- {f.name}\n" + f.read_text()[-3000:] for f in sorted(out.glob("*.log")))
    results_path = out / "results.json"
    assert results_path.exists(), f"no results.json; logs:\n{logs}"
    return {"out": out, "results": json.loads(results_path.read_text()), "logs": logs,
            "master_rc": master.returncode}


def test_chats_and_messages_flowed(swarm: dict) -> None:
    r = swarm["results"]
    assert r["partial"] is False
    assert r["run"]["workers"] == 2 and r["run"]["workers_reported"] == 2, swarm["logs"]
    assert r["throughput"]["pairs"] > 20 and r["throughput"]["messages"] > 50
    assert r["pair_latency_ms"]["count"] > 20
    assert r["relay_latency_ms"]["count"] == r["throughput"]["messages"]
    assert r["connect_latency_ms"]["count"] == r["users"]["sessions"] >= USERS
    assert r["signal_rtt_ms"]["count"] > 0  # video chats ran offer/answer
    assert r["partner_left_latency_ms"]["count"] > 0
    assert 0 < r["users"]["peak_concurrent"] <= USERS
    assert len(r["timeline"]) >= RUN_S - 3
    assert any(p["in_chat"] > 0 for p in r["timeline"])


def test_every_behaviour_happened(swarm: dict) -> None:
    counters = swarm["results"]["counters"]
    for name in ("end_next", "end_leave", "end_disconnect", "messages_sent"):
        assert counters.get(name, 0) > 0, (name, counters)
    assert counters.get("gave_up_leave", 0) + counters.get("gave_up_disconnect", 0) > 0, counters
    tickets = swarm["results"]["tickets"]
    assert any(t["t_gave_up"] is not None for t in tickets)
    assert {t["mode"] for t in tickets} == {"text", "video"}
    assert any(t["interests"] for t in tickets)


def test_merged_histograms_equal_the_union_of_worker_samples(swarm: dict) -> None:
    dumps = [json.loads(p.read_text()) for p in sorted(swarm["out"].glob("worker-*.json"))]
    assert len(dumps) == 2, swarm["logs"]
    results = swarm["results"]
    for kind in ("connect", "pair", "relay", "signal_rtt"):
        union = LogHistogram.merged([d["hist"][kind] for d in dumps if kind in d["hist"]])
        merged = LogHistogram.from_dict(results["histograms"][kind])
        assert union.count > 0
        assert merged == union, kind  # same buckets, count, min and max: summed exactly
    assert sum(d["records"] for d in dumps) == results["users"]["chats"]


def test_no_violations_on_the_reference_server(swarm: dict) -> None:
    c = swarm["results"]["correctness"]
    assert c["violations_total"] == 0, c["examples"]
    checked = swarm["results"]["oracle"]["checked"]
    assert checked["symmetric_pairs"] > 20 and checked["unmatched_peer"] == 0


def test_chat_latencies_show_in_locust_stats(swarm: dict) -> None:
    stats = json.loads((swarm["out"] / "locust_stats.json").read_text())
    by_name = {(e["method"], e["name"]): e for e in stats}
    for name in ("connect", "pair", "relay"):
        assert by_name[("chat", name)]["num_requests"] > 0, sorted(by_name)
