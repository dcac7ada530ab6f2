"""Generate the Grafana dashboards in this folder: `python dashboards/build.py`.

Why generated: two dashboards of about twenty panels each must agree on the datasource
variable, the run variable, the metric names and a grid without overlaps; writing the JSON
by hand drifts. tests/test_dashboards.py checks the committed JSON equals this output,
and runs every query against a real Prometheus fed by a real run.

Metric names are those of harness/live_metrics.py (`chatload_*`) and
reference_server/metrics.py (`chatload_server_*`); `run` is a target label set by the
scrape config (harness/prometheus.py).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "${datasource}"}
RUN = 'run=~"$run"'
SCHEMA_VERSION = 38


def _q(expr: str, legend: str = "", ref: str = "A", fmt: str = "time_series") -> dict[str, Any]:
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref, "range": True,
            "instant": False, "format": fmt, "editorMode": "code"}


def _pct(metric: str, q: float, by: str = "") -> str:
    group = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{{{RUN}}}[$__rate_interval])))"


class Layout:
    """Places panels left to right on Grafana's 24-column grid; rows start a new line."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1
        self.panels: list[dict[str, Any]] = []

    def _id(self) -> int:
        i = self.next_id
        self.next_id += 1
        return i

    def row(self, title: str) -> None:
        self.newline()
        self.panels.append({"type": "row", "id": self._id(), "title": title, "collapsed": False, "panels": [],
                            "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1}})
        self.y += 1

    def newline(self) -> None:
        if self.x:
            self.y += self.row_h
        self.x, self.row_h = 0, 0

    def add(self, panel: dict[str, Any], w: int = 12, h: int = 8) -> None:
        if self.x + w > 24:
            self.newline()
        panel["id"] = self._id()
        panel["gridPos"] = {"x": self.x, "y": self.y, "w": w, "h": h}
        panel["datasource"] = DS
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)


def timeseries(title: str, targets: list[dict[str, Any]], unit: str = "short", description: str = "",
               min0: bool = True, stack: bool = False) -> dict[str, Any]:
    for i, t in enumerate(targets):
        t["refId"] = chr(ord("A") + i)
    defaults: dict[str, Any] = {"unit": unit, "custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10,
                                                          "showPoints": "never", "spanNulls": True,
                                                          "stacking": {"mode": "normal" if stack else "none", "group": "A"}}}
    if min0:
        defaults["min"] = 0
    return {"type": "timeseries", "title": title, "description": description, "targets": targets,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
                        "tooltip": {"mode": "multi", "sort": "desc"}}}


def stat(title: str, expr: str, unit: str = "short", description: str = "", decimals: int | None = None,
         thresholds: list[tuple[float | None, str]] | None = None) -> dict[str, Any]:
    steps = [{"value": v, "color": c} for v, c in (thresholds or [(None, "green")])]
    defaults: dict[str, Any] = {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}}
    if decimals is not None:
        defaults["decimals"] = decimals
    return {"type": "stat", "title": title, "description": description, "targets": [_q(expr)],
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "value", "graphMode": "area", "textMode": "auto"}}


def heatmap(title: str, metric: str, description: str = "") -> dict[str, Any]:
    expr = f"sum by (le) (rate({metric}_bucket{{{RUN}}}[$__rate_interval]))"
    return {"type": "heatmap", "title": title, "description": description,
            "targets": [_q(expr, "{{le}}", fmt="heatmap")], "maxDataPoints": 200,
            "fieldConfig": {"defaults": {"custom": {"scaleDistribution": {"type": "linear"}}}, "overrides": []},
            "options": {"calculate": False, "yAxis": {"unit": "s", "axisPlacement": "left"},
                        "cellGap": 0, "color": {"mode": "scheme", "scheme": "Oranges", "exponent": 0.5, "steps": 64},
                        "rowsFrame": {"layout": "auto"}, "tooltip": {"show": True, "yHistogram": True},
                        "legend": {"show": True}}}


def variables(run_metric: str) -> dict[str, Any]:
    return {"list": [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
         "refresh": 1, "hide": 0, "current": {}, "options": [], "regex": ""},
        {"name": "run", "label": "Run", "type": "query", "datasource": DS,
         "query": {"query": f"label_values({run_metric}, run)", "refId": "run"},
         "definition": f"label_values({run_metric}, run)", "refresh": 2, "sort": 2,
         "includeAll": True, "allValue": ".*", "multi": False, "hide": 0,
         "current": {"selected": True, "text": "All", "value": "$__all"}, "options": [], "regex": ""},
    ]}


def dashboard(uid: str, title: str, description: str, panels: list[dict[str, Any]], run_metric: str) -> dict[str, Any]:
    return {
        "uid": uid, "title": title, "description": description, "tags": ["chatload"],
        "editable": True, "graphTooltip": 1, "schemaVersion": SCHEMA_VERSION, "version": 1,
        "time": {"from": "now-30m", "to": "now"}, "refresh": "5s", "timezone": "",
        "templating": variables(run_metric),
        "annotations": {"list": [
            {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True,
             "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"},
            {"datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": False,
             "iconColor": "#F2495C", "name": "chatload runs and phases",
             "target": {"type": "tags", "tags": ["chatload"], "matchAny": True, "limit": 200}},
        ]},
        "panels": panels,
    }


def run_overview() -> dict[str, Any]:
    L = Layout()
    L.row("Pairing and relay latency")
    L.add(timeseries("Pair latency percentiles", [
        _q(_pct("chatload_pair_latency_seconds", 0.5), "p50"),
        _q(_pct("chatload_pair_latency_seconds", 0.9), "p90"),
        _q(_pct("chatload_pair_latency_seconds", 0.99), "p99"),
    ], "s", "join or next sent to paired received, over the last $__rate_interval"))
    L.add(heatmap("Pair latency heatmap", "chatload_pair_latency_seconds", "pairings per latency bucket"))
    L.add(timeseries("Relay latency percentiles", [
        _q(_pct("chatload_relay_latency_seconds", 0.5), "p50"),
        _q(_pct("chatload_relay_latency_seconds", 0.99), "p99"),
        _q(_pct("chatload_relay_latency_seconds", 0.999), "p99.9"),
    ], "s", "chat message sent at one end to received at the other"))
    L.add(timeseries("Other latencies (p99)", [
        _q(_pct("chatload_partner_left_latency_seconds", 0.99), "partner_left"),
        _q(_pct("chatload_signal_rtt_seconds", 0.99), "signal round trip"),
        _q(_pct("chatload_connect_latency_seconds", 0.99), "connect"),
    ], "s", "partner-left from the oracle's joins (refreshed every few seconds), WebRTC offer->answer, connect+welcome"))
    L.row("Throughput and concurrency")
    L.add(timeseries("Pairs and messages per second", [
        _q(f"sum(rate(chatload_pairs_total{{{RUN}}}[$__rate_interval]))", "pairs/s"),
        _q(f"sum(rate(chatload_messages_total{{{RUN}, outcome=\"received\"}}[$__rate_interval]))", "messages/s"),
        _q(f"sum(rate(chatload_nexts_total{{{RUN}}}[$__rate_interval]))", "nexts/s"),
    ], "ops"))
    L.add(timeseries("Users online, waiting, in chat", [
        _q(f"sum(chatload_users_online{{{RUN}}})", "online"),
        _q(f"sum(chatload_users_waiting{{{RUN}}})", "waiting"),
        _q(f"sum(chatload_users_in_chat{{{RUN}}})", "in chat"),
    ], "short"))
    L.add(timeseries("Searches ended per second, by outcome", [
        _q(f"sum by (outcome) (rate(chatload_searches_total{{{RUN}}}[$__rate_interval]))", "{{outcome}}"),
    ], "ops"), w=12)
    L.add(timeseries("Chat ends per second, by how", [
        _q(f"sum by (outcome) (rate(chatload_chat_ends_total{{{RUN}}}[$__rate_interval]))", "{{outcome}}"),
    ], "ops"), w=12)
    L.row("Queue fairness")
    L.add(stat("Jain index of waits", f"max(chatload_fairness_jain_index{{{RUN}}})", "none",
               "1 = everyone waited the same; from the last fairness analysis of the run so far", 3), w=6, h=6)
    L.add(stat("FIFO inversions", f"max(chatload_fairness_fifo_inversions{{{RUN}}})", "short",
               "pairings that passed over an earlier compatible waiter (docs/fairness.md)",
               thresholds=[(None, "green"), (1, "orange")]), w=6, h=6)
    L.add(timeseries("Fairness over the run", [
        _q(f"max(chatload_fairness_jain_index{{{RUN}}})", "Jain index"),
        _q(f"max(chatload_fairness_starved{{{RUN}}})", "starved searches"),
    ], "none", "the inversion rate and worst-to-best p99 ratio are exported once enough searches exist"), w=12, h=6)
    L.add(timeseries("p99 wait by cohort (window)", [
        _q(_pct("chatload_wait_seconds", 0.99, "dimension, cohort"), "{{dimension}}={{cohort}}"),
    ], "s", "queue wait of searches ended in the window, by cohort"))
    L.add(timeseries("p99 wait by cohort (run so far)", [
        _q(f"max by (dimension, cohort) (chatload_fairness_wait_p99_seconds{{{RUN}}})", "{{dimension}}={{cohort}}"),
    ], "s", "nearest-rank p99 over every search so far (fairness analysis)"))
    L.row("Correctness and errors")
    L.add(stat("Correctness violations", f"sum(chatload_violations_total{{{RUN}}})", "short",
               "every kind the oracle checks (docs/oracle.md)", thresholds=[(None, "green"), (1, "red")]), w=6)
    L.add(timeseries("Violations by kind", [
        _q(f"sum by (kind) (chatload_violations_total{{{RUN}}})", "{{kind}}"),
    ], "short"), w=18)
    L.add(timeseries("Errors per second, by kind", [
        _q(f"sum by (kind) (rate(chatload_errors_total{{{RUN}}}[$__rate_interval]))", "{{kind}}"),
    ], "ops", "errors seen by the users: connect failures, lost connections, server error frames..."))
    L.add(timeseries("Errors by kind and code (total)", [
        _q(f"sum by (kind, code) (chatload_errors_total{{{RUN}}})", "{{kind}} {{code}}"),
    ], "short"))
    L.row("Open-model arrivals")
    L.add(timeseries("Arrivals per second, by outcome", [
        _q(f"sum by (outcome) (rate(chatload_arrivals_total{{{RUN}}}[$__rate_interval]))", "{{outcome}}"),
        _q(f"sum(rate(chatload_dropped_arrivals_total{{{RUN}}}[$__rate_interval]))", "dropped"),
    ], "ops", "scheduled, started and dropped visits of an open-model scenario (0 in a closed-model run)"))
    L.add(timeseries("Arrival lateness", [
        _q(_pct("chatload_arrival_lateness_seconds", 0.5), "p50"),
        _q(_pct("chatload_arrival_lateness_seconds", 0.99), "p99"),
    ], "s", "real start of a visit minus its schedule: a loaded load generator shows here"))
    return dashboard("chatload-run-overview", "chatload: run overview",
                     "A chatload swarm live: pairing latency, relay, throughput, concurrency, queue fairness, correctness.",
                     L.panels, "chatload_run_info")


def reference_server() -> dict[str, Any]:
    L = Layout()
    L.row("Event loop and queues")
    L.add(timeseries("Event-loop lag", [
        _q(_pct("chatload_server_event_loop_lag_seconds", 0.5), "p50"),
        _q(_pct("chatload_server_event_loop_lag_seconds", 0.99), "p99"),
        _q(f"max(chatload_server_event_loop_lag_last_seconds{{{RUN}}})", "last probe"),
    ], "s", "how late the server's event loop ran a periodic probe"))
    L.add(timeseries("Queue depth per pool", [
        _q(f"sum by (mode, lang) (chatload_server_waiting_users{{{RUN}}})", "{{mode}}/{{lang}}"),
    ], "short", "users waiting for a partner, per (mode, lang) pool"))
    L.add(timeseries("Server-side queue wait", [
        _q(_pct("chatload_server_wait_seconds", 0.5), "p50"),
        _q(_pct("chatload_server_wait_seconds", 0.99), "p99"),
    ], "s", "join (or next) to paired, measured by the server"))
    L.add(timeseries("Sessions", [
        _q(f"sum(chatload_server_connections{{{RUN}}})", "connected"),
        _q(f"sum(chatload_server_paired_users{{{RUN}}})", "in a chat"),
        _q(f"sum(rate(chatload_server_connections_opened_total{{{RUN}}}[$__rate_interval]))", "opened/s"),
    ], "short"))
    L.row("Traffic and errors")
    L.add(timeseries("Relayed messages per second, by type", [
        _q(f"sum by (type) (rate(chatload_server_relayed_messages_total{{{RUN}}}[$__rate_interval]))", "{{type}}"),
    ], "ops"))
    L.add(timeseries("Pairs per second, by mode", [
        _q(f"sum by (mode) (rate(chatload_server_pairs_total{{{RUN}}}[$__rate_interval]))", "{{mode}}"),
    ], "ops"))
    L.add(timeseries("Errors per second, by code", [
        _q(f"sum by (code) (rate(chatload_server_errors_total{{{RUN}}}[$__rate_interval]))", "{{code}}"),
    ], "ops", "error frames the server sent"))
    L.add(timeseries("partner_left and timeouts per second", [
        _q(f"sum by (reason) (rate(chatload_server_partner_left_total{{{RUN}}}[$__rate_interval]))", "partner_left {{reason}}"),
        _q(f"sum(rate(chatload_server_idle_timeouts_total{{{RUN}}}[$__rate_interval]))", "idle timeouts"),
        _q(f"sum(rate(chatload_server_handshake_timeouts_total{{{RUN}}}[$__rate_interval]))", "handshake timeouts"),
    ], "ops", "server-side close codes are in chatload_server_closes_total{code} once the server closed a socket"))
    return dashboard("chatload-reference-server", "chatload: reference server",
                     "The reference matchmaking server under load: event loop, queues, traffic, errors.",
                     L.panels, "chatload_server_connections")


DASHBOARDS = {"chatload-run-overview.json": run_overview, "chatload-reference-server.json": reference_server}


def render(build: Any) -> str:
    return json.dumps(build(), indent=2, sort_keys=False) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name, build in DASHBOARDS.items():
        text = render(build)
        path = HERE / name
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.name}")
    if stale:
        print(f"stale dashboards (run python dashboards/build.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
