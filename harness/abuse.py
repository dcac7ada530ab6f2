"""Abuse in a live run: what abusers do on the wire, how the backend reacted, what benign users felt.

Why here and not in the ledger: an abuser's own refusals (rate_limited, bad_json, banned,
a 1008 close) are the backend doing its job, so they must count neither as errors of the
backend nor as oracle violations. Each abuser visit keeps an `AbuserLog` (when it first
abused, when it was first throttled, banned or disconnected); the worker folds finished
logs into an `AbuseTally` (counts and reaction-time histograms, shipped as deltas); the
master sums tallies (`MergedAbuse`) and joins them with the merged chat records for what
benign users felt (`abuse_section`). Visitor ids end in `.<label>` (harness/visitor.py),
so a chat record's peer says whether the partner was an abuser, black-box.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from harness.histogram import LogHistogram
from harness.population.params import ABUSE_KINDS, BENIGN_CLASSES

KINDS = ABUSE_KINDS[1:]
REACTIONS = ("throttled", "banned", "disconnected")
#: Error codes an abuser provokes on purpose; never counted as the backend's errors.
EXPECTED_CODES = frozenset({"rate_limited", "banned", "bad_json", "bad_type", "bad_field", "not_allowed"})

#: Frames a `malformed` abuser sends instead of a chat message (raw text): broken JSON, no
#: type, an unknown type, a message without text, a text that is not a string.
MALFORMED_FRAMES = (
    '{"type": "message", "text": ',
    '{"text": "hi"}',
    '{"type": "shout", "text": "hi"}',
    '{"type": "message"}',
    '{"type": "message", "text": 42}',
    "not json at all",
)
SPAM_PADDING = "FREE followers at http://spam.example/win click now " * 4


def label_of(user_id: str | None) -> str | None:
    """The class label a visitor id carries after its last dot (None for other users)."""
    if not user_id or "." not in user_id:
        return None
    return user_id.rsplit(".", 1)[1]


def is_abuser_label(label: str | None) -> bool:
    return label in KINDS


@dataclass(eq=False)
class AbuserLog:
    """One abuser visit: wall-clock ns of its first abuse and of the backend's reactions."""

    kind: str
    first_abuse: int | None = None
    throttled: int | None = None
    banned: int | None = None
    disconnected: int | None = None

    def abused(self, t: int) -> None:
        if self.first_abuse is None:
            self.first_abuse = t

    def react(self, what: str, t: int) -> None:
        if getattr(self, what) is None:
            setattr(self, what, t)


class AbuseTally:
    """Per-worker abuse counters: finished abuser visits and the errors they provoked."""

    def __init__(self) -> None:
        self.frozen = False
        self.live: set[AbuserLog] = set()  # visits in progress, folded in by the final report
        self._reset()

    def _reset(self) -> None:
        self.by_kind: dict[str, dict[str, int]] = {}
        self.reaction_ms: dict[str, LogHistogram] = {r: LogHistogram() for r in REACTIONS}
        self.errors: dict[str, int] = {}
        self.counters: dict[str, int] = {}

    def count(self, name: str, n: int = 1) -> None:
        if not self.frozen:
            self.counters[name] = self.counters.get(name, 0) + n

    def error(self, code: str) -> None:
        if not self.frozen:
            self.errors[code] = self.errors.get(code, 0) + 1

    def start(self, log: AbuserLog) -> None:
        if not self.frozen:
            self.live.add(log)

    def fold_live(self) -> None:
        """The run ends: count the abuser visits still in progress as they stand."""
        for log in list(self.live):
            self.finish(log)

    def finish(self, log: AbuserLog) -> None:
        """Fold one finished (or run-ended) abuser visit in, once."""
        if self.frozen or log not in self.live:
            return
        self.live.discard(log)
        row = self.by_kind.setdefault(log.kind, {"visits": 0, "abused": 0, **{r: 0 for r in REACTIONS}})
        row["visits"] += 1
        if log.first_abuse is not None:
            row["abused"] += 1
        for r in REACTIONS:
            t = getattr(log, r)
            if t is None:
                continue
            row[r] += 1
            if log.first_abuse is not None:
                self.reaction_ms[r].record(max(0.0, (t - log.first_abuse) / 1e6))

    def drain(self) -> dict[str, Any]:
        out = {"by_kind": self.by_kind, "reaction_ms": {r: h.to_dict() for r, h in self.reaction_ms.items() if h.count},
               "errors": self.errors, "counters": self.counters}
        self._reset()
        return out


#: This worker's abuse tally (shipped by harness/locust_plugin.py).
TALLY = AbuseTally()


class MergedAbuse:
    """The master's sum of every worker's AbuseTally deltas."""

    def __init__(self) -> None:
        self.by_kind: dict[str, dict[str, int]] = {}
        self.reaction_ms: dict[str, LogHistogram] = {r: LogHistogram() for r in REACTIONS}
        self.errors: dict[str, int] = {}
        self.counters: dict[str, int] = {}

    def merge(self, d: Mapping[str, Any]) -> None:
        for kind, row in (d.get("by_kind") or {}).items():
            mine = self.by_kind.setdefault(kind, {})
            for k, v in row.items():
                mine[k] = mine.get(k, 0) + int(v)
        for r, h in (d.get("reaction_ms") or {}).items():
            self.reaction_ms.setdefault(r, LogHistogram()).merge(LogHistogram.from_dict(h))
        for name in ("errors", "counters"):
            mine = getattr(self, name)
            for k, v in (d.get(name) or {}).items():
                mine[k] = mine.get(k, 0) + int(v)


def _latency(h: LogHistogram) -> dict[str, Any]:
    s = h.summary()
    return {k: s[k] for k in ("count", "p50", "p90", "p99", "max")}


def abuse_section(merged: MergedAbuse, records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """`abuse` in results.json: abusers by kind, the backend's reactions and how fast, and
    what benign users felt (their pair latency, the share of their chats with an abuser)."""
    totals = {"visits": 0, "abused": 0, **{r: 0 for r in REACTIONS}}
    for row in merged.by_kind.values():
        for k in totals:
            totals[k] += row.get(k, 0)
    benign_pair = LogHistogram()
    benign_chats = exposed = 0
    benign_set = set(BENIGN_CLASSES)
    for rec in records:
        if rec.get("cls") not in benign_set:
            continue
        if rec.get("t_req") is not None and rec.get("t_paired") is not None and rec.get("end") != "abandoned":
            benign_pair.record(max(0.0, (rec["t_paired"] - rec["t_req"]) / 1e6))
        peer = rec.get("peer")
        if peer is None:
            continue
        benign_chats += 1
        if is_abuser_label(label_of(peer[0])):
            exposed += 1
    return {
        "abusers": {k: merged.by_kind.get(k, {}).get("visits", 0) for k in KINDS},
        "by_kind": {k: dict(v) for k, v in sorted(merged.by_kind.items())},
        "abuser_visits": totals["visits"],
        "throttled": totals["throttled"],
        "banned": totals["banned"],
        "disconnected": totals["disconnected"],
        "time_to_throttle_ms": _latency(merged.reaction_ms["throttled"]),
        "time_to_ban_ms": _latency(merged.reaction_ms["banned"]),
        "time_to_disconnect_ms": _latency(merged.reaction_ms["disconnected"]),
        "abuser_errors": dict(sorted(merged.errors.items())),
        "counters": dict(sorted(merged.counters.items())),
        "benign_pair_latency_ms": _latency(benign_pair),
        "benign_chats": benign_chats,
        "benign_chats_with_abuser": exposed,
        "benign_exposure": round(exposed / benign_chats, 6) if benign_chats else 0.0,
    }
