"""The run report: self-contained HTML that headless Chromium opens with no script errors and
every plot drawn; a screenshot test; `chatload report` rebuilding it from results.json."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from harness.histogram import LogHistogram
from harness.report import build_report
from tests.support import ROOT, require_binary, time_unit

T0 = 1_700_000_000.0
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PLOTS = ("plot-pair-latency", "plot-relay-latency", "plot-wait-vs-join", "plot-p99-by-cohort", "plot-throughput",
         "plot-concurrency", "plot-violations")


def results_doc() -> dict[str, Any]:
    """A results.json shaped like docs/results.md, with a few violations and two cohorts."""
    rng = np.random.default_rng(3)
    hist = {}
    for kind, (mu, sigma) in {"pair": (3.0, 1.0), "relay": (-0.3, 0.5), "connect": (2.0, 0.3),
                              "signal_rtt": (1.0, 0.4), "partner_left": (0.0, 0.5)}.items():
        h = LogHistogram()
        h.record_many(rng.lognormal(mu, sigma, 500))
        hist[kind] = h
    tickets = []
    for i in range(300):
        t_join = T0 + i * 0.1
        wait = float(rng.lognormal(-3, 1))
        gave = i % 10 == 0
        tickets.append({"user": f"w-{i}", "cls": "Chatter", "mode": "video" if i % 3 == 0 else "text", "lang": "en",
                        "interests": [], "t_join": t_join, "t_paired": None if gave else t_join + wait,
                        "t_gave_up": t_join + wait if gave else None, "peer": None})
    doc: dict[str, Any] = {
        "run": {"scenario": "smoke", "target": "ws://127.0.0.1:1/ws", "seed": 9, "started": "2023-11-14T22:13:20Z",
                "duration_s": 30, "workers": 2, "users": 40, "elapsed_s": 30.2, "stop_reason": "completed"},
        "partial": False,
        "throughput": {"pairs": 300, "messages": 2000, "pairs_per_s": 10.0, "messages_per_s": 66.6},
        "users": {"peak_concurrent": 40, "sessions": 60, "chats": 600, "gave_up": 30},
        "correctness": {"double_match": 2, "lost_messages": 1, "violations_total": 3,
                        "examples": {"double_match": [{"who": "w-3", "when": int((T0 + 5) * 1e9), "what": "paired twice <b>"}]}},
        "errors": {"server_error:rate_limited": 4, "total": 4},
        "counters": {"sessions": 60, "paired": 600},
        "histograms": {k: h.to_dict() for k, h in hist.items()},
        "timeline": [{"t": t, "pairs": 10, "messages": 60 + t, "online": 40, "waiting": 5, "in_chat": 30,
                      "violations": 1 if t in (5, 9, 20) else 0} for t in range(30)],
        "tickets": tickets,
    }
    for key, kind in (("pair_latency_ms", "pair"), ("relay_latency_ms", "relay"), ("connect_latency_ms", "connect"),
                      ("signal_rtt_ms", "signal_rtt"), ("partner_left_latency_ms", "partner_left")):
        doc[key] = hist[kind].summary()
    return doc


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    chromium = require_binary("chromium")
    return subprocess.run([chromium, *CHROME_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=90 * time_unit())


def test_report_is_self_contained() -> None:
    html = build_report(results_doc())
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "the report must not fetch anything"
    assert "<link" not in html and "@import" not in html
    assert "paired twice &lt;b&gt;" in html  # examples are escaped
    for plot in PLOTS:
        assert f'id="{plot}"' in html


def test_report_opens_in_chromium_without_script_errors_and_draws_every_plot(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(build_report(results_doc()))
    proc = _chromium(tmp_path, "--virtual-time-budget=3000", "--dump-dom", page.as_uri())
    dom = proc.stdout
    assert 'data-report-ready="1"' in dom, proc.stderr[-2000:]
    assert not re.search(r"<html[^>]*data-js-errors", dom)
    assert re.search(r'<div id="js-errors" class="js-errors"></div>', dom)
    for plot in PLOTS:
        m = re.search(rf'<svg[^>]*id="{plot}"[^>]*data-marks="(\d+)"', dom)
        assert m and int(m.group(1)) > 0, f"{plot} drew nothing"


def test_the_error_sentinel_catches_a_script_error(tmp_path: Path) -> None:
    """The check above could not fail if the sentinel never fired: break a page on purpose."""
    page = tmp_path / "broken.html"
    page.write_text(build_report(results_doc()).replace("</main>", "</main><script>undefinedFunction();</script>"))
    dom = _chromium(tmp_path, "--virtual-time-budget=3000", "--dump-dom", page.as_uri()).stdout
    assert re.search(r'<html[^>]*data-js-errors="1"', dom) and "undefinedFunction is not defined" in dom


def test_screenshot(tmp_path: Path) -> None:
    """Keeps a PNG of the report (look at it when changing the layout): tmp_path/report.png."""
    page = tmp_path / "report.html"
    page.write_text(build_report(results_doc()))
    shot = tmp_path / "report.png"
    _chromium(tmp_path, "--hide-scrollbars", "--window-size=1200,2400", f"--screenshot={shot}", page.as_uri())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000  # a blank page compresses to a few kB
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1200, 2400)


def test_chatload_report_rebuilds_from_results_json(tmp_path: Path) -> None:
    src = tmp_path / "results.json"
    src.write_text(json.dumps(results_doc()))
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "report", str(src)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60 * time_unit())
    assert proc.returncode == 0, proc.stderr
    html = (tmp_path / "report.html").read_text()
    assert "3 correctness violation(s)" in html and "double_match" in html
    out = tmp_path / "elsewhere" / "r.html"
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "report", str(src), "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60 * time_unit())
    assert proc.returncode == 0 and out.exists()
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "report", str(bad)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60 * time_unit())
    assert proc.returncode == 2 and "not a chatload results document" in proc.stderr


def test_report_of_an_empty_partial_run_still_renders() -> None:
    html = build_report({"run": {"scenario": "x"}, "partial": True})
    assert "partial results" in html and html.count("no data") >= 5
