"""The master's live /metrics: exposition content, exact buckets, promtool, the HTTP server."""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from harness.histogram import LogHistogram
from harness.live_metrics import LiveMetrics
from harness.results import MergedState, build_results
from tests.support import ROOT, require_binary, time_unit

NS = 1_000_000_000
T0 = 1_700_000_000 * NS


def _payload(rng: np.random.Generator) -> dict:
    """One worker report as harness/locust_plugin.py ships it (WorkerMetrics + Ledger + extras)."""
    hist = {}
    for kind, (mu, sigma) in {"pair": (4.0, 1.0), "relay": (-0.5, 0.6), "connect": (2.0, 0.3), "signal_rtt": (1.0, 0.5)}.items():
        h = LogHistogram()
        h.record_many(rng.lognormal(mu, sigma, 800))
        hist[kind] = h.to_dict()
    records = []
    for i in range(60):
        t_req = T0 + i * NS // 10
        records.append({"u": f"w1-{i}", "c": 0, "cls": "Chatter", "mode": "text" if i % 3 else "video",
                        "lang": "en" if i % 4 else "de", "interests": ["cats"] if i % 5 == 0 else [],
                        "t_req": t_req, "t_paired": t_req + int(rng.uniform(1, 900)) * 1_000_000, "pair": None,
                        "peer": None, "end": "next", "t_end": t_req + 2 * NS})
    lateness = LogHistogram()
    lateness.record_many(rng.uniform(0.1, 50, 40))
    return {
        "hist": hist,
        "timeline": {str(T0 // NS + s): [2, 10, 8, 3, 4, 0] for s in range(5)},
        "counters": {"sessions": 9, "paired": 30, "messages_sent": 50, "end_next": 7, "end_leave": 2, "joins": 40},
        "errors": {"server_error:rate_limited": 2, "connection_lost:1006": 1, "connect_failed": 1},
        "records": records,
        "waits": [{"u": "w1-x", "cls": "Chatter", "mode": "text", "lang": "en", "interests": [],
                   "t_req": T0, "t_gave_up": T0 + 3 * NS}],
        "incidents": {"cross_talk": 1},
        "examples": {"cross_talk": [{"who": "w1-1", "when": T0, "what": "x"}]},
        "gauges": [8, 3, 4],
        "arrivals": {"scheduled": 40, "started": 38, "dropped_arrivals": 2, "lateness": lateness.to_dict()},
        "final": False,
    }


def _live() -> tuple[LiveMetrics, MergedState, dict]:
    rng = np.random.default_rng(5)
    master = SimpleNamespace(state=MergedState(), t_start_ns=T0)
    live = LiveMetrics(master, {"scenario": "smoke", "seed": 1, "target": "ws://127.0.0.1:1/ws"})
    data = _payload(rng)
    master.state.merge(data, "w1")
    live.on_report(data, "w1")
    doc = build_results(master.state, {"scenario": "smoke"}, T0, T0 + 10 * NS)
    doc["fairness"] = {"jain_index": 0.5, "fifo_inversions": 3, "wait_p99_ms_by_cohort": {"mode": {"text": 800.0}}}
    live.on_results(doc)
    return live, master.state, doc


def _samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_exposition_holds_counters_gauges_and_fairness() -> None:
    live, state, _doc = _live()
    s = _samples(live.render().decode())
    assert s["chatload_pairs_total"] == 15
    assert s["chatload_joins_total"] == 40
    assert s['chatload_messages_total{outcome="received"}'] == 50
    assert s['chatload_errors_total{kind="server_error",code="rate_limited"}'] == 2
    assert s['chatload_errors_total{kind="connection_lost",code="1006"}'] == 1
    assert s['chatload_errors_total{kind="unexpected_frame",code=""}'] == 0  # always present
    assert s['chatload_violations_total{kind="cross_talk"}'] == 1
    assert s['chatload_violations_total{kind="double_match"}'] == 0
    assert (s["chatload_users_online"], s["chatload_users_waiting"], s["chatload_users_in_chat"]) == (8, 3, 4)
    assert s["chatload_dropped_arrivals_total"] == 2 and s['chatload_arrivals_total{outcome="started"}'] == 38
    assert s["chatload_fairness_jain_index"] == 0.5 and s["chatload_fairness_fifo_inversions"] == 3
    assert s['chatload_fairness_wait_p99_seconds{dimension="mode",cohort="text"}'] == 0.8
    assert s['chatload_searches_total{outcome="paired"}'] == 60 and s['chatload_searches_total{outcome="gave_up"}'] == 1
    assert s['chatload_wait_seconds_count{dimension="lang",cohort="de"}'] == 15
    assert s['chatload_wait_seconds_count{dimension="interests",cohort="interests"}'] == 12
    # A finished worker no longer counts as online.
    live.on_report({"final": True}, "w1")
    assert _samples(live.render().decode())["chatload_users_online"] == 0


def test_labels_never_carry_user_ids() -> None:
    live, _state, _doc = _live()
    text = live.render().decode()
    labels = set(re.findall(r'(\w+)="', text))
    assert labels <= {"le", "kind", "code", "outcome", "dimension", "cohort", "scenario", "seed", "target"}
    assert "w1-" not in text


def test_bucket_counts_are_exact_counts_under_each_bound() -> None:
    """Bounds are LogHistogram edges, so each cumulative count equals the raw samples <= le."""
    rng = np.random.default_rng(11)
    raw = rng.lognormal(3.0, 1.2, 5000)  # ms
    master = SimpleNamespace(state=MergedState(), t_start_ns=T0)
    h = LogHistogram()
    h.record_many(raw)
    master.state.merge({"hist": {"pair": h.to_dict()}}, "w")
    s = _samples(LiveMetrics(master).render().decode())
    buckets = {float(m.group(1)): v for k, v in s.items()
               if (m := re.fullmatch(r'chatload_pair_latency_seconds_bucket\{le="([^"]+)"\}', k)) and m.group(1) != "+Inf"}
    assert len(buckets) > 300
    raw_s = np.sort(raw) / 1000.0
    for le, cum in buckets.items():
        exact = int(np.searchsorted(raw_s, le, side="right"))
        assert abs(cum - exact) <= 1, (le, cum, exact)  # 6-digit le rounding may move one edge sample
    assert s['chatload_pair_latency_seconds_bucket{le="+Inf"}'] == 5000
    assert abs(s["chatload_pair_latency_seconds_sum"] - raw.sum() / 1000) < 1e-6


def test_violation_counters_never_go_back() -> None:
    live, _state, doc = _live()
    doc = dict(doc, correctness={"lost_messages": 5})
    live.on_results(doc)
    live.on_results(dict(doc, correctness={"lost_messages": 2}))
    assert _samples(live.render().decode())['chatload_violations_total{kind="lost_messages"}'] == 5


def test_promtool_accepts_the_exposition(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    live, _state, _doc = _live()
    proc = subprocess.run([promtool, "check", "metrics"], input=live.render(), capture_output=True,
                          timeout=30 * time_unit())
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    assert proc.stdout.decode().strip() == "" and proc.stderr.decode().strip() == ""  # not even a lint warning


_SERVER = textwrap.dedent("""
    import sys, gevent
    from types import SimpleNamespace
    from harness.metrics_server import LiveExporter
    from harness.results import MergedState
    from pathlib import Path
    master = SimpleNamespace(state=MergedState(), t_start_ns=None, t_end_ns=None)
    master.state.merge({"counters": {"paired": 4}}, "w")
    exp = LiveExporter(master, Path(sys.argv[1]))
    exp.start()
    gevent.sleep(60)
""")


def test_server_serves_metrics_on_an_ephemeral_port_and_writes_it(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _SERVER, str(tmp_path)], cwd=ROOT,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "CHATLOAD_METRICS_PORT": "0"})
    try:
        port_file = tmp_path / "metrics_port"
        deadline = time.monotonic() + 20 * time_unit()
        while not port_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        port = int(port_file.read_text())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            body = resp.read().decode()
        assert "chatload_pairs_total 2.0" in body
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/nope", timeout=5)
            raise AssertionError("404 expected")
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
    finally:
        proc.kill()
        proc.wait()


def test_port_in_use_leaves_metrics_off_without_failing(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run([sys.executable, "-c", _SERVER.replace("gevent.sleep(60)", "print('alive', exp.server)"),
                               str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=30 * time_unit(),
                              env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "CHATLOAD_METRICS_PORT": str(port)})
    assert proc.returncode == 0 and "alive None" in proc.stdout
    assert "cannot serve /metrics" in proc.stderr
    assert not (tmp_path / "metrics_port").exists()
