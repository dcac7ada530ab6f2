"""One worker process of the multi-process server: the usual aiohttp app around a `ClusterHub`.

It accepts on the shared port (SO_REUSEPORT: the kernel spreads new connections over the
workers) and, for tests and benchmarks that must reach one given worker, optionally on a
port of its own. Besides the usual routes it answers `GET /cluster` (this process: its
slot, pid, local sessions, the core owner's pid) and adds per-process series to /metrics.
"""
from __future__ import annotations

import asyncio
import logging
import os
from typing import Iterator

import orjson
from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from . import gc_policy
from .app import HUB_KEY, REGISTRY_KEY, serve
from .cluster_hub import ClusterHub
from .metrics import PREFIX
from .settings import Settings


class ClusterCollector:
    """Per-process series of a worker (the usual gauges carry the global figures)."""

    def __init__(self, hub: ClusterHub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        hub = self.hub
        worker = [str(hub.slot)]
        g = GaugeMetricFamily(PREFIX + "process_connections", "Open WebSocket sessions of this worker process",
                              labels=["worker"])
        g.add_metric(worker, hub.local_online)
        yield g
        c = CounterMetricFamily(PREFIX + "cross_process_relays", "Frames relayed to a partner on another worker",
                                labels=["worker"])
        c.add_metric(worker, hub.channel.crossed)
        yield c
        up = GaugeMetricFamily(PREFIX + "core_connected", "1 while this worker is connected to the core owner",
                               labels=["worker"])
        up.add_metric(worker, int(hub.channel.transport is not None))
        yield up
        n = CounterMetricFamily(PREFIX + "core_connects", "Connections made to the core owner (1 + reconnects)",
                                labels=["worker"])
        n.add_metric(worker, hub.channel.connects)
        yield n


def status(hub: ClusterHub) -> dict:
    """What GET /cluster answers: this process and the global view it holds."""
    ch = hub.channel
    return {
        "worker": hub.slot,
        "generation": hub.generation,
        "pid": os.getpid(),
        "core_pid": ch.core_pid,
        "core_generation": ch.core_generation,
        "core_connected": ch.transport is not None and ch.ready.is_set(),
        "local_online": hub.local_online,
        "online": hub.online,
        "waiting": hub.waiting,
        "per_worker_online": hub.view.per_worker,
        "pairs_made": hub.view.pairs_made,  # global, from the core owner
        "pairs_across_workers": hub.view.pairs_crossed,
        "relayed": sum(hub.stats.relayed.values()),
        "cross_process_relays": ch.crossed,
        "draining": hub.draining,
    }


async def _cluster_status(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    return web.Response(body=orjson.dumps(status(hub)), content_type="application/json")  # type: ignore[arg-type]


def worker_main(settings: Settings, slot: int, generation: int, core_address: str, own_port: int | None) -> int:
    """Run worker `slot` until SIGTERM (it drains like the single-process server)."""

    def make_hub(st: Settings, loop: asyncio.AbstractEventLoop) -> ClusterHub:
        return ClusterHub(st, loop, slot, generation, core_address)

    def on_app(app: web.Application) -> None:
        app.router.add_get("/cluster", _cluster_status)
        app[REGISTRY_KEY].register(ClusterCollector(app[HUB_KEY]))  # type: ignore[attr-defined]

    main = serve(settings, make_hub=make_hub, on_app=on_app, reuse_port=True,
                 extra_ports=(own_port,) if own_port else ())
    run_loop(main, settings.gc_threshold)
    logging.getLogger("reference_server").info("worker %d exits", slot)
    return 0


def run_loop(main: "asyncio.Future | object", gc_threshold: int = gc_policy.DEFAULT_THRESHOLD) -> None:
    """Run a coroutine on uvloop when available, with the server's garbage-collector policy."""
    gc_policy.apply(gc_threshold)
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        asyncio.run(main)  # type: ignore[arg-type]
        return
    uvloop.run(main)  # type: ignore[arg-type]
