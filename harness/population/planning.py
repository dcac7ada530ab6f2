"""The `chatload plan` preview: what a scenario asks of the backend and of this machine.

Expected values straight from the model, no sampling of arrivals: arrival rates from the
intensity curve, concurrency by Little's law (online = arrival rate x mean visit length),
pairs and messages per second from the chat mixture, hour by hour; then the user slots and
load-generator processes the run needs here. Chats are matched at random from the waiting
pool, so a class meets partners in proportion to share x chats per visit (skippers, who
make many chats, are over-represented in the pool).
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field

import numpy as np

from .arrivals import HOUR_S
from .chats import class_message_rates
from .model import PopulationModel
from .params import CLASSES
from .classes import class_probabilities
from .timescale import TimeScale


@dataclass(frozen=True)
class Machine:
    """What one load-generator machine can do (figures from the harness, not the service)."""

    cores: int = field(default_factory=lambda: os.cpu_count() or 1)
    # brief for issue 4: keep each process under 20,000 sockets
    sockets_per_process: int = 20_000
    # harness target (benchmarks/loadgen.py): relayed chat messages per CPU-second of the load generator
    messages_per_cpu_s: float = 25_000.0
    # frames a chat costs besides its messages (join, paired, two tokens, next/partner_left), in message units
    frames_per_chat: float = 4.0
    # cost of one arrival (TCP connect, WebSocket upgrade, welcome), in message units
    frames_per_arrival: float = 5.0
    # user slots above the expected peak online (Poisson swings and the burst's overshoot)
    slot_headroom: float = 1.25
    # CPU a load-generator process can use before it falls behind (gevent, one core each)
    cpu_per_process: float = 0.8


@dataclass(frozen=True)
class ChatStats:
    """Per-chat and per-visit figures of the model, independent of time."""

    skip_within_5s: float        # share of chats over within 5 s (CALIBRATION: 75-85%)
    mean_chat_s: float
    messages_per_chat: float     # both sides, text
    abuse_messages_per_chat: float
    mean_chats_per_visit: float
    mean_visit_s: float          # chats x (chat + expected wait), Little's W
    waiting_share: float         # share of online users waiting for a partner
    chats_with_abuser: float     # share of chats with at least one abuser


def chat_stats(model: PopulationModel) -> ChatStats:
    """Exact expectations over random matching from the waiting pool."""
    p = model.params
    share = class_probabilities(p)
    chats_mean = np.array([p.chats_mean[c] for c in CLASSES])
    q = share * chats_mean
    q = q / q.sum()  # class of a random chat participant
    k = len(CLASSES)
    mean = np.array([[model.chat_model.mean(a, b) for b in range(k)] for a in range(k)])
    short = np.array([[float(model.chat_model.cdf(np.array([5.0]), a, b)[0]) for b in range(k)] for a in range(k)])
    mode_factor = (1.0 - p.video_share) + p.video_share * p.video_message_factor
    rates = class_message_rates(p) * mode_factor
    pair_w = np.outer(q, q)
    abuser = len(CLASSES) - 1
    abuse_rates = np.zeros(k)
    abuse_rates[abuser] = rates[abuser]
    mean_chat = float((pair_w * mean).sum())
    per_class_chat = mean @ q  # mean chat length of class a against a random partner
    visit_by_class = chats_mean * (per_class_chat + p.expected_wait_s)
    mean_visit = float((share * visit_by_class).sum())
    mean_chats = float((share * chats_mean).sum())
    return ChatStats(
        skip_within_5s=float((pair_w * short).sum()),
        mean_chat_s=mean_chat,
        messages_per_chat=float((pair_w * (rates[:, None] + rates[None, :]) * mean).sum()),
        abuse_messages_per_chat=float((pair_w * (abuse_rates[:, None] + abuse_rates[None, :]) * mean).sum()),
        mean_chats_per_visit=mean_chats,
        mean_visit_s=mean_visit,
        waiting_share=float(p.expected_wait_s * mean_chats / mean_visit) if mean_visit > 0 else 0.0,
        chats_with_abuser=float(1.0 - (1.0 - q[abuser]) ** 2),
    )


@dataclass(frozen=True)
class HourRow:
    hour: int                # index of the hour in the window
    hour_utc: float          # hour of day at its start
    arrivals: float          # expected visits in this model hour
    arrivals_per_s: float    # real seconds (x K)
    online: float            # Little's law, preserved by time compression
    waiting: float
    pairs_per_s: float       # real seconds (x K)
    messages_per_s: float    # real seconds (x K), abuse included
    abuse_messages_per_s: float


@dataclass(frozen=True)
class Preview:
    time_scale: float
    start_hour: float
    hours: float
    real_duration_s: float
    total_arrivals: float
    stats: ChatStats
    rows: list[HourRow]
    peak_arrivals_per_s: float
    peak_online: float
    peak_messages_per_s: float
    peak_pairs_per_s: float
    slots: int
    workers_for_sockets: int
    workers_for_cpu: int
    workers: int
    loadgen_cpu: float           # CPU cores the load generator needs at the peak
    machine: Machine
    max_time_scale_here: float   # the largest K whose peak fits in the load generator's share of this machine
    fits_here: bool              # the load generator's peak CPU fits in this machine minus one core for the backend

    def to_dict(self) -> dict:
        return asdict(self)


def preview(model: PopulationModel, start_hour: float = 0.0, hours: float = 24.0, time_scale: float = 1.0,
            machine: Machine | None = None) -> Preview:
    """Expected load of a window, hour by hour, on the real clock of a run at `time_scale`."""
    if not hours > 0:
        raise ValueError(f"hours must be positive, got {hours}")
    machine = machine or Machine()
    ts = TimeScale(time_scale)
    stats = chat_stats(model)
    curve = model.curve(start_hour)
    duration = hours * HOUR_S
    grid_t, cum = curve.grid(duration)
    pairs_per_visit = stats.mean_chats_per_visit / 2.0
    rows: list[HourRow] = []
    for h in range(int(math.ceil(hours))):
        t0, t1 = h * HOUR_S, min((h + 1) * HOUR_S, duration)
        n = float(np.interp(t1, grid_t, cum) - np.interp(t0, grid_t, cum))
        lam = n / (t1 - t0)  # per model second
        online = lam * stats.mean_visit_s
        rows.append(HourRow(
            hour=h, hour_utc=(start_hour + h) % 24, arrivals=n, arrivals_per_s=ts.rate_to_real(lam), online=online,
            waiting=online * stats.waiting_share, pairs_per_s=ts.rate_to_real(lam * pairs_per_visit),
            messages_per_s=ts.rate_to_real(lam * pairs_per_visit * stats.messages_per_chat),
            abuse_messages_per_s=ts.rate_to_real(lam * pairs_per_visit * stats.abuse_messages_per_chat),
        ))
    peak_lam = float(curve.rate(grid_t).max())  # per model second, includes a burst's plateau
    peak_online = peak_lam * stats.mean_visit_s
    peak_pairs = ts.rate_to_real(peak_lam * pairs_per_visit)
    peak_msgs = peak_pairs * stats.messages_per_chat
    peak_arrivals = ts.rate_to_real(peak_lam)
    slots = int(math.ceil(peak_online * machine.slot_headroom)) if peak_online > 0 else 0
    cpu = (peak_msgs + peak_pairs * machine.frames_per_chat + peak_arrivals * machine.frames_per_arrival) \
        / machine.messages_per_cpu_s
    by_sockets = max(1, math.ceil(slots / machine.sockets_per_process))
    by_cpu = max(1, math.ceil(cpu / machine.cpu_per_process))
    # the backend under test shares this machine by default: leave it one core
    budget = max(1, machine.cores - 1) * machine.cpu_per_process
    max_k = time_scale * budget / cpu if cpu > 0 else math.inf
    return Preview(
        time_scale=ts.k, start_hour=start_hour, hours=hours, real_duration_s=ts.to_real_s(duration),
        total_arrivals=float(cum[-1]), stats=stats, rows=rows, peak_arrivals_per_s=peak_arrivals,
        peak_online=peak_online, peak_messages_per_s=peak_msgs, peak_pairs_per_s=peak_pairs, slots=slots,
        workers_for_sockets=by_sockets, workers_for_cpu=by_cpu, workers=max(by_sockets, by_cpu), loadgen_cpu=cpu,
        machine=machine, max_time_scale_here=max_k, fits_here=cpu <= budget,
    )


def _fmt(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def render(pv: Preview, title: str = "") -> str:
    """The human-readable preview: model figures, the hour-by-hour table, what the run needs."""
    s = pv.stats
    m = pv.machine
    out = []
    if title:
        out.append(title)
    out.append(f"window: {pv.hours:g} model hours from {pv.start_hour:g}:00 UTC, time scale K={pv.time_scale:g} "
               f"-> {pv.real_duration_s:,.0f} s real; {pv.total_arrivals:,.0f} visits expected")
    out.append(f"model: {s.skip_within_5s:.0%} of chats end within 5 s (calibration 75-85%); mean chat "
               f"{s.mean_chat_s:.1f} s; {s.mean_chats_per_visit:.1f} chats a visit; mean visit "
               f"{s.mean_visit_s / 60:.1f} min (calibration 10-30); {s.messages_per_chat:.1f} messages a chat; "
               f"{s.chats_with_abuser:.1%} of chats meet an abuser")
    out.append("rates are per real second (model rate x K); online and waiting are preserved by time compression")
    header = f"{'hour':>4} {'UTC':>5} {'arrivals/s':>11} {'online':>9} {'waiting':>8} {'pairs/s':>9} {'messages/s':>11}"
    out.append(header)
    out.append("-" * len(header))
    for r in pv.rows:
        out.append(f"{r.hour:>4} {r.hour_utc:>5.1f} {_fmt(r.arrivals_per_s):>11} {_fmt(r.online):>9} "
                   f"{_fmt(r.waiting):>8} {_fmt(r.pairs_per_s):>9} {_fmt(r.messages_per_s):>11}")
    out.append("-" * len(header))
    out.append(f"peak: {_fmt(pv.peak_arrivals_per_s)} arrivals/s, {_fmt(pv.peak_online)} online, "
               f"{_fmt(pv.peak_pairs_per_s)} pairs/s, {_fmt(pv.peak_messages_per_s)} messages/s")
    real_w = pv.stats.mean_visit_s / pv.time_scale
    out.append(f"the run starts empty: online reaches these figures after about one visit length "
               f"({real_w:,.0f} s real)")
    out.append(f"needs: {pv.slots:,} user slots ({m.slot_headroom:g} x peak online); {pv.workers} load-generator "
               f"worker process(es) ({pv.workers_for_sockets} for sockets at < {m.sockets_per_process:,} each, "
               f"{pv.workers_for_cpu} for CPU: {pv.loadgen_cpu:.2f} cores at {m.messages_per_cpu_s:,.0f} "
               f"messages per CPU-second)")
    verdict = "fits" if pv.fits_here else "does NOT fit"
    out.append(f"this machine: {m.cores} cores, one left to the backend -> {verdict}; largest time scale that "
               f"fits here: K <= {pv.max_time_scale_here:,.3g}")
    return "\n".join(out)
