"""The master's /metrics endpoint: a small gevent WSGI server plus its Locust glue.

Why a server of its own: a headless Locust master has no web UI to hang a route on, and
Prometheus must reach the master on a port known before the run starts (`chatload run`
passes CHATLOAD_METRICS_PORT; without it an ephemeral port is used, logged, and written
to $CHATLOAD_OUT/metrics_port). The server runs in the master's gevent loop, so a scrape
reads the merged state between two merges, never during one.

Environment: CHATLOAD_METRICS_PORT (0 or unset: ephemeral; "off": no server),
CHATLOAD_METRICS_HOST (default 127.0.0.1), CHATLOAD_METRICS_LINGER (seconds the master
waits at the end of the test for one more scrape, so Prometheus holds the final figures;
default 3; only once a scrape was seen), CHATLOAD_PARTIAL_INTERVAL (how often the
oracle-made figures are rebuilt when no output folder is set).
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import gevent
from gevent.pywsgi import WSGIServer

from harness.live_metrics import CONTENT_TYPE, LiveMetrics, analyse_fairness, run_info_from_env, write_port_file

logger = logging.getLogger(__name__)

_INDEX = b"""<!doctype html><title>chatload metrics</title><p><a href="/metrics">/metrics</a></p>"""


class _QuietLog:
    """pywsgi wants a file-like log; scrapes every second are not worth a log line each."""

    def write(self, _data: str) -> None:
        pass


class MetricsServer:
    """Serves `render()` at /metrics on (host, port); port 0 picks a free one."""

    def __init__(self, render: Callable[[], bytes], host: str = "127.0.0.1", port: int = 0) -> None:
        self.render = render
        self.server = WSGIServer((host, port), self._app, log=_QuietLog(), error_log=logger)
        self.host = host
        self.port = 0

    def start(self) -> int:
        self.server.start()
        self.port = int(self.server.server_port)
        return self.port

    def stop(self) -> None:
        self.server.stop(timeout=1)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            try:
                body = self.render()
            except Exception:  # noqa: BLE001 - a bad scrape must not kill the master
                logger.exception("chatload: rendering /metrics failed")
                start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
                return [b"rendering failed; see the master log\n"]
            start_response("200 OK", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))])
            return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else body]
        if path in ("/", "/healthz"):
            start_response("200 OK", [("Content-Type", "text/html")])
            return [_INDEX]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found; try /metrics\n"]


class LiveExporter:
    """Glue between the plugin's MasterSide and the metrics server (master or local runner)."""

    def __init__(self, master: Any, out: Path | None) -> None:
        self.live = LiveMetrics(master, run_info_from_env())
        self.master = master
        self.out = out
        self.server: MetricsServer | None = None
        self.fairness_next = 0.0  # monotonic time before which no new fairness analysis runs
        self.linger = _env_float("CHATLOAD_METRICS_LINGER", 3.0)
        self.refresh_interval = _env_float("CHATLOAD_PARTIAL_INTERVAL", 3.0)
        self._built_reports = 0

    # -- start --------------------------------------------------------------------------
    def start(self) -> None:
        port_text = os.environ.get("CHATLOAD_METRICS_PORT", "").strip().lower()
        if port_text in ("off", "none", "-1"):
            return
        host = os.environ.get("CHATLOAD_METRICS_HOST", "127.0.0.1") or "127.0.0.1"
        try:
            port = int(port_text or 0)
        except ValueError:
            logger.error("chatload: CHATLOAD_METRICS_PORT=%r is not a port; /metrics is off", port_text)
            return
        server = MetricsServer(self._render, host, port)
        try:
            server.start()
        except OSError as exc:
            logger.error("chatload: cannot serve /metrics on %s:%s (%s); live metrics are off", host, port, exc)
            return
        self.server = server
        write_port_file(self.out, server.port)
        logger.info("chatload: live metrics at %s", server.url)
        if self.out is None:
            gevent.spawn(self._refresh_loop)

    def _render(self) -> bytes:
        return self.live.render()

    # -- feeding (called by the plugin) ------------------------------------------------
    def on_report(self, data: dict[str, Any], worker: str) -> None:
        try:
            self.live.on_report(data, worker)
        except Exception:  # noqa: BLE001 - metrics must never break the merge
            logger.exception("chatload: live metrics could not take a report")

    def on_results(self, doc: dict[str, Any]) -> None:
        try:
            self.live.on_results(doc)
            if "fairness" not in doc and time.monotonic() >= self.fairness_next:
                t0 = time.monotonic()
                figures = analyse_fairness(doc)
                took = time.monotonic() - t0
                # Like the partial writes: keep the analysis a small share of the master's time.
                self.fairness_next = time.monotonic() + min(120.0, 10 * took)
                if figures:
                    self.live.fairness = figures
        except Exception:  # noqa: BLE001
            logger.exception("chatload: live metrics could not take a results document")

    def _refresh_loop(self) -> None:
        """Without an output folder nobody builds partial results: build them for the metrics."""
        while True:
            gevent.sleep(self.refresh_interval)
            m = self.master
            if m.t_start_ns is None or m.t_end_ns is not None or self.live.reports == self._built_reports:
                continue
            self._built_reports = self.live.reports
            t0 = time.monotonic()
            try:
                m.build(partial=True)
            except Exception:  # noqa: BLE001
                logger.exception("chatload: building live figures failed")
            gevent.sleep(min(60.0, 5 * (time.monotonic() - t0)))

    def await_final_scrape(self) -> None:
        """At the end of the test: give a scraper the chance to read the final figures."""
        last = self.live.last_scrape_at
        if self.server is None or last is None or self.linger <= 0 or time.monotonic() - last > 2 * self.linger:
            return  # nobody is scraping regularly
        seen = self.live.scrapes
        deadline = time.monotonic() + self.linger
        # Two scrapes after now: the first may have started before the final merge.
        while self.live.scrapes < seen + 2 and time.monotonic() < deadline:
            gevent.sleep(0.05)


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, "") or default)
    except ValueError:
        return default


def attach(environment: Any, master: Any, out: Path | None) -> LiveExporter:
    """Start serving /metrics for this master; the returned exporter is fed by the plugin."""
    exporter = LiveExporter(master, out)
    exporter.start()
    # Registered after the plugin's own test_stop listener (the plugin is imported first),
    # so the final results are built before we wait for the last scrape.
    environment.events.test_stop.add_listener(lambda **_kw: exporter.await_final_scrape())
    return exporter
