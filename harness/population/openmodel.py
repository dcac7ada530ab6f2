"""Open-model arrivals: start visitors on the plan's schedule whatever the backend does.

A pure scheduler (no Locust, no clock of its own): the runner passes `now` in. Arrivals
are due at their scheduled time; each takes one of a bounded number of user slots. When
no slot is free, the arrival waits at most `max_wait_s` for one and is then counted in
`dropped_arrivals`: a slow backend holds slots longer, so it causes drops, never a lower
offered rate. The runner reports when each user really started (`started`), and the
lateness (actual start minus schedule) makes coordinated omission visible.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LatenessSummary:
    """How far behind schedule users started, in seconds."""

    count: int
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None
    mean: float | None
    late_over_1s: int  # starts more than a second behind schedule

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def lateness(scheduled_s: np.ndarray, actual_s: np.ndarray) -> LatenessSummary:
    """Summary of actual start minus scheduled start (negative values, early starts, count as 0)."""
    scheduled = np.asarray(scheduled_s, dtype=np.float64)
    actual = np.asarray(actual_s, dtype=np.float64)
    if scheduled.shape != actual.shape:
        raise ValueError(f"scheduled and actual differ in length: {scheduled.shape} vs {actual.shape}")
    late = np.maximum(actual - scheduled, 0.0)
    if late.size == 0:
        return LatenessSummary(0, None, None, None, None, None, 0)
    p50, p90, p99 = np.percentile(late, [50, 90, 99])
    return LatenessSummary(int(late.size), float(p50), float(p90), float(p99), float(late.max()),
                           float(late.mean()), int(np.count_nonzero(late > 1.0)))


class OpenModelScheduler:
    """Which arrivals start when, given a real-time schedule and `slots` user slots."""

    def __init__(self, arrival_s: np.ndarray, slots: int, max_wait_s: float = 0.0) -> None:
        arrival_s = np.asarray(arrival_s, dtype=np.float64)
        if arrival_s.ndim != 1 or np.any(np.diff(arrival_s) < 0):
            raise ValueError("arrival_s must be a sorted 1-d array of real seconds since the run start")
        if slots < 0:
            raise ValueError(f"slots must be >= 0, got {slots}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s}")
        self.arrival_s = arrival_s
        self.slots = int(slots)
        self.max_wait_s = float(max_wait_s)
        self._next = 0                      # next arrival not yet due
        self._pending: deque[int] = deque()  # due, waiting for a slot (FIFO)
        self._active: set[int] = set()
        self._actual = np.full(arrival_s.shape[0], np.nan)
        self.dropped_arrivals = 0
        self.dropped: list[int] = []
        self.started_count = 0

    @property
    def in_use(self) -> int:
        return len(self._active)

    @property
    def free(self) -> int:
        return self.slots - len(self._active)

    @property
    def offered(self) -> int:
        """Arrivals that came due so far (the offered load, whatever happened to them)."""
        return self._next

    @property
    def done(self) -> bool:
        return self._next >= self.arrival_s.shape[0] and not self._pending

    def next_due_s(self) -> float | None:
        """When the runner should call `poll` next: the next scheduled arrival, or a pending one's deadline."""
        times = []
        if self._next < self.arrival_s.shape[0]:
            times.append(float(self.arrival_s[self._next]))
        if self._pending:
            times.append(float(self.arrival_s[self._pending[0]]) + self.max_wait_s)
        return min(times) if times else None

    def poll(self, now_s: float) -> list[int]:
        """Arrivals to start now, each holding a slot until `release`. Counts drops as a side effect."""
        due_end = int(np.searchsorted(self.arrival_s, now_s, side="right"))
        self._pending.extend(range(self._next, due_end))
        self._next = max(self._next, due_end)
        starts: list[int] = []
        while self._pending:
            i = self._pending[0]
            if self.free > 0:
                self._pending.popleft()
                self._active.add(i)
                starts.append(i)
            elif now_s >= self.arrival_s[i] + self.max_wait_s:  # the same sum as next_due_s, so no float gap
                self._pending.popleft()
                self.dropped_arrivals += 1
                if len(self.dropped) < 1000:
                    self.dropped.append(i)
            else:
                break  # FIFO: later arrivals wait behind this one
        return starts

    def release(self, index: int) -> None:
        """The user of this arrival has left: its slot is free again."""
        try:
            self._active.remove(index)
        except KeyError:
            raise ValueError(f"arrival {index} holds no slot") from None

    def started(self, index: int, actual_s: float) -> None:
        """The user of this arrival really started at `actual_s` (real seconds since the run start)."""
        if index not in self._active:
            raise ValueError(f"arrival {index} was not started by this scheduler")
        if np.isnan(self._actual[index]):
            self.started_count += 1
        self._actual[index] = actual_s

    def lateness(self) -> LatenessSummary:
        known = ~np.isnan(self._actual)
        return lateness(self.arrival_s[known], self._actual[known])

    def stats(self) -> dict:
        """Counters for results.json: offered, started, dropped_arrivals, in_use and lateness."""
        return {"offered": self.offered, "started": self.started_count, "dropped_arrivals": self.dropped_arrivals,
                "in_use": self.in_use, "pending": len(self._pending), "lateness_s": self.lateness().to_dict()}
