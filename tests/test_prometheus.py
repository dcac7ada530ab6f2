"""harness/prometheus.py: config, the missing-binary error, and p99 read back from a real Prometheus.

The accuracy test serves the exposition of known raw samples (numpy) over HTTP, lets a
real Prometheus scrape it, and compares `histogram_quantile(0.99, ...)` with
numpy's exact p99 of the raw samples: within 2% (the issue's requirement).
"""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import numpy as np
import pytest

from harness import prometheus
from harness.histogram import LogHistogram
from harness.live_metrics import CONTENT_TYPE, LiveMetrics
from harness.results import MergedState
from tests.support import ROOT, require_binary, time_unit

METRIC = re.compile(r"\b(chatload_[A-Za-z0-9_:]+)")


# -- helpers shared with tests/test_prometheus_run.py -------------------------------------
def api(base: str, path: str, **params: Any) -> Any:
    url = f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=15) as resp:
            doc = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{path} {params}: HTTP {exc.code}: {exc.read().decode(errors='replace')}") from None
    assert doc["status"] == "success", doc
    return doc["data"]


def grafana_regex_escape(value: str) -> str:
    """How Grafana's Prometheus datasource escapes a variable's value inside a regex matcher."""
    value = value.replace("\\", "\\\\\\\\")
    return re.sub(r"[$^*{}\[\]'+?.()|]", lambda m: "\\\\" + m.group(0), value)


def expand(expr: str, *, run: str, step_s: int, scrape_s: int, range_s: int) -> str:
    """Grafana's substitutions in a Prometheus query, as Grafana documents them."""
    rate_interval = max(step_s + scrape_s, 4 * scrape_s)
    subs = {
        "$__rate_interval": f"{rate_interval}s", "${__rate_interval}": f"{rate_interval}s",
        "$__interval_ms": str(step_s * 1000), "$__interval": f"{step_s}s", "${__interval}": f"{step_s}s",
        "$__range_s": str(range_s), "$__range_ms": str(range_s * 1000), "$__range": f"{range_s}s",
        "${run}": grafana_regex_escape(run), "$run": grafana_regex_escape(run),
    }
    for k in sorted(subs, key=len, reverse=True):
        expr = expr.replace(k, subs[k])
    if "$" in expr:
        raise AssertionError(f"unexpanded macro in {expr!r}")
    return expr


def unknown_metrics(expr: str, known: set[str]) -> set[str]:
    """Metric names a query mentions that Prometheus never saw."""
    return set(METRIC.findall(expr)) - known


def finite_values(result: list[dict[str, Any]]) -> int:
    """Finite samples in a query_range (matrix) or query (vector) result."""
    n = 0
    for series in result:
        values = series.get("values") or ([series["value"]] if "value" in series else [])
        n += sum(1 for _t, v in values if math.isfinite(float(v)))
    return n


# -- config and errors --------------------------------------------------------------------
def test_config_is_valid_for_promtool(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    jobs = prometheus.run_jobs("20250101-x", 9101, 9102, None)
    path = tmp_path / "prometheus.yml"
    path.write_text(prometheus.config_yaml(jobs, 1.0))
    proc = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=30 * time_unit())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = path.read_text()
    assert "127.0.0.1:9101" in text and "127.0.0.1:9102" in text and "run: '20250101-x'" in text


def test_target_metrics_only_when_the_target_has_them() -> None:
    assert prometheus.target_metrics_url("wss://example.test:8443/chat") == "https://example.test:8443/metrics"
    jobs = prometheus.run_jobs("r", 9101, None, "ws://127.0.0.1:9/ws")  # nothing listens on port 9
    assert [j.name for j in jobs] == [prometheus.HARNESS_JOB]


def test_missing_binary_is_a_usage_error_with_the_install_hint(tmp_path: Path) -> None:
    """`chatload run --prometheus` without the binary: exit 2 before anything starts."""
    env = {**os.environ, "PATH": str(tmp_path)}  # no prometheus (nor anything else) on PATH
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", "smoke", "--prometheus", "--out", str(tmp_path / "o")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60 * time_unit())
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "apt-get install prometheus" in proc.stderr
    assert not (tmp_path / "o" / "locust-master.log").exists()


# -- accuracy through a real Prometheus ---------------------------------------------------
class _Exposition:
    """Serves one LiveMetrics exposition over HTTP from a thread (no gevent here)."""

    def __init__(self, live: LiveMetrics) -> None:
        body = live.render()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_a: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def scraped(tmp_path: Path) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    require_binary("prometheus")
    rng = np.random.default_rng(2024)
    raw = {
        "pair": rng.lognormal(np.log(40.0), 1.1, 3000),                  # ms, wide: queue waits
        "relay": rng.lognormal(np.log(0.6), 0.5, 20000),                 # sub-ms loopback relay
        "connect": np.concatenate([rng.normal(8, 1, 1500).clip(1), rng.normal(60, 5, 500)]),  # two modes
        "signal_rtt": rng.uniform(1.0, 30.0, 1000),
    }
    state = MergedState()
    for kind, values in raw.items():
        h = LogHistogram()
        h.record_many(values)
        state.merge({"hist": {kind: h.to_dict()}}, "w")
    server = _Exposition(LiveMetrics(SimpleNamespace(state=state, t_start_ns=None)))
    jobs = [prometheus.Job("accuracy", (f"127.0.0.1:{server.port}",))]
    proc = prometheus.PrometheusProcess(tmp_path / "prom", prometheus.config_yaml(jobs, 1.0))
    proc.start(timeout=30 * time_unit())
    try:
        deadline = time.monotonic() + 20 * time_unit()
        while time.monotonic() < deadline and not api(proc.url, "query", query="chatload_relay_latency_seconds_count")["result"]:
            time.sleep(0.2)
        yield proc.url, raw
    finally:
        proc.stop()
        server.server.shutdown()


def test_p99_read_back_from_prometheus_is_within_2_percent_of_numpy(scraped: tuple[str, dict[str, np.ndarray]]) -> None:
    url, raw = scraped
    names = {"pair": "pair_latency_seconds", "relay": "relay_latency_seconds",
             "connect": "connect_latency_seconds", "signal_rtt": "signal_rtt_seconds"}
    for kind, values in raw.items():
        for q in (0.5, 0.9, 0.99):
            res = api(url, "query", query=f"histogram_quantile({q}, chatload_{names[kind]}_bucket)")["result"]
            assert res, f"no {kind} histogram in Prometheus"
            got = float(res[0]["value"][1]) * 1000.0
            exact = float(np.percentile(values, q * 100))
            assert abs(got - exact) / exact <= 0.02, f"{kind} p{q * 100:g}: prometheus {got:.4f} ms, numpy {exact:.4f} ms"
