"""Slow, obviously correct versions of every fairness figure, for the tests.

Plain Python loops over plain lists, straight from the definitions in docs/fairness.md:
no sorting tricks, no ranks, no vectorisation. Only the table's raw input columns are
read; every derived value (end, wait, history, chat end) is recomputed here.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from .params import FairnessParams
from .tickets import TicketTable


class Ref:
    def __init__(self, t: TicketTable, p: FairnessParams) -> None:
        self.p = p
        self.n = t.n
        self.user = t.user.tolist()
        self.peer = t.peer.tolist()
        self.peer_ticket = t.peer_ticket.tolist()
        self.pool = list(zip(t.mode.tolist(), t.lang.tolist()))
        self.interests = [set(t.interests_of(i).tolist()) for i in range(t.n)]
        self.t_join = t.t_join.tolist()
        self.t_paired = t.t_paired.tolist()
        self.t_gave_up = t.t_gave_up.tolist()
        self.t_chat_end = t.t_chat_end.tolist()
        self.via = t.via_interest.tolist()
        self.cls = t.cls.tolist()
        self.mode = t.mode.tolist()
        self.lang = t.lang.tolist()
        self.names = {"mode": t.mode_names, "lang": t.lang_names, "cls": t.cls_names}
        self.t_end = t.t_end

    # --- per ticket basics
    def is_paired(self, i: int) -> bool:
        return not math.isnan(self.t_paired[i])

    def is_gave_up(self, i: int) -> bool:
        return not self.is_paired(i) and not math.isnan(self.t_gave_up[i])

    def end(self, i: int) -> float:
        if self.is_paired(i):
            return self.t_paired[i]
        if not math.isnan(self.t_gave_up[i]):
            return self.t_gave_up[i]
        return self.t_end

    def wait(self, i: int) -> float:
        return max(self.end(i) - self.t_join[i], 0.0)

    def before(self, i: int, j: int) -> bool:
        """Ticket i comes before ticket j in its user's history."""
        return (self.t_join[i], i) < (self.t_join[j], j)

    def next_join(self, i: int) -> float:
        later = [self.t_join[j] for j in range(self.n) if self.user[j] == self.user[i] and self.before(i, j)]
        return min(later) if later else math.inf

    def chat_end_est(self, i: int) -> float:
        e = math.inf if math.isnan(self.t_chat_end[i]) else self.t_chat_end[i]
        e = min(e, self.next_join(i))
        if self.peer_ticket[i] >= 0:
            e = min(e, self.next_join(self.peer_ticket[i]))
        return e

    # --- rule 5 and rule 2
    def blocked(self, s: int, c: int, tp: float) -> bool:
        slack, tol = self.p.rematch_block_s, self.p.fifo_tolerance_s
        for x, other in ((c, self.user[s]), (s, self.user[c])):
            for h in range(self.n):
                if (self.user[h] == self.user[x] and self.before(h, x) and self.is_paired(h)
                        and self.peer[h] == other and tp < self.chat_end_est(h) + slack + tol):
                    return True
        return False

    def compatible(self, s: int, c: int, tp: float) -> bool:
        fb, tol = self.p.interest_fallback_s, self.p.fifo_tolerance_s
        if self.interests[s] & self.interests[c]:
            return True
        s_open = not self.interests[s] or tp >= self.t_join[s] + fb
        c_open = not self.interests[c] or self.t_join[c] <= tp - fb - tol
        return s_open and c_open

    def passed_over(self, s: int, o: int, c: int, tp: float) -> bool:
        tol = self.p.fifo_tolerance_s
        return (self.pool[c] == self.pool[s]
                and self.t_join[c] < self.t_join[o] - tol
                and self.t_join[c] <= tp + tol
                and self.end(c) > tp + tol
                and self.compatible(s, c, tp)
                and not self.blocked(s, c, tp))

    def pairings(self) -> list[tuple[int, int]]:
        out = []
        for a in range(self.n):
            b = self.peer_ticket[a]
            if b > a and self.peer_ticket[b] == a and self.is_paired(a) and self.is_paired(b):
                out.append((a, b))
        return out


def percentile(values: list[float], p: float) -> float | None:
    """Nearest rank: the smallest value with at least p% of the values at or below it."""
    if not values:
        return None
    v = sorted(values)
    rank = math.ceil(Fraction(str(p)) * len(v) / 100)
    return v[max(rank, 1) - 1]


def summary_ms(waits: list[float]) -> dict[str, Any]:
    out: dict[str, Any] = {"count": len(waits)}
    for name, p in (("p50", 50.0), ("p90", 90.0), ("p99", 99.0)):
        q = percentile(waits, p)
        out[name] = None if q is None else q * 1000.0
    out["max"] = max(waits) * 1000.0 if waits else None
    return out


def jain(values: list[float]) -> float | None:
    if not values:
        return None
    sq = sum(x * x for x in values)
    if sq == 0:
        return 1.0
    return sum(values) ** 2 / (len(values) * sq)


def analyse(t: TicketTable, params: FairnessParams | None = None) -> dict[str, Any]:
    p = params or FairnessParams()
    r = Ref(t, p)
    waits = [r.wait(i) for i in range(r.n)]
    pairs = r.pairings()
    inversions = 0
    for a, b in pairs:
        tp = max(r.t_paired[a], r.t_paired[b])
        if any(r.passed_over(s, o, c, tp) for s, o in ((a, b), (b, a)) for c in range(r.n)):
            inversions += 1
    # cohorts
    dims = {
        "interests": [("interests" if r.interests[i] else "none") for i in range(r.n)],
        "mode": [r.names["mode"][r.mode[i]] for i in range(r.n)],
        "lang": [r.names["lang"][r.lang[i]] for i in range(r.n)],
        "cls": [r.names["cls"][r.cls[i]] for i in range(r.n)],
    }
    by_cohort = {dim: {name: summary_ms([waits[i] for i in range(r.n) if labels[i] == name])
                       for name in sorted(set(labels))} for dim, labels in dims.items()}
    ratios = {}
    for dim, d in by_cohort.items():
        big = [v["p99"] for v in d.values() if v["count"] >= p.min_cohort_tickets]
        ratios[dim] = (max(max(big), p.p99_floor_ms) / max(min(big), p.p99_floor_ms)) if len(big) >= 2 else None
    known = [x for x in ratios.values() if x is not None]
    # starvation
    starved = past = bypassed = 0
    for c in range(r.n):
        is_past = waits[c] > p.starvation_threshold_s
        is_bypassed = r.is_gave_up(c) and any(
            r.passed_over(s, o, c, max(r.t_paired[a], r.t_paired[b]))
            for a, b in pairs for s, o in ((a, b), (b, a)))
        past += is_past
        bypassed += is_bypassed
        starved += is_past or is_bypassed
    # rates
    paired_int = [i for i in range(r.n) if r.interests[i] and r.is_paired(i)]
    with_int = [i for i in range(r.n) if r.interests[i]]
    seen: set[tuple[int, int]] = set()
    repeats = 0
    for a, b in sorted(pairs, key=lambda ab: max(r.t_paired[ab[0]], r.t_paired[ab[1]])):
        key = (min(r.user[a], r.user[b]), max(r.user[a], r.user[b]))
        repeats += key in seen
        seen.add(key)
    return {
        "tickets": r.n,
        "pairings": len(pairs),
        "jain_index": jain(waits),
        "fifo_inversions": inversions,
        "fifo_inversion_rate": inversions / len(pairs) if pairs else None,
        "wait_ms": summary_ms(waits),
        "wait_ms_by_cohort": by_cohort,
        "worst_to_best_p99_ratio": max(known) if known else None,
        "ratio_by_dimension": ratios,
        "starved": starved,
        "waited_past_threshold": past,
        "gave_up_passed_over": bypassed,
        "interest_match_rate": (sum(r.via[i] for i in paired_int) / len(paired_int)) if paired_int else None,
        "fallback_rate": (sum(waits[i] >= p.interest_fallback_s for i in with_int) / len(with_int)) if with_int else None,
        "repeat_partner_rate": repeats / len(pairs) if pairs else None,
    }
