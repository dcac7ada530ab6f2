"""What every virtual user saw, kept per worker: compact chat records plus local checks.

Why: the correctness oracle must work on any backend, so it relies only on what users
observe. Each user keeps ONE summary record per chat (never one per message) and checks
locally what needs no other user's view (cross-talk, delivery after the chat ended,
self match, duplicates, reordering, unexpected errors). Global checks (double match,
asymmetric pairs, lost messages, ghost matches, missing partner_left) run on the master
over the merged records (harness/oracle.py).

`UserView` is the per-user state machine fed with observations in the order they
happened; it does no I/O and reads no clock (times are passed in, nanoseconds since the
epoch), so tests drive it with hand-built sequences. The rules are in docs/oracle.md.
"""
from __future__ import annotations

from collections import deque
from typing import Any

from harness.histogram import LogHistogram

# How a chat ended (ChatRecord.end).
END_NEXT = "next"
END_LEAVE = "leave"
END_DISCONNECT = "disconnect"
END_PARTNER_LEFT = "partner_left"
END_RUN_END = "run_end"
END_LOST = "connection_lost"  # the socket closed under us (server or network)
END_ABANDONED = "abandoned"  # `paired` arrived after we had already sent `leave` (a legal race)
END_REPAIRED = "repaired"  # a new `paired` arrived while this chat was still open (double match)
OWN_ENDS = frozenset({END_NEXT, END_LEAVE, END_DISCONNECT})

# Violation kinds (counters in results.json -> correctness).
VIOLATION_KINDS = (
    "double_match",
    "self_match",
    "asymmetric_pair",
    "cross_talk",
    "after_end_delivery",
    "lost_messages",
    "reordered_messages",
    "duplicate_messages",
    "ghost_match",
    "missing_partner_left",
    "wrong_partner_left_reason",
    "unexpected_error",
)
LOCAL_KINDS = frozenset(
    {"double_match", "self_match", "cross_talk", "after_end_delivery", "reordered_messages",
     "duplicate_messages", "unexpected_error"}
)
MAX_EXAMPLES = 5
#: Error codes a correct server may send to a correct client under load or shutdown.
BENIGN_ERROR_CODES = frozenset({"rate_limited", "draining"})
#: How many ended chats a user remembers to tell late delivery from cross-talk.
_REMEMBERED_CHATS = 4
#: Largest gap of missing sequence numbers tracked for reordering (bogus seqs stay bounded).
_MAX_GAP = 10_000
#: Senders of frames that came before any token, kept per chat for the master to judge.
_MAX_EARLY = 4

TOKEN_PREFIX = "~tok "
MSG_PREFIX = "~msg "


def token_text(user: str, chat: int) -> str:
    return f"~tok {user} {chat}"


def message_text(user: str, chat: int, seq: int, send_ns: int, padding: str = "") -> str:
    return f"~msg {user} {chat} {seq} {send_ns} {padding}"


def parse_text(text: str) -> tuple[str, str, int, int, int] | None:
    """('tok'|'msg', user, chat, seq, send_ns) or None for text that is not ours."""
    if text.startswith(MSG_PREFIX):
        parts = text.split(" ", 5)
        if len(parts) >= 5:
            try:
                return "msg", parts[1], int(parts[2]), int(parts[3]), int(parts[4])
            except ValueError:
                return None
    elif text.startswith(TOKEN_PREFIX):
        parts = text.split(" ")
        if len(parts) == 3:
            try:
                return "tok", parts[1], int(parts[2]), -1, 0
            except ValueError:
                return None
    return None


class ChatRecord:
    """One user's view of one chat; mutable while open, shipped as a dict once closed."""

    __slots__ = (
        "u", "c", "cls", "mode", "lang", "interests", "t_req", "t_paired", "pair", "initiator",
        "t_tok_sent", "peer_u", "peer_c", "t_tok", "sent", "t_last_sent", "refused", "recv",
        "recv_max", "dup", "reord", "missing", "t_end", "end", "reason", "late", "early",
    )

    def __init__(self, u: str, c: int, t_req: int | None, t_paired: int, pair: str | None,
                 initiator: bool, mode: str, lang: str, interests: list[str], cls: str) -> None:
        self.u, self.c, self.cls = u, c, cls
        self.mode, self.lang, self.interests = mode, lang, interests
        self.t_req, self.t_paired, self.pair, self.initiator = t_req, t_paired, pair, initiator
        self.t_tok_sent: int | None = None
        self.peer_u: str | None = None
        self.peer_c: int | None = None
        self.t_tok: int | None = None
        self.sent = 0
        self.t_last_sent: int | None = None
        self.refused = 0
        self.recv = 0
        self.recv_max = -1
        self.dup = 0
        self.reord = 0
        self.missing: set[int] | None = None
        self.t_end: int | None = None
        self.end: str | None = None
        self.reason: str | None = None
        self.late = 0  # peer messages received after our own next/leave, before the barrier
        # Frames from chats we could not name yet (no token had arrived): (user, chat) -> count.
        # Our partner's frames when its token was refused (rate_limited), else cross-talk: the
        # master decides from the sender's own record (harness/oracle.py).
        self.early: dict[tuple[str, int], int] | None = None

    def peer_key(self) -> tuple[str, int] | None:
        return None if self.peer_u is None else (self.peer_u, self.peer_c)  # type: ignore[return-value]

    def take_seq(self, seq: int) -> str:
        """Account one received sequence number; returns 'ok', 'dup' or 'reord'. O(1) in order."""
        nxt = self.recv_max + 1
        if seq == nxt:
            self.recv += 1
            self.recv_max = seq
            return "ok"
        if seq > nxt:
            if seq - nxt <= _MAX_GAP:
                if self.missing is None:
                    self.missing = set()
                self.missing.update(range(nxt, seq))
            self.recv += 1
            self.recv_max = seq
            return "ok"
        if self.missing and seq in self.missing:
            self.missing.discard(seq)
            self.recv += 1
            self.reord += 1
            return "reord"
        self.dup += 1
        return "dup"

    def to_dict(self) -> dict[str, Any]:
        return {
            "u": self.u, "c": self.c, "cls": self.cls, "mode": self.mode, "lang": self.lang,
            "interests": self.interests, "t_req": self.t_req, "t_paired": self.t_paired,
            "pair": self.pair, "initiator": self.initiator, "t_tok_sent": self.t_tok_sent,
            "peer": None if self.peer_u is None else [self.peer_u, self.peer_c], "t_tok": self.t_tok,
            "sent": self.sent, "t_last_sent": self.t_last_sent, "refused": self.refused,
            "recv": self.recv, "recv_max": self.recv_max, "dup": self.dup, "reord": self.reord,
            "t_end": self.t_end, "end": self.end, "reason": self.reason, "late": self.late,
            "early": None if not self.early else [[u, c, n] for (u, c), n in self.early.items()],
        }


#: Columns of a per-second timeline slot: counts (paired, messages, violations) add up per
#: second; gauges (online, waiting, in_chat) are the worker's users sampled in that second.
TIMELINE_COLUMNS = ("paired", "messages", "online", "waiting", "in_chat", "violations")


class WorkerMetrics:
    """This worker's latency histograms (deltas since the last ship) and per-second timeline."""

    KINDS = ("connect", "pair", "relay", "signal_rtt")

    def __init__(self) -> None:
        self.hist: dict[str, LogHistogram] = {k: LogHistogram() for k in self.KINDS}
        self.timeline: dict[int, list[int]] = {}  # wall second -> TIMELINE_COLUMNS
        self.counters: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.frozen = False

    def sample(self, kind: str, ms: float) -> None:
        if not self.frozen:
            self.hist[kind].record(ms)

    def count(self, name: str, n: int = 1) -> None:
        if not self.frozen:
            self.counters[name] = self.counters.get(name, 0) + n

    def error(self, kind: str) -> None:
        if not self.frozen:
            self.errors[kind] = self.errors.get(kind, 0) + 1

    def _slot(self, t_ns: int) -> list[int]:
        sec = t_ns // 1_000_000_000
        slot = self.timeline.get(sec)
        if slot is None:
            slot = self.timeline[sec] = [0, 0, 0, 0, 0, 0]
        return slot

    def tick(self, t_ns: int, column: int) -> None:
        if not self.frozen:
            self._slot(t_ns)[column] += 1

    def gauges(self, t_ns: int, online: int, waiting: int, in_chat: int) -> None:
        if not self.frozen:
            slot = self._slot(t_ns)
            slot[2], slot[3], slot[4] = online, waiting, in_chat

    def drain(self) -> dict[str, Any]:
        """Everything recorded since the last drain, as plain data; then start afresh."""
        out = {
            "hist": {k: h.to_dict() for k, h in self.hist.items() if h.count},
            "timeline": {str(s): v for s, v in self.timeline.items()},
            "counters": self.counters,
            "errors": self.errors,
        }
        self.hist = {k: LogHistogram() for k in self.KINDS}
        self.timeline, self.counters, self.errors = {}, {}, {}
        return out


class Ledger:
    """Closed chat records, give-ups and local incidents of one worker, until shipped."""

    def __init__(self, max_examples: int = MAX_EXAMPLES) -> None:
        self.max_examples = max_examples
        self.records: list[dict[str, Any]] = []
        self.waits: list[dict[str, Any]] = []
        self.incidents: dict[str, int] = {}
        self.examples: dict[str, list[dict[str, Any]]] = {}
        self.frozen = False

    def add_record(self, rec: ChatRecord) -> None:
        if not self.frozen:
            self.records.append(rec.to_dict())

    def add_wait(self, wait: dict[str, Any]) -> None:
        if not self.frozen:
            self.waits.append(wait)

    def incident(self, kind: str, who: str, when: int, what: str, n: int = 1) -> None:
        if self.frozen:
            return
        self.incidents[kind] = self.incidents.get(kind, 0) + n
        ex = self.examples.setdefault(kind, [])
        if len(ex) < self.max_examples:
            ex.append({"who": who, "when": when, "what": what})

    def drain(self) -> dict[str, Any]:
        out = {"records": self.records, "waits": self.waits, "incidents": self.incidents,
               "examples": self.examples}
        self.records, self.waits, self.incidents, self.examples = [], [], {}, {}
        return out


class UserView:
    """One virtual user's observations, checked locally as they arrive.

    States: idle (no chat, not queued), waiting, paired, leaving (sent `leave`, the server
    has not confirmed it yet), closed. `grace` is True between our own next/leave and the
    server's confirmation (the barrier): frames of the chat we just ended may still be in
    flight then and are legal.
    """

    def __init__(self, user: str, ledger: Ledger, metrics: WorkerMetrics, cls: str = "ChatUser") -> None:
        self.user = user
        self.cls = cls
        self.ledger = ledger
        self.metrics = metrics
        self.chat_idx = 0
        self.state = "idle"
        self.cur: ChatRecord | None = None
        self.last: ChatRecord | None = None  # the chat that ended last
        self.grace = False
        self.refusal_expected = 0  # our next/leave raced the partner's: a `not_allowed` is legal
        self.ended: deque[tuple[str, int]] = deque(maxlen=_REMEMBERED_CHATS)
        self.t_req: int | None = None
        self.prefs: tuple[str, str, list[str]] = ("text", "en", [])
        self.offer_ns: int | None = None
        self.held: ChatRecord | None = None  # ended by us, shipped when the grace ends

    # -- helpers ----------------------------------------------------------------------
    def _close(self, rec: ChatRecord, end: str, t: int, reason: str | None = None, hold: bool = False) -> None:
        """End a chat. With `hold`, frames of it may still arrive legally (our own next or
        leave is not confirmed yet), so the record is shipped when the grace ends."""
        rec.end, rec.t_end, rec.reason = end, t, reason
        self._release()
        if hold:
            self.held = rec
        else:
            self._remember(rec)
            self.ledger.add_record(rec)
        self.last = rec

    def _remember(self, rec: ChatRecord) -> None:
        key = rec.peer_key()
        if key is not None:
            self.ended.append(key)

    def _release(self) -> None:
        rec = self.held
        if rec is not None:
            self.held = None
            self._remember(rec)
            self.ledger.add_record(rec)

    def _end_grace(self) -> None:
        self.grace = False
        self._release()

    def _incident(self, kind: str, t: int, what: str) -> None:
        self.ledger.incident(kind, self.user, t, what)
        self.metrics.tick(t, 5)

    # -- our own actions ------------------------------------------------------------
    def new_session(self) -> None:
        """A fresh connection: nothing of the previous session's chats can arrive here."""
        self._end_grace()
        self.state = "idle"
        self.cur = None
        self.refusal_expected = 0
        self.offer_ns = None

    def joined(self, t: int, mode: str, lang: str, interests: list[str]) -> None:
        """We sent `join` at t."""
        self.state = "waiting"
        self.t_req = t
        self.prefs = (mode, lang, list(interests))
        self.metrics.count("joins")

    def token_sent(self, t: int) -> None:
        if self.cur is not None:
            self.cur.t_tok_sent = t

    def message_sent(self, t: int) -> int:
        """We sent a chat message at t; returns its sequence number in this chat."""
        rec = self.cur
        if rec is None:
            return -1
        seq = rec.sent
        rec.sent += 1
        rec.t_last_sent = t
        return seq

    def offer_sent(self, t: int) -> None:
        self.offer_ns = t

    def ended_by_us(self, how: str, t: int) -> None:
        """We sent `next` or `leave` (state waiting or paired), or closed the socket."""
        if self.cur is not None:
            self._close(self.cur, how, t, hold=how != END_DISCONNECT)
            self.cur = None
        if how == END_DISCONNECT:
            self.state = "closed"
            self._end_grace()
            return
        self.grace = True
        if how == END_NEXT:
            self.state = "waiting"
            self.t_req = t
            self.metrics.count("joins")  # a next is a new search too
        else:
            self.state = "leaving"

    def gave_up(self, how: str, t: int) -> None:
        """We stopped waiting (leave or disconnect) without being paired."""
        mode, lang, interests = self.prefs
        self.ledger.add_wait({"u": self.user, "cls": self.cls, "mode": mode, "lang": lang,
                              "interests": interests, "t_req": self.t_req, "t_gave_up": t, "how": how})
        self.ended_by_us(how, t)

    def run_end(self, t: int) -> None:
        self._end_grace()
        if self.cur is not None:
            self._close(self.cur, END_RUN_END, t)
            self.cur = None
        self.state = "closed"

    def connection_lost(self, t: int) -> None:
        self._end_grace()
        if self.cur is not None:
            self._close(self.cur, END_LOST, t)
            self.cur = None
        self.state = "closed"

    # -- what the server sent ---------------------------------------------------------
    def on_waiting(self, t: int) -> None:
        if self.state == "closed":
            return  # our own close overtook a read: this connection is not judged any more
        self._end_grace()
        if self.state != "leaving":
            self.state = "waiting"

    def on_barrier(self, t: int) -> None:
        """The pong answering the ping we sent right after next/leave: the server has
        processed our end, so nothing of the old chat may arrive from now on."""
        self._end_grace()
        if self.state == "leaving":
            self.state = "idle"

    def on_paired(self, t: int, pair: str | None, initiator: bool, mode: str) -> ChatRecord | None:
        """Returns the new chat record, or None when the pairing is void (we already left)."""
        if self.state == "closed":
            return None  # our own close overtook a read: this connection is not judged any more
        if self.state == "leaving":
            # The server paired us before it processed our leave: the chat is over at once,
            # and the partner's first frames may still reach us until the barrier.
            rec = self._new_record(t, pair, initiator, mode)
            self._close(rec, END_ABANDONED, t, hold=True)
            return None
        self._end_grace()
        if self.cur is not None:
            self._incident("double_match", t, f"paired again ({pair}) while still in chat {self.cur.c}"
                           f" with {self.cur.peer_key()}")
            self._close(self.cur, END_REPAIRED, t)
            self.cur = None
        elif self.state not in ("waiting",):
            self._incident("unexpected_error", t, f"paired ({pair}) while {self.state}")
        rec = self._new_record(t, pair, initiator, mode)
        self.cur = rec
        self.state = "paired"
        self.offer_ns = None
        if self.t_req is not None:
            self.metrics.sample("pair", (t - self.t_req) / 1e6)
        self.metrics.tick(t, 0)
        self.metrics.count("paired")
        return rec

    def _new_record(self, t: int, pair: str | None, initiator: bool, mode: str) -> ChatRecord:
        _, lang, interests = self.prefs
        rec = ChatRecord(self.user, self.chat_idx, self.t_req, t, pair, initiator, mode, lang,
                         interests, self.cls)
        self.chat_idx += 1
        return rec

    def on_partner_left(self, t: int, reason: str) -> None:
        if self.state == "closed":
            return  # our own close overtook a read: this connection is not judged any more
        if self.cur is not None:
            self._close(self.cur, END_PARTNER_LEFT, t, reason)
            self.cur = None
            self.state = "idle"
            self._end_grace()
            return
        if self.grace:
            # Our next/leave crossed the partner's: the server ended the chat first, so it
            # will refuse our next/leave with `not_allowed`, and we are idle.
            self.refusal_expected += 1
            if self.last is not None and self.last.reason is None:
                self.last.reason = f"crossed:{reason}"
            self.state = "idle"
            self._end_grace()  # the server relays everything before partner_left
            return
        self._incident("after_end_delivery", t, f"partner_left ({reason}) while not in a chat ({self.state})")

    def on_error(self, t: int, code: str, message: str = "", expected: bool = False) -> None:
        """An `error` frame; `expected` is the protocol client's verdict that it was caused
        by a legal race (our frame crossed the partner's end of the chat)."""
        if self.state == "closed":
            return  # our own close overtook a read: this connection is not judged any more
        if code == "not_allowed" and (expected or self.refusal_expected):
            if self.refusal_expected:
                self.refusal_expected -= 1
            self.metrics.count("crossed_frames")
            return
        self.metrics.error(f"server_error:{code}")
        if code == "rate_limited":
            # The server answers in order: a refusal arriving in the grace after our own
            # next/leave refused a frame of the chat we just ended (or the next/leave itself).
            target = self.cur or self.held
            if target is not None:
                target.refused += 1
        if code not in BENIGN_ERROR_CODES:
            self._incident("unexpected_error", t, f"error {code}: {message[:80]} (state {self.state})")

    def unexpected_frame(self, t: int, reason: str) -> None:
        """A frame the protocol client could not interpret: the backend's fault."""
        if self.state == "closed":
            return  # our own close overtook a read: this connection is not judged any more
        self._incident("unexpected_error", t, f"uninterpretable frame: {reason[:100]}")

    def _classify(self, u: str, c: int) -> ChatRecord | None | str:
        """Which chat a frame from (u, c) belongs to: the current record, the last ended one
        (during grace), or a violation kind."""
        cur = self.cur
        if cur is not None and cur.peer_u == u and cur.peer_c == c:
            return cur
        last = self.last
        if self.grace and last is not None and last.peer_u == u and last.peer_c == c:
            return last
        if (u, c) in self.ended:
            return "after_end_delivery"
        return "cross_talk"

    def _early(self, u: str, c: int) -> bool:
        """A frame from an unknown chat while ours has no token yet: kept in the record for
        the master (it may be our partner whose token the server refused). False when the
        record already keeps as many unknown senders as it may (then it is cross-talk)."""
        rec = self.cur
        if rec is None:
            held = self.held  # the chat we just ended, not shipped until the grace ends
            if not (self.grace and held is not None and held is self.last and held.peer_u is None):
                return False
            rec = held
        elif rec.peer_u is not None:
            return False
        early = rec.early
        if early is None:
            early = rec.early = {}
        key = (u, c)
        if key not in early and len(early) >= _MAX_EARLY:
            return False
        early[key] = early.get(key, 0) + 1
        return True

    def on_text(self, t: int, text: str) -> None:
        parsed = parse_text(text)
        if parsed is None:
            self.metrics.error("foreign_text")
            return
        kind, u, c, seq, send_ns = parsed
        if kind == "tok":
            self.on_token(t, u, c)
        else:
            self.on_message(t, u, c, seq, send_ns)

    def on_token(self, t: int, u: str, c: int) -> None:
        if self.state == "closed":
            return  # our own close overtook a read: this connection is not judged any more
        rec = self.cur
        if rec is None:
            last = self.last
            if self.grace and last is not None and last.peer_u is None and last.t_tok is None:
                last.peer_u, last.peer_c, last.t_tok = u, c, t  # token of the chat we just left
                return
            if self.grace and last is not None and (last.peer_u, last.peer_c) == (u, c):
                return
            kind = "after_end_delivery" if (u, c) in self.ended else "cross_talk"
            self._incident(kind, t, f"token of {u}#{c} while not in a chat ({self.state})")
            return
        if u == self.user:
            self._incident("self_match", t, f"own token {u}#{c} in chat {rec.c} (pair {rec.pair})")
        if rec.peer_u is None:
            early = rec.early
            if early and (u, c) in early:
                # The token is always the partner's first frame: the server reordered them.
                self._incident("reordered_messages", t, f"token of {u}#{c} after {early.pop((u, c))}"
                               f" of its frames in chat {rec.c}")
            rec.peer_u, rec.peer_c, rec.t_tok = u, c, t
        elif (rec.peer_u, rec.peer_c) != (u, c):
            self._incident("double_match", t, f"second token {u}#{c} in chat {rec.c} already with"
                           f" {rec.peer_u}#{rec.peer_c}")

    def on_message(self, t: int, u: str, c: int, seq: int, send_ns: int) -> None:
        if self.state == "closed":
            return  # our own close overtook a read: this connection is not judged any more
        target = self._classify(u, c)
        if target == "cross_talk" and self._early(u, c):
            return
        if isinstance(target, str):
            self._incident(target, t, f"message {u}#{c} seq {seq} while in chat "
                           f"{None if self.cur is None else self.cur.peer_key()} ({self.state})")
            return
        if target is not self.cur:
            target.late += 1
        verdict = target.take_seq(seq)
        if verdict == "dup":
            self._incident("duplicate_messages", t, f"message {u}#{c} seq {seq} received twice")
            return
        if verdict == "reord":
            self._incident("reordered_messages", t, f"message {u}#{c} seq {seq} after seq {target.recv_max}")
        self.metrics.sample("relay", (t - send_ns) / 1e6)
        self.metrics.tick(t, 1)

    def on_typing(self, t: int) -> None:
        if self.state == "closed":
            return  # our own close overtook a read: this connection is not judged any more
        if self.cur is None and not self.grace:
            self._incident("after_end_delivery", t, f"typing while not in a chat ({self.state})")

    def on_signal(self, t: int, data: dict[str, Any]) -> None:
        """Checks a signal's origin; records the offer->answer round trip for the initiator."""
        if self.state == "closed":
            return  # our own close overtook a read: this connection is not judged any more
        u, c = data.get("u"), data.get("c")
        if not isinstance(u, str) or not isinstance(c, int):
            self.metrics.error("foreign_signal")
            return
        target = self._classify(u, c)
        if target == "cross_talk" and self._early(u, c):
            return
        if isinstance(target, str):
            self._incident(target, t, f"signal {data.get('k')} of {u}#{c} while in chat "
                           f"{None if self.cur is None else self.cur.peer_key()} ({self.state})")
            return
        if data.get("k") == "answer" and target is self.cur:
            ot = data.get("ot")
            if isinstance(ot, int) and ot == self.offer_ns:
                self.metrics.sample("signal_rtt", (t - ot) / 1e6)
                self.offer_ns = None
