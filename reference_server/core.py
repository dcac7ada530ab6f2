"""The lock-free pairing core: who waits, who is paired with whom, and when.

Pure synchronous Python with no I/O and no clock of its own: every call takes `now` and
returns the effects the caller must carry out (tell X it is paired, tell Y its partner
left). In one event loop nothing can run between a check and a pairing made inside one
call, so the core needs no lock; the server must only never await in the middle of
applying a call's effects to its own bookkeeping.

Queue rules (PROTOCOL.md, "what a correct server guarantees", rule 5, plus rule 2):
- users are compatible when mode and lang are equal, they are not blocked from each other
  by a recent `next` (`rematch_block` seconds), and they share an interest or both are
  *open* (an open user has no interests, or its `interest_fallback` has passed);
- a newcomer is paired with the longest-waiting compatible user (join order, by a global
  sequence number; `next` re-enters with a new one);
- timers (fallbacks and expiring blocks) may pair two users who are both already waiting;
  `next_wakeup()` says when `tick()` must run for that.

Cost: in a settled queue no two waiting users are compatible, so a pool holds at most one
open user plus users blocked from each other. A join therefore looks at O(1) open users,
or at the oldest user of each of its k interests: O(1) amortized without interests, O(k)
with k interests, whatever the queue length.
"""
from __future__ import annotations

from collections import deque
from typing import ClassVar, Hashable, Iterable, Iterator

IDLE = 0
WAITING = 1
PAIRED = 2
_STATE_NAMES = ("idle", "waiting", "paired")

LEAVE_REASONS = frozenset({"leave", "disconnect", "report", "banned"})


class _Effect:
    """Base of the effects: compared, hashed, printed and unpacked like the tuple of its fields.

    Why not NamedTuple: building a tuple subclass costs a Python-level call per effect, a
    third of a join; plain slotted classes compile (mypyc) to C structs built in a few ns.
    """

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()

    def _astuple(self) -> tuple:
        return ()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._astuple() == other._astuple()  # type: ignore[attr-defined]

    def __ne__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._astuple() != other._astuple()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._astuple()))

    def __iter__(self) -> Iterator[object]:
        return iter(self._astuple())

    def __len__(self) -> int:
        return len(self._fields)

    def __getitem__(self, i: int) -> object:
        return self._astuple()[i]

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in zip(self._fields, self._astuple()))
        return f"{type(self).__name__}({inner})"


class Paired(_Effect):
    """`a` and `b` are now partners; `initiator` (a or b) sends the WebRTC offer."""

    __slots__ = ("a", "b", "pair_id", "mode", "common", "initiator", "waited_a", "waited_b")
    _fields: ClassVar[tuple[str, ...]] = ("a", "b", "pair_id", "mode", "common", "initiator", "waited_a", "waited_b")

    def __init__(self, a: Hashable, b: Hashable, pair_id: str, mode: str, common: tuple[str, ...],
                 initiator: Hashable, waited_a: float, waited_b: float) -> None:
        self.a = a
        self.b = b
        self.pair_id = pair_id
        self.mode = mode
        self.common = common
        self.initiator = initiator
        self.waited_a = waited_a
        self.waited_b = waited_b

    def _astuple(self) -> tuple:
        return (self.a, self.b, self.pair_id, self.mode, self.common, self.initiator, self.waited_a, self.waited_b)


class Waiting(_Effect):
    """`user` is in the queue with no partner yet."""

    __slots__ = ("user",)
    _fields: ClassVar[tuple[str, ...]] = ("user",)

    def __init__(self, user: Hashable) -> None:
        self.user = user

    def _astuple(self) -> tuple:
        return (self.user,)


class PartnerLeft(_Effect):
    """Tell `user` that its partner left for `reason`; `user` is idle now."""

    __slots__ = ("user", "reason")
    _fields: ClassVar[tuple[str, ...]] = ("user", "reason")

    def __init__(self, user: Hashable, reason: str) -> None:
        self.user = user
        self.reason = reason

    def _astuple(self) -> tuple:
        return (self.user, self.reason)


Effect = Paired | Waiting | PartnerLeft


class StateError(ValueError):
    """The call is not allowed in the user's current state (the server answers not_allowed)."""


class _User:
    __slots__ = (
        "id", "mode", "lang", "interests", "pool", "state", "seq", "joined",
        "open", "partner", "pair_id", "blocks",
    )

    def __init__(self, uid: Hashable) -> None:
        self.id = uid
        self.mode = "text"
        self.lang = "en"
        self.interests: tuple[str, ...] = ()
        self.pool: _Pool | None = None
        self.state = IDLE
        self.seq = 0
        self.joined = 0.0
        self.open = True
        self.partner: _User | None = None
        self.pair_id: str | None = None
        # other user id -> time the rematch block ends; None while there is none.
        self.blocks: dict[Hashable, float] | None = None


class _Pool:
    """The waiting users of one (mode, lang)."""

    __slots__ = ("key", "mode", "lang", "open", "by_interest", "waiting")

    def __init__(self, key: tuple[str, str]) -> None:
        self.key = key
        self.mode, self.lang = key
        # Open users in join order (dicts keep insertion order; see _insert_open).
        self.open: dict[Hashable, _User] = {}
        # interest -> waiting users holding it, in join order.
        self.by_interest: dict[str, dict[Hashable, _User]] = {}
        self.waiting = 0


class PairingCore:
    """Random-match pairing with interests, fallback and rematch blocking; see module doc."""

    #: Users of different (mode, lang) never meet and pools share no state that decides a
    #: pairing: the simulator may run pools in separate processes (harness/simulate/shard.py).
    pools_independent: ClassVar[bool] = True

    def __init__(self, interest_fallback: float = 5.0, rematch_block: float = 10.0) -> None:
        if interest_fallback < 0 or rematch_block < 0:
            raise ValueError("interest_fallback and rematch_block must be >= 0")
        self.interest_fallback = float(interest_fallback)
        self.rematch_block = float(rematch_block)
        self._users: dict[Hashable, _User] = {}
        self._pools: dict[tuple[str, str], _Pool] = {}
        self._last_pool: _Pool | None = None
        self._seq = 0
        self._pairs = 0
        self._now = float("-inf")
        # Deadlines grow with time in both queues (constant delays), so FIFO deques suffice.
        self._fallbacks: deque[tuple[float, _User, int]] = deque()
        self._unblocks: deque[tuple[float, Hashable, Hashable]] = deque()
        self._due: float | None = None  # earliest pending deadline (may be stale: tick is then a no-op)
        self.waiting_count = 0
        self.paired_count = 0
        self.pairs_total = 0

    # ----------------------------------------------------------------- queries
    def state(self, user: Hashable) -> str:
        u = self._users.get(user)
        return _STATE_NAMES[u.state] if u is not None else "idle"

    def partner(self, user: Hashable) -> Hashable | None:
        u = self._users.get(user)
        if u is None or u.partner is None:
            return None
        return u.partner.id

    def pair_id(self, user: Hashable) -> str | None:
        u = self._users.get(user)
        return None if u is None else u.pair_id

    def waiting_by_pool(self) -> dict[tuple[str, str], int]:
        return {key: pool.waiting for key, pool in self._pools.items() if pool.waiting}

    def next_wakeup(self) -> float | None:
        """When `tick` must next run, or None when no timer is pending."""
        fallbacks = self._fallbacks
        while fallbacks:
            _, u, seq = fallbacks[0]
            if u.state == WAITING and u.seq == seq and not u.open:
                break
            fallbacks.popleft()
        first = fallbacks[0][0] if fallbacks else None
        if self._unblocks:
            t = self._unblocks[0][0]
            if first is None or t < first:
                first = t
        return first

    # ----------------------------------------------------------------- commands
    def join(
        self,
        user: Hashable,
        now: float,
        mode: str = "text",
        lang: str = "en",
        interests: Iterable[str] = (),
    ) -> list[Effect]:
        """Enter the queue from idle; answers Paired or Waiting."""
        u = self._users.get(user)
        if u is None:
            u = _User(user)
            self._users[user] = u
        elif u.state != IDLE:
            raise StateError(f"join is not allowed while {_STATE_NAMES[u.state]}")
        if now < self._now:  # inlined _clock: this is the hottest call
            now = self._now
        else:
            self._now = now
        due = self._due
        effects: list[Effect] | None = None
        if due is not None and due <= now:
            effects = self.tick(now)
        pool = self._last_pool  # consecutive joins mostly share a pool: skip the tuple key
        if pool is None or pool.mode != mode or pool.lang != lang:
            pool = self._pool_for(mode, lang)
        u.mode = mode
        u.lang = lang
        u.pool = pool
        if interests or effects is not None:
            u.interests = tuple(dict.fromkeys(interests)) if interests else ()
            if effects is None:
                return self._enqueue(u, now)
            effects.extend(self._enqueue(u, now))
            return effects
        # Fast path, no interests and no timer due: the same steps as _enqueue, inlined.
        u.interests = ()
        self._seq = seq = self._seq + 1
        u.seq = seq
        u.joined = now
        u.open = True
        q = pool.open
        if q:
            blocks = u.blocks
            for w in q.values():
                if blocks is not None and blocks.get(w.id, -1.0) > now:
                    continue
                return [self._pair(w, u, now)]
        u.state = WAITING
        q[user] = u
        pool.waiting += 1
        self.waiting_count += 1
        return [Waiting(user)]

    def next(self, user: Hashable, now: float) -> list[Effect]:
        """End the chat (partner told `next`) and re-enter with the same preferences.

        While waiting, `next` keeps the user's place: there is no chat to end and moving it to
        the back would only punish it.
        """
        u = self._users.get(user)
        if u is None or u.state == IDLE:
            raise StateError("next is only allowed while waiting or paired")
        now = self._clock(now)
        effects: list[Effect] = []
        if self._due is not None and self._due <= now:
            effects = self.tick(now)  # timers may have paired this very user
        if u.state == WAITING:
            effects.append(Waiting(user))
            return effects
        if u.state == IDLE:
            raise StateError("next is only allowed while waiting or paired")
        p = self._unpair(u)
        self._block(u, p, now)
        effects.append(PartnerLeft(p.id, "next"))
        effects.extend(self._enqueue(u, now))
        return effects

    def leave(self, user: Hashable, now: float, reason: str = "leave") -> list[Effect]:
        """Leave the chat or the queue; the user becomes idle, the partner is told `reason`."""
        if reason not in LEAVE_REASONS:
            raise ValueError(f"unknown leave reason {reason!r}")
        u = self._users.get(user)
        if u is None or u.state == IDLE:
            raise StateError("leave is only allowed while waiting or paired")
        self._clock(now)
        if u.state == WAITING:
            self._dequeue(u)
            return []
        p = self._unpair(u)
        return [PartnerLeft(p.id, reason)]

    def disconnect(self, user: Hashable, now: float) -> list[Effect]:
        """The user is gone: out of the queue at once, partner told, user forgotten."""
        u = self._users.get(user)
        if u is None:
            return []
        effects: list[Effect] = []
        if u.state != IDLE:
            effects = self.leave(user, now, "disconnect")
        del self._users[user]
        return effects

    def tick(self, now: float) -> list[Effect]:
        """Run the timers that are due, instant by instant in deadline order.

        Everything due at one instant happens together (users open up, blocks end), then
        the users it touched are settled in join order: whoever joined first among all
        users who can now meet is served first, as rule 5 says.
        """
        now = self._clock(now)
        effects: list[Effect] = []
        fallbacks = self._fallbacks
        unblocks = self._unblocks
        while True:
            tf = fallbacks[0][0] if fallbacks else None
            tu = unblocks[0][0] if unblocks else None
            at = tf if tu is None or (tf is not None and tf < tu) else tu
            if at is None or at > now:
                break
            affected: list[_User] = []
            while unblocks and unblocks[0][0] == at:
                self._expire_block(*unblocks.popleft(), affected)
            while fallbacks and fallbacks[0][0] == at:
                _, u, seq = fallbacks.popleft()
                if u.state == WAITING and u.seq == seq and not u.open:
                    u.open = True
                    self._insert_open(u)
                    affected.append(u)
            if affected:
                self._settle(affected, at, now, effects)
        self._due = self.next_wakeup()
        return effects

    def _expire_block(self, until: float, a_id: Hashable, b_id: Hashable, affected: list[_User]) -> None:
        for x_id, y_id in ((a_id, b_id), (b_id, a_id)):
            x = self._users.get(x_id)
            if x is None:
                continue
            if x.blocks is not None and x.blocks.get(y_id) == until:
                del x.blocks[y_id]
                if not x.blocks:
                    x.blocks = None
            if x.state == WAITING:
                affected.append(x)

    def _settle(self, affected: list[_User], at: float, now: float, effects: list[Effect]) -> None:
        """Pair everyone who became compatible at `at`, earliest joiner first.

        Before `at` the queue was settled, so every compatible pair now involves an
        affected user; the earliest joiner of any such pair is served first, with its own
        longest-waiting compatible partner. |affected| is almost always 1.
        """
        while True:
            first: _User | None = None
            for u in affected:
                if u.state != WAITING:
                    continue
                m = self._match_for(u, at)
                if m is None:
                    continue
                x = u if u.seq < m.seq else m
                if first is None or x.seq < first.seq:
                    first = x
            if first is None:
                return
            partner = self._match_for(first, at)
            assert partner is not None
            effects.append(self._pair(first, partner, now, second_queued=True))

    def _match_for(self, u: _User, at: float) -> _User | None:
        """u's longest-waiting compatible user (u itself may be waiting)."""
        match = self._oldest_sharing(u, at) if u.interests else None
        if u.open:
            other = self._oldest_open(u, at)
            if other is not None and (match is None or other.seq < match.seq):
                match = other
        return match

    # ----------------------------------------------------------------- internals
    def _pool_for(self, mode: str, lang: str) -> _Pool:
        key = (mode, lang)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool(key)
        self._last_pool = pool
        return pool

    def _clock(self, now: float) -> float:
        # Deadlines are kept in FIFO order, which needs a clock that never goes back.
        if now < self._now:
            return self._now
        self._now = now
        return now

    def _enqueue(self, u: _User, now: float) -> list[Effect]:
        self._seq += 1
        u.seq = self._seq
        u.joined = now
        pool = u.pool
        assert pool is not None
        u.open = not u.interests or self.interest_fallback <= 0
        match = self._match_for(u, now)
        if match is not None:
            return [self._pair(match, u, now)]
        u.state = WAITING
        pool.waiting += 1
        self.waiting_count += 1
        if u.open:
            pool.open[u.id] = u  # newest join: appending keeps join order
        if u.interests:
            by_interest = pool.by_interest
            for interest in u.interests:
                q = by_interest.get(interest)
                if q is None:
                    by_interest[interest] = {u.id: u}
                else:
                    q[u.id] = u
            if not u.open:
                deadline = now + self.interest_fallback
                self._fallbacks.append((deadline, u, u.seq))
                if self._due is None or deadline < self._due:
                    self._due = deadline
        return [Waiting(u.id)]

    def _oldest_open(self, u: _User, now: float) -> _User | None:
        """The longest-waiting open user of u's pool that u may meet."""
        blocks = u.blocks
        for w in u.pool.open.values():  # type: ignore[union-attr]
            if w is u:
                continue
            if blocks is not None and blocks.get(w.id, -1.0) > now:
                continue
            return w
        return None

    def _oldest_sharing(self, u: _User, now: float) -> _User | None:
        """The longest-waiting user sharing one of u's interests that u may meet."""
        by_interest = u.pool.by_interest  # type: ignore[union-attr]
        blocks = u.blocks
        best: _User | None = None
        for interest in u.interests:
            q = by_interest.get(interest)
            if not q:
                continue
            for w in q.values():
                if w is u:
                    continue
                if blocks is not None and blocks.get(w.id, -1.0) > now:
                    continue
                if best is None or w.seq < best.seq:
                    best = w
                break
        return best

    def _insert_open(self, u: _User) -> None:
        """Add a user whose fallback passed to the open queue at its join-order place."""
        q = u.pool.open  # type: ignore[union-attr]
        if q and next(reversed(q.values())).seq > u.seq:
            # Rare: only users blocked from u can be there. Rebuild in join order.
            items = sorted([*q.values(), u], key=lambda w: w.seq)
            q.clear()
            for w in items:
                q[w.id] = w
        else:
            q[u.id] = u

    def _dequeue(self, w: _User) -> None:
        pool = w.pool
        assert pool is not None
        if w.open:
            pool.open.pop(w.id, None)
        if w.interests:
            by_interest = pool.by_interest
            for interest in w.interests:
                q = by_interest.get(interest)
                if q is not None:
                    q.pop(w.id, None)
                    if not q:
                        del by_interest[interest]
        w.state = IDLE
        pool.waiting -= 1
        self.waiting_count -= 1

    def _pair(self, w: _User, u: _User, now: float, second_queued: bool = False) -> Paired:
        """Pair waiting user `w` with `u` (a newcomer, or also waiting if second_queued)."""
        if w.state == WAITING:
            if w.interests or not w.open:
                self._dequeue(w)
            else:  # inlined _dequeue for the common case
                pool = w.pool
                del pool.open[w.id]  # type: ignore[union-attr]
                pool.waiting -= 1  # type: ignore[union-attr]
                self.waiting_count -= 1
        if second_queued and u.state == WAITING:
            self._dequeue(u)
        self._pairs += 1
        pair_id = f"p{self._pairs}"
        w.state = u.state = PAIRED
        w.partner = u
        u.partner = w
        w.pair_id = u.pair_id = pair_id
        self.paired_count += 2
        self.pairs_total += 1
        common: tuple[str, ...] = ()
        if w.interests and u.interests:
            theirs = w.interests
            common = tuple(i for i in u.interests if i in theirs)
        return Paired(w.id, u.id, pair_id, u.mode, common, w.id, now - w.joined, now - u.joined)

    def _unpair(self, u: _User) -> _User:
        p = u.partner
        assert p is not None
        u.partner = p.partner = None
        u.pair_id = p.pair_id = None
        u.state = p.state = IDLE
        self.paired_count -= 2
        return p

    def _block(self, u: _User, p: _User, now: float) -> None:
        if self.rematch_block <= 0:
            return
        until = now + self.rematch_block
        for x, y in ((u, p), (p, u)):
            if x.blocks is None:
                x.blocks = {y.id: until}
            else:
                x.blocks[y.id] = until
        self._unblocks.append((until, u.id, p.id))
        if self._due is None or until < self._due:
            self._due = until

