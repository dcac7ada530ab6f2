"""The pairing core against a deliberately naive matcher, driven by Hypothesis.

Random joins, nexts, leaves, disconnects and clock advances; after every step both must
agree on who is paired with whom and who waits, and the core's own invariants must hold.
Agreement with the naive matcher is what proves FIFO order, the interest rules, the
fallback timer and the rematch block, since the naive one reads PROTOCOL.md literally.
"""
from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.core_impls import IMPLS
from tests.naive_matcher import NaiveMatcher

SLOTS = 7
MODES = st.sampled_from(["text", "video"])
LANGS = st.sampled_from(["en", "en", "de"])
INTERESTS = st.frozensets(st.sampled_from(["a", "b", "c", "d"]), max_size=2)
STEPS = st.sampled_from([0.0, 0.25, 1.0, 2.5, 4.0, 5.0, 6.5, 10.0, 12.0])


class CoreVersusNaive(RuleBasedStateMachine):
    impl = IMPLS["imported"]

    @initialize(fallback=st.sampled_from([0.0, 2.0, 5.0, 1000.0]), block=st.sampled_from([0.0, 3.0, 10.0]))
    def setup(self, fallback: float, block: float) -> None:
        self.core = self.impl.PairingCore(interest_fallback=fallback, rematch_block=block)
        self.naive = NaiveMatcher(interest_fallback=fallback, rematch_block=block)
        self.now = 0.0
        self.gen = [0] * SLOTS  # a disconnected user comes back as a new session id
        self.pair_ids: dict[str, str] = {}

    def uid(self, slot: int) -> str:
        return f"u{slot}.{self.gen[slot]}"

    # -- helpers -------------------------------------------------------------
    def check_effects(self, effects: list, expected_pairs: list[frozenset[str]]) -> None:
        got = [frozenset((e.a, e.b)) for e in effects if isinstance(e, self.impl.Paired)]
        assert sorted(map(sorted, got)) == sorted(map(sorted, expected_pairs)), (got, expected_pairs)
        for e in effects:
            if isinstance(e, self.impl.Paired):
                assert e.a != e.b, "self pair"
                assert e.initiator in (e.a, e.b)
                assert e.waited_a >= 0 and e.waited_b >= 0
                self.pair_ids[e.a] = self.pair_ids[e.b] = e.pair_id

    def run_timers_until(self, until: float) -> None:
        """Fire every deadline up to `until` at its own instant, in both matchers."""
        last = self.now
        while True:
            candidates = [t for t in self.naive.deadlines() if last < t <= until]
            wake = self.core.next_wakeup()
            if wake is not None and last < wake <= until:
                candidates.append(wake)
            elif wake is not None and wake <= last:
                candidates.append(last)  # a stale deadline the core still wants to clear
            if not candidates:
                break
            t = min(candidates)
            effects = self.core.tick(t)
            self.check_effects(effects, self.naive.settle(t))
            if t == last and not effects:
                break
            last = t
        self.now = until

    # -- rules ---------------------------------------------------------------
    @rule(dt=STEPS)
    def advance(self, dt: float) -> None:
        self.run_timers_until(self.now + dt)

    @rule(slot=st.integers(0, SLOTS - 1), mode=MODES, lang=LANGS, interests=INTERESTS)
    def join(self, slot: int, mode: str, lang: str, interests: frozenset[str]) -> None:
        user = self.uid(slot)
        if self.core.state(user) != "idle":
            return
        effects = self.core.join(user, self.now, mode, lang, sorted(interests))
        self.check_effects(effects, self.naive.join(user, self.now, mode, lang, interests))
        if not any(isinstance(e, self.impl.Paired) for e in effects):
            assert effects == [self.impl.Waiting(user)]

    @rule(slot=st.integers(0, SLOTS - 1))
    def next(self, slot: int) -> None:
        user = self.uid(slot)
        state = self.core.state(user)
        if state == "idle":
            return
        partner = self.core.partner(user)
        effects = self.core.next(user, self.now)
        if state == "paired":
            assert self.impl.PartnerLeft(partner, "next") in effects
            assert self.core.state(partner) == "idle"
        self.check_effects(effects, self.naive.next(user, self.now))

    @rule(slot=st.integers(0, SLOTS - 1))
    def leave(self, slot: int) -> None:
        user = self.uid(slot)
        if self.core.state(user) == "idle":
            return
        partner = self.core.partner(user)
        effects = self.core.leave(user, self.now)
        assert effects == ([self.impl.PartnerLeft(partner, "leave")] if partner is not None else [])
        self.naive.leave(user)
        assert self.core.state(user) == "idle"

    @rule(slot=st.integers(0, SLOTS - 1))
    def disconnect(self, slot: int) -> None:
        user = self.uid(slot)
        partner = self.core.partner(user)
        effects = self.core.disconnect(user, self.now)
        assert effects == ([self.impl.PartnerLeft(partner, "disconnect")] if partner is not None else [])
        if self.naive.state(user) != "idle":
            self.naive.leave(user)
        self.gen[slot] += 1

    # -- invariants ----------------------------------------------------------
    @invariant()
    def same_states_and_partners(self) -> None:
        if not hasattr(self, "core"):
            return
        waiting = 0
        paired = 0
        for slot in range(SLOTS):
            user = self.uid(slot)
            state = self.core.state(user)
            assert state == self.naive.state(user), (user, state, self.naive.state(user))
            partner = self.core.partner(user)
            if state == "paired":
                paired += 1
                assert partner == self.naive.partners[user]
                assert partner != user
                assert self.core.partner(partner) == user, "asymmetric pair"
                assert self.core.pair_id(user) == self.core.pair_id(partner) == self.pair_ids[user]
            else:
                assert partner is None
                waiting += state == "waiting"
        assert self.core.waiting_count == waiting
        assert self.core.paired_count == paired
        assert sum(self.core.waiting_by_pool().values()) == waiting

    @invariant()
    def settled(self) -> None:
        """No two waiting users are compatible once timers have run (nobody waits needlessly)."""
        if not hasattr(self, "core"):
            return
        now = self.now
        waiting = list(self.naive.waiting)
        for i, a in enumerate(waiting):
            for b in waiting[i + 1 :]:
                assert not self.naive.compatible(a, b, now), (a, b, now)


class SourceCoreVersusNaive(CoreVersusNaive):
    """The same machine on the plain-Python source (the import may be the mypyc build)."""

    impl = IMPLS["source"]


CoreVersusNaive.TestCase.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)
SourceCoreVersusNaive.TestCase.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)
TestCoreVersusNaive = CoreVersusNaive.TestCase
TestSourceCoreVersusNaive = SourceCoreVersusNaive.TestCase
