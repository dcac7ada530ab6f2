"""A real `chatload run --prometheus` (~10 s, open-model `steady` scenario, small) then every
dashboard query, with Grafana's macros expanded, against the Prometheus it fed.

The run's Prometheus stops with the run; its data stays in OUT/prometheus/data, so the
test reopens that data with a fresh Prometheus (which also checks the data was kept) and
queries it over the run's time range. A query naming a metric Prometheus never saw fails,
and so does one that returns no finite value. The master's /metrics is fetched during the
run and checked with `promtool check metrics`.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from harness import prometheus
from harness.histogram import LogHistogram, bucket_lower, bucket_upper
from tests.support import ROOT, require_binary, time_unit
from tests.test_prometheus import api, expand, finite_values, unknown_metrics

DASHBOARDS = ROOT / "dashboards"
SCRAPE_S = 1


def _queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in dashboard["panels"]:
        for t in panel.get("targets", []):
            yield f"{dashboard['uid']} / {panel['title']} / {t['refId']}", t["expr"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    require_binary("prometheus")
    promtool = require_binary("promtool")
    out = tmp_path_factory.mktemp("promrun") / "run-e2e"
    env = {**os.environ, "CHATLOAD_PARTIAL_INTERVAL": "1"}
    argv = [sys.executable, "-m", "harness.cli", "run", "steady", "--prometheus", "--duration", "10s",
            "--workers", "1", "--users", "60", "--seed", "7", "--out", str(out)]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    exposition = b""
    try:
        deadline = time.monotonic() + 60 * time_unit()
        while time.monotonic() < deadline and proc.poll() is None:
            port_file = out / "metrics_port"
            if port_file.exists():
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{int(port_file.read_text())}/metrics", timeout=5) as r:
                        body = r.read()
                except OSError:
                    body = b""
                if b"chatload_fairness_jain_index" in body:  # a partial analysis has run: everything is there
                    exposition = body
                    break
            time.sleep(0.5)
        stdout, _ = proc.communicate(timeout=120 * time_unit())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    results = json.loads((out / "results.json").read_text())
    yield {"out": out, "stdout": stdout, "results": results, "exposition": exposition, "promtool": promtool,
           "returncode": proc.returncode}


@pytest.fixture(scope="module")
def reopened(run: dict[str, Any]) -> Iterator[str]:
    """A fresh Prometheus on the run's kept data (no scrape jobs)."""
    home = run["out"] / "prometheus-reopened"
    proc = prometheus.PrometheusProcess(home, prometheus.config_yaml([], SCRAPE_S))
    proc.data_path.rmdir()
    proc.data_path = run["out"] / "prometheus" / "data"
    proc.start(timeout=30 * time_unit())
    try:
        yield proc.url
    finally:
        proc.stop()


def test_run_printed_the_prometheus_url_and_wrote_a_report(run: dict[str, Any]) -> None:
    assert "chatload: Prometheus at http://127.0.0.1:" in run["stdout"], run["stdout"]
    assert "chatload: Prometheus stopped" in run["stdout"]
    assert (run["out"] / "report.html").exists()
    assert (run["out"] / "prometheus" / "prometheus.yml").exists()


def test_live_metrics_pass_promtool(run: dict[str, Any]) -> None:
    assert run["exposition"], "never saw a full /metrics during the run:\n" + run["stdout"]
    proc = subprocess.run([run["promtool"], "check", "metrics"], input=run["exposition"], capture_output=True,
                          timeout=30 * time_unit())
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


def _time_range(results: dict[str, Any], url: str) -> tuple[float, float]:
    res = api(url, "query", query="max(max_over_time(chatload_run_start_time_seconds[1h]))", time=time.time())["result"]
    start = float(res[0]["value"][1])
    return start - 5, start + float(results["run"]["elapsed_s"]) + 15


def test_every_dashboard_query_returns_finite_data(run: dict[str, Any], reopened: str) -> None:
    start, end = _time_range(run["results"], reopened)
    known = set(api(reopened, "label/__name__/values", start=start, end=end))
    run_id = run["out"].name
    failures = []
    count = 0
    for path in sorted(DASHBOARDS.glob("*.json")):
        for where, raw in _queries(json.loads(path.read_text())):
            count += 1
            expr = expand(raw, run=run_id, step_s=1, scrape_s=SCRAPE_S, range_s=int(end - start))
            missing = unknown_metrics(expr, known)
            if missing:
                failures.append(f"{where}: names metrics never exported: {sorted(missing)}")
                continue
            result = api(reopened, "query_range", query=expr, start=start, end=end, step=1)["result"]
            if finite_values(result) == 0:
                failures.append(f"{where}: no finite data for {expr}")
    assert count >= 40
    assert not failures, "\n".join(failures)


def test_the_name_check_catches_a_metric_nobody_exports(run: dict[str, Any], reopened: str) -> None:
    start, end = _time_range(run["results"], reopened)
    known = set(api(reopened, "label/__name__/values", start=start, end=end))
    assert unknown_metrics('sum(rate(chatload_pairs_total{run=~".*"}[5s]))', known) == set()
    assert unknown_metrics("sum(rate(chatload_pairz_total[5s]))", known) == {"chatload_pairz_total"}


def test_run_label_and_final_figures_reach_prometheus(run: dict[str, Any], reopened: str) -> None:
    """The master waits for a last scrape, so Prometheus holds the final counts."""
    start, end = _time_range(run["results"], reopened)
    results = run["results"]
    for kind, metric in (("relay", "relay_latency_seconds"), ("pair", "pair_latency_seconds")):
        series = api(reopened, "query_range", query=f"chatload_{metric}_count", start=start, end=end, step=1)["result"]
        assert series and series[0]["metric"]["run"] == run["out"].name
        last_count = int(float(series[0]["values"][-1][1]))
        h = LogHistogram.from_dict(results["histograms"][kind])
        assert last_count == h.count, f"{kind}: Prometheus saw {last_count} samples, results.json has {h.count}"
        t_last = series[0]["values"][-1][0]
        res = api(reopened, "query", query=f"histogram_quantile(0.99, chatload_{metric}_bucket)", time=t_last)["result"]
        p99_ms = float(res[0]["value"][1]) * 1000.0
        # The exact nearest-rank p99 sample lies in one LogHistogram bucket, which is one
        # Prometheus bucket (1.9% wide): the value read back must lie inside it. (Within 2%
        # of numpy on raw samples: tests/test_prometheus.py; a 10 s run is too small for
        # estimators to agree on its p99 to 2%.)
        lo, hi = _nearest_rank_bucket(h, 0.99)
        assert lo * (1 - 1e-5) <= p99_ms <= hi * (1 + 1e-5), f"{kind} p99 {p99_ms:.4f} ms outside [{lo:.4f}, {hi:.4f}]"
        assert (hi - lo) / hi <= 0.02


def _nearest_rank_bucket(h: LogHistogram, q: float) -> tuple[float, float]:
    """Edges (ms) of the bucket holding the ceil(q*N)-th smallest sample."""
    rank = math.ceil(q * h.count)
    seen = 0
    for i, c in enumerate(h.counts):
        seen += c
        if seen >= rank:
            return bucket_lower(i), bucket_upper(i)
    raise AssertionError("rank beyond the histogram")
