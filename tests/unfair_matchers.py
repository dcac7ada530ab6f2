"""Deliberately unfair matchers for the simulator tests (each breaks fairness one known way).

They implement the simulator's matcher interface (docs/simulate.md) with a plain list of
waiting users scanned on every call: slow, but small and clear. `ListMatcher.choose`
picks among the compatible waiting users; subclasses change only that choice or when
someone is eligible.
"""
from __future__ import annotations

import random
from typing import Hashable, Iterable

from reference_server.core import Paired, PartnerLeft, Waiting


class _U:
    __slots__ = ("id", "mode", "lang", "interests", "joined", "state", "partner", "blocks")

    def __init__(self, uid: Hashable) -> None:
        self.id = uid
        self.state = "idle"
        self.partner: _U | None = None
        self.blocks: dict[Hashable, float] = {}


class ListMatcher:
    """FIFO by rule 5 unless a subclass overrides `choose`, `eligible` or `tick`."""

    def __init__(self, interest_fallback: float = 5.0, rematch_block: float = 10.0) -> None:
        self.fb = interest_fallback
        self.block = rematch_block
        self.users: dict[Hashable, _U] = {}
        self.waiting: list[_U] = []          # join order
        self.pairs = 0
        self.clock = float("-inf")   # latest time tick() ran: only later deadlines are pending

    # ---- policy hooks
    def is_open(self, u: _U, now: float) -> bool:
        return not u.interests or now >= u.joined + self.fb

    def compatible(self, u: _U, w: _U, now: float) -> bool:
        if w is u or (u.mode, u.lang) != (w.mode, w.lang):
            return False
        if u.blocks.get(w.id, -1.0) > now:
            return False
        return bool(set(u.interests) & set(w.interests)) or (self.is_open(u, now) and self.is_open(w, now))

    def eligible(self, u: _U, now: float) -> bool:
        """May u be paired right now at all?"""
        return True

    def choose(self, u: _U, cands: list[_U], now: float) -> _U:
        return cands[0]

    # ---- interface
    def next_wakeup(self) -> float | None:
        times = [t for u in self.waiting if u.interests and (t := u.joined + self.fb) > self.clock]
        return min(times) if times else None

    def join(self, user: Hashable, now: float, mode: str = "text", lang: str = "en",
             interests: Iterable[str] = ()) -> list:
        u = self.users.setdefault(user, _U(user))
        u.mode, u.lang, u.interests = mode, lang, tuple(interests)
        return self._enqueue(u, now)

    def next(self, user: Hashable, now: float) -> list:
        u = self.users[user]
        if u.state == "waiting":
            return [Waiting(user)]
        p = self._unpair(u)
        u.blocks[p.id] = p.blocks[u.id] = now + self.block
        return [PartnerLeft(p.id, "next"), *self._enqueue(u, now)]

    def leave(self, user: Hashable, now: float, reason: str = "leave") -> list:
        u = self.users[user]
        if u.state == "waiting":
            self.waiting.remove(u)
            u.state = "idle"
            return []
        if u.state == "paired":
            return [PartnerLeft(self._unpair(u).id, reason)]
        return []

    def disconnect(self, user: Hashable, now: float) -> list:
        if user not in self.users:
            return []
        out = self.leave(user, now, "disconnect")
        del self.users[user]
        return out

    def tick(self, now: float) -> list:
        self.clock = max(self.clock, now)
        out = []
        for u in list(self.waiting):
            if u.state != "waiting" or not self.eligible(u, now):
                continue
            cands = [w for w in self.waiting if w.state == "waiting" and self.compatible(u, w, now)
                     and self.eligible(w, now)]
            if cands:
                out.append(self._pair(self.choose(u, cands, now), u, now))
        return out

    # ---- internals
    def _enqueue(self, u: _U, now: float) -> list:
        u.joined = now
        if self.eligible(u, now):
            cands = [w for w in self.waiting if self.compatible(u, w, now) and self.eligible(w, now)]
            if cands:
                return [self._pair(self.choose(u, cands, now), u, now)]
        u.state = "waiting"
        self.waiting.append(u)
        return [Waiting(u.id)]

    def _pair(self, w: _U, u: _U, now: float) -> Paired:
        for x in (w, u):
            if x.state == "waiting":
                self.waiting.remove(x)
            x.state = "paired"
        w.partner, u.partner = u, w
        self.pairs += 1
        common = tuple(i for i in u.interests if i in w.interests)
        return Paired(w.id, u.id, f"p{self.pairs}", u.mode, common, w.id, now - w.joined, now - u.joined)

    def _unpair(self, u: _U) -> _U:
        p = u.partner
        assert p is not None
        u.partner = p.partner = None
        u.state = p.state = "idle"
        return p


class LifoMatcher(ListMatcher):
    """Serves the most recent compatible user first."""

    def choose(self, u, cands, now):
        return cands[-1]


class RandomMatcher(ListMatcher):
    """Picks a random compatible user."""

    def __init__(self, *a, **k) -> None:
        super().__init__(*a, **k)
        self.rng = random.Random(7)

    def choose(self, u, cands, now):
        return self.rng.choice(cands)


class InterestStarver(ListMatcher):
    """Users with interests never fall back, and open users always go first."""

    def is_open(self, u, now):
        return not u.interests

    def choose(self, u, cands, now):
        plain = [w for w in cands if not w.interests]
        return plain[0] if plain else cands[0]

    def next_wakeup(self):
        return None


class LanguageFirst(ListMatcher):
    """Pairs the favoured language on arrival; everyone else only in a batch every `period` s."""

    favoured = "en"
    period = 15.0

    def __init__(self, *a, **k) -> None:
        super().__init__(*a, **k)
        self.next_batch = self.period

    def eligible(self, u, now):
        return u.lang == self.favoured or now >= self.next_batch

    def next_wakeup(self):
        t = super().next_wakeup()
        return self.next_batch if t is None else min(t, self.next_batch)

    def tick(self, now):
        batch = now >= self.next_batch
        if batch:
            self.next_batch = now + self.period
            self._batch_now = now
        out = ListMatcher.tick(self, now) if not batch else self._batch(now)
        return out

    def _batch(self, now):
        # During a batch, everyone is eligible: run the FIFO sweep with the gate open.
        saved, self.next_batch = self.next_batch, now
        try:
            return ListMatcher.tick(self, now)
        finally:
            self.next_batch = saved
