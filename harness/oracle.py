"""The correctness oracle: merged chat records -> violation counters and examples.

Pure and I/O-free: it takes the records every user shipped (harness/ledger.py), the local
incidents the workers counted, and a deadline, and returns counters, a few examples per
kind, the partner-left latency samples (a join of both ends of a chat) and violations per
second. Every rule is chosen so that a correct server never trips it (docs/oracle.md
explains each one and the races it tolerates).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from harness.ledger import (
    END_ABANDONED,
    END_LEAVE,
    END_NEXT,
    END_PARTNER_LEFT,
    END_REPAIRED,
    MAX_EXAMPLES,
    OWN_ENDS,
    VIOLATION_KINDS,
)

#: Default deadline (ms) for a token to arrive and for partner_left to follow the partner's end.
DEFAULT_DEADLINE_MS = 5000.0
#: The partner_left reason each of our own endings must produce at the other end.
_EXPECTED_REASON = {END_NEXT: "next", END_LEAVE: "leave", "disconnect": "disconnect", END_ABANDONED: "leave"}
#: partner_left reasons that mean "the partner acted", so every message it sent before arrived.
_PARTNER_ACTED = frozenset({"next", "leave", "report"})
#: What cannot be checked (fully) when the backend lacks a capability (harness/adapters):
#: capability -> [(check, reason, partial)]. A partial check still runs; a full one is skipped.
UNCHECKED_WHEN_LACKING: dict[str, list[tuple[str, str, bool]]] = {
    "partner_left": [
        ("missing_partner_left", "the backend never tells a user that the partner left", False),
        ("ghost_match", "the backend never tells a user that the partner left: a chat whose partner"
                        " disconnected while the pairing was on its way is not judged", True),
        ("wrong_partner_left_reason", "the backend never tells a user that the partner left", False),
        ("partner_left_latency", "the backend never tells a user that the partner left", False),
    ],
    "partner_left_reason": [
        ("wrong_partner_left_reason", "partner_left carries no reason", False),
        ("lost_messages", "partner_left carries no reason: only gaps count, not trailing messages", True),
    ],
    "barrier": [
        ("after_end_delivery", "no ping barrier: frames of a chat we ended are allowed for a fixed delay", True),
    ],
    "video": [("signal_rtt", "the backend has no video signalling", False)],
    "typing": [("typing", "the backend has no typing indicator: never sent, never checked", False)],
    "interests": [("interests", "the backend has no interests: users join without them", False)],
}


def unchecked_for(lacking: Iterable[str]) -> list[dict[str, Any]]:
    """The checks a backend lacking these capabilities does not allow, with reasons."""
    out: dict[str, dict[str, Any]] = {}
    for cap in lacking:
        for check_name, reason, partial in UNCHECKED_WHEN_LACKING.get(cap, []):
            if check_name in out and not out[check_name]["partial"]:
                continue
            out[check_name] = {"check": check_name, "reason": reason, "partial": partial}
    return [out[k] for k in sorted(out)]


class _Tally:
    """Counters, capped examples and per-second counts of violations."""

    def __init__(self, max_examples: int) -> None:
        self.max_examples = max_examples
        self.counters: dict[str, int] = {k: 0 for k in VIOLATION_KINDS}
        self.examples: dict[str, list[dict[str, Any]]] = {}
        self.by_second: dict[int, int] = {}

    def add(self, kind: str, who: str, when_ns: int | None, what: str, n: int = 1) -> None:
        self.counters[kind] = self.counters.get(kind, 0) + n
        if when_ns is not None:
            sec = when_ns // 1_000_000_000
            self.by_second[sec] = self.by_second.get(sec, 0) + n
        ex = self.examples.setdefault(kind, [])
        if len(ex) < self.max_examples:
            ex.append({"who": who, "when": _seconds(when_ns), "what": what})

    def add_local(self, counts: Mapping[str, int], examples: Mapping[str, list[dict[str, Any]]]) -> None:
        for kind, n in counts.items():
            self.counters[kind] = self.counters.get(kind, 0) + int(n)
        for kind, exs in examples.items():
            ex = self.examples.setdefault(kind, [])
            for e in exs:
                if len(ex) >= self.max_examples:
                    break
                when = e.get("when")
                ex.append({**e, "when": _seconds(when) if isinstance(when, int) else when})


def _seconds(ns: int | None) -> float | None:
    return None if ns is None else round(ns / 1e9, 3)


def _key(rec: Mapping[str, Any]) -> tuple[str, int]:
    return rec["u"], rec["c"]


def _peer(rec: Mapping[str, Any]) -> tuple[str, int] | None:
    p = rec.get("peer")
    return None if p is None else (p[0], p[1])


def _name(key: tuple[str, int] | None) -> str:
    return "nobody" if key is None else f"{key[0]}#{key[1]}"


def _judge_early(rec: Mapping[str, Any], by_key: Mapping[tuple[str, int], Mapping[str, Any]], tally: _Tally,
                 checked: dict[str, int]) -> None:
    """Frames that reached `rec` before any token, from senders it could not name. From the
    chat that names `rec` as its peer, they are the partner's (its token never arrived):
    fine if the server refused frames of that chat (rate_limited: maybe the token), else
    the backend lost the token. From any other chat they are cross-talk."""
    me = _key(rec)
    for u, c, n in rec["early"]:
        sender = by_key.get((u, c))
        if sender is None:
            checked["unmatched_peer"] += 1  # the sender's record never reached us: not judged
        elif _peer(sender) == me:
            if not sender.get("refused"):
                tally.add("lost_messages", rec["u"], rec.get("t_end"),
                          f"the token of {_name((u, c))} never reached {_name(me)}, {n} of its later"
                          f" frames did (no frame of {_name((u, c))} was refused)")
        else:
            tally.add("cross_talk", rec["u"], rec.get("t_end") or rec.get("t_paired"),
                      f"{n} frames of {_name((u, c))} (paired with {_name(_peer(sender))}) reached"
                      f" {_name(me)} before its partner's token", n=n)


def _disconnect_crossings(records: Iterable[Mapping[str, Any]], claims: Mapping[tuple[str, int], Any],
                          waits: Iterable[Mapping[str, Any]], window_ns: int) -> set[tuple[str, int]]:
    """No-token chats explained by a search that gave up by disconnecting while the pairing
    was on its way: same mode and language, paired within `window_ns` of the give-up, one
    chat per give-up (earliest first). Used only for backends without partner_left, where
    such a chat is never ended by the backend and would look like a ghost match."""
    gone = sorted((w["t_gave_up"], w.get("mode"), w.get("lang")) for w in waits
                  if w.get("how") == "disconnect" and w.get("t_gave_up") is not None)
    if not gone:
        return set()
    out: set[tuple[str, int]] = set()
    used = [False] * len(gone)
    lonely = sorted((r for r in records if r.get("peer") is None and _key(r) not in claims),
                    key=lambda r: r["t_paired"])
    for r in lonely:
        for i, (t, mode, lang) in enumerate(gone):
            if not used[i] and abs(r["t_paired"] - t) <= window_ns and (mode, lang) == (r.get("mode"), r.get("lang")):
                used[i] = True
                out.add(_key(r))
                break
    return out


def check(
    records: Iterable[Mapping[str, Any]],
    local_counts: Mapping[str, int] | None = None,
    local_examples: Mapping[str, list[dict[str, Any]]] | None = None,
    deadline_ms: float = DEFAULT_DEADLINE_MS,
    max_examples: int = MAX_EXAMPLES,
    skip: Iterable[str] = (),
    waits: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Run every global check over the merged records and fold in the local incidents.

    `waits` (the searches users gave up) lets a backend that never says partner_left off
    for chats whose partner disconnected while the pairing was on its way (see _disconnect_crossings).

    Returns {"counters": {kind: n}, "violations_total", "examples": {kind: [...]},
    "partner_left_ms": [samples], "violations_by_second": {sec: n}, "checked": {...}}.
    """
    deadline_ns = int(deadline_ms * 1e6)
    tally = _Tally(max_examples)
    skip = frozenset(skip)  # kinds the backend cannot support (unchecked_for): never counted
    if skip:
        local_counts = {k: v for k, v in (local_counts or {}).items() if k not in skip}
        local_examples = {k: v for k, v in (local_examples or {}).items() if k not in skip}
    tally.add_local(local_counts or {}, local_examples or {})
    by_key: dict[tuple[str, int], Mapping[str, Any]] = {}
    claims: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for rec in records:
        by_key.setdefault(_key(rec), rec)
    for rec in by_key.values():
        p = _peer(rec)
        if p is not None:
            claims.setdefault(p, []).append(rec)

    # Pair ids of chats one side abandoned (paired after it had sent leave): the other side
    # may wait for a token that never comes, on a backend that does not tell it the chat ended.
    abandoned_pairs = {r.get("pair") for r in by_key.values() if r.get("end") == END_ABANDONED and r.get("pair")}
    # Without partner_left, a pairing that crossed the partner's disconnect is never ended.
    excused = _disconnect_crossings(by_key.values(), claims, waits, deadline_ns) if "missing_partner_left" in skip else set()

    partner_left_ms: list[float] = []
    checked = {"chats": len(by_key), "symmetric_pairs": 0, "unmatched_peer": 0, "loss_checked": 0}

    # Double match: one chat's token reached two different chats.
    for target, claimers in claims.items():
        if len(claimers) > 1:
            who = ", ".join(_name(_key(r)) for r in claimers[:4])
            first = min((r["t_tok"] or r["t_paired"]) for r in claimers)
            tally.add("double_match", target[0], first,
                      f"token of {_name(target)} reached {len(claimers)} chats: {who}", n=len(claimers) - 1)

    for rec in by_key.values():
        me = _key(rec)
        peer = _peer(rec)
        end = rec.get("end")
        if rec.get("early"):
            _judge_early(rec, by_key, tally, checked)

        # Ghost: paired, but no token arrived within the deadline (and the chat was not
        # visibly ended by the partner or by our own leave racing the pairing). Not a ghost:
        # a chat whose own token reached someone (the partner was there; its token was
        # refused or lost, judged above and below), or whose pair the other side abandoned.
        if peer is None and end not in (END_ABANDONED, END_REPAIRED) and me not in claims and me not in excused \
                and not (rec.get("pair") and rec.get("pair") in abandoned_pairs):
            t_end = rec.get("t_end")
            lasted = None if t_end is None else t_end - rec["t_paired"]
            if lasted is not None and lasted >= deadline_ns:
                tally.add("ghost_match", rec["u"], rec["t_paired"] + deadline_ns,
                          f"chat {rec['c']} (pair {rec.get('pair')}) got no token in {lasted / 1e6:.0f} ms,"
                          f" ended by {end}")
            continue

        if peer is None:
            continue
        other = by_key.get(peer)
        if other is None:
            checked["unmatched_peer"] += 1  # its record never reached us (worker lost); not judged
            continue
        other_peer = _peer(other)

        # Asymmetric pair: the two ends disagree on who they were paired with.
        if other_peer is not None and other_peer != me:
            tally.add("asymmetric_pair", rec["u"], rec.get("t_tok"),
                      f"{_name(me)} was paired with {_name(peer)}, which was paired with {_name(other_peer)}")
            continue
        if other_peer is None:
            # The other end never saw our token although the partner_left it got proves our
            # token (always our first frame) was sent before the chat ended.
            # (Unless the server refused one of our frames in that chat: it may be the token.)
            if (rec.get("t_tok_sent") is not None and other.get("end") == END_PARTNER_LEFT
                    and other.get("reason") in _PARTNER_ACTED and end != END_ABANDONED
                    and not rec.get("refused")):
                tally.add("asymmetric_pair", rec["u"], other.get("t_end"),
                          f"{_name(me)} knew {_name(peer)}, which never got {_name(me)}'s token"
                          f" before partner_left ({other.get('reason')})")
            continue
        checked["symmetric_pairs"] += 1

        # Lost messages from the other end to us (we are the receiver here).
        if not other.get("refused"):
            checked["loss_checked"] += 1
            if end == END_PARTNER_LEFT and rec.get("reason") in _PARTNER_ACTED and other.get("end") in (
                END_NEXT, END_LEAVE
            ):
                expected = int(other.get("sent", 0))
            else:
                expected = int(rec.get("recv_max", -1)) + 1
            lost = expected - int(rec.get("recv", 0))
            if lost > 0:
                tally.add("lost_messages", rec["u"], rec.get("t_end"),
                          f"{lost} of {expected} messages from {_name(peer)} never reached {_name(me)}"
                          f" (ended by {end})", n=lost)

        # Our own ending must reach the other end as partner_left, with the right reason.
        expected_reason = _EXPECTED_REASON.get(end) if end in OWN_ENDS or end == END_ABANDONED else None
        if expected_reason is None:
            continue
        o_end, o_t = other.get("end"), other.get("t_end")
        if o_end == END_PARTNER_LEFT:
            if other.get("reason") != expected_reason and "wrong_partner_left_reason" not in skip:
                tally.add("wrong_partner_left_reason", other["u"], o_t,
                          f"{_name(peer)} got partner_left ({other.get('reason')}) but {_name(me)} did {end}")
            elif end in (END_NEXT, END_LEAVE) and o_t is not None:
                partner_left_ms.append((o_t - rec["t_end"]) / 1e6)
        elif "missing_partner_left" in skip:
            continue
        elif rec.get("refused"):
            continue  # the server refused frames of ours in this chat: maybe the next/leave itself
        elif o_end not in (END_ABANDONED, END_REPAIRED) and o_t is not None and o_t - rec["t_end"] > deadline_ns:
            tally.add("missing_partner_left", other["u"], rec["t_end"] + deadline_ns,
                      f"{_name(me)} did {end}, but {_name(peer)} stayed {(o_t - rec['t_end']) / 1e6:.0f} ms"
                      f" without partner_left (ended by {o_end})")

    total = sum(tally.counters.values())
    return {
        "counters": tally.counters,
        "violations_total": total,
        "examples": {k: v for k, v in tally.examples.items() if v},
        "partner_left_ms": partner_left_ms,
        "violations_by_second": tally.by_second,
        "checked": checked,
    }
