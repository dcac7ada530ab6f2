"""Server metrics: plain counters on the hot path, turned into Prometheus text at scrape time.

Counting is `dict[key] += 1` (no locks, no label lookups per message); a custom collector
reads the counters and the live state (online users, waiting users per pool) only when
/metrics is scraped. Every name starts with `chatload_server_`.
"""
from __future__ import annotations

import bisect
import gc
import math
from typing import Callable, Iterable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from .protocol import ERROR_CODES, MODES, PARTNER_LEFT_REASONS

PREFIX = "chatload_server_"
RELAYED_TYPES = ("message", "typing", "signal")


def log_buckets(low: float, high: float, growth: float = 1.25) -> tuple[float, ...]:
    """Upper bounds growing by `growth` from `low` until `high` is covered (DESIGN.md: about 1.25)."""
    bounds = [low]
    while bounds[-1] < high:
        bounds.append(bounds[-1] * growth)
    return tuple(float(f"{b:.6g}") for b in bounds)


class Histogram:
    """Counts per fixed upper bound plus a sum: enough for a Prometheus histogram."""

    __slots__ = ("bounds", "counts", "total", "count")

    def __init__(self, bounds: Iterable[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # last slot: above every bound
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        out, running = [], 0
        for bound, n in zip(self.bounds, self.counts):
            running += n
            out.append((repr(bound), running))
        out.append(("+Inf", running + self.counts[-1]))
        return out


class ServerStats:
    """Every counter the server keeps; mutated in place by the hub."""

    def __init__(self) -> None:
        self.connections_opened = 0
        self.handshake_timeouts = 0
        self.idle_timeouts = 0
        self.bans = 0
        self.pairs: dict[str, int] = {m: 0 for m in MODES}
        self.relayed: dict[str, int] = {t: 0 for t in RELAYED_TYPES}
        self.errors: dict[str, int] = {c: 0 for c in ERROR_CODES}
        self.partner_left: dict[str, int] = {r: 0 for r in PARTNER_LEFT_REASONS}
        self.closes: dict[int, int] = {}
        self.wait = Histogram(log_buckets(0.001, 120.0))
        self.loop_lag = Histogram(log_buckets(0.0001, 10.0))
        self.last_loop_lag = 0.0


class ServerCollector:
    """Prometheus collector over ServerStats plus live gauges read through callables."""

    def __init__(
        self,
        stats: ServerStats,
        online: Callable[[], int],
        waiting_by_pool: Callable[[], dict[tuple[str, str], int]],
        paired: Callable[[], int],
        draining: Callable[[], bool],
    ) -> None:
        self.stats = stats
        self._online = online
        self._waiting_by_pool = waiting_by_pool
        self._paired = paired
        self._draining = draining

    def collect(self) -> Iterator[Metric]:
        s = self.stats
        yield GaugeMetricFamily(PREFIX + "connections", "Open WebSocket sessions (the online count)", value=self._online())
        yield CounterMetricFamily(PREFIX + "connections_opened", "WebSocket sessions accepted", value=s.connections_opened)
        yield CounterMetricFamily(
            PREFIX + "handshake_timeouts", "TCP connections closed for not completing a request in time", value=s.handshake_timeouts
        )
        yield CounterMetricFamily(PREFIX + "idle_timeouts", "Sessions closed for staying idle too long", value=s.idle_timeouts)
        yield CounterMetricFamily(PREFIX + "bans", "Addresses banned after reports", value=s.bans)
        waiting = GaugeMetricFamily(PREFIX + "waiting_users", "Users waiting for a partner, per pool", labels=["mode", "lang"])
        for (mode, lang), n in sorted(self._waiting_by_pool().items()):
            if n:
                waiting.add_metric([mode, lang], n)
        yield waiting
        yield GaugeMetricFamily(PREFIX + "paired_users", "Users currently in a chat", value=self._paired())
        yield GaugeMetricFamily(PREFIX + "draining", "1 while the server drains for shutdown", value=int(self._draining()))
        yield _labelled(CounterMetricFamily, "pairs", "Pairs made, per mode", "mode", s.pairs)
        yield _labelled(CounterMetricFamily, "relayed_messages", "Frames relayed to a partner, per type", "type", s.relayed)
        yield _labelled(CounterMetricFamily, "errors", "Error frames sent, per code", "code", s.errors)
        yield _labelled(CounterMetricFamily, "partner_left", "partner_left frames sent, per reason", "reason", s.partner_left)
        yield _labelled(CounterMetricFamily, "closes", "Sockets closed by the server, per close code", "code", s.closes)
        yield _histogram("wait_seconds", "Server-side queue wait from join (or next) to paired", s.wait)
        yield _histogram("event_loop_lag_seconds", "How late the event loop ran a periodic probe", s.loop_lag)
        yield GaugeMetricFamily(
            PREFIX + "event_loop_lag_last_seconds", "The last event-loop lag probe", value=s.last_loop_lag
        )
        yield from _gc_metrics()


def _gc_metrics() -> Iterator[Metric]:
    """The collector's thresholds (the --gc-threshold policy) and its passes: pauses show as loop lag."""
    threshold = GaugeMetricFamily(PREFIX + "gc_threshold", "Garbage-collector threshold, per generation", labels=["generation"])
    for gen, value in enumerate(gc.get_threshold()):
        threshold.add_metric([str(gen)], value)
    yield threshold
    yield _labelled(CounterMetricFamily, "gc_collections", "Garbage-collector passes, per generation", "generation",
                    {gen: st["collections"] for gen, st in enumerate(gc.get_stats())})


def _labelled(kind: type, name: str, doc: str, label: str, values: dict) -> Metric:
    family = kind(PREFIX + name, doc, labels=[label])
    for key, n in values.items():
        family.add_metric([str(key)], n)
    return family


def _histogram(name: str, doc: str, h: Histogram) -> Metric:
    total = h.total if math.isfinite(h.total) else 0.0
    return HistogramMetricFamily(PREFIX + name, doc, buckets=h.cumulative(), sum_value=total)


def make_registry(collector: ServerCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)  # type: ignore[arg-type]
    return registry


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The Prometheus text exposition and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
