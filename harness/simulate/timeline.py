"""What the report plots of a simulation: a coarse timeline and a small sample of tickets.

Why: results.json of `chatload simulate` has the live run's sections, and its report
(report.html) should show the same plots: throughput and concurrency over time, and each
search's wait against its join time. A simulated day has ~85M tickets, so each shard
reduces its own to bin counts (additive over shards) and an evenly strided sample; the
parent adds the visits online (from every visit's span) and writes the rows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.fairness.tickets import TicketTable
from harness.report.data import MAX_POINTS

#: About this many timeline rows, whatever the simulated span (a day: one every 144 s).
POINTS = 600
#: Tickets in the sample, over all shards: as many as the report plots.
SAMPLE = MAX_POINTS


def step_for(horizon_s: float) -> float:
    """Seconds per timeline row: at least 1."""
    return max(1.0, float(horizon_s) / POINTS)


def edges_for(horizon_s: float, step: float) -> np.ndarray:
    """Start of each row, in simulated seconds since the start."""
    return np.arange(max(1, math.ceil(float(horizon_s) / step))) * step


#: Elements per step of the counting loops (temporaries of a few MB on 40M tickets).
CHUNK = 1 << 20


def _per_row(x: np.ndarray, step: float, rows: int, edge: bool) -> np.ndarray:
    """Counts per row of the finite x: with edge=True, of x <= the row's start (cumulative:
    ceil(x / step) <= row); else of x inside the row (floor). NaN and inf are not counted.

    Bin counts, not sorts: a day's shard has 40M tickets, and sorting them would cost
    seconds. Values within a rounding error of a row's start may fall on either side.
    """
    out = np.zeros(rows, dtype=np.int64)
    for i in range(0, x.size, CHUNK):
        k = x[i:i + CHUNK] / step
        k = np.ceil(k, out=k) if edge else np.floor(k, out=k)
        k = k[(k >= 0) & (k < rows)]                  # also drops NaN
        out += np.bincount(k.astype(np.int64), minlength=rows)
    return np.cumsum(out) if edge else out


def _alive_at(starts: np.ndarray, ends: np.ndarray, step: float, rows: int) -> np.ndarray:
    """How many spans [start, end) hold each row's start (NaN end: still open)."""
    return _per_row(starts, step, rows, edge=True) - _per_row(ends, step, rows, edge=True)


@dataclass
class ShardTimeline:
    """One shard's additive share: per row, tickets paired in it and tickets waiting or in a
    chat at its start; plus its sampled tickets."""

    paired_tickets: np.ndarray
    waiting: np.ndarray
    in_chat: np.ndarray
    sample: list[dict[str, Any]]


def shard_timeline(t: TicketTable, horizon_s: float, share: float = 1.0) -> ShardTimeline:
    """Reduce one shard's tickets; `share` is its part of the whole sample (tickets / all)."""
    step = step_for(horizon_s)
    rows = edges_for(horizon_s, step).size
    paired_tickets = _per_row(t.t_paired, step, rows, edge=False)
    paired_by = _per_row(t.t_paired, step, rows, edge=True)      # paired by each row's start
    # waiting: from the join to the pairing or the give-up (neither: still waiting at the end)
    waiting = _per_row(t.t_join, step, rows, edge=True) - paired_by - _per_row(t.t_gave_up, step, rows, edge=True)
    # in a chat: from the pairing to the chat's end (NaN: still chatting at the end)
    in_chat = paired_by - _per_row(t.t_chat_end, step, rows, edge=True)
    return ShardTimeline(paired_tickets, waiting, in_chat, ticket_sample(t, max(1, round(SAMPLE * share))))


def ticket_sample(t: TicketTable, k: int) -> list[dict[str, Any]]:
    """Up to k tickets, evenly strided, as the report reads them (times in simulated seconds)."""
    if not t.n:
        return []
    idx = np.unique(np.linspace(0, t.n - 1, min(k, t.n)).astype(np.int64))
    out = []
    for i in idx.tolist():
        tp, tg = float(t.t_paired[i]), float(t.t_gave_up[i])
        out.append({"t_join": float(t.t_join[i]), "t_paired": None if math.isnan(tp) else tp,
                    "t_gave_up": None if math.isnan(tg) else tg, "mode": t.mode_names[int(t.mode[i])],
                    "lang": t.lang_names[int(t.lang[i])], "cls": t.cls_names[int(t.cls[i])]})
    return out


def merge(parts: list[ShardTimeline], arrive: np.ndarray, depart: np.ndarray,
          horizon_s: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(timeline rows, ticket sample in join order) of the whole run.

    A row: `t` (its start), `pairs` (pairings per second over the row), and at its start
    `online` (visits), `waiting` (searches), `in_chat` (users).
    """
    step = step_for(horizon_s)
    edges = edges_for(horizon_s, step)
    online = _alive_at(arrive, depart, step, edges.size)
    paired = sum((p.paired_tickets for p in parts), np.zeros(edges.size, np.int64))
    waiting = sum((p.waiting for p in parts), np.zeros(edges.size, np.int64))
    in_chat = sum((p.in_chat for p in parts), np.zeros(edges.size, np.int64))
    rows = [{"t": float(edges[i]), "pairs": float(paired[i]) / 2.0 / step, "online": int(online[i]),
             "waiting": int(waiting[i]), "in_chat": int(in_chat[i])} for i in range(edges.size)]
    sample = sorted((s for p in parts for s in p.sample), key=lambda s: s["t_join"])
    return rows, sample
