"""The simulator's C kernel: engine.simulate with the reference core, 20-50x faster.

engine.py drives any matcher through Python calls, a few microseconds per event; a day of
3 million daily users is ~140M events. When the matcher is a fresh reference
PairingCore, `_kernel.c` runs the same event loop with an exact C port of the core's rules
(same effects order, same (time, seq) event order, same chat-length draws through
`ChatLengths.block_for`), so the result is identical; tests/test_simulate_kernel.py checks
it against the Python engine. Custom matchers keep the Python engine. CHATLOAD_SIM_KERNEL=0
turns the kernel off. The matcher object itself is only read (its interest_fallback and
rematch_block): it is left unused, so it stays fresh. docs/simulate.md, "The C kernel".
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable

import numpy as np

from harness.fairness.tickets import TicketTable

from . import engine
from .engine import ChatLengths, ChatSampler, SimResult, pool_of

_kernel: Any
try:
    from . import _kernel  # type: ignore[attr-defined,no-redef]  # the C extension, no stubs
except ImportError:  # not built (pure-Python install, no compiler): the Python engine runs
    _kernel = None

ENV = "CHATLOAD_SIM_KERNEL"


def unusable_reason(matcher: Any) -> str | None:
    """Why the kernel cannot stand in for `matcher` (None: it can)."""
    if os.environ.get(ENV, "1") == "0":
        return f"{ENV}=0"
    if _kernel is None:
        return "the C extension harness.simulate._kernel is not built (pip install -e . builds it)"
    klass = type(matcher)
    if klass.__name__ != "PairingCore" or klass.__module__ != "reference_server.core":
        return f"the matcher is {klass.__module__}.{klass.__qualname__}, not the reference PairingCore"
    try:
        fresh = (not matcher._users and matcher._seq == 0 and matcher._pairs == 0 and not matcher._fallbacks
                 and not matcher._unblocks and matcher._due is None and matcher._now == -math.inf)
        fb, rb = float(matcher.interest_fallback), float(matcher.rematch_block)
    except AttributeError as exc:
        return f"the matcher does not look like the reference core ({exc})"
    if not fresh:
        return "the matcher has been used already (the kernel starts from an empty core)"
    if math.isnan(fb) or math.isnan(rb):
        return "interest_fallback / rematch_block is NaN"
    return None


def usable(matcher: Any) -> bool:
    """True when simulate_kernel gives exactly what engine.simulate would with `matcher`."""
    return unusable_reason(matcher) is None


def _codes(values: np.ndarray, names: tuple[str, ...]) -> tuple[np.ndarray, int]:
    """Each row's index among the distinct names its code maps to (the core keys pools by name)."""
    uniq, inv = np.unique(values, return_inverse=True)
    ids: dict[str, int] = {}
    code_of = np.array([ids.setdefault(names[int(c)], len(ids)) for c in uniq], dtype=np.int32)
    return code_of[inv.reshape(-1)], max(len(ids), 1)


def _interest_queues(plan: Any, core_pool: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """CSR offsets and, per interest slot, a dense id of its (pool, interest) queue."""
    offs = np.ascontiguousarray(plan.interest_offsets, dtype=np.int64)
    n = core_pool.shape[0]
    lo, hi = (int(offs[0]), int(offs[n])) if n else (0, 0)
    ids = np.asarray(plan.interest_ids[lo:hi], dtype=np.int64)
    if ids.size == 0:
        return offs, np.zeros(0, dtype=np.int32), 0
    owner = np.repeat(np.arange(n), np.diff(offs))
    span = int(ids.max()) - int(ids.min()) + 1
    key = core_pool[owner].astype(np.int64) * span + (ids - int(ids.min()))
    uniq, inv = np.unique(key, return_inverse=True)
    return offs, inv.reshape(-1).astype(np.int32), int(uniq.size)


def simulate_kernel(
    plan: Any,
    matcher: Any,
    chat_sampler: ChatSampler,
    *,
    seed: int = 1,
    horizon_s: float | None = None,
    mode_names: tuple[str, ...] = ("text", "video"),
    class_names: tuple[str, ...] = ("unknown",),
    progress: Callable[[float], None] | None = None,
) -> SimResult:
    """engine.simulate(plan, PairingCore(...), ...) in C; same arguments, same result."""
    reason = unusable_reason(matcher)
    if reason is not None:
        raise ValueError(f"the simulation kernel cannot run this matcher: {reason}")
    n = int(plan.n)
    arrival = np.ascontiguousarray(plan.arrival_s, dtype=np.float64)
    if horizon_s is None:
        horizon_s = float(getattr(plan, "duration_s", float(arrival[-1]) if n else 0.0))
    langs = tuple(plan.langs)
    mode_code, n_modes = _codes(plan.mode, tuple(mode_names))
    lang_code, n_langs = _codes(plan.lang, langs)
    core_pool = np.ascontiguousarray(mode_code * n_langs + lang_code, dtype=np.int32)
    chat_pool64 = pool_of(plan.mode, plan.lang, len(langs))
    cls64 = np.asarray(plan.user_class, dtype=np.int64)
    chats64 = np.asarray(plan.chats, dtype=np.int64)
    if n and (chat_pool64.min() < 0 or cls64.min() < 0 or chats64.min() < -2**31 + 1 or chats64.max() >= 2**31):
        raise ValueError("the simulation kernel wants mode, lang and user_class >= 0 and chats within int32")
    patience = np.ascontiguousarray(plan.patience_s, dtype=np.float64)

    def python_engine() -> SimResult:
        return engine.simulate(plan, matcher, chat_sampler, seed=seed, horizon_s=horizon_s, mode_names=mode_names,
                               class_names=class_names, progress=progress, engine="python")
    if not _in_order(arrival, patience):
        return python_engine()
    offs, queues, n_queues = _interest_queues(plan, core_pool)
    lengths = ChatLengths(chat_sampler, seed)
    try:
        out = _run(plan, arrival, patience, chat_pool64, core_pool, cls64, chats64, offs, queues, n_queues,
                   n_modes * n_langs, matcher, horizon_s, lengths, progress)
    except _kernel.Unsupported:  # a negative or NaN chat length: the matcher is still untouched
        return python_engine()
    return SimResult(tickets=_table(out, horizon_s, mode_names, class_names, langs), horizon_s=horizon_s,
                     visits=out["visits"], pairings=out["pairings"], gave_up=out["gave_up"],
                     peak_online=out["peak_online"], events=out["events"])


def _in_order(arrival: np.ndarray, patience: np.ndarray) -> bool:
    """The conditions the kernel's event order rests on (kernel doc): else the Python engine runs.

    Arrivals sorted and patience >= 0 (NaN fails both) keep every event at or after the
    last timer run; the kernel checks chat lengths >= 0 itself as blocks come in.
    """
    return bool(np.all(arrival[1:] >= arrival[:-1]) and np.all(patience >= 0))


def _run(plan: Any, arrival: np.ndarray, patience: np.ndarray, chat_pool64: np.ndarray, core_pool: np.ndarray,
         cls64: np.ndarray, chats64: np.ndarray, offs: np.ndarray, queues: np.ndarray, n_queues: int,
         n_core_pools: int, matcher: Any, horizon_s: float, lengths: ChatLengths,
         progress: Callable[[float], None] | None) -> dict:
    n = arrival.shape[0]
    return _kernel.run(
        arrival,
        patience,
        np.ascontiguousarray(chat_pool64, dtype=np.int32),
        core_pool,
        np.ascontiguousarray(cls64, dtype=np.int32),
        np.ascontiguousarray(chats64, dtype=np.int32),
        offs, queues,
        np.ascontiguousarray(plan.mode, dtype=np.int16),
        np.ascontiguousarray(plan.lang, dtype=np.int16),
        np.ascontiguousarray(plan.interest_ids, dtype=np.int32),
        n_queues, n_core_pools,
        int(chat_pool64.max()) + 1 if n else 1, int(cls64.max()) + 1 if n else 1,
        float(matcher.interest_fallback), float(matcher.rematch_block), float(horizon_s),
        lengths.block_for, progress,
    )


def _col(out: dict, name: str, dtype: Any) -> np.ndarray:
    buf = out.pop(name)
    return np.frombuffer(buf, dtype=dtype) if len(buf) else np.zeros(0, dtype=dtype)


def _table(out: dict, horizon_s: float, mode_names: tuple[str, ...], class_names: tuple[str, ...],
           langs: tuple[str, ...]) -> TicketTable:
    """The TicketTable engine.simulate builds (the same from_arrays call, on the same values).

    The kernel hands over every column in its final dtype, the per-ticket copies of the
    visit's columns included (engine.py gathers those with numpy), so nothing is copied.
    """
    users = _col(out, "user", np.int64)
    return TicketTable.from_arrays(
        user=users, cls=_col(out, "cls", np.int16), mode=_col(out, "mode", np.int16),
        lang=_col(out, "lang", np.int16),
        interest_offsets=_col(out, "interest_offsets", np.int64), interest_ids=_col(out, "interest_ids", np.int32),
        t_join=_col(out, "t_join", np.float64), t_paired=_col(out, "t_paired", np.float64),
        t_gave_up=_col(out, "t_gave_up", np.float64), peer=_col(out, "peer", np.int64),
        peer_ticket=_col(out, "peer_ticket", np.int64), via_interest=_col(out, "via_interest", np.bool_),
        t_chat_end=_col(out, "t_chat_end", np.float64), t_end=horizon_s,
        cls_names=tuple(class_names), mode_names=tuple(mode_names), lang_names=tuple(langs),
    )
