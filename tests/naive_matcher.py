"""A deliberately naive matcher: PROTOCOL.md rule 5 read literally, by scanning lists.

It is the model the core is tested against, so it is written for obviousness, not speed:
every decision scans every waiting user.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Ticket:
    user: str
    mode: str
    lang: str
    interests: frozenset[str]
    seq: int
    joined: float


@dataclass
class NaiveMatcher:
    interest_fallback: float = 5.0
    rematch_block: float = 10.0
    waiting: list[Ticket] = field(default_factory=list)
    partners: dict[str, str] = field(default_factory=dict)
    prefs: dict[str, tuple[str, str, frozenset[str]]] = field(default_factory=dict)
    blocked_until: dict[frozenset[str], float] = field(default_factory=dict)
    seq: int = 0

    def is_open(self, t: Ticket, now: float) -> bool:
        return not t.interests or now >= t.joined + self.interest_fallback

    def compatible(self, a: Ticket, b: Ticket, now: float) -> bool:
        if a.user == b.user or a.mode != b.mode or a.lang != b.lang:
            return False
        if self.blocked_until.get(frozenset((a.user, b.user)), -1.0) > now:
            return False
        return bool(a.interests & b.interests) or (self.is_open(a, now) and self.is_open(b, now))

    def settle(self, now: float) -> list[frozenset[str]]:
        """Pair every compatible waiting pair, the earliest joiner served first."""
        made = []
        changed = True
        while changed:
            changed = False
            for x in sorted(self.waiting, key=lambda t: t.seq):
                others = [y for y in self.waiting if self.compatible(x, y, now)]
                if others:
                    y = min(others, key=lambda t: t.seq)
                    made.append(self._pair(x, y))
                    changed = True
                    break
        return made

    def _pair(self, x: Ticket, y: Ticket) -> frozenset[str]:
        self.waiting.remove(x)
        self.waiting.remove(y)
        self.partners[x.user] = y.user
        self.partners[y.user] = x.user
        return frozenset((x.user, y.user))

    def _enqueue(self, user: str, now: float) -> list[frozenset[str]]:
        mode, lang, interests = self.prefs[user]
        self.seq += 1
        t = Ticket(user, mode, lang, interests, self.seq, now)
        candidates = [w for w in self.waiting if self.compatible(t, w, now)]
        if candidates:
            w = min(candidates, key=lambda c: c.seq)
            self.waiting.append(t)
            return [self._pair(w, t)]
        self.waiting.append(t)
        return []

    def state(self, user: str) -> str:
        if user in self.partners:
            return "paired"
        if any(t.user == user for t in self.waiting):
            return "waiting"
        return "idle"

    def join(self, user: str, now: float, mode: str, lang: str, interests: frozenset[str]):
        self.prefs[user] = (mode, lang, interests)
        return self._enqueue(user, now)

    def next(self, user: str, now: float):
        if self.state(user) == "waiting":
            return []
        partner = self.partners.pop(user)
        del self.partners[partner]
        if self.rematch_block > 0:
            self.blocked_until[frozenset((user, partner))] = now + self.rematch_block
        return self._enqueue(user, now)

    def leave(self, user: str):
        if user in self.partners:
            partner = self.partners.pop(user)
            del self.partners[partner]
        else:
            self.waiting = [t for t in self.waiting if t.user != user]

    def deadlines(self) -> list[float]:
        """Every future instant at which compatibility can change by itself."""
        times = [t.joined + self.interest_fallback for t in self.waiting if t.interests]
        times += list(self.blocked_until.values())
        return times
