"""A throwaway locustfile that follows the run contract, for testing `chatload run` alone.

Each user repeatedly opens a TCP connection to CHATLOAD_TARGET (an error when the
backend is gone); workers report counts to the master, which writes
results.partial.json every second and results.json when it quits.
"""
from __future__ import annotations

import json
import os
import socket
import time
from urllib.parse import urlsplit

from locust import User, constant, events, task
from locust.runners import MasterRunner, WorkerRunner

_counts = {"pairs": 0, "errors": 0}
_merged = {"pairs": 0, "errors": 0}
_t0 = time.time()


class TinyUser(User):
    wait_time = constant(0.2)

    @task
    def poke(self) -> None:
        parts = urlsplit(os.environ.get("CHATLOAD_TARGET", self.host or "ws://127.0.0.1:9/ws"))
        try:
            with socket.create_connection((parts.hostname, parts.port or 80), timeout=1):
                _counts["pairs"] += 1
        except OSError:
            _counts["errors"] += 1


def _results(final: bool) -> dict:
    run = json.loads(os.environ.get("CHATLOAD_RUN", "{}"))
    empty = {"count": 0, "p50": None, "p90": None, "p99": None, "p999": None, "max": None}
    return {
        "run": {k: run.get(k) for k in ("scenario", "target", "seed", "started", "duration_s", "workers")},
        "pair_latency_ms": {**empty, "count": _merged["pairs"]},
        "relay_latency_ms": dict(empty),
        "throughput": {"pairs_per_s": 0.0, "messages_per_s": 0.0},
        "users": {"peak_concurrent": 0, "sessions": 0},
        "correctness": {"violations_total": 0},
        "errors": {"connect": _merged["errors"], "total": _merged["errors"]},
        "timeline": [{"t": round(time.time() - _t0, 1), "online": 0}],
        "final": final,
    }


def _write(name: str, final: bool) -> None:
    out = os.environ.get("CHATLOAD_OUT")
    if out:
        tmp = os.path.join(out, name + ".tmp")
        with open(tmp, "w") as fh:
            json.dump(_results(final), fh)
        os.replace(tmp, os.path.join(out, name))


@events.report_to_master.add_listener
def _report(client_id, data, **_):
    data["tiny"] = dict(_counts)
    _counts.update(pairs=0, errors=0)


@events.worker_report.add_listener
def _worker_report(client_id, data, **_):
    for k, v in data.get("tiny", {}).items():
        _merged[k] += v


@events.init.add_listener
def _init(environment, **_):
    if isinstance(environment.runner, MasterRunner):
        import gevent

        def loop():
            while True:
                gevent.sleep(1)
                _write("results.partial.json", False)

        gevent.spawn(loop)


@events.quitting.add_listener
def _quitting(environment, **_):
    if not isinstance(environment.runner, WorkerRunner):
        _write("results.json", True)
