"""The ticket table: one row per queue entry, as numpy columns, for vectorised fairness figures.

A *ticket* is one stay in the queue: a `join`, or a `next` that re-queues the user. It ends
paired (`t_paired`), given up (`t_gave_up`: leave or disconnect while waiting) or still open
at the end of the run (censored at `t_end`). The live harness hands over a list of dicts
(`from_records`); the simulator builds the columns directly (`from_arrays`). Both end up
with the same columns, so every figure is computed one way.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from operator import itemgetter
from typing import Any, Hashable, Iterable, Mapping, Sequence

import numpy as np

NAN = float("nan")


def _column(records: Sequence[Mapping[str, Any]], key: str) -> list[Any]:
    """records[i][key] for every record, None where missing (C-level when every record has it)."""
    try:
        return list(map(itemgetter(key), records))
    except (KeyError, TypeError):
        return [r.get(key) for r in records]


def _coded(values: list[Hashable], names: dict[Hashable, int], default: Hashable | None = None) -> np.ndarray:
    """int64 codes of values (falsy ones count as `default` if given); new names are
    numbered in order of first appearance and added to `names`."""
    code: dict[Hashable, int] = {}
    for v in dict.fromkeys(values):                  # the distinct raw values: few
        name = (v or default) if default is not None else v
        if name not in names:
            names[name] = len(names)
        code[v] = names[name]
    return np.fromiter(map(code.__getitem__, values), dtype=np.int64, count=len(values))


def _interest_codes(raw: list[Any], vocab: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """CSR (offsets, ids) of each record's interests: as strings, deduplicated, in order."""
    n = len(raw)
    counts = np.zeros(n, dtype=np.int64)
    ids: list[int] = []
    seen: dict[tuple, list[int]] = {}                 # a user's tickets repeat one list: code it once
    for i in [i for i, its in enumerate(raw) if its]:  # most records have no interests
        its = raw[i]
        key = tuple(its)
        got = seen.get(key)
        if got is None:
            names = list(dict.fromkeys(str(x) for x in its))
            for x in names:
                if x not in vocab:
                    vocab[x] = len(vocab)
            got = seen[key] = [vocab[x] for x in names]
        ids.extend(got)
        counts[i] = len(got)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets, np.asarray(ids, dtype=np.int32)


def _times(values: list[Any]) -> np.ndarray:
    """Seconds as float64, None as NaN (numpy converts None so; float(v) for anything else)."""
    return np.asarray(values, dtype=np.float64) if values else np.zeros(0)


@dataclass(eq=False)
class TicketTable:
    """Columns of n tickets. Times are seconds on one clock; NaN means "did not happen"."""

    user: np.ndarray                 # int64 user code (>= 0: -1 in `peer` means no partner)
    cls: np.ndarray                  # int16 index into cls_names
    mode: np.ndarray                 # int16 index into mode_names
    lang: np.ndarray                 # int16 index into lang_names
    interest_offsets: np.ndarray     # int64[n + 1] CSR offsets into interest_ids
    interest_ids: np.ndarray         # int32 vocabulary indices
    t_join: np.ndarray               # float64
    t_paired: np.ndarray             # float64, NaN if never paired
    t_gave_up: np.ndarray            # float64, NaN if it did not give up
    peer: np.ndarray                 # int64 user code of the partner, -1 if none
    peer_ticket: np.ndarray          # int64 index of the partner's ticket, -1 if unknown
    via_interest: np.ndarray         # bool: the pairing shared an interest
    t_chat_end: np.ndarray           # float64 end of the chat this ticket led to, NaN if unknown
    t_end: float                     # end of the run: tickets still waiting are censored here
    cls_names: tuple[str, ...] = ("unknown",)
    mode_names: tuple[str, ...] = ("text", "video")
    lang_names: tuple[str, ...] = ("en",)
    interest_names: Sequence[str] | None = None   # None: vocabulary index k is named f"t{k}"
    user_names: Sequence[Hashable] | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_records(
        cls,
        records: Sequence[Mapping[str, Any]],
        t_end: float | None = None,
        match_window_s: float = 2.0,
    ) -> "TicketTable":
        """Build from ticket dicts {user, cls, mode, lang, interests, t_join, t_paired, t_gave_up, peer, ...}.

        Optional keys: `chat` and `peer_chat` (the chat's index at each end: the live
        harness's tokens name both), `pair` (pair id), `via_interest` or `common` (shared
        interests of the pairing), `t_chat_end`. Partners' tickets are matched by
        `match_records`: chat keys naming each other, else a common pair id, else the
        partner's ticket naming it back whose `t_paired` is nearest within `match_window_s`.
        """
        users: dict[Hashable, int] = {}
        classes: dict[Hashable, int] = {}
        modes: dict[Hashable, int] = {"text": 0, "video": 1}
        langs: dict[Hashable, int] = {}
        vocab: dict[str, int] = {}
        n = len(records)
        user = _coded(list(map(itemgetter("user"), records)), users)
        peers = _column(records, "peer")
        for v in dict.fromkeys(peers):
            if v is not None and v not in users:
                users[v] = len(users)
        lookup = {**users, None: -1}                 # None: no partner
        peer = np.fromiter(map(lookup.__getitem__, peers), dtype=np.int64, count=n)
        del lookup, peers
        offsets, ids = _interest_codes(_column(records, "interests"), vocab)
        if any("via_interest" in r or "common" in r for r in records):
            via_given = [r.get("via_interest", None) if "via_interest" in r else
                         (bool(r["common"]) if r.get("common") is not None else None) for r in records]
        else:
            via_given = [None] * n                   # the usual: derived from both tickets' interests
        table = cls(
            user=user,
            cls=_coded(_column(records, "cls"), classes, "unknown").astype(np.int16),
            mode=_coded(_column(records, "mode"), modes, "text").astype(np.int16),
            lang=_coded(_column(records, "lang"), langs, "en").astype(np.int16),
            interest_offsets=offsets,
            interest_ids=ids,
            t_join=_times(list(map(itemgetter("t_join"), records))),
            t_paired=_times(_column(records, "t_paired")),
            t_gave_up=_times(_column(records, "t_gave_up")),
            peer=peer,
            peer_ticket=np.full(n, -1, dtype=np.int64),
            via_interest=np.zeros(n, dtype=bool),
            t_chat_end=_times(_column(records, "t_chat_end")),
            t_end=NAN,
            cls_names=tuple(str(k) for k in classes) or ("unknown",),
            mode_names=tuple(str(k) for k in modes),
            lang_names=tuple(str(k) for k in langs) or ("en",),
            interest_names=tuple(vocab),
            user_names=tuple(users),
        )
        del user, peer
        table.peer_ticket = match_records(records, table.user, table.peer, table.t_paired, match_window_s)
        known = np.asarray([v is not None for v in via_given], dtype=bool)
        derived = table.shared_interest_with_peer()
        table.via_interest = np.where(known, np.asarray([bool(v) for v in via_given], dtype=bool), derived)
        table.t_end = float(t_end) if t_end is not None else table.latest_time()
        return table

    @classmethod
    def from_arrays(klass, *, t_end: float | None = None, peer_ticket: np.ndarray | None = None,
                    via_interest: np.ndarray | None = None, t_chat_end: np.ndarray | None = None,
                    match_window_s: float = 2.0, **cols: Any) -> "TicketTable":
        """Build from columns (the simulator). Missing peer_ticket/via_interest are derived."""
        n = len(cols["t_join"])
        as_f = lambda k: np.asarray(cols[k], dtype=np.float64)  # noqa: E731
        table = klass(
            user=np.asarray(cols["user"], dtype=np.int64),
            cls=np.asarray(cols.get("cls", np.zeros(n)), dtype=np.int16),
            mode=np.asarray(cols.get("mode", np.zeros(n)), dtype=np.int16),
            lang=np.asarray(cols.get("lang", np.zeros(n)), dtype=np.int16),
            interest_offsets=np.asarray(cols.get("interest_offsets", np.zeros(n + 1)), dtype=np.int64),
            interest_ids=np.asarray(cols.get("interest_ids", np.zeros(0)), dtype=np.int32),
            t_join=as_f("t_join"), t_paired=as_f("t_paired"), t_gave_up=as_f("t_gave_up"),
            peer=np.asarray(cols["peer"], dtype=np.int64),
            peer_ticket=np.full(n, -1, dtype=np.int64),
            via_interest=np.zeros(n, dtype=bool),
            t_chat_end=np.full(n, NAN) if t_chat_end is None else np.asarray(t_chat_end, dtype=np.float64),
            t_end=NAN,
            **{k: v for k, v in cols.items() if k in ("cls_names", "mode_names", "lang_names",
                                                      "interest_names", "user_names")},
        )
        if peer_ticket is None:
            peer_ticket = match_peers(table.user, table.peer, table.t_paired, match_window_s)
        table.peer_ticket = np.asarray(peer_ticket, dtype=np.int64)
        table.via_interest = (table.shared_interest_with_peer() if via_interest is None
                              else np.asarray(via_interest, dtype=bool))
        table.t_end = float(t_end) if t_end is not None else table.latest_time()
        return table

    # ------------------------------------------------------------------ basics
    @property
    def n(self) -> int:
        return int(self.t_join.shape[0])

    def __len__(self) -> int:
        return self.n

    def latest_time(self) -> float:
        cols = [c[np.isfinite(c)] for c in (self.t_join, self.t_paired, self.t_gave_up, self.t_chat_end)]
        cols = [c for c in cols if c.size]
        return float(max(c.max() for c in cols)) if cols else 0.0

    def interest_name(self, k: int) -> str:
        return self.interest_names[k] if self.interest_names is not None else f"t{k}"

    def interests_of(self, i: int) -> np.ndarray:
        return self.interest_ids[self.interest_offsets[i]:self.interest_offsets[i + 1]]

    @cached_property
    def n_interests(self) -> np.ndarray:
        return np.diff(self.interest_offsets)

    @cached_property
    def has_interests(self) -> np.ndarray:
        return self.n_interests > 0

    @cached_property
    def paired(self) -> np.ndarray:
        return np.isfinite(self.t_paired)

    @cached_property
    def gave_up(self) -> np.ndarray:
        return ~self.paired & np.isfinite(self.t_gave_up)

    @cached_property
    def end(self) -> np.ndarray:
        """When the ticket left the queue: paired, gave up, or the run's end (censored)."""
        return np.where(self.paired, self.t_paired, np.where(np.isfinite(self.t_gave_up), self.t_gave_up, self.t_end))

    @cached_property
    def wait_s(self) -> np.ndarray:
        """Seconds in the queue (never negative, whatever the clocks did)."""
        return np.maximum(self.end - self.t_join, 0.0)

    @cached_property
    def pool(self) -> np.ndarray:
        """(mode, lang) as one int: users of different pools are never compatible."""
        return self.mode.astype(np.int64) * (int(self.lang.max(initial=0)) + 1) + self.lang

    @cached_property
    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Complete pairings (a, b), a < b: both tickets present and naming each other."""
        a = np.flatnonzero(self.peer_ticket > np.arange(self.n))
        b = self.peer_ticket[a]
        ok = (self.peer_ticket[b] == a) & self.paired[a] & self.paired[b]
        return a[ok], b[ok]

    @cached_property
    def user_order(self) -> np.ndarray:
        """Ticket indices sorted by (user, t_join, index): each user's history in order."""
        return np.lexsort((np.arange(self.n), self.t_join, self.user))

    @cached_property
    def prev_ticket(self) -> np.ndarray:
        """The same user's previous ticket, -1 for a user's first."""
        order = self.user_order
        prev = np.full(self.n, -1, dtype=np.int64)
        same = self.user[order[1:]] == self.user[order[:-1]]
        prev[order[1:][same]] = order[:-1][same]
        return prev

    @cached_property
    def next_join(self) -> np.ndarray:
        """t_join of the same user's next ticket, +inf for a user's last."""
        order = self.user_order
        nxt = np.full(self.n, np.inf)
        same = self.user[order[1:]] == self.user[order[:-1]]
        nxt[order[:-1][same]] = self.t_join[order[1:][same]]
        return nxt

    @cached_property
    def chat_end_est(self) -> np.ndarray:
        """Latest time the chat of a paired ticket can have ended (NaN if not paired).

        The recorded t_chat_end if any, but never later than either partner's re-join: a
        user re-queues only after its chat ended. Using the latest possible end makes the
        rematch block last as long as it possibly could, so no pairing is wrongly blamed.
        """
        est = np.where(np.isnan(self.t_chat_end), np.inf, self.t_chat_end)
        est = np.minimum(est, self.next_join)
        has_peer = self.peer_ticket >= 0
        est[has_peer] = np.minimum(est[has_peer], self.next_join[self.peer_ticket[has_peer]])
        return np.where(self.paired & (self.peer >= 0), est, np.nan)

    def shared_interest_with_peer(self) -> np.ndarray:
        """Whether each paired ticket shares an interest with its partner's ticket."""
        out = np.zeros(self.n, dtype=bool)
        idx = np.flatnonzero((self.peer_ticket >= 0) & self.has_interests)
        if idx.size == 0:
            return out
        other = self.peer_ticket[idx]
        keep = self.has_interests[other]
        idx, other = idx[keep], other[keep]
        # (row, interest) for both sides, then look for duplicates per pairing row.
        rows = np.arange(idx.size)
        la, ia = _expand(self, idx)
        lb, ib = _expand(self, other)
        key = np.concatenate([rows[la] * (1 << 31) + ia, rows[lb] * (1 << 31) + ib])
        key.sort()
        dup = key[1:][key[1:] == key[:-1]] >> 31
        out[idx[np.unique(dup)]] = True
        return out


def _expand(t: TicketTable, tickets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(local row, interest id) for each interest of each given ticket (deduplicated per ticket)."""
    counts = t.n_interests[tickets]
    rows = np.repeat(np.arange(tickets.size), counts)
    starts = np.repeat(t.interest_offsets[tickets] - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    ids = t.interest_ids[starts + np.arange(int(counts.sum()))].astype(np.int64)
    key = np.unique(rows.astype(np.int64) * (1 << 31) + ids)
    return key >> 31, key & ((1 << 31) - 1)


def _small_ints(values: list[Any]) -> np.ndarray | None:
    """Non-negative ints (None as -1) as int64, or None if any value is something else."""
    if not set(map(type, values)) <= {int, type(None)}:
        return None
    nones = values.count(None)
    arr = np.asarray([-1 if v is None else v for v in values] if nones else values, dtype=np.int64)
    if arr.size and (int(arr.min()) < -1 or int(np.count_nonzero(arr == -1)) != nones):
        return None                                   # negative chats: the loop decides
    return arr


def _match_chat_keys_fast(records: Sequence[Mapping[str, Any]], paired_idx: np.ndarray, user: np.ndarray,
                          peer: np.ndarray, out: np.ndarray) -> bool:
    """Step 1 of match_records vectorised, for the usual records; False (nothing done) otherwise.

    Usual: chats and partners' chats are non-negative ints or None (in every record), no two
    paired tickets share (user, chat), and no ticket without a chat names a partner's chat.
    Then every partner found is mutual and unique, so the result is the loop's whatever
    the order.
    """
    idx = paired_idx
    chat = _small_ints(_column(records, "chat"))
    pchat = _small_ints(_column(records, "peer_chat")) if chat is not None else None
    if chat is None or pchat is None:
        return False
    chat, pchat = chat[idx], pchat[idx]
    u, pu = user[idx], peer[idx]
    if idx.size == 0:
        return True
    m = int(max(chat.max(), pchat.max())) + 2
    if int(max(u.max(), pu.max(), 0)) >= (1 << 62) // m or int(min(u.min(), 0)) < 0:
        return False
    has_chat = chat >= 0
    own = u * m + chat
    keys = own[has_chat]
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    if keys.size > 1 and bool(np.any(keys[1:] == keys[:-1])):
        return False                                  # duplicate chat keys: the loop decides
    owner = np.flatnonzero(has_chat)[order]           # position in idx of each sorted key
    asks = (pchat >= 0) & (pu >= 0)
    want = pu * m + pchat
    pos = np.minimum(np.searchsorted(keys, want), max(keys.size - 1, 0))
    hit = asks & (keys.size > 0) & (keys[pos] == want) if keys.size else np.zeros(idx.size, dtype=bool)
    k = np.flatnonzero(hit)
    j = owner[pos[k]]
    ok = (j != k) & (pu[j] == u[k]) & (pchat[j] == chat[k])
    k, j = k[ok], j[ok]
    if bool(np.any(chat[k] < 0)):
        return False                                  # a chat-less ticket naming a partner's chat
    out[idx[k]] = idx[j]
    return True


def match_records(records: Sequence[Mapping[str, Any]], user: np.ndarray, peer: np.ndarray,
                  t_paired: np.ndarray, window_s: float) -> np.ndarray:
    """peer_ticket of every ticket dict, from the most to the least certain evidence.

    1. Chat keys: ticket (u, chat) names (v, peer_chat) and ticket (v, peer_chat) names
       (u, chat) back. Exact: the live harness learns both from the partner's token.
    2. Pair id: the two remaining paired tickets holding one `pair`, unless their peers
       contradict it (a backend that reuses ids cannot join two unrelated chats).
    3. Time: the rest by `match_peers` (same pair of users, nearest t_paired in the window).
    """
    n = len(records)
    out = np.full(n, -1, dtype=np.int64)
    done = np.isfinite(t_paired)
    paired = np.flatnonzero(done)
    if not _match_chat_keys_fast(records, paired, user, peer, out):
        out[:] = -1
        _match_chat_keys(records, paired.tolist(), user, peer, out)
    seen: dict[Hashable, int] = {}
    for i in np.flatnonzero(done & (out < 0)).tolist():
        p = records[i].get("pair")
        if out[i] >= 0 or p is None:
            continue
        j = seen.pop(p, None)
        if j is None:
            seen[p] = i
        elif (user[i] != user[j] and peer[i] in (-1, user[j]) and peer[j] in (-1, user[i])):
            out[i], out[j] = j, i
        else:
            seen[p] = i
    rest = np.flatnonzero(done & (out < 0))
    if rest.size >= 2:
        sub = match_peers(user[rest], peer[rest], t_paired[rest], window_s)
        hit = sub >= 0
        out[rest[hit]] = rest[sub[hit]]
    return out


def _match_chat_keys(records: Sequence[Mapping[str, Any]], paired_idx: list[int], user: np.ndarray,
                     peer: np.ndarray, out: np.ndarray) -> None:
    """Step 1 of match_records as a loop over the tickets in order (any chat values)."""
    by_chat: dict[tuple[int, Any], int] = {}
    for i in paired_idx:
        c = records[i].get("chat")
        if c is not None:
            by_chat.setdefault((int(user[i]), c), i)
    if not by_chat:
        return
    for i in paired_idx:
        r = records[i]
        pc = r.get("peer_chat")
        if out[i] >= 0 or pc is None or peer[i] < 0:
            continue
        j = by_chat.get((int(peer[i]), pc))
        if j is None or j == i or out[j] >= 0:
            continue
        if peer[j] == user[i] and records[j].get("peer_chat") == r.get("chat"):
            out[i], out[j] = j, i


def match_peers(user: np.ndarray, peer: np.ndarray, t_paired: np.ndarray, window_s: float) -> np.ndarray:
    """Match each paired ticket with its partner's ticket without pair ids.

    Tickets of one user pair (u, v) are sorted by t_paired; neighbours held by different
    users within `window_s` are partners. Runs of such neighbours are matched greedily from
    the left (u v u v -> (u v)(u v)), which is exact when the two chats of a pair of users are
    further apart than the window.
    """
    n = user.shape[0]
    out = np.full(n, -1, dtype=np.int64)
    idx = np.flatnonzero(np.isfinite(t_paired) & (peer >= 0))
    if idx.size < 2:
        return out
    lo = np.minimum(user[idx], peer[idx])
    hi = np.maximum(user[idx], peer[idx])
    order = idx[np.lexsort((t_paired[idx], hi, lo))]
    lo_o, hi_o = np.minimum(user[order], peer[order]), np.maximum(user[order], peer[order])
    a, b = order[:-1], order[1:]
    edge = ((lo_o[:-1] == lo_o[1:]) & (hi_o[:-1] == hi_o[1:]) & (user[a] != user[b])
            & (peer[a] == user[b]) & (np.abs(t_paired[b] - t_paired[a]) <= window_s))
    # position of each edge inside its run of consecutive edges; keep even positions.
    k = np.arange(edge.size)
    last_gap = np.maximum.accumulate(np.where(edge, -1, k))
    pos = k - last_gap - 1
    take = edge & (pos % 2 == 0)
    out[a[take]] = b[take]
    out[b[take]] = a[take]
    return out
