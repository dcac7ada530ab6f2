"""A simulation's pools dealt out to processes, and the summary a run reports either way.

Why: a day of 3 million daily users is about 130 million events, more than one core
does in a minute. Pools never meet (a user is only ever paired inside its (mode, lang)),
so for a matcher that says so (`pools_independent = True`, as the reference core does)
the pools are dealt out to `jobs` processes, largest first to the least loaded. Each
simulates its own sub-plan and reduces its tickets to what results.json needs: a
FairnessPart, a pair-latency histogram, counts, and each visit's arrival and departure
(for the peak of visits online). Chat lengths are drawn per pool from a stream seeded by
(seed, pool), so the split changes no figure: a run over 2 processes reports what one
process would (tests/test_simulate_shard.py checks it).

Progress runs over two stages: a value x in [0, 1) while simulating, then 1 + the
analysis's fraction while the fairness analysis runs, 2 when all is done (the analysis of
a day's shard takes longer than its simulation; a bar that sat at 100% would look hung).
"""
from __future__ import annotations

import multiprocessing as mp
import multiprocessing.connection
import os
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from harness.fairness import FairnessParams, FairnessPart, merge, partial
from harness.histogram import LogHistogram

from . import heap
from . import timeline as timeline_mod
from .engine import ChatSampler, SimResult, pool_of, simulate
from .matcher import DEFAULT_MATCHER, load_matcher_class, make_matcher, pools_independent


class SimulationError(RuntimeError):
    """A shard failed or died; the message says which and why."""


@dataclass
class Counts:
    """The run's totals (peak_online: most visits online at once)."""

    visits: int
    pairings: int
    gave_up: int
    events: int
    tickets: int
    peak_online: int


#: Totals that add up over processes (the peak does not: it is recomputed from visit spans).
ADDITIVE = ("visits", "pairings", "gave_up", "events", "tickets")


@dataclass
class ShardSummary(Counts):
    """What one process hands back: everything results.json needs, no per-ticket rows."""

    hist: dict[str, Any]
    part: FairnessPart
    arrive: np.ndarray        # float64 per visit
    depart: np.ndarray        # float64 per visit, inf while still online at the horizon
    timeline: timeline_mod.ShardTimeline | None = None


@dataclass
class SimSummary(Counts):
    """A whole simulation, merged over its shards."""

    horizon_s: float
    hist: LogHistogram
    fairness: dict[str, Any]
    jobs: int
    shards: list[list[str]] = field(default_factory=list)   # pool names per process
    timeline: list[dict[str, Any]] = field(default_factory=list)        # rows for the report (timeline.py)
    ticket_sample: list[dict[str, Any]] = field(default_factory=list)   # a few thousand tickets, for plots


def visit_spans(sim: SimResult, arrival_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each visit's arrival and departure, from its last ticket.

    A visit leaves when its last search is given up, or when the chat of its last ticket
    ends (with no chats left it disconnects then); inf if it is still online at the horizon.
    """
    t = sim.tickets
    n = sim.visits
    arrive = np.asarray(arrival_s[:n], dtype=np.float64)
    depart = np.full(n, np.inf)
    if t.n == 0 or n == 0:
        return arrive, depart
    last = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last, t.user, np.arange(t.n, dtype=np.int64))
    has = last >= 0
    k = last[has]
    gave = t.t_gave_up[k]
    ended = np.where(np.isnan(t.t_paired[k]), np.nan, t.t_chat_end[k])
    out = np.where(~np.isnan(gave), gave, ended)
    depart[has] = np.where(np.isnan(out), np.inf, out)
    return arrive, depart


def peak_online(arrive: np.ndarray, depart: np.ndarray) -> int:
    """Most visits online at once; an arrival counts before a departure at the same instant."""
    gone = depart[np.isfinite(depart)]
    times = np.concatenate([arrive, gone])
    steps = np.concatenate([np.ones(arrive.size, np.int64), -np.ones(gone.size, np.int64)])
    order = np.lexsort((-steps, times))
    return int(np.cumsum(steps[order]).max()) if times.size else 0


def summarise(sim: SimResult, arrival_s: np.ndarray, params: FairnessParams,
              visit_ids: np.ndarray | None = None, progress: Callable[[float], None] | None = None,
              share: float = 1.0) -> ShardSummary:
    """Reduce a simulation to its summary; `visit_ids` maps a sub-plan's visits to the plan's,
    `share` is the sub-plan's part of all visits (its part of the ticket sample)."""
    t = sim.tickets
    tl = timeline_mod.shard_timeline(t, sim.horizon_s, share)
    arrive, depart = visit_spans(sim, arrival_s)  # on the sub-plan's own visit numbers
    if visit_ids is not None and t.n:
        t.user = visit_ids[t.user]
        t.peer = np.where(t.peer >= 0, visit_ids[np.maximum(t.peer, 0)], -1)
    hist = LogHistogram()
    paired = ~np.isnan(t.t_paired)
    if paired.any():
        hist.record_many(np.maximum((t.t_paired[paired] - t.t_join[paired]) * 1000.0, 0.0))
    return ShardSummary(visits=sim.visits, pairings=sim.pairings, gave_up=sim.gave_up, events=sim.events,
                        tickets=t.n, peak_online=sim.peak_online, hist=hist.to_dict(),
                        part=partial(t, params, progress=progress),
                        arrive=arrive, depart=depart, timeline=tl)


def assign_pools(plan: Any, jobs: int) -> list[np.ndarray]:
    """Visit indices per process: whole pools, largest first to the least loaded process."""
    pools = pool_of(plan.mode, plan.lang, len(plan.langs))
    sizes = np.bincount(pools) if pools.size else np.zeros(0, np.int64)
    present = [int(p) for p in np.argsort(-sizes, kind="stable") if sizes[p] > 0]
    jobs = max(1, min(jobs, len(present)))
    load = [0] * jobs
    owned: list[list[int]] = [[] for _ in range(jobs)]
    for p in present:
        j = load.index(min(load))
        owned[j].append(p)
        load[j] += int(sizes[p])
    return [np.flatnonzero(np.isin(pools, mine)) for mine in owned if mine]


def _pool_names(plan: Any, idx: np.ndarray, mode_names: tuple[str, ...]) -> list[str]:
    pools = np.unique(pool_of(plan.mode[idx], plan.lang[idx], len(plan.langs)))
    n_langs = len(plan.langs)
    return [f"{mode_names[int(p) // n_langs]}/{plan.langs[int(p) % n_langs]}" for p in pools]


@dataclass
class _Job:
    plan: Any
    matcher: str | None
    interest_fallback: float
    rematch_block: float
    sampler: ChatSampler
    seed: int
    horizon_s: float
    mode_names: tuple[str, ...]
    class_names: tuple[str, ...]
    params: FairnessParams
    engine: str = "auto"

    def one(self, idx: np.ndarray | None, progress: Callable[[float], None] | None,
            restore_heap: bool = True) -> ShardSummary:
        with heap.retained(restore=restore_heap):
            return self._one(idx, progress)

    def _one(self, idx: np.ndarray | None, progress: Callable[[float], None] | None) -> ShardSummary:
        sub = self.plan if idx is None else self.plan.select(idx)
        matcher = make_matcher(self.matcher, interest_fallback=self.interest_fallback, rematch_block=self.rematch_block)
        kwargs: dict[str, Any] = {"engine": self.engine} if self.engine != "auto" else {}
        sim = simulate(sub, matcher, self.sampler, seed=self.seed, horizon_s=self.horizon_s,
                       mode_names=self.mode_names, class_names=self.class_names,
                       progress=None if progress is None else (lambda frac: progress(min(frac, 0.999))), **kwargs)
        return summarise(sim, sub.arrival_s, self.params, visit_ids=idx,
                         progress=None if progress is None else (lambda frac: progress(1.0 + frac)),
                         share=1.0 if idx is None else idx.size / max(self.plan.n, 1))


def _child(job: _Job, idx: np.ndarray, slot: int, shared: Any, conn: Any) -> None:
    """A shard process: simulate, summarise, send the summary (or the error) to the parent."""
    try:
        def progress(frac: float) -> None:
            shared[slot] = frac
        conn.send(("ok", job.one(idx, progress, restore_heap=False)))  # the process exits next
    except KeyboardInterrupt:
        conn.send(("error", "interrupted"))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    finally:
        conn.close()


def default_jobs() -> int:
    return max(1, os.cpu_count() or 1)


def run(plan: Any, sampler: ChatSampler, *, matcher: str | None = None, interest_fallback: float = 5.0,
        rematch_block: float = 10.0, seed: int = 1, horizon_s: float | None = None,
        mode_names: tuple[str, ...] = ("text", "video"), class_names: tuple[str, ...] = ("unknown",),
        params: FairnessParams | None = None, jobs: int | None = None, engine: str = "auto",
        progress: Callable[[float], None] | None = None) -> SimSummary:
    """Simulate `plan` through the matcher, in `jobs` processes when its pools are independent.

    `progress(x)` hears x in [0, 1) while simulating, 1 + the fraction analysed while the
    fairness analysis runs, and 2.0 at the end.
    """
    horizon = float(plan.duration_s if horizon_s is None else horizon_s)
    job = _Job(plan, matcher, interest_fallback, rematch_block, sampler, seed, horizon, tuple(mode_names),
               tuple(class_names), params or FairnessParams(), engine)
    want = default_jobs() if jobs is None else jobs
    if want < 1:
        raise ValueError("jobs must be at least 1")
    independent = pools_independent(load_matcher_class(matcher or DEFAULT_MATCHER))
    groups = assign_pools(plan, want) if independent and want > 1 else []
    if len(groups) <= 1:
        summaries = [job.one(None, progress)]
        names = [_pool_names(plan, np.arange(plan.n), job.mode_names)] if plan.n else [[]]
    else:
        summaries = _in_processes(job, groups, progress)
        names = [_pool_names(plan, idx, job.mode_names) for idx in groups]
    return _merge(summaries, horizon, job.params, names)


def _stage_of(slots: list[float]) -> float:
    """The processes' progress as one value: simulating until every process simulated."""
    sim = sum(min(v, 1.0) for v in slots) / len(slots)
    if sim < 1.0:
        return min(sim, 0.999)
    return 1.0 + min(sum(v - 1.0 for v in slots) / len(slots), 0.999)


def _in_processes(job: _Job, groups: list[np.ndarray], progress: Callable[[float], None] | None) -> list[ShardSummary]:
    ctx = mp.get_context("fork")  # children share the plan's pages; nothing to pickle on the way in
    shared = ctx.Array("d", len(groups), lock=False)
    procs, conns = [], []
    for slot, idx in enumerate(groups):
        recv, send = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_child, args=(job, idx, slot, shared, send), daemon=True,
                        name=f"chatload-sim-{slot}")
        p.start()
        send.close()
        procs.append(p)
        conns.append(recv)
    results: dict[int, ShardSummary] = {}
    try:
        pending = dict(enumerate(conns))
        while pending:
            ready = mp.connection.wait(list(pending.values()), timeout=0.2)
            if progress is not None:
                progress(_stage_of(list(shared)))
            for conn in ready:
                slot = next(s for s, c in pending.items() if c is conn)
                try:
                    status, payload = conn.recv()
                except EOFError:
                    procs[slot].join(5)
                    code = procs[slot].exitcode
                    hint = " (killed: out of memory?)" if code == -9 else ""
                    raise SimulationError(f"simulation process {slot} died with exit code {code}{hint}") from None
                del pending[slot]
                if status != "ok":
                    raise SimulationError(f"simulation process {slot} failed: {payload}")
                results[slot] = payload
        if progress is not None:
            progress(2.0)
        return [results[s] for s in range(len(groups))]
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(5)
        for c in conns:
            c.close()


def _merge(summaries: list[ShardSummary], horizon: float, params: FairnessParams,
           names: list[list[str]]) -> SimSummary:
    if len(summaries) == 1:
        peak = summaries[0].peak_online
    else:
        peak = peak_online(np.concatenate([s.arrive for s in summaries]), np.concatenate([s.depart for s in summaries]))
    totals = {name: sum(getattr(s, name) for s in summaries) for name in ADDITIVE}
    rows, sample = timeline_mod.merge([s.timeline for s in summaries if s.timeline is not None],
                                      np.concatenate([s.arrive for s in summaries]),
                                      np.concatenate([s.depart for s in summaries]), horizon)
    return SimSummary(
        **totals,
        peak_online=peak,
        horizon_s=horizon,
        hist=LogHistogram.merged(s.hist for s in summaries),
        fairness=merge([s.part for s in summaries], params),
        jobs=len(summaries),
        shards=names,
        timeline=rows,
        ticket_sample=sample,
    )
