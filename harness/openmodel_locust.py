"""Open-model arrivals under Locust: visitors start on the plan's schedule, whatever the backend does.

Locust only knows closed loops (N users, each starting its next task when the last one
ended), which lowers the offered load when the backend slows down: coordinated omission.
Here the Locust users of a worker are a fixed pool of user *slots* (`-u` is the total), and
one dispatcher greenlet per worker walks the worker's share of the plan (arrival i belongs
to worker i % worker_count) in real time, hands each due arrival to a free slot, and counts
`dropped_arrivals` when none frees up within `max_wait_s`. The decisions are the pure
`OpenModelScheduler` (harness/population/openmodel.py); this module adds the clock, the
hand-over queue and the counters shipped to the master (`ArrivalTally`).

Lateness is the real start of a visit (the slot took it and began) minus its schedule, in
ms, so a loaded load generator shows up as lateness, and a slow backend as dropped arrivals,
never as a lower arrival rate.
"""
from __future__ import annotations

import time
from typing import Any, Mapping

import gevent
import numpy as np
from gevent.event import Event
from gevent.queue import Empty, Queue

from harness.histogram import LogHistogram
from harness.population.model import Plan
from harness.population.openmodel import OpenModelScheduler


class ArrivalTally:
    """Per-worker arrival counters and the lateness histogram, shipped as deltas."""

    def __init__(self) -> None:
        self.frozen = False
        self.enabled = False
        self._reset()

    def _reset(self) -> None:
        self.scheduled = 0
        self.started = 0
        self.dropped = 0
        self.lateness = LogHistogram()
        self.per_second: dict[int, list[int]] = {}  # wall second -> [scheduled, started, dropped]

    def _sec(self, t_s: float) -> list[int]:
        sec = int(t_s)
        row = self.per_second.get(sec)
        if row is None:
            row = self.per_second[sec] = [0, 0, 0]
        return row

    def on_scheduled(self, wall_s: float, n: int = 1) -> None:
        if not self.frozen:
            self.scheduled += n
            self._sec(wall_s)[0] += n

    def on_started(self, wall_s: float, lateness_ms: float) -> None:
        if not self.frozen:
            self.started += 1
            self.lateness.record(max(0.0, lateness_ms))
            self._sec(wall_s)[1] += 1

    def on_dropped(self, wall_s: float, n: int = 1) -> None:
        if not self.frozen:
            self.dropped += n
            self._sec(wall_s)[2] += n

    def drain(self) -> dict[str, Any]:
        out = {"enabled": self.enabled, "scheduled": self.scheduled, "started": self.started,
               "dropped_arrivals": self.dropped, "lateness": self.lateness.to_dict(),
               "per_second": {str(k): v for k, v in self.per_second.items()}}
        self._reset()
        return out


class MergedArrivals:
    """The master's sum of every worker's ArrivalTally deltas."""

    def __init__(self) -> None:
        self.enabled = False
        self.scheduled = self.started = self.dropped = 0
        self.lateness = LogHistogram()
        self.per_second: dict[int, list[int]] = {}

    def merge(self, d: Mapping[str, Any]) -> None:
        self.enabled = self.enabled or bool(d.get("enabled"))
        self.scheduled += int(d.get("scheduled", 0))
        self.started += int(d.get("started", 0))
        self.dropped += int(d.get("dropped_arrivals", 0))
        if d.get("lateness"):
            self.lateness.merge(LogHistogram.from_dict(d["lateness"]))
        for sec, row in (d.get("per_second") or {}).items():
            mine = self.per_second.setdefault(int(sec), [0, 0, 0])
            for i in range(3):
                mine[i] += int(row[i])

    def section(self, start_sec: int) -> dict[str, Any]:
        """`arrivals` in results.json (docs/results.md)."""
        s = self.lateness.summary()
        return {
            "model": "open" if self.enabled else "closed",
            "scheduled": self.scheduled, "started": self.started, "dropped_arrivals": self.dropped,
            # due, but still waiting for a slot (or just handed to one) when the run ended
            "pending_at_end": max(0, self.scheduled - self.started - self.dropped),
            "lateness_ms": {k: s[k] for k in ("count", "p50", "p90", "p99", "p999", "max")},
            "per_second": [{"t": sec - start_sec, "scheduled": r[0], "started": r[1], "dropped": r[2]}
                           for sec, r in sorted(self.per_second.items())],
        }


#: This worker's arrival counters (shipped by harness/locust_plugin.py).
TALLY = ArrivalTally()


def share_of(plan_arrivals: np.ndarray, worker_index: int, worker_count: int) -> np.ndarray:
    """Indices of the arrivals this worker plays: i % worker_count == worker_index."""
    count = max(1, int(worker_count))
    return np.arange(worker_index % count, plan_arrivals.shape[0], count)


class Dispatcher:
    """Walks a worker's share of a real-time plan and hands arrivals to free slots.

    `plan` is on the real clock (harness.population.timescale.plan_to_real); `t0` is the
    wall-clock time (time.time()) of plan time 0, shared by all workers."""

    def __init__(self, plan: Plan, rows: np.ndarray, t0: float, max_wait_s: float,
                 tally: ArrivalTally = TALLY) -> None:
        self.plan = plan
        self.rows = rows  # plan row of each of this worker's arrivals, in schedule order
        self.t0 = t0
        self.tally = tally
        self.slots = 0
        self.sched = OpenModelScheduler(plan.arrival_s[rows], slots=0, max_wait_s=max_wait_s)
        self.queue: Queue = Queue()
        self.wake = Event()
        self.greenlet: gevent.Greenlet | None = None
        self.stopped = False

    # -- slots ------------------------------------------------------------------------
    def add_slot(self) -> None:
        self.slots += 1
        self.sched.slots = self.slots
        self.wake.set()

    def remove_slot(self) -> None:
        self.slots = max(0, self.slots - 1)
        self.sched.slots = self.slots

    def take(self, timeout: float) -> tuple[int, int, float] | None:
        """For a free slot: (local index, plan row, scheduled wall time), or None after timeout."""
        try:
            i = self.queue.get(timeout=timeout)
        except Empty:
            return None
        now = time.time()
        scheduled = self.t0 + float(self.sched.arrival_s[i])
        self.sched.started(i, now - self.t0)
        self.tally.on_started(now, (now - scheduled) * 1000.0)
        return i, int(self.rows[i]), scheduled

    def release(self, i: int) -> None:
        """The visit of local arrival i ended: its slot is free again."""
        try:
            self.sched.release(i)
        except ValueError:
            return
        self.wake.set()

    # -- the dispatcher greenlet ------------------------------------------------------------
    def start(self) -> None:
        self.tally.enabled = True
        self.greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        self.stopped = True
        if self.greenlet is not None:
            self.greenlet.kill(block=False)

    def _run(self) -> None:
        sched = self.sched
        while not self.stopped:
            now_rel = time.time() - self.t0
            offered = sched.offered
            dropped = sched.dropped_arrivals
            starts = sched.poll(now_rel)
            wall = time.time()
            if sched.offered > offered:
                self.tally.on_scheduled(wall, sched.offered - offered)
            if sched.dropped_arrivals > dropped:
                self.tally.on_dropped(wall, sched.dropped_arrivals - dropped)
            for i in starts:
                self.queue.put(i)
            due = sched.next_due_s()
            if due is None:
                if sched.done:
                    return
                due = now_rel + 1.0
            self.wake.clear()
            self.wake.wait(max(0.0, due - (time.time() - self.t0)))
